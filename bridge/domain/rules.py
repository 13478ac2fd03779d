"""The operator's rules as the domain sees them, and routing: which route, line and priority an alert gets.

Here rather than beside incidents or problems because the rules hold both: routes for
incidents, problem rules for grouping.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

from bridge.domain.incidents import Alert, EventRoutingKey, Route, Routing, dedup_key
from bridge.domain.problems import ProblemRule
from bridge.domain.tickets import NotifyTarget, TicketSystem
from bridge.sla import SlaPolicy


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


def route_alert(rules: Rules, alert: Alert) -> Routing:
    """Decide key, line, impact, urgency and priority for an alert, and say why."""
    route = rules.route_for(alert)
    priority = rules.priority(route.impact, route.urgency)
    reasons = []
    if route is rules.default_route:
        reasons.append("no route matched; defaults apply")
    else:
        reasons.append(f'route "{route.name}" matched')
    if route.dedup_labels:
        reasons.append(f"dedup key from labels {', '.join(route.dedup_labels)}")
    else:
        reasons.append(f"dedup key from the {alert.source} id {alert.source_id}")
    reasons.append(f"line {route.line}")
    reasons.append(f"priority {priority} = impact {route.impact} x urgency {route.urgency}")
    return Routing(dedup_key(alert, route), route, priority, tuple(reasons))
