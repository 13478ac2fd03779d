"""The incident lifecycle, decided without HTTP or SQL."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest

from bridge.domain.incidents import (
    MAX_READABLE_KEY_LENGTH,
    MAX_SOURCE_IDS,
    Alert,
    AlertStatus,
    IncidentState,
    Matcher,
    Outcome,
    Route,
    bounded_key,
    dedup_key,
)
from bridge.domain.lifecycle import apply_notifications
from bridge.domain.rules import Rules, route_alert


def apply_notification(alerts, routings, current, now, sla_policies=None):
    """One notification through `apply_notifications`, as most tests need it.

    Returns each alert's result and the distinct incidents to write (each once, in the
    order first touched). Alerts sharing a key see each other's effects.
    """
    applied = apply_notifications([(alerts, routings, now)], current, sla_policies)
    [results] = applied.results
    return results, [incident for incident, _ in applied.touched]


T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
EPISODE_1 = datetime(2026, 11, 23, 18, 59, tzinfo=UTC)
EPISODE_2 = datetime(2026, 11, 23, 19, 20, tzinfo=UTC)


def make_route(name: str = "defaults", **overrides) -> Route:
    values = dict(
        name=name,
        matcher=Matcher(),
        line="L3",
        impact="medium",
        urgency="medium",
        reopen_window=timedelta(minutes=30),
        auto_close_after=timedelta(hours=24),
    )
    values.update(overrides)
    return Route(**values)


MATRIX = {
    (i, u): f"P{min(5, 1 + a + b)}"
    for a, i in enumerate(("high", "medium", "low"))
    for b, u in enumerate(("high", "medium", "low"))
}
RULES = Rules(
    routes=(
        make_route("critical", matcher=Matcher(labels={"severity": "critical"}), impact="high", urgency="high"),
        make_route(
            "dependency",
            matcher=Matcher(labels_regex={"alertname": re.compile("Dependency.*")}),
            dedup_labels=("alertname", "service"),
        ),
    ),
    default_route=make_route(),
    priority_matrix=MATRIX,
)


def am_alert(
    status: str = "firing",
    fingerprint: str = "fp1",
    starts_at: datetime = EPISODE_1,
    ends_at: datetime | None = None,
    **labels: str,
) -> Alert:
    return Alert(
        source="alertmanager",
        status=AlertStatus(status),
        source_id=fingerprint,
        labels={"alertname": "HighErrorRate", **labels},
        summary="errors",
        starts_at=starts_at,
        ends_at=ends_at,
    )


def run(alerts, current=None, now=T0):
    routings = [route_alert(RULES, alert) for alert in alerts]
    return apply_notification(alerts, routings, current or {}, now)


def single(alert, current=None, now=T0):
    results, changed = run([alert], current, now)
    return results[0], changed


def firing_incident():
    (result, _) = single(am_alert())
    incident = result.incident
    incident.id = 1
    return incident


def resolved_incident(at: datetime = T0):
    incident = firing_incident()
    result, _ = single(am_alert("resolved", ends_at=at), {incident.dedup_key: incident}, now=at)
    result.incident.id = 1
    return result.incident


def test_first_firing_alert_opens_incident_on_l3():
    result, changed = single(am_alert())
    assert result.outcome is Outcome.CREATED
    assert changed == [result.incident]
    incident = result.incident
    assert (incident.state, incident.line, incident.occurrences, incident.id) == (IncidentState.FIRING, "L3", 1, None)
    assert incident.dedup_key == "alertmanager:fp1"


def test_repeat_raises_occurrences_and_last_seen_without_new_incident():
    incident = firing_incident()
    later = T0 + timedelta(minutes=5)
    result, changed = single(am_alert(), {incident.dedup_key: incident}, now=later)
    assert result.outcome is Outcome.REPEATED
    assert [c.id for c in changed] == [1]
    assert (changed[0].occurrences, changed[0].last_seen) == (2, later)
    assert incident.occurrences == 1, "the caller's incident is not mutated"


def test_resolved_alert_resolves_with_its_end_time():
    incident = firing_incident()
    ended = T0 + timedelta(minutes=3)
    result, _ = single(
        am_alert("resolved", ends_at=ended), {incident.dedup_key: incident}, now=T0 + timedelta(minutes=4)
    )
    assert result.outcome is Outcome.RESOLVED
    assert (result.incident.state, result.incident.resolved_at) == (IncidentState.RESOLVED, ended)
    assert result.incident.auto_close_at == ended + timedelta(hours=24)


def test_resolve_time_from_the_future_is_clamped_to_now():
    incident = firing_incident()
    result, _ = single(am_alert("resolved", ends_at=T0 + timedelta(days=1)), {incident.dedup_key: incident})
    assert result.incident.resolved_at == T0


def test_new_episode_within_reopen_window_reopens_same_incident():
    incident = resolved_incident()
    now = T0 + timedelta(minutes=20)
    result, _ = single(am_alert(starts_at=EPISODE_2), {incident.dedup_key: incident}, now=now)
    assert result.outcome is Outcome.REOPENED
    reopened = result.incident
    assert (reopened.id, reopened.state, reopened.reopen_count, reopened.occurrences) == (1, IncidentState.FIRING, 1, 2)
    assert reopened.resolved_at is None and reopened.auto_close_at is None


def test_new_episode_after_reopen_window_opens_new_incident():
    incident = resolved_incident()
    result, changed = single(
        am_alert(starts_at=EPISODE_2), {incident.dedup_key: incident}, now=T0 + timedelta(minutes=31)
    )
    assert result.outcome is Outcome.CREATED
    assert result.incident.id is None and result.incident.reopen_count == 0
    assert changed == [result.incident]


def test_ha_peer_late_firing_snapshot_after_resolve_is_stale():
    """Alertmanager HA: the second peer's older snapshot must not reopen the incident."""
    incident = resolved_incident()
    result, changed = single(
        am_alert(starts_at=EPISODE_1), {incident.dedup_key: incident}, now=T0 + timedelta(seconds=15)
    )
    assert result.outcome is Outcome.STALE
    assert changed == []


