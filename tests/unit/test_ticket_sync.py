"""Reading tickets from their systems, without a database: what a reading means, how RT's and Jira's answers
are read, and the rules.yaml keys of syncing systems."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from bridge.domain.incidents import IncidentState
from bridge.domain.ticket_sync import (
    LinkChange,
    ProblemRef,
    SeenTicket,
    TicketSnapshot,
    TicketState,
    TicketStep,
    link_change,
    problem_reference,
    ticket_step,
)
from bridge.domain.tickets import TicketSync, TicketSystem
from bridge.rules.load import RulesError, parse_rules
from bridge.tickets.pull import label_name, rt_snapshot, rt_state, sync_query
from bridge.tickets.service_desk import request_snapshot
from jira_link.client import JiraIssue
from jira_link.linker import conclusion_detail
from tests.unit.test_tickets_rules import rules_with

ACTIVE, DONE, GONE = TicketState.ACTIVE, TicketState.DONE, TicketState.GONE
FIRING, CLOSED = IncidentState.FIRING, IncidentState.CLOSED
RT = TicketSystem("rt", "rt", "http://rt.test", sync=TicketSync(timedelta(minutes=1), ("General",), "Problem"))


@pytest.mark.parametrize(
    ("seen", "incident", "now", "step"),
    [
        (None, None, ACTIVE, TicketStep.CREATE),
        (None, None, DONE, TicketStep.CREATE_CLOSED),
        (None, None, GONE, TicketStep.NOTHING),
        (ACTIVE, FIRING, ACTIVE, TicketStep.UPDATE),
        (ACTIVE, IncidentState.RESOLVED, ACTIVE, TicketStep.UPDATE),
        (ACTIVE, FIRING, DONE, TicketStep.CLOSE),
        (ACTIVE, FIRING, GONE, TicketStep.CLOSE),
        (DONE, CLOSED, DONE, TicketStep.NOTHING),  # the bridge's own resolve, read back
        (ACTIVE, CLOSED, ACTIVE, TicketStep.NOTHING),  # closed by a release; its resolve still in the outbox
        (None, CLOSED, ACTIVE, TicketStep.NOTHING),  # reported before the sync, closed here: no reopen seen
        (DONE, CLOSED, ACTIVE, TicketStep.REOPEN),  # the customer reopened it
        (ACTIVE, CLOSED, DONE, TicketStep.NOTHING),
    ],
)
def test_a_reading_changes_the_incident_only_by_what_changed_in_the_ticket(seen, incident, now, step):
    assert ticket_step(seen, incident, now) is step


def test_only_a_changed_problem_field_links_or_unlinks():
    assert link_change(None, "") is None
    assert link_change(None, "LKK-7") == LinkChange("LKK-7")
    assert link_change("LKK-7", "LKK-7") is None  # a person moved it by hand meanwhile: not overruled
    assert link_change("LKK-7", "42") == LinkChange("42")
    assert link_change("LKK-7", "") == LinkChange("LKK-7", unlink=True)


@pytest.mark.parametrize(
    ("value", "ref"),
    [
        ("42", ProblemRef(problem_id=42)),
        (" #42 ", ProblemRef(problem_id=42)),
        ("lkk-7", ProblemRef(jira_key="LKK-7")),
        ("LKK-7", ProblemRef(jira_key="LKK-7")),
        ("0", None),
        ("problem 42", None),
        ("9" * 19, None),
        ("'; DROP TABLE problems; --", None),
    ],
)
def test_a_problem_field_names_a_problem_by_number_or_by_its_jira_key(value, ref):
    assert problem_reference(value) == ref


def test_the_same_version_of_a_ticket_is_skipped_unless_the_bridge_wrote_its_state():
    snapshot = TicketSnapshot("rt", "7", "open", ACTIVE, "s", version="2026-12-07T02:56:24Z", problem_ref="LKK-7")
    assert SeenTicket(ACTIVE, "open", "2026-12-07T02:56:24Z", "LKK-7", "f").unchanged(snapshot, "f")
    assert not SeenTicket(DONE, "resolved", "2026-12-07T02:56:24Z", "LKK-7", "f").unchanged(snapshot, "f")
    assert not SeenTicket(ACTIVE, "open", "2026-12-07T02:56:23Z", "LKK-7", "f").unchanged(snapshot, "f")
    unversioned = TicketSnapshot("sd", "SD-1", "To Do", ACTIVE, "s")
    assert not SeenTicket(ACTIVE, "To Do", "", None, "f").unchanged(unversioned, "f")  # no version: always read


def test_a_ticket_changed_again_within_the_second_it_was_read_is_not_skipped():
    """RT's LastUpdated is whole seconds: the same version with other words is a change."""
    snapshot = TicketSnapshot("rt", "7", "open", ACTIVE, "s", version="2026-12-07T02:56:24Z", problem_ref="LKK-7")
    assert not SeenTicket(ACTIVE, "open", "2026-12-07T02:56:24Z", "LKK-7", "before").unchanged(snapshot, "after")


