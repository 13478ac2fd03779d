"""The release close hook on SQLite and PostgreSQL, with the fake Jira and the fake Zabbix."""

from __future__ import annotations

import json
import threading
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta

import pytest
import requests
import sqlalchemy as sa
import yaml

from adapters.zabbix_api import ZabbixClient
from bridge.problems.actions import close_problem_by_hand
from bridge.problems.releases import close_release
from bridge.rules.load import load_rules
from bridge.storage.schema import incidents, outbox, problems, releases
from bridge.storage.store import Store
from bridge.worker import OutboxRunner
from jira_link.client import JiraClient
from jira_link.linker import LinkOptions
from tests.conftest import ROOT, ingest, payload
from tests.fakes import FakeJira, FakeZabbix, iter_texts

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
RELEASED = T0 + timedelta(days=2)


@pytest.fixture
def fakes() -> Iterator[tuple[FakeJira, FakeZabbix]]:
    with FakeJira() as jira, FakeZabbix(manual_close_forbidden={"3"}) as zabbix:
        yield jira, zabbix


@pytest.fixture
def world(store: Store, example_rules, fakes):
    """Two Alertmanager problems with bridge-created issues, and a Zabbix problem linked by hand."""
    fake_jira, fake_zabbix = fakes
    jira = JiraClient.basic(requests.Session(), fake_jira.url, "bot@example.com", "jira-token", timeout=2)
    runner = OutboxRunner(
        store,
        example_rules,
        jira,
        LinkOptions("incident-bridge", "http://bridge.test"),
        timedelta(hours=1),
        600,
        zabbix=ZabbixClient(fake_zabbix.url, "zabbix-token", timeout=2),
    )
    for name in ("Alpha", "Beta"):
        for n in range(3):
            fire(store, example_rules, name, n, T0)
    for event_id in ("1", "3"):
        ingest(
            store,
            example_rules,
            "zabbix",
            json.dumps(dict(payload("zabbix-6.0.14-problem.json"), event_id=event_id)).encode(),
            T0,
        )
    runner.run_due(T0)
    fake_jira.add_issue("LKK-50")
    zabbix_problem = problem_by_key(store, "zabbix-trigger/23133")
    store.record_jira_link(zabbix_problem["id"], "LKK-50", f"{fake_jira.url}/browse/LKK-50", "manual")
    return store, example_rules, jira, runner, fake_jira, fake_zabbix


def fire(store: Store, rules, alertname: str, n: int, at: datetime, **labels: str) -> None:
    body = payload("alertmanager-0.25-two-firing.json")
    alert = dict(
        body["alerts"][0],
        fingerprint=f"{abs(hash((alertname, n, tuple(labels.items())))):016x}"[:16],
        startsAt=at.isoformat(),
    )
    alert["labels"] = dict(alert["labels"], alertname=alertname, instance=f"host-{n}", **labels)
    body["alerts"] = [alert]
    ingest(store, rules, "alertmanager", json.dumps(body).encode(), at)


def problem_by_key(store: Store, key: str) -> dict:
    with store.engine.connect() as conn:
        return dict(
            conn.execute(sa.select(problems).where(problems.c.problem_key == key).order_by(problems.c.id.desc()))
            .mappings()
            .first()
        )


def incident_states(store: Store) -> dict[int, tuple[str, str | None, int | None]]:
    with store.engine.connect() as conn:
        return {
            row.id: (row.state, row.close_reason, row.problem_id)
            for row in conn.execute(
                sa.select(incidents.c.id, incidents.c.state, incidents.c.close_reason, incidents.c.problem_id)
            )
        }


def release(world, issues, version="2026.11.2"):
    store, rules, jira, *_ = world
    return close_release(
        store,
        jira,
        rules,
        project="LKK",
        version=version,
        issues=issues,
        released_at=RELEASED,
        now=RELEASED + timedelta(minutes=1),
    )


