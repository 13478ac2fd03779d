"""Opaque cursors of keyset pages (a problem's history, notes, tickets): where the last page ended.

A cursor is the last row's (time, ..., id), base64url-encoded JSON, so a client passes it
back without reading it; one that does not decode to that shape is refused by name.
"""

from __future__ import annotations

import base64
from datetime import UTC, datetime
from typing import Any

import orjson
from flask import request

from bridge.errors import BadPayload
from bridge.storage.engine import MAX_ID
from bridge.web.edge import DEFAULT_PAGE_SIZE, MAX_PAGE_SIZE, int_arg

# How many entries of each kind a problem's answer and its page show; the rest is paged.
EMBEDDED = 50
# Longer than any cursor this module writes.
_MAX_CURSOR_CHARS = 200


def encode_cursor(key: tuple[Any, ...] | None) -> str | None:
    """The cursor of a page's end, None when there is no next page."""
    if key is None:
        return None
    at, *rest = key
    raw = orjson.dumps([at.astimezone(UTC).isoformat(), *rest])
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def decode_cursor(raw: str, name: str, parts: int) -> tuple[Any, ...]:
    """A cursor back as (aware UTC datetime, int, ...) of `parts` members.

    Raises:
        BadPayload: not a cursor of that shape (garbled, forged, from another listing).
    """
    refused = BadPayload(
        f"invalid query parameter {name}", [f"{name}: not a cursor this listing gave; start again without it"]
    )
    if len(raw) > _MAX_CURSOR_CHARS:
        raise refused
    try:
        decoded = orjson.loads(base64.b64decode(raw + "=" * (-len(raw) % 4), altchars=b"-_", validate=True))
        if not isinstance(decoded, list) or len(decoded) != parts or not isinstance(decoded[0], str):
            raise refused
        at = datetime.fromisoformat(decoded[0])
        if at.tzinfo is None:
            raise refused
        at = at.astimezone(UTC)
    except (ValueError, OverflowError) as exc:  # binascii, JSON, ASCII and ISO errors are ValueErrors
        raise refused from exc
    numbers = decoded[1:]
    if not all(type(n) is int and 0 <= n <= MAX_ID for n in numbers):
        raise refused
    return (at, *numbers)


def keyset_args(name: str = "cursor", parts: int = 2) -> tuple[int, tuple[Any, ...] | None]:
    """The `limit` (bounded as every listing's) and the decoded cursor `name` of a keyset page."""
    limit = int_arg("limit", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    assert limit is not None
    raw = request.args.get(name)
    return limit, decode_cursor(raw, name, parts) if raw else None
