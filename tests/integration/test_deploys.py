"""Deploys and suspects on SQLite and PostgreSQL: deploy windows mark (and may hold) what opens during a deploy,
and every new problem and regression names the releases and changes that may have caused it."""

from __future__ import annotations

import contextlib
import json
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
import sqlalchemy as sa
from alembic import command as alembic_command
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext

from bridge.domain.deploys import DeployPhase
from bridge.problems.deploys import DeployCall
from bridge.problems.release_health import release_health
from bridge.problems.releases import close_release
from bridge.storage.engine import _alembic_config, make_engine, migrate
from bridge.storage.schema import deploys, hold_windows, incident_events, incidents, metadata, outbox, problems
from bridge.storage.store import Store
from bridge.watch.deploys import deploy_json, record_deploy
from bridge.worker import OutboxRunner, run_once
from jira_link.client import JiraClient
from jira_link.linker import LinkOptions
from tests.conftest import example_rules_with, ingest, new_pg_database, payload, run_concurrently
from tests.fakes import FakeJira, iter_texts
from tests.receiver import Receiver

T0 = datetime(2026, 12, 7, 10, 0, tzinfo=UTC)
LONGEST = timedelta(hours=2)  # BRIDGE_DEPLOY_MAX's default
CHAT = {"CHAT_SECRET": "s3cret"}
NOTIFY = [
    {
        "name": "ops-chat",
        "url": "http://127.0.0.1:9/hook",
        "secret_env": "CHAT_SECRET",
        "events": ["incident.opened", "problem.opened"],
    }
]


def rules_with(hold: str = "none", notify: list[dict[str, Any]] = NOTIFY):
    return example_rules_with(
        CHAT,
        releases={"version_label": "version", "environment_label": "env"},
        notify=notify,
        projects={
            "LKK": {"labels": {"service": "lkk"}, "hold": hold, "settle": "10m"},
            "BILL": {"labels": {"service": "billing"}},
        },
    )


MARKING, HOLDING = rules_with(), rules_with("side_effects")


def alert(fingerprint: str, *, resolved: bool = False, starts: datetime | None = None, **labels: str) -> bytes:
    """An Alertmanager notification of one alert of service lkk in prod unless `labels` say otherwise."""
    body = payload("alertmanager-0.25-two-firing.json")
    one = dict(body["alerts"][0], fingerprint=fingerprint, status="resolved" if resolved else "firing")
    if starts is not None:  # a later start is a new episode: the failure stopped and came back
        one["startsAt"] = starts.isoformat()
    one["labels"] = {**one["labels"], "instance": fingerprint, "service": "lkk", "env": "prod", **labels}
    if resolved:
        one["endsAt"] = "2026-12-07T10:20:00Z"
    body["alerts"], body["status"] = [one], one["status"]
    return json.dumps(body).encode()


def fire(store: Store, rules, n: int, at: datetime, **labels: Any) -> None:
    ingest(store, rules, "alertmanager", alert(f"{n:016x}", **labels), at)


def deploy(store: Store, rules, phase: str, at: datetime, version: str = "2026.12.1", **more: Any):
    call = DeployCall(more.pop("project", "LKK"), version, more.pop("environment", "prod"), DeployPhase(phase), **more)
    return record_deploy(store, rules, call, at, LONGEST)


def rows(store: Store, table: sa.Table) -> list[dict]:
    return store.read(
        lambda conn: [dict(row) for row in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]
    )


def outbox_kinds(store: Store) -> list[tuple[str, str | None]]:
    return sorted((job["kind"], job["payload"].get("event")) for job in rows(store, outbox))


