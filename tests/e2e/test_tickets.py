"""Tickets and outbound webhooks end to end: people's tickets become incidents, join problems, are closed
with them and their systems told through signed, retried, idempotent deliveries; on SQLite and PostgreSQL."""

from __future__ import annotations

import json
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import datetime, timedelta
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from bridge.app import create_app
from bridge.cli import main
from bridge.config import load_settings
from bridge.rules.load import RulesError, parse_rules
from bridge.storage.store import Store
from bridge.worker import OutboxRunner, run_once
from tests.conftest import ROOT, Clock
from tests.receiver import Receiver, receivers

API = {"Authorization": "Bearer api-token"}
OPERATE = {"Authorization": "Bearer operate-token", "X-Bridge-Actor": "Ann", "Content-Type": "application/json"}
TICKETS = {"Authorization": "Bearer ticket-token"}
RELEASE = {"Authorization": "Bearer release-token"}
ITSM_SECRET, CHAT_SECRET = "itsm-signing-key", "chat-signing-key"
ALL_EVENTS = [
    "incident.opened",
    "incident.resolved",
    "incident.closed",
    "problem.opened",
    "problem.linked",
    "problem.closed",
    "problem.regressed",
    "release.received",
    "ticket.close",
]


def rules_with(chat_events: list[str], systems: dict[str, Any], chat_template: str | None = None) -> dict[str, Any]:
    """The example rules plus an ITSM ticket system, a chat notify target, and a problem rule that groups
    alerts and tickets of one service (so tickets join the alerts' problem)."""
    raw = yaml.safe_load((ROOT / "rules.yaml").read_text())
    raw["ticket_systems"] = {
        "itsm": {"url": "${TEST_ITSM_URL}", "secret_env": "TEST_ITSM_SECRET"},
        "quiet": {"url": "${TEST_ITSM_URL}", "secret_env": "TEST_ITSM_SECRET", "close_on_release": False},
        **systems,
    }
    raw["notify"] = [
        {"name": "chat", "url": "${TEST_CHAT_URL}", "secret_env": "TEST_CHAT_SECRET", "events": chat_events}
    ]
    if chat_template is not None:
        raw["notify"][0]["body_template"] = chat_template
    raw["problems"].insert(
        0,
        {
            "name": "service",
            "match": {"labels_regex": {"service": "checkout|billing"}},
            "key": "service/{{ labels.service }}",
            "summary": "{{ labels.service }} is failing",
            "example_labels": {"service": "checkout"},
        },
    )
    return raw


@dataclass
class Bridge:
    client: Any
    store: Store
    runner: OutboxRunner
    clock: Clock
    itsm: Receiver
    chat: Receiver

    def work(self, passes: int = 1) -> None:
        """Worker passes (auto-close, SLA, outbox), each after time enough for any backoff."""
        for _ in range(passes):
            run_once(self.store, self.clock(), self.runner)
            self.clock.advance(seconds=700)

    def report(self, ticket_id: str, service: str = "checkout", system: str = "itsm", **more: Any):
        body = {
            "system": system,
            "ticket_id": ticket_id,
            "summary": f"{service} broken",
            "labels": {"service": service},
        }
        return self.client.post("/api/v1/tickets", json={**body, **more}, headers=TICKETS)

    def alert(
        self, service: str, name: str = "CheckoutDown", status: str = "firing", starts: str = "2026-11-23T18:00:00Z"
    ):
        alert = {
            "status": status,
            "labels": {"alertname": name, "service": service, "severity": "critical"},
            "annotations": {"summary": f"{service} down"},
            "startsAt": starts,
            "endsAt": "0001-01-01T00:00:00Z" if status == "firing" else "2026-11-23T19:30:00Z",
            "fingerprint": f"fp{service}{name}",
        }
        body = {
            "version": "4",
            "groupKey": "{}:{}",
            "status": status,
            "receiver": "bridge",
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://am",
            "alerts": [alert],
        }
        answer = self.client.post("/api/v1/alerts/alertmanager", json=body)
        assert answer.status_code == 200, answer.json
        return answer.json

    def problem_of(self, service: str) -> dict[str, Any]:
        [problem] = [
            p
            for p in self.client.get("/api/v1/problems", headers=API).json["items"]
            if p["problem_key"] == f"service/{service}"
        ]
        return self.client.get(f"/api/v1/problems/{problem['id']}", headers=API).json

    def link_jira(self, problem_id: int, key: str) -> None:
        self.store.record_jira_link(problem_id, key, f"https://jira.example/browse/{key}", "manual")

    def release(self, version: str, key: str) -> dict[str, Any]:
        answer = self.client.post(
            "/api/v1/releases", json={"version": version, "project": "LKK", "issues": [key]}, headers=RELEASE
        )
        assert answer.status_code == 200, answer.json
        return answer.json


