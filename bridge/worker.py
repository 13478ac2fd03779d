"""Background worker: periodic jobs that must not run inside a webhook request.

Today it closes resolved incidents whose `auto_close_after` has passed. Every job is
an idempotent, set-based statement, so several workers on one database are safe.
"""

from __future__ import annotations

import logging
import signal
import threading
from collections.abc import Callable
from datetime import datetime
from types import FrameType

from bridge.errors import StoreUnavailable
from bridge.storage import Store

log = logging.getLogger(__name__)


def run_once(store: Store, now: datetime) -> int:
    """One pass of every periodic job; returns how many incidents changed."""
    closed = store.close_resolved_due(now)
    if closed:
        log.info("auto-closed resolved incidents", extra={"count": len(closed)})
    return len(closed)


def run_forever(
    store: Store, interval_seconds: float, now: Callable[[], datetime], stop: threading.Event
) -> None:
    """Run passes until `stop` is set; a database outage is logged and waited out."""
    log.info("worker started", extra={"interval_seconds": interval_seconds})
    while not stop.is_set():
        try:
            run_once(store, now())
        except StoreUnavailable:
            log.warning("database unavailable; worker will retry")
        stop.wait(interval_seconds)
    log.info("worker stopped")


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT finish the current pass, then exit."""

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
