"""Jira REST client on `requests`: Cloud (REST v3, ADF) and Data Center (REST v2).

Every call has a timeout and TLS verification stays on. Failures raise `JiraError`,
classified as retryable (429, 5xx, timeouts, connection errors) or not, with the
server's `Retry-After` when it gives one. Credentials never appear in messages.
"""

from __future__ import annotations

import base64
import html
import logging
import re
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import requests

from bridge.validation import url_segment
from jira_link import rate_limits
from jira_link.rate_limits import Budget, RateLimitScope

if TYPE_CHECKING:
    from bridge.config import Settings

log = logging.getLogger(__name__)

CLOUD = "cloud"
DATACENTER = "datacenter"
FLAVOURS = (CLOUD, DATACENTER)


class JiraError(Exception):
    """A Jira call failed; `retryable` says whether trying again later can help.

    `field_errors` is Jira's `errors` map (field id -> message) when it named fields at fault,
    so a caller can say which fields to supply.
    """

    def __init__(
        self,
        message: str,
        *,
        status: int | None = None,
        retryable: bool = False,
        retry_after: float | None = None,
        field_errors: Mapping[str, str] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.retryable = retryable
        self.retry_after = retry_after
        self.field_errors = dict(field_errors or {})


class JiraRateLimited(JiraError):
    """Jira answered 429: `scope` is what to hold back (quota, one endpoint, one issue's writes), `reason`
    is Jira's `RateLimit-Reason` (None when absent), `retry_after` the wait in seconds
    (Retry-After, else X-RateLimit-Reset; None: back off)."""

    def __init__(self, message: str, *, reason: str | None, scope: RateLimitScope, retry_after: float | None) -> None:
        super().__init__(message, status=429, retryable=True, retry_after=retry_after)
        self.reason = reason
        self.scope = scope


def adf(text: str) -> dict[str, Any]:
    """Plain text as an Atlassian Document Format document, one paragraph per line."""
    paragraphs = [
        {"type": "paragraph", "content": [{"type": "text", "text": line}]}
        if line
        else {"type": "paragraph", "content": []}
        for line in text.split("\n")
    ]
    return {"type": "doc", "version": 1, "content": paragraphs}


# Characters Jira's wiki renderer lets a backslash escape (atlassian-renderer's BackslashEscapeRendererComponent).
WIKI_BACKSLASH_ESCAPED = frozenset("![]^~+?%{}()*_-|@")
# Characters written as numeric entities: a backslash (`\\` is a forced line break, `\x` an escape),
# `&` (so text that looks like an entity stays literal) and `#` (a numbered list at a line start).
WIKI_ENTITIES = {"\\": "&#92;", "&": "&amp;", "#": "&#35;"}
_WIKI_BLOCK_START = re.compile(r"^(\s*(?:h[1-6]|bq))\.", re.MULTILINE)
_WIKI_UNESCAPE = re.compile(r"\\([" + re.escape("".join(sorted(WIKI_BACKSLASH_ESCAPED))) + r"])")


def wiki_markup(text: str) -> str:
    """Plain text as Jira wiki markup (Data Center, REST v2) that renders as exactly this text.

    Alert text is sender-controlled, and on Data Center a description or comment is wiki
    markup, so a label could otherwise inject: links `[x|http://evil]`, mentions `[~user]`,
    macros `{code}` `{html}` `{panel}`, images and attachments `!image.png!`, emphasis
    `*bold*` `_it_` `-strike-` `+under+` `^sup^` `~sub~` `??cite??`, table cells `|a|`,
    emoticons `(y)` `(!)`, lists `* ` `- ` `# `, headings `h1.`, quotes `bq.`, rules
    `----` and forced line breaks `\\`. Every character the renderer lets a backslash
    escape gets one; a backslash, `&` and `#` become numeric entities; the dot of a
    line-starting `h1.`-`h6.` or `bq.` becomes `&#46;`. Newlines stay newlines.
    `wiki_plain_text` reads it back.
    """
    escaped = "".join(WIKI_ENTITIES.get(ch) or (f"\\{ch}" if ch in WIKI_BACKSLASH_ESCAPED else ch) for ch in text)
    return _WIKI_BLOCK_START.sub(r"\1&#46;", escaped)


def wiki_plain_text(markup: str) -> str:
    """The text of a wiki markup body: backslash escapes and entities undone (`wiki_markup` reversed)."""
    return html.unescape(_WIKI_UNESCAPE.sub(r"\1", markup))


def adf_text(document: Any) -> str:
    """The plain text of an ADF document, or of the wiki markup string Data Center sends."""
    if document is None:
        return ""
    if isinstance(document, str):
        return wiki_plain_text(document)
    lines = []
    for block in document.get("content", []):
        lines.append("".join(node.get("text", "") for node in block.get("content", []) if isinstance(node, dict)))
    return "\n".join(lines)


def jql_string(value: str) -> str:
    """A JQL string literal: quoted, with backslashes and quotes escaped."""
    return '"' + value.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After")
    try:
        return max(0.0, float(value)) if value is not None else None
    except ValueError:
        return None


@dataclass(frozen=True)
class JiraIssue:
    """The fields of an issue the bridge reads."""

    key: str
    status: str | None = None
    status_category: str | None = None
    resolution: str | None = None
    labels: tuple[str, ...] = ()
    fields: Mapping[str, Any] | None = None
    # Jira's immutable id: the key changes when the issue moves, the id never does.
    id: str | None = None

    @property
    def numeric_id(self) -> int:
        """The id as a number, for "oldest first" (Jira hands out ids in increasing order); unknown last."""
        return int(self.id) if self.id is not None and self.id.isdigit() else 2**63


# Every REST call the client makes, by the name its metrics carry.
OPERATIONS = (
    "search",
    "get_transitions",
    "transition",
    "get_issue",
    "create_issue",
    "add_comment",
    "get_comments",
    "add_remote_link",
    "link_issues",
)


class JiraClient:
    """One Jira site. Build with `from_settings`; tests pass a session and a fake server URL."""

    def __init__(
        self,
        session: requests.Session,
        base_url: str,
        *,
        flavour: str = CLOUD,
        authorization: str,
        timeout: float = 10.0,
        observe: Callable[[str, str, float], None] | None = None,
        observe_budget: Callable[[Budget], None] | None = None,
    ) -> None:
        if flavour not in FLAVOURS:
            raise ValueError(f"unknown Jira flavour {flavour!r}; expected one of {', '.join(FLAVOURS)}")
        self.session = session
        self.base_url = base_url.rstrip("/")
        self.flavour = flavour
        self.timeout = timeout
        self._authorization = authorization
        # Called with (operation, outcome, seconds) after every call: the bridge's metrics.
        self._observe = observe or (lambda operation, outcome, seconds: None)
        # Called with the X-RateLimit-* headers of every answer that carries them: the shared budget.
        self._observe_budget = observe_budget or (lambda budget: None)
        self.api = "/rest/api/3" if flavour == CLOUD else "/rest/api/2"

    @classmethod
    def basic(cls, session: requests.Session, base_url: str, email: str, api_token: str, **kwargs: Any) -> JiraClient:
        """Jira Cloud: basic auth with an account email and API token."""
        token = base64.b64encode(f"{email}:{api_token}".encode()).decode()
        return cls(session, base_url, flavour=CLOUD, authorization=f"Basic {token}", **kwargs)

    @classmethod
    def bearer(cls, session: requests.Session, base_url: str, personal_access_token: str, **kwargs: Any) -> JiraClient:
        """Jira Data Center: a personal access token sent as Bearer."""
        return cls(session, base_url, flavour=DATACENTER, authorization=f"Bearer {personal_access_token}", **kwargs)

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        observe: Callable[[str, str, float], None] | None = None,
        session: requests.Session | None = None,
        observe_budget: Callable[[Budget], None] | None = None,
    ) -> JiraClient | None:
        """The configured Jira, or None when BRIDGE_JIRA_URL is unset."""
        if settings.jira_url is None:
            return None
        session = session or requests.Session()
        options = {"timeout": settings.jira_timeout_seconds, "observe": observe, "observe_budget": observe_budget}
        if settings.jira_flavour == DATACENTER:
            assert settings.jira_pat is not None
            return cls.bearer(session, settings.jira_url, settings.jira_pat.value, **options)
        assert settings.jira_email is not None and settings.jira_api_token is not None
        return cls.basic(session, settings.jira_url, settings.jira_email, settings.jira_api_token.value, **options)

    def __repr__(self) -> str:
        return f"JiraClient({self.base_url!r}, flavour={self.flavour!r})"

    def issue_url(self, key: str) -> str:
        return f"{self.base_url}/browse/{url_segment(key)}"

    def _issue_path(self, key: str, *rest: str) -> str:
        """The REST path of an issue (by key or id), percent-encoded: a key is one segment, whatever it holds."""
        return "/".join([f"{self.api}/issue", url_segment(key), *rest])

    def text(self, value: str) -> Any:
        """Description and comment bodies in the flavour's format: ADF, or escaped wiki markup on Data Center."""
        return adf(value) if self.flavour == CLOUD else wiki_markup(value)

    def _request(
        self,
        operation: str,
        method: str,
        path: str,
        *,
        json: Any = None,
        params: Mapping[str, Any] | None = None,
        not_found_ok: bool = False,
    ) -> requests.Response | None:
        headers = {"Authorization": self._authorization, "Accept": "application/json"}
        started = time.monotonic()
        try:
            response = self.session.request(
                method, self.base_url + path, json=json, params=params, headers=headers, timeout=self.timeout
            )
        except requests.Timeout as exc:
            self._observe(operation, "timeout", time.monotonic() - started)
            raise JiraError(f"Jira {operation} timed out after {self.timeout}s", retryable=True) from exc
        except requests.ConnectionError as exc:
            self._observe(operation, "connection_error", time.monotonic() - started)
            raise JiraError(f"Jira {operation}: cannot connect to {self.base_url}", retryable=True) from exc
        status = response.status_code
        self._observe(operation, "success" if status < 400 else f"http_{status}", time.monotonic() - started)
        budget = rate_limits.parse_budget(response.headers)
        if budget.told:
            self._observe_budget(budget)
        if status == 429:
            reason = rate_limits.clean_reason(response.headers.get(rate_limits.REASON_HEADER))
            scope = rate_limits.scope_of(reason, method, path, operation)
            raise JiraRateLimited(
                f"Jira {operation} rate limited ({reason or 'no RateLimit-Reason'}; holding back {scope.key})",
                reason=reason,
                scope=scope,
                retry_after=rate_limits.retry_after_seconds(response.headers, datetime.now(UTC)),
            )
        if status == 404 and not_found_ok:
            return None
        if status >= 400:
            raise JiraError(
                f"Jira {operation} answered HTTP {status}: {self._error_text(response)}",
                status=status,
                retryable=status in (408, 429) or status >= 500,
                retry_after=_retry_after(response),
                field_errors=self._field_errors(response),
            )
        return response

    @staticmethod
    def _field_errors(response: requests.Response) -> dict[str, str]:
        try:
            errors = response.json().get("errors")
        except (ValueError, AttributeError):
            return {}
        return {str(k): str(v) for k, v in errors.items()} if isinstance(errors, Mapping) else {}

    @staticmethod
    def _error_text(response: requests.Response) -> str:
        try:
            body = response.json()
        except ValueError:
            return response.text[:200]
        messages = list(body.get("errorMessages") or []) + [f"{k}: {v}" for k, v in (body.get("errors") or {}).items()]
        return "; ".join(messages)[:500] or response.text[:200]

    # Operations ------------------------------------------------------------------

    def search(
        self,
        jql: str,
        fields: Sequence[str] = ("status", "resolution", "labels"),
        max_results: int = 100,
        limit: int = 10_000,
    ) -> list[JiraIssue]:
        """Issues matching a bounded JQL query, every page up to `limit` issues.

        Cloud: GET /rest/api/3/search/jql, paged by nextPageToken (the old /search is gone, 410).
        Data Center: GET /rest/api/2/search, paged by startAt.
        """
        issues: list[JiraIssue] = []
        params: dict[str, Any] = {"jql": jql, "fields": ",".join(fields), "maxResults": max_results}
        path = f"{self.api}/search/jql" if self.flavour == CLOUD else f"{self.api}/search"
        while len(issues) < limit:
            response = self._request("search", "GET", path, params=params)
            assert response is not None
            body = response.json()
            page = body.get("issues", [])
            issues.extend(self._issue(item) for item in page)
            if self.flavour == CLOUD:
                token = body.get("nextPageToken")
                if body.get("isLast", True) or not token:
                    break
                params["nextPageToken"] = token
            else:
                start = int(body.get("startAt", 0)) + len(page)
                if not page or start >= int(body.get("total", 0)):
                    break
                params["startAt"] = start
        return issues[:limit]

    def transitions(self, key: str) -> list[dict[str, Any]]:
        """Transitions valid from the issue's current status (others are simply absent)."""
        response = self._request("get_transitions", "GET", self._issue_path(key, "transitions"))
        assert response is not None
        return list(response.json().get("transitions", []))

    def transition(self, key: str, transition_id: str, fields: Mapping[str, Any] | None = None) -> None:
        """POST /rest/api/{2,3}/issue/{key}/transitions, with the transition screen's `fields`; 204 on success.

        A screen's required field left out is a 400 whose `errors` name the fields (`JiraError.field_errors`).
        https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-issueidorkey-transitions-post
        """
        body: dict[str, Any] = {"transition": {"id": transition_id}}
        if fields:
            body["fields"] = dict(fields)
        self._request("transition", "POST", self._issue_path(key, "transitions"), json=body)

    def get_issue(self, key: str, fields: Sequence[str] = ("status", "resolution", "labels")) -> JiraIssue | None:
        """One issue, or None when it does not exist (or is not visible to us)."""
        response = self._request(
            "get_issue", "GET", self._issue_path(key), params={"fields": ",".join(fields)}, not_found_ok=True
        )
        return self._issue(response.json()) if response is not None else None

    def create_issue(self, fields: Mapping[str, Any]) -> str:
        """Create an issue; returns its key. POST /rest/api/{2,3}/issue."""
        response = self._request("create_issue", "POST", f"{self.api}/issue", json={"fields": dict(fields)})
        assert response is not None
        return str(response.json()["key"])

    def create_issue_ref(self, fields: Mapping[str, Any], properties: Sequence[Mapping[str, Any]] = ()) -> JiraIssue:
        """Create an issue with entity properties set in the same request; returns its key and id.

        POST /rest/api/{2,3}/issue with `properties: [{key, value}]` beside `fields`.
        https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issues/#api-rest-api-3-issue-post
        """
        body: dict[str, Any] = {"fields": dict(fields)}
        if properties:
            body["properties"] = [dict(p) for p in properties]
        response = self._request("create_issue", "POST", f"{self.api}/issue", json=body)
        assert response is not None
        created = response.json()
        return JiraIssue(key=str(created["key"]), id=str(created["id"]))

    def link_issues(self, link_type: str, inward_key: str, outward_key: str) -> None:
        """POST /rest/api/{2,3}/issueLink: `inward_key` <outward description> `outward_key`.

        For "Duplicate" (outward "duplicates", inward "is duplicated by") the inward issue is
        the one that duplicates the outward one, as Jira's REST API has it. A link that exists
        already is answered 201 and not doubled.
        https://developer.atlassian.com/cloud/jira/platform/rest/v3/api-group-issue-links/#api-rest-api-3-issuelink-post
        """
        body = {"type": {"name": link_type}, "inwardIssue": {"key": inward_key}, "outwardIssue": {"key": outward_key}}
        self._request("link_issues", "POST", f"{self.api}/issueLink", json=body)

    def add_comment(self, key: str, text: str) -> None:
        """POST /rest/api/{2,3}/issue/{key}/comment."""
        self._request("add_comment", "POST", self._issue_path(key, "comment"), json={"body": self.text(text)})

    def recent_comments(self, key: str, limit: int = 20) -> list[str]:
        """The plain text of the newest comments, newest first."""
        response = self._request(
            "get_comments",
            "GET",
            self._issue_path(key, "comment"),
            params={"orderBy": "-created", "maxResults": limit},
        )
        assert response is not None
        return [adf_text(comment.get("body")) for comment in response.json().get("comments", [])]

    def add_remote_link(self, key: str, global_id: str, url: str, title: str, summary: str = "") -> None:
        """Create or update (same globalId) a link from the issue back to us."""
        body = {
            "globalId": global_id,
            "application": {"type": "org.incident-bridge", "name": "incident-bridge"},
            "relationship": "root cause of",
            "object": {"url": url, "title": title, "summary": summary},
        }
        self._request("add_remote_link", "POST", self._issue_path(key, "remotelink"), json=body)

    @staticmethod
    def _issue(item: Mapping[str, Any]) -> JiraIssue:
        fields = item.get("fields") or {}
        status = fields.get("status") or {}
        resolution = fields.get("resolution") or {}
        return JiraIssue(
            key=str(item.get("key", "")),
            status=status.get("name"),
            status_category=(status.get("statusCategory") or {}).get("key"),
            resolution=resolution.get("name") if isinstance(resolution, Mapping) else None,
            labels=tuple(fields.get("labels") or ()),
            fields=fields,
            id=str(item["id"]) if item.get("id") is not None else None,
        )
