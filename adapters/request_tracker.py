"""Request Tracker 5 through its REST2 API: the one thing the bridge does there is close a ticket.

Closing is a comment naming the release and the problem, then `Status: resolved`, read back
to check it. A ticket already resolved (or rejected) or deleted is reported, not retried:
nothing the bridge can do changes it. https://docs.bestpractical.com/rt/5.0.0/RT/REST2.html

Ticket ids come from people (reported, linked by hand): one that is not an RT number is
refused before any call, and every path segment is percent-encoded, so no id can address
another resource with the bridge's credentials. Only tickets of the system's queues (its
`queue` and its sync's `queues`) are changed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

import requests

from bridge.domain.tickets import TicketSystem, ticket_id_refusal
from bridge.errors import OutboundFailure
from bridge.validation import url_segment

TIMEOUT_SECONDS = 10.0
# Tickets per page of a search (REST2 answers at most 100).
SEARCH_PAGE_SIZE = 100
# Statuses of RT's default lifecycle a closed ticket may already be in.
DONE_STATUSES = ("resolved", "rejected")


class RtError(OutboundFailure):
    """RT refused or failed a call; retried with backoff when `retryable` (timeouts, 5xx, 429)."""


@dataclass(frozen=True)
class CloseReport:
    """What closing a ticket did: `closed` when this call resolved it, else the note saying why not."""

    closed: bool
    note: str


@dataclass
class RtClient:
    """REST2 calls on one RT; credentials are a token or basic auth, from the environment via rules.yaml."""

    session: requests.Session
    url: str
    queues: tuple[str, ...] = ()  # when set, tickets of other queues are reported, not changed
    timeout: float = TIMEOUT_SECONDS

    @classmethod
    def for_system(cls, system: TicketSystem, session: requests.Session | None = None) -> RtClient:
        session = session or requests.Session()
        if system.token is not None:
            session.headers["Authorization"] = f"token {system.token}"
        elif system.username is not None and system.password is not None:
            session.auth = (system.username, system.password)
        return cls(session, system.url.rstrip("/"), configured_queues(system))

    @staticmethod
    def path(*segments: object) -> str:
        """A REST2 path of these segments, each percent-encoded (a `..` or `/` stays inside its segment)."""
        return "/".join(url_segment(segment) for segment in segments)

    @staticmethod
    def ticket(ticket_id: str) -> str:
        """The path of a ticket, refused before any call when the id is not an RT ticket number.

        Raises:
            RtError: not retryable (the job is dead-lettered, nothing is sent).
        """
        refusal = ticket_id_refusal("rt", ticket_id)
        if refusal is not None:
            raise RtError(f"refused to call RT: {refusal}", False)
        return RtClient.path("ticket", ticket_id)

    def foreign_queue(self, ticket_id: str, ticket: dict[str, Any]) -> str | None:
        """Why a ticket is not the bridge's to change (another queue than the system's), None when it is."""
        if not self.queues:
            return None
        queue = self.queue_name(ticket)
        if queue in self.queues:
            return None
        return f"RT ticket {ticket_id} is in queue {queue}, not {' or '.join(self.queues)}"

    def _call(self, method: str, path: str, body: Any = None) -> requests.Response:
        try:
            answer = self.session.request(method, f"{self.url}/REST/2.0/{path}", json=body, timeout=self.timeout)
        except requests.Timeout as exc:
            raise RtError(f"RT timed out after {self.timeout:g}s on {method} {path}", True) from exc
        except requests.RequestException as exc:
            raise RtError(f"cannot reach RT ({type(exc).__name__}) on {method} {path}", True) from exc
        if answer.status_code >= 500 or answer.status_code in (408, 429):
            after = answer.headers.get("Retry-After", "")
            raise RtError(
                f"RT answered {answer.status_code} on {method} {path}",
                True,
                float(after) if after.isdigit() else None,
            )
        if answer.status_code in (401, 403):
            raise RtError(
                f"RT refused the bridge's credentials ({answer.status_code}) on {method} {path}: check the "
                "ticket system's token_env or username_env/password_env",
                False,
            )
        return answer

    def get_ticket(self, ticket_id: str) -> dict[str, Any] | None:
        """The ticket's fields (`Status`, `Subject`, `Queue`...), None when RT has no such ticket."""
        answer = self._call("GET", self.ticket(ticket_id))
        if answer.status_code == 404:
            return None
        self._check(answer, f"read ticket {ticket_id}")
        found: dict[str, Any] = answer.json()
        return found

    def queue_name(self, ticket: dict[str, Any]) -> str:
        """The name of a ticket's queue (REST2 gives a reference to it)."""
        reference = ticket.get("Queue")
        if not isinstance(reference, dict):
            return str(reference)
        answer = self._call("GET", self.path("queue", reference.get("id")))
        self._check(answer, f"read queue {reference.get('id')}")
        return str(answer.json().get("Name", reference.get("id")))

    def create_queue(self, name: str) -> str:
        """Create a queue (test set-up and first installs); its id."""
        answer = self._call("POST", "queue", {"Name": name})
        self._check(answer, f"create queue {name}")
        return str(answer.json()["id"])

    def create_ticket(self, queue: str, subject: str, content: str) -> str:
        """Create a ticket; its id."""
        answer = self._call("POST", "ticket", {"Queue": queue, "Subject": subject, "Content": content})
        self._check(answer, "create a ticket")
        return str(answer.json()["id"])

    def comment(self, ticket_id: str, text: str) -> None:
        """An internal comment (not mailed to the requester)."""
        path = f"{self.ticket(ticket_id)}/comment"
        answer = self._call("POST", path, {"Content": text, "ContentType": "text/plain"})
        self._check(answer, f"comment on ticket {ticket_id}")

    def has_comment(self, ticket_id: str, text: str) -> bool:
        """Whether one of the ticket's newest comments is this text (a retried close must not comment twice)."""
        answer = self._call("GET", f"{self.ticket(ticket_id)}/history?fields=Type&per_page=100&page=1")
        self._check(answer, f"read the history of ticket {ticket_id}")
        comments = [item["id"] for item in answer.json().get("items", []) if item.get("Type") == "Comment"]
        for transaction in comments[-5:]:
            found = self._call("GET", f"{self.path('transaction', transaction, 'attachments')}?fields=Content")
            self._check(found, f"read comment {transaction} of ticket {ticket_id}")
            if any(str(item.get("Content", "")).strip() == text.strip() for item in found.json().get("items", [])):
                return True
        return False

    def set_status(self, ticket_id: str, status: str) -> None:
        answer = self._call("PUT", self.ticket(ticket_id), {"Status": status})
        self._check(answer, f"set ticket {ticket_id} to {status}")

    def close(self, ticket_id: str, text: str) -> CloseReport:
        """Comment, resolve, and read the status back.

        Raises:
            RtError: RT failed (retryable) or refused (the answer says why), or the ticket is
                not resolved after the change.
        """
        ticket = self.get_ticket(ticket_id)
        if ticket is None:
            return CloseReport(False, f"RT ticket {ticket_id} does not exist (deleted, or never created); not changed")
        status = str(ticket.get("Status", ""))
        if status == "deleted" or status in DONE_STATUSES:
            return CloseReport(False, f"RT ticket {ticket_id} was already {status}; not changed")
        foreign = self.foreign_queue(ticket_id, ticket)
        if foreign is not None:
            return CloseReport(False, f"{foreign}; not changed")
        if not self.has_comment(ticket_id, text):
            self.comment(ticket_id, text)
        self.set_status(ticket_id, "resolved")
        after = self.get_ticket(ticket_id)
        now_status = after.get("Status") if after is not None else "gone"
        if now_status != "resolved":
            raise RtError(f"RT ticket {ticket_id} is {now_status} after being resolved (a lifecycle rule?)", False)
        return CloseReport(True, f"RT ticket {ticket_id} resolved (was {status})")

    def ticket_url(self, ticket_id: str) -> str:
        """The ticket's page in RT's web interface, for people."""
        return f"{self.url}/Ticket/Display.html?{urlencode({'id': ticket_id})}"

    def search_tickets(self, query: str, fields: str, page: int, per_page: int = SEARCH_PAGE_SIZE) -> dict[str, Any]:
        """One page of a TicketSQL search, newest change first (ties by id), with `fields` of each ticket.

        Newest first, so a ticket changed while the pages are read moves to a page already read
        and pushes the rest later, never past the reader: nothing unchanged is skipped.
        https://docs.bestpractical.com/rt/5.0.0/RT/REST2.html#Searching
        """
        parameters = {
            "query": query,
            "fields": fields,
            "fields[Queue]": "Name",
            "orderby": ["LastUpdated", "id"],
            "order": ["DESC", "DESC"],
            "page": page,
            "per_page": per_page,
        }
        answer = self._call("GET", f"tickets?{urlencode(parameters, doseq=True)}")
        self._check(answer, f"search tickets ({query})")
        found: dict[str, Any] = answer.json()
        return found

    def comment_once(self, ticket_id: str, text: str) -> CloseReport:
        """Comment on an open ticket unless one of its newest comments says this already (a retried job).

        `closed` is True when this call commented. A resolved, rejected or deleted ticket, or
        one of another queue, is left alone and reported.
        """
        ticket = self.get_ticket(ticket_id)
        status = str(ticket.get("Status", "")) if ticket is not None else "gone"
        if ticket is None or status == "deleted" or status in DONE_STATUSES:
            return CloseReport(False, f"RT ticket {ticket_id} is {status}; not commented")
        foreign = self.foreign_queue(ticket_id, ticket)
        if foreign is not None:
            return CloseReport(False, f"{foreign}; not commented")
        if self.has_comment(ticket_id, text):
            return CloseReport(False, f"RT ticket {ticket_id} has this comment already")
        self.comment(ticket_id, text)
        return CloseReport(True, f"RT ticket {ticket_id} commented")

    @staticmethod
    def _check(answer: requests.Response, what: str) -> None:
        if answer.status_code >= 400:
            raise RtError(f"RT refused to {what}: {answer.status_code} {answer.text[:300].strip()}", False)


def configured_queues(system: TicketSystem) -> tuple[str, ...]:
    """The queues whose tickets the bridge may change: the system's `queue` and the queues its sync reads."""
    named = [system.queue] if system.queue else []
    named += list(system.sync.queues) if system.sync is not None else []
    return tuple(dict.fromkeys(named))
