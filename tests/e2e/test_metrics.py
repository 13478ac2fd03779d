"""/metrics under two gunicorn workers: counters summed across workers, gauges equal to the database."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import requests
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import ROOT, BridgeProcess, payload

TOKEN = "am-token"


def samples(bridge: BridgeProcess) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = requests.get(bridge.url + "/metrics", timeout=5).text
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def notification(n: int) -> bytes:
    body = payload("alertmanager-0.25-two-firing.json")
    for i, alert in enumerate(body["alerts"]):
        alert["fingerprint"] = f"{n:08x}{i:08x}"
        alert["labels"] = dict(alert["labels"], instance=f"host-{n}-{i}")
    return json.dumps(body).encode()


def test_metrics_under_two_gunicorn_workers(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'metrics.db'}"
    subprocess.run(
        [sys.executable, "-m", "bridge", "migrate"],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "BRIDGE_DATABASE_URL": url},
    )
    metrics_dir = tmp_path / "prometheus"
    env = {
        "BRIDGE_TOKEN_ALERTMANAGER": TOKEN,
        "BRIDGE_RUN_WORKER": "0",
        "PROMETHEUS_MULTIPROC_DIR": str(metrics_dir),
        "BRIDGE_HTTP_THREADS": "1",
    }
    with BridgeProcess(url, env=env, workers=2) as bridge:
        bodies = [notification(n % 20) for n in range(60)]  # 20 distinct notifications, each 3 times
        with ThreadPoolExecutor(max_workers=8) as pool:
            statuses = list(
                pool.map(
                    lambda body: (
                        requests.post(
                            bridge.url + "/api/v1/alerts/alertmanager",
                            data=body,
                            timeout=30,
                            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
                        ).status_code
                    ),
                    bodies,
                )
            )
        assert set(statuses) == {200}
        requests.post(
            bridge.url + "/api/v1/alerts/alertmanager",
            data=b"{}",
            timeout=5,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        )
        writers = {p.name.rsplit("_", 1)[-1] for p in metrics_dir.glob("counter_*.db")}
        assert len(writers) >= 2, f"both gunicorn workers served requests: {writers}"

        for _ in range(4):  # whichever worker answers the scrape, the sums are the same
            found = samples(bridge)
            assert value(found, "bridge_notifications_received_total", source="alertmanager", outcome="accepted") == 60
            assert value(found, "bridge_notifications_received_total", source="alertmanager", outcome="rejected") == 1
            assert value(found, "bridge_alerts_received_total", source="alertmanager", status="firing") == 120
            assert value(found, "bridge_incidents_opened_total", source="alertmanager", line="L3", priority="P1") == 40
            assert value(found, "bridge_alerts_deduplicated_total", source="alertmanager") == 80
            assert value(found, "bridge_webhook_request_duration_seconds_count", source="alertmanager") == 61

        incidents = requests.get(bridge.url + "/api/v1/incidents?limit=500", timeout=5).json()["items"]
        problems = requests.get(bridge.url + "/api/v1/problems", timeout=5).json()["items"]
        found = samples(bridge)
        assert (
            value(found, "bridge_incidents_open", line="L3", priority="P1", source="alertmanager")
            == len(incidents)
            == 40
        )
        assert value(found, "bridge_problems_open", state="open") == len(problems) == 1
        assert value(found, "bridge_outbox_pending", target="jira") == 1, "the problem's Jira issue waits"


def test_known_label_values_exist_at_zero_on_a_fresh_bridge(tmp_path: Path):
    """Dashboards and alert rules on labelled families need the series before the first event."""
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    subprocess.run(
        [sys.executable, "-m", "bridge", "migrate"],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "BRIDGE_DATABASE_URL": url},
    )
    env = {"BRIDGE_RUN_WORKER": "0", "PROMETHEUS_MULTIPROC_DIR": str(tmp_path / "prometheus")}
    with BridgeProcess(url, env=env, workers=2) as bridge:
        found = samples(bridge)
    expected = [
        ("bridge_sla_breaches_total", {"priority": "P1"}),
        ("bridge_sla_breaches_total", {"priority": "P5"}),
        ("bridge_jira_requests_total", {"operation": "create_issue", "outcome": "success"}),
        ("bridge_jira_requests_total", {"operation": "search", "outcome": "timeout"}),
        ("bridge_jira_requests_total", {"operation": "link_issues", "outcome": "success"}),
        ("bridge_jira_twin_issues_total", {"found_at": "sync"}),
        ("bridge_jira_issue_moves_total", {}),
        ("bridge_zabbix_requests_total", {"method": "event.acknowledge", "outcome": "api_error"}),
        ("bridge_notifications_received_total", {"source": "zabbix", "outcome": "rejected"}),
        ("bridge_incidents_opened_total", {"source": "alertmanager", "line": "L3", "priority": "P2"}),
        ("bridge_incidents_closed_total", {"reason": "released"}),
        ("bridge_webhook_request_duration_seconds_count", {"source": "alertmanager"}),
        ("bridge_incidents_open", {"line": "L3", "priority": "P1", "source": "zabbix"}),
        ("bridge_incidents_sla_breached", {"priority": "P2"}),
        ("bridge_problems_open", {"state": "known_error"}),
        ("bridge_outbox_pending", {"target": "zabbix"}),
        ("bridge_outbox_dead", {"target": "jira"}),
    ]
    for name, labels in expected:
        key = (name, tuple(sorted(labels.items())))
        assert key in found, f"{name}{labels} is missing from a fresh bridge's /metrics"
        assert found[key] == 0


def test_every_jira_call_is_among_the_initialised_operations():
    """A call named outside jira_link.client.OPERATIONS would have no series until it first happens."""
    import re

    from jira_link import client

    called = set(re.findall(r'self\._request\(\s*"([a-z_]+)"', Path(client.__file__).read_text()))
    assert called and called == set(client.OPERATIONS)