def test_the_query_overlaps_the_watermark_and_names_its_zone():
    sync = TicketSync(timedelta(minutes=1), ("General", "Web shop"), "Problem", timedelta(seconds=90))
    watermark = datetime(2026, 12, 7, 2, 56, 24, tzinfo=UTC)
    assert sync_query(sync, watermark) == (
        "(Queue = 'General' OR Queue = 'Web shop') AND LastUpdated >= '2026-12-07 02:54:54 UTC'"
    )
    assert sync_query(sync, None) == "(Queue = 'General' OR Queue = 'Web shop') AND Status = '__Active__'"


def rt_item(**more: Any) -> dict[str, Any]:
    """A ticket of a REST2 search with the sync's fields, as RT 5.0.3 answers it (../shared/contracts.md G.2)."""
    return {
        "id": "28",
        "type": "ticket",
        "_url": "http://vm/rt/REST/2.0/ticket/28",
        "Subject": "checkout fails",
        "Status": "open",
        "Priority": "20",
        "LastUpdated": "2026-12-07T04:32:55Z",
        "Queue": {"id": "1", "type": "queue", "Name": "General", "_url": "http://vm/rt/REST/2.0/queue/1"},
        "CustomFields": [
            {"id": "2", "name": "Problem", "type": "customfield", "values": ["LKK-7"], "_url": "..."},
            {"id": "3", "name": "Service / Area", "type": "customfield", "values": ["checkout"], "_url": "..."},
            {"id": "4", "name": "Empty", "type": "customfield", "values": [], "_url": "..."},
        ],
        **more,
    }


def test_an_rt_ticket_reads_with_its_queue_status_priority_and_custom_fields():
    snapshot = rt_snapshot(RT, rt_item(), "http://rt.test/Ticket/Display.html?id=28")
    assert snapshot == TicketSnapshot(
        system="rt",
        ticket_id="28",
        status="open",
        state=ACTIVE,
        summary="checkout fails",
        labels={"problem": "LKK-7", "service_area": "checkout", "queue": "General", "status": "open", "priority": "20"},
        url="http://rt.test/Ticket/Display.html?id=28",
        problem_ref="LKK-7",
        version="2026-12-07T04:32:55Z",
        updated_at=datetime(2026, 12, 7, 4, 32, 55, tzinfo=UTC),
    )


def test_an_rt_ticket_without_subject_or_with_a_cleared_field_still_reads():
    cleared = [{"id": "2", "name": "Problem", "type": "customfield", "values": [None]}]
    snapshot = rt_snapshot(RT, rt_item(Subject="", CustomFields=cleared, LastUpdated="garbage"), "u")
    assert (snapshot.summary, snapshot.problem_ref, snapshot.updated_at) == ("RT ticket 28", "", None)
    assert "problem" not in snapshot.labels
    long = rt_snapshot(RT, rt_item(Subject="x" * 5000), "u")
    assert len(long.summary) == 2000


@pytest.mark.parametrize(
    ("status", "state"),
    [("new", ACTIVE), ("open", ACTIVE), ("stalled", ACTIVE), ("resolved", DONE), ("rejected", DONE), ("deleted", GONE)],
)
def test_rt_statuses_read_as_ticket_states(status, state):
    assert rt_state(status) is state


def test_custom_field_names_become_label_names():
    assert [label_name(n) for n in ("Problem", "Service / Area", "  ", "Ünïcode")] == [
        "problem",
        "service_area",
        "field",
        "n_code",
    ]


def test_a_service_desk_request_reads_with_its_problem_field_in_any_shape():
    system = TicketSystem("sd", "jira", "https://sd.test", project="SD", problem_field="customfield_10050")
    fields = {
        "summary": "Cannot pay",
        "project": {"key": "SD", "name": "Service desk"},
        "priority": {"name": "High"},
        "issuetype": {"name": "Incident"},
        "updated": "2026-12-07T05:00:00.000+0000",
    }
    for value in ("LKK-7", {"value": "LKK-7"}, [{"value": "LKK-7"}]):
        issue = JiraIssue("SD-1", "Done", "done", "Done", fields={**fields, "customfield_10050": value})
        snapshot = request_snapshot(system, "SD-1", issue, "https://sd.test/browse/SD-1")
        assert (snapshot.state, snapshot.problem_ref, snapshot.version) == (DONE, "LKK-7", fields["updated"])
        assert snapshot.labels == {
            "project": "Service desk",
            "status": "Done",
            "priority": "High",
            "issue_type": "Incident",
        }
    gone = request_snapshot(system, "SD-2", None, "https://sd.test/browse/SD-2")
    assert (gone.state, gone.summary) == (GONE, "Jira request SD-2")


def test_tickets_hear_the_conclusion_people_wrote_not_the_status_lines():
    assert conclusion_detail(None) is None
    assert conclusion_detail("Status: In Progress") is None
    assert conclusion_detail("Status: Done\nResolution: Fixed\nRestart the pod") == "Restart the pod"
    assert conclusion_detail("Restart the pod\nStatus: see wiki") == "Restart the pod\nStatus: see wiki"