def test_a_deploy_started_marks_what_opens_in_its_environment_and_nowhere_else(store: Store):
    recorded, _ = deploy(store, MARKING, "started", T0)
    fire(store, MARKING, 1, T0 + timedelta(minutes=1))
    fire(store, MARKING, 2, T0 + timedelta(minutes=2), env="stage")
    fire(store, MARKING, 3, T0 + timedelta(minutes=3), service="billing")
    prod, stage, billing = rows(store, incidents)
    mark = {"id": recorded.deploy["id"], "project": "LKK", "version": "2026.12.1", "environment": "prod"}
    assert (prod["during_deploy"], prod["deploy_id"], prod["held"]) == (mark, recorded.deploy["id"], False)
    assert stage["during_deploy"] is None and billing["during_deploy"] is None
    assert len(rows(store, problems)) == 1, "marked only: the problem opens as ever"
    assert ("jira.ensure_issue", None) in outbox_kinds(store)


def test_a_reopened_incident_carries_the_deploy_of_its_new_opening_only(store: Store):
    deploy(store, MARKING, "started", T0)
    fire(store, MARKING, 1, T0 + timedelta(minutes=1))
    fire(store, MARKING, 1, T0 + timedelta(minutes=2), resolved=True)
    deploy(store, MARKING, "finished", T0 + timedelta(minutes=3))
    later = T0 + timedelta(minutes=20)
    fire(store, MARKING, 1, later, starts=later)  # reopened after the deploy settled
    [incident] = rows(store, incidents)
    assert (incident["reopen_count"], incident["during_deploy"], incident["deploy_id"]) == (1, None, None)


def test_hold_side_effects_holds_jira_tickets_notify_and_clocks_until_finished_and_settled_then_releases_once(
    store: Store,
):
    deploy(store, HOLDING, "started", T0)
    for n in range(1, 4):
        fire(store, HOLDING, n, T0 + timedelta(minutes=n))
    fire(store, HOLDING, 3, T0 + timedelta(minutes=20), resolved=True)
    held = rows(store, incidents)
    assert all(i["held"] and i["hold_window"]["kind"] == "deploy" and i["during_deploy"] for i in held)
    assert [(i["problem_id"], i["sla_due"], i["response_due"]) for i in held] == [(None, None, None)] * 3
    assert rows(store, problems) == [] and rows(store, outbox) == [], "no Jira, ticket, notify or Zabbix job"
    finished = T0 + timedelta(minutes=30)
    deploy(store, HOLDING, "finished", finished)
    fire(store, HOLDING, 4, finished + timedelta(minutes=5))  # settling: still the deploy's
    for minute in (1, 9):
        run_once(store, finished + timedelta(minutes=minute), rules=HOLDING)
        assert all(i["held"] for i in rows(store, incidents)) and rows(store, outbox) == []
    settled = finished + timedelta(minutes=10)
    run_once(store, settled + timedelta(seconds=5), rules=HOLDING)
    first, second, third, fourth = rows(store, incidents)
    for firing in (first, second, fourth):
        assert not firing["held"] and firing["problem_id"] is not None
        assert firing["clocks_from"] == settled and firing["sla_running_since"] == settled
    assert (third["state"], third["close_reason"]) == ("closed", "resolved_in_window")
    expected = [("jira.ensure_issue", None), *[("webhook.deliver", "incident.opened")] * 3]
    assert outbox_kinds(store) == [*expected, ("webhook.deliver", "problem.opened")]
    run_once(store, settled + timedelta(minutes=5), rules=HOLDING)
    assert len(rows(store, outbox)) == 5, "released once"
    released = [e["detail"] for e in rows(store, incident_events) if e["kind"] == "released"]
    assert "released at the end of deploy window #1 'deploy of LKK 2026.12.1 to prod'" in released[0]
    fire(store, HOLDING, 5, settled + timedelta(minutes=6))
    assert rows(store, incidents)[-1]["held"] is False, "after the settle time, the project's alerts are ordinary"


