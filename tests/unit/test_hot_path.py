"""The webhook hot path's shortcuts give exactly what the slow paths give (issue 15).

The model-free Alertmanager parse against the pydantic models, routing decided once per
label set against deciding every time, problem-key templates rendered once per value of
what they read against rendering every time, a plain repeat counted from the firing
incident's head against the whole lifecycle on the whole incident.
"""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, datetime, time, timedelta
from typing import Any
from zoneinfo import ZoneInfo

from hypothesis import given, settings
from hypothesis import strategies as st

from adapters import alertmanager
from bridge.domain.incidents import (
    Alert,
    AlertStatus,
    Incident,
    IncidentHead,
    IncidentState,
    Matcher,
    Outcome,
    Route,
    Routing,
)
from bridge.domain.lifecycle import (
    apply_alert,
    apply_notifications,
    is_plain_repeat,
    mark_acknowledged,
    open_incident,
    plain_repeat_heads,
    remember_source_id,
    repeat_candidates,
    update_sla,
)
from bridge.domain.rules import _decide, route_alert
from bridge.domain.sla import TWENTY_FOUR_SEVEN, Calendar, SlaPolicy
from bridge.domain.windows import Window, WindowKind, hold, release
from bridge.errors import BadPayload
from bridge.rules.templates import TemplateError, _reads, compile_template
from bridge.validation import MAX_LABEL_NAME_LENGTH, MAX_LABEL_VALUE_LENGTH


def by_models(payload: Any) -> Any:
    """The pydantic path alone: what `parse` answered before the fast check existed."""
    return alertmanager.parse_grouped(
        payload,
        sender="Alertmanager",
        source=alertmanager.SOURCE,
        envelope_model=alertmanager._Envelope,
        alert_model=alertmanager.AlertModel,
        convert=lambda _envelope, alert: alertmanager.to_alert(alert, alertmanager.SOURCE, alert.fingerprint),
    )


def outcome(parse: Any, payload: Any) -> Any:
    try:
        return parse(payload)
    except BadPayload as exc:
        return ("refused", exc.message, tuple(exc.errors))


TEXT = st.text(alphabet=st.characters(codec="utf-8", categories=("L", "N", "P", "Zs", "Cc")), max_size=12)
TIMESTAMPS = st.one_of(
    st.sampled_from(
        [
            "2026-11-25T10:00:00Z",
            "2026-11-25T10:00:00.123456Z",
            "2026-11-25T10:00:00.1234567Z",
            "2026-11-25T12:00:00+02:00",
            "0001-01-01T00:00:00Z",
            "2026-02-30T10:00:00Z",
            "2026-11-25 10:00:00Z",
            "2026-11-25",
            "",
        ]
    ),
    st.integers(min_value=0, max_value=2_000_000_000),
    st.none(),
)
LABELS = st.one_of(
    st.dictionaries(TEXT, TEXT, max_size=4),
    st.just({"alertname": "A", "long": "v" * (MAX_LABEL_VALUE_LENGTH + 1)}),
    st.just({"n" * (MAX_LABEL_NAME_LENGTH + 1): "v"}),
    st.just({"nul": "a\x00b"}),
    st.just({"number": 1}),
    st.none(),
)
MISSING = object()


VALID_TIMESTAMPS = st.sampled_from(["2026-11-25T10:00:00Z", "2026-11-25T10:00:00.123456Z", "2026-11-25T12:00:00+02:00"])
VALID_LABELS = st.dictionaries(
    TEXT.filter(lambda text: "\x00" not in text), TEXT.filter(lambda t: "\x00" not in t), max_size=4
)


@st.composite
def alert_items(draw: st.DrawFn) -> Any:
    """A well-formed alert, or one with a field changed to something odd or wrong (half of them)."""
    item = {
        "status": draw(st.sampled_from(["firing", "resolved"])),
        "labels": draw(VALID_LABELS),
        "annotations": draw(VALID_LABELS),
        "startsAt": draw(VALID_TIMESTAMPS),
        "endsAt": draw(st.sampled_from(["0001-01-01T00:00:00Z", "2026-11-25T11:00:00Z"])),
        "generatorURL": "http://prom/graph",
        "fingerprint": draw(st.sampled_from(["3d64f6474bce3ff4", "A1"])),
    }
    if draw(st.booleans()):
        odd = {
            "status": st.sampled_from(["pending", 1, None]),
            "labels": LABELS,
            "annotations": st.one_of(LABELS, st.just(MISSING)),
            "startsAt": st.one_of(TIMESTAMPS, st.just(MISSING)),
            "endsAt": st.one_of(TIMESTAMPS, st.just(MISSING)),
            "generatorURL": st.sampled_from(["", None, "a\x00", 3, MISSING]),
            "fingerprint": st.sampled_from(["x" * 129, "bad-fp", "", 7, "٣", MISSING]),
            "extra": st.sampled_from(["kept", None]),
        }
        name = draw(st.sampled_from(sorted(odd)))
        item[name] = draw(odd[name])
    return {name: value for name, value in item.items() if value is not MISSING}


