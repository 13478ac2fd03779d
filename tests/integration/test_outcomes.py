"""Jira outcomes through the sync job: fixed waits, won't do closes, duplicate follows or merges; both backends."""

from __future__ import annotations

import json
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import pytest
from prometheus_client import REGISTRY

from bridge.domain.outcomes import OutcomeRules
from bridge.jira.webhook import handle_jira_webhook
from bridge.outbox.jobs import ZabbixClose
from bridge.problems.actions import queue_issue_sync
from bridge.storage.read_models import IncidentFilter
from bridge.storage.schema import outbox, problems
from bridge.storage.store import Store
from bridge.worker import OutboxRunner
from jira_link.linker import LinkOptions
from tests.conftest import ingest, payload
from tests.integration.test_problems import firing, rows
from tests.jira_memory import MemoryJira

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
OPTIONS = LinkOptions(marker_prefix="incident-bridge", public_url="http://bridge.test")


class Bridge:
    """The store, the rules, an in-memory Jira and the worker that syncs, on a clock of its own."""

    def __init__(self, store: Store, rules, jira: MemoryJira) -> None:
        self.store, self.rules, self.jira, self.now = store, rules, jira, T0
        self.runner = OutboxRunner(store, rules, jira, OPTIONS, timedelta(hours=1), 600)

    def open_problem(self, name: str, incidents: int = 2) -> tuple[int, str]:
        """A portal-errors problem for alertname `name`, its issue created by the worker: (id, key)."""
        for n in range(incidents):
            ingest(self.store, self.rules, "alertmanager", firing(f"{name}{n:015x}"[-16:], alertname=name), self.now)
        self.work()
        found = next(p for p in rows(self.store, problems) if p["problem_key"] == f"{name}/lkk")
        assert found["jira_key"] is not None
        return found["id"], found["jira_key"]

    def work(self) -> None:
        """Let time pass and the worker run every job due (jobs may queue more jobs)."""
        for _ in range(5):
            self.now += timedelta(seconds=1)
            self.runner.run_due(self.now)

    def sync(self, key: str) -> None:
        """What Jira's webhook does for an updated issue: queue its sync, then the worker runs it."""
        answer = handle_jira_webhook(
            self.store,
            self.jira,
            self.rules,
            json.dumps({"webhookEvent": "jira:issue_updated", "issue": {"key": key}}).encode(),
            self.now,
        )
        assert answer["action"] == "sync_queued", answer
        self.work()

    def problem(self, problem_id: int) -> dict:
        found = self.store.get_problem(problem_id)
        assert found is not None
        return found

    def incidents(self, problem_id: int) -> list:
        return self.store.list_incidents(IncidentFilter(problem_id=problem_id), 100, None).items

    def history(self, problem_id: int) -> list[tuple[str, str]]:
        return [(e["kind"], e["detail"]) for e in self.store.problem_history(problem_id)]


@pytest.fixture
def bridge(store: Store, example_rules) -> Bridge:
    return Bridge(store, example_rules, MemoryJira())


def outcomes_counted(outcome: str) -> float:
    return REGISTRY.get_sample_value("bridge_problem_outcomes_total", {"outcome": outcome}) or 0.0


def closed_by_jira() -> float:
    return REGISTRY.get_sample_value("bridge_incidents_closed_total", {"reason": "jira_outcome"}) or 0.0


def test_fixed_waits_for_the_release_and_is_recorded_once(bridge: Bridge):
    problem_id, key = bridge.open_problem("A")
    before = outcomes_counted("fixed")
    bridge.jira.resolve(key, "Fixed")
    bridge.sync(key)
    bridge.sync(key)
    found = bridge.problem(problem_id)
    assert (found["state"], found["outcome"], found["conclusion"]) == (
        "known_error",
        "fixed",
        "Status: Done\nResolution: Fixed",
    )
    assert [k for k, _ in bridge.history(problem_id)].count("outcome") == 1
    assert bridge.history(problem_id)[-1] == (
        "outcome",
        f"{key} resolved as Fixed: waiting for the release that carries the fix",
    )
    assert outcomes_counted("fixed") - before == 1


