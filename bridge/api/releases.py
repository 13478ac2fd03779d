"""Releases: the close hook (release token), the list and a release's health (read token)."""

from __future__ import annotations

from flask import Blueprint, jsonify

from bridge.api.bodies import ReleaseRequest
from bridge.problems.release_health import health_json, release_health
from bridge.problems.releases import close_release
from bridge.shapes import iso
from bridge.web.context import bridge
from bridge.web.edge import json_writes, page_args, requires_token, validated_body

releases = json_writes(Blueprint("releases", __name__))


@releases.post("/api/v1/releases")
@requires_token("release")
def release_shipped():  # type: ignore[no-untyped-def]
    """The release close hook: close the problems fixed by this release and all their incidents."""
    ctx = bridge()
    release = validated_body(ReleaseRequest)
    summary = close_release(
        ctx.store,
        ctx.jira,
        ctx.rules,
        project=release.project,
        version=release.version,
        issues=release.issues,
        released_at=release.released_at,
        now=ctx.now(),
        environments=release.environments,
    )
    return jsonify({"status": "ok", **summary})


@releases.get("/api/v1/releases")
@requires_token("api")
def list_releases():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    page = bridge().store.list_releases(limit, cursor)
    items = [
        {
            "id": row["id"],
            "project": row["project"],
            "version": row["version"],
            "via": row["via"],
            "released_at": iso(row["released_at"]),
            "received_at": iso(row["received_at"]),
            "summary": row["summary"],
            "environments": row["environments"],
        }
        for row in page.items
    ]
    return jsonify({"items": items, "next_cursor": page.next_cursor})


@releases.get("/api/v1/releases/<project>/<path:version>")
@requires_token("api")
def get_release(project: str, version: str):  # type: ignore[no-untyped-def]
    """What a release closed and what came after it (BRIDGE_RELEASE_WATCH)."""
    ctx = bridge()
    health = release_health(ctx.store, project, version, ctx.settings.release_watch, ctx.now())
    return jsonify(health_json(health))
