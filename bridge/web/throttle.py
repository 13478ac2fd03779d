"""Failed authentications counted per client address: past its allowance an address waits, so a token
cannot be guessed at the speed of the network.

An address that failed ALLOWANCE times within WINDOW_SECONDS is answered 429 for the next
WINDOW_SECONDS without its token being compared, a right token included: an answer that
told a right guess from a wrong one would let the guessing go on. Each HTTP worker process
counts for itself, in at most MAX_ADDRESSES entries (the least recently failed go first).
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from flask import current_app, request

from bridge import metrics
from bridge.errors import TooManyFailures

log = logging.getLogger(__name__)

EXTENSION = "bridge.auth_throttle"
ALLOWANCE = 10
WINDOW_SECONDS = 60.0
MAX_ADDRESSES = 10_000


@dataclass
class _Failures:
    since: float
    count: int = 0
    until: float = 0.0  # refused before this time, once past the allowance


class AuthThrottle:
    """Failures per client address within a window; thread-safe, bounded."""

    def __init__(
        self,
        allowance: int = ALLOWANCE,
        window: float = WINDOW_SECONDS,
        max_addresses: int = MAX_ADDRESSES,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.allowance = allowance
        self.window = window
        self.max_addresses = max_addresses
        self.clock = clock
        self._failures: OrderedDict[str, _Failures] = OrderedDict()
        self._lock = threading.Lock()
        self._someone_waits_until = 0.0

    def __len__(self) -> int:
        return len(self._failures)

    def someone_waits(self) -> bool:
        """Whether any address is refused now (cheap: the ASGI fast path asks it per webhook)."""
        return self.clock() < self._someone_waits_until

    def wait(self, address: str) -> float:
        """Seconds before this address's tokens are compared again; 0 when they are now."""
        with self._lock:
            entry = self._failures.get(address)
            return max(0.0, entry.until - self.clock()) if entry is not None else 0.0

    def failed(self, address: str) -> bool:
        """Count a failure of this address; True when it used up the allowance (the address now waits)."""
        with self._lock:
            now = self.clock()
            entry = self._failures.pop(address, None)
            if entry is None or (now - entry.since >= self.window and entry.until <= now):
                entry = _Failures(since=now)
            entry.count += 1
            exhausted = entry.count == self.allowance
            if exhausted:
                entry.until = now + self.window
                self._someone_waits_until = max(self._someone_waits_until, entry.until)
            self._failures[address] = entry  # the most recent last: the oldest go first
            while len(self._failures) > self.max_addresses:
                self._failures.popitem(last=False)
            return exhausted


def auth_throttle() -> AuthThrottle:
    """The current app's throttle (create_app installs it)."""
    found: AuthThrottle = current_app.extensions[EXTENSION]
    return found


def refuse_if_throttled(group: str) -> None:
    """Refuse, before comparing anything, a client address that failed too often lately.

    Raises:
        TooManyFailures: the address waits (429 with Retry-After).
    """
    address = request.remote_addr or "unknown"
    wait = auth_throttle().wait(address)
    if wait > 0:
        metrics.labelled(metrics.AUTH_THROTTLED, group).inc()
        seconds = math.ceil(wait)
        raise TooManyFailures(
            "too many failed authentications from this address",
            [f"Authorization: try again in {seconds} s"],
            retry_after=seconds,
        )


def count_failure(group: str) -> None:
    """Count a failed authentication of the request's client address (and say so once it must wait)."""
    address = request.remote_addr or "unknown"
    metrics.labelled(metrics.AUTH_FAILURES, group).inc()
    throttle = auth_throttle()
    if throttle.failed(address):
        log.warning(
            "authentication throttled",
            extra={"client": address, "group": group, "failures": throttle.allowance, "seconds": throttle.window},
        )
