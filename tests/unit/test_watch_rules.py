"""rules.yaml `heartbeats` and `maintenance`: what check-rules accepts, and every mistake named with its entry."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from bridge.rules.load import RulesError
from tests.conftest import example_rules_with


def refused(**sections: Any) -> list[str]:
    with pytest.raises(RulesError) as error:
        example_rules_with(**sections)
    return error.value.problems


def test_the_three_kinds_of_heartbeat_load_as_configured():
    rules = example_rules_with(
        heartbeats=[
            {
                "name": "w",
                "source": "alertmanager",
                "match": {"labels": {"alertname": "Watchdog"}},
                "interval": "5m",
                "grace": "1m",
            },
            {"name": "z", "source": "zabbix", "interval": "30m", "impact": "high"},
            {"name": "job", "interval": "25h"},
        ]
    )
    watchdog, zabbix, job = rules.heartbeats
    assert watchdog.matcher is not None and watchdog.matcher.source == "alertmanager"
    assert watchdog.allowed_silence == timedelta(minutes=6)
    assert zabbix.pinged_by_notifications and zabbix.impact == "high" and zabbix.grace == timedelta(0)
    assert job.pinged_by_endpoint and rules.heartbeat("job") is job


@pytest.mark.parametrize(
    "entry, said",
    [
        ({"name": "a", "match": {"labels": {"x": "y"}}, "interval": "5m"}, 'heartbeat "a": match needs a source'),
        ({"name": "a", "source": "nagios", "interval": "5m"}, "source 'nagios' is not a sender"),
        ({"name": "a", "source": "heartbeat", "interval": "5m"}, "source 'heartbeat' is not a sender"),
        ({"name": "a", "source": "zabbix", "match": {}, "interval": "5m"}, "match names no label"),
        ({"name": "a", "interval": "0s"}, 'heartbeat "a": interval: must be longer than zero'),
        ({"name": "a", "interval": "soon"}, 'heartbeat "a": interval: invalid duration'),
        ({"name": "a", "interval": "5m", "urgency": "now"}, "urgency 'now' is not one of high, medium, low"),
        ({"name": "a b", "interval": "5m"}, 'heartbeat "a b" key name'),
        ({"name": "a", "interval": "5m", "ping": True}, 'heartbeat "a" key ping: unknown key'),
    ],
)
def test_a_heartbeat_mistake_is_named_with_its_heartbeat(entry, said):
    assert any(said in problem for problem in refused(heartbeats=[entry])), refused(heartbeats=[entry])


def test_a_heartbeat_name_used_twice_is_refused():
    twice = [{"name": "a", "interval": "5m"}, {"name": "a", "interval": "6m"}]
    assert 'heartbeat "a": name used twice' in refused(heartbeats=twice)


def test_a_recurring_window_loads_with_its_zone_and_refuses_what_it_cannot_read():
    window = {"name": "sun", "every": "sun 02:00-04:00", "timezone": "Europe/Berlin", "match": {"source": "zabbix"}}
    [loaded] = example_rules_with(maintenance=[window]).maintenance
    assert loaded.recurrence.zone.key == "Europe/Berlin" and loaded.reason == "recurring maintenance"
    problems = refused(maintenance=[{**window, "every": "sunday 2am"}])
    assert any(p.startswith('maintenance window "sun": every/timezone:') for p in problems)
    problems = refused(maintenance=[{**window, "match": {}}])
    assert any("match must name a source or a label" in p for p in problems)
    problems = refused(maintenance=[{**window, "timezone": "Mars/Olympus"}])
    assert any("unknown time zone" in p for p in problems)
