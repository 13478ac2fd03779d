"""The catalogue of outbox jobs: one frozen payload per kind, with its kind name, target and dedup key.

Use cases build these and `queue` them in their own transaction; the worker reads them
back with `from_row` and dispatches on the type. Adding a kind is a class here (listed in
CATALOGUE) plus its handler in the worker. Fields marked `stored=False` only shape the
dedup key; the stored payload stays what the worker reads.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from datetime import datetime
from typing import Any, ClassVar

from adapters import zabbix
from bridge.storage.engine import Connection
from bridge.storage.store import Store

_KEY_ONLY = {"stored": False}


@dataclass(frozen=True)
class Job:
    """What every job holds: the problem it concerns (if any); subclasses add their payload."""

    KIND: ClassVar[str]
    TARGET: ClassVar[str]
    # The Jira calls (jira_link.client.OPERATIONS) a job may make: a rate limit on one holds the kind back.
    OPERATIONS: ClassVar[tuple[str, ...]] = ()
    # Lease rank while Jira's budget runs short (lower first): creates and transitions before comments.
    PRIORITY: ClassVar[int] = 0

    def comment_text(self) -> str | None:
        """The text of a job that only comments on its issue (it may be coalesced with others), else None."""
        return None

    def dedup_key(self) -> str | None:
        """A pending job with the same key stands for this one (None: every job runs)."""
        return None

    @property
    def problem(self) -> int | None:
        return getattr(self, "problem_id", None)

    def payload(self) -> dict[str, Any]:
        """The stored payload: every stored field but the problem id (a column of its own), unset ones left out."""
        return {
            f.name: getattr(self, f.name)
            for f in fields(self)
            if f.name != "problem_id" and f.metadata.get("stored", True) and getattr(self, f.name) is not None
        }


@dataclass(frozen=True)
class EnsureIssue(Job):
    """Find or create the problem's Jira issue and link it back."""

    KIND: ClassVar[str] = "jira.ensure_issue"
    TARGET: ClassVar[str] = "jira"
    # Twin handling also links and comments, rarely: a burst limit there meets its 429 and is put off then.
    OPERATIONS: ClassVar[tuple[str, ...]] = ("search", "create_issue", "add_remote_link", "get_issue")
    PRIORITY: ClassVar[int] = 0
    problem_id: int
    priority: str | None = None

    def dedup_key(self) -> str:
        return f"{self.KIND}:{self.problem_id}"


@dataclass(frozen=True)
class SyncIssue(Job):
    """Read an issue's conclusion onto its live problems."""

    KIND: ClassVar[str] = "jira.sync_issue"
    TARGET: ClassVar[str] = "jira"
    OPERATIONS: ClassVar[tuple[str, ...]] = ("get_issue", "get_comments", "search")
    PRIORITY: ClassVar[int] = 2
    jira_key: str

    def dedup_key(self) -> str:
        return f"{self.KIND}:{self.jira_key}"


@dataclass(frozen=True)
class CommentIncidents(Job):
    """One throttled comment for the incidents that joined a linked problem."""

    KIND: ClassVar[str] = "jira.comment_incidents"
    TARGET: ClassVar[str] = "jira"
    OPERATIONS: ClassVar[tuple[str, ...]] = ("get_comments", "add_comment")
    PRIORITY: ClassVar[int] = 3
    problem_id: int

    def dedup_key(self) -> str:
        return f"{self.KIND}:{self.problem_id}"


@dataclass(frozen=True)
class ReleaseComment(Job):
    """Tell an issue what a release closed, and move it to done when its rule asks."""

    KIND: ClassVar[str] = "jira.release"
    TARGET: ClassVar[str] = "jira"
    OPERATIONS: ClassVar[tuple[str, ...]] = (
        "get_comments",
        "add_comment",
        "get_issue",
        "get_transitions",
        "transition",
    )
    PRIORITY: ClassVar[int] = 1
    problem_id: int
    jira_key: str
    text: str
    transition: bool = False
    rule: str = ""
    project: str = field(default="", metadata=_KEY_ONLY)
    version: str = field(default="", metadata=_KEY_ONLY)

    def dedup_key(self) -> str:
        return f"{self.KIND}:{self.project}:{self.version}:{self.jira_key}"

    def comment_text(self) -> str | None:
        return None if self.transition else self.text


@dataclass(frozen=True)
class RegressionReopen(Job):
    """Reopen the issue of a regressed problem, with a comment saying why."""

    KIND: ClassVar[str] = "jira.regression"
    TARGET: ClassVar[str] = "jira"
    OPERATIONS: ClassVar[tuple[str, ...]] = (
        "get_comments",
        "add_comment",
        "get_issue",
        "get_transitions",
        "transition",
    )
    PRIORITY: ClassVar[int] = 1
    problem_id: int
    jira_key: str
    text: str


@dataclass(frozen=True)
class Note(Job):
    """A one-off comment on a problem's issue (an SLA breach), never repeated."""

    KIND: ClassVar[str] = "jira.note"
    TARGET: ClassVar[str] = "jira"
    OPERATIONS: ClassVar[tuple[str, ...]] = ("get_comments", "add_comment")
    PRIORITY: ClassVar[int] = 3
    problem_id: int
    jira_key: str
    text: str
    incident_id: int = field(default=0, metadata=_KEY_ONLY)

    def dedup_key(self) -> str:
        return f"{self.KIND}:sla:{self.incident_id}"

    def comment_text(self) -> str | None:
        return self.text


