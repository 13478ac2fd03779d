"""Pages for the third line under /ui/: what is burning, how close to its SLA, which Jira issue it waits for.

Server-rendered (Jinja2, autoescaped), no build chain; a few lines of plain JavaScript
(a served file: the Content-Security-Policy allows no inline script) count SLA time down
and refresh the overview. Behind the read token: signing in with it starts a session, a row
in the database named by a signed cookie that never holds the token itself; it ends when
signed out (on every replica at once) or BRIDGE_SESSION_LIFETIME after signing in, whatever
the activity. Signing in with the operate token (and a name) lets the person act through
the forms of bridge/pages/actions.py.
"""

from __future__ import annotations

import hashlib
import hmac
import logging
import re
import secrets
from datetime import datetime, timedelta
from typing import Any, cast

from flask import Blueprint, Flask, flash, g, redirect, render_template, request, session, url_for
from flask.blueprints import BlueprintSetupState
from flask.sessions import SecureCookieSessionInterface

from adapters import SOURCES
from bridge.config import Secret
from bridge.domain.heartbeats import HEARTBEAT_SOURCE
from bridge.domain.incidents import IncidentState
from bridge.domain.problems import ProblemState
from bridge.domain.reports import Period, month_period
from bridge.domain.windows import WindowState
from bridge.errors import BadPayload, NotFound
from bridge.problems.release_health import release_health
from bridge.reports.charts import report_charts
from bridge.reports.service import service_report
from bridge.shapes import iso, ticket_sync_shape
from bridge.storage.read_models import IncidentFilter
from bridge.watch.heartbeats import heartbeat_views
from bridge.watch.windows import window_json
from bridge.web.actors import SESSION_ACTOR, checked_name, proxy_user
from bridge.web.answers import incidents_csv_answer, report_asked, service_csv_answer
from bridge.web.context import EXTENSION, bridge
from bridge.web.cursors import EMBEDDED, decode_cursor, encode_cursor
from bridge.web.edge import choice_arg, group_token, page_args
from bridge.web.throttle import count_failure, refuse_if_throttled

log = logging.getLogger(__name__)
ui = Blueprint(
    "ui",
    __name__,
    template_folder="templates",
    static_folder="static",
    static_url_path="/static",
    url_prefix="/ui",
)
OPEN_ENDPOINTS = ("ui.login", "ui.logout", "ui.static")
# The cookie's key naming the session's row (bridge/storage/session_repository.py).
SESSION_ID = "sid"
_LOCAL_TARGET = re.compile(r"/ui/[!-~]*")  # a page of ours, printable ASCII only: no open redirect, no odd header


def session_key(*tokens: Secret | None, fallback: str = "") -> bytes:
    """The session signing key, derived from the read and operate tokens: every replica agrees, and
    rotating either token ends every session (the old signatures no longer verify). With neither set
    (pages and actions open) the key comes from `fallback` (the database URL), only to sign forms."""
    secret = "\n".join(token.value for token in tokens if token is not None) or fallback
    return hmac.new(secret.encode(), b"incident-bridge /ui/ session", hashlib.sha256).digest()


class _SessionInterface(SecureCookieSessionInterface):
    """Flask's signed cookie, marked Secure whenever the request came over HTTPS.

    Behind a TLS-terminating proxy the scheme is https only when the proxy is one of
    BRIDGE_TRUSTED_PROXIES (app.py honours X-Forwarded-Proto from those peers alone).
    """

    def get_cookie_secure(self, app: Flask) -> bool:
        return request.is_secure


@ui.record_once
def _configure_sessions(state: BlueprintSetupState) -> None:
    settings = state.app.extensions[EXTENSION].settings
    app = cast(Flask, state.app)
    app.session_interface = _SessionInterface()
    app.secret_key = session_key(settings.token("api"), settings.token("operate"), fallback=settings.database_url)
    app.config.update(
        SESSION_COOKIE_NAME="bridge_session",
        SESSION_COOKIE_PATH="/ui/",
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Strict",
        # The browser forgets the cookie by then; the session's row is what ends it, at its expiry.
        PERMANENT_SESSION_LIFETIME=settings.session_lifetime,
        SESSION_REFRESH_EACH_REQUEST=False,
    )


def _sessions_required() -> bool:
    return group_token("api") is not None


def _live_session() -> dict[str, Any] | None:
    """The row of the session the cookie names, read afresh on every request (no replica caches it,
    so signing out on one ends it on all); a cookie whose session has ended is emptied."""
    session_id = session.get(SESSION_ID)
    if not isinstance(session_id, str):
        return None
    ctx = bridge()
    row = ctx.store.live_session(session_id, ctx.now())
    if row is None:
        session.clear()
    return row


