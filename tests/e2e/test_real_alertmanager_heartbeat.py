"""A real Alertmanager's Watchdog keeps a heartbeat ok; silencing Alertmanager raises exactly one incident.

The test keeps the Watchdog firing (posting it as Prometheus would); Alertmanager re-sends it
every couple of seconds. On PostgreSQL two bridges (each with its worker) share the database
and both receive the Watchdog: their workers race for every change, and one incident comes
of the silence. Alertmanager back, the incident resolves.
"""

from __future__ import annotations

import contextlib
import os
import threading
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from bridge.storage.engine import migrate
from tests.conftest import ROOT, BridgeProcess, new_pg_database, wait_for
from tests.e2e.test_real_alertmanager import ALERTMANAGER, Alertmanager

if ALERTMANAGER is None and os.environ.get("CI"):
    raise RuntimeError("prometheus-alertmanager is missing in CI; tests/setup-test-env.sh installs it")
pytestmark = [
    pytest.mark.alertmanager,
    pytest.mark.skipif(
        ALERTMANAGER is None, reason="LOUD SKIP: prometheus-alertmanager not installed; run `make test`"
    ),
]
TOKEN = "am-heartbeat-token"
READ = {"Authorization": "Bearer api-heartbeat-token"}
INTERVAL, GRACE = 6, 3  # seconds: Alertmanager re-sends the Watchdog every ~2 s (room for a loaded machine)
KEY = "heartbeat:prometheus-watchdog"


class Watchdog:
    """Posts the always-firing Watchdog to Alertmanager every second, as Prometheus evaluates it."""

    def __init__(self) -> None:
        self.manager: Alertmanager | None = None
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._keep_firing, daemon=True)
        self.started = datetime.now(UTC)

    def _keep_firing(self) -> None:
        while not self.stop.wait(1.0):
            manager = self.manager
            if manager is None:
                continue
            with contextlib.suppress(requests.RequestException, AssertionError):
                manager.post([self.alert()])

    def alert(self) -> dict:
        return {
            "labels": {"alertname": "Watchdog", "severity": "none"},
            "annotations": {"summary": "An alert that should always be firing"},
            "startsAt": self.started.isoformat(),
            "endsAt": (datetime.now(UTC) + timedelta(minutes=4)).isoformat(),
        }

    def fire_through(self, manager: Alertmanager) -> None:
        manager.post([self.alert()])
        self.manager = manager


def heartbeat_rules(tmp_path: Path) -> Path:
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["heartbeats"] = [
        {
            "name": "prometheus-watchdog",
            "source": "alertmanager",
            "match": {"labels": {"alertname": "Watchdog"}},
            "interval": f"{INTERVAL}s",
            "grace": f"{GRACE}s",
            "impact": "high",
            "urgency": "high",
        }
    ]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


@contextlib.contextmanager
def bridges(store: str, tmp_path: Path) -> Iterator[list[BridgeProcess]]:
    """One bridge on SQLite; two on one PostgreSQL, each with its own worker."""
    with contextlib.ExitStack() as stack:
        if store == "sqlite":
            url, count = f"sqlite:///{tmp_path / 'heartbeat.db'}", 1
        else:
            url, count = stack.enter_context(new_pg_database()), 2
        migrate(url)
        env = {
            "BRIDGE_RULES": str(heartbeat_rules(tmp_path)),
            "BRIDGE_TOKEN_ALERTMANAGER": TOKEN,
            "BRIDGE_TOKEN_API": READ["Authorization"].split()[1],
            "BRIDGE_WORKER_INTERVAL_SECONDS": "0.2",
        }
        yield [stack.enter_context(BridgeProcess(url, env=env, workers=1)) for _ in range(count)]


def heartbeat(bridge: BridgeProcess) -> dict:
    [found] = requests.get(bridge.url + "/api/v1/heartbeats", headers=READ, timeout=5).json()["items"]
    return found


def heartbeat_incidents(bridge: BridgeProcess) -> list[dict]:
    answer = requests.get(bridge.url + "/api/v1/incidents?source=heartbeat", headers=READ, timeout=5)
    return answer.json()["items"]


def manager_for(targets: list[BridgeProcess]) -> Alertmanager:
    receiver = {
        "webhook_configs": [
            {
                "url": bridge.url + "/api/v1/alerts/alertmanager",
                "send_resolved": True,
                "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
            }
            for bridge in targets
        ]
    }
    return Alertmanager("unused", receiver=receiver)


@pytest.mark.parametrize("store", ["sqlite", pytest.param("postgres", marks=pytest.mark.postgres)])
def test_the_watchdog_keeps_its_heartbeat_ok_and_its_silence_raises_one_incident(store: str, tmp_path: Path):
    watchdog = Watchdog()
    watchdog.thread.start()
    with bridges(store, tmp_path) as running:
        first = running[0]
        manager = manager_for(running)
        try:
            watchdog.fire_through(manager)
            wait_for(lambda: heartbeat(first)["state"] == "ok", 20, "the Watchdog's pings making the heartbeat ok")
            time.sleep(INTERVAL + GRACE + 2)  # longer than the silence allowed: the pings keep it ok
            assert heartbeat(first)["state"] == "ok"
            assert heartbeat_incidents(first) == [], "the Watchdog is a ping, never an incident"
            assert all(
                i["labels"].get("alertname") != "Watchdog"
                for i in requests.get(first.url + "/api/v1/incidents", headers=READ, timeout=5).json()["items"]
            )
        finally:
            watchdog.manager = None
            manager.stop()
        silenced = datetime.now(UTC)
        [incident] = wait_for(lambda: heartbeat_incidents(first), INTERVAL + GRACE + 10, "the heartbeat's incident")
        raised = datetime.fromisoformat(incident["first_seen"].replace("Z", "+00:00"))
        assert raised - silenced <= timedelta(seconds=INTERVAL + GRACE + 3), (
            "within interval + grace (and a pass or two)"
        )
        assert (incident["dedup_key"], incident["state"], incident["priority"]) == (KEY, "firing", "P1")
        time.sleep(2)  # every worker has had passes since: still one incident
        for bridge in running:
            assert [i["dedup_key"] for i in heartbeat_incidents(bridge)] == [KEY]
            assert heartbeat(bridge)["state"] == "expired"

        manager = manager_for(running)
        try:
            watchdog.fire_through(manager)
            wait_for(lambda: heartbeat_incidents(first)[0]["state"] == "resolved", 30, "pings resuming resolve it")
            assert len(heartbeat_incidents(first)) == 1 and heartbeat(first)["state"] == "ok"
        finally:
            watchdog.stop.set()
            manager.stop()
        for bridge in running:
            assert "Traceback" not in bridge.output()


def test_a_bridge_started_without_its_sender_expires_a_waiting_heartbeat(tmp_path: Path):
    """A configured heartbeat whose sender never came expires one interval and grace after start-up."""
    with bridges("sqlite", tmp_path) as (bridge,):
        wait_for(lambda: heartbeat(bridge)["state"] == "waiting", 10, "armed at start-up")
        [incident] = wait_for(lambda: heartbeat_incidents(bridge), INTERVAL + GRACE + 10, "its incident")
        assert incident["summary"].startswith("Heartbeat prometheus-watchdog: never heard from alertmanager")