@st.composite
def notifications(draw: st.DrawFn) -> Any:
    """A well-formed envelope of such alerts, or one with a field changed (a third of them)."""
    envelope = {
        "version": "4",
        "status": draw(st.sampled_from(["firing", "resolved"])),
        "alerts": draw(st.lists(alert_items(), min_size=1, max_size=3)),
        "receiver": "bridge",
        "groupKey": draw(st.sampled_from(['{}:{alertname="A"}', ""])),
        "truncatedAlerts": draw(st.sampled_from([0, 5])),
    }
    if draw(st.integers(0, 2)) == 0:
        odd = {
            "version": st.sampled_from(["3", 4, MISSING]),
            "status": st.sampled_from(["pending", ["firing"], MISSING]),
            "alerts": st.sampled_from([[], None, "x", MISSING]),
            "receiver": st.sampled_from(["a\x00", 3, MISSING]),
            "groupKey": st.sampled_from([None, "a\x00", MISSING]),
            "truncatedAlerts": st.sampled_from([-1, True, "2", 2.0, 2**31, MISSING]),
        }
        name = draw(st.sampled_from(sorted(odd)))
        envelope[name] = draw(odd[name])
    return {name: value for name, value in envelope.items() if value is not MISSING}


@settings(max_examples=400, deadline=None)
@given(notifications())
def test_the_fast_parse_answers_exactly_as_the_models(payload):
    assert outcome(alertmanager.parse, payload) == outcome(by_models, payload)


def test_a_well_formed_notification_takes_the_fast_path():
    payload = {
        "version": "4",
        "status": "firing",
        "receiver": "bridge",
        "groupKey": "{}:{}",
        "alerts": [
            {
                "status": "firing",
                "labels": {"alertname": "A", "instance": "h:1"},
                "startsAt": "2026-11-25T10:00:00.5Z",
                "endsAt": "0001-01-01T00:00:00Z",
                "fingerprint": "abc123",
                "generatorURL": "http://prom/graph",
            }
        ],
    }
    fast = alertmanager.parse_plain(payload)
    assert fast is not None and fast == by_models(payload)
    assert fast.alerts[0].summary == "A on h:1" and fast.alerts[0].ends_at is None
    assert alertmanager.parse_plain({**payload, "truncatedAlerts": "1"}) is None, "the models judge the rest"


def test_routing_is_decided_once_per_label_set_and_equals_deciding_afresh(example_rules):
    alerts = [
        Alert("alertmanager", AlertStatus.FIRING, f"fp{n}", {"alertname": "HighErrorRate", "severity": severity})
        for n, severity in enumerate(["critical", "critical", "warning", "critical"])
    ]
    example_rules.decisions.clear()  # the rules are the session's
    cached = [route_alert(example_rules, alert) for alert in alerts]
    assert len(example_rules.decisions) == 2, "one decision per distinct value of the labels routes read"
    example_rules.decisions.clear()
    for alert, routing in zip(alerts, cached, strict=True):
        decision = _decide(example_rules, alert)
        assert (routing.route, routing.priority) == (decision.route, decision.priority)
        assert routing == route_alert(example_rules, alert)
        assert routing.dedup_key == f"alertmanager:{alert.source_id}"
        assert f"dedup key from the alertmanager id {alert.source_id}" in routing.reasons