def current_session() -> dict[str, Any] | None:
    """This request's live session (looked up once per request, before any view)."""
    return cast(dict[str, Any] | None, g.get("ui_session"))


def _signed_in() -> bool:
    return not _sessions_required() or current_session() is not None


@ui.before_request
def _require_session():  # type: ignore[no-untyped-def]
    # SameSite=Strict keeps the cookie off cross-site posts; the app refuses them outright too
    # (bridge.web.edge.refuse_cross_site), so a page elsewhere cannot sign the browser in or out.
    g.ui_session = _live_session() if request.endpoint != "ui.static" else None
    if request.endpoint not in OPEN_ENDPOINTS and not _signed_in():
        return redirect(url_for("ui.login", next=request.full_path))
    return None


def may_act() -> bool:
    """Whether this page's visitor may act: signed in with the operate token, or acting is left open."""
    live = current_session()
    return group_token("operate") is None or (live is not None and live["operate"] is True)


def csrf_token() -> str:
    """The session's form token: every action form carries it, and a post without it is refused."""
    token = session.get("csrf")
    if not isinstance(token, str):
        token = session["csrf"] = secrets.token_urlsafe(32)
    return token


def form_token_matches() -> bool:
    """Whether the posted form carries this session's form token."""
    expected, given = session.get("csrf"), request.form.get("csrf_token", "")
    return isinstance(expected, str) and hmac.compare_digest(expected.encode(), given.encode())


@ui.context_processor
def _session_state() -> dict[str, Any]:
    try:
        from_proxy = proxy_user()
    except BadPayload:  # an unusable name from the proxy: an action would say so; the page still shows
        from_proxy = None
    return {
        "signed_in": current_session() is not None,
        "may_act": may_act(),
        "actor": from_proxy or session.get(SESSION_ACTOR),
    }


@ui.app_template_filter("when")
def _when(value: datetime | None) -> str:
    return value.strftime("%Y-%m-%d %H:%M UTC") if value else "—"


@ui.app_template_filter("duration")
def _duration(seconds: float | None) -> str:
    """Working seconds as people read them: 45 min, 3 h 20 min, 2 d 4 h."""
    if seconds is None:
        return "—"
    minutes = round(seconds / 60)
    if minutes < 60:
        return f"{minutes} min"
    hours, minutes = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} h {minutes:02d} min"
    days, hours = divmod(hours, 24)
    return f"{days} d {hours} h"


@ui.app_template_filter("percent")
def _percent(fraction: float | None) -> str:
    return "—" if fraction is None else f"{fraction * 100:.1f}%"


@ui.app_template_filter("iso")
def _iso(value: datetime | None) -> str:
    return iso(value) or ""


@ui.errorhandler(BadPayload)
def _bad_request(exc: BadPayload):  # type: ignore[no-untyped-def]
    """The API's argument checks refuse; a page says so in HTML."""
    return render_template("bad_request.html", error=exc), exc.status


@ui.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    """Sign in with the read token (to look) or the operate token (to act, with a name)."""
    error = None
    target = request.values.get("next") or ""
    if not _LOCAL_TARGET.fullmatch(target):
        target = url_for("ui.overview")
    read, operate = group_token("api"), group_token("operate")
    if read is None and operate is None:
        return redirect(target)
    from_proxy = proxy_user()
    if request.method == "POST":
        refuse_if_throttled("ui")
        given = request.form.get("token", "")
        acting = operate is not None and operate.matches(given)
        name = from_proxy or request.form.get("name", "").strip()
        if not acting and not (read is not None and read.matches(given)):
            count_failure("ui")
            error = "That token is not the read token (BRIDGE_TOKEN_API) or the operate token (BRIDGE_TOKEN_OPERATE)."
        elif acting and not name:
            error = "Give your name with the operate token: every action is recorded with it."
        else:
            try:
                name = checked_name(name, "name") if name else ""
            except BadPayload as exc:
                error = f"That name cannot be recorded: {'; '.join(exc.errors)}."
        if error is None:
            _begin_session(name or None, acting)
            return redirect(target)
    return render_template("login.html", error=error, next=target, proxy_user=from_proxy), 401 if error else 200


def _begin_session(name: str | None, acting: bool) -> None:
    """A new session's row, and the cookie naming it. The browser's earlier session ends: nothing of it
    carries over, and a copy of its cookie is refused too."""
    ctx = bridge()
    now, session_id = ctx.now(), secrets.token_urlsafe(32)
    if current_session() is not None:
        ctx.store.end_session(session[SESSION_ID], now)
    ctx.store.start_session(session_id, name, acting, now, now + ctx.settings.session_lifetime)
    session.clear()
    session.permanent = True
    session.update({SESSION_ID: session_id, "csrf": secrets.token_urlsafe(32)})
    if name:
        session[SESSION_ACTOR] = name
    log.info("signed in to the pages", extra={"actor": name, "operate": acting})


