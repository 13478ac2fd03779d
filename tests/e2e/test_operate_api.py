"""Acting over the API on SQLite and PostgreSQL: the operate token, the actor recorded, each action's answers.

Reading tokens no longer act: every acting endpoint refuses the read token (401) and
records the name of whoever acted (X-Bridge-Actor, or the trusted proxy's user header).
"""

from __future__ import annotations

import re
from collections.abc import Iterator

import pytest

from bridge.app import create_app
from bridge.config import load_settings
from bridge.worker import OutboxRunner
from tests.conftest import ROOT, Clock, payload
from tests.fakes import FakeJira

READ = {"Authorization": "Bearer api-token"}
OPERATE = {"Authorization": "Bearer operate-token", "Content-Type": "application/json"}


def as_(name: str) -> dict[str, str]:
    return {**OPERATE, "X-Bridge-Actor": name}


@pytest.fixture
def fake_jira() -> Iterator[FakeJira]:
    with FakeJira() as jira:
        yield jira


@pytest.fixture
def app(database_url: str, clock: Clock, fake_jira: FakeJira):
    environ = {
        "BRIDGE_TOKEN_API": "api-token",
        "BRIDGE_TOKEN_OPERATE": "operate-token",
        "BRIDGE_TOKEN_RELEASE": "release-token",
        "BRIDGE_JIRA_URL": fake_jira.url,
        "BRIDGE_JIRA_EMAIL": "bot@example.com",
        "BRIDGE_JIRA_API_TOKEN": "jira-token",
        "BRIDGE_TRUSTED_PROXIES": "10.0.0.1",
        "BRIDGE_TRUSTED_USER_HEADER": "X-Forwarded-User",
    }
    settings = load_settings(environ, database_url=database_url, rules_path=str(ROOT / "rules.yaml"))
    app = create_app(settings, now=clock)
    yield app
    app.extensions["bridge"].store.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def problem_id(client) -> int:
    """A Zabbix problem (rule zabbix-trigger: Jira project LKK, but the bridge does not file the issue)."""
    client.post("/api/v1/alerts/zabbix", json=payload("zabbix-6.0.14-problem.json"))
    [problem] = client.get("/api/v1/problems", headers=READ).json["items"]
    return problem["id"]


def history(client, problem_id: int) -> list[tuple[str, str | None]]:
    return [(e["kind"], e["actor"]) for e in client.get(f"/api/v1/problems/{problem_id}", headers=READ).json["history"]]


ACTIONS = [
    ("post", "/api/v1/problems/{p}/jira", {"jira_key": "LKK-1"}),
    ("delete", "/api/v1/problems/{p}/jira", None),
    ("post", "/api/v1/problems/{p}/jira/create", None),
    ("post", "/api/v1/problems/{p}/close", {"reason": "x"}),
    ("post", "/api/v1/problems/{p}/reopen", {"reason": "x"}),
    ("post", "/api/v1/problems/{p}/notes", {"text": "x"}),
    ("post", "/api/v1/incidents/{i}/ack", {"note": "x"}),
    ("post", "/api/v1/outbox/{p}/retry", None),
]


@pytest.mark.parametrize("method, path, body", ACTIONS)
def test_reading_tokens_no_longer_act(client, problem_id, method, path, body):
    url = path.format(p=problem_id, i=1)
    for headers in ({}, READ):
        refused = getattr(client, method)(url, json=body, headers={**headers, "Content-Type": "application/json"})
        assert refused.status_code == 401, (url, refused.json)
    assert history(client, problem_id) == [("opened", None)], "nothing was done"


def test_the_operate_token_does_not_read(client, problem_id):
    assert client.get("/api/v1/problems", headers=OPERATE).status_code == 401


