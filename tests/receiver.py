"""A real HTTP receiver on loopback for outbound webhooks: verifies signatures with its own HMAC code.

It answers from a script of statuses (then 200), so tests can make it fail, and records
every request with whether its signature held, as an operator's receiver would check it.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
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

    @property
    def body(self) -> Any:
        return json.loads(self.raw)

    @property
    def event(self) -> str:
        return self.headers["X-Bridge-Event"]

    @property
    def delivery(self) -> str:
        return self.headers["X-Bridge-Delivery"]


@dataclass
class Receiver:
    """Collects deliveries signed with `secret`; answers `script` (status, text, headers) in order, then 200."""

    secret: str
    script: list[tuple[int, str, dict[str, str]]] = field(default_factory=list)
    received: list[Received] = field(default_factory=list)

    def __post_init__(self) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                expected = "sha256=" + hmac.new(owner.secret.encode(), raw, hashlib.sha256).hexdigest()
                given = self.headers.get("X-Bridge-Signature", "")
                valid = hmac.compare_digest(expected.encode(), given.encode())
                owner.received.append(Received(dict(self.headers.items()), raw, valid))
                status, text, headers = owner.script.pop(0) if owner.script else (200, "ok", {})
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
