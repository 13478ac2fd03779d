"""Errors the bridge raises on purpose; each maps to one HTTP status and one JSON envelope."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any


class OutboundFailure(Exception):
    """A call to another system failed: the worker retries it with backoff when `retryable`
    (not before `retry_after` seconds when the system said so), else it is a dead letter."""

    def __init__(self, message: str, retryable: bool = True, retry_after: float | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.retryable = retryable
        self.retry_after = retry_after


class BridgeError(Exception):
    """Base error: a message for people, an HTTP status and itemised findings."""

    status = 500
    # A name for programs (the envelope's `error`) when the status alone does not say what to do.
    error: str | None = None
    # Seconds a client should wait before retrying (the Retry-After header), when that is known.
    retry_after: int | None = None

    def __init__(self, message: str, errors: Sequence[str] = (), status: int | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.errors = list(errors)
        if status is not None:
            self.status = status


class BadPayload(BridgeError):
    """The request body is not a notification we can use (400)."""

    status = 400


class InvalidRoutingKey(BadPayload):
    """A PagerDuty event whose routing_key is missing or unknown: 400 as PagerDuty answers it, and never
    kept (like a 401: anyone could send it)."""


class Unauthorized(BridgeError):
    """The bearer token is missing or wrong (401)."""

    status = 401


class Forbidden(BridgeError):
    """A browser's request from another site, refused whatever it carries (403)."""

    status = 403


class TooManyFailures(BridgeError):
    """Too many failed authentications from this client address lately (429); `retry_after` in seconds."""

    status = 429

    def __init__(self, message: str, errors: Sequence[str], retry_after: int) -> None:
        super().__init__(message, errors)
        self.retry_after = retry_after


class NotFound(BridgeError):
    """No such resource or source (404)."""

    status = 404


class PayloadTooLarge(BridgeError):
    """The body is past BRIDGE_MAX_BODY_BYTES (413); `head` holds what was read of it, to keep."""

    status = 413

    def __init__(self, limit: int, head: bytes = b"", limit_name: str = "BRIDGE_MAX_BODY_BYTES") -> None:
        super().__init__(f"request body larger than {limit} bytes", [f"body: at most {limit} bytes ({limit_name})"])
        self.head = head


class UnsupportedMediaType(BridgeError):
    """A body that is not declared as JSON (415): a web page's form or no-cors fetch cannot send that type."""

    status = 415


class StoreUnavailable(BridgeError):
    """The database cannot be reached; callers such as Alertmanager should retry (503)."""

    status = 503
    error = "storage_unavailable"
    retry_after = 5


class StoreFull(StoreUnavailable):
    """The database's disk (or its size limit) is full: writes fail until an operator makes room (503)."""

    error = "storage_full"
    retry_after = 30


class StoreReadOnly(StoreUnavailable):
    """The database takes reads but refuses writes (a standby, a read-only setting or file system) (503)."""

    error = "storage_read_only"
    retry_after = 30


class DataRefused(BridgeError):
    """The database refused a value of this item (too long, out of range, NUL): bad input, not an outage (400)."""

    status = 400


class Conflict(BridgeError):
    """The request clashes with the current state (409)."""

    status = 409


class Unprocessable(BridgeError):
    """Well-formed, but refers to something that cannot be used (422)."""

    status = 422


class UpstreamError(BridgeError):
    """Jira or Zabbix failed while we waited on it: 503 when retrying may help, else 502."""

    def __init__(self, message: str, retryable: bool) -> None:
        super().__init__(message, status=503 if retryable else 502)
        self.retryable = retryable


class SenderShapedError(BridgeError):
    """A refusal answered in the sender's own error shape as well as ours (`shape` overrides our fields),
    so both kinds of client read it: PagerDuty's senders look for its `status` and `message`."""

    def __init__(self, cause: BridgeError, shape: Mapping[str, Any]) -> None:
        super().__init__(cause.message, cause.errors, cause.status)
        self.error, self.retry_after = cause.error, cause.retry_after
        self.shape = dict(shape)