@pytest.mark.parametrize("mode", ["explicit issues", "fix version from Jira"])
def test_release_closes_exactly_the_linked_problems_and_all_their_incidents(world, mode):
    store, rules, jira, runner, fake_jira, fake_zabbix = world
    alpha = problem_by_key(store, "Alpha/lkk")
    zabbix_problem = problem_by_key(store, "zabbix-trigger/23133")
    before = incident_states(store)
    if mode == "explicit issues":
        summary = release(world, [alpha["jira_key"], "LKK-50", "LKK-99"])
    else:
        for key in (alpha["jira_key"], "LKK-50"):
            fake_jira.issue(key)["fields"]["fixVersions"] = [{"name": "2026.11.2"}]
        summary = release(world, None)
    assert summary["closed_problems"] == sorted([alpha["id"], zabbix_problem["id"]])
    assert summary["closed_incidents"] == 5 and summary["already_closed_problems"] == []
    if mode == "explicit issues":
        assert summary["unmatched_issues"] == ["LKK-99"]
    after = incident_states(store)
    for incident_id, (state, reason, problem_id) in after.items():
        if problem_id in (alpha["id"], zabbix_problem["id"]):
            assert (state, reason) == ("closed", "released in 2026.11.2")
        else:
            assert (state, reason) == before[incident_id][:2], "nothing else changes"
    closed = problem_by_key(store, "Alpha/lkk")
    assert (closed["state"], closed["fixed_in"]) == ("closed", "2026.11.2")
    assert problem_by_key(store, "Beta/lkk")["state"] == "known_error"


def outbox_rows(store: Store) -> list[tuple[str, str | None]]:
    with store.engine.connect() as conn:
        return [
            (row.kind, row.dedup_key)
            for row in conn.execute(sa.select(outbox.c.kind, outbox.c.dedup_key).order_by(outbox.c.id))
        ]


def release_rows(store: Store) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(releases)).mappings()]


def test_replaying_a_release_changes_nothing_and_says_so(world):
    store = world[0]
    alpha = problem_by_key(store, "Alpha/lkk")
    first = release(world, [alpha["jira_key"]])
    states, jobs, rows = incident_states(store), outbox_rows(store), release_rows(store)
    second = release(world, [alpha["jira_key"]])
    assert second == {
        **first,
        "closed_problems": [],
        "closed_incidents": 0,
        "already_processed_issues": [alpha["jira_key"]],
        "replay": True,
    }
    assert (incident_states(store), outbox_rows(store), release_rows(store)) == (states, jobs, rows)


def test_a_later_call_for_a_version_processes_the_issues_it_adds(world):
    """A pipeline adds a hotfix issue to a shipped version: the second call closes its problem."""
    store = world[0]
    alpha, beta = problem_by_key(store, "Alpha/lkk"), problem_by_key(store, "Beta/lkk")
    release(world, [alpha["jira_key"]])
    second = release(world, [alpha["jira_key"], beta["jira_key"], "LKK-77"])
    assert (second["replay"], second["closed_problems"], second["closed_incidents"]) == (False, [beta["id"]], 3)
    assert second["already_processed_issues"] == [alpha["jira_key"]] and second["unmatched_issues"] == ["LKK-77"]
    assert problem_by_key(store, "Beta/lkk")["fixed_in"] == "2026.11.2"
    assert {s for s, _, p in incident_states(store).values() if p == beta["id"]} == {"closed"}
    assert [e["kind"] for e in store.problem_history(alpha["id"])].count("released") == 1
    assert [key for kind, key in outbox_rows(store) if kind == "jira.release"] == [
        f"jira.release:LKK:2026.11.2:{alpha['jira_key']}",
        f"jira.release:LKK:2026.11.2:{beta['jira_key']}",
    ]
    [row] = release_rows(store)
    assert row["summary"] == {
        "project": "LKK",
        "version": "2026.11.2",
        "released_at": RELEASED.isoformat(),
        "issues": sorted([alpha["jira_key"], beta["jira_key"], "LKK-77"]),
        "closed_problems": [alpha["id"], beta["id"]],
        "closed_incidents": 6,
        "already_closed_problems": [],
        "unmatched_issues": ["LKK-77"],
        "tickets_told": 0,
        "calls": 2,
    }