def test_late_resolve_of_an_older_episode_does_not_resolve_current_one():
    incident = firing_incident()
    incident.episode_started_at = EPISODE_2
    result, changed = single(am_alert("resolved", starts_at=EPISODE_1, ends_at=T0), {incident.dedup_key: incident})
    assert result.outcome is Outcome.STALE
    assert changed == []


def test_resolve_for_unknown_key_creates_nothing():
    result, changed = single(am_alert("resolved", ends_at=T0))
    assert result.outcome is Outcome.UNKNOWN_RESOLVED
    assert (result.incident, changed) == (None, [])


def test_repeated_resolve_only_touches_last_seen():
    incident = resolved_incident()
    later = T0 + timedelta(minutes=1)
    result, _ = single(am_alert("resolved", ends_at=T0), {incident.dedup_key: incident}, now=later)
    assert result.outcome is Outcome.REPEATED
    assert (result.incident.state, result.incident.resolved_at, result.incident.last_seen) == (
        IncidentState.RESOLVED,
        T0,
        later,
    )


def test_alerts_sharing_a_key_in_one_notification_see_each_other():
    results, changed = run([am_alert(), am_alert(), am_alert("resolved", ends_at=T0)])
    assert [r.outcome for r in results] == [Outcome.CREATED, Outcome.REPEATED, Outcome.RESOLVED]
    assert len(changed) == 1 and changed[0].occurrences == 2 and changed[0].state is IncidentState.RESOLVED


def test_route_sets_priority_from_impact_and_urgency_matrix():
    routing = route_alert(RULES, am_alert(severity="critical"))
    assert (routing.route.name, routing.impact, routing.urgency, routing.priority) == ("critical", "high", "high", "P1")
    assert any("critical" in reason for reason in routing.reasons)
    assert route_alert(RULES, am_alert()).route is RULES.default_route


def test_dedup_labels_merge_instances_into_one_incident():
    a = am_alert(fingerprint="fp-a", alertname="DependencyDown", service="db", instance="a")
    b = am_alert(fingerprint="fp-b", alertname="DependencyDown", service="db", instance="b")
    results, changed = run([a, b])
    assert (
        results[0].routing.dedup_key
        == results[1].routing.dedup_key
        == 'alertmanager:labels:{alertname="DependencyDown", service="db"}'
    )
    assert len(changed) == 1 and changed[0].occurrences == 2


def test_very_long_label_key_is_hashed_to_bounded_length_keeping_a_readable_prefix():
    route = make_route(dedup_labels=("alertname",))
    key = dedup_key(am_alert(alertname="x" * 5000), route)
    other = dedup_key(am_alert(alertname="x" * 4999 + "y"), route)
    assert key.startswith('alertmanager:labels:{alertname="xxx') and "…sha256:" in key
    assert len(key) <= len("alertmanager:") + MAX_READABLE_KEY_LENGTH and key != other


def test_bounded_key_keeps_short_keys_and_fits_any_long_one_in_an_index_entry():
    assert bounded_key("HighErrorRate/lkk") == "HighErrorRate/lkk"
    exact = "k" * MAX_READABLE_KEY_LENGTH
    assert bounded_key(exact) == exact
    long = "🔥" * 3000
    key = bounded_key(long)
    assert len(key) == MAX_READABLE_KEY_LENGTH and key.startswith("🔥🔥🔥")
    assert len(key.encode()) < 1000, "far below PostgreSQL's 2.7 kB b-tree entry limit"
    assert bounded_key(long + "a") != key and bounded_key(long) == key


def test_label_values_with_quotes_do_not_collide():
    route = make_route(dedup_labels=("a", "b"))
    one = dedup_key(am_alert(a='x", b="y', b=""), route)
    two = dedup_key(am_alert(a="x", b='y", b="'), route)
    assert one != two