def test_a_failed_deploy_releases_what_it_held_at_once(store: Store):
    deploy(store, HOLDING, "started", T0)
    fire(store, HOLDING, 1, T0 + timedelta(minutes=1))
    fire(store, HOLDING, 2, T0 + timedelta(minutes=2))
    failed = T0 + timedelta(minutes=10)
    recorded, released = deploy(store, HOLDING, "failed", failed)
    assert released is not None and (released.ordinary, released.closed) == (2, 0)
    assert recorded.deploy["phase"] == "failed" and recorded.deploy["failed_at"] == failed
    assert all(not i["held"] and i["clocks_from"] == failed for i in rows(store, incidents))
    [window] = rows(store, hold_windows)
    assert (window["ended_at"], window["released_at"]) == (failed, failed)
    assert len(rows(store, problems)) == 1 and ("jira.ensure_issue", None) in outbox_kinds(store)
    again, nothing = deploy(store, HOLDING, "failed", failed + timedelta(minutes=1))
    assert again.replay and nothing is None


def test_a_deploy_never_finished_ends_at_the_limit(store: Store):
    recorded, _ = deploy(store, HOLDING, "started", T0)
    fire(store, HOLDING, 1, T0 + timedelta(minutes=1))
    run_once(store, T0 + LONGEST - timedelta(minutes=1), rules=HOLDING)
    assert rows(store, incidents)[0]["held"]
    run_once(store, T0 + LONGEST + timedelta(seconds=5), rules=HOLDING)
    assert not rows(store, incidents)[0]["held"]
    assert rows(store, incidents)[0]["clocks_from"] == T0 + LONGEST
    fire(store, HOLDING, 2, T0 + LONGEST + timedelta(minutes=1))
    assert rows(store, incidents)[1]["during_deploy"] is None and not rows(store, incidents)[1]["held"]
    [row] = rows(store, deploys)
    assert deploy_json(row, T0 + LONGEST, HOLDING)["state"] == "expired"
    late, _ = deploy(store, HOLDING, "finished", T0 + LONGEST + timedelta(minutes=10))
    assert late.deploy["phase"] == "finished" and len(rows(store, hold_windows)) == 1, "no hold after the limit"
    fire(store, HOLDING, 3, T0 + LONGEST + timedelta(minutes=11))
    assert not rows(store, incidents)[2]["held"]
    again, _ = deploy(store, HOLDING, "started", T0 + timedelta(hours=3))
    assert again.deploy["id"] != recorded.deploy["id"] and len(rows(store, hold_windows)) == 2


def test_a_deploy_left_in_progress_past_its_limit_is_expired_when_the_next_one_starts(store: Store):
    first, _ = deploy(store, MARKING, "started", T0)
    second, _ = deploy(store, MARKING, "started", T0 + LONGEST + timedelta(minutes=1))
    assert second.deploy["id"] != first.deploy["id"]
    assert [row["phase"] for row in rows(store, deploys)] == ["expired", "started"]
    replayed, _ = deploy(store, MARKING, "started", T0 + LONGEST + timedelta(minutes=2))
    assert replayed.replay and replayed.deploy["id"] == second.deploy["id"]


def test_a_deploy_of_a_project_not_in_the_rules_is_recorded_and_marks_nothing(store: Store):
    recorded, _ = deploy(store, MARKING, "started", T0, project="PAY")
    fire(store, MARKING, 1, T0 + timedelta(minutes=1))
    assert recorded.deploy["window_id"] is None and rows(store, hold_windows) == []
    assert rows(store, incidents)[0]["during_deploy"] is None


