"""Property-based tests of the parsers and dedup through the HTTP edge (hypothesis)."""

from __future__ import annotations

import json

import pytest
import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bridge.app import create_app
from bridge.config import load_settings
from bridge.storage import incidents, migrate
from tests.conftest import ROOT, Clock, payload

NO_NUL = st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00")  # valid Unicode, no NUL
JSON_SCALARS = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=50)
JSON_VALUES = st.recursive(JSON_SCALARS, lambda children: st.lists(children, max_size=3)
                           | st.dictionaries(st.text(max_size=8), children, max_size=3), max_leaves=8)
LABEL_TEXT = st.text(min_size=0, max_size=40) | st.sampled_from(["", " ", "\u202e", "🔥", "x" * 300, "a\x00b"])
LABELS = st.dictionaries(st.text(min_size=1, max_size=20), LABEL_TEXT | JSON_SCALARS, max_size=6)
FINGERPRINTS = st.sampled_from(["a1", "b2", "c3", "d4"]) | st.text(max_size=20) | st.integers()
STARTS = st.sampled_from(["2026-11-25T10:00:00Z", "2026-11-25T10:05:00.123456789Z", "0001-01-01T00:00:00Z",
                          "yesterday", ""]) | st.integers()

ALERT = st.fixed_dictionaries(
    {},
    optional={"status": st.sampled_from(["firing", "resolved", "FIRING", ""]) | JSON_SCALARS,
              "labels": LABELS | JSON_VALUES, "annotations": LABELS, "startsAt": STARTS,
              "endsAt": STARTS, "fingerprint": FINGERPRINTS, "extra": JSON_VALUES})
NOTIFICATION = st.fixed_dictionaries(
    {"alerts": st.lists(ALERT, max_size=6) | JSON_VALUES},
    optional={"version": st.sampled_from(["4", "3", 4]), "status": st.sampled_from(["firing", "resolved", 1]),
              "truncatedAlerts": st.integers(min_value=-5, max_value=5) | st.text(max_size=3),
              "groupKey": st.text(max_size=20)})

ZABBIX = st.fixed_dictionaries(
    {},
    optional={"event_id": st.sampled_from(["1", "2", "99"]) | st.text(max_size=6) | st.integers(),
              "event_value": st.sampled_from(["0", "1", "2"]) | JSON_SCALARS,
              "event_update_status": st.sampled_from(["0", "1"]) | JSON_SCALARS,
              "event_name": LABEL_TEXT, "severity": st.sampled_from(["High", "Disaster", ""]) | JSON_SCALARS,
              "nseverity": st.sampled_from(["4", "5", "9"]), "trigger_id": st.text(max_size=8),
              "tags": st.lists(st.fixed_dictionaries({"tag": LABEL_TEXT, "value": LABEL_TEXT}), max_size=4)
              | st.text(max_size=30) | JSON_VALUES,
              "event_source": st.sampled_from(["0", "1", "3"])})


@pytest.fixture(scope="module")
def app(tmp_path_factory):
    url = f"sqlite:///{tmp_path_factory.mktemp('props') / 'props.db'}"
    migrate(url)
    return create_app(load_settings({}, database_url=url, rules_path=str(ROOT / "rules.yaml")), now=Clock())


def assert_consistent(app) -> None:
    store = app.extensions["bridge"].store
    with store.engine.connect() as conn:
        twins = conn.execute(sa.select(incidents.c.dedup_key).where(incidents.c.state == "firing")
                             .group_by(incidents.c.dedup_key).having(sa.func.count() > 1)).all()
        rows = conn.execute(sa.select(incidents.c.labels, incidents.c.occurrences)).all()
    assert twins == []
    for labels, occurrences in rows:
        assert occurrences >= 1
        assert all(isinstance(k, str) and isinstance(v, str) and "\x00" not in v for k, v in labels.items())


def post(app, source: str, body: object) -> None:
    response = app.test_client().post(f"/api/v1/alerts/{source}", data=json.dumps(body), content_type="application/json")
    assert response.status_code in (200, 400), response.get_data(as_text=True)
    assert response.is_json
    if response.status_code == 400:
        assert response.json["message"] and response.json["errors"]


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=NOTIFICATION)
def test_any_alertmanager_shaped_body_gets_a_clean_answer(app, body):
    post(app, "alertmanager", body)
    assert_consistent(app)


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(body=ZABBIX)
def test_any_zabbix_shaped_body_gets_a_clean_answer(app, body):
    post(app, "zabbix", body)
    assert_consistent(app)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(labels=st.dictionaries(st.text(NO_NUL, min_size=1, max_size=10), st.text(NO_NUL, max_size=20),
                              min_size=1, max_size=5),
       copies=st.integers(min_value=1, max_value=4))
def test_duplicates_in_one_notification_count_as_repeats_of_one_incident(app, labels, copies):
    body = payload("alertmanager-0.25-two-firing.json")
    fingerprint = f"{abs(hash(tuple(sorted(labels.items())))):016x}"[:16]
    alert = dict(body["alerts"][0], labels=labels, fingerprint=fingerprint)
    body["alerts"] = [alert] * copies
    response = app.test_client().post("/api/v1/alerts/alertmanager", data=json.dumps(body), content_type="application/json")
    assert response.status_code == 200, response.get_data(as_text=True)
    assert len(response.json["incidents"]) == 1
    outcomes = response.json["outcomes"]
    assert sum(outcomes.values()) == copies and outcomes.get("created", 0) <= 1
    assert_consistent(app)