def test_wont_do_closes_the_problem_and_its_incidents_with_that_conclusion(bridge: Bridge):
    problem_id, key = bridge.open_problem("A", 3)
    counted, closed_before = outcomes_counted("wont_do"), closed_by_jira()
    bridge.jira.resolve(key, "Won't Do")
    bridge.sync(key)
    found = bridge.problem(problem_id)
    assert (found["state"], found["outcome"], found["conclusion"]) == (
        "closed",
        "wont_do",
        "Status: Done\nResolution: Won't Do",
    )
    members = bridge.incidents(problem_id)
    assert {(i.state.value, i.close_reason) for i in members} == {
        ("closed", f"Jira {key} resolved as Won't Do: won't do")
    }
    assert bridge.history(problem_id)[-1] == (
        "closed",
        f"{key} resolved as Won't Do: nothing will ship, the problem closes (3 incidents closed)",
    )
    assert outcomes_counted("wont_do") - counted == 1
    assert closed_by_jira() - closed_before == 3


def test_wont_do_closes_the_problems_tickets_too(bridge: Bridge):
    problem_id, key = bridge.open_problem("A")
    bridge.store.run(lambda conn: bridge.store.link_ticket(conn, problem_id, "itsm", "SR-9", None, "a call", T0))
    bridge.jira.resolve(key, "Won't Do")
    bridge.sync(key)
    [ticket] = bridge.store.problem_tickets(problem_id)
    assert (ticket["ticket_id"], ticket["state"]) == ("SR-9", "closed")


def test_wont_do_keeps_the_incidents_when_the_rule_says_so(store: Store, example_rules):
    keep = tuple(
        replace(rule, jira=replace(rule.jira, outcomes=OutcomeRules(close_incidents=False))) if rule.jira else rule
        for rule in example_rules.problem_rules
    )
    bridge = Bridge(store, replace(example_rules, problem_rules=keep), MemoryJira())
    problem_id, key = bridge.open_problem("A", 2)
    bridge.jira.resolve(key, "Cannot Reproduce")
    bridge.sync(key)
    found = bridge.problem(problem_id)
    assert (found["state"], found["outcome"]) == ("closed", "wont_do")
    assert {i.state.value for i in bridge.incidents(problem_id)} == {"firing"}
    assert "its incidents left as they are (close_incidents: false)" in bridge.history(problem_id)[-1][1]


def test_an_issue_worked_on_again_after_wont_do_reopens_its_problem(bridge: Bridge):
    problem_id, key = bridge.open_problem("A")
    bridge.jira.resolve(key, "Won't Do")
    bridge.sync(key)
    bridge.jira.reopen(key)
    bridge.sync(key)
    found = bridge.problem(problem_id)
    assert (found["state"], found["outcome"], found["jira_key"], found["conclusion"]) == (
        "known_error",
        None,
        key,
        "Status: To Do",
    )
    assert bridge.history(problem_id)[-1] == ("reopened", f"{key} is To Do again in Jira: the won't-do close is undone")
    ingest(bridge.store, bridge.rules, "alertmanager", firing("A0000000000000ff", alertname="A"), bridge.now)
    assert [p["id"] for p in rows(bridge.store, problems)] == [problem_id], "new incidents join it again"


def test_a_duplicate_of_an_issue_without_a_problem_relinks_to_it(bridge: Bridge):
    problem_id, key = bridge.open_problem("A")
    bridge.jira.add_issue("LKK-50")
    counted = outcomes_counted("duplicate")
    bridge.jira.resolve(key, "Duplicate", duplicates="LKK-50")
    bridge.sync(key)
    found = bridge.problem(problem_id)
    assert (found["state"], found["outcome"], found["jira_key"], found["jira_url"]) == (
        "known_error",
        "duplicate",
        "LKK-50",
        "https://jira.test/browse/LKK-50",
    )
    assert ("linked", f"{key} duplicates LKK-50: the problem follows LKK-50 now") in bridge.history(problem_id)
    links = bridge.jira.issues["LKK-50"].remote_links
    assert links["incident-bridge:problem:" + str(problem_id)]["url"].endswith(f"/problems/{problem_id}")
    assert found["conclusion"] == "Status: To Do", "the conclusion is read from the issue it follows now"
    assert outcomes_counted("duplicate") - counted == 1


