"""The action forms of the pages: each a POST that checks who may act and the form token, does one
use case, and redirects back to the page with a message saying what it did (post/redirect/get).

Adding an action is one template block (`action_form` in macros.html) and one small route here:

    @ui.post("/problems/<int:problem_id>/close")
    @page_action(_problem_page)
    def close_problem(problem_id: int) -> str:
        close_problem_by_hand(..., bridge().rules, request_actor())
        return f"Problem #{problem_id} closed."
"""

from __future__ import annotations

import re
from collections.abc import Callable
from datetime import UTC, datetime
from functools import wraps
from typing import Any

from flask import flash, redirect, render_template, request, url_for
from pydantic import ValidationError

from bridge.api.bodies import MaintenanceRequest
from bridge.errors import BadPayload, BridgeError
from bridge.outbox.notify import Announcer
from bridge.pages.views import form_token_matches, may_act, ui
from bridge.problems.actions import (
    acknowledge_incident,
    add_problem_note,
    close_problem_by_hand,
    create_issue_now,
    link_problem,
    reopen_problem_by_hand,
    unlink_issue,
)
from bridge.problems.corrections import merge_problems, move_incident
from bridge.problems.notices import set_workaround as set_problem_workaround
from bridge.storage.engine import MAX_ID
from bridge.validation import describe, parse_duration
from bridge.watch.windows import end_window, make_window
from bridge.web.actors import request_actor
from bridge.web.context import bridge

DONE, FAILED = "done", "error"


def _refused(message: str, status: int):  # type: ignore[no-untyped-def]
    return render_template("refused.html", message=message), status


def page_action(back: Callable[..., str]) -> Callable[[Callable[..., str]], Callable[..., Any]]:
    """Guard an action form's route: the operate sign-in, the form token, then the action.

    The action returns what it did; a refusal of the use case (a conflict, a bad key) comes
    back as a message too. Either way the browser returns to `back(**route arguments)`.
    """

    def decorate(action: Callable[..., str]) -> Callable[..., Any]:
        @wraps(action)
        def run(**kwargs: Any) -> Any:
            if not may_act():
                return _refused("Acting needs the operate token: sign in again with BRIDGE_TOKEN_OPERATE.", 403)
            if not form_token_matches():
                return _refused("This form has expired or did not come from this page: reload it and try again.", 400)
            try:
                flash(action(**kwargs), DONE)
            except BridgeError as exc:
                flash(" ".join([exc.message, *exc.errors]), FAILED)
            return redirect(back(**kwargs), 303)

        return run

    return decorate


def form_text(name: str, *, required: bool = True, max_length: int = 2000) -> str | None:
    """A form field, trimmed and bounded (the API's limits).

    Raises:
        BadPayload: missing when required, too long, or with a NUL character.
    """
    value = request.form.get(name, "").strip()
    if not value:
        if required:
            raise BadPayload(f"{name} is required", [f"{name}: fill it in"])
        return None
    if len(value) > max_length or "\x00" in value:
        raise BadPayload(f"invalid {name}", [f"{name}: at most {max_length} characters, no NUL"])
    return value


def form_id(name: str) -> int:
    """A form field holding an id (a problem to merge into, to move to).

    Raises:
        BadPayload: missing, or not an id.
    """
    value = (form_text(name, max_length=20) or "").removeprefix("#")
    if not (value.isascii() and value.isdigit() and 0 < int(value) <= MAX_ID):
        raise BadPayload(f"invalid {name}", [f"{name}: a problem or incident number such as 42"])
    return int(value)


def _problem_page(problem_id: int) -> str:
    return url_for("ui.problem", problem_id=problem_id)


def _incident_page(incident_id: int) -> str:
    return url_for("ui.incident", incident_id=incident_id)


@ui.post("/problems/<int:problem_id>/jira")
@page_action(_problem_page)
def link_jira(problem_id: int) -> str:
    ctx = bridge()
    assert ctx.link_options is not None
    key = form_text("jira_key", max_length=64) or ""
    link_problem(
        ctx.store,
        ctx.jira,
        ctx.link_options,
        problem_id,
        key,
        ctx.now(),
        request_actor(),
        Announcer.of(ctx.store, ctx.rules),
    )
    return f"Problem #{problem_id} linked to {key}."


@ui.post("/problems/<int:problem_id>/unlink")
@page_action(_problem_page)
def unlink_jira(problem_id: int) -> str:
    before = bridge().store.get_problem(problem_id)
    unlink_issue(bridge().store, problem_id, request_actor(), bridge().now())
    key = before["jira_key"] if before else None
    return f"Problem #{problem_id} unlinked from {key}." if key else f"Problem #{problem_id} had no Jira issue."


@ui.post("/problems/<int:problem_id>/create-issue")
@page_action(_problem_page)
def create_issue(problem_id: int) -> str:
    ctx = bridge()
    project = create_issue_now(ctx.store, ctx.rules, problem_id, request_actor(), ctx.now())
    return f"Jira issue for problem #{problem_id} requested in {project}; it appears here once Jira has it."


