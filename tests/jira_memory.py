"""An in-memory Jira implementing `JiraPort`, for unit tests of the linker: no HTTP, no threads.

It behaves as ../shared/contracts.md documents, at the level the linker sees: keys
PROJECT-N per project, labels without spaces, statuses with a status category,
transitions that depend on the current status (others are simply absent), comments
newest first, remote links updated in place by globalId, a resolution set on done.
It answers the JQL the linker emits (project and labels clauses) and fails on demand:
a retryable or final `JiraError`, or a call whose work is done but whose answer is
lost, as a timeout would; and Jira Cloud's rate limits (tests/fake_jira_limits.py) raise
the `JiraRateLimited` JiraClient would. tests/integration/test_jira_port_contract.py runs the same
scenarios against it and against `JiraClient` talking to the HTTP `FakeJira`.

Jira identity (issue 16), each switchable: issues have immutable ids; `move` changes an
issue's key while its old key (and its id) still answer; `lag_search` keeps new issues out
of search results for a while, as Cloud's eventually consistent index does; entity
properties set on create are validated and kept; "Duplicate" issue links show in the
`issuelinks` field of both issues.
"""

from __future__ import annotations

import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from jira_link import rate_limits
from jira_link.client import (
    CLOUD,
    DATACENTER,
    JiraClient,
    JiraError,
    JiraIssue,
    JiraRateLimited,
    adf,
    adf_text,
    wiki_markup,
)
from tests.fake_jira_limits import CloudRateLimits
from tests.fakes import LINK_TYPES, PROJECTS, STATUS_DONE, STATUS_OPEN, property_errors

STATUS_IN_PROGRESS = {"name": "In Progress", "statusCategory": {"key": "indeterminate", "name": "In Progress"}}
# The HTTP FakeJira's workflow: current status name -> transitions offered from it.
WORKFLOW: dict[str, list[dict[str, Any]]] = {
    "To Do": [
        {"id": "21", "name": "In Progress", "to": STATUS_IN_PROGRESS},
        {"id": "31", "name": "Close Issue", "to": STATUS_DONE},
    ],
    "In Progress": [
        {"id": "21", "name": "In Progress", "to": STATUS_IN_PROGRESS},
        {"id": "31", "name": "Close Issue", "to": STATUS_DONE},
    ],
    "Done": [{"id": "41", "name": "Reopen", "to": STATUS_OPEN}],
}
OPERATIONS = (
    "search",
    "create_issue",
    "get_issue",
    "transitions",
    "transition",
    "add_comment",
    "recent_comments",
    "add_remote_link",
    "link_issues",
)


@dataclass
class Failure:
    """The next `times` calls of `operation` fail; with `lose_answer`, after doing their work."""

    operation: str
    retryable: bool = True
    status: int | None = None
    lose_answer: bool = False
    times: int = 1


@dataclass
class MemoryIssue:
    key: str
    fields: dict[str, Any]
    comments: list[Any] = field(default_factory=list)  # bodies in the site's format, oldest first
    remote_links: dict[str, dict[str, Any]] = field(default_factory=dict)
    id: str = ""
    properties: dict[str, Any] = field(default_factory=dict)
    created_at: float = 0.0  # on the site's clock: when search may show it (with `search_lag`)


# Operation -> (client operation, HTTP method, path under the API root) as JiraClient sends it,
# so the Cloud rate limits (tests/fake_jira_limits.py) match the same requests here.
REQUESTS = {
    "search": ("search", "GET", "/search/jql"),
    "create_issue": ("create_issue", "POST", "/issue"),
    "get_issue": ("get_issue", "GET", "/issue/{key}"),
    "transitions": ("get_transitions", "GET", "/issue/{key}/transitions"),
    "transition": ("transition", "POST", "/issue/{key}/transitions"),
    "add_comment": ("add_comment", "POST", "/issue/{key}/comment"),
    "recent_comments": ("get_comments", "GET", "/issue/{key}/comment"),
    "add_remote_link": ("add_remote_link", "POST", "/issue/{key}/remotelink"),
    "link_issues": ("link_issues", "POST", "/issueLink"),
}