def test_an_issue_already_processed_stays_a_no_op_after_its_problem_regressed(world):
    store, rules, *_ = world
    alpha, beta = problem_by_key(store, "Alpha/lkk"), problem_by_key(store, "Beta/lkk")
    release(world, [alpha["jira_key"]])
    fire(store, rules, "Alpha", 10, RELEASED + timedelta(hours=1), version="2026.11.2")
    assert problem_by_key(store, "Alpha/lkk")["state"] == "known_error"
    again = release(world, [alpha["jira_key"], beta["jira_key"]])
    assert again["closed_problems"] == [beta["id"]]
    assert problem_by_key(store, "Alpha/lkk")["state"] == "known_error", "the regression stays open"


def test_a_first_call_with_other_issues_does_not_turn_the_real_one_into_a_no_op(world):
    store = world[0]
    alpha = problem_by_key(store, "Alpha/lkk")
    assert release(world, ["LKK-98"])["unmatched_issues"] == ["LKK-98"]
    real = release(world, [alpha["jira_key"]])
    assert (real["replay"], real["closed_problems"]) == (False, [alpha["id"]])
    assert problem_by_key(store, "Alpha/lkk")["state"] == "closed"


def test_a_release_recorded_before_per_issue_identity_still_replays(world):
    """Rows from before migration 0006 name their issues only in the summary."""
    store = world[0]
    alpha = problem_by_key(store, "Alpha/lkk")
    store.run(
        lambda conn: store.add_release(
            conn,
            project="LKK",
            version="2026.11.2",
            released_at=RELEASED,
            received_at=RELEASED,
            via="pipeline",
            summary={"issues": [alpha["jira_key"]], "closed_problems": [], "closed_incidents": 0},
        )
    )
    assert release(world, [alpha["jira_key"]])["replay"] is True
    assert problem_by_key(store, "Alpha/lkk")["state"] == "known_error"


def test_concurrent_calls_for_one_version_process_each_issue_once(world, database_url):
    """Two pipelines (separate engines, as separate servers have) send overlapping issues at once."""
    store, rules, jira, *_ = world
    alpha, beta = problem_by_key(store, "Alpha/lkk"), problem_by_key(store, "Beta/lkk")
    zabbix_problem = problem_by_key(store, "zabbix-trigger/23133")
    calls = [[alpha["jira_key"], "LKK-50"], ["LKK-50", beta["jira_key"]]]
    start = threading.Barrier(len(calls))
    answers: list[dict] = []
    errors: list[BaseException] = []

    def call(issues: list[str]) -> None:
        own = Store.from_url(database_url)
        try:
            start.wait()
            answers.append(
                close_release(
                    own,
                    jira,
                    rules,
                    project="LKK",
                    version="2026.11.2",
                    issues=issues,
                    released_at=RELEASED,
                    now=RELEASED + timedelta(minutes=1),
                )
            )
        except BaseException as exc:
            errors.append(exc)
        finally:
            own.engine.dispose()

    threads = [threading.Thread(target=call, args=(issues,)) for issues in calls]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert not errors, errors
    closed = [pid for answer in answers for pid in answer["closed_problems"]]
    assert sorted(closed) == sorted([alpha["id"], beta["id"], zabbix_problem["id"]]), "each problem closed once"
    assert sum(answer["closed_incidents"] for answer in answers) == 8
    for problem in (alpha, beta, zabbix_problem):
        assert [e["kind"] for e in store.problem_history(problem["id"])].count("released") == 1
    assert sorted(key for kind, key in outbox_rows(store) if kind == "jira.release") == sorted(
        f"jira.release:LKK:2026.11.2:{key}" for key in (alpha["jira_key"], beta["jira_key"], "LKK-50")
    )
    [row] = release_rows(store)
    assert (row["summary"]["closed_incidents"], row["summary"]["calls"]) == (8, 2)


