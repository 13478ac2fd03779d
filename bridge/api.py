"""HTTP API: incidents, problems, releases, rejected payloads and the outbox, read and acted on. JSON only.

Reading needs the read token (BRIDGE_TOKEN_API), acting the operate token (BRIDGE_TOKEN_OPERATE);
the newer actions (acknowledge, notes, create an issue now) and release health are in api_actions.py.
"""

from __future__ import annotations

import logging
from typing import Annotated, Any

from flask import Blueprint, Response, jsonify, request
from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, StrictInt, ValidationError

from adapters import SOURCES
from bridge import metrics
from bridge.actions import record_job_retry, unlink_issue
from bridge.actors import request_actor
from bridge.context import bridge
from bridge.corrections import merge_problems, move_incident
from bridge.domain import Incident, IncidentState, OutboxState, ProblemState
from bridge.edge import (
    MAX_PAGE_SIZE,
    choice_arg,
    int_arg,
    json_object,
    page_args,
    require_json,
    requires_token,
)
from bridge.errors import BadPayload, Conflict, NotFound
from bridge.notify import Announcer
from bridge.openapi import build_document
from bridge.problems import JIRA_KEY, close_problem_by_hand, link_problem, reopen_problem_by_hand
from bridge.releases import close_release
from bridge.shapes import incident_shape, iso, problem_shape
from bridge.sla import SlaClock, remaining_seconds
from bridge.storage import MAX_ID, IncidentFilter
from bridge.tickets_api import problem_tickets_json
from bridge.validation import bounded_str, describe

log = logging.getLogger(__name__)
api = Blueprint("api", __name__)


@api.before_request
def _require_json_body() -> None:
    """Every POST here that carries a body carries JSON."""
    require_json()


def incident_json(incident: Incident) -> dict[str, Any]:
    """The API shape of an incident; SLA time left is in business seconds where the calendar says so."""
    ctx = bridge()
    policy = ctx.rules.sla_policies.get(incident.priority)
    remaining = None
    if policy is not None and incident.state is not IncidentState.CLOSED:
        clock = SlaClock(incident.sla_elapsed_seconds, incident.sla_running_since)
        remaining = round(remaining_seconds(policy, clock, ctx.now()), 3)
    return {**incident_shape(incident), "sla_remaining_seconds": remaining}


def problem_json(row: dict[str, Any]) -> dict[str, Any]:
    """The API shape of a problem."""
    return problem_shape(row)


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


@api.get("/api/v1/incidents")
@requires_token("api")
def list_incidents():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    filters = IncidentFilter(
        state=choice_arg("state", IncidentState),
        source=choice_arg("source", SOURCES),
        priority=request.args.get("priority") or None,
        problem_id=int_arg("problem_id", maximum=MAX_ID),
    )
    page = bridge().store.list_incidents(filters, limit, cursor)
    return jsonify({"items": [incident_json(i) for i in page.items], "next_cursor": page.next_cursor})