class MemoryJira(CloudRateLimits):
    """A Jira site in a dict. `calls` records (operation, arguments) of every call, failed ones too."""

    def __init__(
        self,
        *,
        flavour: str = DATACENTER,
        workflow: Mapping[str, list[dict[str, Any]]] | None = None,
        base_url: str = "https://jira.test",
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.flavour = flavour
        self.workflow = dict(workflow if workflow is not None else WORKFLOW)
        self.base_url = base_url
        self.issues: dict[str, MemoryIssue] = {}
        self.calls: list[tuple[str, tuple[Any, ...]]] = []
        self.failures: list[Failure] = []
        # Transition ids Jira accepts (204) while a workflow post-function leaves the issue where it was.
        self.ignored_transitions: set[str] = set()
        # Transition id -> fields its screen requires, as FakeJira.require_fields.
        self.required_fields: dict[str, tuple[str, ...]] = {}
        # Transition id -> fields not on its screen: refused when sent.
        self.refused_fields: dict[str, tuple[str, ...]] = {}
        self.clock = clock
        # Seconds a new issue stays out of search results (Cloud's index is eventually consistent).
        self.search_lag = 0.0
        # Old key -> the key it moved to; both keep answering, as in Jira.
        self.moved: dict[str, str] = {}
        # (type name, inward issue id, outward issue id)
        self.links: list[tuple[str, str, str]] = []
        self._next_id = 10000
        self.lock = threading.Lock()
        CloudRateLimits.__init__(self)

    # Test controls ----------------------------------------------------------------

    def fail(
        self,
        operation: str,
        *,
        retryable: bool = True,
        status: int | None = None,
        lose_answer: bool = False,
        times: int = 1,
    ) -> None:
        """Make the next `times` calls of `operation` raise JiraError (after their work, if `lose_answer`)."""
        if operation not in OPERATIONS:
            raise ValueError(f"unknown operation {operation!r}")
        self.failures.append(Failure(operation, retryable, status, lose_answer, times))

    def require_fields(self, transition_id: str, *names: str) -> None:
        """Give a transition a screen whose fields are required: refused (400, `errors`) without them."""
        self.required_fields[transition_id] = names

    def refuse_fields(self, transition_id: str, *names: str) -> None:
        """Fields left off a transition's screen: sending them is a 400 naming them."""
        self.refused_fields[transition_id] = names

    def add_issue(
        self,
        key: str,
        *,
        status: Mapping[str, Any] = STATUS_OPEN,
        labels: Sequence[str] = (),
        comments: Sequence[str] = (),
        **fields: Any,
    ) -> None:
        """An issue that exists already (made by a person, or by an earlier create whose answer was lost)."""
        resolution = {"name": "Done"} if status["statusCategory"]["key"] == "done" else None
        self._store_issue(
            key,
            {
                "summary": "existing",
                "project": {"key": key.split("-")[0]},
                "labels": list(labels),
                "status": dict(status),
                "resolution": resolution,
                **fields,
            },
            list(comments),
        )

    def lag_search(self, seconds: float) -> None:
        """Keep issues out of search results until `seconds` after their creation (0: all visible)."""
        self.search_lag = seconds

    def move(self, key: str, project: str) -> str:
        """Move an issue to another project: a new key, the same id; the old key keeps answering."""
        current = self._resolve(key)
        if current is None:
            raise KeyError(key)
        new_key = self._next_key(project)
        issue = self.issues.pop(current)
        issue.key = new_key
        issue.fields["project"] = {"key": project}
        self.issues[new_key] = issue
        self.moved[current] = new_key
        for old, moved_to in self.moved.items():
            if moved_to == current:
                self.moved[old] = new_key
        return new_key

    def issue(self, key_or_id: str) -> MemoryIssue:
        """An issue by current key, old key or id."""
        current = self._resolve(key_or_id)
        if current is None:
            raise KeyError(key_or_id)
        return self.issues[current]

    def resolve(self, key: str, resolution: str = "Fixed", *, duplicates: str | None = None) -> None:
        """Move an issue to Done with a resolution, as FakeJira.resolve; `duplicates` links the issue it duplicates."""
        fields = self.issues[key].fields
        fields["status"] = dict(STATUS_DONE)
        fields["resolution"] = {"name": resolution}
        if duplicates is not None:
            link = ("Duplicate", self.issue(key).id, self.issue(duplicates).id)
            if link not in self.links:
                self.links.append(link)

    def reopen(self, key: str) -> None:
        """Someone works on a done issue again: back to To Do, its resolution cleared."""
        fields = self.issues[key].fields
        fields["status"] = dict(STATUS_OPEN)
        fields["resolution"] = None

    def called(self, operation: str) -> list[tuple[Any, ...]]:
        """The arguments of every call of `operation`, in order."""
        return [arguments for name, arguments in self.calls if name == operation]

    def status_of(self, key: str) -> str:
        return str(self.issues[key].fields["status"]["name"])

    # JiraPort ----------------------------------------------------------------------

    def search(
        self,
        jql: str,
        fields: Sequence[str] = ("status", "resolution", "labels"),
        max_results: int = 100,
        limit: int = 10_000,
    ) -> list[JiraIssue]:
        self._enter("search", jql, tuple(fields))
        found = [i for i in self.issues.values() if i.created_at + self.search_lag <= self.clock()]
        for clause in re.split(r"\s+AND\s+", jql.strip(), flags=re.IGNORECASE):
            if m := re.fullmatch(r'labels\s*=\s*"((?:[^"\\]|\\.)*)"', clause):
                value = re.sub(r"\\(.)", r"\1", m.group(1))
                found = [i for i in found if value in i.fields["labels"]]
            elif m := re.fullmatch(r'project\s*=\s*"?([A-Z][A-Z0-9_]*)"?', clause):
                found = [i for i in found if i.key.startswith(m.group(1) + "-")]
            else:
                raise JiraError(
                    f"Jira search answered HTTP 400: Error in the JQL Query: unsupported clause {clause!r}", status=400
                )
        found.sort(key=lambda i: int(i.id))
        return self._exit("search", [self._view(issue, fields) for issue in found][:limit])

    def create_issue(self, fields: Mapping[str, Any]) -> str:
        self._enter("create_issue", dict(fields))
        return self._exit("create_issue", self._create(fields, ()).key)

    def create_issue_ref(self, fields: Mapping[str, Any], properties: Sequence[Mapping[str, Any]] = ()) -> JiraIssue:
        self._enter("create_issue", dict(fields), [dict(p) for p in properties])
        issue = self._create(fields, properties)
        return self._exit("create_issue", JiraIssue(key=issue.key, id=issue.id))

    def link_issues(self, link_type: str, inward_key: str, outward_key: str) -> None:
        self._enter("link_issues", link_type, inward_key, outward_key)
        if link_type not in LINK_TYPES:
            raise JiraError(
                f"Jira link_issues answered HTTP 404: No issue link type with name '{link_type}' found.", status=404
            )
        inward, outward = self._issue("link_issues", inward_key), self._issue("link_issues", outward_key)
        link = (link_type, inward.id, outward.id)
        if link not in self.links:
            self.links.append(link)
        self._exit("link_issues", None)

    def _create(self, fields: Mapping[str, Any], properties: Sequence[Mapping[str, Any]]) -> MemoryIssue:
        """Validate and store a new issue, as Jira's create does."""
        project = (fields.get("project") or {}).get("key")
        errors = []
        if project not in PROJECTS:
            errors.append("project: valid project is required")
        summary = fields.get("summary")
        if not isinstance(summary, str) or not summary.strip():
            errors.append("summary: You must specify a summary of the issue.")
        elif len(summary) > 255:
            errors.append("summary: Summary must be less than 255 characters.")
        if any(not isinstance(label, str) or re.search(r"\s", label) for label in fields.get("labels") or []):
            errors.append("labels: The label can't contain spaces.")
        if "description" in fields and not self._text_ok(fields["description"]):
            errors.append(
                "description: Operation value must be "
                + ("an Atlassian Document" if self.flavour == CLOUD else "a string")
            )
        errors.extend(property_errors(list(properties)))
        if errors:
            raise JiraError(f"Jira create_issue answered HTTP 400: {'; '.join(errors)}", status=400)
        issue = self._store_issue(
            self._next_key(str(project)),
            {**fields, "labels": list(fields.get("labels") or []), "status": dict(STATUS_OPEN), "resolution": None},
            created_at=self.clock(),
        )
        issue.properties = {p["key"]: p["value"] for p in properties}
        return issue

    def get_issue(self, key: str, fields: Sequence[str] = ("status", "resolution", "labels")) -> JiraIssue | None:
        self._enter("get_issue", key, tuple(fields))
        current = self._resolve(key)
        issue = self.issues[current] if current is not None else None
        return self._exit("get_issue", self._view(issue, fields) if issue is not None else None)

    def transitions(self, key: str) -> list[dict[str, Any]]:
        self._enter("transitions", key)
        issue = self._issue("get_transitions", key)
        return self._exit("transitions", [dict(t) for t in self.workflow.get(issue.fields["status"]["name"], [])])

    def transition(self, key: str, transition_id: str, fields: Mapping[str, Any] | None = None) -> None:
        self._enter("transition", key, transition_id, dict(fields or {}))
        issue = self._issue("transition", key)
        chosen = next(
            (t for t in self.workflow.get(issue.fields["status"]["name"], []) if t["id"] == transition_id), None
        )
        if chosen is None:
            raise JiraError(
                f"Jira transition answered HTTP 400: Transition id '{transition_id}' is not valid for this issue.",
                status=400,
            )
        given = fields or {}
        missing = [name for name in self.required_fields.get(transition_id, ()) if name not in given]
        off_screen = [name for name in self.refused_fields.get(transition_id, ()) if name in given]
        if missing or off_screen:
            errors = {name: f"{name} is required." for name in missing}
            errors.update({name: f"{name} is not on the screen." for name in off_screen})
            raise JiraError(
                "Jira transition answered HTTP 400: " + "; ".join(f"{k}: {v}" for k, v in errors.items()),
                status=400,
                field_errors=errors,
            )
        if transition_id not in self.ignored_transitions:
            issue.fields["status"] = dict(chosen["to"])
            done = chosen["to"]["statusCategory"]["key"] == "done"
            issue.fields["resolution"] = (given.get("resolution") or {"name": "Done"}) if done else None
        self._exit("transition", None)

    def add_comment(self, key: str, text: str) -> None:
        self._enter("add_comment", key, text)
        self._issue("add_comment", key).comments.append(self.text(text))
        self._exit("add_comment", None)

    def recent_comments(self, key: str, limit: int = 20) -> list[str]:
        self._enter("recent_comments", key, limit)
        bodies = list(reversed(self._issue("get_comments", key).comments))[:limit]
        return self._exit("recent_comments", [adf_text(body) for body in bodies])

    def add_remote_link(self, key: str, global_id: str, url: str, title: str, summary: str = "") -> None:
        self._enter("add_remote_link", key, global_id, url, title, summary)
        issue = self._issue("add_remote_link", key)
        if not title:
            raise JiraError("Jira add_remote_link answered HTTP 400: title: 'title' is required.", status=400)
        issue.remote_links[global_id] = {"url": url, "title": title, "summary": summary}
        self._exit("add_remote_link", None)

    def issue_url(self, key: str) -> str:
        return f"{self.base_url}/browse/{key}"

    def text(self, value: str) -> Any:
        return adf(value) if self.flavour == CLOUD else wiki_markup(value)

    # Internals ---------------------------------------------------------------------

    def _enter(self, operation: str, *arguments: Any) -> None:
        """Record the call; raise at once for a failure that happens before Jira does the work."""
        self.calls.append((operation, arguments))
        self._meet_rate_limits(operation, arguments)
        failure = self._pending(operation)
        if failure is not None and not failure.lose_answer:
            failure.times -= 1
            raise JiraError(
                f"Jira {operation} answered HTTP {failure.status or 500}: injected",
                status=failure.status or 500,
                retryable=failure.retryable,
            )

    def _meet_rate_limits(self, operation: str, arguments: tuple[Any, ...]) -> None:
        """Raise the 429 JiraClient would, for a Cloud limit switched on that matches this call's request."""
        name, method, template = REQUESTS[operation]
        api = "/rest/api/3" if self.flavour == CLOUD else "/rest/api/2"
        if operation == "search" and self.flavour != CLOUD:
            template = "/search"
        path = api + template.format(key=arguments[0] if "{key}" in template else "")
        limit = self.take_limit(method, path)
        if limit is None:
            return
        wait = limit.retry_after if limit.retry_after is not None else limit.reset_in
        scope = rate_limits.scope_of(limit.reason, method, path, name)
        raise JiraRateLimited(
            f"Jira {name} rate limited ({limit.reason}; holding back {scope.key})",
            reason=limit.reason,
            scope=scope,
            retry_after=float(wait) if wait is not None else None,
        )

    def _exit(self, operation: str, result: Any) -> Any:
        """Return the result, unless the answer is to be lost: then the work stands and the caller times out."""
        failure = self._pending(operation)
        if failure is not None and failure.lose_answer:
            failure.times -= 1
            raise JiraError(f"Jira {operation} timed out after 10.0s", retryable=True)
        return result

    def _pending(self, operation: str) -> Failure | None:
        return next((f for f in self.failures if f.operation == operation and f.times > 0), None)

    def _issue(self, operation: str, key: str) -> MemoryIssue:
        current = self._resolve(key)
        issue = self.issues.get(current) if current is not None else None
        if issue is None:
            raise JiraError(
                f"Jira {operation} answered HTTP 404: Issue does not exist or you do not have permission to see it.",
                status=404,
            )
        return issue

    def _text_ok(self, value: Any) -> bool:
        return (
            isinstance(value, dict) and value.get("type") == "doc" if self.flavour == CLOUD else isinstance(value, str)
        )

    def _view(self, issue: MemoryIssue, fields: Sequence[str]) -> JiraIssue:
        """Only the requested fields, read by the client's own parser so both shapes stay alike."""
        wanted = set(fields)
        every = {**issue.fields, "issuelinks": self._issue_links(issue.id)}
        shown = every if "*all" in wanted else {k: v for k, v in every.items() if k in wanted}
        return JiraClient._issue({"id": issue.id, "key": issue.key, "fields": shown})

    def _issue_links(self, issue_id: str) -> list[dict[str, Any]]:
        """The `issuelinks` field as Jira shows it: the other issue under `outwardIssue` or `inwardIssue`."""
        by_id = {i.id: i for i in self.issues.values()}
        shown = []
        for name, inward, outward in self.links:
            kind = {"name": name, "inward": LINK_TYPES[name][0], "outward": LINK_TYPES[name][1]}
            for side, mine, other in (("outwardIssue", inward, outward), ("inwardIssue", outward, inward)):
                if mine == issue_id:
                    linked = by_id[other]
                    status = {"status": dict(linked.fields["status"])}
                    shown.append({"type": kind, side: {"id": other, "key": linked.key, "fields": status}})
        return shown

    def _store_issue(
        self, key: str, fields: dict[str, Any], comments: Sequence[Any] = (), created_at: float = 0.0
    ) -> MemoryIssue:
        issue = MemoryIssue(key, fields, list(comments), id=str(self._next_id), created_at=created_at)
        self._next_id += 1
        self.issues[key] = issue
        return issue

    def _next_key(self, project: str) -> str:
        """Keys count per project, moved-away keys included (Jira never reuses a key)."""
        used = [k for k in [*self.issues, *self.moved] if k.split("-")[0] == project]
        return f"{project}-{len(used) + 1}"

    def _resolve(self, key_or_id: str) -> str | None:
        """The current key of an issue named by its key, an old key, or its id."""
        if key_or_id in self.issues:
            return key_or_id
        if key_or_id in self.moved:
            return self.moved[key_or_id]
        return next((i.key for i in self.issues.values() if i.id == key_or_id), None)