def test_templates_that_read_only_items_and_scalars_render_once_per_value():
    assert _reads("{{ labels.alertname }}/{{ labels['a b'] }} {{ summary|upper }}") == (
        ("labels", "a b"),
        ("labels", "alertname"),
        ("summary", None),
    )
    for unsafe in (
        "{{ labels }}",
        "{{ labels.items() }}",
        "{{ labels.get }}",
        "{% for k in labels %}{{ k }}{% endfor %}",
        "{% set x = 1 %}{{ x }}",
        "{{ labels.a|random }}",
        "{{ lipsum() }}",
        "{{ range(3)|list }}",
    ):
        assert _reads(unsafe) is None, unsafe
    render = compile_template("{{ labels.alertname }}/{{ labels.service }} ({{ source }})")
    context = {"labels": {"alertname": "A", "service": "b", "other": "x"}, "source": "zabbix"}
    assert render(context) == "A/b (zabbix)"
    assert render({**context, "labels": {"alertname": "A", "service": "b", "other": "y"}}) == "A/b (zabbix)"
    assert render({**context, "labels": {"alertname": "A", "service": "c"}}) == "A/c (zabbix)"
    for _ in range(2):  # a missing label fails every time, never from the cache
        try:
            render({**context, "labels": {"alertname": "A"}})
        except TemplateError as exc:
            assert "service" in str(exc)
        else:
            raise AssertionError("a missing label must fail")


def test_labels_no_route_reads_share_one_decision_and_long_routed_values_are_not_cached(example_rules):
    example_rules.decisions.clear()
    assert "severity" in example_rules.routed_labels and "instance" not in example_rules.routed_labels
    for n in range(50):  # a storm: one failure on many instances
        route_alert(
            example_rules, Alert("alertmanager", AlertStatus.FIRING, f"fp{n}", {"alertname": "A", "instance": f"h{n}"})
        )
    assert len(example_rules.decisions) == 1
    alert = Alert("alertmanager", AlertStatus.FIRING, "fp", {"alertname": "A", "severity": "x" * 2000})
    assert route_alert(example_rules, alert).dedup_key == "alertmanager:fp"
    assert len(example_rules.decisions) == 1, "a sender cannot fill memory with huge label values"


# Plain repeats: the fast path decodes a live incident's head and counts, the lifecycle decodes it whole.

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)
OFFICE = Calendar("office", zone=ZoneInfo("Europe/Moscow"), weekly={d: ((time(9), time(18)),) for d in range(5)})
ROUTES = [
    Route("portal", Matcher(), "L3", "high", "high", timedelta(minutes=30), timedelta(hours=24)),
    Route("portal-low", Matcher(), "L3", "low", "medium", timedelta(minutes=30), timedelta(hours=24)),
    Route("db", Matcher(), "L2", "high", "high", timedelta(minutes=30), timedelta(hours=24)),
]
PRIORITY = {("high", "high"): "P1", ("low", "medium"): "P4"}
POLICY_SETS = [
    {"P1": SlaPolicy("P1", timedelta(hours=4), TWENTY_FOUR_SEVEN, response=timedelta(minutes=15))},
    {"P1": SlaPolicy("P1", timedelta(hours=4), OFFICE), "P4": SlaPolicy("P4", timedelta(days=3), OFFICE)},
    {"P1": SlaPolicy("P1", timedelta(hours=8), TWENTY_FOUR_SEVEN, response=timedelta(minutes=30))},
    {},
]
LABEL_SETS = [{"alertname": "PortalDown", "instance": "web-1"}, {"alertname": "PortalDown", "instance": "web-2"}]
ANNOTATION_SETS = [{"summary": "down"}, {"summary": "down", "runbook": "r1"}, {}]


MAINTENANCE = Window(1, WindowKind.MAINTENANCE, "db", Matcher(source="alertmanager"), T0, T0 + timedelta(minutes=2))


def routing_of(route: Route) -> Routing:
    return Routing("alertmanager:fp-1", route, PRIORITY[route.impact, route.urgency], ())


