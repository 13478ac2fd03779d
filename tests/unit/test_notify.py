"""The delivery format: exact bytes and headers, the signature a receiver recomputes, Retry-After.

The signature covers the attempt's time, the delivery id and the event with the body, so a
captured delivery replayed later, or under a new delivery id or another event, fails a
receiver's check (tests/receiver.py verifies as the docs' receiver does).
"""

from __future__ import annotations

import hashlib
import hmac
import time
from datetime import UTC, datetime

import orjson
import requests

from bridge.outbox.jobs import Deliver
from bridge.outbox.notify import Endpoint, request_of, retry_after_seconds, send, signature
from bridge.rules.templates import compile_template
from tests.receiver import TOLERANCE_SECONDS, Receiver, verify

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
JOB = Deliver(
    "notify:chat", "problem.opened", "abc123", {"event": "problem.opened", "id": "abc123", "problem": {"id": 5}}
)


T = 1_795_608_000


def test_the_signature_is_the_hmac_sha256_of_time_delivery_event_and_raw_body():
    body, headers = request_of(Endpoint("chat", "https://x", "k3y"), JOB, T)
    assert body == orjson.dumps(JOB.body)
    signed = f"{T}\nabc123\nproblem.opened\n".encode() + body
    assert headers["X-Bridge-Signature"] == f"t={T},v1=" + hmac.new(b"k3y", signed, hashlib.sha256).hexdigest()
    assert (headers["X-Bridge-Event"], headers["X-Bridge-Delivery"]) == ("problem.opened", "abc123")
    assert headers["Content-Type"] == "application/json"
    assert signature("k3y", T, "abc123", "problem.opened", body) == headers["X-Bridge-Signature"]
    assert verify("k3y", headers, body, T + TOLERANCE_SECONDS)
    assert not verify("k3y", headers, body, T + TOLERANCE_SECONDS + 1)


def test_a_retry_sends_the_same_bytes_and_delivery_id_signed_at_its_own_time():
    endpoint = Endpoint(
        "chat", "https://x", "k3y", compile_template('{"text": {{ event ~ " #" ~ problem.id }}}', json_values=True)
    )
    (body, first), (again, second) = request_of(endpoint, JOB, T), request_of(endpoint, JOB, T + 60)
    assert body == again == b'{"text": "problem.opened #5"}'
    assert first["X-Bridge-Delivery"] == second["X-Bridge-Delivery"] == "abc123"
    assert first["X-Bridge-Signature"].startswith(f"t={T},") and second["X-Bridge-Signature"].startswith(f"t={T + 60},")


def test_a_captured_delivery_replayed_fails_verification_under_a_new_id_an_old_time_or_another_event():
    with Receiver("k3y") as receiver, requests.Session() as session:
        endpoint = Endpoint("chat", receiver.url, "k3y")
        send(session, endpoint, JOB, NOW)
        [sent] = receiver.received
        assert sent.signature_valid and not sent.repeat
        captured = {name: sent.headers[name] for name in ("Content-Type", "X-Bridge-Event", "X-Bridge-Delivery")}
        captured["X-Bridge-Signature"] = sent.headers["X-Bridge-Signature"]
        replays = [
            captured,
            {**captured, "X-Bridge-Delivery": "f00d" * 8},
            {**captured, "X-Bridge-Event": "problem.closed"},
        ]
        for headers in replays:
            session.post(receiver.url, data=sent.raw, headers=headers, timeout=5)
        old_body, old_headers = request_of(endpoint, JOB, int(time.time()) - TOLERANCE_SECONDS - 60)
        session.post(receiver.url, data=old_body, headers=old_headers, timeout=5)
    same, new_id, other_event, old = receiver.received[1:]
    assert (same.signature_valid, same.repeat) == (True, True)  # as sent: dropped as a repeat by its id
    assert not new_id.signature_valid
    assert not other_event.signature_valid
    assert not old.signature_valid


def test_retry_after_takes_seconds_or_an_http_date():
    assert retry_after_seconds("120", NOW) == 120.0
    assert retry_after_seconds("Wed, 25 Nov 2026 12:01:30 GMT", NOW) == 90.0
    assert retry_after_seconds("Wed, 25 Nov 2026 11:00:00 GMT", NOW) == 0.0
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None
