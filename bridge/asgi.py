"""The bridge as an ASGI app (Granian's default interface): alerts webhooks on the event loop, the rest Flask.

Under a storm nearly every request is an alerts webhook. Served by Flask on a thread per
request, each one costs werkzeug's request and answer objects, and a thread woken when
its group commits (a futex wake per request, measured as the largest single cost after
the bridge's own work). Here a well-formed webhook is read on the event loop and queued
to the group commit's writer thread, which parses, routes and writes it with the others
queued, and its answer is sent when the writer settles the whole group with one call
into the loop.

Only the plain case takes this path: a POST to a sender's alerts endpoint with no query
string, a JSON content type, a declared length within BRIDGE_MAX_BODY_BYTES, a valid
token while no client address waits for its failed ones, and no browser's Origin or
Sec-Fetch-Site. Everything else (a refusal at the edge, the other endpoints, the pages) goes
to the Flask app through a2wsgi, which says precisely what is wrong; both paths share the
ingest, the answer's shape, the metrics and the request log line.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, Iterable, MutableMapping
from typing import Any

import orjson
from a2wsgi import WSGIMiddleware

from adapters import SOURCES
from bridge import metrics
from bridge.app import CONTENT_SECURITY_POLICY, create_app, log_request, request_id_from, tune_gc_for_serving
from bridge.errors import BridgeError
from bridge.ingest.deliveries import prepare_delivery
from bridge.ingest.measured import delivery_answer, measured
from bridge.shapes import error_shape
from bridge.web.context import EXTENSION, Bridge
from bridge.web.throttle import EXTENSION as THROTTLE
from bridge.web.throttle import AuthThrottle

log = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]

ALERTS_PREFIX = "/api/v1/alerts/"
NOOP_PATH = "/bench/noop"
_CSP = CONTENT_SECURITY_POLICY.encode()
# Senders that authenticate with a bearer token (PagerDuty events carry theirs in the body: Flask's path).
LOOP_SOURCES = frozenset(name for name, source in SOURCES.items() if source.alerts_endpoint and source.token_variable)


def _header(headers: list[tuple[bytes, bytes]], name: bytes) -> str | None:
    for key, value in headers:
        if key == name:
            return value.decode("latin-1")
    return None


class BridgeASGI:
    """Alerts webhooks served on the loop when they are plain; every other request handed to `fallback`."""

    def __init__(
        self,
        bridge: Bridge,
        fallback: Callable[[Scope, Receive, Send], Awaitable[None]],
        throttle: AuthThrottle,
    ) -> None:
        self.bridge = bridge
        self.throttle = throttle
        self.fallback = fallback
        self.max_body = bridge.settings.max_body_bytes
        self.noop = bridge.settings.bench_noop_endpoint

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            await lifespan(receive, send)
            return
        if self.noop and scope["type"] == "http" and scope["path"] == NOOP_PATH and scope["method"] == "POST":
            await self._noop(scope, receive, send)
            return
        source = self._loop_source(scope)
        if source is None:
            await self.fallback(scope, receive, send)
            return
        await self._alerts(scope, receive, send, source)

    def _loop_source(self, scope: Scope) -> str | None:
        """The sender when this request is a plain alerts webhook the loop may take, else None."""
        if scope["type"] != "http" or scope["method"] != "POST" or scope["query_string"]:
            return None
        path: str = scope["path"]
        if not path.startswith(ALERTS_PREFIX) or path[len(ALERTS_PREFIX) :] not in LOOP_SOURCES:
            return None
        source = path[len(ALERTS_PREFIX) :]
        headers = scope["headers"]
        content_type = _header(headers, b"content-type") or ""
        if content_type.partition(";")[0].strip().lower() != "application/json":
            return None
        length = _header(headers, b"content-length")
        if length is None or not (length.isascii() and length.isdigit()) or not 0 < int(length) <= self.max_body:
            return None
        if _header(headers, b"transfer-encoding") is not None:
            return None
        if _header(headers, b"sec-fetch-site") is not None or _header(headers, b"origin") is not None:
            return None  # a browser's: Flask decides whether it came from another site (web.edge.refuse_cross_site)
        expected = self.bridge.settings.token(source)
        if expected is not None:
            if self.throttle.someone_waits():
                return None  # Flask tells which addresses wait (bridge.web.throttle)
            scheme, _, given = (_header(headers, b"authorization") or "").partition(" ")
            if scheme.lower() != "bearer" or not expected.matches(given.strip()):
                return None  # Flask refuses it (401) and counts it
        return source

    async def _alerts(self, scope: Scope, receive: Receive, send: Send, source: str) -> None:
        """Ingest one plain webhook: the same work, answer and metrics as Flask's receive_alerts."""
        started = time.perf_counter()
        headers = scope["headers"]
        request_id = request_id_from(_header(headers, b"x-request-id") or "")
        body = await _read_body(receive)
        if body is None:
            return  # the client left before sending its body: nothing was accepted, nobody to answer
        ctx = self.bridge
        status = 200
        retry_after: int | None = None
        try:
            with measured(source):
                make = functools.partial(
                    prepare_delivery,
                    ctx.store,
                    ctx.rules,
                    source,
                    body,
                    ctx.now(),
                    content_type=_header(headers, b"content-type"),
                    rejected_body_limit=ctx.settings.rejected_body_limit,
                    max_depth=ctx.settings.max_json_depth,
                    max_alerts=ctx.settings.max_alerts,
                )
                result = await ctx.deliveries.submit_async(make)  # parsed and routed on the writer thread
            metrics.record_ingest(source, result)
            answer = delivery_answer(result)
        except BridgeError as exc:
            status, retry_after = exc.status, exc.retry_after
            answer = error_shape(exc.status, exc.message, exc.errors, request_id, exc.error)
        except Exception:
            log.exception("unhandled error", extra={"request_id": request_id})
            status = 500
            answer = error_shape(500, "internal error; see the bridge log for this request id", None, request_id)
        await _send_json(send, status, answer, request_id, retry_after)
        log_request("POST", scope["path"], status, started, request_id)

    async def _noop(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The bench's ceiling on this server (BRIDGE_BENCH_NOOP_ENDPOINT): read the body, parse it, answer JSON."""
        request_id = request_id_from(_header(scope["headers"], b"x-request-id") or "")
        body = await _read_body(receive)
        if body is None:
            return
        try:
            payload = orjson.loads(body)
            answer, status = {"status": "ok", "alerts": len(payload.get("alerts", ()))}, 200
        except (orjson.JSONDecodeError, AttributeError, TypeError) as exc:
            answer, status = error_shape(400, "body is not a JSON object", [str(exc)], request_id), 400
        await _send_json(send, status, answer, request_id)


async def lifespan(receive: Receive, send: Send) -> None:
    """The ASGI lifespan protocol, with nothing to start or stop (the app is built before the server starts)."""
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _send_json(
    send: Send, status: int, answer: dict[str, Any], request_id: str, retry_after: int | None = None
) -> None:
    """Answer as Flask's views do: compact JSON and the headers every answer carries (bridge.app)."""
    payload = orjson.dumps(answer) + b"\n"
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(payload)).encode()),
        (b"x-request-id", request_id.encode()),
        (b"x-content-type-options", b"nosniff"),
        (b"content-security-policy", _CSP),
    ]
    if retry_after is not None:
        headers.append((b"retry-after", str(retry_after).encode()))
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": payload})


