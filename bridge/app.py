"""Application factory: wires settings, rules, store and the HTTP blueprints together."""

from __future__ import annotations

import functools
import gc
import ipaddress
import logging
import re
import time
import uuid
from collections.abc import Callable
from datetime import datetime
from typing import Any

import orjson
from flask import Flask, g, jsonify, request
from werkzeug.exceptions import HTTPException
from werkzeug.middleware.proxy_fix import ProxyFix

from bridge import metrics
from bridge.api.deploys import deploys
from bridge.api.heartbeats import heartbeats
from bridge.api.incidents import incidents
from bridge.api.maintenance import maintenance
from bridge.api.operations import operations
from bridge.api.outbox import outbox
from bridge.api.problems import problems
from bridge.api.rejected import rejected
from bridge.api.releases import releases
from bridge.api.reports import reports
from bridge.api.tickets import tickets
from bridge.api.webhooks import webhooks
from bridge.config import Network, Settings, load_settings
from bridge.domain.rules import Rules
from bridge.errors import BadPayload, BridgeError, SenderShapedError
from bridge.ingest.deliveries import write_deliveries
from bridge.ingest.group_commit import GroupCommit
from bridge.jira import budget as jira_budget
from bridge.pages.actions import ui  # the pages, with their action forms
from bridge.rules.load import load_rules
from bridge.shapes import error_shape
from bridge.storage.store import Store
from bridge.web.actors import TRUSTED_PEER
from bridge.web.context import EXTENSION, Bridge, utc_now
from bridge.web.edge import refuse_cross_site, refuse_foreign_host
from bridge.web.throttle import EXTENSION as THROTTLE
from bridge.web.throttle import AuthThrottle
from jira_link.client import JiraClient
from jira_link.linker import LinkOptions

log = logging.getLogger(__name__)

_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,64}$")
# Pages load only our own script and styles; nothing may frame them (clickjacking).
CONTENT_SECURITY_POLICY = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)


def error_body(status: int, message: str, errors: list[str] | None = None, error: str | None = None) -> dict[str, Any]:
    """The error envelope, for this request."""
    return error_shape(status, message, errors, getattr(g, "request_id", None), error)


def request_id_from(given: str) -> str:
    """The request id to log and echo: the caller's X-Request-ID when it is a sane one, else a new one."""
    return given if _REQUEST_ID.fullmatch(given) else uuid.uuid4().hex


def log_request(method: str, path: str, status: int, started: float, request_id: str | None) -> None:
    """The one line per request (the path only: a query string can carry a secret, the Jira webhook's ?secret=)."""
    if log.isEnabledFor(logging.INFO):  # the line's fields are not built when nobody reads them
        log.info(
            "request",
            extra={
                "method": method,
                "path": path,
                "status": status,
                "duration_ms": round((time.perf_counter() - started) * 1000, 1),
                "request_id": request_id,
            },
        )


class TrustedProxies:
    """WSGI middleware: X-Forwarded-For and -Proto count (werkzeug's ProxyFix) only when the peer
    is one of BRIDGE_TRUSTED_PROXIES; from anyone else they are ignored, so nobody can claim HTTPS."""

    def __init__(self, app: Any, networks: tuple[Network, ...]) -> None:
        self.app = app
        self.networks = networks
        self.fixed = ProxyFix(app, x_for=1, x_proto=1)

    def trusted(self, peer: str | None) -> bool:
        try:
            address = ipaddress.ip_address(peer or "")
        except ValueError:
            return False
        return any(address in network for network in self.networks)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        if self.trusted(environ.get("REMOTE_ADDR")):
            environ[TRUSTED_PEER] = True  # the proxy's user header counts too (bridge.web.actors)
            return self.fixed(environ, start_response)
        return self.app(environ, start_response)


def refuse_unusable_query() -> None:
    """Refuse a NUL anywhere in the query string, for every endpoint at once: PostgreSQL text cannot hold it.

    Raises:
        BadPayload: naming the argument.
    """
    for name, value in request.args.items(multi=True):
        if "\x00" in name or "\x00" in value:
            shown = name.replace("\x00", "\\x00")
            raise BadPayload(f"invalid query parameter {shown}", [f"{shown}: contains a NUL character"])