@st.composite
def live_incidents(draw: st.DrawFn) -> tuple[Incident, dict[str, SlaPolicy], Alert, Route]:
    """A stored live incident (firing, or resolved) as the lifecycle left it under the policies then
    in force, with the last alert it took (the one that opened or resolved it) and its route."""
    route = draw(st.sampled_from(ROUTES))
    policies = draw(st.sampled_from(POLICY_SETS))
    alert = Alert(
        "alertmanager",
        AlertStatus.FIRING,
        "fp-1",
        draw(st.sampled_from(LABEL_SETS)),
        draw(st.sampled_from(ANNOTATION_SETS)),
        draw(st.sampled_from(["", "Portal down"])),
        starts_at=draw(st.sampled_from([None, T0 - timedelta(minutes=1)])),
    )
    incident = open_incident(alert, routing_of(route), T0)
    remember_source_id(incident, alert.source_id)
    update_sla(incident, Outcome.CREATED, policies.get(incident.priority), T0)
    incident.id, incident.problem_id = 7, draw(st.sampled_from([None, 3]))
    incident.occurrences = draw(st.integers(1, 5))
    held = draw(st.sampled_from(["never", "never", "held", "released"]))
    if held != "never":  # opened under a maintenance window: held still, or released at its end
        hold(incident, MAINTENANCE)
        if held == "released":
            release(incident, policies.get(incident.priority), MAINTENANCE.ends_at, MAINTENANCE.ends_at)
    if draw(st.booleans()):
        mark_acknowledged(incident, "duty", T0 + timedelta(minutes=draw(st.integers(1, 40))))
        incident.annotations = {**incident.annotations, "acknowledged_by": "duty"}
    if draw(st.booleans()):
        ended = draw(st.sampled_from([None, T0 + timedelta(minutes=3)]))
        alert = replace(alert, status=AlertStatus.RESOLVED, ends_at=ended)
        resolved_at = T0 + timedelta(minutes=draw(st.integers(5, 300)))
        outcome, _ = apply_alert(incident, alert, routing_of(route), resolved_at)
        assert outcome is Outcome.RESOLVED
        update_sla(incident, outcome, policies.get(incident.priority), resolved_at)
    return incident, policies, alert, route


def sometimes(draw: st.DrawFn, same: Any, *others: Any) -> Any:
    """`same` three times in four, else one of `others`: re-sends, with now and then one thing changed."""
    return draw(st.sampled_from([same, same, same, same, same, same, *others]))


def later_alerts(draw: st.DrawFn, first: Alert, route: Route) -> list[tuple[Alert, Routing]]:
    """One to three alerts for the incident's key: mostly re-sends of `first`, some with one thing changed."""
    alerts = []
    for _ in range(draw(st.integers(1, 3))):
        alert = replace(
            first,
            status=sometimes(draw, first.status, AlertStatus.FIRING, AlertStatus.RESOLVED),
            source_id=sometimes(draw, "fp-1", "fp-2"),
            labels=sometimes(draw, first.labels, *LABEL_SETS),
            annotations=sometimes(draw, first.annotations, *ANNOTATION_SETS),
            summary=sometimes(draw, first.summary, "", "Portal slow"),
            starts_at=sometimes(draw, first.starts_at, None, T0 - timedelta(minutes=5), T0),
            is_update=sometimes(draw, False, True),
            repeat_counts=draw(st.booleans()),
            note_only=sometimes(draw, False, True),
        )
        alerts.append((alert, routing_of(sometimes(draw, route, *ROUTES))))
    return alerts


@settings(max_examples=1500, deadline=None)
@given(live_incidents(), st.data(), st.integers(1, 3))
def test_a_plain_repeat_counts_exactly_what_the_lifecycle_writes(stored, data, per_notification):
    """Whenever the fast path takes a key, the whole lifecycle on the whole incident leaves that
    incident with the count and last sighting the fast path writes, and nothing else changed."""
    incident, policies_then, first, route = stored
    alerts = later_alerts(data.draw, first, route)
    policies_now = sometimes(data.draw, policies_then, *POLICY_SETS)
    notifications = [
        (
            [alert for alert, _ in alerts[i : i + per_notification]],
            [r for _, r in alerts[i : i + per_notification]],
            T0 + timedelta(minutes=10 + i),
        )
        for i in range(0, len(alerts), per_notification)
    ]
    key = "alertmanager:fp-1"
    plain = plain_repeat_heads(notifications, {key: IncidentHead.of(incident)}, policies_now)
    full = apply_notifications(notifications, {key: incident}, policies_now)
    if key not in plain:
        return
    fast = apply_notifications(notifications, {}, policies_now, plain)
    [counted] = fast.repeats
    [(written, last_index)] = full.touched
    expected = incident.copy()
    expected.occurrences += counted.added
    expected.last_seen = counted.last_seen
    assert vars(written) == vars(expected)
    assert last_index == counted.notification_index
    assert [[r.outcome for r in own] for own in fast.results] == [[r.outcome for r in own] for own in full.results]
    assert all(r.incident_id == 7 and r.problem_id == incident.problem_id for own in fast.results for r in own)
    assert fast.touched == []


