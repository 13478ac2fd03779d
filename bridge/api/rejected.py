"""Refused payloads, kept with their reason for the operator to read (read token)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from adapters import SOURCES
from bridge.errors import NotFound
from bridge.shapes import iso
from bridge.web.context import bridge
from bridge.web.edge import choice_arg, page_args, requires_token

rejected = Blueprint("rejected", __name__)


def _rejected_json(row: dict[str, Any]) -> dict[str, Any]:
    """A refused payload; the body only when the row carries it (single item, not a list page)."""
    shape = {
        "id": row["id"],
        "source": row["source"],
        "received_at": iso(row["received_at"]),
        "reason": row["reason"],
        "errors": row["errors"],
        "partial": row["partial"],
        "content_type": row["content_type"],
        "body_bytes": row["body_bytes"],
        "body_truncated": row["body_truncated"],
    }
    if "body" in row:
        shape["body"] = row["body"]
    return shape


@rejected.get("/api/v1/rejected")
@requires_token("api")
def list_rejected():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    source = choice_arg("source", SOURCES)
    page = bridge().store.list_rejected(limit, cursor, source)
    return jsonify({"items": [_rejected_json(row) for row in page.items], "next_cursor": page.next_cursor})


@rejected.get("/api/v1/rejected/<int:rejected_id>")
@requires_token("api")
def get_rejected(rejected_id: int):  # type: ignore[no-untyped-def]
    """One refused payload with its body (as kept: at most BRIDGE_REJECTED_BODY_LIMIT characters)."""
    row = bridge().store.get_rejected(rejected_id)
    if row is None:
        raise NotFound(f"no rejected payload {rejected_id}", ["it never existed or was pruned (BRIDGE_RETENTION)"])
    return jsonify(_rejected_json(row))