@dataclass(frozen=True)
class ZabbixClose(Job):
    """Close (or acknowledge) in Zabbix the events of incidents closed here."""

    KIND: ClassVar[str] = "zabbix.close_problems"
    TARGET: ClassVar[str] = "zabbix"
    event_ids: list[str]
    message: str
    release: str | None = field(default=None, metadata=_KEY_ONLY)

    def dedup_key(self) -> str | None:
        return None if self.release is None else f"{self.KIND}:{self.release}"

    @classmethod
    def of_incidents(
        cls, closed: Sequence[tuple[str, list[str] | None]], message: str, release: str | None = None
    ) -> ZabbixClose:
        """The events of Zabbix incidents just closed: the ids each gathered, never text from a dedup key."""
        event_ids = list(
            dict.fromkeys(event_id for key, source_ids in closed for event_id in zabbix.event_ids(key, source_ids))
        )
        return cls(event_ids, message, release)


@dataclass(frozen=True)
class Deliver(Job):
    """POST one signed lifecycle event to a notify target or a ticket system (`destination`: notify:<name>,
    ticket:<name>); the body is fixed when queued, so every retry sends the same bytes and delivery id."""

    KIND: ClassVar[str] = "webhook.deliver"
    TARGET: ClassVar[str] = "webhook"
    destination: str
    event: str
    delivery_id: str
    body: dict[str, Any]
    problem_id: int | None = None

    def dedup_key(self) -> str:
        return f"{self.KIND}:{self.delivery_id}"


@dataclass(frozen=True)
class TicketClose(Job):
    """Close a ticket in its system, with a comment naming the release and problem (a kind per system)."""

    system: str
    ticket_id: str
    text: str
    problem_id: int | None = None

    def dedup_key(self) -> str:
        return f"{self.KIND}:{self.system}:{self.ticket_id}:{self.problem_id}"


@dataclass(frozen=True)
class RtClose(TicketClose):
    """Close a ticket in Request Tracker 5: a comment naming the release and problem, then Status resolved."""

    KIND: ClassVar[str] = "rt.close_ticket"
    TARGET: ClassVar[str] = "rt"


@dataclass(frozen=True)
class TicketNotice(Job):
    """Tell one ticket its problem's workaround or conclusion (`what`), once per text: the worker adds the
    problem's link and comments, unless the ticket's newest comments already say it (a retried job);
    a kind per system."""

    system: str
    ticket_id: str
    what: str
    text: str
    problem_id: int | None = None
    digest: str = field(default="", metadata=_KEY_ONLY)

    def dedup_key(self) -> str:
        return f"{self.KIND}:{self.system}:{self.ticket_id}:{self.digest}"


@dataclass(frozen=True)
class RtComment(TicketNotice):
    """A workaround or conclusion as an internal comment on a Request Tracker ticket."""

    KIND: ClassVar[str] = "rt.comment_ticket"
    TARGET: ClassVar[str] = "rt"


@dataclass(frozen=True)
class JsmComment(TicketNotice):
    """A workaround or conclusion as a comment on a Jira Service Management request."""

    KIND: ClassVar[str] = "jsm.comment_ticket"
    TARGET: ClassVar[str] = "jsm"


@dataclass(frozen=True)
class JsmClose(TicketClose):
    """Close a Jira Service Management request: a comment naming the release and problem, then the
    system's close transition (read back)."""

    KIND: ClassVar[str] = "jsm.close_ticket"
    TARGET: ClassVar[str] = "jsm"


@dataclass(frozen=True)
class JsmRead(Job):
    """Read a Jira Service Management request its webhook named, and apply it to its incident (as a sync does)."""

    KIND: ClassVar[str] = "jsm.read_ticket"
    TARGET: ClassVar[str] = "jsm"
    system: str
    ticket_id: str

    def dedup_key(self) -> str:
        return f"{self.KIND}:{self.system}:{self.ticket_id}"


CATALOGUE: dict[str, type[Job]] = {
    kind.KIND: kind
    for kind in (
        EnsureIssue,
        SyncIssue,
        CommentIncidents,
        ReleaseComment,
        RegressionReopen,
        Note,
        ZabbixClose,
        Deliver,
        RtClose,
        RtComment,
        JsmComment,
        JsmClose,
        JsmRead,
    )
}


# Lease ranks by kind, used while Jira's budget runs short.
PRIORITIES: dict[str, int] = {kind: cls.PRIORITY for kind, cls in CATALOGUE.items()}
JIRA_KINDS: tuple[str, ...] = tuple(kind for kind, cls in CATALOGUE.items() if cls.TARGET == "jira")
# Kinds whose jobs may be nothing but a comment on `jira_key` (see Job.comment_text): they coalesce.
TEXT_KINDS: tuple[str, ...] = (ReleaseComment.KIND, Note.KIND)


def queue(conn: Connection, store: Store, job: Job, now: datetime, run_at: datetime | None = None) -> None:
    """Add a job to the outbox in the caller's transaction."""
    store.enqueue(
        conn,
        job.KIND,
        target=job.TARGET,
        now=now,
        payload=job.payload(),
        problem_id=job.problem,
        dedup_key=job.dedup_key(),
        run_at=run_at,
    )


def from_row(row: Mapping[str, Any]) -> Job:
    """The job an outbox row holds.

    Raises:
        KeyError: the kind is not in the catalogue. TypeError: the payload does not fit its kind.
    """
    kind = CATALOGUE[row["kind"]]
    stored = {f.name for f in fields(kind) if f.metadata.get("stored", True)}
    values = {name: value for name, value in row["payload"].items() if name in stored}
    if "problem_id" in stored:
        values["problem_id"] = row["problem_id"]
    return kind(**values)
