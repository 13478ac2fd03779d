"""Load and validate `rules.yaml` into the domain's frozen `Rules`.

Validation is strict (unknown keys are errors) and every message names the rule and
the key, so a broken file fails at start-up with something an operator can act on.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Mapping
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml
from pydantic import Field, ValidationError, field_validator

from adapters import SOURCES
from bridge.domain.incidents import IMPACT_LEVELS, URGENCY_LEVELS, Alert, EventRoutingKey, Matcher, Route
from bridge.domain.problems import JiraTarget, ProblemRule, Renderer
from bridge.domain.rules import Rules
from bridge.rules.heartbeats import HeartbeatModel, build_heartbeats
from bridge.rules.matching import MatchModel, matcher_of
from bridge.rules.outcomes import OutcomesModel, build_outcomes
from bridge.rules.projects import ProjectModel, build_projects
from bridge.rules.sla import SlaModel, build_sla
from bridge.rules.templates import TemplateError, compile_template, example_alerts
from bridge.rules.tickets import NotifyTargetModel, TicketSystemModel, build_notify_targets, build_ticket_systems
from bridge.rules.windows import RecurringWindowModel, build_recurring_windows
from bridge.validation import StrictModel, message_for, parse_duration

_VARIABLE = re.compile(r"\$\{([^}]*)\}")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class RulesError(Exception):
    """rules.yaml is unreadable or invalid; `problems` lists every finding."""

    def __init__(self, path: str, problems: list[str]) -> None:
        self.path = path
        self.problems = problems
        super().__init__(f"{path}: " + "; ".join(problems))


def expand_variables(text: str, environ: Mapping[str, str]) -> str:
    """`text` with every `${NAME}` replaced by that environment variable, so secrets stay out of the file.

    Raises:
        ValueError: naming each reference that is not a variable name, or each variable that is unset.
    """
    names = _VARIABLE.findall(text)
    invalid = [name for name in names if not _VARIABLE_NAME.fullmatch(name)]
    if invalid:
        raise ValueError("not a variable name: " + ", ".join(f"${{{name}}}" for name in invalid))
    unset = [name for name in names if name not in environ]
    if unset:
        raise ValueError("environment variable not set: " + ", ".join(unset))
    return _VARIABLE.sub(lambda match: environ[match.group(1)], text)


class RouteFields(StrictModel):
    """Fields a route may set; unset ones come from `defaults`."""

    line: str | None = Field(default=None, min_length=1, max_length=64)
    impact: str | None = None
    urgency: str | None = None
    reopen_window: str | None = None
    auto_close_after: str | None = None
    dedup_labels: list[str] | None = None


class RouteModel(RouteFields):
    name: str = Field(min_length=1, max_length=200)
    match: MatchModel


class JiraTargetModel(StrictModel):
    create: bool = False
    project: str = Field(min_length=1)
    issue_type: str = Field(default="Bug", min_length=1)
    labels: list[str] = []
    components: list[str] = []
    priority_map: dict[str, str] = {}
    comment_interval: str = "1h"
    close_on_release: bool = True
    done_transition: str | None = None
    reopen_on_regression: bool = True
    reopen_transition: str | None = None
    transition_fields: dict[str, dict[str, Any]] = {}
    outcomes: OutcomesModel = OutcomesModel()

    @field_validator("transition_fields")
    @classmethod
    def _json_field_values(cls, value: dict[str, dict[str, Any]]) -> dict[str, dict[str, Any]]:
        # Sent as the transition's `fields`: Jira takes a string, a number or an object such as {name: Fixed}.
        for transition, fields in value.items():
            for name, field_value in fields.items():
                if not _is_field_value(field_value):
                    raise ValueError(
                        f"{transition}.{name}: must be a string, a number or an object such as "
                        f"{{name: Fixed}}, not {field_value!r}"
                    )
        return value

    @field_validator("labels")
    @classmethod
    def _no_spaces(cls, value: list[str]) -> list[str]:
        for label in value:
            if not label or any(ch.isspace() for ch in label):
                raise ValueError(f"Jira labels cannot be empty or contain spaces: {label!r}")
        return value


def _is_field_value(value: Any) -> bool:
    """A string, a number (not a boolean) or an object of JSON values: what a Jira field takes."""
    if isinstance(value, bool) or value is None:
        return False
    if isinstance(value, str | int | float):
        return _is_json(value)
    return isinstance(value, dict) and _is_json(value)


def _is_json(value: Any) -> bool:
    if isinstance(value, float):
        return math.isfinite(value)
    if value is None or isinstance(value, str | int | bool):
        return True
    if isinstance(value, list):
        return all(_is_json(item) for item in value)
    return isinstance(value, dict) and all(isinstance(k, str) and _is_json(v) for k, v in value.items())


class ProblemRuleModel(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    match: MatchModel
    key: str = Field(min_length=1)
    open_after: int = Field(default=1, ge=1)
    window: str = "1h"
    summary: str = Field(min_length=1)
    description: str = ""
    example_labels: dict[str, str] | None = None
    jira: JiraTargetModel | None = None


class ReleasesModel(StrictModel):
    version_label: str | None = Field(default=None, min_length=1)
    environment_label: str | None = Field(default=None, min_length=1)
    suspect_window: str = Field(default="24h", min_length=1)


class RoutingKeyModel(StrictModel):
    name: str = Field(min_length=1, max_length=100, pattern=r"^[A-Za-z0-9._-]+$")
    key: str = Field(min_length=1)
    labels: dict[str, str] = {}


class EventsModel(StrictModel):
    routing_keys: list[RoutingKeyModel] = []


class RulesModel(StrictModel):
    version: int
    defaults: RouteFields
    priority_matrix: dict[str, dict[str, str]]
    routes: list[RouteModel] = []
    problems: list[ProblemRuleModel] = []
    releases: ReleasesModel = ReleasesModel()
    sla: SlaModel = SlaModel()
    events: EventsModel = EventsModel()
    ticket_systems: dict[str, TicketSystemModel] = {}
    notify: list[NotifyTargetModel] = []
    heartbeats: list[HeartbeatModel] = []
    maintenance: list[RecurringWindowModel] = []
    projects: dict[str, ProjectModel] = {}


_SECTION_NOUN = {
    "routes": "route",
    "problems": "problem rule",
    "notify": "notify target",
    "heartbeats": "heartbeat",
    "maintenance": "maintenance window",
}


def _section_location(loc: tuple[Any, ...]) -> str | None:
    """`sla calendar "x" key hours` for locations inside the sla section's named maps."""
    if len(loc) >= 3 and loc[0] == "events" and loc[1] == "routing_keys" and isinstance(loc[2], int):
        rest = ".".join(str(part) for part in loc[3:])
        return f"events routing key #{loc[2] + 1}" + (f" key {rest}" if rest else "")
    if len(loc) >= 3 and loc[0] == "sla" and loc[1] in ("calendars", "policies"):
        noun = "sla calendar" if loc[1] == "calendars" else "sla policy"
        rest = ".".join(str(part) for part in loc[3:])
        return f'{noun} "{loc[2]}"' + (f" key {rest}" if rest else "")
    if len(loc) >= 2 and loc[0] == "projects":
        rest = ".".join(str(part) for part in loc[2:])
        return f'project "{loc[1]}"' + (f" key {rest}" if rest else "")
    if len(loc) >= 2 and loc[0] == "ticket_systems":
        rest = ".".join(str(part) for part in loc[2:])
        return f'ticket system "{loc[1]}"' + (f" key {rest}" if rest else "")
    return None