ENV = {"RT_TOKEN": "tok", "SD_EMAIL": "bot@example.com", "SD_TOKEN": "sd-api-token", "SD_PAT": "sd-pat"}


def test_syncing_systems_read_their_keys():
    rules = parse_rules(
        rules_with(
            ticket_systems={
                "rt": {
                    "kind": "rt",
                    "url": "https://rt.example",
                    "token_env": "RT_TOKEN",
                    "sync": {"interval": "2m", "queues": ["General", "Web"], "problem_field": "Problem"},
                },
                "sd": {
                    "kind": "jira",
                    "url": "https://example.atlassian.net/",
                    "project": "SD",
                    "username_env": "SD_EMAIL",
                    "token_env": "SD_TOKEN",
                    "close_transition": "Resolve",
                    "problem_field": "customfield_10050",
                },
                "dc": {
                    "kind": "jira",
                    "url": "https://jira.example",
                    "project": "HD",
                    "flavour": "datacenter",
                    "token_env": "SD_PAT",
                },
            }
        ),
        environ=ENV,
    )
    rt, sd, dc = (rules.ticket_systems[name] for name in ("rt", "sd", "dc"))
    assert rt.sync == TicketSync(timedelta(minutes=2), ("General", "Web"), "Problem", timedelta(minutes=1))
    assert rt.field_of_problem == "Problem"
    assert (sd.url, sd.project, sd.username, sd.token, sd.close_transition) == (
        "https://example.atlassian.net",
        "SD",
        "bot@example.com",
        "sd-api-token",
        "Resolve",
    )
    assert (sd.flavour, sd.field_of_problem, dc.flavour, dc.token) == (
        "cloud",
        "customfield_10050",
        "datacenter",
        "sd-pat",
    )
    assert "sd-api-token" not in repr(sd) and "sd-pat" not in repr(dc) and "bot@example.com" not in repr(sd)


def test_wrong_sync_and_service_desk_keys_are_named():
    with pytest.raises(RulesError) as refused:
        parse_rules(
            rules_with(
                ticket_systems={
                    "hook": {"url": "https://h.example", "secret_env": "RT_TOKEN", "sync": {"queues": ["General"]}},
                    "rt": {
                        "kind": "rt",
                        "url": "https://rt.example",
                        "token_env": "RT_TOKEN",
                        "project": "SD",
                        "sync": {"interval": "0s", "queues": ["O'Brien"], "overlap": "2d"},
                    },
                    "sd": {"kind": "jira", "url": "https://sd.example", "token_env": "SD_TOKEN"},
                    "when": {
                        "kind": "rt",
                        "url": "https://rt.example",
                        "token_env": "RT_TOKEN",
                        "sync": {"queues": ["A"], "interval": "soon"},
                    },
                }
            ),
            environ=ENV,
        )
    found = refused.value.problems
    expected = [
        'ticket system "hook" key sync: only for kind rt',
        'ticket system "rt" key project: only for kind jira',
        'ticket system "rt": queue "O\'Brien": quotes and backslashes cannot be searched in RT',
        'ticket system "rt" key sync.interval: at least 1s',
        'ticket system "rt" key sync.overlap: at most 1d (every pass reads that much again)',
        'ticket system "sd" key project: required for kind jira (the service project\'s key, e.g. SD)',
        'ticket system "sd": kind jira needs token_env (a personal access token on datacenter), and username_env '
        "(the account's email) with it on cloud",
        "ticket system \"when\" key sync: invalid duration 'soon': use forms like 90s, 30m, 4h, 1d",
    ]
    for line in expected:
        assert line in found, found
    empty = rules_with(
        ticket_systems={"rt": {"kind": "rt", "url": "https://rt", "token_env": "RT_TOKEN", "sync": {"queues": []}}}
    )
    with pytest.raises(RulesError) as refused:
        parse_rules(empty, environ=ENV)
    assert refused.value.problems[0].startswith('ticket system "rt" key sync.queues: List should have at least 1 item')


def test_a_ticket_with_huge_odd_or_many_fields_still_reads_within_the_endpoints_bounds():
    fields = [{"name": f"Field {n}", "values": ["x" * 20_000]} for n in range(200)]
    fields.append({"name": "Problem", "values": ["LKK-7\x00"]})
    snapshot = rt_snapshot(RT, rt_item(Subject="checkout\x00fails", CustomFields=fields), "u")
    assert snapshot.summary == "checkout\ufffdfails"
    assert len(snapshot.labels) == 64 and all(len(value) <= 1000 for value in snapshot.labels.values())
    assert [snapshot.labels[name] for name in ("queue", "status", "priority")] == ["General", "open", "20"]
    assert snapshot.problem_ref == "LKK-7\ufffd"  # stored as seen, names no problem