@ui.post("/problems/<int:problem_id>/close")
@page_action(_problem_page)
def close_problem(problem_id: int) -> str:
    reason = form_text("reason") or ""
    close_problem_by_hand(bridge().store, problem_id, reason, bridge().now(), bridge().rules, request_actor())
    return f"Problem #{problem_id} closed: {reason}."


@ui.post("/problems/<int:problem_id>/reopen")
@page_action(_problem_page)
def reopen_problem(problem_id: int) -> str:
    reason = form_text("reason") or ""
    reopen_problem_by_hand(bridge().store, problem_id, reason, bridge().now(), request_actor())
    return f"Problem #{problem_id} reopened: {reason}."


@ui.post("/problems/<int:problem_id>/notes")
@page_action(_problem_page)
def add_note(problem_id: int) -> str:
    add_problem_note(
        bridge().store, problem_id, request_actor(), form_text("text", max_length=5000) or "", bridge().now()
    )
    return f"Note added to problem #{problem_id}."


@ui.post("/problems/<int:problem_id>/workaround")
@page_action(_problem_page)
def set_workaround(problem_id: int) -> str:
    ctx = bridge()
    text = form_text("text", max_length=10_000)
    _, told = set_problem_workaround(ctx.store, ctx.rules, problem_id, text, request_actor(), ctx.now())
    return f"Workaround of problem #{problem_id} set; {told} ticket notices queued."


@ui.post("/incidents/<int:incident_id>/ack")
@page_action(_incident_page)
def acknowledge(incident_id: int) -> str:
    incident = acknowledge_incident(
        bridge().store, incident_id, request_actor(), form_text("note", required=False), bridge().now()
    )
    return f"Incident #{incident_id} acknowledged by {incident.acknowledged_by}."


@ui.post("/problems/<int:problem_id>/merge")
@page_action(_problem_page)
def merge_problem(problem_id: int) -> str:
    into = form_id("into")
    result = merge_problems(
        bridge().store, problem_id, into, request_actor(), form_text("reason", required=False), bridge().now()
    )
    conflict = f" {result.jira_conflict}." if result.jira_conflict else ""
    return f"Problem #{problem_id} merged into problem #{into}: {result.incidents_moved} incidents moved.{conflict}"


@ui.post("/incidents/<int:incident_id>/move")
@page_action(_incident_page)
def move_to_problem(incident_id: int) -> str:
    problem_id = form_id("problem_id")
    previous = move_incident(bridge().store, incident_id, problem_id, request_actor(), bridge().now())
    origin = f" from problem #{previous}" if previous is not None else ""
    return f"Incident #{incident_id} moved{origin} to problem #{problem_id}."


def _maintenance_page() -> str:
    return url_for("ui.maintenance")


def form_labels(name: str) -> dict[str, str]:
    """`service=db, env=prod` (commas or lines) as labels.

    Raises:
        BadPayload: an entry without `=`, or without a label name.
    """
    labels = {}
    for entry in re.split(r"[,\n]", form_text(name, required=False) or ""):
        if not entry.strip():
            continue
        key, equals, value = entry.partition("=")
        if not equals or not key.strip():
            raise BadPayload(f"invalid {name}", [f"{name}: write label=value, separated by commas ({entry.strip()!r})"])
        labels[key.strip()] = value.strip()
    return labels


def _utc(moment: datetime) -> datetime:
    """A time typed on the page: UTC unless it names its offset."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


@ui.post("/maintenance")
@page_action(_maintenance_page)
def make_maintenance() -> str:
    ctx = bridge()
    now = ctx.now()
    starts = form_text("starts_at", required=False, max_length=40)
    try:
        lasting = parse_duration(form_text("duration", max_length=20) or "")
        starts_at = _utc(datetime.fromisoformat(starts)) if starts else now
    except ValueError as exc:
        raise BadPayload("invalid maintenance window", [f"duration or starts_at: {exc}"]) from exc
    wanted = {
        "name": form_text("name", max_length=200),
        "reason": form_text("reason"),
        "starts_at": starts_at,
        "ends_at": starts_at + lasting,
        "match": {"source": request.form.get("source") or None, "labels": form_labels("labels")},
    }
    try:
        body = MaintenanceRequest.model_validate(wanted)
    except ValidationError as exc:
        raise BadPayload("invalid maintenance window", describe(exc)) from exc
    made = make_window(
        ctx.store, **body.model_dump(), now=now, longest=ctx.settings.maintenance_max, actor=request_actor()
    )
    return f"Maintenance window #{made['id']} {made['name']!r} made: it holds what opens under it until {made['ends_at']:%Y-%m-%d %H:%M} UTC."


@ui.post("/maintenance/<int:window_id>/end")
@page_action(lambda window_id: _maintenance_page())
def end_maintenance(window_id: int) -> str:
    released = end_window(bridge().store, bridge().rules, window_id, bridge().now(), request_actor())
    return (
        f"Maintenance window #{window_id} ended: {released.ordinary} incident(s) still firing handled from now, "
        f"{released.closed} resolved closed quietly."
    )


__all__ = ["page_action", "ui"]