def test_a_new_problem_names_the_two_deploys_of_its_project_nearest_first_with_minutes(store: Store):
    deploy(store, MARKING, "finished", T0 - timedelta(hours=3), "2026.12.1")
    deploy(store, MARKING, "started", T0 - timedelta(minutes=14), "2026.12.2")
    deploy(store, MARKING, "finished", T0 - timedelta(minutes=10), "2026.12.2")
    deploy(store, MARKING, "finished", T0 - timedelta(minutes=5), "9.9", project="BILL")
    deploy(store, MARKING, "finished", T0 - timedelta(minutes=2), "2026.12.3", environment="stage")
    deploy(store, MARKING, "finished", T0 - timedelta(hours=30), "2026.11.1")  # before the suspect window
    fire(store, MARKING, 1, T0)
    fire(store, MARKING, 2, T0 + timedelta(minutes=1))
    [problem] = rows(store, problems)
    assert [(s["project"], s["version"], s["environment"], s["minutes_before"]) for s in problem["suspects"]] == [
        ("LKK", "2026.12.2", "prod", 14),
        ("LKK", "2026.12.1", "prod", 180),
    ]
    assert problem["suspects"][0]["deployed_at"] == "2026-12-07T09:46:00Z"
    [opened] = [job for job in rows(store, outbox) if job["payload"].get("event") == "problem.opened"]
    assert opened["payload"]["body"]["problem"]["suspects"] == problem["suspects"], "the outbound payload names them"
    deploy(store, MARKING, "finished", T0 + timedelta(minutes=20), "2026.12.4")
    fire(store, MARKING, 3, T0 + timedelta(minutes=21))
    assert rows(store, problems)[0]["suspects"] == problem["suspects"], "kept as decided when it opened"


def test_a_problem_of_no_projects_service_is_given_no_suspects(store: Store):
    deploy(store, MARKING, "finished", T0 - timedelta(minutes=5))
    fire(store, MARKING, 1, T0, service="web")
    fire(store, MARKING, 2, T0 + timedelta(minutes=1), service="web")
    [problem] = rows(store, problems)
    assert problem["suspects"] is None


def test_a_regression_names_the_release_that_reopened_it(store: Store):
    fire(store, MARKING, 1, T0)
    fire(store, MARKING, 2, T0 + timedelta(minutes=1))
    [problem] = rows(store, problems)
    store.record_jira_link(problem["id"], "LKK-1", "https://jira.example/browse/LKK-1", "manual")
    shipped = T0 + timedelta(hours=1)
    close_release(
        store,
        None,
        MARKING,
        project="LKK",
        version="2026.12.1",
        issues=["LKK-1"],
        released_at=None,
        now=shipped,
        environments=["prod"],
    )
    assert rows(store, problems)[0]["state"] == "closed"
    deploy(store, MARKING, "started", shipped + timedelta(hours=1), "2026.12.2")
    deploy(store, MARKING, "finished", shipped + timedelta(hours=1, minutes=5), "2026.12.2")
    fire(store, MARKING, 3, shipped + timedelta(hours=1, minutes=30))
    [regressed] = rows(store, problems)
    assert (regressed["state"], regressed["regressions"]) == ("known_error", 1)
    assert [(s["version"], s["minutes_before"]) for s in regressed["suspects"]] == [
        ("2026.12.2", 30),
        ("2026.12.1", 90),
    ]
    assert regressed["suspects"][1]["issues"] == ["LKK-1"], "the release's issues come with its implied deploy"


def test_a_release_naming_environments_finishes_its_deploys_once(store: Store):
    deploy(store, HOLDING, "started", T0)
    fire(store, HOLDING, 1, T0 + timedelta(minutes=1))

    def release(at: datetime) -> None:
        close_release(
            store,
            None,
            HOLDING,
            project="LKK",
            version="2026.12.1",
            issues=["LKK-7"],
            released_at=None,
            now=at,
            environments=["prod", "stage"],
        )

    release(T0 + timedelta(minutes=20))
    prod, stage = sorted(rows(store, deploys), key=lambda row: row["environment"])
    assert (prod["phase"], prod["finished_at"], prod["issues"]) == ("finished", T0 + timedelta(minutes=20), ["LKK-7"])
    assert (stage["phase"], stage["started_at"], stage["via"]) == ("finished", None, "release")
    prod_window = next(w for w in rows(store, hold_windows) if w["id"] == prod["window_id"])
    assert prod_window["ends_at"] == T0 + timedelta(minutes=30), "the deploy in progress settles from the release"
    release(T0 + timedelta(minutes=25))
    assert len(rows(store, deploys)) == 2, "a release repeated finishes nothing twice"


