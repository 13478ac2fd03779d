"""A value the database refuses is a bad item (400, kept in rejected_payloads), never an outage,
and costs only the alerts that carry it: on SQLite and PostgreSQL."""

from __future__ import annotations

import secrets
from dataclasses import replace
from datetime import UTC, datetime

import orjson
import pytest
import sqlalchemy as sa

from bridge.domain.incidents import Matcher
from bridge.domain.problems import ProblemState
from bridge.errors import DataRefused, StoreUnavailable
from bridge.ingest.deliveries import _write_work, prepare_delivery, write_deliveries
from bridge.storage.schema import incidents, notifications, problems, rejected_payloads
from bridge.storage.store import Store
from tests.conftest import empty_tables, payload

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def overlong_line_rules(rules):
    """Rules whose first route writes a support line longer than the column (a value PostgreSQL refuses)."""
    route = replace(
        rules.routes[0],
        name="overlong-line",
        line="L" * 80,
        matcher=Matcher(source="alertmanager", labels={"team": "overlong"}),
    )
    return replace(rules, routes=(route, *rules.routes))


def two_alerts(second_labels: dict[str, str] | None = None) -> bytes:
    body = payload("alertmanager-0.25-two-firing.json")
    if second_labels:
        body["alerts"][1]["labels"].update(second_labels)
    return orjson.dumps(body)


def rows(store: Store, table: sa.Table) -> list[dict]:
    with store.engine.connect() as conn:
        return [dict(row) for row in conn.execute(sa.select(table).order_by(table.c.id)).mappings()]


def test_out_of_range_value_is_a_data_refusal_not_an_outage(store):
    """SQLite's driver overflows past 64 bits, PostgreSQL refuses past its column type: both say 400."""
    row = dict(
        source="alertmanager",
        received_at=T0,
        body="{}",
        alert_count=1,
        rejected_count=0,
        truncated_alerts=2**70,
        group_key=None,
    )
    with pytest.raises(DataRefused) as refused:
        store.run(lambda conn: conn.execute(notifications.insert(), row))
    assert refused.value.status == 400 and refused.value.errors[0].startswith("database: ")
    with pytest.raises(DataRefused):
        store.read(lambda conn: conn.execute(sa.select(notifications).where(notifications.c.id == 2**70)).all())
    store.run(lambda conn: conn.execute(notifications.insert(), dict(row, truncated_alerts=0)))
    assert len(rows(store, notifications)) == 1


def test_index_row_too_large_is_a_data_refusal_not_an_outage(pg_database_url):
    """PostgreSQL reports an oversized index entry as an OperationalError: the SQLSTATE (54000) decides."""
    store = Store.from_url(pg_database_url)
    try:
        values = dict(
            problem_key=secrets.token_hex(3000),
            rule="r",
            state="open",
            summary="s",
            description="",
            incident_count=0,
            opened_at=T0,
            regressions=0,
            comment_pending=0,
        )
        with pytest.raises(DataRefused) as refused:
            store.run(lambda conn: conn.execute(problems.insert(), values))
        assert not isinstance(refused.value, StoreUnavailable)
        assert "index row size" in refused.value.errors[0]
    finally:
        store.engine.dispose()


def test_alert_the_database_refuses_is_rejected_alone_and_its_neighbour_written(pg_database_url, example_rules):
    store = Store.from_url(pg_database_url)
    empty_tables(store)
    rules = overlong_line_rules(example_rules)
    try:
        delivery = prepare_delivery(store, rules, "alertmanager", two_alerts({"team": "overlong"}), T0)
        [result] = write_deliveries(store, rules, [delivery])
        assert [alert.labels["instance"] for alert in result.parsed.alerts] == ["a:1"]
        [refused] = result.parsed.rejected
        assert refused.index == 1
        assert refused.errors[0].startswith("alerts[1]: database: value too long for type character varying(64)")
        assert [row["labels"]["instance"] for row in rows(store, incidents)] == ["a:1"]
        [kept] = rows(store, rejected_payloads)
        assert kept["partial"] and kept["reason"] == "1 of 2 alerts refused" and kept["errors"] == list(refused.errors)
        [notification] = rows(store, notifications)
        assert (notification["alert_count"], notification["rejected_count"]) == (1, 1)

        again = prepare_delivery(store, rules, "alertmanager", two_alerts(), T0)
        [next_result] = write_deliveries(store, rules, [again])
        assert next_result.outcomes == {"repeated": 1, "created": 1}, "the next notification works"
    finally:
        store.engine.dispose()


