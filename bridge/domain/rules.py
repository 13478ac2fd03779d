"""The operator's rules as the domain sees them, and routing: which route, line and priority an alert gets.

Here rather than beside incidents or problems because the rules hold both: routes for
incidents, problem rules for grouping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.domain.incidents import Alert, EventRoutingKey, Route, Routing, dedup_key
from bridge.domain.problems import ProblemRule
from bridge.sla import SlaPolicy


@dataclass(frozen=True)
class Rules:
    """The operator's rules: ordered routes (first match wins), a fallback and the priority matrix."""

    routes: tuple[Route, ...]
    default_route: Route
    priority_matrix: Mapping[tuple[str, str], str]
    problem_rules: tuple[ProblemRule, ...] = ()
    version_label: str | None = None
    sla_policies: Mapping[str, SlaPolicy] = field(default_factory=dict)
    event_routing_keys: tuple[EventRoutingKey, ...] = ()
    # (source, label items) -> the routing decision those labels get under these rules (see route_alert).
    decisions: dict[tuple[str, tuple[tuple[str, str], ...]], _Decision] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @property
    def priorities(self) -> list[str]:
        """Every priority the matrix can give, in order."""
        return sorted(set(self.priority_matrix.values()))

    @property
    def lines(self) -> list[str]:
        """Every support line a route can assign."""
        return sorted({route.line for route in (*self.routes, self.default_route)})

    def route_for(self, alert: Alert) -> Route:
        for route in self.routes:
            if route.matcher.matches(alert):
                return route
        return self.default_route

    def priority(self, impact: str, urgency: str) -> str:
        return self.priority_matrix[(impact, urgency)]


# Routing decisions kept per rules object; past this many distinct label sets the cache starts over.
MAX_CACHED_DECISIONS = 16_384
# Label sets longer than this (names and values, in characters) are decided every time, so the
# cache holds at most a few tens of MB whatever senders send.
MAX_CACHED_LABEL_TEXT = 1024


@dataclass(frozen=True)
class _Decision:
    """What the labels alone decide for an alert: route, priority, a key made of labels, the fixed reasons."""

    route: Route
    priority: str
    label_key: str | None
    route_reason: str
    tail_reasons: tuple[str, ...]


def _decide(rules: Rules, alert: Alert) -> _Decision:
    route = rules.route_for(alert)
    priority = rules.priority(route.impact, route.urgency)
    route_reason = (
        "no route matched; defaults apply" if route is rules.default_route else f'route "{route.name}" matched'
    )
    tail = (f"line {route.line}", f"priority {priority} = impact {route.impact} x urgency {route.urgency}")
    label_key = dedup_key(alert, route) if route.dedup_labels else None
    return _Decision(route, priority, label_key, route_reason, tail)


def route_alert(rules: Rules, alert: Alert) -> Routing:
    """Decide key, line, impact, urgency and priority for an alert, and say why.

    The decision depends on the source and labels only, so it is made once per label set
    and rules object (a storm repeats the same alerts) and looked up after that.
    """
    labels = alert.labels
    cache_key = (alert.source, tuple(labels.items()))
    decision = rules.decisions.get(cache_key)
    if decision is None:
        decision = _decide(rules, alert)
        if sum(map(len, labels.values())) + sum(map(len, labels)) <= MAX_CACHED_LABEL_TEXT:
            if len(rules.decisions) >= MAX_CACHED_DECISIONS:
                rules.decisions.clear()
            rules.decisions[cache_key] = decision
    route = decision.route
    if decision.label_key is not None:
        key, key_reason = decision.label_key, f"dedup key from labels {', '.join(route.dedup_labels or ())}"
    else:
        key, key_reason = dedup_key(alert, route), f"dedup key from the {alert.source} id {alert.source_id}"
    return Routing(key, route, decision.priority, (decision.route_reason, key_reason, *decision.tail_reasons))