def test_a_change_touching_the_service_is_a_suspect_and_one_elsewhere_is_not(store: Store):
    def change(minutes_before: int, summary: str, **labels: str) -> None:
        at = T0 - timedelta(minutes=minutes_before)
        values = dict(
            routing_key="ansible",
            summary=summary,
            source="ansible",
            changed_at=at,
            received_at=at,
            custom_details=labels,
            links=[{"href": "https://ci/1", "text": "run"}],
            labels=labels,
        )
        store.run(lambda conn: store.add_change(conn, values))

    change(7, "nginx config for lkk", service="lkk")
    change(3, "billing database failover", service="billing")
    change(2, "kernel update", host="db-1")
    change(1, "lkk flags on stage", service="lkk", env="stage")
    fire(store, MARKING, 1, T0)
    fire(store, MARKING, 2, T0 + timedelta(minutes=1))
    [problem] = rows(store, problems)
    assert [(s["kind"], s["summary"], s["minutes_before"]) for s in problem["suspects"]] == [
        ("change", "nginx config for lkk", 7)
    ]
    assert problem["suspects"][0]["links"] == [{"href": "https://ci/1", "text": "run"}]


def test_the_jira_issue_the_bridge_creates_carries_the_suspect_line(store: Store):
    with FakeJira() as jira, Receiver("s3cret") as receiver:
        rules = rules_with("side_effects", [{**NOTIFY[0], "url": receiver.url, "events": ["problem.opened"]}])
        client = JiraClient.basic(requests.Session(), jira.url, "bot@example.com", "jira-token", timeout=2.0)
        runner = OutboxRunner(
            store, rules, client, LinkOptions("incident-bridge", "http://bridge.test"), timedelta(hours=1), 60
        )
        deploy(store, rules, "started", T0)
        fire(store, rules, 1, T0 + timedelta(minutes=14))
        fire(store, rules, 2, T0 + timedelta(minutes=15))
        run_once(store, T0 + timedelta(minutes=16), runner)
        assert jira.issues() == [] and receiver.received == [], "held while the deploy runs"
        deploy(store, rules, "finished", T0 + timedelta(minutes=20))
        for seconds in (5, 10):
            run_once(store, T0 + timedelta(minutes=30, seconds=seconds), runner)
        [issue] = jira.issues()
        text = "\n".join(iter_texts(issue["fields"]["description"]))
        assert "Suspect release: LKK 2026.12.1, deployed to prod 14 min before the first occurrence" in text
        [delivered] = receiver.received
        assert delivered.event == "problem.opened"
        assert delivered.body["problem"]["suspects"][0]["version"] == "2026.12.1"


def test_release_health_shows_each_deploy_its_alerts_and_the_problems_naming_it(store: Store):
    deploy(store, MARKING, "started", T0 - timedelta(minutes=20), "2026.12.1")
    fire(store, MARKING, 1, T0 - timedelta(minutes=19), alertname="SlowStart")  # a failure of its own
    deploy(store, MARKING, "finished", T0 - timedelta(minutes=15), "2026.12.1")
    deploy(store, MARKING, "failed", T0 - timedelta(minutes=12), "2026.12.1", environment="stage")
    deploy(store, MARKING, "finished", T0 - timedelta(minutes=10), "2026.12.2")
    fire(store, MARKING, 2, T0)
    fire(store, MARKING, 3, T0 + timedelta(minutes=1))
    close_release(store, None, MARKING, project="LKK", version="2026.12.1", issues=[], released_at=None, now=T0)
    close_release(store, None, MARKING, project="LKK", version="2026.12.2", issues=[], released_at=None, now=T0)
    [problem] = rows(store, problems)
    older = release_health(store, "LKK", "2026.12.1", timedelta(hours=24), T0 + timedelta(hours=1))
    prod, stage = older["deploys"]
    assert (prod["environment"], prod["state"], prod["alerts_during"]) == ("prod", "finished", 1)
    assert prod["started_at"] == T0 - timedelta(minutes=20) and prod["finished_at"] == T0 - timedelta(minutes=15)
    assert prod["problems"] == [
        {
            "id": problem["id"],
            "summary": problem["summary"],
            "state": "open",
            "opened_at": problem["opened_at"],
            "nearest_suspect": False,
        }
    ]
    assert (stage["environment"], stage["state"], stage["problems"]) == ("stage", "failed", [])
    newer = release_health(store, "LKK", "2026.12.2", timedelta(hours=24), T0 + timedelta(hours=1))
    assert [p["nearest_suspect"] for p in newer["deploys"][0]["problems"]] == [True]