def test_jira_gets_one_comment_per_issue_and_the_transition_and_zabbix_the_close(world):
    store, rules, jira, runner, fake_jira, fake_zabbix = world
    alpha = problem_by_key(store, "Alpha/lkk")
    release(world, [alpha["jira_key"], "LKK-50"])
    release(world, [alpha["jira_key"], "LKK-50"])
    runner.run_due(RELEASED + timedelta(minutes=2))
    runner.run_due(RELEASED + timedelta(minutes=3))
    comments = [" ".join(iter_texts(c["body"])) for c in fake_jira.comments(alpha["jira_key"])]
    assert comments == [f"Released in 2026.11.2: incident-bridge closed problem #{alpha['id']} and 3 linked incidents."]
    assert fake_jira.issue(alpha["jira_key"])["fields"]["status"]["statusCategory"]["key"] == "done"
    assert len(fake_jira.comments("LKK-50")) == 1
    assert fake_zabbix.closed() == {"1"}, "event 1 closed"
    [ack_only] = [a for a in fake_zabbix.acknowledgements if not a["action"] & 1]
    assert ack_only["eventids"] == ["3"] and "does not allow manual close" in ack_only["message"]


def test_recurrence_after_release_reopens_as_regression_and_reopens_jira(world):
    store, rules, jira, runner, fake_jira, _ = world
    alpha = problem_by_key(store, "Alpha/lkk")
    release(world, [alpha["jira_key"]])
    runner.run_due(RELEASED + timedelta(minutes=2))
    later = RELEASED + timedelta(hours=5)
    fire(store, rules, "Alpha", 10, later, version="2026.11.2")
    reopened = problem_by_key(store, "Alpha/lkk")
    assert (reopened["id"], reopened["state"], reopened["regressions"]) == (alpha["id"], "known_error", 1)
    runner.run_due(later)
    issue = fake_jira.issue(alpha["jira_key"])
    assert issue["fields"]["status"]["statusCategory"]["key"] == "new"
    last = " ".join(iter_texts(fake_jira.comments(alpha["jira_key"])[-1]["body"]))
    assert last.startswith("Regression: the failure fixed in 2026.11.2 came back on version 2026.11.2")
    history = [e["kind"] for e in store.problem_history(alpha["id"])]
    assert history[-2:] == ["released", "regressed"]


def test_recurrence_from_a_target_still_on_an_older_version_is_not_a_regression(world):
    store, rules, *_ = world
    alpha = problem_by_key(store, "Alpha/lkk")
    release(world, [alpha["jira_key"]], version="2026.11.10")
    fire(store, rules, "Alpha", 11, RELEASED + timedelta(hours=1), version="2026.11.9")
    still = problem_by_key(store, "Alpha/lkk")
    assert (still["state"], still["regressions"]) == ("closed", 0)
    assert [e["kind"] for e in store.problem_history(alpha["id"])][-1] == "not_deployed"


def test_manual_close_and_reopen(world):
    from bridge.problems.actions import close_problem_by_hand, reopen_problem_by_hand

    store, rules = world[0], world[1]
    beta = problem_by_key(store, "Beta/lkk")
    close_problem_by_hand(store, beta["id"], "fixed by config change", RELEASED, rules)
    assert problem_by_key(store, "Beta/lkk")["state"] == "closed"
    assert {s for s, _, p in incident_states(store).values() if p == beta["id"]} == {"closed"}
    reopen_problem_by_hand(store, beta["id"], "came back", RELEASED)
    assert problem_by_key(store, "Beta/lkk")["state"] == "known_error"
    assert [e["kind"] for e in store.problem_history(beta["id"])][-2:] == ["closed", "reopened"]


@pytest.fixture
def rules_by_trigger(tmp_path):
    """The example rules with every Zabbix route keying incidents by trigger: one incident, many events."""
    document = yaml.safe_load((ROOT / "rules.yaml").read_text())
    for route in document["routes"]:
        if route["match"].get("source") == "zabbix":
            route["dedup_labels"] = ["trigger_id"]
    path = tmp_path / "rules-by-trigger.yaml"
    path.write_text(yaml.safe_dump(document))
    return load_rules(path)