def _register_error_handlers(app: Flask) -> None:
    @app.errorhandler(BridgeError)
    def _bridge_error(exc: BridgeError):  # type: ignore[no-untyped-def]
        body = error_body(exc.status, exc.message, exc.errors, exc.error)
        if isinstance(exc, SenderShapedError):
            body.update(exc.shape)
        headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else {}
        return jsonify(body), exc.status, headers

    @app.errorhandler(HTTPException)
    def _http_error(exc: HTTPException):  # type: ignore[no-untyped-def]
        status = exc.code or 500
        messages = {
            404: "no such endpoint",
            405: f"method {request.method} not allowed here",
            413: f"request body larger than {app.config['MAX_CONTENT_LENGTH']} bytes",
        }
        return jsonify(error_body(status, messages.get(status, exc.description or exc.name))), status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):  # type: ignore[no-untyped-def]
        log.exception("unhandled error", extra={"request_id": getattr(g, "request_id", None)})
        return jsonify(error_body(500, "internal error; see the bridge log for this request id")), 500


# Allocations between young-generation collections in a serving process (CPython's default is 700).
SERVING_GC_THRESHOLDS = (50_000, 20, 100)


def tune_gc_for_serving() -> None:
    """In an HTTP worker process, once its app is built: fewer, cheaper garbage collections.

    A webhook allocates thousands of short-lived objects; with the default thresholds the
    collector ran every few requests and its full passes walked every object of the app
    (measured under a storm: about 7% of the CPU, and the p99 doubled by the pauses). The
    app's own objects, built once, are frozen out of the collector's walks.
    """
    gc.freeze()
    gc.set_threshold(*SERVING_GC_THRESHOLDS)


def _register_bench_noop(app: Flask) -> None:
    """POST /bench/noop: what a webhook costs the server and Flask without the bridge's work (read the body,
    parse it, answer JSON), the ceiling `make bench` compares the bridge with. Only with BRIDGE_BENCH_NOOP_ENDPOINT=1."""

    @app.post("/bench/noop")
    def bench_noop():  # type: ignore[no-untyped-def]
        payload = orjson.loads(request.get_data())
        return jsonify({"status": "ok", "alerts": len(payload.get("alerts", ()))})


def create_app(
    settings: Settings | None = None,
    *,
    rules: Rules | None = None,
    store: Store | None = None,
    now: Callable[[], datetime] = utc_now,
) -> Flask:
    """Build the WSGI app. Loads and validates rules, so a broken rules file fails here.

    Raises:
        RulesError: the rules file is invalid.
    """
    settings = settings or load_settings()
    rules = rules or load_rules(settings.rules_path)
    store = store or Store.from_url(settings.database_url)
    metrics.initialise(rules)
    app = Flask("bridge")
    app.config["MAX_CONTENT_LENGTH"] = settings.max_body_bytes
    app.json.sort_keys = False  # type: ignore[attr-defined]
    deliveries = GroupCommit(
        functools.partial(write_deliveries, store, rules, rejected_body_limit=settings.rejected_body_limit),
        settings.ingest_batch_max,
    )
    app.extensions[EXTENSION] = Bridge(
        settings,
        rules,
        store,
        deliveries,
        JiraClient.from_settings(settings, metrics.observe_jira, observe_budget=jira_budget.budget_recorder(store)),
        LinkOptions.from_settings(settings),
        now,
    )
    app.extensions[THROTTLE] = AuthThrottle()

    @app.before_request
    def _assign_request_id() -> None:
        g.request_id = request_id_from(request.headers.get("X-Request-ID", ""))
        g.started = time.perf_counter()

    app.before_request(refuse_unusable_query)
    app.before_request(refuse_foreign_host)  # a page that rebinds its own name to a loopback bridge
    app.before_request(refuse_cross_site)  # every acting endpoint, API, webhooks and pages alike

    @app.after_request
    def _echo_request_id(response):  # type: ignore[no-untyped-def]
        response.headers["X-Request-ID"] = g.get("request_id", "")
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.headers["Content-Security-Policy"] = CONTENT_SECURITY_POLICY
        log_request(
            request.method,
            request.path,
            response.status_code,
            g.get("started", time.perf_counter()),
            g.get("request_id"),
        )
        return response

    _register_error_handlers(app)
    if settings.bench_noop_endpoint:
        _register_bench_noop(app)
    blueprints = (
        webhooks,
        incidents,
        problems,
        releases,
        deploys,
        reports,
        outbox,
        rejected,
        tickets,
        heartbeats,
        maintenance,
        operations,
        ui,
    )
    for blueprint in blueprints:
        app.register_blueprint(blueprint)
    if settings.trusted_proxies:
        app.wsgi_app = TrustedProxies(app.wsgi_app, settings.trusted_proxies)  # type: ignore[method-assign]
    return app