def _format_location(loc: tuple[Any, ...], raw: Mapping[str, Any]) -> str:
    """Turn a pydantic location into `route "db-team" key impact` style text."""
    named = _section_location(loc)
    if named is not None:
        return named
    if len(loc) >= 2 and loc[0] in _SECTION_NOUN and isinstance(loc[1], int):
        items = raw.get(loc[0]) or []
        name = None
        if loc[1] < len(items) and isinstance(items[loc[1]], Mapping):
            name = items[loc[1]].get("name")
        noun = _SECTION_NOUN[loc[0]]
        where = f'{noun} "{name}"' if name else f"{noun} #{loc[1] + 1}"
        rest = ".".join(str(part) for part in loc[2:])
        return f"{where} key {rest}" if rest else where
    return "key " + ".".join(str(part) for part in loc)


def _check_level(where: str, key: str, value: str, allowed: tuple[str, ...], problems: list[str]) -> None:
    if value not in allowed:
        problems.append(f"{where}: {key} {value!r} is not one of {', '.join(allowed)}")


def _build_route(
    where: str, name: str, matcher: Matcher, fields: RouteFields, defaults: RouteFields, problems: list[str]
) -> Route | None:
    """Merge a route's fields over the defaults, field by field, and check them."""
    merged = {
        key: getattr(fields, key) if getattr(fields, key) is not None else getattr(defaults, key)
        for key in RouteFields.model_fields
    }
    missing = [key for key in ("line", "impact", "urgency", "reopen_window", "auto_close_after") if merged[key] is None]
    for key in missing:
        problems.append(f"{where}: missing {key} (set it on the route or in defaults)")
    if missing:
        return None
    _check_level(where, "impact", merged["impact"], IMPACT_LEVELS, problems)
    _check_level(where, "urgency", merged["urgency"], URGENCY_LEVELS, problems)
    durations = {}
    for key in ("reopen_window", "auto_close_after"):
        try:
            durations[key] = parse_duration(merged[key])
        except ValueError as exc:
            problems.append(f"{where}: {key}: {exc}")
    if len(durations) == 2 and durations["auto_close_after"] < durations["reopen_window"]:
        problems.append(
            f"{where}: auto_close_after must not be shorter than reopen_window (a closed incident can no longer reopen)"
        )
    dedup_labels = merged["dedup_labels"]
    if dedup_labels is not None and not dedup_labels:
        problems.append(f"{where}: dedup_labels must name at least one label, or be left out")
    if len(durations) < 2:
        return None
    return Route(
        name=name,
        matcher=matcher,
        line=merged["line"],
        impact=merged["impact"],
        urgency=merged["urgency"],
        reopen_window=durations["reopen_window"],
        auto_close_after=durations["auto_close_after"],
        dedup_labels=tuple(dedup_labels) if dedup_labels else None,
    )


