"""Heartbeats: listed with the read token; pinged by a job that has no sender of its own (token group heartbeats)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from bridge.shapes import iso
from bridge.watch.heartbeats import heartbeat_json, heartbeat_views, ping_heartbeat
from bridge.web.context import bridge
from bridge.web.edge import json_writes, requires_token

heartbeats = json_writes(Blueprint("heartbeats", __name__))


@heartbeats.get("/api/v1/heartbeats")
@requires_token("api")
def list_heartbeats():  # type: ignore[no-untyped-def]
    """Every heartbeat of the rules, and those removed from them (disabled), with when each was last heard."""
    ctx = bridge()
    return jsonify({"items": [heartbeat_json(view) for view in heartbeat_views(ctx.store, ctx.rules)]})


@heartbeats.post("/api/v1/heartbeats/<name>/ping")
@requires_token("heartbeats")
def ping(name: str):  # type: ignore[no-untyped-def]
    """The job is alive: 404 for a heartbeat the rules do not have, 409 for one its source pings."""
    ctx = bridge()
    record = ping_heartbeat(ctx.store, ctx.rules, name, ctx.now())
    return jsonify(
        {"status": "ok", "heartbeat": name, "state": record.state.value, "last_heard": iso(record.last_seen)}
    )
