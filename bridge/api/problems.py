"""Problems: listed and read with the read token; linked, closed, reopened, merged, noted and given a workaround with
the operate token."""

from __future__ import annotations

from flask import Blueprint, jsonify, request

from bridge.api.bodies import MergeRequest, NoteRequest, ReasonRequest, WorkaroundRequest
from bridge.domain.problems import ProblemState
from bridge.errors import BadPayload
from bridge.outbox.notify import Announcer
from bridge.problems.actions import (
    NOTE,
    add_problem_note,
    close_problem_by_hand,
    create_issue_now,
    link_problem,
    reopen_problem_by_hand,
    unlink_issue,
)
from bridge.problems.corrections import merge_problems
from bridge.problems.notices import set_workaround
from bridge.shapes import problem_shape
from bridge.storage.read_models import IncidentFilter
from bridge.web.actors import request_actor
from bridge.web.answers import history_json, incident_json, problem_tickets_json
from bridge.web.context import bridge
from bridge.web.cursors import EMBEDDED, keyset_args
from bridge.web.edge import (
    MAX_PAGE_SIZE,
    choice_arg,
    json_object,
    json_writes,
    page_args,
    problem_or_404,
    requires_token,
    validated_body,
)

problems = json_writes(Blueprint("problems", __name__))


@problems.get("/api/v1/problems")
@requires_token("api")
def list_problems():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    state = choice_arg("state", ProblemState)
    page = bridge().store.list_problems(state, request.args.get("jira_key") or None, limit, cursor)
    return jsonify({"items": [problem_shape(row) for row in page.items], "next_cursor": page.next_cursor})


@problems.get("/api/v1/problems/<int:problem_id>")
@requires_token("api")
def get_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """A problem with its newest incidents (500), and the newest 50 entries of its history, notes and tickets,
    oldest first as ever, with the cursor of the older ones (the endpoints below page them, newest first)."""
    problem = problem_or_404(problem_id)
    page = bridge().store.list_incidents(IncidentFilter(problem_id=problem_id), MAX_PAGE_SIZE, None)
    history = history_json(problem_id, EMBEDDED, None)
    notes = history_json(problem_id, EMBEDDED, None, NOTE)
    tickets = problem_tickets_json(problem_id)
    return jsonify(
        {
            **problem_shape(problem),
            "incidents": [incident_json(i) for i in page.items],
            "tickets": tickets["items"][::-1],
            "tickets_next_cursor": tickets["next_cursor"],
            "history": history["items"][::-1],
            "history_next_cursor": history["next_cursor"],
            "notes": notes["items"][::-1],
            "notes_next_cursor": notes["next_cursor"],
        }
    )


@problems.get("/api/v1/problems/<int:problem_id>/history")
@requires_token("api")
def problem_history(problem_id: int):  # type: ignore[no-untyped-def]
    """The problem's history, newest first, a page at a time (`cursor` from the page before)."""
    limit, after = keyset_args()
    problem_or_404(problem_id)
    return jsonify(history_json(problem_id, limit, after))


@problems.get("/api/v1/problems/<int:problem_id>/notes")
@requires_token("api")
def problem_notes(problem_id: int):  # type: ignore[no-untyped-def]
    """The notes people wrote on the problem, newest first, a page at a time."""
    limit, after = keyset_args()
    problem_or_404(problem_id)
    return jsonify(history_json(problem_id, limit, after, NOTE))


@problems.post("/api/v1/problems/<int:problem_id>/jira")
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
        body["jira_key"],
        ctx.now(),
        request_actor(),
        Announcer.of(ctx.store, ctx.rules),
    )
    return jsonify(problem_shape(problem))


@problems.delete("/api/v1/problems/<int:problem_id>/jira")
@requires_token("operate")
def unlink_jira(problem_id: int):  # type: ignore[no-untyped-def]
    """Forget the link (the Jira issue itself is left alone); idempotent."""
    return jsonify(problem_shape(unlink_issue(bridge().store, problem_id, request_actor(), bridge().now())))


@problems.post("/api/v1/problems/<int:problem_id>/jira/create")
@requires_token("operate")
def create_issue(problem_id: int):  # type: ignore[no-untyped-def]
    """File the Jira issue now for a problem whose rule does not file one (the worker creates it)."""
    ctx = bridge()
    project = create_issue_now(ctx.store, ctx.rules, problem_id, request_actor(), ctx.now())
    return jsonify({**problem_shape(problem_or_404(problem_id)), "jira_project": project, "issue": "queued"}), 202


@problems.post("/api/v1/problems/<int:problem_id>/notes")
@requires_token("operate")
def add_note(problem_id: int):  # type: ignore[no-untyped-def]
    """A note in the problem's history."""
    body = validated_body(NoteRequest)
    ctx = bridge()
    add_problem_note(ctx.store, problem_id, request_actor(), body.text, ctx.now())
    return jsonify(problem_shape(problem_or_404(problem_id))), 201


@problems.post("/api/v1/problems/<int:problem_id>/workaround")
@requires_token("operate")
def set_problem_workaround(problem_id: int):  # type: ignore[no-untyped-def]
    """Set the problem's workaround: each open ticket of it hears a new text once."""
    body = validated_body(WorkaroundRequest)
    ctx = bridge()
    _, told = set_workaround(ctx.store, ctx.rules, problem_id, body.text, request_actor(), ctx.now())
    return jsonify({**problem_shape(problem_or_404(problem_id)), "tickets_told": told})


@problems.delete("/api/v1/problems/<int:problem_id>/workaround")
@requires_token("operate")
def clear_workaround(problem_id: int):  # type: ignore[no-untyped-def]
    """Clear the problem's workaround (tickets told earlier keep their comment)."""
    ctx = bridge()
    set_workaround(ctx.store, ctx.rules, problem_id, None, request_actor(), ctx.now())
    return jsonify({**problem_shape(problem_or_404(problem_id)), "tickets_told": 0})


@problems.post("/api/v1/problems/<int:problem_id>/close")
@requires_token("operate")
def close_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """Close a problem and its incidents by hand, with a reason."""
    body = validated_body(ReasonRequest)
    close_problem_by_hand(bridge().store, problem_id, body.reason, bridge().now(), bridge().rules, request_actor())
    return jsonify(problem_shape(problem_or_404(problem_id)))


@problems.post("/api/v1/problems/<int:problem_id>/reopen")
@requires_token("operate")
def reopen_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """Reopen a closed problem by hand, with a reason."""
    body = validated_body(ReasonRequest)
    reopen_problem_by_hand(bridge().store, problem_id, body.reason, bridge().now(), request_actor())
    return jsonify(problem_shape(problem_or_404(problem_id)))


@problems.post("/api/v1/problems/<int:problem_id>/merge")
@requires_token("operate")
def merge_problem(problem_id: int):  # type: ignore[no-untyped-def]
    """Merge a problem into another (rules grouped one failure twice); answers with the problem merged into."""
    body = validated_body(MergeRequest)
    result = merge_problems(bridge().store, problem_id, body.into, request_actor(), body.reason, bridge().now())
    return jsonify({**problem_shape(problem_or_404(body.into)), "merge": result.as_json()})
