"""Prometheus metrics: counters per process (multiprocess mode under gunicorn), system gauges from the database.

Counters and histograms are recorded where things happen, in whichever process (HTTP
worker or background worker); with PROMETHEUS_MULTIPROC_DIR set, a scrape sums them
across processes. Gauges that describe the whole system (open incidents, open problems,
breached incidents, outbox depth) are read from the database at scrape time, so every
replica reports the same truth.
"""

from __future__ import annotations

import functools
import os
from collections.abc import Iterator, Mapping, Sequence
from datetime import UTC, datetime
from typing import Any, Protocol

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from adapters import SOURCES, zabbix_api
from bridge.config import TOKEN_GROUPS
from bridge.domain.heartbeats import HeartbeatState, last_heard
from bridge.domain.incidents import AlertResult, AlertStatus, Incident, Outcome, ParsedNotification
from bridge.domain.lifecycle import Acknowledgement
from bridge.domain.outcomes import IssueOutcome
from bridge.domain.problems import ProblemState
from bridge.domain.rules import Rules
from bridge.domain.windows import WindowKind
from bridge.outbox import jobs
from bridge.storage.store import Store
from jira_link import client as jira_client
from jira_link import rate_limits

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
# Unlabelled metrics open their files as they are defined below: the directory must exist first.
if os.environ.get(MULTIPROC_ENV):
    os.makedirs(os.environ[MULTIPROC_ENV], exist_ok=True)