def test_acknowledge_records_who_and_stops_the_response_clock(client, problem_id, clock):
    [incident] = client.get("/api/v1/incidents", headers=READ).json["items"]
    assert incident["response_due"] is not None and incident["acknowledged_at"] is None
    acked = client.post(f"/api/v1/incidents/{incident['id']}/ack", json={"note": "looking"}, headers=as_("Ann Lee"))
    assert acked.status_code == 200, acked.json
    assert (acked.json["acknowledged_by"], acked.json["acknowledged_at"]) == ("Ann Lee", "2026-11-23T19:00:00Z")
    assert acked.json["response_breached"] is False
    assert ("acknowledged", "Ann Lee") in history(client, problem_id)
    again = client.post(f"/api/v1/incidents/{incident['id']}/ack", headers=as_("Bob"))
    assert again.status_code == 409 and "already acknowledged by Ann Lee" in again.json["message"]
    assert client.post("/api/v1/incidents/999/ack", headers=OPERATE).status_code == 404


def test_an_acknowledgement_without_a_body_or_a_name_is_recorded_as_the_api(client, problem_id):
    """No body, but declared JSON as every acting request is (curl -X POST -H 'Content-Type: application/json')."""
    undeclared = client.post("/api/v1/incidents/1/ack", headers={"Authorization": OPERATE["Authorization"]})
    assert undeclared.status_code == 415 and undeclared.json["message"] == "expected Content-Type: application/json"
    assert client.get("/api/v1/incidents/1", headers=READ).json["acknowledged_at"] is None
    acked = client.post("/api/v1/incidents/1/ack", headers=OPERATE)
    assert acked.status_code == 200 and acked.json["acknowledged_by"] == "api"


@pytest.mark.parametrize(
    "body, headers, error",
    [
        ({"note": ""}, {}, "note"),
        ({"note": "x" * 2001}, {}, "note"),
        ({"note": "a\x00b"}, {}, "NUL"),
        ({"other": 1}, {}, "other: unknown key"),
        ([1], {}, "not a JSON object"),
        ({}, {"X-Bridge-Actor": "x" * 201}, "X-Bridge-Actor"),
        ({}, {"X-Bridge-Actor": "tab\there"}, "control characters"),
    ],
)
def test_a_bad_acknowledgement_is_refused_naming_the_field(client, problem_id, body, headers, error):
    refused = client.post("/api/v1/incidents/1/ack", json=body, headers={**OPERATE, **headers})
    assert refused.status_code == 400 and error in " ".join([refused.json["message"], *refused.json["errors"]])
    assert client.get("/api/v1/incidents/1", headers=READ).json["acknowledged_at"] is None


def test_a_note_joins_the_history_with_its_author(client, problem_id):
    added = client.post(f"/api/v1/problems/{problem_id}/notes", json={"text": "DBA paged"}, headers=as_("Ann"))
    assert added.status_code == 201 and added.json["id"] == problem_id
    [note] = [
        e for e in client.get(f"/api/v1/problems/{problem_id}", headers=READ).json["history"] if e["kind"] == "note"
    ]
    assert (note["detail"], note["actor"]) == ("DBA paged", "Ann")
    assert client.post(f"/api/v1/problems/{problem_id}/notes", json={"text": ""}, headers=OPERATE).status_code == 400
    assert client.post("/api/v1/problems/999/notes", json={"text": "x"}, headers=OPERATE).status_code == 404


def test_create_the_issue_now_queues_it_and_the_worker_files_and_links_it(app, client, problem_id, fake_jira, clock):
    queued = client.post(f"/api/v1/problems/{problem_id}/jira/create", headers=as_("Ann"))
    assert queued.status_code == 202 and queued.json["jira_project"] == "LKK"
    assert ("issue_requested", "Ann") in history(client, problem_id)
    ctx = app.extensions["bridge"]
    [job] = ctx.store.list_jobs("pending", 10, None).items
    assert (job["kind"], job["payload"]["priority"]) == ("jira.ensure_issue", "P2"), (
        "filed with its incident's priority"
    )
    OutboxRunner.from_settings(ctx.store, ctx.rules, ctx.settings).run_due(clock())
    linked = client.get(f"/api/v1/problems/{problem_id}", headers=READ).json
    assert linked["jira_key"] in {issue["key"] for issue in fake_jira.issues()}
    again = client.post(f"/api/v1/problems/{problem_id}/jira/create", headers=OPERATE)
    assert again.status_code == 409 and "already linked" in again.json["message"]