def _example_contexts(rule: ProblemRuleModel, matcher: Matcher) -> list[dict[str, Any]]:
    """Template contexts to try a rule on: shipped example alerts it matches, and its example_labels."""
    contexts = []
    for alert in example_alerts():
        if matcher.matches(alert):
            contexts.append(_alert_context(alert))
    if rule.example_labels is not None:
        contexts.append(
            {
                "labels": dict(rule.example_labels),
                "annotations": {},
                "source": rule.match.source or "",
                "summary": "example",
                "priority": "P3",
                "line": "L3",
                "dedup_key": "example",
            }
        )
    return contexts


def _alert_context(alert: Alert) -> dict[str, Any]:
    return {
        "labels": dict(alert.labels),
        "annotations": dict(alert.annotations),
        "source": alert.source,
        "summary": alert.summary,
        "priority": "P3",
        "line": "L3",
        "dedup_key": f"{alert.source}:{alert.source_id}",
    }


def _build_problem_rules(models: list[ProblemRuleModel], problems: list[str]) -> list[ProblemRule]:
    """Compile templates once and render each against example payloads, so a broken rule fails now."""
    built = []
    seen: set[str] = set()
    for model in models:
        where = f'problem rule "{model.name}"'
        if model.name in seen:
            problems.append(f"{where}: name used twice")
        seen.add(model.name)
        renderers: dict[str, Renderer] = {}
        for key in ("key", "summary", "description"):
            try:
                renderers[key] = compile_template(getattr(model, key))
            except TemplateError as exc:
                problems.append(f"{where} key {key}: template does not compile: {exc}")
        try:
            window = parse_duration(model.window)
        except ValueError as exc:
            problems.append(f"{where}: window: {exc}")
            window = None
        jira = None
        if model.jira is not None:
            try:
                interval = parse_duration(model.jira.comment_interval)
            except ValueError as exc:
                problems.append(f"{where}: jira.comment_interval: {exc}")
                interval = timedelta(hours=1)
            jira = JiraTarget(
                create=model.jira.create,
                project=model.jira.project,
                issue_type=model.jira.issue_type,
                labels=tuple(model.jira.labels),
                components=tuple(model.jira.components),
                priority_map=dict(model.jira.priority_map),
                comment_interval=interval,
                close_on_release=model.jira.close_on_release,
                done_transition=model.jira.done_transition,
                reopen_on_regression=model.jira.reopen_on_regression,
                reopen_transition=model.jira.reopen_transition,
                transition_fields={name: dict(fields) for name, fields in model.jira.transition_fields.items()},
                outcomes=build_outcomes(model.jira.outcomes, where, problems),
            )
        matcher = matcher_of(model.match)
        if len(renderers) < 3 or window is None:
            continue
        contexts = _example_contexts(model, matcher)
        if not contexts:
            problems.append(
                f"{where}: no shipped example payload matches it; add example_labels so its templates can be checked"
            )
        for context in contexts:
            for key, render in renderers.items():
                try:
                    if not render(context).strip() and key != "description":
                        problems.append(f"{where} key {key}: renders empty for example {context['dedup_key']}")
                except TemplateError as exc:
                    problems.append(f"{where} key {key}: fails on example {context['dedup_key']}: {exc}")
        built.append(
            ProblemRule(
                name=model.name,
                matcher=matcher,
                key=renderers["key"],
                summary=renderers["summary"],
                description=renderers["description"],
                open_after=model.open_after,
                window=window,
                jira=jira,
            )
        )
    return built


def _build_routing_keys(
    model: EventsModel, environ: Mapping[str, str], problems: list[str]
) -> tuple[EventRoutingKey, ...]:
    """The Events v2 routing keys, `${VAR}` expanded; each key and name used once (a key names its sender)."""
    built: list[EventRoutingKey] = []
    names: set[str] = set()
    for entry in model.routing_keys:
        where = f'events routing key "{entry.name}"'
        if entry.name in names:
            problems.append(f"{where}: name used twice")
        names.add(entry.name)
        try:
            key = expand_variables(entry.key, environ)
        except ValueError as exc:
            problems.append(f"{where} key key: {exc}")
            continue
        if not key.strip():
            problems.append(f"{where} key key: empty once expanded")
            continue
        if any(other.matches(key) for other in built):
            problems.append(f"{where} key key: the same key as another entry")
        built.append(EventRoutingKey.of(entry.name, key, entry.labels))
    return tuple(built)