def test_a_duplicate_of_an_issue_with_a_problem_merges_the_two(bridge: Bridge):
    a, a_key = bridge.open_problem("A", 2)
    b, b_key = bridge.open_problem("B", 3)
    everything = sorted(i.stored_id for i in bridge.incidents(a) + bridge.incidents(b))
    bridge.jira.resolve(a_key, "Duplicate", duplicates=b_key)
    bridge.sync(a_key)
    source, into = bridge.problem(a), bridge.problem(b)
    assert (source["state"], source["merged_into"], source["outcome"], source["jira_key"]) == (
        "closed",
        b,
        "duplicate",
        a_key,
    )
    assert (into["state"], into["jira_key"], into["incident_count"]) == ("known_error", b_key, 5)
    assert sorted(i.stored_id for i in bridge.incidents(b)) == everything
    kind, detail = bridge.history(a)[-1]
    assert kind == "merged" and detail.startswith(f"merged into problem {b} by jira: {a_key} duplicates {b_key}")
    assert f"problem {b} keeps {b_key}; {a_key} stays recorded" in detail
    assert not bridge.store.issue_concerns_problems(a_key), "a merged problem ignores its old issue from then on"
    bridge.jira.reopen(a_key)
    bridge.store.run(lambda conn: queue_issue_sync(conn, bridge.store, a_key, bridge.now))
    bridge.work()
    assert (bridge.problem(a)["state"], bridge.problem(a)["merged_into"]) == ("closed", b)


def test_metrics_start_every_outcome_at_zero(example_rules):
    from bridge import metrics

    metrics.initialise(example_rules)
    for outcome in ("fixed", "wont_do", "duplicate"):
        assert REGISTRY.get_sample_value("bridge_problem_outcomes_total", {"outcome": outcome}) is not None
    assert REGISTRY.get_sample_value("bridge_incidents_closed_total", {"reason": "jira_outcome"}) is not None


def test_the_periodic_sync_finds_a_wont_do_without_a_webhook(bridge: Bridge):
    problem_id, key = bridge.open_problem("A")
    bridge.jira.resolve(key, "Won't Fix")
    bridge.store.run(lambda conn: queue_issue_sync(conn, bridge.store, key, bridge.now))
    bridge.work()
    assert (bridge.problem(problem_id)["state"], bridge.problem(problem_id)["outcome"]) == ("closed", "wont_do")


def test_wont_do_closes_the_zabbix_events_of_the_incidents_it_closes(bridge: Bridge):
    ingest(
        bridge.store,
        bridge.rules,
        "zabbix",
        json.dumps(payload("zabbix-6.0.14-problem.json")).encode(),
        bridge.now,
    )
    [zabbix_problem] = [p for p in rows(bridge.store, problems) if p["problem_key"].startswith("zabbix-trigger/")]
    bridge.jira.add_issue("LKK-70")
    assert bridge.store.record_jira_link(zabbix_problem["id"], "LKK-70", "https://jira.test/browse/LKK-70", "manual")
    bridge.jira.resolve("LKK-70", "Won't Do")
    bridge.sync("LKK-70")
    [close] = [j for j in rows(bridge.store, outbox) if j["kind"] == ZabbixClose.KIND]
    assert close["payload"]["event_ids"] == [payload("zabbix-6.0.14-problem.json")["event_id"]]
    assert close["payload"]["message"] == "Closed by incident-bridge: Jira LKK-70 resolved as Won't Do: won't do"


def test_an_issue_worked_on_again_leaves_its_problem_closed_when_another_is_open_for_the_key(bridge: Bridge):
    problem_id, key = bridge.open_problem("A")
    bridge.jira.resolve(key, "Won't Do")
    bridge.sync(key)
    for n in range(2):
        ingest(bridge.store, bridge.rules, "alertmanager", firing(f"A00000000000010{n}", alertname="A"), bridge.now)
    [newer] = [p["id"] for p in rows(bridge.store, problems) if p["id"] != problem_id]
    bridge.jira.reopen(key)
    bridge.sync(key)
    found = bridge.problem(problem_id)
    assert (found["state"], found["outcome"]) == ("closed", None)
    assert bridge.history(problem_id)[-1] == (
        "outcome",
        f"{key} is To Do again in Jira; stays closed: problem {newer} is open for 'A/lkk'",
    )
    assert not bridge.store.issue_concerns_problems(key), "said once: the next change of the issue is ignored"
