"""A real Alertmanager (Debian's prometheus-alertmanager) posts to a running bridge.

Alerts fire, repeat, resolve and fire again; the bridge's incidents must match exactly.
An HA pair (two Alertmanagers, both delivering) must not create twin incidents.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests
import yaml

from tests.conftest import ROOT, BridgeProcess, free_port, wait_for

ALERTMANAGER = shutil.which("prometheus-alertmanager") or shutil.which("alertmanager")
if ALERTMANAGER is None and os.environ.get("CI"):
    raise RuntimeError("prometheus-alertmanager is missing in CI; tests/setup-test-env.sh installs it")
pytestmark = [
    pytest.mark.alertmanager,
    pytest.mark.skipif(
        ALERTMANAGER is None,
        reason="LOUD SKIP: prometheus-alertmanager not installed; "
        "run `make test` (tests/setup-test-env.sh installs it)",
    ),
]
TOKEN = "am-e2e-token"
API_TOKEN = "api-e2e-token"
ROUTING_KEY = "0123456789abcdef0123456789abcdef"


class Alertmanager:
    """One Alertmanager process on loopback with short group and repeat intervals."""

    def __init__(self, webhook_url: str, receiver: dict | None = None) -> None:
        """Deliver to `webhook_url` through webhook_configs, or through the `receiver` given."""
        self.dir = Path(tempfile.mkdtemp(prefix="alertmanager-"))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        config = {
            "route": {
                "receiver": "bridge",
                "group_by": ["alertname", "service"],
                "group_wait": "1s",
                "group_interval": "2s",
                "repeat_interval": "2s",
            },
            "receivers": [
                {
                    "name": "bridge",
                    **(
                        receiver
                        or {
                            "webhook_configs": [
                                {
                                    "url": webhook_url,
                                    "send_resolved": True,
                                    "http_config": {"authorization": {"type": "Bearer", "credentials": TOKEN}},
                                }
                            ]
                        }
                    ),
                }
            ],
        }
        (self.dir / "alertmanager.yml").write_text(yaml.safe_dump(config))
        self.log = open(self.dir / "alertmanager.log", "wb")
        self.process = subprocess.Popen(
            [
                ALERTMANAGER,
                f"--config.file={self.dir / 'alertmanager.yml'}",
                f"--storage.path={self.dir}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                "--cluster.listen-address=",
                "--log.level=warn",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        wait_for(lambda: self._ready(), 20, "Alertmanager ready")

    def _ready(self) -> bool:
        try:
            return requests.get(self.url + "/-/ready", timeout=1).status_code == 200
        except requests.ConnectionError:
            return False

    def post(self, alerts: list[dict]) -> None:
        response = requests.post(self.url + "/api/v2/alerts", json=alerts, timeout=5)
        assert response.status_code == 200, response.text

    def fingerprints(self) -> dict[str, str]:
        """instance label -> fingerprint, as Alertmanager computed them."""
        alerts = requests.get(self.url + "/api/v2/alerts", timeout=5).json()
        return {a["labels"]["instance"]: a["fingerprint"] for a in alerts}

    def stop(self) -> None:
        self.process.terminate()
        self.process.wait(timeout=10)
        self.log.close()
        shutil.rmtree(self.dir, ignore_errors=True)


# Like Prometheus, always send startsAt: without it Alertmanager takes endsAt as the start.
EPISODE_START = datetime.now(UTC) - timedelta(minutes=1)


def alert(instance: str, severity: str, *, resolved: bool = False, starts_at: datetime = EPISODE_START) -> dict:
    now = datetime.now(UTC)
    ends = now - timedelta(seconds=1) if resolved else now + timedelta(hours=1)
    return {
        "labels": {"alertname": "HighErrorRate", "service": "lkk", "instance": instance, "severity": severity},
        "annotations": {"summary": f"HighErrorRate on {instance}"},
        "startsAt": starts_at.isoformat(),
        "endsAt": ends.isoformat(),
        "generatorURL": "http://prometheus.local/graph",
    }


@pytest.fixture
def bridge(tmp_path: Path) -> Iterator[BridgeProcess]:
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    subprocess.run(
        [os.sys.executable, "-m", "bridge", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "BRIDGE_DATABASE_URL": url},
    )
    env = {"BRIDGE_TOKEN_ALERTMANAGER": TOKEN, "BRIDGE_TOKEN_API": API_TOKEN}
    with BridgeProcess(url, env=env, workers=2) as process:
        yield process


def incidents(bridge: BridgeProcess) -> list[dict]:
    response = requests.get(
        bridge.url + "/api/v1/incidents?limit=500", headers={"Authorization": f"Bearer {API_TOKEN}"}, timeout=5
    )
    response.raise_for_status()
    return response.json()["items"]


def by_instance(items: list[dict]) -> dict[str, dict]:
    return {item["labels"]["instance"]: item for item in items}


def test_fire_repeat_resolve_and_reopen_through_real_alertmanager(bridge: BridgeProcess):
    manager = Alertmanager(bridge.url + "/api/v1/alerts/alertmanager")
    try:
        manager.post([alert("a:1", "critical"), alert("b:1", "warning"), alert("c:1", "none")])
        wait_for(
            lambda: len(incidents(bridge)) == 3 and all(i["occurrences"] >= 3 for i in incidents(bridge)),
            30,
            "three incidents repeated at least three times",
        )
        fingerprints = manager.fingerprints()

        manager.post([alert("a:1", "critical", resolved=True)])
        wait_for(lambda: by_instance(incidents(bridge))["a:1"]["state"] == "resolved", 20, "a:1 resolved")
        items = by_instance(incidents(bridge))
        assert len(items) == 3
        for instance, item in items.items():
            assert item["dedup_key"] == f"alertmanager:{fingerprints[instance]}"
            assert item["line"] == "L3" and item["source"] == "alertmanager"
        assert [items[i]["priority"] for i in ("a:1", "b:1", "c:1")] == ["P1", "P4", "P3"]
        assert (items["b:1"]["state"], items["c:1"]["state"]) == ("firing", "firing")

        manager.post([alert("a:1", "critical", starts_at=datetime.now(UTC))])
        wait_for(lambda: by_instance(incidents(bridge))["a:1"]["state"] == "firing", 20, "a:1 firing again")
        items = by_instance(incidents(bridge))
        assert len(items) == 3, "a re-fire within the reopen window reopens, never duplicates"
        assert items["a:1"]["reopen_count"] == 1 and items["a:1"]["resolved_at"] is None
    finally:
        manager.stop()
    assert "Traceback" not in bridge.output()


def test_alertmanager_ha_pair_duplicates_make_no_twin_incidents(bridge: BridgeProcess):
    """Both peers deliver every notification (as during a partition): still one incident each."""
    managers = [Alertmanager(bridge.url + "/api/v1/alerts/alertmanager") for _ in range(2)]
    try:
        batch = [alert(f"host-{n}:9100", "critical") for n in range(10)]
        for manager in managers:
            manager.post(batch)
        wait_for(
            lambda: len(incidents(bridge)) == 10 and all(i["occurrences"] >= 4 for i in incidents(bridge)),
            30,
            "ten incidents each delivered by both peers",
        )
        items = incidents(bridge)
        assert len({i["dedup_key"] for i in items}) == len(items) == 10
        assert {i["dedup_key"] for i in items} == {f"alertmanager:{fp}" for fp in managers[0].fingerprints().values()}
    finally:
        for manager in managers:
            manager.stop()


@pytest.fixture
def events_bridge(tmp_path: Path) -> Iterator[BridgeProcess]:
    """A bridge whose rules accept one PagerDuty routing key, given through the environment."""
    url = f"sqlite:///{tmp_path / 'e2e.db'}"
    subprocess.run(
        [os.sys.executable, "-m", "bridge", "migrate"],
        check=True,
        capture_output=True,
        env={**os.environ, "BRIDGE_DATABASE_URL": url},
    )
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["events"] = {
        "routing_keys": [{"name": "prometheus", "key": "${BRIDGE_EVENTS_KEY_PROMETHEUS}", "labels": {"team": "lkk"}}]
    }
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    env = {
        "BRIDGE_TOKEN_API": API_TOKEN,
        "BRIDGE_RULES": str(tmp_path / "rules.yaml"),
        "BRIDGE_EVENTS_KEY_PROMETHEUS": ROUTING_KEY,
    }
    with BridgeProcess(url, env=env, workers=2) as process:
        yield process


def test_pagerduty_configs_fire_and_resolve_one_incident_per_group_through_events_v2(events_bridge: BridgeProcess):
    events_url = events_bridge.url + "/api/v1/alerts/events"
    manager = Alertmanager(
        events_url,
        receiver={"pagerduty_configs": [{"url": events_url, "routing_key": ROUTING_KEY, "send_resolved": True}]},
    )
    try:
        manager.post([alert("a:1", "critical"), alert("b:1", "critical")])
        [incident] = wait_for(lambda: incidents(events_bridge), 30, "the group's incident")
        assert incident["source"] == "events" and incident["state"] == "firing"
        assert incident["dedup_key"].startswith("events:prometheus:") and incident["labels"]["team"] == "lkk"
        assert incident["summary"].startswith("[FIRING:2] HighErrorRate lkk")
        wait_for(lambda: incidents(events_bridge)[0]["occurrences"] >= 2, 20, "repeat_interval re-sends counted")

        manager.post([alert("a:1", "critical", resolved=True), alert("b:1", "critical", resolved=True)])
        wait_for(lambda: incidents(events_bridge)[0]["state"] == "resolved", 20, "the group's incident resolved")
        assert len(incidents(events_bridge)) == 1
    finally:
        manager.stop()
    output = events_bridge.output()
    assert "Traceback" not in output and ROUTING_KEY not in output
