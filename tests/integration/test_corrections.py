"""Merging problems and moving incidents, on SQLite and PostgreSQL, races included."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
import sqlalchemy as sa

from bridge.errors import BridgeError, Conflict, NotFound, Unprocessable
from bridge.outbox.jobs import CommentIncidents, EnsureIssue, SyncIssue
from bridge.problems.corrections import merge_problems, move_incident
from bridge.storage.read_models import IncidentFilter
from bridge.storage.schema import outbox, problems
from bridge.storage.store import Store
from tests.conftest import ingest
from tests.integration.test_problems import firing, rows

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def open_problem(store: Store, rules, name: str, incidents: int = 2, start: int = 0) -> int:
    """A problem of rule high-error-rate (opens at the second incident) for alertname `name`."""
    for n in range(incidents):
        ingest(store, rules, "alertmanager", firing(f"{name}{start + n:015x}"[-16:], alertname=name), T0)
    [problem_id] = [p["id"] for p in rows(store, problems) if p["problem_key"] == f"{name}/lkk"]
    return problem_id


def problem(store: Store, problem_id: int) -> dict:
    found = store.get_problem(problem_id)
    assert found is not None
    return found


def members(store: Store, problem_id: int) -> list[int]:
    return sorted(i.stored_id for i in store.list_incidents(IncidentFilter(problem_id=problem_id), 100, None).items)


def link(store: Store, problem_id: int, key: str) -> None:
    assert store.record_jira_link(problem_id, key, f"https://jira.test/browse/{key}", "manual")


def kinds(store: Store, problem_id: int) -> list[tuple[str, str]]:
    return [(e["kind"], e["detail"]) for e in store.problem_history(problem_id)]


def test_merge_gathers_incidents_closes_the_source_and_records_both(store: Store, example_rules):
    a = open_problem(store, example_rules, "A", 2)
    b = open_problem(store, example_rules, "B", 3)
    a_incidents, b_incidents = members(store, a), members(store, b)

    result = merge_problems(store, a, b, "alice", "same database outage", T0 + timedelta(minutes=5))

    assert (result.source_id, result.into_id, result.incidents_moved) == (a, b, 2)
    assert members(store, b) == sorted(a_incidents + b_incidents)
    assert members(store, a) == []
    source, into = problem(store, a), problem(store, b)
    assert (source["state"], source["merged_into"], source["incident_count"]) == ("closed", b, 0)
    assert source["closed_at"] == T0 + timedelta(minutes=5)
    assert (into["state"], into["merged_into"], into["incident_count"]) == ("open", None, 5)
    assert kinds(store, a)[0][0] == "opened", "history stays where it was"
    assert kinds(store, a)[-1] == (
        "merged",
        f"merged into problem {b} by alice: same database outage (2 incidents moved)",
    )
    assert kinds(store, b)[-1] == (
        "merged",
        f"problem {a} merged here by alice: same database outage (2 incidents gathered)",
    )


def test_a_merge_takes_the_hand_linked_tickets_along_once(store: Store, example_rules):
    a = open_problem(store, example_rules, "A", 2)
    b = open_problem(store, example_rules, "B", 2)
    for problem_id, ticket_id in ((a, "SR-1"), (a, "SR-2"), (b, "SR-2")):
        store.run(lambda conn, p=problem_id, t=ticket_id: store.link_ticket(conn, p, "itsm", t, None, "call", T0))

    merge_problems(store, a, b, "alice", None, T0)

    assert store.problem_tickets(a) == []
    assert sorted(t["ticket_id"] for t in store.problem_tickets(b)) == ["SR-1", "SR-2"], "SR-2 is listed once"


def test_a_new_incident_of_a_merged_key_joins_the_problem_it_was_merged_into(store: Store, example_rules):
    a = open_problem(store, example_rules, "A", 2)
    b = open_problem(store, example_rules, "B", 2)
    merge_problems(store, a, b, None, None, T0)
    ingest(store, example_rules, "alertmanager", firing("00000000000000a9", alertname="A"), T0 + timedelta(minutes=1))
    assert [p["id"] for p in rows(store, problems)] == [a, b], "no new problem opened for A/lkk"
    assert len(members(store, b)) == 5
    assert problem(store, b)["incident_count"] == 5


def test_the_jira_link_moves_when_only_the_source_has_one(store: Store, example_rules):
    a = open_problem(store, example_rules, "A")
    b = open_problem(store, example_rules, "B")
    link(store, a, "LKK-7")
    result = merge_problems(store, a, b, None, None, T0)
    assert (result.jira_key, result.jira_moved, result.jira_conflict) == ("LKK-7", "LKK-7", None)
    into, source = problem(store, b), problem(store, a)
    assert (into["jira_key"], into["state"], into["jira_url"]) == (
        "LKK-7",
        "known_error",
        "https://jira.test/browse/LKK-7",
    )
    assert source["jira_key"] is None
    assert "LKK-7 moved to problem" in kinds(store, a)[-1][1]
    assert "by api" in kinds(store, a)[-1][1], "no actor named: the API"
    queued = {(j["kind"], j["problem_id"], j["payload"].get("jira_key")) for j in rows(store, outbox)}
    assert {(EnsureIssue.KIND, b, None), (SyncIssue.KIND, None, "LKK-7"), (CommentIncidents.KIND, b, None)} <= queued
    assert into["comment_pending"] == 2, "LKK-7 hears of the two incidents of B, new to it"


def test_both_linked_into_keeps_its_issue_and_the_conflict_is_named(store: Store, example_rules):
    a = open_problem(store, example_rules, "A")
    b = open_problem(store, example_rules, "B")
    link(store, a, "LKK-7")
    link(store, b, "LKK-8")
    result = merge_problems(store, a, b, "bob", None, T0)
    assert result.jira_key == "LKK-8" and result.jira_moved is None
    assert result.jira_conflict is not None and "LKK-8" in result.jira_conflict and "LKK-7" in result.jira_conflict
    assert problem(store, b)["jira_key"] == "LKK-8"
    assert problem(store, a)["jira_key"] == "LKK-7", "the source's issue is not lost"
    for problem_id in (a, b):
        assert "keeps LKK-8; LKK-7 stays recorded" in kinds(store, problem_id)[-1][1]
    assert problem(store, b)["comment_pending"] == 2, "LKK-8 hears of the two incidents gathered from A"
    assert (CommentIncidents.KIND, b) in {(j["kind"], j["problem_id"]) for j in rows(store, outbox)}


@pytest.mark.parametrize(
    "arrange, expected, message",
    [
        pytest.param(lambda s, a, b: (a, a), Unprocessable, "cannot be merged into itself", id="into-itself"),
        pytest.param(lambda s, a, b: (a, 999), Unprocessable, "no problem 999 to merge into", id="into-missing"),
        pytest.param(lambda s, a, b: (999, a), NotFound, "no problem 999", id="source-missing"),
        pytest.param(
            lambda s, a, b: (merge_problems(s, a, b, None, None, T0), (b, a))[1],
            Conflict,
            "is already merged into problem",
            id="merge-back-would-loop",
        ),
        pytest.param(
            lambda s, a, b: (merge_problems(s, a, b, None, None, T0), (a, b))[1],
            Conflict,
            "is already merged into problem",
            id="merged-twice",
        ),
    ],
)
def test_merges_that_make_no_sense_are_refused_clearly(store: Store, example_rules, arrange, expected, message):
    a = open_problem(store, example_rules, "A")
    b = open_problem(store, example_rules, "B")
    source, into = arrange(store, a, b)
    with pytest.raises(expected) as refused:
        merge_problems(store, source, into, None, None, T0)
    assert message in refused.value.message


def test_merging_into_or_from_a_closed_problem_is_a_conflict(store: Store, example_rules):
    from bridge.problems.actions import close_problem_by_hand

    a = open_problem(store, example_rules, "A")
    b = open_problem(store, example_rules, "B")
    close_problem_by_hand(store, b, "done", T0, example_rules)
    with pytest.raises(Conflict, match=f"problem {b} is closed; merge into an open problem"):
        merge_problems(store, a, b, None, None, T0)
    with pytest.raises(Conflict, match=f"problem {b} is closed; reopen it before merging"):
        merge_problems(store, b, a, None, None, T0)
    assert members(store, a) and problem(store, a)["state"] == "open", "a refused merge changes nothing"


def race(database_url: str, calls: list[tuple[int, int]]) -> list[object]:
    """Run the merges at once, each in its own thread and engine (as two servers would); their results."""
    start = threading.Barrier(len(calls))
    results: list[object] = [None] * len(calls)

    def merge(index: int, source: int, into: int) -> None:
        store = Store.from_url(database_url)
        try:
            start.wait()
            results[index] = merge_problems(store, source, into, f"person-{index}", None, T0)
        except BridgeError as exc:
            results[index] = exc
        finally:
            store.engine.dispose()

    threads = [threading.Thread(target=merge, args=(n, s, i)) for n, (s, i) in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return results


@pytest.mark.parametrize("repeat", range(3))
def test_two_people_merging_a_into_b_and_b_into_a_leave_one_consistent_result(
    database_url: str, example_rules, repeat: int
):
    store = Store.from_url(database_url)
    a = open_problem(store, example_rules, "A", 2)
    b = open_problem(store, example_rules, "B", 3)
    everything = sorted(members(store, a) + members(store, b))

    results = race(database_url, [(a, b), (b, a)])

    won = [r for r in results if not isinstance(r, BridgeError)]
    refused = [r for r in results if isinstance(r, BridgeError)]
    assert len(won) == 1 and len(refused) == 1, results
    assert isinstance(refused[0], Conflict) and "already merged into problem" in refused[0].message
    live = [p for p in rows(store, problems) if p["state"] != "closed"]
    assert len(live) == 1
    [survivor] = live
    assert members(store, survivor["id"]) == everything
    assert survivor["incident_count"] == len(everything)
    closed = next(p for p in rows(store, problems) if p["id"] != survivor["id"])
    assert (closed["state"], closed["merged_into"]) == ("closed", survivor["id"])
    assert [k for k, _ in kinds(store, survivor["id"])].count("merged") == 1
    store.engine.dispose()


def test_the_same_merge_twice_at_once_is_done_once(database_url: str, example_rules):
    store = Store.from_url(database_url)
    a = open_problem(store, example_rules, "A", 2)
    b = open_problem(store, example_rules, "B", 2)
    results = race(database_url, [(a, b), (a, b)])
    assert sorted(type(r).__name__ for r in results) == ["Conflict", "MergeResult"]
    assert [k for k, _ in kinds(store, b)].count("merged") == 1
    assert problem(store, b)["incident_count"] == 4
    store.engine.dispose()


def test_move_an_incident_records_it_on_both_problems_and_the_incident(store: Store, example_rules):
    a = open_problem(store, example_rules, "A", 3)
    b = open_problem(store, example_rules, "B", 2)
    incident = members(store, a)[0]

    assert move_incident(store, incident, b, "carol", T0) == a

    assert incident in members(store, b) and incident not in members(store, a)
    assert (problem(store, a)["incident_count"], problem(store, b)["incident_count"]) == (2, 3)
    assert kinds(store, a)[-1] == ("incident_moved", f"incident {incident} moved to problem {b} by carol")
    assert kinds(store, b)[-1] == ("incident_moved", f"incident {incident} moved here from problem {a} by carol")
    history = store.incident_history(incident)
    assert [(e["kind"], e["actor"], e["detail"]) for e in history] == [
        ("moved", "carol", f"moved from problem {a} to problem {b}")
    ]


def test_moves_that_make_no_sense_are_refused_clearly(store: Store, example_rules):
    from bridge.problems.actions import close_problem_by_hand

    a = open_problem(store, example_rules, "A", 2)
    b = open_problem(store, example_rules, "B", 2)
    c = open_problem(store, example_rules, "C", 2)
    incident = members(store, a)[0]
    with pytest.raises(NotFound, match="no incident 999"):
        move_incident(store, 999, b, None, T0)
    with pytest.raises(Unprocessable, match="no problem 999 to move into"):
        move_incident(store, incident, 999, None, T0)
    with pytest.raises(Conflict, match=f"already in problem {a}"):
        move_incident(store, incident, a, None, T0)
    close_problem_by_hand(store, b, "done", T0, example_rules)
    with pytest.raises(Conflict, match=f"problem {b} is closed"):
        move_incident(store, incident, b, None, T0)
    merge_problems(store, c, a, None, None, T0)
    with pytest.raises(Conflict, match=f"problem {c} is merged into problem {a}; move the incident there"):
        move_incident(store, incident, c, None, T0)
    assert store.incident_history(incident) == []


def test_an_incident_outside_any_problem_can_be_moved_into_one(store: Store, example_rules):
    b = open_problem(store, example_rules, "B", 2)
    ingest(store, example_rules, "alertmanager", firing("00000000000000d1", alertname="D"), T0)
    with store.engine.connect() as conn:
        loner = conn.execute(sa.text("SELECT id FROM incidents WHERE problem_id IS NULL")).scalar_one()
    assert move_incident(store, loner, b, None, T0) is None
    assert loner in members(store, b)
    assert [e["detail"] for e in store.incident_history(loner)] == [f"moved to problem {b}"]


@pytest.mark.parametrize("repeat", range(3))
def test_a_move_out_of_a_problem_racing_its_merge_leaves_every_incident_counted_once(
    database_url: str, example_rules, repeat: int
):
    store = Store.from_url(database_url)
    a = open_problem(store, example_rules, "A", 3)
    b = open_problem(store, example_rules, "B", 2)
    c = open_problem(store, example_rules, "C", 2)
    moving = members(store, a)[0]
    everything = sorted(members(store, a) + members(store, b) + members(store, c))
    start = threading.Barrier(2)
    failures: list[BaseException] = []

    def act(work) -> None:
        own = Store.from_url(database_url)
        try:
            start.wait()
            work(own)
        except BaseException as exc:
            failures.append(exc)
        finally:
            own.engine.dispose()

    threads = [
        threading.Thread(target=act, args=(lambda s: merge_problems(s, a, b, "dana", None, T0),)),
        threading.Thread(target=act, args=(lambda s: move_incident(s, moving, c, "erik", T0),)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()

    assert failures == [], "each waits for the other's locks (or retries a deadlock) and succeeds"
    assert moving in members(store, c)
    assert sorted(members(store, b) + members(store, c)) == everything and members(store, a) == []
    for problem_id in (a, b, c):
        assert problem(store, problem_id)["incident_count"] == len(members(store, problem_id))
    store.engine.dispose()