@pytest.fixture
def bridge_with(database_url: str, clock: Clock, monkeypatch: pytest.MonkeyPatch):
    """A bridge on the test's database with the receivers of ITSM and chat; chat wants the given events; more
    ticket systems, environment variables of the rules and settings as given."""
    made: list[Iterator[list[Receiver]]] = []

    def make(
        chat_events: list[str] = ALL_EVENTS,
        systems: dict[str, Any] | None = None,
        env: dict[str, str] | None = None,
        settings_env: dict[str, str] | None = None,
        chat_template: str | None = None,
    ) -> Bridge:
        started = receivers(ITSM_SECRET, CHAT_SECRET)
        made.append(started)
        itsm, chat = next(started)
        environ = {
            "TEST_ITSM_URL": itsm.url,
            "TEST_CHAT_URL": chat.url,
            "TEST_ITSM_SECRET": ITSM_SECRET,
            "TEST_CHAT_SECRET": CHAT_SECRET,
            **(env or {}),
        }
        rules = parse_rules(rules_with(chat_events, systems or {}, chat_template), environ=environ)
        settings = load_settings(
            {
                "BRIDGE_TOKEN_API": "api-token",
                "BRIDGE_TOKEN_OPERATE": "operate-token",
                "BRIDGE_TOKEN_TICKETS": "ticket-token",
                "BRIDGE_TOKEN_RELEASE": "release-token",
                **(settings_env or {}),
            },
            database_url=database_url,
        )
        store = Store.from_url(database_url)
        app = create_app(settings, rules=rules, store=store, now=clock)
        runner = OutboxRunner.from_settings(store, rules, settings)
        return Bridge(app.test_client(), store, runner, clock, itsm, chat)

    yield make
    for started in made:
        next(started, None)


def test_a_ticket_becomes_an_incident_and_a_resend_updates_it(bridge_with):
    bridge = bridge_with()
    first = bridge.report("SR-1001", impact="high", urgency="high", url="https://itsm.example/SR-1001")
    assert first.status_code == 201, first.json
    again = bridge.report("SR-1001", summary="checkout broken for everyone")
    assert again.status_code == 200
    assert again.json["incident"] == first.json["incident"]
    incident = bridge.client.get(f"/api/v1/incidents/{first.json['incident']}", headers=API).json
    assert (incident["source"], incident["dedup_key"], incident["occurrences"]) == ("ticket", "ticket:itsm:SR-1001", 1)
    assert incident["summary"] == "checkout broken for everyone"
    assert incident["labels"] == {"service": "checkout", "ticket_system": "itsm"}
    assert first.json["priority"] == "P1"  # the ticket's own impact and urgency over the route's


def test_tickets_join_problems_through_rules(bridge_with):
    bridge = bridge_with()
    bridge.alert("checkout")
    bridge.report("SR-1", service="checkout")
    bridge.report("SR-2", service="billing")
    checkout = bridge.problem_of("checkout")
    assert sorted(i["source"] for i in checkout["incidents"]) == ["alertmanager", "ticket"]
    assert [(t["system"], t["ticket_id"], t["state"], t["linked_by"]) for t in checkout["tickets"]] == [
        ("itsm", "SR-1", "open", "rule")
    ]
    assert [t["ticket_id"] for t in bridge.problem_of("billing")["tickets"]] == ["SR-2"]