def test_notification_whose_every_alert_is_refused_is_a_400_kept_in_rejected(pg_database_url, example_rules):
    store = Store.from_url(pg_database_url)
    empty_tables(store)
    rules = overlong_line_rules(example_rules)
    body = payload("alertmanager-0.25-two-firing.json")
    for alert in body["alerts"]:
        alert["labels"]["team"] = "overlong"
    try:
        delivery = prepare_delivery(store, rules, "alertmanager", orjson.dumps(body), T0)
        with pytest.raises(DataRefused) as refused:
            write_deliveries(store, rules, [delivery])
        assert refused.value.status == 400 and refused.value.message == "notification refused by the database"
        assert [line[:10] for line in refused.value.errors] == ["alerts[0]:", "alerts[1]:"]
        assert rows(store, incidents) == [] and rows(store, notifications) == []
        [kept] = rows(store, rejected_payloads)
        assert not kept["partial"] and kept["reason"] == "notification refused by the database"
    finally:
        store.engine.dispose()


def test_notification_refused_for_its_own_fields_is_a_400_and_the_next_one_works(store, example_rules):
    """No alert is to blame when the envelope holds the bad value: the whole notification is refused, kept."""
    good = prepare_delivery(store, example_rules, "alertmanager", two_alerts(), T0)
    bad_envelope = replace(good, parsed=replace(good.parsed, truncated_alerts=2**70))
    with pytest.raises(DataRefused) as refused:
        write_deliveries(store, example_rules, [bad_envelope])
    assert refused.value.errors and refused.value.errors[0].startswith("database: ")
    assert rows(store, incidents) == []
    [kept] = rows(store, rejected_payloads)
    assert kept["reason"] == "notification refused by the database" and not kept["partial"]
    [result] = write_deliveries(store, example_rules, [good])
    assert result.outcomes == {"created": 2}


def test_group_with_a_refused_value_fails_as_data_so_the_group_commit_writes_each_alone(store, example_rules):
    """A refused value is never StoreUnavailable: GroupCommit then rewrites the group one by one."""
    good = prepare_delivery(store, example_rules, "alertmanager", two_alerts(), T0)
    bad_envelope = replace(good, parsed=replace(good.parsed, truncated_alerts=2**70))
    zabbix = prepare_delivery(store, example_rules, "zabbix", orjson.dumps(payload("zabbix-6.0.14-problem.json")), T0)
    with pytest.raises(DataRefused):
        write_deliveries(store, example_rules, [good, bad_envelope, zabbix])
    assert rows(store, incidents) == [] and rows(store, rejected_payloads) == []


def test_problem_key_rendered_from_a_huge_label_is_bounded_and_opens_its_problem(store, example_rules):
    body = payload("zabbix-6.0.14-problem.json")
    body["trigger_id"] = secrets.token_hex(2000)
    delivery = prepare_delivery(store, example_rules, "zabbix", orjson.dumps(body), T0)
    [result] = write_deliveries(store, example_rules, [delivery])
    assert result.outcomes == {"created": 1}
    [problem] = rows(store, problems)
    assert problem["state"] == ProblemState.OPEN.value
    assert problem["problem_key"].startswith("zabbix-trigger/" + body["trigger_id"][:50])
    assert len(problem["problem_key"]) <= 200 and "…sha256:" in problem["problem_key"]


def test_probe_transaction_is_always_rolled_back(store, example_rules):
    delivery = prepare_delivery(store, example_rules, "alertmanager", two_alerts(), T0)
    assert store.refusal(_write_work(store, example_rules, [delivery], 1024)) is None
    assert rows(store, notifications) == [] and rows(store, incidents) == []


def test_version_label_of_thousands_of_digits_after_a_fix_is_a_regression_not_a_crash(store, example_rules):
    """is_older once ran int() on the label: past 4300 digits that raised ValueError and lost the notification."""
    body = payload("alertmanager-0.25-two-firing.json")
    write_deliveries(
        store, example_rules, [prepare_delivery(store, example_rules, "alertmanager", orjson.dumps(body), T0)]
    )
    [problem] = rows(store, problems)
    store.run(
        lambda conn: store.close_problems_and_incidents(
            conn, [problem["id"]], T0, "released in 2026.11.2", fixed_in="2026.11.2", fixed_at=T0
        )
    )
    alert = dict(body["alerts"][0], fingerprint="00000000000000ff", startsAt="2026-11-23T20:00:00Z")
    alert["labels"] = dict(alert["labels"], version="7" * 5000)
    later = T0.replace(hour=21)
    [result] = write_deliveries(
        store,
        example_rules,
        [prepare_delivery(store, example_rules, "alertmanager", orjson.dumps(dict(body, alerts=[alert])), later)],
    )
    assert result.outcomes == {"created": 1} and result.regressions == 1
    [reopened] = rows(store, problems)
    assert reopened["regressions"] == 1 and reopened["state"] != "closed"
