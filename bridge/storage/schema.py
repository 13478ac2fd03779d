"""The bridge's tables and the column types both backends share.

Alembic migrations import the types from `bridge.storage`; the tables here are the schema
the newest migration produces.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects.postgresql import JSONB


class UtcDateTime(sa.TypeDecorator[datetime]):
    """Timezone-aware UTC datetimes on both backends (SQLite stores naive text)."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime given to the store; use timezone-aware UTC")
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: datetime | None, dialect: sa.Dialect) -> datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


JsonType = sa.JSON().with_variant(JSONB(), "postgresql")
# SQLite only auto-increments INTEGER PRIMARY KEY columns.
BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

metadata = sa.MetaData()

# Incidents not closed: the live index's predicate, word for word the counts' WHERE (SQLite needs the same terms).
LIVE_INCIDENTS = "state IN ('firing', 'resolved')"
LIVE_ONLY: dict[str, Any] = {"sqlite_where": sa.text(LIVE_INCIDENTS), "postgresql_where": sa.text(LIVE_INCIDENTS)}

notifications = sa.Table(
    "notifications",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("alert_count", sa.Integer(), nullable=False),
    sa.Column("rejected_count", sa.Integer(), nullable=False),
    sa.Column("truncated_alerts", sa.Integer(), nullable=False),
    sa.Column("group_key", sa.Text()),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Index("ix_notifications_received_at", "received_at"),
    # A source's newest notification (when it was last heard: heartbeats, the overview, a gauge), one probe.
    sa.Index("ix_notifications_source_received_at", "source", "received_at"),
)