def test_linking_by_hand_answers_201_then_200_and_unlinks(bridge_with):
    bridge = bridge_with()
    bridge.alert("checkout")
    problem_id = bridge.problem_of("checkout")["id"]
    path = f"/api/v1/problems/{problem_id}/tickets"
    body = {"system": "itsm", "ticket_id": "SR-7", "url": "https://itsm.example/SR-7", "summary": "phone call"}
    assert bridge.client.post(path, json=body, headers=OPERATE).status_code == 201
    again = bridge.client.post(path, json=body, headers=OPERATE)
    assert again.status_code == 200
    assert [(t["ticket_id"], t["state"], t["linked_by"]) for t in again.json["tickets"]] == [("SR-7", "open", "hand")]
    unknown = bridge.client.post(path, json={**body, "system": "nowhere"}, headers=OPERATE)
    assert unknown.status_code == 422
    assert "unknown ticket system 'nowhere'" in unknown.json["message"]
    assert bridge.client.delete(f"{path}/itsm/SR-7", headers=OPERATE).json["tickets"] == []
    assert bridge.client.delete(f"{path}/itsm/SR-7", headers=OPERATE).status_code == 404
    assert (
        bridge.client.delete(f"{path}/it%00sm/SR-7", headers=OPERATE).status_code == 404
    )  # never reaches the database
    assert bridge.client.post("/api/v1/problems/999999/tickets", json=body, headers=OPERATE).status_code == 404


def test_unknown_system_and_wrong_token_get_clear_errors(bridge_with):
    bridge = bridge_with()
    unknown = bridge.report("SR-1", system="nowhere")
    assert unknown.status_code == 422
    assert unknown.json["errors"] == ["system: expected one of itsm, quiet"]
    wrong = bridge.client.post(
        "/api/v1/tickets",
        json={"system": "itsm", "ticket_id": "SR-1", "summary": "x"},
        headers={"Authorization": "Bearer api-token"},
    )
    assert wrong.status_code == 401
    bad = bridge.client.post("/api/v1/tickets", json={"system": "itsm", "ticket_id": "SR 1"}, headers=TICKETS)
    assert bad.status_code == 400
    assert any(error.startswith("ticket_id:") for error in bad.json["errors"])
    assert any(error.startswith("summary:") for error in bad.json["errors"])
    assert bridge.client.get("/api/v1/incidents", headers=API).json["items"] == []
    assert bridge.client.post("/api/v1/alerts/ticket", json={}).status_code == 404
    script = bridge.report("SR-1", url="javascript:alert(1)")  # shown as a link on the problem page
    assert script.status_code == 400 and script.json["errors"][0].startswith("url:")


def test_a_release_closes_every_linked_ticket_and_tells_its_system_once(bridge_with):
    bridge = bridge_with(chat_events=["problem.closed"])
    bridge.alert("checkout")
    bridge.report("SR-1")
    problem_id = bridge.problem_of("checkout")["id"]
    assert (
        bridge.client.post(
            f"/api/v1/problems/{problem_id}/tickets", json={"system": "itsm", "ticket_id": "SR-2"}, headers=OPERATE
        ).status_code
        == 201
    )
    bridge.client.post(
        f"/api/v1/problems/{problem_id}/tickets", json={"system": "quiet", "ticket_id": "Q-1"}, headers=OPERATE
    )
    bridge.link_jira(problem_id, "LKK-5")
    summary = bridge.release("2026.11.2", "LKK-5")
    assert (summary["closed_incidents"], summary["tickets_told"]) == (2, 2)  # the alert's and SR-1's; Q-1 not told
    assert bridge.release("2026.11.2", "LKK-5")["tickets_told"] == 0  # a replay tells nobody again
    bridge.work(2)
    closes = bridge.itsm.of_event("ticket.close")
    assert sorted(item.body["ticket"]["ticket_id"] for item in closes) == ["SR-1", "SR-2"]
    assert all(item.signature_valid for item in closes)
    body = closes[0].body
    assert set(body) == {"event", "id", "occurred_at", "ticket", "problem", "release", "reason", "text"}
    assert body["id"] == closes[0].delivery
    assert body["release"] == {"project": "LKK", "version": "2026.11.2"}
    assert body["problem"]["state"] == "closed" and body["ticket"]["state"] == "closed"
    assert "release 2026.11.2" in body["text"] and f"problem #{problem_id}" in body["text"]
    detail = bridge.problem_of("checkout")
    assert {(t["ticket_id"], t["state"]) for t in detail["tickets"]} == {
        ("SR-1", "closed"),
        ("SR-2", "closed"),
        ("Q-1", "closed"),
    }
    assert [item.body["problem"]["id"] for item in bridge.chat.of_event("problem.closed")] == [problem_id]
    assert bridge.client.get("/api/v1/releases", headers=API).json["items"][0]["summary"]["tickets_told"] == 2


