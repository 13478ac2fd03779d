"""The domain: incidents and the problems that group them.

Pure standard library on purpose: no HTTP, SQL or YAML here, so the rules that decide
what becomes an incident or a problem can be read and tested alone.
"""

from bridge.domain.incidents import (
    IMPACT_LEVELS, MAX_READABLE_KEY_LENGTH, MAX_SOURCE_IDS, URGENCY_LEVELS, Alert, AlertResult, AlertStatus,
    EventRoutingKey, Incident,
    IncidentState, Matcher, Outcome, ParsedNotification, RejectedAlert, Route, Routing, apply_alert,
    apply_notification, apply_notifications, bounded_key, dedup_key, label_set_key, open_incident,
    remember_source_id, update_sla,
)
from bridge.domain.outbox import OutboxState
from bridge.domain.rules import Rules, route_alert
from bridge.domain.problems import (
    JiraTarget, Problem, ProblemDecision, ProblemRule, ProblemState, Renderer, TransitionRefused, comment_text,
    decide_problem, problem_rule_for, regression_comment_text, release_comment_text, template_context,
)

__all__ = [
    "IMPACT_LEVELS", "MAX_READABLE_KEY_LENGTH", "MAX_SOURCE_IDS", "URGENCY_LEVELS", "Alert", "AlertResult",
    "AlertStatus", "EventRoutingKey", "Incident", "IncidentState", "JiraTarget", "Matcher", "OutboxState", "Outcome", "ParsedNotification", "Problem",
    "ProblemDecision", "ProblemRule", "ProblemState", "RejectedAlert", "Renderer", "Route", "Routing", "Rules",
    "TransitionRefused", "apply_alert", "apply_notification", "apply_notifications", "bounded_key", "comment_text",
    "decide_problem", "dedup_key", "label_set_key", "open_incident", "problem_rule_for", "regression_comment_text",
    "release_comment_text", "remember_source_id", "route_alert", "template_context", "update_sla",
]
