"""The delivery format: exact bytes and headers, the signature a receiver recomputes, Retry-After."""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime

import orjson

from bridge.outbox.jobs import Deliver
from bridge.outbox.notify import Endpoint, request_of, retry_after_seconds, signature
from bridge.rules.templates import compile_template

NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
JOB = Deliver(
    "notify:chat", "problem.opened", "abc123", {"event": "problem.opened", "id": "abc123", "problem": {"id": 5}}
)


def test_the_signature_is_the_hmac_sha256_of_the_raw_body():
    body, headers = request_of(Endpoint("chat", "https://x", "k3y"), JOB)
    assert body == orjson.dumps(JOB.body)
    assert headers["X-Bridge-Signature"] == "sha256=" + hmac.new(b"k3y", body, hashlib.sha256).hexdigest()
    assert (headers["X-Bridge-Event"], headers["X-Bridge-Delivery"]) == ("problem.opened", "abc123")
    assert headers["Content-Type"] == "application/json"
    assert signature("k3y", body) == headers["X-Bridge-Signature"]


def test_a_retry_sends_the_same_bytes_and_headers():
    endpoint = Endpoint("chat", "https://x", "k3y", compile_template('{"text": "{{ event }} #{{ problem.id }}"}'))
    assert request_of(endpoint, JOB) == request_of(endpoint, JOB)
    assert request_of(endpoint, JOB)[0] == b'{"text": "problem.opened #5"}'


def test_retry_after_takes_seconds_or_an_http_date():
    assert retry_after_seconds("120", NOW) == 120.0
    assert retry_after_seconds("Wed, 25 Nov 2026 12:01:30 GMT", NOW) == 90.0
    assert retry_after_seconds("Wed, 25 Nov 2026 11:00:00 GMT", NOW) == 0.0
    assert retry_after_seconds("soon", NOW) is None
    assert retry_after_seconds(None, NOW) is None