def test_a_deploy_started_a_moment_ago_through_another_engine_marks(database_url: str):
    one, two = Store.from_url(database_url), Store.from_url(database_url)
    try:
        deploy(one, HOLDING, "started", T0)
        fire(two, HOLDING, 1, T0 + timedelta(seconds=1))
        [incident] = rows(two, incidents)
        assert incident["held"] and incident["during_deploy"]["version"] == "2026.12.1"
    finally:
        one.engine.dispose()
        two.engine.dispose()


def test_pipelines_telling_one_deploy_at_once_record_it_once(database_url: str):
    run_concurrently(database_url, [lambda store: deploy(store, HOLDING, "started", T0) for _ in range(4)])
    run_concurrently(
        database_url, [lambda store: deploy(store, HOLDING, "finished", T0 + timedelta(minutes=5)) for _ in range(4)]
    )
    store = Store.from_url(database_url)
    try:
        [row] = rows(store, deploys)
        [window] = rows(store, hold_windows)
        assert row["phase"] == "finished" and window["ends_at"] == T0 + timedelta(minutes=15)
    finally:
        store.engine.dispose()


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
def test_migration_0017_goes_down_and_up_and_turns_past_releases_into_deploys(backend: str, tmp_path: Path):
    """Releases recorded before it that named environments become finished deploys, suspects after the upgrade."""
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{tmp_path / 'steps.db'}" if backend == "sqlite" else stack.enter_context(new_pg_database())
        migrate(url)
        alembic_command.downgrade(_alembic_config(url), "0016")
        engine = make_engine(url)
        with engine.begin() as conn:
            conn.execute(
                sa.text(
                    "INSERT INTO releases (project, version, released_at, received_at, via, summary, environments) "
                    "VALUES ('LKK', '2026.12.1', :at, :at, 'pipeline', :summary, :environments)"
                ),
                {
                    "at": T0.replace(tzinfo=None) if backend == "sqlite" else T0,
                    "summary": '{"issues": ["LKK-1"]}',
                    "environments": '["prod", "stage"]',
                },
            )
        engine.dispose()
        migrate(url)
        engine = make_engine(url)
        with engine.connect() as conn:
            diff = compare_metadata(MigrationContext.configure(conn), metadata)
            found = conn.execute(sa.select(deploys).order_by(deploys.c.environment)).mappings().all()
        engine.dispose()
    assert [d for d in diff if d[0] != "remove_table"] == []
    assert [(row["environment"], row["phase"], row["deployed_at"], row["issues"]) for row in found] == [
        ("prod", "finished", T0, ["LKK-1"]),
        ("stage", "finished", T0, ["LKK-1"]),
    ]


def test_a_deploy_window_that_only_marks_is_never_released_and_leaves_its_incidents_as_they_are(store: Store):
    deploy(store, MARKING, "started", T0)
    fire(store, MARKING, 1, T0 + timedelta(minutes=1))
    deploy(store, MARKING, "finished", T0 + timedelta(minutes=5))
    run_once(store, T0 + timedelta(minutes=30), rules=MARKING)
    [window] = rows(store, hold_windows)
    assert (window["holds"], window["released_at"]) == (False, None)
    [incident] = rows(store, incidents)
    assert (incident["held"], incident["hold_window"], incident["clocks_from"]) == (False, None, None)
    assert incident["sla_running_since"] == T0 + timedelta(minutes=1), "its clocks ran from its opening"
    assert not any(e["kind"] == "released" for e in rows(store, incident_events))