def test_closing_by_hand_closes_the_tickets_and_tells_their_system(bridge_with):
    bridge = bridge_with(chat_events=["release.received"])
    bridge.alert("checkout")
    bridge.report("SR-9")
    problem_id = bridge.problem_of("checkout")["id"]
    closed = bridge.client.post(
        f"/api/v1/problems/{problem_id}/close", json={"reason": "fixed by config"}, headers=OPERATE
    )
    assert closed.status_code == 200
    bridge.work()
    [close] = bridge.itsm.of_event("ticket.close")
    assert close.signature_valid and close.body["release"] is None
    assert "fixed by config" in close.body["text"]
    assert bridge.chat.received == []  # chat asked only for release.received: nothing was queued for it


def test_a_receiver_failing_twice_sees_one_delivery_id_three_times_and_one_success(bridge_with):
    bridge = bridge_with(chat_events=["problem.opened"])
    bridge.chat.script = [(500, "busy", {}), (503, "still busy", {})]
    bridge.alert("checkout")
    bridge.work(3)
    attempts = bridge.chat.of_event("problem.opened")
    assert len(attempts) == 3
    assert len({item.delivery for item in attempts}) == 1
    assert len({item.raw for item in attempts}) == 1 and all(item.signature_valid for item in attempts)
    jobs = bridge.client.get("/api/v1/outbox?state=done", headers=API).json["items"]
    [done] = [job for job in jobs if job["kind"] == "webhook.deliver"]
    assert (done["attempts"], done["target"]) == (3, "webhook")
    assert bridge.client.get("/api/v1/outbox?state=pending", headers=API).json["items"] == []


def test_retry_after_is_honoured(bridge_with, clock):
    bridge = bridge_with(chat_events=["problem.opened"])
    bridge.chat.script = [(429, "slow down", {"Retry-After": "120"})]
    bridge.alert("checkout")
    bridge.runner.run_due(clock())
    [pending] = bridge.client.get("/api/v1/outbox?state=pending", headers=API).json["items"]
    assert "answered 429: slow down" in pending["last_error"]
    wait = datetime.fromisoformat(pending["next_attempt_at"]) - clock()
    assert timedelta(seconds=120) <= wait <= timedelta(seconds=121)
    clock.advance(seconds=60)
    bridge.runner.run_due(clock())
    assert len(bridge.chat.received) == 1  # not before the receiver said
    clock.advance(seconds=61)
    bridge.runner.run_due(clock())
    assert len(bridge.chat.received) == 2 and bridge.chat.received[0].delivery == bridge.chat.received[1].delivery


