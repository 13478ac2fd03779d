"""Read-only pages for the third line under /ui/: what is burning, how close to its SLA, which Jira issue it waits for.

Server-rendered (Jinja2, autoescaped), no build chain; a few lines of plain JavaScript
count SLA time down and refresh the overview. Behind the read token: a login form sets
it as an HttpOnly cookie.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from flask import Blueprint, Response, redirect, render_template, request, url_for

from bridge.app import bridge
from bridge.domain import IncidentState, ProblemState
from bridge.storage import IncidentFilter

ui = Blueprint("ui", __name__, template_folder="ui_templates", url_prefix="/ui")
COOKIE = "bridge_token"
PAGE_SIZE = 50


def _authorised() -> bool:
    expected = bridge().settings.token_api
    if expected is None:
        return True
    given = request.cookies.get(COOKIE, "")
    return bool(given) and expected.matches(given)


@ui.before_request
def _require_token():  # type: ignore[no-untyped-def]
    if request.endpoint not in ("ui.login", "ui.static_files") and not _authorised():
        return redirect(url_for("ui.login", next=request.full_path))
    return None


@ui.app_template_filter("when")
def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


@ui.app_template_filter("iso")
def _iso(value: datetime | None) -> str:
    return value.isoformat().replace("+00:00", "Z") if value else ""


def _page(limit: int = PAGE_SIZE) -> tuple[int, int | None]:
    raw = request.args.get("cursor") or None
    return limit, int(raw) if raw and raw.isdigit() else None


def _choice(name: str, allowed: tuple[str, ...]) -> str | None:
    value = request.args.get(name) or None
    return value if value in allowed else None


@ui.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    error = None
    target = request.values.get("next") or url_for("ui.overview")
    if not target.startswith("/ui/"):
        target = url_for("ui.overview")
    if request.method == "POST":
        expected = bridge().settings.token_api
        given = request.form.get("token", "")
        if expected is None or expected.matches(given):
            response = redirect(target)
            response.set_cookie(COOKIE, given, httponly=True, samesite="Strict", secure=request.is_secure,
                                max_age=12 * 3600)
            return response
        error = "That token is not the read token (BRIDGE_TOKEN_API)."
    return render_template("login.html", error=error, next=target), 401 if error else 200


@ui.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    response = redirect(url_for("ui.login"))
    response.delete_cookie(COOKIE)
    return response


@ui.get("/")
def overview():  # type: ignore[no-untyped-def]
    store = bridge().store
    releases = store.list_releases(5, None).items
    return render_template("overview.html", counts=store.overview_counts(), nearest=store.nearest_sla(10),
                           releases=releases, now=bridge().now())


@ui.get("/problems")
def problems():  # type: ignore[no-untyped-def]
    limit, cursor = _page()
    state = _choice("state", tuple(s.value for s in ProblemState))
    page = bridge().store.list_problems(state, request.args.get("jira_key") or None, limit, cursor)
    return render_template("problems.html", page=page, state=state, states=[s.value for s in ProblemState])


@ui.get("/problems/<int:problem_id>")
def problem(problem_id: int):  # type: ignore[no-untyped-def]
    store = bridge().store
    found = store.get_problem(problem_id)
    if found is None:
        return render_template("missing.html", what=f"problem {problem_id}"), 404
    incidents = store.list_incidents(IncidentFilter(problem_id=problem_id), 500, None).items
    return render_template("problem.html", problem=found, incidents=incidents,
                           history=store.problem_history(problem_id), now=bridge().now())


@ui.get("/incidents")
def incidents():  # type: ignore[no-untyped-def]
    limit, cursor = _page()
    filters = IncidentFilter(state=_choice("state", tuple(s.value for s in IncidentState)),
                             source=_choice("source", ("alertmanager", "zabbix")),
                             priority=request.args.get("priority") or None)
    page = bridge().store.list_incidents(filters, limit, cursor)
    return render_template("incidents.html", page=page, filters=filters, states=[s.value for s in IncidentState],
                           priorities=sorted(set(bridge().rules.priority_matrix.values())), now=bridge().now())


@ui.get("/rejected")
def rejected():  # type: ignore[no-untyped-def]
    limit, cursor = _page()
    page = bridge().store.list_rejected(limit, cursor)
    return render_template("rejected.html", page=page)


@ui.get("/rejected/<int:rejected_id>")
def rejected_item(rejected_id: int):  # type: ignore[no-untyped-def]
    """One refused payload with its body: the list page carries none (each can be 1 MB)."""
    found = bridge().store.get_rejected(rejected_id)
    if found is None:
        return render_template("missing.html", what=f"rejected payload {rejected_id}"), 404
    return render_template("rejected_item.html", r=found)


@ui.get("/static/ui.js")
def static_files() -> Response:
    """The countdown and auto-refresh script (kept here: no static build step)."""
    return Response(render_template("ui.js"), content_type="text/javascript; charset=utf-8")


def sla_label(due: datetime | None, now: datetime) -> dict[str, Any]:
    """Text a page shows before JavaScript takes over the countdown."""
    if due is None:
        return {"text": "paused", "breached": False}
    seconds = int((due - now).total_seconds())
    sign = "" if seconds >= 0 else "breached "
    seconds = abs(seconds)
    hours, rest = divmod(seconds, 3600)
    text = f"{sign}{hours}h {rest // 60:02d}m"
    return {"text": text + (" ago" if sign else ""), "breached": bool(sign)}


ui.add_app_template_global(sla_label, "sla_label")