def zabbix_alert(status: str = "firing", severity: str = "High", is_update: bool = False) -> Alert:
    return Alert(
        source="zabbix",
        status=AlertStatus(status),
        source_id="1",
        labels={"severity": severity},
        summary="LKK API errors",
        is_update=is_update,
    )


def test_zabbix_update_changes_details_without_counting_a_repeat():
    zrules = Rules(
        routes=(
            make_route("disaster", matcher=Matcher(labels={"severity": "Disaster"}), impact="high", urgency="high"),
        ),
        default_route=make_route(),
        priority_matrix=MATRIX,
    )
    first = zabbix_alert()
    routing = route_alert(zrules, first)
    [created], _ = apply_notification([first], [routing], {}, T0)
    incident = created.incident
    incident.id = 7
    update = zabbix_alert(severity="Disaster", is_update=True)
    [result], _ = apply_notification([update], [route_alert(zrules, update)], {incident.dedup_key: incident}, T0)
    assert result.outcome is Outcome.UPDATED
    assert (result.incident.occurrences, result.incident.priority) == (1, "P1")


def test_zabbix_problem_redelivered_after_recovery_does_not_reopen():
    """Zabbix retries: a late copy of the problem notification after the recovery is stale."""
    [created], _ = run([zabbix_alert()])
    incident = created.incident
    incident.id = 3
    [resolved], _ = run([zabbix_alert("resolved")], {incident.dedup_key: incident})
    [late], changed = run([zabbix_alert()], {incident.dedup_key: resolved.incident})
    assert late.outcome is Outcome.STALE and changed == []


@pytest.mark.parametrize("window_minutes, expected", [(0, Outcome.CREATED), (60, Outcome.REOPENED)])
def test_reopen_window_is_taken_from_the_route(window_minutes, expected):
    rules = Rules(
        routes=(), default_route=make_route(reopen_window=timedelta(minutes=window_minutes)), priority_matrix=MATRIX
    )
    incident = resolved_incident()
    alert = am_alert(starts_at=EPISODE_2)
    [result], _ = apply_notification(
        [alert], [route_alert(rules, alert)], {incident.dedup_key: incident}, T0 + timedelta(minutes=10)
    )
    assert result.outcome is expected


def test_zabbix_redelivery_of_the_same_event_is_not_another_occurrence():
    alert = Alert(
        source="zabbix",
        status=AlertStatus.FIRING,
        source_id="7",
        labels={"severity": "High"},
        summary="s",
        repeat_counts=False,
    )
    [created], _ = run([alert])
    incident = created.incident
    incident.id = 1
    [again], changed = run([alert], {incident.dedup_key: incident})
    assert again.outcome is Outcome.REPEATED and changed[0].occurrences == 1


ZABBIX_BY_TRIGGER = Rules(
    routes=(make_route("by-trigger", matcher=Matcher(source="zabbix"), dedup_labels=("trigger_id",)),),
    default_route=make_route(),
    priority_matrix=MATRIX,
)


def zabbix_event(event_id: str, status: str = "firing") -> Alert:
    return Alert(
        source="zabbix",
        status=AlertStatus(status),
        source_id=event_id,
        labels={"trigger_id": "23133", "severity": "High"},
        summary="s",
        repeat_counts=False,
    )


def gather(event_ids, current=None):
    incident = current
    for event_id in event_ids:
        alert = zabbix_event(event_id)
        known = {incident.dedup_key: incident} if incident is not None else {}
        [result], _ = apply_notification([alert], [route_alert(ZABBIX_BY_TRIGGER, alert)], known, T0)
        incident = result.incident
        incident.id = 1
    return incident


def test_incident_keyed_by_labels_keeps_the_event_ids_it_gathered():
    incident = gather(["101", "102", "103"])
    assert incident.dedup_key == 'zabbix:labels:{trigger_id="23133"}'
    assert incident.source_ids == ["101", "102", "103"]


def test_a_known_event_id_leaves_source_ids_untouched():
    """A redelivery must not rewrite the column: the diff of the incident sees no change."""
    incident = gather(["101", "102"])
    redelivered = zabbix_event("101")
    [again], [written] = apply_notification(
        [redelivered], [route_alert(ZABBIX_BY_TRIGGER, redelivered)], {incident.dedup_key: incident}, T0
    )
    assert again.outcome is Outcome.REPEATED and written.source_ids == incident.source_ids == ["101", "102"]


def test_source_ids_keep_only_the_newest():
    incident = gather([str(n) for n in range(1, MAX_SOURCE_IDS + 51)])
    assert len(incident.source_ids) == MAX_SOURCE_IDS
    assert incident.source_ids[0] == "51" and incident.source_ids[-1] == str(MAX_SOURCE_IDS + 50)


def test_incident_written_before_source_ids_starts_its_list_with_the_next_event():
    legacy = gather(["101"])
    legacy.source_ids = None
    assert gather(["102"], legacy).source_ids == ["102"]