def test_a_400_goes_to_the_dead_letters_with_the_receivers_answer(bridge_with):
    bridge = bridge_with(chat_events=["problem.opened"])
    bridge.chat.script = [(400, "unknown channel #ops", {})]
    bridge.alert("checkout")
    bridge.work(2)
    assert len(bridge.chat.received) == 1
    [dead] = bridge.client.get("/api/v1/outbox?state=dead", headers=API).json["items"]
    assert (dead["kind"], dead["destination"]) == ("webhook.deliver", "notify:chat")
    assert dead["last_error"] == "chat answered 400: unknown channel #ops"
    metrics = bridge.client.get("/metrics").get_data(as_text=True)
    assert 'bridge_outbox_dead{target="webhook"} 1.0' in metrics
    assert 'bridge_deliveries_total{outcome="dead",target="chat"}' in metrics


def test_notify_hears_a_problem_opened_linked_closed_and_regressed(bridge_with, clock):
    bridge = bridge_with(chat_events=["problem.opened", "problem.linked", "problem.closed", "problem.regressed"])
    bridge.alert("checkout", starts="2026-11-23T18:00:00Z")
    problem_id = bridge.problem_of("checkout")["id"]
    bridge.client.post(
        f"/api/v1/problems/{problem_id}/tickets", json={"system": "itsm", "ticket_id": "SR-3"}, headers=OPERATE
    )
    bridge.link_jira(problem_id, "LKK-8")
    bridge.release("2026.11.3", "LKK-8")
    clock.advance(hours=1)
    bridge.alert("checkout", starts="2026-11-23T21:00:00Z")  # the failure is back after the fix
    bridge.work()
    events = [(item.event, item.body["problem"]["id"]) for item in bridge.chat.received]
    assert events == [
        ("problem.opened", problem_id),
        ("problem.linked", problem_id),
        ("problem.closed", problem_id),
        ("problem.regressed", problem_id),
    ]
    assert all(item.signature_valid for item in bridge.chat.received)
    assert bridge.chat.received[1].body["ticket"]["ticket_id"] == "SR-3"
    assert bridge.chat.received[3].body["problem"]["regressions"] == 1


def test_incident_and_release_events_and_a_body_template(bridge_with, clock):
    bridge = bridge_with(chat_events=["incident.opened", "incident.resolved", "incident.closed", "release.received"])
    bridge.alert("checkout")
    bridge.alert("checkout", status="resolved")
    problem_id = bridge.problem_of("checkout")["id"]
    bridge.link_jira(problem_id, "LKK-9")
    bridge.release("2026.11.4", "LKK-9")
    bridge.work()
    assert [item.event for item in bridge.chat.received] == [
        "incident.opened",
        "incident.resolved",
        "incident.closed",
        "release.received",
    ]
    assert bridge.chat.received[2].body["incident"]["close_reason"] == "released in 2026.11.4"
    assert bridge.chat.received[3].body["release"]["closed_problems"] == [problem_id]


def test_hostile_alert_text_reaches_a_templated_receiver_as_json_values_with_only_the_templates_keys(bridge_with):
    template = (
        '{"text": {{ event ~ ": " ~ incident.summary }}, "host": {{ incident.labels.host }}, '
        '"labels": {{ incident.labels }}, "note": {{ incident.annotations.runbook }}}'
    )
    bridge = bridge_with(chat_events=["incident.opened"], chat_template=template)
    hostile = 'x", "channel": "#general", "username": "CEO", "text": "All clear \\ \n </script> {{ 1 }} \u2028'
    alert = {
        "status": "firing",
        "labels": {"alertname": "CheckoutDown", "service": "checkout", "host": hostile},
        "annotations": {"summary": hostile, "runbook": hostile[::-1]},
        "startsAt": "2026-11-23T18:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": "fphostile",
    }
    body = {"version": "4", "groupKey": "{}:{}", "status": "firing", "receiver": "bridge", "alerts": [alert]}
    assert bridge.client.post("/api/v1/alerts/alertmanager", json=body).status_code == 200
    bridge.work()
    [opened] = bridge.chat.received
    assert opened.signature_valid
    sent = json.loads(opened.raw)
    assert set(sent) == {"text", "host", "labels", "note"}
    assert (sent["host"], sent["labels"]["host"], sent["note"]) == (hostile, hostile, hostile[::-1])
    assert sent["text"].startswith("incident.opened: ")


