"""Guessing a token over HTTP, on SQLite and PostgreSQL: an address past its allowance of failures waits,
its right token included, while other addresses are served; counted in metrics and logged."""

from __future__ import annotations

import logging

import pytest

from bridge import metrics
from bridge.app import create_app
from bridge.config import load_settings
from bridge.web.throttle import ALLOWANCE, EXTENSION, AuthThrottle
from tests.conftest import ROOT

OPERATE = "operate-token-long-enough"
PROXY = "10.0.0.1"


class Ticks:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def ticks() -> Ticks:
    return Ticks()


@pytest.fixture
def client(database_url: str, ticks: Ticks):
    environ = {
        "BRIDGE_TOKEN_OPERATE": OPERATE,
        "BRIDGE_TOKEN_API": "read-token-long-enough",
        "BRIDGE_JIRA_WEBHOOK_SECRET": "jira-secret-long-enough",
        "BRIDGE_TRUSTED_PROXIES": PROXY,
    }
    settings = load_settings(environ, database_url=database_url, rules_path=str(ROOT / "rules.yaml"))
    app = create_app(settings)
    app.extensions[EXTENSION] = AuthThrottle(clock=ticks)
    yield app.test_client()
    app.extensions["bridge"].store.engine.dispose()


def ack(client, token: str, client_address: str = "192.0.2.7"):
    """An acknowledgement of incident 1 (none exists: 404 once the token is taken) from behind the proxy."""
    return client.post(
        "/api/v1/incidents/1/ack",
        headers={
            "Authorization": f"Bearer {token}",
            "Content-Type": "application/json",
            "X-Forwarded-For": client_address,
        },
        environ_base={"REMOTE_ADDR": PROXY},
    )


def counted(metric, group: str) -> float:
    return metrics.labelled(metric, group)._value.get()


def test_an_address_that_guessed_too_often_waits_its_right_token_included(client, ticks, caplog):
    failures, throttled = counted(metrics.AUTH_FAILURES, "operate"), counted(metrics.AUTH_THROTTLED, "operate")
    with caplog.at_level(logging.WARNING, logger="bridge.web.throttle"):
        assert [ack(client, f"guess-{n}").status_code for n in range(ALLOWANCE)] == [401] * ALLOWANCE
    [line] = [record for record in caplog.records if record.getMessage() == "authentication throttled"]
    assert (line.client, line.group) == ("192.0.2.7", "operate")
    waiting = ack(client, OPERATE)
    assert waiting.status_code == 429 and waiting.headers["Retry-After"] == "60"
    assert waiting.json["message"] == "too many failed authentications from this address"
    assert waiting.json["errors"] == ["Authorization: try again in 60 s"]
    assert ack(client, OPERATE, client_address="192.0.2.8").status_code == 404, "another address is served"
    assert counted(metrics.AUTH_FAILURES, "operate") - failures == ALLOWANCE
    assert counted(metrics.AUTH_THROTTLED, "operate") - throttled == 1
    ticks.now += 30
    assert ack(client, "guess-after").status_code == 429, "not compared: the wait does not grow"
    ticks.now += 30
    assert ack(client, OPERATE).status_code == 404, "the window passed: the right token is taken again"


def test_the_pages_sign_in_and_the_jira_webhook_count_against_the_same_address(client):
    for n in range(ALLOWANCE - 1):
        assert client.post("/ui/login", data={"token": f"guess-{n}"}).status_code == 401
    signed = client.post("/api/v1/jira/webhook?secret=guess", json={}, headers={"Content-Type": "application/json"})
    assert signed.status_code == 401
    assert client.post("/ui/login", data={"token": OPERATE, "name": "Ann"}).status_code == 429
    assert (
        client.get("/api/v1/incidents", headers={"Authorization": "Bearer read-token-long-enough"}).status_code == 429
    )
