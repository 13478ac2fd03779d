"""Background worker: periodic jobs and the outbox, never inside a webhook request.

Each pass decides heartbeats and releases ended hold windows (bridge/watch/), closes resolved
incidents whose `auto_close_after` has passed, marks SLA (resolution and response) breaches,
prunes raw payloads once a day, reads the ticket systems due a sync (bridge/tickets/pull.py),
then runs due outbox jobs (Jira, Zabbix, webhooks and ticket systems, kinds in
bridge/outbox/jobs.py). Jobs are leased with SKIP LOCKED, so several workers share one
PostgreSQL queue; every handler is idempotent, so a job run twice has the effect of once.
Jira's rate limits are shared by every worker through the database (bridge/jira/budget.py):
a 429 holds back only its scope, and jobs held back are postponed, never failed.
"""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import logging
import random
import signal
import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from types import FrameType
from typing import Any, TypeVar

import requests

from adapters.request_tracker import RtClient, RtError
from adapters.zabbix_api import ZabbixApiError, ZabbixClient
from bridge import metrics
from bridge.config import Settings
from bridge.domain.problems import JiraTarget, comment_text
from bridge.domain.rules import Rules
from bridge.domain.ticket_sync import TicketState
from bridge.domain.tickets import TicketSystem, ticket_id_refusal, ticket_notice_text
from bridge.errors import OutboundFailure, StoreUnavailable
from bridge.jira import budget as jira_budget
from bridge.jira import identity as jira_identity
from bridge.jira.outcomes import apply_issue_reading
from bridge.outbox import jobs, notify
from bridge.problems.actions import queue_issue_sync
from bridge.storage.engine import Connection
from bridge.storage.outages import driver_cause
from bridge.storage.store import Store
from bridge.tickets import service_desk
from bridge.tickets.pull import TicketSyncer
from bridge.watch.rounds import watch_once
from jira_link.client import JiraClient, JiraError, JiraRateLimited
from jira_link.linker import (
    LinkOptions,
    comment_unless_repeated,
    link_back,
    move_issue,
    reading_of,
)
from jira_link.port import JiraPort

log = logging.getLogger(__name__)
T = TypeVar("T")

JOBS_PER_PASS = 50
FIRST_BACKOFF_SECONDS = 2.0


class JobFailed(OutboundFailure):
    """A job cannot succeed as things stand; retried until its deadline if `retryable`."""


def backoff_seconds(attempt: int, retry_after: float | None, cap: float) -> float:
    """Delay before the next attempt: the server's Retry-After when given, else capped
    exponential backoff; both with jitter so workers do not retry in lockstep."""
    if retry_after is not None:
        return float(retry_after) + random.uniform(0, min(1.0, retry_after * 0.1))
    exponential = FIRST_BACKOFF_SECONDS * 2.0 ** max(0, attempt - 1)
    return min(cap, exponential) * random.uniform(0.5, 1.0)


