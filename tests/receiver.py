"""A real HTTP receiver on loopback for outbound webhooks: verifies signatures with its own HMAC code.

It answers from a script of statuses (then 200), so tests can make it fail, and records
every request with whether its signature held (time, delivery id, event and body signed, the
time within TOLERANCE_SECONDS) and whether its delivery id was already handled, as an
operator's receiver would check them.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any


@dataclass
class Received:
    """One request as the receiver saw it."""

    headers: dict[str, str]
    raw: bytes
    signature_valid: bool
    repeat: bool = False  # its delivery id was answered 2xx before

    @property
    def body(self) -> Any:
        return json.loads(self.raw)

    @property
    def event(self) -> str:
        return self.headers["X-Bridge-Event"]

    @property
    def delivery(self) -> str:
        return self.headers["X-Bridge-Delivery"]


# How old a signature's time may be (either way, for clocks apart) before the request is refused.
TOLERANCE_SECONDS = 300


def verify(secret: str, headers: dict[str, str], raw: bytes, now: float) -> bool:
    """The docs' receiver check: `t=<unix time>,v1=<hex HMAC-SHA256 of "t\\ndelivery\\nevent\\n" + body>`,
    the time within TOLERANCE_SECONDS of `now`."""
    fields = dict(part.partition("=")[::2] for part in headers.get("X-Bridge-Signature", "").split(","))
    timestamp = fields.get("t", "")
    if not timestamp.isdigit() or abs(now - int(timestamp)) > TOLERANCE_SECONDS:
        return False
    signed = f"{timestamp}\n{headers.get('X-Bridge-Delivery', '')}\n{headers.get('X-Bridge-Event', '')}\n"
    expected = hmac.new(secret.encode(), signed.encode() + raw, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), fields.get("v1", "").encode())


@dataclass
class Receiver:
    """Collects deliveries signed with `secret`; answers `script` (status, text, headers) in order, then 200."""

    secret: str
    script: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)
    handled: set[str] = field(default_factory=set)

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                headers = dict(self.headers.items())
                valid = verify(owner.secret, headers, raw, time.time())
                delivery = headers.get("X-Bridge-Delivery", "")
                owner.received.append(Received(headers, raw, valid, delivery in owner.handled))
                status, text, headers = owner.script.pop(0) if owner.script else (200, "ok", {})
                if valid and 200 <= status < 300:
                    owner.handled.add(delivery)
                answer = text.encode()
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(answer)))
                self.end_headers()
                self.wfile.write(answer)

            def log_message(self, *args: Any) -> None:
                return

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.server.server_address[1]}/hook"

    def of_event(self, event: str) -> list[Received]:
        return [item for item in self.received if item.event == event]

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()


def receivers(*secrets: str) -> Iterator[list[Receiver]]:
    """Several receivers for one test, all stopped afterwards."""
    started = [Receiver(secret).__enter__() for secret in secrets]
    try:
        yield started
    finally:
        for receiver in started:
            receiver.__exit__(None, None, None)