def test_link_unlink_close_and_reopen_each_record_their_actor(client, problem_id, fake_jira):
    fake_jira.add_issue("LKK-42")
    linked = client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-42"}, headers=as_("Ann"))
    assert linked.status_code == 200 and linked.json["jira_key"] == "LKK-42"
    assert client.delete(f"/api/v1/problems/{problem_id}/jira", headers=as_("Bob")).json["jira_key"] is None
    closed = client.post(f"/api/v1/problems/{problem_id}/close", json={"reason": "fixed by hand"}, headers=as_("Cy"))
    assert closed.json["state"] == "closed"
    reopened = client.post(f"/api/v1/problems/{problem_id}/reopen", json={"reason": "back"}, headers=as_("Di"))
    assert reopened.json["state"] == "open"
    assert history(client, problem_id)[1:] == [
        ("linked", "Ann"),
        ("unlinked", "Bob"),
        ("closed", "Cy"),
        ("reopened", "Di"),
    ]
    [incident] = client.get("/api/v1/incidents", headers=READ).json["items"]
    assert incident["close_reason"] == "problem closed by hand by Cy: fixed by hand"


def test_an_unlink_before_the_link_back_ran_files_no_issue_behind_the_persons_back(
    app, client, problem_id, fake_jira, clock
):
    """Linking by hand queues a link-back job; unlinking before the worker ran it cancels it."""
    fake_jira.add_issue("LKK-42")
    client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-42"}, headers=as_("Ann"))
    ctx = app.extensions["bridge"]
    assert [j["kind"] for j in ctx.store.list_jobs("pending", 10, None).items].count("jira.ensure_issue") == 1
    client.delete(f"/api/v1/problems/{problem_id}/jira", headers=as_("Bob"))
    OutboxRunner.from_settings(ctx.store, ctx.rules, ctx.settings).run_due(clock())
    assert client.get(f"/api/v1/problems/{problem_id}", headers=READ).json["jira_key"] is None
    assert [issue["key"] for issue in fake_jira.issues()] == ["LKK-42"], "no issue was filed"
    assert fake_jira.calls("POST", r"/remotelink$") == []


def test_behind_a_trusted_proxy_its_user_header_names_the_actor(client, problem_id):
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    headers = {**as_("claimed"), "X-Forwarded-User": "ann@example.com"}
    acked = client.post("/api/v1/incidents/1/ack", headers=headers, environ_base=proxy)
    assert acked.json["acknowledged_by"] == "ann@example.com"


def test_the_user_header_from_anyone_else_is_ignored(client, problem_id):
    headers = {**as_("Bob"), "X-Forwarded-User": "ann@example.com"}
    acked = client.post("/api/v1/incidents/1/ack", headers=headers, environ_base={"REMOTE_ADDR": "10.0.0.2"})
    assert acked.json["acknowledged_by"] == "Bob"


def test_release_health_over_http(client, problem_id, fake_jira, clock):
    fake_jira.add_issue("LKK-7")
    client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-7"}, headers=OPERATE)
    release = {"project": "LKK", "version": "2026.12.1", "issues": ["LKK-7"], "environments": ["prod"]}
    clock.advance(minutes=1)  # shipped after the first incident
    shipped = client.post("/api/v1/releases", json=release, headers={"Authorization": "Bearer release-token"})
    assert shipped.status_code == 200 and shipped.json["environments"] == ["prod"]
    clock.advance(hours=1)
    client.post("/api/v1/alerts/zabbix", json=dict(payload("zabbix-6.0.14-problem.json"), event_id="2"))
    shown = client.get("/api/v1/releases/LKK/2026.12.1", headers=READ)
    assert shown.status_code == 200
    assert shown.json["closed"]["problems"] == [problem_id] and shown.json["environments"] == ["prod"]
    assert shown.json["opened_after"]["incident_count"] == 1
    assert [r["problem_id"] for r in shown.json["regressions"]] == [problem_id]
    assert shown.json["watch"]["seconds"] == 86400 and shown.json["watch"]["complete"] is False
    assert client.get("/api/v1/releases/LKK/9.9", headers=READ).status_code == 404
    assert client.get("/api/v1/releases/LKK/2026.12.1", headers=OPERATE).status_code == 401
    bad = dict(release, environments=["has space"])
    refused = client.post("/api/v1/releases", json=bad, headers={"Authorization": "Bearer release-token"})
    assert refused.status_code == 400 and "environments" in refused.json["errors"][0]


