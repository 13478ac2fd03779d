"""The outbox: side-effect jobs listed (read token), a dead one retried (operate token)."""

from __future__ import annotations

from typing import Any

from flask import Blueprint, jsonify

from bridge.domain.outbox import OutboxState
from bridge.errors import Conflict, NotFound
from bridge.problems.actions import record_job_retry
from bridge.shapes import iso
from bridge.web.actors import request_actor
from bridge.web.context import bridge
from bridge.web.edge import choice_arg, json_writes, page_args, requires_token

outbox = json_writes(Blueprint("outbox", __name__))


def _job_json(job: dict[str, Any]) -> dict[str, Any]:
    return {
        "id": job["id"],
        "kind": job["kind"],
        "target": job["target"],
        # Which notify target or ticket system a delivery is for (notify:<name>, ticket:<name>; RT: the system).
        "destination": job["payload"].get("destination") or job["payload"].get("system"),
        "problem_id": job["problem_id"],
        "state": job["state"],
        "attempts": job["attempts"],
        "created_at": iso(job["created_at"]),
        "next_attempt_at": iso(job["next_attempt_at"]),
        "finished_at": iso(job["finished_at"]),
        "last_error": job["last_error"],
    }


@outbox.get("/api/v1/outbox")
@requires_token("api")
def list_outbox():  # type: ignore[no-untyped-def]
    """Side-effect jobs: what is waiting, done, or dead-lettered and why."""
    limit, cursor = page_args()
    state = choice_arg("state", OutboxState)
    page = bridge().store.list_jobs(state, limit, cursor)
    return jsonify({"items": [_job_json(job) for job in page.items], "next_cursor": page.next_cursor})


@outbox.post("/api/v1/outbox/<int:job_id>/retry")
@requires_token("operate")
def retry_job(job_id: int):  # type: ignore[no-untyped-def]
    """Run a dead-lettered job again, once its cause (a wrong token, a missing project) is fixed."""
    store = bridge().store
    actor = request_actor()
    job = store.get_job(job_id)
    if job is None:
        raise NotFound(f"no outbox job {job_id}")
    if job["state"] != OutboxState.DEAD:
        raise Conflict(f"outbox job {job_id} is {job['state']}, not dead", ["only dead jobs can be retried"])
    retried, skipped = store.retry_dead_jobs(bridge().now(), job_id=job_id)
    if job_id in skipped:
        raise Conflict(
            f"outbox job {job_id} not retried: pending job {skipped[job_id]} does the same work",
            [f"dedup_key: {job['dedup_key']} already has pending job {skipped[job_id]}"],
        )
    if not retried:  # retried or finished by another request meanwhile
        raise Conflict(f"outbox job {job_id} is no longer dead")
    retried_job = store.get_job(job_id)
    if retried_job is None:
        raise NotFound(f"no outbox job {job_id}")
    record_job_retry(store, retried_job, actor, bridge().now())
    return jsonify(_job_json(retried_job))
