"""Where a side effect (a Jira or Zabbix call waiting in the outbox) stands."""

from __future__ import annotations

import enum


class OutboxState(enum.StrEnum):
    """Waiting (or being retried), done, or given up (a dead letter that an operator may retry)."""

    PENDING = "pending"
    DONE = "done"
    DEAD = "dead"