@pytest.fixture
def trigger_world(store: Store, rules_by_trigger, fakes):
    """Three Zabbix events of one trigger gathered into one incident, its problem linked to LKK-50."""
    fake_jira, fake_zabbix = fakes
    jira = JiraClient.basic(requests.Session(), fake_jira.url, "bot@example.com", "jira-token", timeout=2)
    runner = OutboxRunner(
        store,
        rules_by_trigger,
        jira,
        LinkOptions("incident-bridge", "http://bridge.test"),
        timedelta(hours=1),
        600,
        zabbix=ZabbixClient(fake_zabbix.url, "zabbix-token", timeout=2),
    )
    for n, event_id in enumerate(("101", "102", "103", "102")):
        ingest(
            store,
            rules_by_trigger,
            "zabbix",
            json.dumps(dict(payload("zabbix-6.0.14-problem.json"), event_id=event_id)).encode(),
            T0 + timedelta(minutes=n),
        )
    fake_jira.add_issue("LKK-50")
    problem = problem_by_key(store, "zabbix-trigger/23133")
    store.record_jira_link(problem["id"], "LKK-50", f"{fake_jira.url}/browse/LKK-50", "manual")
    return store, rules_by_trigger, jira, runner, fake_zabbix, problem


def zabbix_incidents(store: Store) -> list[tuple[str, list[str] | None]]:
    with store.engine.connect() as conn:
        return [
            (row.dedup_key, row.source_ids)
            for row in conn.execute(
                sa.select(incidents.c.dedup_key, incidents.c.source_ids).where(incidents.c.source == "zabbix")
            )
        ]


def test_release_closes_in_zabbix_the_events_of_an_incident_keyed_by_labels(trigger_world):
    store, rules, jira, runner, fake_zabbix, problem = trigger_world
    assert zabbix_incidents(store) == [('zabbix:labels:{trigger_id="23133"}', ["101", "102", "103"])]
    summary = close_release(
        store, jira, rules, project="LKK", version="2026.11.2", issues=["LKK-50"], released_at=RELEASED, now=RELEASED
    )
    assert summary["closed_problems"] == [problem["id"]]
    runner.run_due(RELEASED + timedelta(minutes=1))
    assert [ack["eventids"] for ack in fake_zabbix.acknowledgements] == [["101", "102", "103"]]


def test_closing_a_problem_by_hand_closes_its_events_in_zabbix_too(trigger_world):
    store, rules, _, runner, fake_zabbix, problem = trigger_world
    close_problem_by_hand(store, problem["id"], "trigger fixed by a config change", RELEASED, rules)
    runner.run_due(RELEASED + timedelta(minutes=1))
    [ack] = fake_zabbix.acknowledgements
    assert ack["eventids"] == ["101", "102", "103"] and ack["action"] & 1
    assert ack["message"] == "Closed by incident-bridge: problem closed by hand: trigger fixed by a config change"


def test_incidents_stored_before_source_ids_close_only_bare_event_ids(trigger_world, example_rules):
    """Rows from before migration 0006 have no source ids: a bare event id key still names its
    event, a label-set key names none, so nothing but event ids ever reaches Zabbix."""
    store, rules, jira, runner, fake_zabbix, problem = trigger_world
    event_1 = json.dumps(dict(payload("zabbix-6.0.14-problem.json"), event_id="1")).encode()
    ingest(store, example_rules, "zabbix", event_1, T0 + timedelta(minutes=10))
    with store.engine.begin() as conn:
        conn.execute(incidents.update().values(source_ids=None))
    summary = close_release(
        store, jira, rules, project="LKK", version="2026.11.2", issues=["LKK-50"], released_at=RELEASED, now=RELEASED
    )
    assert (summary["closed_problems"], summary["closed_incidents"]) == ([problem["id"]], 2)
    runner.run_due(RELEASED + timedelta(minutes=1))
    assert [ack["eventids"] for ack in fake_zabbix.acknowledgements] == [["1"]]
