"""What a committed notification adds to the ingest metrics, outcome by outcome."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from types import SimpleNamespace

from prometheus_client import REGISTRY

from bridge import metrics
from bridge.domain.incidents import AlertStatus, Outcome

SOURCE = "zabbix"
OPENED_AT = datetime(2026, 11, 26, 10, 0, tzinfo=UTC)


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def item(
    status: AlertStatus, outcome: Outcome, priority: str = "P2", resolved_after: int | None = None
) -> SimpleNamespace:
    resolved_at = OPENED_AT + timedelta(seconds=resolved_after) if resolved_after is not None else None
    incident = SimpleNamespace(
        line="L3",
        priority=priority,
        first_seen=OPENED_AT,
        resolved_at=resolved_at,
        held=False,
        hold_window=None,
        during_deploy=None,
    )
    return SimpleNamespace(alert=SimpleNamespace(status=status), outcome=outcome, incident=incident)


def test_each_outcome_lands_on_its_counter_and_a_resolution_is_timed():
    names = {
        "accepted": ("bridge_notifications_received_total", {"source": SOURCE, "outcome": "accepted"}),
        "partial": ("bridge_notifications_received_total", {"source": SOURCE, "outcome": "partial"}),
        "firing": ("bridge_alerts_received_total", {"source": SOURCE, "status": "firing"}),
        "resolved": ("bridge_alerts_received_total", {"source": SOURCE, "status": "resolved"}),
        "opened P2": ("bridge_incidents_opened_total", {"source": SOURCE, "line": "L3", "priority": "P2"}),
        "opened P1": ("bridge_incidents_opened_total", {"source": SOURCE, "line": "L3", "priority": "P1"}),
        "deduplicated": ("bridge_alerts_deduplicated_total", {"source": SOURCE}),
        "reopened": ("bridge_incidents_reopened_total", {"source": SOURCE}),
        "regressions": ("bridge_regressions_total", {}),
        "resolutions": ("bridge_incident_resolution_seconds_count", {}),
        "resolution seconds": ("bridge_incident_resolution_seconds_sum", {}),
    }
    before = {key: sample(name, **labels) for key, (name, labels) in names.items()}
    accepted = SimpleNamespace(
        parsed=SimpleNamespace(rejected=()),
        regressions=1,
        acknowledgements=(),
        results=[
            item(AlertStatus.FIRING, Outcome.CREATED),
            item(AlertStatus.FIRING, Outcome.CREATED),
            item(AlertStatus.FIRING, Outcome.CREATED, priority="P1"),
            item(AlertStatus.FIRING, Outcome.REOPENED),
            item(AlertStatus.FIRING, Outcome.REPEATED),
            item(AlertStatus.RESOLVED, Outcome.RESOLVED, resolved_after=600),
        ],
    )
    partial = SimpleNamespace(
        parsed=SimpleNamespace(rejected=(object(),)),
        regressions=0,
        acknowledgements=(),
        results=[item(AlertStatus.FIRING, Outcome.CREATED)],
    )

    metrics.record_ingest(SOURCE, accepted)
    metrics.record_ingest(SOURCE, partial)

    added = {key: sample(name, **labels) - before[key] for key, (name, labels) in names.items()}
    assert added == {
        "accepted": 1,
        "partial": 1,
        "firing": 6,
        "resolved": 1,
        "opened P2": 3,
        "opened P1": 1,
        "deduplicated": 3,
        "reopened": 1,
        "regressions": 1,
        "resolutions": 1,
        "resolution seconds": 600,
    }


def test_a_kept_child_is_the_one_the_metric_reports():
    child = metrics.labelled(metrics.DEDUPLICATED, SOURCE)
    assert child is metrics.labelled(metrics.DEDUPLICATED, SOURCE)
    before = sample("bridge_alerts_deduplicated_total", source=SOURCE)
    child.inc(2)
    assert sample("bridge_alerts_deduplicated_total", source=SOURCE) - before == 2


def test_a_ping_is_no_duplicate_and_an_opening_a_window_held_counts_for_that_window():
    held = item(AlertStatus.FIRING, Outcome.CREATED)
    held.incident.held, held.incident.hold_window = True, {"id": 3, "kind": "maintenance", "name": "db migration"}
    ping = SimpleNamespace(alert=SimpleNamespace(status=AlertStatus.FIRING), outcome=Outcome.PING, incident=None)
    before = (
        sample("bridge_alerts_deduplicated_total", source=SOURCE),
        sample("bridge_alerts_in_maintenance_total", window="db migration"),
    )
    metrics.record_ingest(
        SOURCE,
        SimpleNamespace(parsed=SimpleNamespace(rejected=()), regressions=0, acknowledgements=(), results=[held, ping]),
    )
    after = (
        sample("bridge_alerts_deduplicated_total", source=SOURCE),
        sample("bridge_alerts_in_maintenance_total", window="db migration"),
    )
    assert (after[0] - before[0], after[1] - before[1]) == (0, 1)


def test_an_alert_opened_during_a_deploy_counts_for_its_project_and_environment_and_a_deploy_hold_is_no_maintenance():
    marked = item(AlertStatus.FIRING, Outcome.CREATED)
    marked.incident.during_deploy = {"id": 4, "project": "LKK", "version": "2026.12.1", "environment": "prod"}
    held = item(AlertStatus.FIRING, Outcome.REOPENED)
    held.incident.during_deploy = dict(marked.incident.during_deploy)
    held.incident.held, held.incident.hold_window = True, {"id": 9, "kind": "deploy", "name": "deploy of LKK"}
    repeated = item(AlertStatus.FIRING, Outcome.REPEATED)
    repeated.incident.during_deploy = dict(marked.incident.during_deploy)
    before = (
        sample("bridge_alerts_during_deploy_total", project="LKK", environment="prod"),
        sample("bridge_alerts_in_maintenance_total", window="deploy of LKK"),
    )
    metrics.record_ingest(
        SOURCE,
        SimpleNamespace(
            parsed=SimpleNamespace(rejected=()), regressions=0, acknowledgements=(), results=[marked, held, repeated]
        ),
    )
    after = (
        sample("bridge_alerts_during_deploy_total", project="LKK", environment="prod"),
        sample("bridge_alerts_in_maintenance_total", window="deploy of LKK"),
    )
    assert (after[0] - before[0], after[1] - before[1]) == (2, 0), "a repeat opens nothing"


def test_each_deploy_told_counts_by_project_environment_and_phase():
    before = sample("bridge_deploys_total", project="LKK", environment="prod", phase="failed")
    metrics.count_deploy("LKK", "prod", "failed")
    assert sample("bridge_deploys_total", project="LKK", environment="prod", phase="failed") - before == 1
