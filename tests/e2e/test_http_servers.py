"""Both HTTP servers keep serve's guarantees (issue 15): the default (Granian) runs every e2e test;
here gunicorn, the alternative, runs the guarantees' own tests again, and the bench's no-op
endpoint exists only when asked for."""

from __future__ import annotations

from pathlib import Path

import pytest
import requests

import tests.e2e.test_faults as faults
import tests.e2e.test_metrics as metrics_tests
from bridge.config import load_settings
from bridge.storage.engine import migrate
from bridge.web.server import granian_address
from tests.conftest import BridgeProcess


@pytest.fixture
def gunicorn(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BRIDGE_HTTP_SERVER", "gunicorn")


def test_granian_is_the_default_server():
    assert load_settings(environ={}).http_server == "granian"


def test_kill_9_loses_nothing_acknowledged_under_gunicorn(gunicorn, tmp_path: Path):
    faults.test_kill_9_mid_storm_loses_no_acknowledged_alert_and_resends_land_once(tmp_path)


def test_sigterm_drains_requests_in_flight_under_gunicorn(gunicorn, tmp_path: Path):
    faults.test_sigterm_drains_requests_in_flight(tmp_path)


def test_metrics_are_summed_across_workers_under_gunicorn(gunicorn, tmp_path: Path):
    metrics_tests.test_metrics_under_two_gunicorn_workers(tmp_path)


@pytest.mark.parametrize("server", ["granian", "gunicorn"])
def test_the_bench_no_op_endpoint_exists_only_when_enabled(tmp_path: Path, server: str):
    url = f"sqlite:///{tmp_path / 'noop.db'}"
    migrate(url)
    body = b'{"alerts": [{}, {}]}'
    headers = {"Content-Type": "application/json"}
    env = {"BRIDGE_RUN_WORKER": "0", "BRIDGE_HTTP_SERVER": server}
    with BridgeProcess(url, env=env, workers=1) as bridge:
        assert requests.post(bridge.url + "/bench/noop", data=body, headers=headers, timeout=10).status_code == 404
    with BridgeProcess(url, env={**env, "BRIDGE_BENCH_NOOP_ENDPOINT": "1"}, workers=1) as bridge:
        answer = requests.post(bridge.url + "/bench/noop", data=body, headers=headers, timeout=10)
        assert (answer.status_code, answer.json()) == (200, {"status": "ok", "alerts": 2})


def test_granian_takes_the_bind_address_as_gunicorn_does():
    assert granian_address("127.0.0.1:8080") == {"address": "127.0.0.1", "port": 8080}
    assert granian_address("[::1]:9000") == {"address": "::1", "port": 9000}
    assert granian_address("unix:/run/bridge.sock") == {"uds": Path("/run/bridge.sock")}
    with pytest.raises(ValueError, match="host:port"):
        granian_address("localhost")