@dataclass
class OutboxRunner:
    """Runs due outbox jobs with retries, backoff and a dead-letter deadline."""

    store: Store
    rules: Rules
    jira: JiraPort | None
    options: LinkOptions
    dead_after: timedelta
    max_backoff_seconds: float
    sync_interval: timedelta = timedelta(minutes=10)
    zabbix: ZabbixClient | None = None
    # A job leased to a worker that died is run again once its lease expires.
    lease: timedelta = timedelta(minutes=5)
    # Below this share of Jira's X-RateLimit-Limit, creates and transitions go first and comments coalesce.
    low_budget_ratio: float = jira_budget.LOW_BUDGET_RATIO
    # Outbound webhooks (notify targets, ticket systems); RT gets a session of its own, with its credentials.
    http: requests.Session = field(default_factory=requests.Session)
    _last_sync: datetime | None = None
    gate: jira_budget.JiraGate = field(init=False)
    # Request Tracker read on a schedule (rules.yaml ticket_systems.<name>.sync); None when no system asks.
    tickets: TicketSyncer | None = field(init=False)

    def __post_init__(self) -> None:
        self.gate = jira_budget.JiraGate(self.store, self.low_budget_ratio)
        syncer = TicketSyncer(self.store, self.rules)
        self.tickets = syncer if syncer.systems else None

    @classmethod
    def from_settings(cls, store: Store, rules: Rules, settings: Settings) -> OutboxRunner:
        return cls(
            store,
            rules,
            JiraClient.from_settings(settings, metrics.observe_jira, observe_budget=jira_budget.budget_recorder(store)),
            LinkOptions.from_settings(settings),
            timedelta(seconds=settings.outbox_dead_after_seconds),
            settings.outbox_max_backoff_seconds,
            timedelta(seconds=settings.jira_sync_interval_seconds),
            ZabbixClient.from_settings(settings, metrics.observe_zabbix),
            timedelta(seconds=settings.outbox_lease_seconds),
        )

    def run_due(self, now: datetime) -> int:
        """Read the ticket systems due a sync, queue the periodic conclusion sync when due, then run the jobs
        due now; returns how many ran."""
        if self.tickets is not None:
            self.tickets.run_due(now)
        if self._last_sync is None or now - self._last_sync >= self.sync_interval:
            self.schedule_syncs(now, self.sync_interval)
            self._last_sync = now
        limits = self.gate.refresh(now, enabled=self.jira is not None)
        short = self.gate.is_short(now)
        claimed = self.store.claim_jobs(
            now,
            self.lease,
            JOBS_PER_PASS,
            held_kinds=jira_budget.held_kinds(limits),
            priorities=jobs.PRIORITIES if short else None,
        )
        coalesced: set[int] = set()
        for index, job in enumerate(claimed):
            if job["id"] in coalesced:
                continue
            held_until = self.gate.held_until(job)
            if held_until is not None:
                self.gate.postpone(job, held_until, "rate limited: its Jira scope is held back")
            elif short and job["kind"] in jobs.TEXT_KINDS:
                coalesced |= self.gate.coalesce(job, now, claimed[index + 1 :], self.lease, self.run_job)
            else:
                self.run_job(job, now)
        return len(claimed)

    def run_job(self, job: dict[str, Any], now: datetime, instead: jobs.Job | None = None) -> bool:
        """Run one leased job (or `instead`, the work standing for it) and settle it; returns whether it is done."""
        try:
            if instead is None:
                if job["kind"] not in jobs.CATALOGUE:
                    raise JobFailed(f"unknown job kind {job['kind']!r}", retryable=False)
                instead = jobs.from_row(job)
            self._handle(instead, now)
        except JiraRateLimited as exc:
            wait = backoff_seconds(job["attempts"], exc.retry_after, self.max_backoff_seconds)
            self.gate.rate_limited(job, now, exc, wait, timedelta(seconds=self.max_backoff_seconds))
        except (OutboundFailure, JiraError) as exc:
            self._failed(job, now, str(exc), exc.retryable, exc.retry_after)
        except ZabbixApiError as exc:
            self._failed(job, now, exc.message, exc.retryable, None)
        except StoreUnavailable:
            raise
        except Exception as exc:
            log.exception(
                "outbox job crashed", extra={"job_id": job["id"], "kind": job["kind"], "attempt": job["attempts"]}
            )
            self._failed(job, now, f"unexpected error: {type(exc).__name__}", True, None)
        else:
            self.store.finish_job(job["id"], now)
            return True
        return False

    def _failed(
        self, job: dict[str, Any], now: datetime, error: str, retryable: bool, retry_after: float | None
    ) -> None:
        about = {"job_id": job["id"], "kind": job["kind"], "attempt": job["attempts"], "error": error}
        if not retryable:
            log.error("outbox job failed for good; dead until retried (incident-bridge outbox retry)", extra=about)
            self.store.bury_job(job["id"], now, error)
            return
        if now - job["created_at"] >= self.dead_after:
            log.error("outbox job past its deadline; dead until retried (incident-bridge outbox retry)", extra=about)
            self.store.bury_job(job["id"], now, f"deadline passed; last error: {error}")
            return
        delay = backoff_seconds(job["attempts"], retry_after, self.max_backoff_seconds)
        log.warning("outbox job will be retried", extra={**about, "delay_seconds": round(delay, 1)})
        self.store.retry_job(job["id"], now + timedelta(seconds=delay), error)

    # Handlers, one per kind of the catalogue (bridge.outbox.jobs) ------------------------

    @functools.singledispatchmethod
    def _handle(self, job: jobs.Job, now: datetime) -> None:
        raise JobFailed(f"no handler for job kind {job.KIND!r}", retryable=False)

    def _jira(self) -> JiraPort:
        if self.jira is None:
            raise JobFailed("Jira is not configured (BRIDGE_JIRA_URL)", retryable=True)
        return self.jira

    def _target_of(self, rule_name: str) -> JiraTarget | None:
        """The Jira target of a problem rule (None if the rule or its target is gone from rules.yaml)."""
        rule = next((r for r in self.rules.problem_rules if r.name == rule_name), None)
        return rule.jira if rule else None

    @_handle.register
    def _create_issue(self, job: jobs.EnsureIssue, now: datetime) -> None:
        """Ensure the problem's issue exists (crash-safe, waiting for Jira's lagging search), is the oldest
        of any twins, and is linked back."""
        problem = self.store.get_problem(job.problem_id)
        if problem is None or problem["state"] == "closed":
            return
        jira = self._jira()
        key = problem["jira_key"]
        if key is None:
            target = self._target_of(problem["rule"])
            if target is None:
                raise JobFailed(f"problem rule {problem['rule']!r} has no jira target any more", retryable=False)
            announcer = notify.Announcer.of(self.store, self.rules)
            key = jira_identity.ensure_linked_issue(
                self.store, jira, self.options, problem, target, job.priority, now, announcer
            )
            if key is None:
                raise JobFailed(f"problem {problem['id']} lost its link while its issue was created")
        elif problem["jira_linked_by"] == "bridge":
            key = jira_identity.check_twins(self.store, jira, self.options, problem, now, "recheck")
        link_back(jira, key, problem, self.options)

    @_handle.register
    def _comment(self, job: jobs.CommentIncidents, now: datetime) -> None:
        """One throttled comment for the incidents that joined since the last one."""
        problem = self.store.get_problem(job.problem_id)
        if problem is None or problem["jira_key"] is None or problem["comment_pending"] <= 0:
            return
        reported = problem["comment_pending"]
        text = comment_text(reported, problem["comment_pending_since"] or now)
        text_hash = hashlib.sha256(text.encode()).hexdigest()
        if text_hash != problem["last_comment_hash"]:
            comment_unless_repeated(self._jira(), problem["jira_key"], text)
        remaining = self.store.record_comment(problem["id"], reported, text_hash, now)
        if remaining > 0:
            target = self._target_of(problem["rule"])
            interval = target.comment_interval if target else timedelta(hours=1)
            self.store.run(
                lambda conn: jobs.queue(
                    conn, self.store, jobs.CommentIncidents(problem["id"]), now, run_at=now + interval
                )
            )

    @_handle.register
    def _sync_issue(self, job: jobs.SyncIssue, now: datetime) -> None:
        """Mirror an issue's conclusion (status, resolution, field or marked comment) on its problems,
        and act on its outcome (bridge.jira.outcomes): fixed waits, won't do closes, duplicate follows."""
        key = job.jira_key
        jira = self._jira()
        wanted = ("status", "resolution", "issuelinks", self.options.conclusion_field)
        issue = jira.get_issue(jira_identity.issue_ref(self.store, key), fields=tuple(filter(None, wanted)))
        if issue is None:
            raise JobFailed(f"Jira issue {key} no longer exists or is not visible", retryable=False)
        if issue.key != key:
            jira_identity.follow_move(self.store, jira, key, issue, now)
            key = issue.key
        reading = reading_of(key, issue, self.options, jira.recent_comments(key))
        apply_issue_reading(self.store, self.rules, reading, jira.issue_url, now)
        # A twin filed while the index lagged may only now be searchable.
        for problem in self.store.live_problems_for_issue(key):
            if problem.jira_linked_by == "bridge":
                jira_identity.check_twins(self.store, jira, self.options, dataclasses.asdict(problem), now, "sync")

    @_handle.register
    def _release(self, job: jobs.ReleaseComment, now: datetime) -> None:
        """Tell the issue what the release closed, and move it to done when the rule asks."""
        jira = self._jira()
        comment_unless_repeated(jira, job.jira_key, job.text)
        if job.transition:
            target = self._target_of(job.rule)
            move_issue(
                jira,
                job.jira_key,
                name=target.done_transition if target else None,
                to_categories=("done",),
                transition_fields=target.transition_fields if target else None,
            )

    @_handle.register
    def _regression(self, job: jobs.RegressionReopen, now: datetime) -> None:
        """Reopen the issue of a regressed problem, with a comment saying why."""
        problem = self.store.get_problem(job.problem_id)
        jira = self._jira()
        comment_unless_repeated(jira, job.jira_key, job.text)
        target = self._target_of(problem["rule"]) if problem else None
        move_issue(
            jira,
            job.jira_key,
            name=target.reopen_transition if target else None,
            to_categories=("new", "indeterminate"),
            transition_fields=target.transition_fields if target else None,
        )

    @_handle.register
    def _note(self, job: jobs.Note, now: datetime) -> None:
        """A one-off comment (an SLA breach), never repeated."""
        comment_unless_repeated(self._jira(), job.jira_key, job.text)

    @_handle.register
    def _zabbix_close(self, job: jobs.ZabbixClose, now: datetime) -> None:
        """Close (or, where the trigger forbids it, acknowledge) the Zabbix problems of closed incidents."""
        if self.zabbix is None:
            raise JobFailed("Zabbix API is not configured (BRIDGE_ZABBIX_URL, BRIDGE_ZABBIX_API_TOKEN)", retryable=True)
        report = self.zabbix.close_problems(job.event_ids, job.message)
        if report.acknowledged_only:
            log.warning(
                "Zabbix triggers forbid manual close; problems acknowledged with a message instead",
                extra={"event_ids": report.acknowledged_only},
            )

    @_handle.register
    def _deliver(self, job: jobs.Deliver, now: datetime) -> None:
        """POST a signed lifecycle event (or a ticket.close) to its notify target or ticket system."""
        endpoint = notify.endpoint_for(self.rules, job.destination)
        if endpoint is None:
            raise JobFailed(f"{job.destination} is no longer in rules.yaml (or has no secret_env)", retryable=False)
        try:
            notify.send(self.http, endpoint, job, now)
        except notify.DeliveryFailed as exc:
            metrics.labelled(metrics.DELIVERIES, endpoint.name, "retry" if exc.retryable else "dead").inc()
            raise
        metrics.labelled(metrics.DELIVERIES, endpoint.name, "success").inc()

    def _system(self, name: str, kind: str, ticket_id: str) -> TicketSystem:
        """The ticket system a job names, and the job's ticket id as that system issues them (else dead, not sent)."""
        system = self.rules.ticket_systems.get(name)
        if system is None or system.kind != kind:
            raise JobFailed(f"ticket system {name!r} is no longer a {kind} system in rules.yaml", retryable=False)
        refusal = ticket_id_refusal(kind, ticket_id)
        if refusal is not None:
            raise JobFailed(f"not sent to ticket system {name!r}: {refusal}", retryable=False)
        return system

    def _with_rt(self, system: TicketSystem, act: Callable[[RtClient], T]) -> T:
        """One piece of work on an RT, counted as a delivery to its system (retried or dead when RT fails)."""
        client = RtClient.for_system(system)
        try:
            done = act(client)
        except RtError as exc:
            metrics.labelled(metrics.DELIVERIES, system.name, "retry" if exc.retryable else "dead").inc()
            raise
        finally:
            client.session.close()
        metrics.labelled(metrics.DELIVERIES, system.name, "success").inc()
        return done

    @_handle.register
    def _rt_close(self, job: jobs.RtClose, now: datetime) -> None:
        """Resolve a ticket in Request Tracker with a comment; one already resolved or deleted is noted, not retried."""
        system = self._system(job.system, "rt", job.ticket_id)
        report = self._with_rt(system, lambda client: client.close(job.ticket_id, job.text))
        if not report.closed:
            log.warning("RT ticket not changed", extra={"system": system.name, "ticket_id": job.ticket_id})
        else:  # the sync must not read the bridge's own resolve back as a person's change
            self.store.note_written_ticket(system.name, job.ticket_id, TicketState.DONE, "resolved", now)
        self._note_ticket(job.problem_id, system.name, report.note, now)

    def _note_ticket(self, problem_id: int | None, system: str, note: str, now: datetime) -> None:
        """What a ticket system said of a close, in the problem's history."""
        if problem_id is not None:
            event = dict(problem_id=problem_id, at=now, kind="ticket", detail=f"{system}: {note}")
            self.store.run(lambda conn: self.store.add_problem_events(conn, [event]))

    def _notice_text(self, job: jobs.TicketNotice) -> str:
        link = f"{self.options.public_url.rstrip('/')}/ui/problems/{job.problem_id}"
        return ticket_notice_text(job.what, job.problem_id or 0, job.text, link)

    @_handle.register
    def _rt_comment(self, job: jobs.RtComment, now: datetime) -> None:
        """Tell an RT ticket its problem's workaround or conclusion, as an internal comment (never twice)."""
        text = self._notice_text(job)
        system = self._system(job.system, "rt", job.ticket_id)
        report = self._with_rt(system, lambda client: client.comment_once(job.ticket_id, text))
        log.info("RT ticket told", extra={"system": job.system, "ticket_id": job.ticket_id, "note": report.note})

    def _service_desk(self, name: str, key: str) -> tuple[TicketSystem, JiraClient]:
        system = self._system(name, "jira", key)
        return system, service_desk.service_desk_client(system, self.http)

    @_handle.register
    def _jsm_comment(self, job: jobs.JsmComment, now: datetime) -> None:
        """Tell a Jira Service Management request its problem's workaround or conclusion, as a comment."""
        _, jira = self._service_desk(job.system, job.ticket_id)
        comment_unless_repeated(jira, job.ticket_id, self._notice_text(job))
        metrics.labelled(metrics.DELIVERIES, job.system, "success").inc()

    @_handle.register
    def _jsm_close(self, job: jobs.JsmClose, now: datetime) -> None:
        """Close a Jira Service Management request: a comment, then its close transition, read back."""
        system, jira = self._service_desk(job.system, job.ticket_id)
        note = service_desk.close_request(jira, system, job.ticket_id, job.text)
        self.store.note_written_ticket(system.name, job.ticket_id, TicketState.DONE, "done", now)
        metrics.labelled(metrics.DELIVERIES, system.name, "success").inc()
        self._note_ticket(job.problem_id, system.name, note, now)

    @_handle.register
    def _jsm_read(self, job: jobs.JsmRead, now: datetime) -> None:
        """Read a request its webhook named and apply it to its incident."""
        system, jira = self._service_desk(job.system, job.ticket_id)
        applied = service_desk.read_request(self.store, self.rules, system, jira, job.ticket_id, now)
        log.info("Jira request read", extra={"system": system.name, "ticket_id": job.ticket_id, "step": applied.step})

    def schedule_syncs(self, now: datetime, interval: timedelta) -> int:
        """Queue a conclusion sync for linked problems not read within `interval` (missed webhooks)."""
        if self.jira is None:
            return 0
        keys = self.store.issues_due_for_sync(now - interval)

        def queue(conn: Connection) -> None:
            for key in keys:
                queue_issue_sync(conn, self.store, key, now)

        if keys:
            self.store.run(queue)
        return len(keys)


