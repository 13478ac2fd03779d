"""The operator's rules as the domain sees them, and routing: which route, line and priority an alert gets.

Here rather than beside incidents or problems because the rules hold both: routes for
incidents, problem rules for grouping.
"""

from __future__ import annotations

import functools
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import timedelta

from bridge.domain.deploys import Project
from bridge.domain.heartbeats import Heartbeat, pinged_heartbeat
from bridge.domain.incidents import Alert, EventRoutingKey, Route, Routing, dedup_key
from bridge.domain.problems import ProblemRule
from bridge.domain.sla import SlaPolicy
from bridge.domain.suspects import DEFAULT_SUSPECT_WINDOW
from bridge.domain.tickets import NotifyTarget, TicketSystem
from bridge.domain.windows import RecurringWindow


@dataclass(frozen=True)
class Rules:
    """The operator's rules: ordered routes (first match wins), a fallback and the priority matrix."""

    routes: tuple[Route, ...]
    default_route: Route
    priority_matrix: Mapping[tuple[str, str], str]
    problem_rules: tuple[ProblemRule, ...] = ()
    version_label: str | None = None
    # The label naming a target's environment: a recurrence where the fix's release did not reach is no regression.
    environment_label: str | None = None
    sla_policies: Mapping[str, SlaPolicy] = field(default_factory=dict)
    event_routing_keys: tuple[EventRoutingKey, ...] = ()
    ticket_systems: Mapping[str, TicketSystem] = field(default_factory=dict)
    notify_targets: tuple[NotifyTarget, ...] = ()
    heartbeats: tuple[Heartbeat, ...] = ()
    # Recurring maintenance windows, stored occurrence by occurrence (bridge/watch/windows.py).
    maintenance: tuple[RecurringWindow, ...] = ()
    # Projects and the services their releases ship: deploy windows and suspects (bridge/domain/deploys.py).
    projects: tuple[Project, ...] = ()
    # How long before a problem's first occurrence a release or change is one of its suspects.
    suspect_window: timedelta = DEFAULT_SUSPECT_WINDOW
    # (source, values of routed_labels) -> the routing decision they get under these rules (see route_alert).
    decisions: dict[tuple[str, tuple[str | None, ...]], _Decision] = field(
        default_factory=dict, init=False, repr=False, compare=False, hash=False
    )

    @functools.cached_property
    def routed_labels(self) -> tuple[str, ...]:
        """Every label name a route's matcher reads: the rest of an alert's labels cannot change its route."""
        names = {name for route in self.routes for name in (*route.matcher.labels, *route.matcher.labels_regex)}
        return tuple(sorted(names))

    @functools.cached_property
    def _pinged_by_source(self) -> Mapping[str, tuple[Heartbeat, ...]]:
        """The heartbeats some alerts of a source ping (a matcher singles them out), by source."""
        found: dict[str, list[Heartbeat]] = {}
        for heartbeat in self.heartbeats:
            if heartbeat.source is not None and heartbeat.matcher is not None:
                found.setdefault(heartbeat.source, []).append(heartbeat)
        return {source: tuple(heartbeats) for source, heartbeats in found.items()}

    def watches_pings_from(self, source: str) -> bool:
        """Whether some alerts of this source may be heartbeat pings: a dictionary lookup, so a source
        without one pays nothing per alert."""
        return source in self._pinged_by_source

    def heartbeat_pinged_by(self, alert: Alert) -> Heartbeat | None:
        """The heartbeat this alert pings (it is then no incident), if any."""
        candidates = self._pinged_by_source.get(alert.source)
        return pinged_heartbeat(candidates, alert) if candidates else None

    def project(self, name: str) -> Project | None:
        return next((project for project in self.projects if project.name == name), None)

    def heartbeat(self, name: str) -> Heartbeat | None:
        return next((heartbeat for heartbeat in self.heartbeats if heartbeat.name == name), None)

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


# Routing decisions kept per rules object; past this many the cache starts over.
MAX_CACHED_DECISIONS = 16_384
# Decisions on routed label values longer than this in all (characters) are made every time,
# so the cache stays small whatever senders send.
MAX_CACHED_LABEL_TEXT = 1024


@dataclass(frozen=True)
class _Decision:
    """What the routed labels decide for an alert: route, priority and the reasons that do not name the alert."""

    route: Route
    priority: str
    route_reason: str
    tail_reasons: tuple[str, ...]


def _decide(rules: Rules, alert: Alert) -> _Decision:
    route = rules.route_for(alert)
    priority = rules.priority(route.impact, route.urgency)
    route_reason = (
        "no route matched; defaults apply" if route is rules.default_route else f'route "{route.name}" matched'
    )
    tail = (f"line {route.line}", f"priority {priority} = impact {route.impact} x urgency {route.urgency}")
    return _Decision(route, priority, route_reason, tail)


def route_alert(rules: Rules, alert: Alert) -> Routing:
    """Decide key, line, impact, urgency and priority for an alert, and say why.

    The route depends on the source and the labels the routes read (`Rules.routed_labels`),
    so it is decided once per such values and rules object and looked up after that: a
    storm of thousands of instances of one failure is one decision. The key is the alert's own.
    """
    routed = tuple(map(alert.labels.get, rules.routed_labels))
    cache_key = (alert.source, routed)
    decision = rules.decisions.get(cache_key)
    if decision is None:
        decision = _decide(rules, alert)
        if sum(len(value) for value in routed if value is not None) <= MAX_CACHED_LABEL_TEXT:
            if len(rules.decisions) >= MAX_CACHED_DECISIONS:
                rules.decisions.clear()
            rules.decisions[cache_key] = decision
    route = decision.route
    if route.dedup_labels:
        key_reason = f"dedup key from labels {', '.join(route.dedup_labels)}"
    else:
        key_reason = f"dedup key from the {alert.source} id {alert.source_id}"
    return Routing(
        dedup_key(alert, route), route, decision.priority, (decision.route_reason, key_reason, *decision.tail_reasons)
    )


def with_priority(rules: Rules, routing: Routing, impact: str, urgency: str, because: str) -> Routing:
    """The routing with its own impact and urgency over its route's (a person's ticket, a heartbeat's rule)."""
    if (impact, urgency) == (routing.impact, routing.urgency):
        return routing
    return replace(
        routing,
        route=replace(routing.route, impact=impact, urgency=urgency),
        priority=rules.priority(impact, urgency),
        reasons=(*routing.reasons, f"impact {impact} and urgency {urgency} from {because}"),
    )
