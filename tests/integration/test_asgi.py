"""The ASGI front (Granian's interface): plain alerts webhooks on the event loop, everything else Flask.

Both paths must be one webhook to a sender: the same answer, the same refusals kept, the
same metrics. Run on SQLite and PostgreSQL; the requests go through a real a2wsgi bridge
to Flask, as under `serve`.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, MutableMapping
from pathlib import Path
from typing import Any

import orjson
import pytest
import sqlalchemy as sa
from prometheus_client import REGISTRY

from bridge.app import create_app
from bridge.asgi import BridgeASGI, FlaskOverASGI
from bridge.config import load_settings
from bridge.errors import StoreFull, StoreUnavailable
from bridge.storage.outages import FULL_MESSAGE
from bridge.web.context import EXTENSION
from bridge.web.throttle import ALLOWANCE
from bridge.web.throttle import EXTENSION as THROTTLE
from tests.conftest import ROOT, payload, payload_bytes

TOKEN = "am-token"
PLAIN = {"Content-Type": "application/json", "Authorization": f"Bearer {TOKEN}"}
ALERTS = "/api/v1/alerts/alertmanager"


class Answer:
    def __init__(self, status: int, headers: dict[str, str], body: bytes) -> None:
        self.status, self.headers, self.body = status, headers, body

    def json(self) -> Any:
        return orjson.loads(self.body)


class Recording:
    """The fallback (Flask through a2wsgi), counting what it was handed."""

    def __init__(self, inner: Callable[..., Awaitable[None]]) -> None:
        self.inner = inner
        self.paths: list[str] = []

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        self.paths.append(scope["path"])
        await self.inner(scope, receive, send)


def call(
    app: BridgeASGI,
    path: str,
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    method: str = "POST",
    query: bytes = b"",
    chunked: bool = False,
) -> Answer:
    """One request through the ASGI app, as Granian hands it over (the body in two pieces when chunked)."""
    given = {k.lower(): v for k, v in (headers or {}).items()}
    if chunked:
        given["transfer-encoding"] = "chunked"
    elif body:
        given.setdefault("content-length", str(len(body)))
    scope = {
        "type": "http",
        "method": method,
        "path": path,
        "raw_path": path.encode(),
        "query_string": query,
        "headers": [(k.encode(), v.encode()) for k, v in given.items()],
        "http_version": "1.1",
        "scheme": "http",
        "server": ("127.0.0.1", 8000),
        "client": ("127.0.0.1", 40000),
        "root_path": "",
    }
    pieces = [body[: len(body) // 2], body[len(body) // 2 :]] if chunked else [body]
    messages = [
        {"type": "http.request", "body": piece, "more_body": i < len(pieces) - 1} for i, piece in enumerate(pieces)
    ]
    sent: list[MutableMapping[str, Any]] = []

    async def receive() -> dict[str, Any]:
        if messages:
            return messages.pop(0)
        await asyncio.sleep(3600)
        return {"type": "http.disconnect"}

    async def send(message: MutableMapping[str, Any]) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 30))
    start = next(m for m in sent if m["type"] == "http.response.start")
    headers_out = {k.decode().lower(): v.decode() for k, v in start["headers"]}
    body_out = b"".join(m.get("body", b"") for m in sent if m["type"] == "http.response.body")
    return Answer(start["status"], headers_out, body_out)


@pytest.fixture
def front(database_url: str, tmp_path: Path):
    settings = load_settings(
        {"BRIDGE_TOKEN_ALERTMANAGER": TOKEN, "BRIDGE_MAX_BODY_BYTES": "200000"},
        database_url=database_url,
        rules_path=str(ROOT / "rules.yaml"),
    )
    app = create_app(settings)
    fallback = Recording(FlaskOverASGI(app, threads=2))
    yield BridgeASGI(app.extensions[EXTENSION], fallback, app.extensions[THROTTLE]), fallback, app
    app.extensions[EXTENSION].store.engine.dispose()


def counter(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def test_a_plain_webhook_is_served_on_the_loop_committed_answered_and_counted(front):
    app, fallback, flask_app = front
    before = counter("bridge_notifications_received_total", source="alertmanager", outcome="accepted")

    answer = call(app, ALERTS, payload_bytes("alertmanager-0.25-two-firing.json"), {**PLAIN, "X-Request-ID": "req-1"})

    assert fallback.paths == []
    assert answer.status == 200
    body = answer.json()
    assert {k: v for k, v in body.items() if k not in ("notification_id", "incidents")} == {
        "status": "ok",
        "alerts": 2,
        "outcomes": {"created": 2},
        "rejected": [],
        "truncated_alerts": 0,
    }
    assert answer.headers["x-request-id"] == "req-1"
    assert answer.headers["content-type"] == "application/json"
    assert answer.headers["x-content-type-options"] == "nosniff"
    assert "frame-ancestors 'none'" in answer.headers["content-security-policy"]
    store = flask_app.extensions[EXTENSION].store
    with store.engine.connect() as conn:
        ids = sorted(conn.execute(sa.text("SELECT id FROM incidents")).scalars())
        kept = conn.execute(sa.text("SELECT count(*) FROM notifications")).scalar()
    assert sorted(body["incidents"]) == ids and len(ids) == 2 and kept == 1
    assert counter("bridge_notifications_received_total", source="alertmanager", outcome="accepted") == before + 1

    again = call(app, ALERTS, payload_bytes("alertmanager-0.25-two-firing.json"), PLAIN)
    assert again.json()["outcomes"] == {"repeated": 2}
    assert again.json()["incidents"] == body["incidents"]


def test_a_refusal_on_the_loop_is_the_one_flask_gives_kept_once_and_counted_once(front):
    app, fallback, flask_app = front
    broken = orjson.dumps({**payload("alertmanager-0.25-two-firing.json"), "alerts": "none"})
    before = counter("bridge_notifications_received_total", source="alertmanager", outcome="rejected")

    on_loop = call(app, ALERTS, broken, PLAIN)
    by_flask = flask_app.test_client().post(ALERTS, data=broken, headers=PLAIN)

    assert fallback.paths == []
    assert on_loop.status == by_flask.status_code == 400
    assert {**on_loop.json(), "request_id": None} == {**by_flask.get_json(), "request_id": None}
    assert on_loop.json()["request_id"] == on_loop.headers["x-request-id"]
    assert counter("bridge_notifications_received_total", source="alertmanager", outcome="rejected") == before + 2
    store = flask_app.extensions[EXTENSION].store
    with store.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM rejected_payloads")).scalar() == 2


@pytest.mark.parametrize(
    ("case", "request_args", "status"),
    [
        ("no token", {"headers": {"Content-Type": "application/json"}}, 401),
        ("wrong token", {"headers": {**PLAIN, "Authorization": "Bearer nope"}}, 401),
        ("not JSON", {"headers": {**PLAIN, "Content-Type": "text/plain"}}, 415),
        ("a query string", {"query": b"x=1"}, 200),
        ("chunked", {"chunked": True}, 200),
        ("the events endpoint", {"path": "/api/v1/alerts/events"}, 400),
        ("an unknown sender", {"path": "/api/v1/alerts/nagios"}, 404),
        ("GET", {"method": "GET"}, 405),
        ("another site's page", {"headers": {**PLAIN, "Origin": "https://attacker.example"}}, 403),
        ("a browser's cross-site fetch", {"headers": {**PLAIN, "Sec-Fetch-Site": "cross-site"}}, 403),
    ],
)
def test_what_is_not_plain_goes_to_flask_which_answers_it(front, case: str, request_args: dict[str, Any], status: int):
    app, fallback, _ = front
    args = {"headers": PLAIN, **request_args}
    path = args.pop("path", ALERTS)
    answer = call(app, path, payload_bytes("alertmanager-0.25-two-firing.json"), **args)
    assert fallback.paths == [path], case
    assert answer.status == status, answer.body


def test_while_an_address_waits_for_its_failures_flask_answers_the_webhooks(front):
    app, fallback, flask_app = front
    for _ in range(ALLOWANCE):
        assert call(app, ALERTS, b"{}", {**PLAIN, "Authorization": "Bearer guess"}).status == 401
    answer = call(app, ALERTS, payload_bytes("alertmanager-0.25-two-firing.json"), PLAIN)
    assert (fallback.paths[-1], answer.status) == (ALERTS, 429), "the right token waits too"
    assert answer.headers["retry-after"] == "60"


def test_a_body_past_the_limit_goes_to_flask_and_is_refused_413(front):
    app, fallback, _ = front
    huge = b'{"alerts": [' + b"0," * 120_000 + b"0]}"
    answer = call(app, ALERTS, huge, PLAIN)
    assert (fallback.paths, answer.status) == ([ALERTS], 413)


def test_an_unavailable_database_is_a_503_on_the_loop(front):
    app, _, flask_app = front
    deliveries = flask_app.extensions[EXTENSION].deliveries

    def unavailable(items: Any) -> list[Any]:
        raise StoreUnavailable("database unavailable; retry later")

    deliveries._write = unavailable
    answer = call(app, ALERTS, payload_bytes("alertmanager-0.25-two-firing.json"), PLAIN)
    assert answer.status == 503
    assert answer.json()["message"] == "database unavailable; retry later"


def test_a_full_database_is_named_on_the_loop_as_by_flask(front):
    """The loop's answer to a full database is Flask's: its own `error`, the message, Retry-After."""
    app, _, flask_app = front
    deliveries = flask_app.extensions[EXTENSION].deliveries

    def full(items: Any) -> list[Any]:
        raise StoreFull(FULL_MESSAGE)

    deliveries._write = full
    answer = call(app, ALERTS, payload_bytes("alertmanager-0.25-two-firing.json"), PLAIN)
    by_flask = flask_app.test_client().post(
        ALERTS, data=payload_bytes("alertmanager-0.25-two-firing.json"), headers=PLAIN
    )
    assert (answer.status, by_flask.status_code) == (503, 503)
    assert answer.json()["error"] == by_flask.json["error"] == "storage_full"
    assert answer.json()["message"] == by_flask.json["message"] == FULL_MESSAGE
    assert answer.headers["retry-after"] == by_flask.headers["Retry-After"] == "30"


def test_the_bench_no_op_is_on_the_loop_only_when_enabled(database_url: str):
    body = b'{"alerts": [{}, {}, {}]}'
    for enabled in ("0", "1"):
        settings = load_settings(
            {"BRIDGE_BENCH_NOOP_ENDPOINT": enabled}, database_url=database_url, rules_path=str(ROOT / "rules.yaml")
        )
        flask_app = create_app(settings)
        fallback = Recording(FlaskOverASGI(flask_app, threads=1))
        app = BridgeASGI(flask_app.extensions[EXTENSION], fallback, flask_app.extensions[THROTTLE])
        answer = call(app, "/bench/noop", body, {"Content-Type": "application/json"})
        if enabled == "1":
            assert (answer.status, answer.json(), fallback.paths) == (200, {"status": "ok", "alerts": 3}, [])
        else:
            assert (answer.status, fallback.paths) == (404, ["/bench/noop"])
        flask_app.extensions[EXTENSION].store.engine.dispose()


def test_a_length_in_other_digits_goes_to_flask_and_is_no_crash(front):
    """str.isdigit() says yes to "²", int() refuses it: the loop must leave it to Flask (which reads to the end)."""
    app, fallback, _ = front
    answer = call(
        app, ALERTS, payload_bytes("alertmanager-0.25-two-firing.json"), {**PLAIN, "Content-Length": "\u00b2"}
    )
    assert fallback.paths == [ALERTS]
    assert answer.status == 200, answer.body