async def _read_body(receive: Receive) -> bytes | None:
    """The whole body, or None when the client disconnected first."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return None
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


class WholeBodies:
    """WSGI middleware: each answer's body as one piece, which a2wsgi hands to the loop in one message.

    Flask answers with an iterator, and each chunk of it would be its own hand-over from a
    thread into the loop (under Granian's WSGI interface the same iterator had cost about
    a sixth of a webhook's Python time). The bridge's answers are small JSON documents and
    pages, never streams.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = self.app(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


class FlaskOverASGI:
    """The Flask app under a2wsgi, on `threads` threads.

    a2wsgi needs `receive` to give coroutines (Granian's gives Rust awaitables), and its
    input stream ends where the body ends without saying so: `wsgi.input_terminated` lets
    werkzeug read a chunked body (of no declared length) to its end, and so refuse one past
    the limit with 413.
    """

    def __init__(self, app: Any, threads: int) -> None:
        whole = WholeBodies(app)

        def terminated(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
            environ["wsgi.input_terminated"] = True
            return whole(environ, start_response)

        self.wsgi = WSGIMiddleware(terminated, workers=threads)  # type: ignore[arg-type]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        async def receive_coroutine() -> MutableMapping[str, Any]:
            return await receive()

        await self.wsgi(scope, receive_coroutine, send)  # type: ignore[arg-type]


def create_asgi_app() -> BridgeASGI:
    """What each Granian worker serves: the bridge's app (settings from the environment) as ASGI."""
    app = create_app()
    bridge: Bridge = app.extensions[EXTENSION]
    front = BridgeASGI(bridge, FlaskOverASGI(app, bridge.settings.http_threads), app.extensions[THROTTLE])
    tune_gc_for_serving()
    return front
