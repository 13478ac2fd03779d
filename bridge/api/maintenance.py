"""Maintenance windows: made and ended with the operate token, listed and read with the read token."""

from __future__ import annotations

from flask import Blueprint, jsonify

from bridge.api.bodies import MaintenanceRequest
from bridge.domain.windows import WindowKind, WindowState
from bridge.errors import NotFound
from bridge.watch.windows import end_window, make_window, window_json
from bridge.web.actors import request_actor
from bridge.web.answers import incident_json
from bridge.web.context import bridge
from bridge.web.edge import choice_arg, json_writes, page_args, requires_token, validated_body

maintenance = json_writes(Blueprint("maintenance", __name__))
# The incidents a window's detail lists (newest first); its counts say how many it held in all.
MAX_LISTED_INCIDENTS = 500


@maintenance.post("/api/v1/maintenance")
@requires_token("operate")
def make():  # type: ignore[no-untyped-def]
    """A window that holds what opens under it until it ends (201); one without an end, or too long, is refused."""
    body = validated_body(MaintenanceRequest)
    ctx = bridge()
    now = ctx.now()
    made = make_window(
        ctx.store, **body.model_dump(), now=now, longest=ctx.settings.maintenance_max, actor=request_actor()
    )
    return jsonify(window_json(made, now)), 201


@maintenance.get("/api/v1/maintenance")
@requires_token("api")
def list_windows():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    state = choice_arg("state", WindowState)
    ctx = bridge()
    now = ctx.now()
    page = ctx.store.list_windows(state, now, limit, cursor)
    counts = ctx.store.held_counts([row["id"] for row in page.items])
    items = [window_json(row, now, counts.get(row["id"], (0, 0))) for row in page.items]
    return jsonify({"items": items, "next_cursor": page.next_cursor})


@maintenance.get("/api/v1/maintenance/<int:window_id>")
@requires_token("api")
def get_window(window_id: int):  # type: ignore[no-untyped-def]
    """A window with the incidents it held, held still or released: which window hid which alert."""
    ctx = bridge()
    row = ctx.store.get_window(window_id)
    if row is None or row["kind"] != WindowKind.MAINTENANCE.value:
        raise NotFound(f"no maintenance window {window_id}")
    counts = ctx.store.held_counts([window_id]).get(window_id, (0, 0))
    held = [incident_json(incident) for incident in ctx.store.window_incidents(window_id, MAX_LISTED_INCIDENTS)]
    return jsonify({**window_json(row, ctx.now(), counts), "incidents": held})


@maintenance.post("/api/v1/maintenance/<int:window_id>/end")
@requires_token("operate")
def end(window_id: int):  # type: ignore[no-untyped-def]
    """End a window now: what still fires is handled as ordinary from now, what resolved closes quietly (409 once ended)."""
    ctx = bridge()
    released = end_window(ctx.store, ctx.rules, window_id, ctx.now(), request_actor())
    row = ctx.store.get_window(window_id)
    assert row is not None
    counts = ctx.store.held_counts([window_id]).get(window_id, (0, 0))
    answer = window_json(row, ctx.now(), counts)
    return jsonify({**answer, "released": {"ordinary": released.ordinary, "closed": released.closed}})