def test_the_release_page_shows_its_health(client, problem_id, fake_jira, clock):
    fake_jira.add_issue("LKK-8")
    client.post(f"/api/v1/problems/{problem_id}/jira", json={"jira_key": "LKK-8"}, headers=OPERATE)
    clock.advance(minutes=1)
    release = {"project": "LKK", "version": "2026.12.2", "issues": ["LKK-8"], "environments": ["prod", "stage"]}
    client.post("/api/v1/releases", json=release, headers={"Authorization": "Bearer release-token"})
    clock.advance(hours=2)
    client.post("/api/v1/alerts/zabbix", json=dict(payload("zabbix-6.0.14-problem.json"), event_id="5"))
    client.post("/ui/login", data={"token": "api-token"})
    page = client.get("/ui/releases/LKK/2026.12.2")
    html = page.get_data(as_text=True)
    assert page.status_code == 200
    assert '<dd id="environments">prod, stage</dd>' in html
    assert '<dd id="regression-count">1</dd>' in html and '<strong id="opened-incidents">1</strong>' in html
    assert f'href="/ui/problems/{problem_id}"' in html
    assert client.get("/ui/releases/LKK/nope").status_code == 404
    assert 'href="/ui/releases/LKK/2026.12.2"' in client.get("/ui/").get_data(as_text=True)


def test_behind_a_trusted_proxy_the_sign_in_takes_the_name_from_it(client, problem_id):
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    headers = {"X-Forwarded-User": "ann@example.com"}
    form = client.get("/ui/login", headers=headers, environ_base=proxy).get_data(as_text=True)
    assert "recorded as <strong>ann@example.com</strong>" in form and 'id="name"' not in form
    signed = client.post("/ui/login", data={"token": "operate-token"}, headers=headers, environ_base=proxy)
    assert signed.status_code == 302
    page = client.get("/ui/incidents/1", headers=headers, environ_base=proxy).get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    acked = client.post("/ui/incidents/1/ack", data={"csrf_token": csrf}, headers=headers, environ_base=proxy)
    assert acked.status_code == 303
    assert client.get("/api/v1/incidents/1", headers=READ).json["acknowledged_by"] == "ann@example.com"


def metric(text: str, series: str) -> float:
    """The value of one series in an exposition (metrics are per process: tests compare before and after)."""
    found = re.search(rf"^{re.escape(series)} (\S+)$", text, re.MULTILINE)
    assert found, f"{series} is missing"
    return float(found.group(1))


def test_response_metrics_exist_from_start_and_count_an_acknowledgement(client, problem_id):
    """P1..P5 series of the response breaches and the response time exist before any event of theirs."""
    text = client.get("/metrics").get_data(as_text=True)
    for priority in ("P1", "P2", "P3", "P4", "P5"):
        metric(text, f'bridge_response_breaches_total{{priority="{priority}"}}')
        metric(text, f'bridge_incident_response_seconds_count{{priority="{priority}"}}')
    series = 'bridge_incident_response_seconds_count{priority="P2"}'
    client.post("/api/v1/incidents/1/ack", headers=OPERATE)
    assert metric(client.get("/metrics").get_data(as_text=True), series) == metric(text, series) + 1


def test_an_unusable_name_from_the_proxy_refuses_the_action_not_the_page(client, problem_id):
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    headers = {"X-Forwarded-User": "bad\x07name"}
    client.post("/ui/login", data={"token": "operate-token", "name": "Ann"}, environ_base=proxy)
    page = client.get("/ui/incidents/1", headers=headers, environ_base=proxy)
    assert page.status_code == 200
    csrf = page.get_data(as_text=True).split('name="csrf_token" value="')[1].split('"')[0]
    client.post("/ui/incidents/1/ack", data={"csrf_token": csrf}, headers=headers, environ_base=proxy)
    shown = client.get("/ui/incidents/1", environ_base=proxy).get_data(as_text=True)
    assert "invalid X-Forwarded-User" in shown and 'role="alert"' in shown
    assert client.get("/api/v1/incidents/1", headers=READ).json["acknowledged_at"] is None