incidents = sa.Table(
    "incidents",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("dedup_key", sa.Text(), nullable=False),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("line", sa.String(64), nullable=False),
    sa.Column("impact", sa.String(16), nullable=False),
    sa.Column("urgency", sa.String(16), nullable=False),
    sa.Column("priority", sa.String(16), nullable=False),
    sa.Column("route", sa.String(200), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("labels", JsonType, nullable=False),
    sa.Column("annotations", JsonType, nullable=False),
    sa.Column("occurrences", sa.Integer(), nullable=False),
    sa.Column("reopen_count", sa.Integer(), nullable=False),
    sa.Column("first_seen", UtcDateTime(), nullable=False),
    sa.Column("last_seen", UtcDateTime(), nullable=False),
    sa.Column("episode_started_at", UtcDateTime()),
    sa.Column("resolved_at", UtcDateTime()),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("close_reason", sa.Text()),
    sa.Column("auto_close_at", UtcDateTime()),
    sa.Column("problem_id", sa.BigInteger()),
    sa.Column("last_notification_id", sa.BigInteger()),
    sa.Column("problem_key", sa.Text()),
    sa.Column("sla_elapsed_seconds", sa.Float(), nullable=False, server_default="0"),
    sa.Column("sla_running_since", UtcDateTime()),
    sa.Column("sla_due", UtcDateTime()),
    sa.Column("sla_breached", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("sla_breached_at", UtcDateTime()),
    # The source's own ids of the events this incident gathered (Zabbix event ids), for closing them there.
    sa.Column("source_ids", JsonType),
    sa.Column("acknowledged_at", UtcDateTime()),
    sa.Column("acknowledged_by", sa.String(200)),
    sa.Column("response_due", UtcDateTime()),
    sa.Column("response_breached", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("response_breached_at", UtcDateTime()),
    # The hold window that held it ({id, kind, name} kept once released), whether it holds it still,
    # and when its clocks started when that was the window's end (bridge/domain/windows.py).
    sa.Column("hold_window_id", sa.BigInteger()),
    sa.Column("hold_window", JsonType),
    sa.Column("held", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("clocks_from", UtcDateTime()),
    # The deploy in progress when it last opened ({id, project, version, environment}), and its id apart.
    sa.Column("during_deploy", JsonType),
    sa.Column("deploy_id", sa.BigInteger()),
    sa.Index(
        "ux_incidents_firing_dedup_key",
        "dedup_key",
        unique=True,
        sqlite_where=sa.text("state = 'firing'"),
        postgresql_where=sa.text("state = 'firing'"),
    ),
    # A resolved incident's key, for its reopening: with the firing index above, the live lookup's
    # two indexes. Partial, so a new incident enters one index by its key, not two (creates
    # write a leaf page per key and index, their keys falling anywhere in it).
    sa.Index(
        "ix_incidents_resolved_dedup_key",
        "dedup_key",
        sqlite_where=sa.text("state = 'resolved'"),
        postgresql_where=sa.text("state = 'resolved'"),
    ),
    sa.Index("ix_incidents_state_auto_close_at", "state", "auto_close_at"),
    sa.Index("ix_incidents_state_id", "state", "id"),  # a state's incidents newest first, however many closed
    sa.Index("ix_incidents_problem_id_id", "problem_id", "id"),  # a problem's incidents newest first, unsorted
    # No index may cover what a repeat changes (occurrences, last_seen): repeats then stay
    # heap-only updates on PostgreSQL (fillfactor 80, set by migration 0005).
    sa.Index(
        "ix_incidents_problem_key_waiting",
        "problem_key",
        sqlite_where=sa.text("problem_id IS NULL"),
        postgresql_where=sa.text("problem_id IS NULL"),
    ),
    sa.Index("ix_incidents_sla_watch", "state", "sla_breached", "sla_due"),
    sa.Index("ix_incidents_response_watch", "state", "response_breached", "response_due"),
    # What opened in a period (the service report, page by page in (first_seen, id) order) or after a
    # release (release health); neither column ever changes, so repeats stay heap-only.
    sa.Index("ix_incidents_first_seen_id", "first_seen", "id"),
    # What a window held (its release, its page); partial: the incidents no window ever held are in none.
    sa.Index(
        "ix_incidents_hold_window_id",
        "hold_window_id",
        sqlite_where=sa.text("hold_window_id IS NOT NULL"),
        postgresql_where=sa.text("hold_window_id IS NOT NULL"),
    ),
    # Live incidents in the order the gauges group them (no sort): the counts cost what is live, not history.
    sa.Index("ix_incidents_live", "state", "line", "priority", "source", "sla_breached", "id", **LIVE_ONLY),
    # What opened during a deploy (release health); partial, as the hold window's.
    sa.Index(
        "ix_incidents_deploy_id",
        "deploy_id",
        sqlite_where=sa.text("deploy_id IS NOT NULL"),
        postgresql_where=sa.text("deploy_id IS NOT NULL"),
    ),
)

# Windows that hold what opens under them (maintenance windows: made by hand, or occurrences of a
# recurring window of rules.yaml, `rule`; deploy windows, `deploy`): covered alerts' incidents are
# recorded, their side effects and clocks wait for the end, and the worker releases them once
# (`released_at`). A deploy window of a project whose deploys hold nothing (`holds` false) only marks.
hold_windows = sa.Table(
    "hold_windows",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("name", sa.String(200), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("match", JsonType, nullable=False),
    sa.Column("starts_at", UtcDateTime(), nullable=False),
    sa.Column("ends_at", UtcDateTime(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("created_by", sa.String(200)),
    sa.Column("ended_at", UtcDateTime()),
    sa.Column("ended_by", sa.String(200)),
    sa.Column("released_at", UtcDateTime()),
    sa.Column("rule", sa.String(200)),
    sa.Column("holds", sa.Boolean(), nullable=False, server_default=sa.true()),
    sa.Column("deploy", JsonType),
    sa.Index("ix_hold_windows_ends_at", "ends_at"),
    sa.Index("ux_hold_windows_rule_starts_at", "rule", "starts_at", unique=True),
)

# Heartbeats of rules.yaml as the worker last decided them (bridge/domain/heartbeats.py); a row
# stays when its heartbeat leaves the rules, disabled.
heartbeats = sa.Table(
    "heartbeats",
    metadata,
    sa.Column("name", sa.String(100), primary_key=True),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("armed_at", UtcDateTime(), nullable=False),
    sa.Column("changed_at", UtcDateTime(), nullable=False),
    sa.Column("last_seen", UtcDateTime()),
)

problems = sa.Table(
    "problems",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("problem_key", sa.Text(), nullable=False),
    sa.Column("rule", sa.String(200), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("description", sa.Text(), nullable=False),
    sa.Column("incident_count", sa.Integer(), nullable=False),
    sa.Column("opened_at", UtcDateTime(), nullable=False),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("fixed_in", sa.Text()),
    sa.Column("regressions", sa.Integer(), nullable=False),
    sa.Column("jira_project", sa.String(64)),
    sa.Column("jira_key", sa.String(64)),
    sa.Column("jira_url", sa.Text()),
    sa.Column("jira_linked_by", sa.String(16)),
    sa.Column("conclusion", sa.Text()),
    sa.Column("conclusion_updated_at", UtcDateTime()),
    sa.Column("comment_pending", sa.Integer(), nullable=False),
    sa.Column("comment_pending_since", UtcDateTime()),
    sa.Column("last_comment_at", UtcDateTime()),
    sa.Column("last_comment_hash", sa.String(64)),
    sa.Column("fixed_at", UtcDateTime()),
    sa.Column("jira_issue_id", sa.String(64)),
    sa.Column("jira_create_attempted_at", UtcDateTime()),
    # What the linked issue's end state means (fixed, wont_do, duplicate), read from Jira.
    sa.Column("outcome", sa.String(16)),
    # Set when the problem was merged: the problem its incidents went to.
    sa.Column("merged_into", sa.BigInteger()),
    # What the first line tells callers until the fix ships (a person sets it), and who set it when.
    sa.Column("workaround", sa.Text()),
    sa.Column("workaround_updated_at", UtcDateTime()),
    sa.Column("workaround_by", sa.String(200)),
    # Tickets their customers reopened after the problem closed with its fix.
    sa.Column("reopened_by_ticket", sa.Integer(), nullable=False, server_default="0"),
    # The releases and changes that may have caused it, nearest first, decided when it opened or regressed.
    sa.Column("suspects", JsonType),
    sa.Index(
        "ux_problems_open_key",
        "problem_key",
        unique=True,
        sqlite_where=sa.text("state <> 'closed'"),
        postgresql_where=sa.text("state <> 'closed'"),
    ),
    sa.Index(
        "ux_problems_live_jira_key",
        "jira_key",
        unique=True,
        sqlite_where=sa.text("jira_key IS NOT NULL AND state <> 'closed'"),
        postgresql_where=sa.text("jira_key IS NOT NULL AND state <> 'closed'"),
    ),
    sa.Index("ix_problems_state", "state"),
    sa.Index("ix_problems_jira_issue_id", "jira_issue_id"),
    # A key's newest problem (where a merged key's incidents go, the latest released fix).
    sa.Index("ix_problems_key_id", "problem_key", "id"),
    sa.Index("ix_problems_opened_at_id", "opened_at", "id"),  # what opened in a period (release health)
)

releases = sa.Table(
    "releases",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("released_at", UtcDateTime(), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("via", sa.String(32), nullable=False),
    sa.Column("summary", JsonType, nullable=False),
    # The environments the release reached; None when the pipeline did not say (everywhere).
    sa.Column("environments", JsonType),
    sa.UniqueConstraint("project", "version", name="uq_releases_project_version"),
)

# A release is identified per issue: a second call for a version processes the issues it adds.
release_issues = sa.Table(
    "release_issues",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("release_id", sa.BigInteger(), nullable=False),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("issue_key", sa.String(64), nullable=False),
    sa.Column("processed_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("project", "version", "issue_key", name="uq_release_issues_project_version_issue"),
)

# Each deploy of a project's version to an environment, as the pipeline told it (or a release naming
# environments implied it): at most one in progress per project, version and environment.
deploys = sa.Table(
    "deploys",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("project", sa.String(64), nullable=False),
    sa.Column("version", sa.String(200), nullable=False),
    sa.Column("environment", sa.String(64), nullable=False),
    sa.Column("phase", sa.String(16), nullable=False),
    # When it began reaching the environment: its start, or its end when only that was told.
    sa.Column("deployed_at", UtcDateTime(), nullable=False),
    sa.Column("started_at", UtcDateTime()),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("failed_at", UtcDateTime()),
    # When a deploy never finished stops being in progress (BRIDGE_DEPLOY_MAX after its start).
    sa.Column("expires_at", UtcDateTime()),
    sa.Column("issues", JsonType, nullable=False),
    sa.Column("via", sa.String(32), nullable=False),
    # Its deploy window (hold_windows), when its project is in rules.yaml.
    sa.Column("window_id", sa.BigInteger()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index(
        "ux_deploys_in_progress",
        "project",
        "version",
        "environment",
        unique=True,
        sqlite_where=sa.text("phase = 'started'"),
        postgresql_where=sa.text("phase = 'started'"),
    ),
    # A problem's suspects: its project's deploys to its environment before its first occurrence.
    sa.Index("ix_deploys_project_environment_deployed_at", "project", "environment", "deployed_at"),
    # A release's deploys (release health).
    sa.Index("ix_deploys_project_version", "project", "version"),
)

# Changes outside the release pipeline (PagerDuty Change Events): never incidents, suspects of problems.
changes = sa.Table(
    "changes",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    # The name of the routing key it came with (never the key).
    sa.Column("routing_key", sa.String(100), nullable=False),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("source", sa.Text()),
    sa.Column("changed_at", UtcDateTime(), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("custom_details", JsonType),
    sa.Column("links", JsonType, nullable=False),
    # The routing key's labels and the event's text custom_details: which services it touched.
    sa.Column("labels", JsonType, nullable=False),
    sa.Index("ix_changes_changed_at", "changed_at"),
)

# Keys a Jira issue had before it moved, and the key it has now: a release naming an old key
# still finds its problem (Jira never hands a moved-away key out again).
jira_key_moves = sa.Table(
    "jira_key_moves",
    metadata,
    sa.Column("old_key", sa.String(64), primary_key=True),
    sa.Column("new_key", sa.String(64), nullable=False),
    sa.Column("moved_at", UtcDateTime(), nullable=False),
)

_NOTES = sa.text("kind = 'note'")
problem_events = sa.Table(
    "problem_events",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("problem_id", sa.BigInteger(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Column("actor", sa.String(200)),
    # The release whose fix a regression or a "not deployed there yet" recurred after (release health).
    sa.Column("release_version", sa.String(200)),
    # The incident the event is about, where one is (the incident that regressed its problem).
    sa.Column("incident_id", sa.BigInteger()),
    # An event repeated as the problem's latest (same kind, text, actor, release) is one row: how often, the last when.
    sa.Column("repeat_count", sa.Integer(), nullable=False, server_default=sa.text("1")),
    sa.Column("last_at", UtcDateTime()),
    sa.Index("ix_problem_events_problem_id", "problem_id", "id"),
    # A problem's history page after page, newest first (keyset on (at, id)), and its notes however few.
    sa.Index("ix_problem_events_problem_at", "problem_id", "at", "id"),
    sa.Index("ix_problem_events_notes", "problem_id", "at", "id", sqlite_where=_NOTES, postgresql_where=_NOTES),
    # A period's events of a kind (the service report: linked, released, closed, regressed).
    sa.Index("ix_problem_events_kind_at", "kind", "at"),
    # Whether an incident regressed its problem (the report's CSV), for the few events that name one.
    sa.Index(
        "ix_problem_events_incident_id",
        "incident_id",
        sqlite_where=sa.text("incident_id IS NOT NULL"),
        postgresql_where=sa.text("incident_id IS NOT NULL"),
    ),
)

# What people did to an incident (acknowledged, moved, closed), with who did it.
incident_events = sa.Table(
    "incident_events",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("incident_id", sa.BigInteger(), nullable=False),
    sa.Column("at", UtcDateTime(), nullable=False),
    sa.Column("kind", sa.String(32), nullable=False),
    sa.Column("actor", sa.String(200)),
    sa.Column("detail", sa.Text(), nullable=False),
    sa.Index("ix_incident_events_incident_id", "incident_id", "id"),
)

outbox = sa.Table(
    "outbox",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("kind", sa.String(64), nullable=False),
    sa.Column("target", sa.String(16), nullable=False),
    sa.Column("problem_id", sa.BigInteger()),
    sa.Column("payload", JsonType, nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer(), nullable=False),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("next_attempt_at", UtcDateTime(), nullable=False),
    sa.Column("locked_until", UtcDateTime()),
    sa.Column("finished_at", UtcDateTime()),
    sa.Column("last_error", sa.Text()),
    sa.Column("dedup_key", sa.Text()),
    sa.Index(
        "ux_outbox_pending_dedup_key",
        "dedup_key",
        unique=True,
        sqlite_where=sa.text("state = 'pending'"),
        postgresql_where=sa.text("state = 'pending'"),
    ),
    sa.Index("ix_outbox_state_next_attempt_at", "state", "next_attempt_at"),
)

# The Jira rate-limit budget every worker shares: one row per scope held back (`quota`,
# `endpoint:METHOD /path-template`, `issue:KEY`), and the quota row also keeps the
# X-RateLimit-* headers of the latest answer.
jira_rate_limits = sa.Table(
    "jira_rate_limits",
    metadata,
    sa.Column("scope", sa.String(255), primary_key=True),
    sa.Column("operation", sa.String(64)),
    sa.Column("reason", sa.String(64)),
    sa.Column("blocked_until", UtcDateTime()),
    sa.Column("blocked_at", UtcDateTime()),
    sa.Column("remaining", sa.BigInteger()),
    sa.Column("request_limit", sa.BigInteger()),
    sa.Column("near_limit", sa.Boolean(), nullable=False, server_default=sa.false()),
    sa.Column("reset_at", UtcDateTime()),
    sa.Column("updated_at", UtcDateTime(), nullable=False),
    sa.Index("ix_jira_rate_limits_blocked_until", "blocked_until"),
)

# The pages' sign-ins: the cookie names its row (by the id's SHA-256), which ends at
# `expires_at` whatever the activity, or earlier when signed out (`ended_at`).
ui_sessions = sa.Table(
    "ui_sessions",
    metadata,
    sa.Column("id_sha256", sa.String(64), primary_key=True),
    sa.Column("actor", sa.String(200)),
    sa.Column("operate", sa.Boolean(), nullable=False),
    sa.Column("signed_in_at", UtcDateTime(), nullable=False),
    sa.Column("expires_at", UtcDateTime(), nullable=False),
    sa.Column("ended_at", UtcDateTime()),
    sa.Column("ended_how", sa.String(32)),
    sa.Index("ix_ui_sessions_actor", "actor"),
    sa.Index("ix_ui_sessions_expires_at", "expires_at"),
)

# Tickets linked to a problem by hand; reported tickets are incidents (source "ticket").
problem_tickets = sa.Table(
    "problem_tickets",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("problem_id", sa.BigInteger(), nullable=False),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("ticket_id", sa.String(128), nullable=False),
    sa.Column("url", sa.Text()),
    sa.Column("summary", sa.Text(), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("linked_at", UtcDateTime(), nullable=False),
    sa.Column("closed_at", UtcDateTime()),
    sa.Column("close_reason", sa.Text()),
    sa.UniqueConstraint("problem_id", "system", "ticket_id", name="uq_problem_tickets_problem_system_ticket"),
)

# One row per ticket system the bridge reads by itself: how far it has read (the newest change
# seen, in the system's own clock), how the last passes went, and which worker holds the lease.
ticket_sync_state = sa.Table(
    "ticket_sync_state",
    metadata,
    sa.Column("system", sa.String(64), primary_key=True),
    sa.Column("watermark", UtcDateTime()),
    sa.Column("created_at", UtcDateTime(), nullable=False),
    sa.Column("last_attempt_at", UtcDateTime()),
    sa.Column("last_success_at", UtcDateTime()),
    sa.Column("next_attempt_at", UtcDateTime()),
    sa.Column("failures", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("last_error", sa.Text()),
    sa.Column("tickets_read", sa.Integer(), nullable=False, server_default="0"),
    sa.Column("lease_owner", sa.String(200)),
    sa.Column("lease_until", UtcDateTime()),
)

# What the bridge last saw of each ticket in its system, or last wrote there itself: a change is a
# difference from this, so an overlapping read, a restart or the bridge's own close is no change.
synced_tickets = sa.Table(
    "synced_tickets",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("ticket_id", sa.String(128), nullable=False),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("status", sa.String(64), nullable=False),
    sa.Column("version", sa.String(64), nullable=False),
    sa.Column("problem_ref", sa.String(200)),
    sa.Column("fingerprint", sa.String(64), nullable=False),
    sa.Column("incident_id", sa.BigInteger()),
    sa.Column("seen_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("system", "ticket_id", name="uq_synced_tickets_system_ticket"),
)

# Each text a ticket was told (a workaround, a conclusion), by its digest: the same text never twice.
ticket_notices = sa.Table(
    "ticket_notices",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("system", sa.String(64), nullable=False),
    sa.Column("ticket_id", sa.String(128), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("problem_id", sa.BigInteger(), nullable=False),
    sa.Column("queued_at", UtcDateTime(), nullable=False),
    sa.UniqueConstraint("system", "ticket_id", "digest", name="uq_ticket_notices_system_ticket_digest"),
)

rejected_payloads = sa.Table(
    "rejected_payloads",
    metadata,
    sa.Column("id", BigId, primary_key=True),
    sa.Column("source", sa.String(32), nullable=False),
    sa.Column("received_at", UtcDateTime(), nullable=False),
    sa.Column("reason", sa.Text(), nullable=False),
    sa.Column("errors", JsonType, nullable=False),
    sa.Column("content_type", sa.Text()),
    sa.Column("partial", sa.Boolean(), nullable=False),
    sa.Column("body", sa.Text(), nullable=False),
    sa.Column("body_truncated", sa.Boolean(), nullable=False),
    sa.Index("ix_rejected_payloads_received_at", "received_at"),
)