def test_a_templated_body_that_renders_no_json_dead_letters_naming_the_template(bridge_with):
    template = '{"text": {{ incident.summary }}{% if incident.labels.service == "billing" %},{% endif %}}'
    bridge = bridge_with(chat_events=["incident.opened"], chat_template=template)
    bridge.alert("billing")
    bridge.work(2)
    assert bridge.chat.received == []
    [dead] = bridge.client.get("/api/v1/outbox?state=dead", headers=API).json["items"]
    assert dead["last_error"] == "body_template of chat renders no valid JSON on incident.opened"


def test_delivery_metrics_of_every_target_exist_at_zero(bridge_with):
    bridge = bridge_with(chat_events=["release.received"])
    metrics = bridge.client.get("/metrics").get_data(as_text=True)
    for target in ("chat", "itsm", "quiet"):
        for outcome in ("success", "retry", "dead"):
            assert f'bridge_deliveries_total{{outcome="{outcome}",target="{target}"}}' in metrics
    for target in ("webhook", "rt"):
        assert f'bridge_outbox_pending{{target="{target}"}} 0.0' in metrics


def test_nothing_is_queued_when_no_target_wants_the_event(bridge_with):
    bridge = bridge_with(chat_events=["release.received"])
    bridge.alert("checkout")
    bridge.report("SR-1")
    assert bridge.client.get("/api/v1/outbox", headers=API).json["items"] == []


def test_problem_page_lists_its_tickets_with_their_state(bridge_with):
    bridge = bridge_with(chat_events=["release.received"])
    bridge.alert("checkout")
    bridge.report("SR-44", url="https://itsm.example/SR-44")
    problem_id = bridge.problem_of("checkout")["id"]
    bridge.client.post("/ui/login", data={"token": "api-token"})
    page = bridge.client.get(f"/ui/problems/{problem_id}").get_data(as_text=True)
    assert "SR-44" in page and "itsm" in page and "https://itsm.example/SR-44" in page


def test_deliveries_of_a_target_gone_from_rules_dead_letter_naming_it(bridge_with, clock):
    bridge = bridge_with(chat_events=["problem.opened"])
    bridge.alert("checkout")
    rules = bridge.runner.rules
    bridge.runner.rules = replace(rules, notify_targets=())
    bridge.work()
    [dead] = bridge.client.get("/api/v1/outbox?state=dead", headers=API).json["items"]
    assert dead["last_error"].startswith("notify:chat is no longer in rules.yaml")


def test_an_unset_variable_is_named_by_check_rules_and_at_start_up(tmp_path, monkeypatch):
    monkeypatch.delenv("TEST_ITSM_URL", raising=False)
    monkeypatch.setenv("TEST_ITSM_SECRET", ITSM_SECRET)
    monkeypatch.setenv("TEST_CHAT_URL", "http://127.0.0.1:9/hook")
    monkeypatch.setenv("TEST_CHAT_SECRET", CHAT_SECRET)
    path = tmp_path / "rules.yaml"
    path.write_text(yaml.safe_dump(rules_with(ALL_EVENTS, {})))
    checked = CliRunner().invoke(main, ["check-rules", str(path)])
    assert checked.exit_code == 1
    assert 'ticket system "itsm" key url: environment variable not set: TEST_ITSM_URL' in checked.output
    with pytest.raises(RulesError, match="environment variable not set: TEST_ITSM_URL"):
        create_app(load_settings({}, database_url=f"sqlite:///{tmp_path / 'x.db'}", rules_path=str(path)))


def test_an_auto_closed_incident_is_announced(bridge_with, clock):
    bridge = bridge_with(chat_events=["incident.closed"])
    bridge.alert("portal", name="PortalSlow")  # no problem rule groups it: it auto-closes
    bridge.alert("portal", name="PortalSlow", status="resolved")
    clock.advance(days=30)
    bridge.work()
    [closed] = bridge.chat.of_event("incident.closed")
    assert (closed.body["incident"]["close_reason"], closed.signature_valid) == ("auto_closed", True)