@ui.post("/logout")
def logout():  # type: ignore[no-untyped-def]
    """End the session: its row, so a copy of the cookie is refused too, and the cookie itself
    (emptied and expired: Flask deletes it once the session is empty)."""
    live = current_session()
    if live is not None:
        bridge().store.end_session(session[SESSION_ID], bridge().now())
        log.info("signed out of the pages", extra={"actor": live["actor"]})
    session.clear()
    return redirect(url_for("ui.login"))


@ui.post("/logout/everywhere")
def logout_everywhere():  # type: ignore[no-untyped-def]
    """End every session of the signed-in person, in every browser (a cookie left on another
    machine, or copied): a form action, so it takes the form token like every other."""
    live = current_session()
    if live is None or not live["actor"] or not may_act():
        return render_template("refused.html", message="Signing out everywhere needs a sign-in with your name."), 403
    if not form_token_matches():
        return render_template("refused.html", message="This form has expired: reload the page and try again."), 400
    ended = bridge().store.end_sessions_of(live["actor"], bridge().now())
    log.info("signed out of the pages everywhere", extra={"actor": live["actor"], "sessions": ended})
    session.clear()
    flash(f"Signed out everywhere: {ended} session(s) of {live['actor']} ended.", "done")
    return redirect(url_for("ui.login"))


@ui.get("/")
def overview():  # type: ignore[no-untyped-def]
    ctx = bridge()
    store, now = ctx.store, ctx.now()
    releases = store.list_releases(5, None).items
    states = {state["system"]: state for state in store.sync_states()}
    syncs = [
        ticket_sync_shape(system, states.get(name))
        for name, system in sorted(ctx.rules.ticket_systems.items())
        if system.sync is not None
    ]
    senders = [name for name in SOURCES if name != HEARTBEAT_SOURCE]
    return render_template(
        "overview.html",
        counts=store.overview_counts(),
        nearest=store.nearest_sla(10),
        awaiting=store.nearest_response(10),
        releases=releases,
        syncs=syncs,
        senders=store.read_sources_last_heard(senders),
        heartbeats=heartbeat_views(store, ctx.rules),
        windows=store.list_windows(WindowState.ACTIVE, now, 20, None).items,
        now=now,
    )


@ui.get("/maintenance")
def maintenance():  # type: ignore[no-untyped-def]
    """Maintenance windows in force, coming and past, with the forms that make and end them."""
    limit, cursor = page_args()
    ctx = bridge()
    now = ctx.now()
    page = ctx.store.list_windows(choice_arg("state", WindowState), now, limit, cursor)
    counts = ctx.store.held_counts([row["id"] for row in page.items])
    windows = [
        {
            **window_json(row, now, counts.get(row["id"], (0, 0))),
            "from": row["starts_at"],
            "until": row["ended_at"] or row["ends_at"],
        }
        for row in page.items
    ]
    return render_template("maintenance.html", page=page, windows=windows, sources=list(SOURCES), now=now)


@ui.get("/problems")
def problems():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    state = choice_arg("state", ProblemState)
    page = bridge().store.list_problems(state, request.args.get("jira_key") or None, limit, cursor)
    return render_template("problems.html", page=page, state=state, states=[s.value for s in ProblemState])


@ui.get("/problems/<int:problem_id>")
def problem(problem_id: int):  # type: ignore[no-untyped-def]
    store = bridge().store
    found = store.get_problem(problem_id)
    if found is None:
        return render_template("missing.html", what=f"problem {problem_id}"), 404
    incidents = store.list_incidents(IncidentFilter(problem_id=problem_id), 500, None).items
    history_from, tickets_from = (request.args.get(name) for name in ("history_cursor", "tickets_cursor"))
    history = store.history_page(
        problem_id, EMBEDDED, decode_cursor(history_from, "history_cursor", 2) if history_from else None
    )
    tickets = store.ticket_page(
        problem_id, EMBEDDED, decode_cursor(tickets_from, "tickets_cursor", 3) if tickets_from else None
    )
    return render_template(
        "problem.html",
        problem=found,
        incidents=incidents,
        history=history.items[::-1],
        older_history=encode_cursor(history.next_key),
        tickets=tickets.items[::-1],
        older_tickets=encode_cursor(tickets.next_key),
        now=bridge().now(),
        jira_target=_jira_target(found["rule"]),
    )


