"""Property-based tests of the parsers and dedup through the HTTP edge (hypothesis), on SQLite and PostgreSQL."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.app import create_app
from bridge.config import load_settings
from bridge.storage.engine import migrate
from bridge.storage.schema import incidents
from bridge.storage.store import Store
from tests.conftest import ROOT, Clock, empty_tables, payload

NO_NUL = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # valid Unicode, no NUL
JSON_SCALARS = (
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=50)
)
JSON_VALUES = st.recursive(
    JSON_SCALARS,
    lambda children: st.lists(children, max_size=3) | st.dictionaries(st.text(max_size=8), children, max_size=3),
    max_leaves=8,
)
# Random (incompressible) values past PostgreSQL's 2.7 kB index row limit: hex, and 3-byte UTF-8 characters.
LONG_TEXT = st.binary(min_size=1400, max_size=2000).map(bytes.hex) | st.binary(min_size=1000, max_size=1500).map(
    lambda raw: "".join(chr(0x4E00 + byte) for byte in raw)
)
# Every kind of number a sender might put in a numeric field: huge, negative, fractional.
NUMBERS = (
    st.integers()
    | st.integers(min_value=2**31 - 2, max_value=2**80)
    | st.integers(max_value=-(2**63) + 2)
    | st.floats(allow_nan=False, allow_infinity=False)
)
DEEP_JSON_TEXT = st.integers(min_value=1, max_value=5000).map(lambda n: "[" * n + "]" * n)
LABEL_TEXT = (
    st.text(min_size=0, max_size=40) | LONG_TEXT | st.sampled_from(["", " ", "\u202e", "🔥", "x" * 300, "a\x00b"])
)
LABELS = st.dictionaries(st.text(min_size=1, max_size=20), LABEL_TEXT | JSON_SCALARS, max_size=6)
FINGERPRINTS = st.sampled_from(["a1", "b2", "c3", "d4"]) | st.text(max_size=20) | NUMBERS
STARTS = (
    st.sampled_from(["2026-11-25T10:00:00Z", "2026-11-25T10:05:00.123456789Z", "0001-01-01T00:00:00Z", "yesterday", ""])
    | NUMBERS
)

ALERT = st.fixed_dictionaries(
    {},
    optional={
        "status": st.sampled_from(["firing", "resolved", "FIRING", ""]) | JSON_SCALARS,
        "labels": LABELS | JSON_VALUES,
        "annotations": LABELS,
        "startsAt": STARTS,
        "endsAt": STARTS,
        "fingerprint": FINGERPRINTS,
        "extra": JSON_VALUES,
    },
)
NOTIFICATION = st.fixed_dictionaries(
    {"alerts": st.lists(ALERT, max_size=6) | JSON_VALUES},
    optional={
        "version": st.sampled_from(["4", "3", 4]),
        "status": st.sampled_from(["firing", "resolved", 1]),
        "truncatedAlerts": st.integers(min_value=-5, max_value=5) | st.text(max_size=3) | NUMBERS,
        "groupKey": st.text(max_size=20),
    },
)

ZABBIX = st.fixed_dictionaries(
    {},
    optional={
        "event_id": st.sampled_from(["1", "2", "99"]) | st.text(max_size=6) | NUMBERS,
        "event_value": st.sampled_from(["0", "1", "2"]) | JSON_SCALARS | NUMBERS,
        "event_update_status": st.sampled_from(["0", "1"]) | JSON_SCALARS,
        "event_name": LABEL_TEXT,
        "severity": st.sampled_from(["High", "Disaster", ""]) | JSON_SCALARS,
        "nseverity": st.sampled_from(["4", "5", "9"]) | NUMBERS,
        "trigger_id": st.text(max_size=8) | LONG_TEXT | NUMBERS,
        "host": LABEL_TEXT,
        "tags": st.lists(st.fixed_dictionaries({"tag": LABEL_TEXT, "value": LABEL_TEXT}), max_size=4)
        | st.text(max_size=30)
        | JSON_VALUES
        | DEEP_JSON_TEXT
        | st.lists(st.fixed_dictionaries({"tag": LABEL_TEXT, "value": LABEL_TEXT}), max_size=3).map(json.dumps),
        "event_source": st.sampled_from(["0", "1", "3"]) | NUMBERS,
    },
)
# A valid alert whose labels are random (long, multi-byte) and whose fingerprint is its own.
GOOD_LABELS = st.dictionaries(
    st.text(NO_NUL, min_size=1, max_size=20).filter(lambda name: name != "alertname"),
    st.text(NO_NUL, max_size=40) | LONG_TEXT,
    max_size=5,
)
GOOD_ALERT = st.builds(
    lambda labels, fingerprint: {
        "status": "firing",
        "labels": {**labels, "alertname": "PropertyGood"},
        "annotations": {},
        "startsAt": "2026-11-23T18:59:02Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "fingerprint": fingerprint,
    },
    GOOD_LABELS,
    st.uuids().map(lambda u: u.hex[:16]),
)
MIXED = st.lists(st.tuples(st.booleans(), GOOD_ALERT, ALERT), min_size=1, max_size=5)


@pytest.fixture(scope="module", params=["sqlite", "postgres"])
def app(request, tmp_path_factory):
    if request.param == "sqlite":
        url = f"sqlite:///{tmp_path_factory.mktemp('props') / 'props.db'}"
        migrate(url)
    else:
        url = request.getfixturevalue("pg_database_url")
        store = Store.from_url(url)
        empty_tables(store)
        store.engine.dispose()
    app = create_app(load_settings({}, database_url=url, rules_path=str(ROOT / "rules.yaml")), now=Clock())
    yield app
    app.extensions["bridge"].store.engine.dispose()


def assert_consistent(app) -> None:
    store = app.extensions["bridge"].store
    with store.engine.connect() as conn:
        twins = conn.execute(
            sa.select(incidents.c.dedup_key)
            .where(incidents.c.state == "firing")
            .group_by(incidents.c.dedup_key)
            .having(sa.func.count() > 1)
        ).all()
        rows = conn.execute(sa.select(incidents.c.labels, incidents.c.occurrences)).all()
    assert twins == []
    for labels, occurrences in rows:
        assert occurrences >= 1
        assert all(isinstance(k, str) and isinstance(v, str) and "\x00" not in v for k, v in labels.items())


def post(app, source: str, body: object):
    """Any body gets a clean answer: 200 with every refused alert named, or a 4xx naming the problem."""
    response = app.test_client().post(
        f"/api/v1/alerts/{source}", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code in (200, 400, 413, 415), response.get_data(as_text=True)
    assert response.is_json
    if response.status_code != 200:
        assert response.json["message"] and response.json["errors"]
    elif source == "alertmanager":
        alerts = body["alerts"]  # type: ignore[index]
        refused = [item["index"] for item in response.json["rejected"]]
        assert all(item["errors"] for item in response.json["rejected"])
        assert response.json["alerts"] + len(refused) == len(alerts) and len(set(refused)) == len(refused)
    return response


def assert_next_notification_works(app) -> None:
    response = app.test_client().post(
        "/api/v1/alerts/alertmanager",
        data=json.dumps(payload("alertmanager-0.25-two-firing.json")),
        content_type="application/json",
    )
    assert response.status_code == 200, response.get_data(as_text=True)


@settings(
    max_examples=100,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=NOTIFICATION)
def test_any_alertmanager_shaped_body_gets_a_clean_answer(app, body):
    post(app, "alertmanager", body)
    assert_consistent(app)
    assert_next_notification_works(app)


@settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(body=ZABBIX)
def test_any_zabbix_shaped_body_gets_a_clean_answer(app, body):
    post(app, "zabbix", body)
    assert_consistent(app)
    assert_next_notification_works(app)


@settings(
    max_examples=40,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.data_too_large],
)
@given(items=MIXED)
def test_every_good_alert_becomes_an_incident_whatever_its_neighbours_hold(app, items):
    """Good alerts with random long labels, mixed with arbitrary junk: each good one is an incident,
    each refused one is named in rejected, and nothing else is lost."""
    alerts = [good if is_good else junk for is_good, good, junk in items]
    body = dict(payload("alertmanager-0.25-two-firing.json"), alerts=alerts)
    response = post(app, "alertmanager", body)
    good = [alert for (is_good, alert, _) in items if is_good]
    if not good:
        return
    assert response.status_code == 200, response.get_data(as_text=True)
    refused = {item["index"] for item in response.json["rejected"]}
    assert not refused & {index for index, (is_good, *_) in enumerate(items) if is_good}
    store = app.extensions["bridge"].store
    with store.engine.connect() as conn:
        stored = dict(
            conn.execute(
                sa.select(incidents.c.dedup_key, incidents.c.labels).where(
                    incidents.c.dedup_key.in_([f"alertmanager:{alert['fingerprint']}" for alert in good])
                )
            ).all()
        )
    assert {f"alertmanager:{alert['fingerprint']}": alert["labels"] for alert in good} == stored
    assert_next_notification_works(app)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    labels=st.dictionaries(
        st.text(NO_NUL, min_size=1, max_size=10), st.text(NO_NUL, max_size=20), min_size=1, max_size=5
    ),
    copies=st.integers(min_value=1, max_value=4),
)
def test_duplicates_in_one_notification_count_as_repeats_of_one_incident(app, labels, copies):
    body = payload("alertmanager-0.25-two-firing.json")
    fingerprint = f"{abs(hash(tuple(sorted(labels.items())))):016x}"[:16]
    alert = dict(body["alerts"][0], labels=labels, fingerprint=fingerprint)
    body["alerts"] = [alert] * copies
    response = app.test_client().post(
        "/api/v1/alerts/alertmanager", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(response.json["incidents"]) == 1
    outcomes = response.json["outcomes"]
    assert sum(outcomes.values()) == copies and outcomes.get("created", 0) <= 1
    assert_consistent(app)
