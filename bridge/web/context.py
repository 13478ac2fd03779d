"""The collaborators a request works with, and how a view finds them.

Kept apart from app.py so the blueprints can reach them without importing the factory
that imports the blueprints: app.py depends on the views, never the reverse.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING

from flask import current_app

if TYPE_CHECKING:
    from bridge.config import Settings
    from bridge.domain.rules import Rules
    from bridge.ingest.deliveries import Delivery, IngestResult
    from bridge.ingest.group_commit import GroupCommit
    from bridge.storage.store import Store
    from jira_link.linker import LinkOptions
    from jira_link.port import JiraPort

EXTENSION = "bridge"


def utc_now() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class Bridge:
    """The collaborators a request needs, built once per process."""

    settings: Settings
    rules: Rules
    store: Store
    deliveries: GroupCommit[Delivery, IngestResult]
    jira: JiraPort | None = None
    link_options: LinkOptions | None = None
    now: Callable[[], datetime] = utc_now

    def write(self, delivery: Delivery) -> IngestResult:
        """Commit one webhook, sharing the transaction with concurrent ones (group commit)."""
        return self.deliveries.submit(delivery)


def bridge() -> Bridge:
    """The current app's collaborators."""
    found: Bridge = current_app.extensions[EXTENSION]
    return found
