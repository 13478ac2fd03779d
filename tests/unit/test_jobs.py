"""The outbox job catalogue: kinds, dedup keys and payloads as stored, read back as they were queued."""

from __future__ import annotations

import pytest

from bridge.outbox import jobs

CASES = [
    (jobs.EnsureIssue(7, "P1"), "jira.ensure_issue", "jira.ensure_issue:7", {"priority": "P1"}),
    (jobs.EnsureIssue(7), "jira.ensure_issue", "jira.ensure_issue:7", {}),
    (jobs.SyncIssue("LKK-1"), "jira.sync_issue", "jira.sync_issue:LKK-1", {"jira_key": "LKK-1"}),
    (jobs.CommentIncidents(7), "jira.comment_incidents", "jira.comment_incidents:7", {}),
    (
        jobs.ReleaseComment(7, "LKK-1", "Released", True, "db-team", "LKK", "1.0"),
        "jira.release",
        "jira.release:LKK:1.0:LKK-1",
        {"jira_key": "LKK-1", "text": "Released", "transition": True, "rule": "db-team"},
    ),
    (
        jobs.RegressionReopen(7, "LKK-1", "Regression"),
        "jira.regression",
        None,
        {"jira_key": "LKK-1", "text": "Regression"},
    ),
    (
        jobs.Note(7, "LKK-1", "SLA breached", 42),
        "jira.note",
        "jira.note:sla:42",
        {"jira_key": "LKK-1", "text": "SLA breached"},
    ),
    (
        jobs.ZabbixClose(["1", "2"], "fixed", "LKK:1.0:LKK-1"),
        "zabbix.close_problems",
        "zabbix.close_problems:LKK:1.0:LKK-1",
        {"event_ids": ["1", "2"], "message": "fixed"},
    ),
    (jobs.ZabbixClose(["1"], "by hand"), "zabbix.close_problems", None, {"event_ids": ["1"], "message": "by hand"}),
    (
        jobs.Deliver("notify:chat", "problem.opened", "d1", {"event": "problem.opened"}, 7),
        "webhook.deliver",
        "webhook.deliver:d1",
        {
            "destination": "notify:chat",
            "event": "problem.opened",
            "delivery_id": "d1",
            "body": {"event": "problem.opened"},
        },
    ),
    (
        jobs.RtClose("rt", "12", "closed", 7),
        "rt.close_ticket",
        "rt.close_ticket:rt:12:7",
        {"system": "rt", "ticket_id": "12", "text": "closed"},
    ),
    (
        jobs.RtComment("rt", "12", "workaround", "restart the app", 7, "d1g"),
        "rt.comment_ticket",
        "rt.comment_ticket:rt:12:d1g",
        {"system": "rt", "ticket_id": "12", "what": "workaround", "text": "restart the app"},
    ),
    (
        jobs.JsmComment("sd", "SD-3", "conclusion", "fixed in 2.1", 7, "d2g"),
        "jsm.comment_ticket",
        "jsm.comment_ticket:sd:SD-3:d2g",
        {"system": "sd", "ticket_id": "SD-3", "what": "conclusion", "text": "fixed in 2.1"},
    ),
    (
        jobs.JsmClose("sd", "SD-3", "closed", 7),
        "jsm.close_ticket",
        "jsm.close_ticket:sd:SD-3:7",
        {"system": "sd", "ticket_id": "SD-3", "text": "closed"},
    ),
    (jobs.JsmRead("sd", "SD-3"), "jsm.read_ticket", "jsm.read_ticket:sd:SD-3", {"system": "sd", "ticket_id": "SD-3"}),
]


@pytest.mark.parametrize(("job", "kind", "dedup_key", "payload"), CASES, ids=lambda value: str(value)[:40])
def test_each_kind_names_itself_and_stores_only_what_the_worker_reads(job, kind, dedup_key, payload):
    assert (job.KIND, job.dedup_key(), job.payload()) == (kind, dedup_key, payload)


@pytest.mark.parametrize(("job", "kind", "dedup_key", "payload"), CASES, ids=lambda value: str(value)[:40])
def test_a_stored_job_reads_back_as_what_the_worker_needs(job, kind, dedup_key, payload):
    read = jobs.from_row({"kind": kind, "problem_id": job.problem, "payload": payload})
    assert type(read) is type(job)
    assert (read.problem, read.payload()) == (job.problem, job.payload())


def test_zabbix_close_gathers_each_event_once_from_the_closed_incidents():
    job = jobs.ZabbixClose.of_incidents([("zabbix:1", ["1", "5"]), ("zabbix:labels:x", ["5", "9"])], "fixed")
    assert job.event_ids == ["1", "5", "9"]


def test_every_kind_is_in_the_catalogue_once():
    assert sorted(jobs.CATALOGUE) == sorted({kind.KIND for kind in jobs.CATALOGUE.values()})
    assert len(jobs.CATALOGUE) == 13