def mark_breaches(store: Store, rules: Rules | None, now: datetime) -> list[dict[str, Any]]:
    """Mark SLA breaches when they happen (once per incident) and queue the Jira comments rules ask for."""
    breached = store.mark_sla_breaches(now)
    notes = []
    for incident in breached:
        log.warning("SLA breached", extra={"incident_id": incident["id"], "priority": incident["priority"]})
        metrics.labelled(metrics.SLA_BREACHES, incident["priority"]).inc()
        policy = rules.sla_policies.get(incident["priority"]) if rules is not None else None
        if policy is not None and policy.comment_on_breach and incident["problem_id"] is not None:
            notes.append(incident)
    if notes:

        def queue(conn: Connection) -> None:
            for incident in notes:
                problem = store.get_problem(incident["problem_id"], conn)
                if problem is None or problem["jira_key"] is None:
                    continue
                text = (
                    f"SLA breached: incident {incident['id']} ({incident['priority']}) was due "
                    f"{incident['sla_due']:%Y-%m-%d %H:%M} UTC: {incident['summary']}"
                )
                jobs.queue(conn, store, jobs.Note(problem["id"], problem["jira_key"], text, incident["id"]), now)

        store.run(queue)
    return breached


def mark_response_breaches(store: Store, now: datetime) -> list[dict[str, Any]]:
    """Mark incidents nobody acknowledged by their response due time (once per incident), and count them."""
    breached = store.mark_response_breaches(now)
    for incident in breached:
        log.warning("response time breached", extra={"incident_id": incident["id"], "priority": incident["priority"]})
        metrics.labelled(metrics.RESPONSE_BREACHES, incident["priority"]).inc()
    return breached