@api.get("/api/v1/incidents/<int:incident_id>")
@requires_token("api")
def get_incident(incident_id: int):  # type: ignore[no-untyped-def]
    incident = bridge().store.get_incident(incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    history = [
        {"at": iso(event["at"]), "kind": event["kind"], "actor": event["actor"], "detail": event["detail"]}
        for event in bridge().store.incident_history(incident_id)
    ]
    return jsonify({**incident_json(incident), "history": history})


@api.get("/api/v1/rejected")
@requires_token("api")
def list_rejected():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    source = choice_arg("source", SOURCES)
    page = bridge().store.list_rejected(limit, cursor, source)
    return jsonify({"items": [_rejected_json(row) for row in page.items], "next_cursor": page.next_cursor})


@api.get("/api/v1/rejected/<int:rejected_id>")
@requires_token("api")
def get_rejected(rejected_id: int):  # type: ignore[no-untyped-def]
    """One refused payload with its body (as kept: at most BRIDGE_REJECTED_BODY_LIMIT characters)."""
    row = bridge().store.get_rejected(rejected_id)
    if row is None:
        raise NotFound(f"no rejected payload {rejected_id}", ["it never existed or was pruned (BRIDGE_RETENTION)"])
    return jsonify(_rejected_json(row))


@api.get("/healthz")
def healthz():  # type: ignore[no-untyped-def]
    """Liveness: the process answers. Never touches the database."""
    return jsonify({"status": "ok"})


@api.get("/readyz")
def readyz():  # type: ignore[no-untyped-def]
    """Readiness: the database answers; 503 otherwise."""
    bridge().store.ping()
    return jsonify({"status": "ok", "database": "ok"})


@api.get("/api/v1/problems")
@requires_token("api")
def list_problems():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    state = choice_arg("state", ProblemState)
    page = bridge().store.list_problems(state, request.args.get("jira_key") or None, limit, cursor)
    return jsonify({"items": [problem_json(row) for row in page.items], "next_cursor": page.next_cursor})


def _problem_or_404(problem_id: int) -> dict[str, Any]:
    problem = bridge().store.get_problem(problem_id)
    if problem is None:
        raise NotFound(f"no problem {problem_id}")
    return problem


@api.get("/api/v1/problems/<int:problem_id>")
@requires_token("api")
def get_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """A problem with its incidents (the newest 500; the incidents API pages through all)."""
    problem = _problem_or_404(problem_id)
    page = bridge().store.list_incidents(IncidentFilter(problem_id=problem_id), MAX_PAGE_SIZE, None)
    history = [
        {"at": iso(event["at"]), "kind": event["kind"], "detail": event["detail"], "actor": event["actor"]}
        for event in bridge().store.problem_history(problem_id)
    ]
    return jsonify(
        {
            **problem_json(problem),
            "incidents": [incident_json(i) for i in page.items],
            "tickets": problem_tickets_json(problem_id),
            "history": history,
        }
    )


@api.post("/api/v1/problems/<int:problem_id>/jira")
@requires_token("operate")
def link_jira(problem_id: int):  # type: ignore[no-untyped-def]
    """Link an existing Jira issue, checked against Jira first."""
    body = json_object()
    if not isinstance(body, dict) or not isinstance(body.get("jira_key"), str):
        raise BadPayload("expected a JSON object with jira_key", ["jira_key: required string, e.g. LKK-123"])
    ctx = bridge()
    assert ctx.link_options is not None
    problem = link_problem(
        ctx.store,
        ctx.jira,
        ctx.link_options,
        problem_id,
        body["jira_key"].strip(),
        ctx.now(),
        request_actor(),
        Announcer.of(ctx.store, ctx.rules),
    )
    return jsonify(problem_json(problem))


@api.delete("/api/v1/problems/<int:problem_id>/jira")
@requires_token("operate")
def unlink_jira(problem_id: int):  # type: ignore[no-untyped-def]
    """Forget the link (the Jira issue itself is left alone); idempotent."""
    return jsonify(problem_json(unlink_issue(bridge().store, problem_id, request_actor(), bridge().now())))


@api.get("/api/v1/outbox")
@requires_token("api")
def list_outbox():  # type: ignore[no-untyped-def]
    """Side-effect jobs: what is waiting, done, or dead-lettered and why."""
    limit, cursor = page_args()
    state = choice_arg("state", OutboxState)
    page = bridge().store.list_jobs(state, limit, cursor)
    return jsonify({"items": [_job_json(job) for job in page.items], "next_cursor": page.next_cursor})


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


@api.post("/api/v1/outbox/<int:job_id>/retry")
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


class ReleaseRequest(BaseModel):
    """The close hook's body, as a release pipeline sends it."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=200)
    project: str = Field(pattern=r"^[A-Z][A-Z0-9_]{0,63}$")
    issues: list[Annotated[str, Field(pattern=JIRA_KEY.pattern)]] | None = Field(default=None, max_length=10_000)
    released_at: AwareDatetime | None = None
    environments: list[Annotated[str, Field(pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")]] | None = Field(
        default=None, max_length=100
    )


class ReasonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class MergeRequest(BaseModel):
    """Merge this problem into another: its incidents gathered there, the Jira link kept or named in a conflict."""

    model_config = ConfigDict(extra="forbid")

    into: StrictInt = Field(ge=1, le=MAX_ID)
    reason: bounded_str(1, 2000) | None = None  # type: ignore[valid-type]


class MoveRequest(BaseModel):
    """Move this incident to another open problem."""

    model_config = ConfigDict(extra="forbid")

    problem_id: StrictInt = Field(ge=1, le=MAX_ID)


def _validated(model: type[BaseModel]) -> Any:
    body = json_object()
    if not isinstance(body, dict):
        raise BadPayload("expected a JSON object", ["body: not a JSON object"])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise BadPayload(f"invalid {model.__name__}", describe(exc)) from exc


@api.post("/api/v1/releases")
@requires_token("release")
def release_shipped():  # type: ignore[no-untyped-def]
    """The release close hook: close the problems fixed by this release and all their incidents."""
    ctx = bridge()
    release = _validated(ReleaseRequest)
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


@api.get("/api/v1/releases")
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


@api.post("/api/v1/problems/<int:problem_id>/close")
@requires_token("operate")
def close_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """Close a problem and its incidents by hand, with a reason."""
    body = _validated(ReasonRequest)
    close_problem_by_hand(bridge().store, problem_id, body.reason, bridge().now(), bridge().rules, request_actor())
    return jsonify(problem_json(_problem_or_404(problem_id)))


@api.post("/api/v1/problems/<int:problem_id>/reopen")
@requires_token("operate")
def reopen_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """Reopen a closed problem by hand, with a reason."""
    body = _validated(ReasonRequest)
    reopen_problem_by_hand(bridge().store, problem_id, body.reason, bridge().now(), request_actor())
    return jsonify(problem_json(_problem_or_404(problem_id)))


@api.post("/api/v1/problems/<int:problem_id>/merge")
@requires_token("operate")
def merge_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """Merge a problem into another (rules grouped one failure twice); answers with the problem merged into."""
    body = _validated(MergeRequest)
    result = merge_problems(bridge().store, problem_id, body.into, request_actor(), body.reason, bridge().now())
    return jsonify({**problem_json(_problem_or_404(body.into)), "merge": result.as_json()})


@api.post("/api/v1/incidents/<int:incident_id>/move")
@requires_token("operate")
def move_incident_to_problem(incident_id: int):  # type: ignore[no-untyped-def]
    """Move an incident a rule grouped wrongly to another open problem."""
    body = _validated(MoveRequest)
    previous = move_incident(bridge().store, incident_id, body.problem_id, request_actor(), bridge().now())
    incident = bridge().store.get_incident(incident_id)
    if incident is None:
        raise NotFound(f"no incident {incident_id}")
    return jsonify({**incident_json(incident), "moved_from": previous})


@api.get("/metrics")
def prometheus_metrics():  # type: ignore[no-untyped-def]
    """Prometheus exposition: counters summed across processes, gauges from the database."""
    body, content_type = metrics.exposition(bridge().store, bridge().rules)
    return Response(body, content_type=content_type)


@api.get("/api/v1/openapi.json")
def openapi_document():  # type: ignore[no-untyped-def]
    """This API, described for clients and for schemathesis."""
    return jsonify(build_document(ReleaseRequest, ReasonRequest, MergeRequest, MoveRequest))
