"""Retention as an operator meets it: `incident-bridge prune`, bodies only on the single refused payload."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from click.testing import CliRunner

from bridge.cli import main
from bridge.storage.engine import migrate
from bridge.storage.schema import notifications, rejected_payloads
from bridge.storage.store import Store
from tests.conftest import Clock, build_app

API = {"Authorization": "Bearer api-token"}
AM = {"Authorization": "Bearer am-token", "Content-Type": "application/json"}


@pytest.fixture
def client(tmp_path: Path, clock: Clock):
    return build_app(
        tmp_path, {"BRIDGE_TOKEN_API": "api-token", "BRIDGE_TOKEN_ALERTMANAGER": "am-token"}, clock
    ).test_client()


def test_rejected_list_has_no_bodies_and_the_item_has_its_body(client):
    client.post("/api/v1/alerts/alertmanager", data=b"{not json", headers=AM)
    [listed] = client.get("/api/v1/rejected", headers=API).json["items"]
    assert "body" not in listed and listed["body_bytes"] == 9 and listed["body_truncated"] is False
    one = client.get(f"/api/v1/rejected/{listed['id']}", headers=API)
    assert one.status_code == 200 and one.json["body"] == "{not json" and one.json["reason"] == listed["reason"]
    assert client.get(f"/api/v1/rejected/{listed['id']}").status_code == 401
    missing = client.get("/api/v1/rejected/999", headers=API)
    assert missing.status_code == 404 and missing.json["message"] == "no rejected payload 999"


def test_rejected_ui_page_links_to_the_body_instead_of_showing_it(client):
    secret_looking = b'{"version": "4", "unusual-marker-in-body": '
    client.post("/api/v1/alerts/alertmanager", data=secret_looking, headers=AM)
    client.post("/ui/login", data={"token": "api-token"})
    page = client.get("/ui/rejected").get_data(as_text=True)
    assert "unusual-marker-in-body" not in page
    [rejected_id] = [item["id"] for item in client.get("/api/v1/rejected", headers=API).json["items"]]
    assert f"/ui/rejected/{rejected_id}" in page
    item = client.get(f"/ui/rejected/{rejected_id}").get_data(as_text=True)
    assert "unusual-marker-in-body" in item
    assert client.get("/ui/rejected/999").status_code == 404


def test_prune_command_reports_what_it_deleted(tmp_path: Path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'prune.db'}"
    migrate(url)
    store = Store.from_url(url)
    now = datetime.now(UTC)
    with store.engine.begin() as conn:
        for age in (timedelta(days=3), timedelta(hours=1)):
            conn.execute(
                notifications.insert(),
                dict(
                    source="alertmanager",
                    received_at=now - age,
                    alert_count=1,
                    rejected_count=0,
                    truncated_alerts=0,
                    body="{}",
                ),
            )
        conn.execute(
            rejected_payloads.insert(),
            dict(
                source="zabbix",
                received_at=now - timedelta(days=3),
                reason="r",
                errors=[],
                partial=False,
                body="x",
                body_truncated=False,
            ),
        )
    monkeypatch.setenv("BRIDGE_DATABASE_URL", url)
    runner = CliRunner()
    result = runner.invoke(main, ["prune"])
    assert result.exit_code == 0 and "deleted 0 notification(s) and 0 refused" in result.output, (
        "BRIDGE_RETENTION defaults to 30 days"
    )
    result = runner.invoke(main, ["prune", "--older-than", "2d"])
    assert result.exit_code == 0, result.output
    assert "deleted 1 notification(s) and 1 refused payload(s) received before " in result.output
    assert "pruned old raw payloads" in result.output and "notifications=1 rejected_payloads=1" in result.output
    bad = runner.invoke(main, ["prune", "--older-than", "soon"])
    assert bad.exit_code == 2 and "invalid duration 'soon'" in bad.output
    store.engine.dispose()