NOTIFICATIONS = Counter(
    "bridge_notifications_received_total", "Webhook notifications received, by outcome", ["source", "outcome"]
)
ALERTS = Counter("bridge_alerts_received_total", "Alerts received in accepted notifications", ["source", "status"])
DEDUPLICATED = Counter(
    "bridge_alerts_deduplicated_total",
    "Alerts that opened no incident (repeats, HA duplicates, stale deliveries, updates)",
    ["source"],
)
OPENED = Counter("bridge_incidents_opened_total", "Incidents opened", ["source", "line", "priority"])
REOPENED = Counter("bridge_incidents_reopened_total", "Incidents reopened within their reopen window", ["source"])
CLOSED = Counter("bridge_incidents_closed_total", "Incidents closed", ["reason"])
SLA_BREACHES = Counter("bridge_sla_breaches_total", "SLA breaches marked", ["priority"])
RESPONSE_BREACHES = Counter(
    "bridge_response_breaches_total", "Incidents not acknowledged by their response due time", ["priority"]
)
RESPONSE = Histogram(
    "bridge_incident_response_seconds",
    "Wall-clock time from an incident opening to its acknowledgement",
    ["priority"],
    buckets=(60, 300, 600, 900, 1800, 3600, 7200, 14400, 28800, 86400),
)
REGRESSIONS = Counter("bridge_regressions_total", "Problems reopened as regressions after their fix shipped")
REOPENED_BY_TICKET = Counter(
    "bridge_problems_reopened_by_ticket_total",
    "Tickets their customers reopened after their problem closed with its fix (the problem is flagged)",
)
TICKET_SYNC = Counter(
    "bridge_ticket_sync_total", "Passes reading a ticket system's changed tickets, by outcome", ["system", "outcome"]
)
PROBLEM_MERGES = Counter("bridge_problem_merges_total", "Problems merged into another (by hand or by Jira's Duplicate)")
PROBLEM_OUTCOMES = Counter(
    "bridge_problem_outcomes_total", "Outcomes read from linked Jira issues, per problem they applied to", ["outcome"]
)
RELEASES = Counter("bridge_releases_total", "Releases received by the close hook (replays excluded)")
JIRA_REQUESTS = Counter("bridge_jira_requests_total", "Jira REST calls", ["operation", "outcome"])
RATE_LIMITED = Counter(
    "bridge_jira_rate_limited_total", "Jira 429 answers, by the limit Jira named (RateLimit-Reason)", ["reason"]
)
ZABBIX_REQUESTS = Counter("bridge_zabbix_requests_total", "Zabbix API calls", ["method", "outcome"])
DELIVERIES = Counter(
    "bridge_deliveries_total",
    "Outbound webhook and ticket-system deliveries by destination (notify target or ticket system)",
    ["target", "outcome"],
)
RESOLUTION = Histogram(
    "bridge_incident_resolution_seconds",
    "Time from an incident opening to its resolution",
    buckets=(60, 300, 900, 1800, 3600, 7200, 14400, 28800, 86400, 259200, 604800),
)
TIME_TO_FIX = Histogram(
    "bridge_problem_time_to_fix_seconds",
    "Time from a problem opening to its fix being released",
    buckets=(3600, 14400, 86400, 259200, 604800, 1209600, 2592000, 7776000, 31536000),
)
JIRA_DURATION = Histogram("bridge_jira_request_duration_seconds", "Duration of Jira REST calls", ["operation"])
JIRA_TWINS = Counter(
    "bridge_jira_twin_issues_total",
    "Twin Jira issues found for one problem and marked as duplicates of the oldest, by where they were found",
    ["found_at"],
)
JIRA_MOVES = Counter("bridge_jira_issue_moves_total", "Linked Jira issues found under a new key (moved) and followed")
ALERTS_IN_MAINTENANCE = Counter(
    "bridge_alerts_in_maintenance_total",
    "Alerts that opened (created or reopened) an incident a window held, by window name",
    ["window"],
)
DEPLOYS = Counter(
    "bridge_deploys_total",
    "Deploys the release pipeline told (or a release naming environments implied), by phase; repeats excluded",
    ["project", "environment", "phase"],
)
ALERTS_DURING_DEPLOY = Counter(
    "bridge_alerts_during_deploy_total",
    "Alerts that opened (created or reopened) an incident during a deploy of the project shipping its service",
    ["project", "environment"],
)
AUTH_FAILURES = Counter(
    "bridge_auth_failures_total",
    "Requests refused for a missing or wrong token or secret, by what they tried to reach",
    ["group"],
)
AUTH_THROTTLED = Counter(
    "bridge_auth_throttled_total",
    "Requests answered 429 without their token compared: their address failed too often lately",
    ["group"],
)
WEBHOOK_DURATION = Histogram(
    "bridge_webhook_request_duration_seconds",
    "Webhook answer time, commit included",
    ["source"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)


# Outcomes of a webhook notification, as the receiver counts them.
NOTIFICATION_OUTCOMES = ("accepted", "partial", "rejected", "unauthorized", "unavailable", "error")
# A refused webhook's HTTP status -> its outcome (any other status counts as "error").
WEBHOOK_OUTCOMES = {400: "rejected", 413: "rejected", 415: "rejected", 401: "unauthorized", 503: "unavailable"}
CLOSE_REASONS = ("released", "manual", "auto_closed", "jira_outcome", "ticket", "resolved_in_window")
JIRA_OUTCOMES = ("success", "timeout", "connection_error", "http_429")
OUTBOX_TARGETS = ("jira", "zabbix", "webhook", "rt", "jsm")
DELIVERY_OUTCOMES = ("success", "retry", "dead")
SYNC_OUTCOMES = ("success", "failure")
# What a failed authentication tried to reach: a token group, the Jira webhook's secret, the pages' sign-in.
AUTH_GROUPS = (*TOKEN_GROUPS, "jira_webhook", "ui")
# Where a twin issue was found: by the create's own search, by a sync, or by a check a webhook asked for.
TWIN_FOUND_AT = ("create", "sync", "recheck")


class Ingested(Protocol):
    """What record_ingest reads of an accepted notification (services' IngestResult). A protocol, not
    an import: ingest records its own metrics here, so metrics must not depend on ingest."""

    @property
    def parsed(self) -> ParsedNotification: ...

    @property
    def results(self) -> Sequence[AlertResult]: ...

    @property
    def regressions(self) -> int: ...

    @property
    def acknowledgements(self) -> Sequence[Acknowledgement]: ...


def initialise(rules: Rules) -> None:
    """Create every known label combination at zero, so dashboards and alert rules see the series
    before the first event (Prometheus' advice for labelled metrics)."""
    priorities, lines = rules.priorities, rules.lines
    for source in SOURCES:
        for outcome in NOTIFICATION_OUTCOMES:
            labelled(NOTIFICATIONS, source, outcome)
        for status in AlertStatus:
            labelled(ALERTS, source, status.value)
        labelled(DEDUPLICATED, source)
        labelled(REOPENED, source)
        labelled(WEBHOOK_DURATION, source)
        for line in lines:
            for priority in priorities:
                labelled(OPENED, source, line, priority)
    for reason in CLOSE_REASONS:
        labelled(CLOSED, reason)
    for outcome in IssueOutcome:
        labelled(PROBLEM_OUTCOMES, outcome.value)
    for priority in priorities:
        labelled(SLA_BREACHES, priority)
        labelled(RESPONSE_BREACHES, priority)
        labelled(RESPONSE, priority)
    for operation in jira_client.OPERATIONS:
        labelled(JIRA_DURATION, operation)
        for outcome in JIRA_OUTCOMES:
            labelled(JIRA_REQUESTS, operation, outcome)
    for found_at in TWIN_FOUND_AT:
        labelled(JIRA_TWINS, found_at)
    for reason in rate_limits.REASONS:
        labelled(RATE_LIMITED, reason)
    for group in AUTH_GROUPS:
        labelled(AUTH_FAILURES, group)
        labelled(AUTH_THROTTLED, group)
    for method in zabbix_api.METHODS:
        for outcome in zabbix_api.OUTCOMES:
            labelled(ZABBIX_REQUESTS, method, outcome)
    for target in [*(t.name for t in rules.notify_targets), *rules.ticket_systems]:
        for outcome in DELIVERY_OUTCOMES:
            labelled(DELIVERIES, target, outcome)
    for name, system in rules.ticket_systems.items():
        if system.sync is not None:
            for outcome in SYNC_OUTCOMES:
                labelled(TICKET_SYNC, name, outcome)


def labelled(metric: Counter | Histogram, *labels: str) -> Any:
    """The metric's child for these labels, kept: `labels()` takes a lock and checks its arguments
    on every call, which a storm's webhooks pay several times per notification. Every label value
    comes from a set the code or the rules bound (sources, statuses, lines, priorities, targets,
    outcomes), and the children are the ones `labels()` keeps."""
    return _children(metric, labels)


@functools.cache
def _children(metric: Counter | Histogram, labels: tuple[str, ...]) -> Any:
    return metric.labels(*labels)


def record_acknowledgement(acknowledged: Acknowledgement) -> None:
    """An incident acknowledged (by a person or in its source), once committed: its response time, a late one."""
    labelled(RESPONSE, acknowledged.priority).observe(acknowledged.response_seconds)
    if acknowledged.late:
        labelled(RESPONSE_BREACHES, acknowledged.priority).inc()


def record_ingest(source: str, result: Ingested) -> None:
    """Count what one committed notification did (summed first: each inc is a write to a shared file)."""
    labelled(NOTIFICATIONS, source, "partial" if result.parsed.rejected else "accepted").inc()
    for acknowledged in result.acknowledgements:
        record_acknowledgement(acknowledged)
    statuses: dict[AlertStatus, int] = {}
    opened: dict[tuple[str, str], int] = {}
    held: dict[str, int] = {}
    during: dict[tuple[str, str], int] = {}
    deduplicated = reopened = 0
    for item in result.results:
        status = item.alert.status
        statuses[status] = statuses.get(status, 0) + 1
        outcome, incident = item.outcome, item.incident
        if outcome is Outcome.CREATED and incident is not None:
            key = (incident.line, incident.priority)
            opened[key] = opened.get(key, 0) + 1
            _count_opened_in_windows(held, during, incident)
            continue
        if outcome is Outcome.PING:  # a heartbeat's: neither an incident nor a duplicate of one
            continue
        deduplicated += 1
        if outcome is Outcome.REOPENED:
            reopened += 1
            if incident is not None:
                _count_opened_in_windows(held, during, incident)
        elif outcome is Outcome.RESOLVED and incident is not None and incident.resolved_at:
            RESOLUTION.observe((incident.resolved_at - incident.first_seen).total_seconds())
    for status, count in statuses.items():
        labelled(ALERTS, source, status.value).inc(count)
    for (line, priority), count in opened.items():
        labelled(OPENED, source, line, priority).inc(count)
    if deduplicated:
        labelled(DEDUPLICATED, source).inc(deduplicated)
    if reopened:
        labelled(REOPENED, source).inc(reopened)
    if result.regressions:
        REGRESSIONS.inc(result.regressions)
    for window, count in held.items():
        ALERTS_IN_MAINTENANCE.labels(window).inc(count)  # names come from people: never kept in `labelled`
    for (project, environment), count in during.items():
        ALERTS_DURING_DEPLOY.labels(project, environment).inc(count)  # environments come from the pipeline


def _count_opened_in_windows(held: dict[str, int], during: dict[tuple[str, str], int], incident: Incident) -> None:
    """An incident that just opened: held by a maintenance window, opened during a deploy (marked as it opened)."""
    window = incident.hold_window or {}
    if incident.held and window.get("kind") == WindowKind.MAINTENANCE.value:
        name = str(window.get("name", ""))
        held[name] = held.get(name, 0) + 1
    deploy = incident.during_deploy
    if deploy is not None:
        key = (str(deploy["project"]), str(deploy["environment"]))
        during[key] = during.get(key, 0) + 1


def count_deploy(project: str, environment: str, phase: str) -> None:
    """A deploy the pipeline told, or a release implied (never a repeated call)."""
    DEPLOYS.labels(project, environment, phase).inc()


def record_release(incidents_closed: int, fix_seconds: list[float]) -> None:
    RELEASES.inc()
    labelled(CLOSED, "released").inc(incidents_closed)
    for seconds in fix_seconds:
        TIME_TO_FIX.observe(max(0.0, seconds))


def observe_jira(operation: str, outcome: str, seconds: float) -> None:
    labelled(JIRA_REQUESTS, operation, outcome).inc()
    labelled(JIRA_DURATION, operation).observe(seconds)


def observe_zabbix(method: str, outcome: str) -> None:
    labelled(ZABBIX_REQUESTS, method, outcome).inc()


class StoreGauges(Collector):
    """Gauges read from the database at scrape time."""

    def __init__(self, store: Store, rules: Rules | None = None) -> None:
        self.store = store
        self.rules = rules

    def describe(self) -> list:  # type: ignore[type-arg]
        return []

    def collect(self) -> Iterator[GaugeMetricFamily]:
        """Read the counts; known label values the database has no rows for are reported as 0."""
        priorities = self.rules.priorities if self.rules is not None else []
        lines = self.rules.lines if self.rules is not None else []
        open_by: dict[tuple[str, str, str], int] = {
            (line, priority, source): 0 for line in lines for priority in priorities for source in SOURCES
        }
        breached_by: dict[str, int] = dict.fromkeys(priorities, 0)
        problems_by: dict[str, int] = {state.value: 0 for state in ProblemState if state is not ProblemState.CLOSED}
        pending_by: dict[str, int] = dict.fromkeys(OUTBOX_TARGETS, 0)
        dead_by: dict[str, int] = dict.fromkeys(OUTBOX_TARGETS, 0)

        counts = self.store.gauge_counts()
        open_by.update(counts.open_incidents)
        breached_by.update(counts.breached)
        problems_by.update(counts.live_problems)
        pending_by.update(counts.pending_jobs)
        dead_by.update(counts.dead_jobs)
        backlog_by: dict[str, int] = dict.fromkeys(jobs.CATALOGUE, 0)
        backlog_by.update(counts.pending_by_kind)
        now = datetime.now(UTC)
        oldest_by: dict[str, float] = dict.fromkeys(OUTBOX_TARGETS, 0.0)
        oldest_by.update(
            {target: max(0.0, (now - created).total_seconds()) for target, created in counts.oldest_pending.items()}
        )
        open_incidents = GaugeMetricFamily(
            "bridge_incidents_open", "Incidents not closed (firing or resolved)", labels=["line", "priority", "source"]
        )
        for labels, count in open_by.items():
            open_incidents.add_metric(list(labels), count)
        yield open_incidents
        gauges: tuple[tuple[str, str, str, Mapping[str, float]], ...] = (
            ("bridge_incidents_sla_breached", "Incidents not closed whose SLA is breached", "priority", breached_by),
            ("bridge_problems_open", "Problems not closed", "state", problems_by),
            ("bridge_outbox_pending", "Side effects waiting in the outbox", "target", pending_by),
            ("bridge_outbox_dead", "Side effects given up (dead letters)", "target", dead_by),
            ("bridge_outbox_backlog", "Outbox jobs waiting, by job kind", "kind", backlog_by),
            (
                "bridge_outbox_oldest_pending_age_seconds",
                "Age of the oldest job waiting in the outbox (0 when none waits)",
                "target",
                oldest_by,
            ),
        )
        for name, help_text, label, by_value in gauges:
            family = GaugeMetricFamily(name, help_text, labels=[label])
            for value, amount in by_value.items():
                family.add_metric([value], amount)
            yield family
        lag = GaugeMetricFamily(
            "bridge_ticket_sync_lag_seconds",
            "Seconds since the start of a ticket system's last successful sync (since its first try, before one)",
            labels=["system"],
        )
        for system, since in sorted(counts.synced_since.items()):
            lag.add_metric([system], max(0.0, (now - since).total_seconds()))
        yield lag
        yield from self._watched(now)

    def _watched(self, now: datetime) -> Iterator[GaugeMetricFamily]:
        """When each source and heartbeat was last heard (0: never), expired heartbeats, windows in force."""
        store = self.store
        records, sources, active = store.read(
            lambda conn: (
                store.heartbeat_records(conn),
                store.sources_last_heard(conn, SOURCES),
                store.active_window_count(conn, now),
            )
        )
        source_seen = GaugeMetricFamily(
            "bridge_source_last_seen_timestamp_seconds",
            "When the newest notification of each source was received (0: never since retention)",
            labels=["source"],
        )
        for source, heard in sources.items():
            source_seen.add_metric([source], heard.timestamp() if heard else 0.0)
        yield source_seen
        seen = GaugeMetricFamily(
            "bridge_heartbeat_last_seen_timestamp_seconds",
            "When each heartbeat was last heard (0: never)",
            labels=["name"],
        )
        expired = GaugeMetricFamily(
            "bridge_heartbeat_expired", "1 while a heartbeat's silence is an incident", labels=["name"]
        )
        for heartbeat in self.rules.heartbeats if self.rules is not None else ():
            record = records.get(heartbeat.name)
            source_heard = (
                sources.get(heartbeat.source) if heartbeat.pinged_by_notifications and heartbeat.source else None
            )
            heard = last_heard(record, source_heard)
            seen.add_metric([heartbeat.name], heard.timestamp() if heard else 0.0)
            expired.add_metric([heartbeat.name], 1.0 if record and record.state is HeartbeatState.EXPIRED else 0.0)
        yield seen
        yield expired
        yield GaugeMetricFamily("bridge_maintenance_active", "Maintenance windows in force now", value=active)


def exposition(store: Store, rules: Rules | None = None) -> tuple[bytes, str]:
    """The /metrics body: process metrics (summed across processes when multiprocess) and store gauges."""
    gauges = CollectorRegistry(auto_describe=False)
    gauges.register(StoreGauges(store, rules))
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)  # type: ignore[no-untyped-call]
        body = generate_latest(registry)
    else:
        body = generate_latest(REGISTRY)
    return body + generate_latest(gauges), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """gunicorn child_exit hook: drop a dead worker's live gauges (counters stay summed)."""
    if os.environ.get(MULTIPROC_ENV):
        multiprocess.mark_process_dead(pid)  # type: ignore[no-untyped-call]