def parse_rules(raw: Any, path: str = "rules.yaml", environ: Mapping[str, str] | None = None) -> Rules:
    """Validate a parsed YAML document and build `Rules`; `${VAR}` values come from `environ` (default os.environ).

    Raises:
        RulesError: with every problem found, each naming its rule and key.
    """
    if not isinstance(raw, Mapping):
        raise RulesError(path, ["the document must be a mapping with version, defaults, priority_matrix, routes"])
    try:
        model = RulesModel.model_validate(raw)
    except ValidationError as exc:
        findings = [f"{_format_location(error['loc'], raw)}: {message_for(error)}" for error in exc.errors()]
        raise RulesError(path, findings) from exc

    problems: list[str] = []
    if model.version != 1:
        problems.append(f"key version: unsupported version {model.version}; this bridge reads version 1")
    matrix: dict[tuple[str, str], str] = {}
    for impact in IMPACT_LEVELS:
        row = model.priority_matrix.get(impact)
        if row is None:
            problems.append(f"key priority_matrix: missing impact {impact!r}")
            continue
        for urgency in URGENCY_LEVELS:
            if urgency not in row:
                problems.append(f"key priority_matrix.{impact}: missing urgency {urgency!r}")
            else:
                matrix[(impact, urgency)] = row[urgency]
        for urgency in row.keys() - set(URGENCY_LEVELS):
            problems.append(f"key priority_matrix.{impact}.{urgency}: unknown urgency")
    for impact in model.priority_matrix.keys() - set(IMPACT_LEVELS):
        problems.append(f"key priority_matrix.{impact}: unknown impact")

    default_route = _build_route("defaults", "defaults", Matcher(), model.defaults, model.defaults, problems)
    routes = []
    seen_names: set[str] = set()
    for route_model in model.routes:
        where = f'route "{route_model.name}"'
        if route_model.name in seen_names:
            problems.append(f"{where}: name used twice")
        seen_names.add(route_model.name)
        matcher = matcher_of(route_model.match)
        route = _build_route(where, route_model.name, matcher, route_model, model.defaults, problems)
        if route is not None:
            routes.append(route)
    problem_rules = _build_problem_rules(model.problems, problems)
    sla_policies = build_sla(model.sla, set(matrix.values()), problems)
    environ = os.environ if environ is None else environ
    routing_keys = _build_routing_keys(model.events, environ, problems)
    ticket_systems = build_ticket_systems(model.ticket_systems, expand_variables, environ, problems)
    notify_targets = build_notify_targets(model.notify, expand_variables, environ, problems)
    heartbeats = build_heartbeats(model.heartbeats, set(SOURCES), problems)
    maintenance = build_recurring_windows(model.maintenance, problems)
    projects = build_projects(model.projects, model.releases.environment_label, problems)
    suspect_window = _suspect_window(model.releases.suspect_window, problems)
    if problems:
        raise RulesError(path, problems)
    assert default_route is not None
    return Rules(
        routes=tuple(routes),
        default_route=default_route,
        priority_matrix=matrix,
        problem_rules=tuple(problem_rules),
        version_label=model.releases.version_label,
        environment_label=model.releases.environment_label,
        sla_policies=sla_policies,
        event_routing_keys=routing_keys,
        ticket_systems=ticket_systems,
        notify_targets=notify_targets,
        heartbeats=heartbeats,
        maintenance=maintenance,
        projects=projects,
        suspect_window=suspect_window,
    )


def _suspect_window(text: str, problems: list[str]) -> timedelta:
    """How long before a problem's first occurrence a release or change is a suspect (a positive duration)."""
    try:
        window = parse_duration(text)
    except ValueError as exc:
        problems.append(f"key releases.suspect_window: {exc}")
        return timedelta(0)
    if window <= timedelta(0):
        problems.append("key releases.suspect_window: must be longer than 0s")
    return window


def load_rules(path: str | Path) -> Rules:
    """Read and validate a rules file.

    Raises:
        RulesError: the file is missing, not YAML, or invalid.
    """
    path = str(path)
    try:
        with open(path, encoding="utf-8") as handle:
            raw = yaml.safe_load(handle)
    except OSError as exc:
        raise RulesError(path, [f"cannot read: {exc.strerror}"]) from exc
    except yaml.YAMLError as exc:
        raise RulesError(path, [f"not valid YAML: {exc}"]) from exc
    return parse_rules(raw, path)