def test_a_re_sent_alert_is_a_plain_repeat_and_a_changed_one_is_not():
    policies = POLICY_SETS[0]
    alert = Alert("alertmanager", AlertStatus.FIRING, "fp-1", LABEL_SETS[0], ANNOTATION_SETS[0], "", starts_at=T0)
    incident = open_incident(alert, routing_of(ROUTES[0]), T0)
    remember_source_id(incident, "fp-1")
    update_sla(incident, Outcome.CREATED, policies["P1"], T0)
    incident.id = 7
    head = IncidentHead.of(incident)
    same = routing_of(ROUTES[0])
    assert is_plain_repeat(head, alert, same, policies)
    changed = [
        (replace(alert, labels=LABEL_SETS[1]), same, policies),
        (replace(alert, annotations=ANNOTATION_SETS[1]), same, policies),
        (replace(alert, summary="Portal slow"), same, policies),
        (replace(alert, source_id="fp-2"), same, policies),
        (replace(alert, starts_at=T0 + timedelta(minutes=1)), same, policies),
        (replace(alert, status=AlertStatus.RESOLVED), same, policies),
        (replace(alert, is_update=True), same, policies),
        (replace(alert, note_only=True), same, policies),
        (alert, routing_of(ROUTES[2]), policies),  # another line
        (alert, same, POLICY_SETS[2]),  # the priority's policy changed since the incident opened
        (alert, same, {}),  # no policy any more: the lifecycle clears the clock
    ]
    for other, routing, policies_now in changed:
        assert not is_plain_repeat(head, other, routing, policies_now), other
    # An older episode and a re-send without counting are still plain repeats.
    assert is_plain_repeat(head, replace(alert, starts_at=T0 - timedelta(hours=1), repeat_counts=False), same, policies)


def test_a_re_sent_resolve_is_a_plain_repeat_that_counts_nothing():
    """Alertmanager re-sends a resolve (HA peers, each flush): the resolved incident is only seen again."""
    policies = POLICY_SETS[1]
    alert = Alert("alertmanager", AlertStatus.FIRING, "fp-1", LABEL_SETS[0], ANNOTATION_SETS[0], "", starts_at=T0)
    same = routing_of(ROUTES[0])
    incident = open_incident(alert, same, T0)
    remember_source_id(incident, "fp-1")
    update_sla(incident, Outcome.CREATED, policies["P1"], T0)
    resolve = replace(alert, status=AlertStatus.RESOLVED)
    outcome, _ = apply_alert(incident, resolve, same, T0 + timedelta(hours=1))
    update_sla(incident, outcome, policies["P1"], T0 + timedelta(hours=1))
    incident.id = 7
    head = IncidentHead.of(incident)
    assert is_plain_repeat(head, resolve, same, policies)
    # The lifecycle does not refresh a resolved incident's details: a changed label is still a plain re-send.
    assert is_plain_repeat(head, replace(resolve, labels=LABEL_SETS[1]), routing_of(ROUTES[2]), policies)
    for other, policies_now in [
        (alert, policies),  # firing again: a reopen or a new incident
        (replace(resolve, source_id="fp-2"), policies),  # a source id to remember
        (replace(resolve, is_update=True), policies),
        (resolve, POLICY_SETS[0]),  # the policy changed: the stopped clock's targets move
    ]:
        assert not is_plain_repeat(head, other, same, policies_now), other
    notifications = [([resolve], [same], T0 + timedelta(hours=2))]
    fast = apply_notifications(notifications, {}, policies, {same.dedup_key: head})
    [counted] = fast.repeats
    assert (counted.added, counted.last_seen) == (0, T0 + timedelta(hours=2))


def test_repeat_candidates_want_the_state_their_alerts_could_repeat():
    """A key's head is decoded only when every alert of the key could plainly repeat one live state."""
    alert = Alert("alertmanager", AlertStatus.FIRING, "fp-1", LABEL_SETS[0], ANNOTATION_SETS[0], "")
    resolve = replace(alert, status=AlertStatus.RESOLVED)

    def routed(key: str) -> Routing:
        return Routing(key, ROUTES[0], "P1", ())

    notifications = [
        ([alert, resolve, alert], [routed("fires"), routed("resolves"), routed("both")], T0),
        ([alert, resolve, replace(alert, is_update=True)], [routed("fires"), routed("both"), routed("updated")], T0),
    ]
    assert repeat_candidates(notifications) == {"fires": IncidentState.FIRING, "resolves": IncidentState.RESOLVED}
