"""Logs an operator can use: every request once with its id, failing jobs with theirs, no secrets at DEBUG."""

from __future__ import annotations

import json
import logging
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import requests

from adapters.zabbix_api import ZabbixClient
from bridge.logs import QUIET_LIBRARIES, configure_logging
from bridge.outbox.jobs import ZabbixClose
from bridge.storage.engine import migrate
from bridge.storage.store import Store
from bridge.worker import OutboxRunner
from jira_link.client import JiraClient
from jira_link.linker import LinkOptions
from tests.conftest import BridgeProcess, build_app
from tests.fakes import FakeJira, FakeZabbix

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


@pytest.fixture
def configured_logging() -> Iterator[None]:
    """Let a test configure the root logger as a command does, and put it back afterwards."""
    root = logging.getLogger()
    saved = root.handlers[:], root.level, {name: logging.getLogger(name).level for name in QUIET_LIBRARIES}
    yield
    root.handlers[:] = saved[0]
    root.setLevel(saved[1])
    for name, level in saved[2].items():
        logging.getLogger(name).setLevel(level)


def json_lines(text: str) -> list[dict]:
    return [json.loads(line) for line in text.splitlines() if line.startswith("{")]


def test_a_500_names_a_request_id_that_the_log_has(tmp_path: Path, monkeypatch, capsys, configured_logging):
    app = build_app(tmp_path, {"BRIDGE_TOKEN_API": "api-token"})
    configure_logging("INFO", "json")
    monkeypatch.setattr(app.extensions["bridge"].store, "list_incidents", lambda *args: 1 / 0)
    answer = app.test_client().get("/api/v1/incidents?state=firing", headers={"Authorization": "Bearer api-token"})
    assert answer.status_code == 500
    request_id = answer.json["request_id"]
    lines = json_lines(capsys.readouterr().err)
    [error] = [line for line in lines if line["message"] == "unhandled error"]
    assert error["request_id"] == request_id and "ZeroDivisionError" in error["exception"]
    [logged] = [line for line in lines if line["message"] == "request"]
    assert (logged["method"], logged["path"], logged["status"], logged["request_id"]) == (
        "GET",
        "/api/v1/incidents",
        500,
        request_id,
    )
    assert logged["duration_ms"] >= 0


def test_debug_logs_show_no_zabbix_or_jira_token(capsys, configured_logging):
    configure_logging("DEBUG", "text")
    with FakeZabbix(api_token="zbx-SECRET-in-body") as zabbix, FakeJira(api_token="jira-SECRET-9") as jira:
        ZabbixClient(zabbix.url, "zbx-SECRET-in-body", timeout=5).close_problems(["42"], "closed by the bridge")
        jira.add_issue("LKK-1")
        JiraClient.basic(requests.Session(), jira.url, "bot@example.com", "jira-SECRET-9", timeout=5).get_issue("LKK-1")
        assert zabbix.closed() == {"42"}
    logged = capsys.readouterr().err
    assert "Zabbix API version is" in logged, "the libraries still log at INFO"
    assert "zbx-SECRET-in-body" not in logged and "jira-SECRET-9" not in logged


def test_failing_job_is_logged_with_its_id_kind_attempt_and_error(
    tmp_path: Path, capsys, configured_logging, example_rules
):
    url = f"sqlite:///{tmp_path / 'jobs.db'}"
    migrate(url)
    store = Store.from_url(url)
    store.run(
        lambda conn: store.enqueue(
            conn, ZabbixClose.KIND, target="zabbix", now=T0, payload={"event_ids": ["42"], "message": "m"}
        )
    )
    configure_logging("INFO", "text")
    OutboxRunner(
        store, example_rules, None, LinkOptions(marker_prefix="ib", public_url="http://b"), timedelta(hours=1), 600
    ).run_due(T0)
    store.engine.dispose()
    [line] = [line for line in capsys.readouterr().err.splitlines() if "outbox job will be retried" in line]
    assert 'job_id=1 kind=zabbix.close_problems attempt=1 error="Zabbix API is not configured' in line


@pytest.mark.parametrize(
    "server, logger, boot",
    [("granian", "_granian", "Spawning worker"), ("gunicorn", "gunicorn.error", "Booting worker")],
)
def test_serve_logs_json_lines_for_the_server_and_each_request(tmp_path: Path, server, logger, boot):
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    migrate(url)
    env = {
        "BRIDGE_LOG_FORMAT": "json",
        "BRIDGE_RUN_WORKER": "0",
        "BRIDGE_HTTP_WORKERS": "1",
        "BRIDGE_HTTP_SERVER": server,
    }
    with BridgeProcess(url, env=env, workers=1) as bridge:
        answer = requests.get(bridge.url + "/api/v1/incidents", headers={"X-Request-ID": "given-id-1"}, timeout=10)
        assert answer.headers["X-Request-ID"] == "given-id-1"
        requests.get(bridge.url + "/healthz", timeout=10)
        output = bridge.output()
    lines = output.splitlines()
    assert lines and all(line.startswith("{") for line in lines), output
    records = json_lines(output)
    assert any(r["logger"] == logger and r["message"].startswith(boot) for r in records)
    [logged] = [r for r in records if r.get("request_id") == "given-id-1"]
    assert (logged["message"], logged["path"], logged["status"]) == ("request", "/api/v1/incidents", 200)


def test_text_logs_of_hostile_paths_and_headers_hold_no_raw_control_characters(
    tmp_path: Path, capsys, configured_logging
):
    """An unauthenticated request path or header with terminal escapes (ESC, BEL, C1 CSI, DEL, line
    separators) reaches the text log escaped: it can neither colour nor clear a terminal nor forge a line."""
    app = build_app(tmp_path, {"BRIDGE_TOKEN_API": "api-token"})
    configure_logging("INFO", "text")
    client = app.test_client()
    assert client.get("/%1b[31mred%1b[2J%07%c2%9b%7f").status_code == 404
    assert client.get("/%1b[31mred%1b[2J%07%c2%9b%7f%e2%80%a8x").status_code == 404
    hostile_header = "text/x\x1b[31m\x1b]0;pwned\x07\x9b1m\x7f\u2028"
    answer = client.post(
        "/api/v1/alerts/alertmanager", data=b"{}", headers={"Content-Type": hostile_header, "X-Request-ID": "\x1b[2J"}
    )
    assert answer.status_code == 415
    lines = capsys.readouterr().err.splitlines()
    assert lines and all(line.isprintable() for line in lines), [line for line in lines if not line.isprintable()]
    assert any('path="/\\u001b[31mred\\u001b[2J\\u0007\\u009b\\u007f"' in line for line in lines), lines
    assert any('path="/\\u001b[31mred\\u001b[2J\\u0007\\u009b\\u007f\\u2028x"' in line for line in lines), lines
