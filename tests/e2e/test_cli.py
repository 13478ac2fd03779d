"""The incident-bridge command as an operator uses it."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import requests
import yaml
from click.testing import CliRunner

from bridge.cli import main
from bridge.config import TOKEN_GROUPS
from bridge.storage.engine import schema_is_current
from tests.conftest import PAYLOADS, ROOT, BridgeProcess


@pytest.fixture
def runner():
    return CliRunner()


def test_check_rules_accepts_the_example(runner):
    result = runner.invoke(main, ["check-rules", str(ROOT / "rules.yaml")])
    assert result.exit_code == 0 and "OK (6 routes)" in result.output


def test_check_rules_lists_every_problem_and_exits_1(runner, tmp_path: Path):
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        (ROOT / "rules.yaml")
        .read_text()
        .replace("urgency: low\n", "urgency: whenever\n", 1)
        .replace("impact: high\n", "impakt: high\n", 1)
    )
    result = runner.invoke(main, ["check-rules", str(bad)])
    assert result.exit_code == 1
    assert 'route "portal-critical" key impakt: unknown key' in result.output


def test_check_rules_names_a_transition_field_jira_cannot_take(runner, tmp_path: Path):
    bad = tmp_path / "rules.yaml"
    bad.write_text(
        (ROOT / "rules.yaml")
        .read_text()
        .replace("      project: LKK ", "      transition_fields: {Done: {resolution: yes}}\n      project: LKK ", 1)
    )
    result = runner.invoke(main, ["check-rules", str(bad)])
    assert result.exit_code == 1
    assert (
        'problem rule "portal-errors" key jira.transition_fields: Done.resolution: must be a string, a number '
        "or an object such as {name: Fixed}, not True"
    ) in result.output


def test_explain_prints_key_line_priority_and_reasons(runner):
    result = runner.invoke(
        main,
        [
            "explain",
            "--source",
            "alertmanager",
            "--rules",
            str(ROOT / "rules.yaml"),
            str(PAYLOADS / "alertmanager-0.25-two-firing.json"),
        ],
    )
    assert result.exit_code == 0, result.output
    assert "incident key: alertmanager:3d64f6474bce3ff4" in result.output
    assert "line: L3  priority: P1 (impact high, urgency high)" in result.output
    assert 'because: route "portal-critical" matched' in result.output


def test_explain_zabbix_uses_problem_event_id(runner):
    result = runner.invoke(
        main,
        [
            "explain",
            "--source",
            "zabbix",
            "--rules",
            str(ROOT / "rules.yaml"),
            str(PAYLOADS / "zabbix-6.0.14-recovery.json"),
        ],
    )
    assert "incident key: zabbix:1" in result.output and "priority: P2" in result.output


def test_explain_refused_payload_exits_1_with_reasons(runner, tmp_path: Path):
    body = tmp_path / "bad.json"
    body.write_text('{"version": "3"}')
    result = runner.invoke(
        main, ["explain", "--source", "alertmanager", "--rules", str(ROOT / "rules.yaml"), str(body)]
    )
    assert result.exit_code == 1 and "version: Input should be '4'" in result.output


def test_migrate_then_schema_is_current(runner, tmp_path: Path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    monkeypatch.setenv("BRIDGE_DATABASE_URL", url)
    assert not schema_is_current(url)
    result = runner.invoke(main, ["migrate"])
    assert result.exit_code == 0 and schema_is_current(url)


def test_serve_refuses_an_unmigrated_database(runner, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    monkeypatch.setenv("BRIDGE_RULES", str(ROOT / "rules.yaml"))
    result = runner.invoke(main, ["serve"])
    assert result.exit_code == 1 and "run `incident-bridge migrate` first" in result.output


def test_serve_migrate_on_a_fresh_database_migrates_then_serves(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    with BridgeProcess(url, {"BRIDGE_RUN_WORKER": "0"}, workers=1, options=("--migrate",)) as bridge:
        assert requests.get(bridge.url + "/readyz", timeout=5).json() == {"status": "ok", "database": "ok"}
    assert schema_is_current(url)


def test_serve_migrate_refuses_a_network_bind_without_tokens_before_touching_the_database(
    runner, tmp_path: Path, monkeypatch
):
    database = tmp_path / "untouched.db"
    monkeypatch.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{database}")
    monkeypatch.setenv("BRIDGE_BIND", "0.0.0.0:8080")
    for variable in TOKEN_GROUPS.values():
        monkeypatch.delenv(variable, raising=False)
    result = runner.invoke(main, ["serve", "--migrate"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0:8080 without BRIDGE_TOKEN_" in result.output
    assert not database.exists()


def test_migrate_names_a_database_it_cannot_reach(runner, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'missing' / 'bridge.db'}")
    result = runner.invoke(main, ["migrate"])
    assert result.exit_code == 1
    assert "cannot migrate: cannot open the database's lock file:" in result.output
    assert "Traceback" not in result.output


def test_worker_refuses_an_unmigrated_database(runner, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    monkeypatch.setenv("BRIDGE_RULES", str(ROOT / "rules.yaml"))
    result = runner.invoke(main, ["worker"])
    assert result.exit_code == 1 and "run `incident-bridge migrate` first, or start with --migrate" in result.output


def test_worker_run_as_root_says_so_in_its_log(runner, tmp_path: Path, monkeypatch, caplog):
    monkeypatch.setattr("bridge.cli.os.geteuid", lambda: 0)
    monkeypatch.setenv("BRIDGE_DATABASE_URL", f"sqlite:///{tmp_path / 'new.db'}")
    monkeypatch.setenv("BRIDGE_RULES", str(ROOT / "rules.yaml"))
    runner.invoke(main, ["worker"])
    assert any(record.levelname == "WARNING" and "running as root" in record.getMessage() for record in caplog.records)


def test_bad_setting_is_a_clear_error(runner, monkeypatch):
    monkeypatch.setenv("BRIDGE_HTTP_WORKERS", "many")
    result = runner.invoke(main, ["serve"])
    assert result.exit_code == 1 and "BRIDGE_HTTP_WORKERS" in result.output


def test_serve_on_the_network_with_a_token_missing_refuses_naming_it(runner, monkeypatch):
    for name, value in {
        "BRIDGE_BIND": "0.0.0.0:8080",
        "BRIDGE_TOKEN_ALERTMANAGER": "a",
        "BRIDGE_TOKEN_ZABBIX": "z",
        "BRIDGE_TOKEN_GRAFANA": "g",
        "BRIDGE_TOKEN_API": "p",
        "BRIDGE_TOKEN_OPERATE": "o",
        "BRIDGE_TOKEN_TICKETS": "t",
        "BRIDGE_TOKEN_HEARTBEATS": "h",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("BRIDGE_TOKEN_RELEASE", raising=False)
    result = runner.invoke(main, ["serve"])
    assert result.exit_code == 1
    assert "refusing to listen on 0.0.0.0:8080 without BRIDGE_TOKEN_RELEASE:" in result.output


def test_serve_on_the_network_with_a_weak_token_refuses_naming_it(runner, monkeypatch):
    for variable in TOKEN_GROUPS.values():
        monkeypatch.setenv(variable, f"{variable}-long-enough")
    monkeypatch.setenv("BRIDGE_BIND", "0.0.0.0:8080")
    monkeypatch.setenv("BRIDGE_TOKEN_API", "changeme")
    result = runner.invoke(main, ["serve"])
    assert result.exit_code == 1
    assert "BRIDGE_TOKEN_API shorter than 16 characters" in result.output and "changeme" not in result.output


def test_serve_with_an_empty_token_variable_refuses_naming_it(runner, monkeypatch):
    monkeypatch.setenv("BRIDGE_TOKEN_API", "")
    result = runner.invoke(main, ["serve"])
    assert result.exit_code == 1 and "BRIDGE_TOKEN_API: is set but empty" in result.output


def test_outbox_retry_requeues_dead_jobs_and_names_skipped_ones(runner, tmp_path: Path, monkeypatch):
    from datetime import UTC, datetime

    from bridge.storage.engine import migrate
    from bridge.storage.store import Store

    url = f"sqlite:///{tmp_path / 'outbox.db'}"
    migrate(url)
    store = Store.from_url(url)
    now = datetime.now(UTC)

    def enqueue(key: str) -> None:
        store.run(lambda conn: store.enqueue(conn, "jira.sync_issue", target="jira", now=now, dedup_key=key))

    enqueue("jira.sync_issue:LKK-1")
    enqueue("jira.sync_issue:LKK-2")
    store.bury_job(1, now, "HTTP 401")
    store.bury_job(2, now, "HTTP 401")
    enqueue("jira.sync_issue:LKK-1")  # job 3: the same work, queued again meanwhile
    store.engine.dispose()
    monkeypatch.setenv("BRIDGE_DATABASE_URL", url)
    result = runner.invoke(main, ["outbox", "retry", "--kind", "jira.sync_issue"])
    assert result.exit_code == 0, result.output
    assert "job 1 skipped: pending job 3 has the same dedup key" in result.output
    assert "retried 1 dead job(s): 2" in result.output
    missing = runner.invoke(main, ["outbox", "retry", "--id", "2"])
    assert missing.exit_code == 1 and "no dead outbox job 2" in missing.output


def _rules_with_routing_key(tmp_path: Path) -> Path:
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["events"] = {
        "routing_keys": [{"name": "portal-uptime", "key": "${BRIDGE_TEST_EVENTS_KEY}", "labels": {"service": "portal"}}]
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


def test_check_rules_names_an_unset_routing_key_variable(runner, tmp_path: Path, monkeypatch):
    monkeypatch.delenv("BRIDGE_TEST_EVENTS_KEY", raising=False)
    result = runner.invoke(main, ["check-rules", str(_rules_with_routing_key(tmp_path))])
    assert result.exit_code == 1
    assert (
        'events routing key "portal-uptime" key key: environment variable not set: BRIDGE_TEST_EVENTS_KEY'
        in result.output
    )


def test_explain_events_keys_by_routing_key_name_with_its_labels(runner, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("BRIDGE_TEST_EVENTS_KEY", "e2e0f5b1c8d94a2b9c7d6e5f4a3b2c1d")
    rules = str(_rules_with_routing_key(tmp_path))
    result = runner.invoke(
        main, ["explain", "--source", "events", "--rules", rules, str(PAYLOADS / "events-trigger.json")]
    )
    assert result.exit_code == 0, result.output
    assert "incident key: events:portal-uptime:samplekeyhere" in result.output
    monkeypatch.setenv("BRIDGE_TEST_EVENTS_KEY", "another-key")
    result = runner.invoke(
        main, ["explain", "--source", "events", "--rules", rules, str(PAYLOADS / "events-trigger.json")]
    )
    assert result.exit_code == 1 and "invalid routing key" in result.output


def _rules_with_watching(tmp_path: Path) -> Path:
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["heartbeats"] = [
        {
            "name": "watchdog",
            "source": "alertmanager",
            "match": {"labels": {"alertname": "Watchdog"}},
            "interval": "5m",
        },
        {"name": "export", "interval": "25h", "impact": "high", "urgency": "high"},
    ]
    rules["maintenance"] = [
        {
            "name": "sunday",
            "every": "sun 02:00-04:00",
            "timezone": "Europe/Berlin",
            "match": {"labels": {"service": "lkk"}},
        }
    ]
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    return path


def test_check_rules_counts_heartbeats_and_maintenance_windows(runner, tmp_path: Path):
    result = runner.invoke(main, ["check-rules", str(_rules_with_watching(tmp_path))])
    assert result.exit_code == 0 and "OK (6 routes, 2 heartbeats, 1 maintenance window)" in result.output


def test_explain_a_heartbeat_says_what_its_silence_raises(runner, tmp_path: Path):
    rules = str(_rules_with_watching(tmp_path))
    result = runner.invoke(main, ["explain", "--rules", rules, "--heartbeat", "export"])
    assert result.exit_code == 0
    assert "heard from POST /api/v1/heartbeats/export/ping; silence longer than 1d1h raises" in result.output
    assert "incident key: heartbeat:export" in result.output and "priority: P1" in result.output
    missing = runner.invoke(main, ["explain", "--rules", rules, "--heartbeat", "nope"])
    assert missing.exit_code == 1 and "heartbeats: watchdog, export" in missing.output
    neither = runner.invoke(main, ["explain", "--rules", rules])
    assert neither.exit_code == 2 and "give --source and FILE, or --heartbeat NAME" in neither.output


def test_explain_names_a_ping_and_the_recurring_window_that_would_hold_an_alert(runner, tmp_path: Path):
    rules = str(_rules_with_watching(tmp_path))
    body = tmp_path / "watchdog.json"
    notification = json.loads((PAYLOADS / "alertmanager-0.25-two-firing.json").read_text())
    notification["alerts"][0]["labels"] = {"alertname": "Watchdog", "severity": "none"}
    body.write_text(json.dumps(notification))
    result = runner.invoke(main, ["explain", "--source", "alertmanager", "--rules", rules, str(body)])
    assert result.exit_code == 0
    assert "alert 0: firing HighErrorRate on a:1\n  a ping of heartbeat watchdog: counted there, never an incident" in (
        result.output
    )
    assert (
        "held while recurring maintenance window 'sunday' (sun 02:00-04:00, Europe/Berlin) covers it" in result.output
    )


def test_check_rules_counts_projects_and_explain_names_the_deploys_that_would_mark_an_alert(runner, tmp_path: Path):
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["releases"] = {"environment_label": "env"}
    rules["projects"] = {
        "LKK": {"labels": {"service": "lkk"}, "hold": "side_effects"},
        "WEB": {"labels_regex": {"service": "web-.*"}},
    }
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules))
    checked = runner.invoke(main, ["check-rules", str(path)])
    assert checked.exit_code == 0 and "OK (6 routes, 2 projects)" in checked.output
    body = tmp_path / "lkk.json"
    notification = json.loads((PAYLOADS / "alertmanager-0.25-two-firing.json").read_text())
    notification["alerts"][0]["labels"] |= {"service": "lkk", "env": "prod"}
    body.write_text(json.dumps(notification))
    result = runner.invoke(main, ["explain", "--source", "alertmanager", "--rules", str(path), str(body)])
    assert result.exit_code == 0
    assert "  project LKK ships it: a deploy of LKK to prod marks and holds it until it settles" in result.output
    assert "project WEB" not in result.output