@ui.get("/incidents")
def incidents():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    filters = IncidentFilter(
        state=choice_arg("state", IncidentState),
        source=choice_arg("source", SOURCES),
        priority=request.args.get("priority") or None,
    )
    page = bridge().store.list_incidents(filters, limit, cursor)
    return render_template(
        "incidents.html",
        page=page,
        filters=filters,
        states=[s.value for s in IncidentState],
        sources=list(SOURCES),
        priorities=sorted(set(bridge().rules.priority_matrix.values())),
        now=bridge().now(),
    )


@ui.get("/incidents/<int:incident_id>")
def incident(incident_id: int):  # type: ignore[no-untyped-def]
    found = bridge().store.get_incident(incident_id)
    if found is None:
        return render_template("missing.html", what=f"incident {incident_id}"), 404
    return render_template(
        "incident.html", incident=found, history=bridge().store.incident_history(incident_id), now=bridge().now()
    )


@ui.get("/releases/<project>/<path:version>")
def release(project: str, version: str):  # type: ignore[no-untyped-def]
    """What a release closed and what came after it."""
    ctx = bridge()
    try:
        health = release_health(ctx.store, project, version, ctx.settings.release_watch, ctx.now())
    except NotFound:
        return render_template("missing.html", what=f"release {version} of {project}"), 404
    return render_template("release.html", health=health)


@ui.get("/rejected")
def rejected():  # type: ignore[no-untyped-def]
    limit, cursor = page_args()
    page = bridge().store.list_rejected(limit, cursor)
    return render_template("rejected.html", page=page)


@ui.get("/rejected/<int:rejected_id>")
def rejected_item(rejected_id: int):  # type: ignore[no-untyped-def]
    """One refused payload with its body: the list page carries none (each can be 1 MB)."""
    found = bridge().store.get_rejected(rejected_id)
    if found is None:
        return render_template("missing.html", what=f"rejected payload {rejected_id}"), 404
    return render_template("rejected_item.html", r=found)


@ui.get("/reports")
def reports():  # type: ignore[no-untyped-def]
    """The service report of a month (the last full one by default) for a meeting: charts, tables, print."""
    period, project = report_asked()
    ctx = bridge()
    report = service_report(ctx.store, ctx.rules, period, ctx.now(), project)
    neighbours = _neighbour_months(period)
    return render_template(
        "reports.html",
        report=report,
        charts=report_charts(report),
        title=period_title(period),
        month=period.first_day.strftime("%Y-%m"),
        neighbours=neighbours,
        links=_report_links(period, neighbours, project),
        project=project,
    )


@ui.get("/reports/service.csv")
def report_service_csv():  # type: ignore[no-untyped-def]
    return service_csv_answer()


@ui.get("/reports/incidents.csv")
def report_incidents_csv():  # type: ignore[no-untyped-def]
    return incidents_csv_answer()


def period_title(period: Period) -> str:
    """How a page names a period: "October 2026" for a month, else its first and last day."""
    first, last = period.first_day, period.last_day
    if period.is_whole_months and (first.year, first.month) == (last.year, last.month):
        return period.first_day.strftime("%B %Y")
    return f"{period.first_day.isoformat()} to {period.last_day.isoformat()}"


def _neighbour_months(period: Period) -> dict[str, str]:
    """The months before and after the period's first month, as YYYY-MM for the picker's links."""
    before = period.first_day - timedelta(days=1)
    after = month_period(period.first_day.year, period.first_day.month, period.zone).last_day + timedelta(days=1)
    return {"previous": before.strftime("%Y-%m"), "next": after.strftime("%Y-%m")}


def _report_links(period: Period, neighbours: dict[str, str], project: str | None) -> dict[str, str]:
    """The report page's links: the months either side, and the period's CSV downloads."""
    scope: dict[str, Any] = {"project": project} if project else {}
    days: dict[str, Any] = {"from": period.first_day.isoformat(), "to": period.last_day.isoformat(), **scope}
    return {
        "previous": url_for("ui.reports", month=neighbours["previous"], **scope),
        "next": url_for("ui.reports", month=neighbours["next"], **scope),
        "service_csv": url_for("ui.report_service_csv", **days),
        "incidents_csv": url_for("ui.report_incidents_csv", **days),
    }


def _jira_target(rule_name: str) -> Any:
    """The Jira target of a problem's rule (None: no project to file an issue in)."""
    return next((rule.jira for rule in bridge().rules.problem_rules if rule.name == rule_name), None)


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
ui.add_app_template_global(csrf_token, "csrf_token")  # a global: the macros (imported without context) use it
# Pages compare states through the enums, as the code does.
ui.add_app_template_global(IncidentState, "IncidentState")
ui.add_app_template_global(ProblemState, "ProblemState")
