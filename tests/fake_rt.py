"""A fake Request Tracker 5 REST2 on loopback, with the shapes ../shared/contracts.md (section G) documents.

Tickets live in memory with their queue; every request is recorded with its path exactly as it
arrived on the wire (before any decoding), so a test sees what the bridge really sent.
"""

from __future__ import annotations

import threading
from typing import Any

from flask import Flask, jsonify, request
from werkzeug.serving import make_server

QUEUES = {"1": "General", "2": "Other"}


class FakeRt:
    """Start with `with FakeRt() as rt:`; `rt.url` is RT's base URL (REST2 under /REST/2.0/)."""

    def __init__(self) -> None:
        self.tickets: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[str]] = {}
        self.requests: list[tuple[str, str]] = []
        self.lock = threading.Lock()
        app = Flask("fake_rt")
        app.before_request(self._record)
        app.add_url_rule("/REST/2.0/ticket/<ticket_id>", view_func=self._ticket, methods=["GET", "PUT"])
        app.add_url_rule("/REST/2.0/ticket/<ticket_id>/comment", view_func=self._comment, methods=["POST"])
        app.add_url_rule("/REST/2.0/ticket/<ticket_id>/history", view_func=self._history)
        app.add_url_rule("/REST/2.0/queue/<queue_id>", view_func=self._queue)
        app.add_url_rule("/REST/2.0/tickets", view_func=lambda: jsonify({"items": [], "page": 1, "pages": 0}))
        app.add_url_rule("/REST/2.0/transaction/<item>/attachments", view_func=self._attachments)
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> FakeRt:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.thread.join(timeout=5)

    def add(self, ticket_id: str, queue: str = "General", queue_reference: str | None = None) -> None:
        """A ticket in a queue (by name); `queue_reference` overrides the queue id its reading gives."""
        queue_id = queue_reference or next(qid for qid, name in QUEUES.items() if name == queue)
        with self.lock:
            self.tickets[ticket_id] = {"id": ticket_id, "Status": "new", "Queue": {"id": queue_id, "type": "queue"}}
            self.comments[ticket_id] = []

    def paths(self, method: str | None = None) -> list[str]:
        """The raw paths requested (with their query), oldest first."""
        with self.lock:
            return [path for verb, path in self.requests if method is None or verb == method]

    def _record(self) -> None:
        raw = request.environ.get("REQUEST_URI") or request.environ.get("RAW_URI") or request.full_path
        with self.lock:
            self.requests.append((request.method, raw))

    def _ticket(self, ticket_id: str):  # type: ignore[no-untyped-def]
        ticket = self.tickets.get(ticket_id)
        if ticket is None:
            return jsonify({"message": "Not Found"}), 404
        if request.method == "PUT":
            ticket["Status"] = (request.get_json() or {}).get("Status", ticket["Status"])
            return jsonify([f"Ticket {ticket_id}: Status changed"])
        return jsonify(ticket)

    def _comment(self, ticket_id: str):  # type: ignore[no-untyped-def]
        if ticket_id not in self.tickets:
            return jsonify({"message": "Not Found"}), 404
        self.comments[ticket_id].append(str((request.get_json() or {}).get("Content", "")))
        return jsonify(["Comments added"]), 201

    def _history(self, ticket_id: str):  # type: ignore[no-untyped-def]
        items = [{"id": f"{ticket_id}.{n}", "Type": "Comment"} for n in range(len(self.comments.get(ticket_id, [])))]
        return jsonify({"items": items, "page": 1, "pages": 1})

    def _attachments(self, item: str):  # type: ignore[no-untyped-def]
        ticket_id, _, number = item.rpartition(".")
        texts = self.comments.get(ticket_id, [])
        found = [{"Content": texts[int(number)]}] if number.isdigit() and int(number) < len(texts) else []
        return jsonify({"items": found})

    def _queue(self, queue_id: str):  # type: ignore[no-untyped-def]
        name = QUEUES.get(queue_id)
        if name is None:
            return jsonify({"message": "Not Found"}), 404
        return jsonify({"id": queue_id, "Name": name})