def prune(store: Store, now: datetime, retention: timedelta) -> dict[str, int]:
    """Delete raw notifications, refused payloads and ended sessions older than `retention`; log and return the counts.

    Incidents, problems, releases and their history stay: none of them needs the raw body.
    """
    before = now - retention
    deleted = store.prune(before)
    deleted["ui_sessions"] = store.prune_sessions(before)
    log.info("pruned old raw payloads", extra={"before": before.isoformat(), **deleted})
    return deleted


@dataclass
class Pruner:
    """Runs the retention prune once per `every` (the first pass prunes at once)."""

    retention: timedelta
    every: timedelta = timedelta(days=1)
    _last: datetime | None = None

    def run_due(self, store: Store, now: datetime) -> None:
        if self._last is None or now - self._last >= self.every:
            prune(store, now, self.retention)
            self._last = now


def run_once(
    store: Store,
    now: datetime,
    outbox: OutboxRunner | None = None,
    pruner: Pruner | None = None,
    rules: Rules | None = None,
) -> int:
    """One pass of every periodic job; returns how many incidents, windows, heartbeats and jobs it handled.

    Heartbeats and windows are watched under `rules` (default: the outbox's).
    """
    if pruner is not None:
        pruner.run_due(store, now)
    rules = rules or (outbox.rules if outbox is not None else None)
    announcer = notify.Announcer.of(store, rules) if rules is not None else None
    watched = watch_once(store, rules, now) if rules is not None else 0
    closed = store.close_resolved_due(now, notify.announce_auto_closed(announcer))
    if closed:
        log.info("auto-closed resolved incidents", extra={"count": len(closed)})
        metrics.labelled(metrics.CLOSED, "auto_closed").inc(len(closed))
    breached = mark_breaches(store, rules, now)
    unanswered = mark_response_breaches(store, now)
    handled = watched + len(closed) + len(breached) + len(unanswered)
    return handled + (outbox.run_due(now) if outbox is not None else 0)


def run_forever(
    store: Store,
    interval_seconds: float,
    now: Callable[[], datetime],
    stop: threading.Event,
    outbox: OutboxRunner | None = None,
    pruner: Pruner | None = None,
) -> None:
    """Run passes until `stop` is set; a database outage is logged and waited out."""
    log.info("worker started", extra={"interval_seconds": interval_seconds})
    while not stop.is_set():
        try:
            busy = run_once(store, now(), outbox, pruner)
        except StoreUnavailable as exc:
            log.warning(
                "database refused the pass; worker will retry",
                extra={"error": exc.error, "reason": exc.message, "cause": driver_cause(exc)},
            )
            busy = 0
        # A full batch means more is waiting: go again at once.
        if busy < JOBS_PER_PASS:
            stop.wait(interval_seconds)
    log.info("worker stopped")


def install_stop_signals(stop: threading.Event) -> None:
    """SIGTERM and SIGINT finish the current job, then exit."""

    def _request_stop(signum: int, _frame: FrameType | None) -> None:
        log.info("stop requested", extra={"signal": signum})
        stop.set()

    signal.signal(signal.SIGTERM, _request_stop)
    signal.signal(signal.SIGINT, _request_stop)
