"""Linking problems to Jira issues: find or create, link back, comment without spam, read conclusions.

Identity lives in our store (problem -> Jira key, unique in the database), never in a
JQL label search. The one search we make is the crash-safe create: every issue we
create carries a marker label naming the problem, and a retried create looks for that
marker first, so a create whose answer was lost does not make a twin.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from bridge.domain.outcomes import IssueReading
from bridge.domain.problems import JiraTarget
from bridge.domain.suspects import suspect_line
from jira_link.client import JiraError, JiraIssue, jql_string
from jira_link.port import JiraPort

if TYPE_CHECKING:
    from bridge.config import Settings

log = logging.getLogger(__name__)

SUMMARY_LIMIT = 255
DESCRIPTION_LIMIT = 30_000


@dataclass(frozen=True)
class LinkOptions:
    """How this bridge marks and links its issues."""

    marker_prefix: str
    public_url: str
    conclusion_field: str | None = None
    conclusion_marker: str = "Conclusion:"
    # How long after a create a retry keeps searching (Jira's index lags) before it creates again.
    search_settle_seconds: float = 30.0

    @classmethod
    def from_settings(cls, settings: Settings) -> LinkOptions:
        return cls(
            marker_prefix=settings.jira_marker_prefix,
            public_url=settings.public_url,
            conclusion_field=settings.jira_conclusion_field,
            conclusion_marker=settings.jira_conclusion_marker,
            search_settle_seconds=settings.jira_search_settle_seconds,
        )


def marker_label(options: LinkOptions, problem_id: int) -> str:
    """The idempotency label on issues the bridge creates for a problem."""
    return f"{options.marker_prefix}-problem-{problem_id}"


def problem_url(options: LinkOptions, problem_id: int) -> str:
    return f"{options.public_url.rstrip('/')}/api/v1/problems/{problem_id}"


def _truncate(text: str, limit: int, what: str, problem_id: int) -> str:
    if len(text) <= limit:
        return text
    log.warning("Jira %s truncated", what, extra={"problem_id": problem_id, "limit": limit})
    return text[: limit - 1] + "…"


def _body(jira: JiraPort, text: str, limit: int, problem_id: int) -> Any:
    """The description body within `limit`, counted after Data Center's escaping (which can make text longer)."""
    text = _truncate(text, limit, "description", problem_id)
    body = jira.text(text)
    while isinstance(body, str) and len(body) > limit:
        shorter = min(len(text) - 1, len(text) * limit // len(body))
        text = _truncate(text, shorter, "escaped description", problem_id)
        body = jira.text(text)
    return body


def issue_fields(
    jira: JiraPort, problem: Mapping[str, Any], target: JiraTarget, options: LinkOptions, priority: str | None
) -> dict[str, Any]:
    """The create-issue fields for a problem under a rule's Jira target."""
    problem_id = problem["id"]
    suspected = suspect_line(problem.get("suspects") or [])
    description = (
        (problem["description"] or problem["summary"])
        + (f"\n\n{suspected}" if suspected else "")
        + f"\n\nincident-bridge problem {problem_id} ({problem['problem_key']}): {problem_url(options, problem_id)}"
    )
    fields: dict[str, Any] = {
        "project": {"key": target.project},
        "issuetype": {"name": target.issue_type},
        "summary": _truncate(problem["summary"].replace("\n", " "), SUMMARY_LIMIT, "summary", problem_id),
        "description": _body(jira, description, DESCRIPTION_LIMIT, problem_id),
        "labels": [*target.labels, marker_label(options, problem_id)],
    }
    if target.components:
        fields["components"] = [{"name": name} for name in target.components]
    if priority is not None and priority in target.priority_map:
        fields["priority"] = {"name": target.priority_map[priority]}
    return fields


def find_or_create_issue(
    jira: JiraPort, problem: Mapping[str, Any], target: JiraTarget, options: LinkOptions, priority: str | None
) -> str:
    """The key of the problem's issue: found by its marker (a retried create), else created.

    Raises:
        JiraError: from the search or the create.
    """
    marker = marker_label(options, problem["id"])
    existing = jira.search(f"project = {target.project} AND labels = {jql_string(marker)}", fields=("labels",))
    if existing:
        log.info("found issue created earlier for problem", extra={"problem_id": problem["id"], "key": existing[0].key})
        return existing[0].key
    return jira.create_issue(issue_fields(jira, problem, target, options, priority))


def link_back(jira: JiraPort, key: str, problem: Mapping[str, Any], options: LinkOptions) -> None:
    """A remote link from the issue to the problem; the globalId makes a repeat an update."""
    jira.add_remote_link(
        key,
        global_id=f"{options.marker_prefix}:problem:{problem['id']}",
        url=problem_url(options, problem["id"]),
        title=f"incident-bridge problem {problem['id']}",
        summary=problem["summary"][:255],
    )


def comment_unless_repeated(jira: JiraPort, key: str, text: str) -> bool:
    """Post a comment unless the issue's newest comment already says exactly this.

    Returns whether a comment was posted. Also makes a job retried after a crash between
    "posted" and "recorded" harmless.
    """
    if jira.recent_comments(key, limit=1) == [text]:
        return False
    jira.add_comment(key, text)
    return True


def conclusion_of(issue: JiraIssue, options: LinkOptions, comments: list[str] | None = None) -> str | None:
    """What developers concluded: status and resolution, plus the configured field or marked comment.

    `comments` are newest first; the newest one starting with the marker wins.
    """
    parts = []
    if issue.status:
        parts.append(f"Status: {issue.status}")
    if issue.resolution:
        parts.append(f"Resolution: {issue.resolution}")
    detail = None
    if options.conclusion_field and issue.fields:
        value = issue.fields.get(options.conclusion_field)
        if isinstance(value, str) and value.strip():
            detail = value.strip()
    if detail is None and comments:
        for comment in comments:
            if comment.strip().startswith(options.conclusion_marker):
                detail = comment.strip()[len(options.conclusion_marker) :].strip()
                break
    if detail:
        parts.append(detail)
    return "\n".join(parts) if parts else None


def conclusion_detail(conclusion: str | None) -> str | None:
    """What developers wrote in a conclusion (`conclusion_of`), without its Status and Resolution lines.

    Tickets hear this text: a status moving from To Do to In Progress is nothing a caller needs.
    """
    lines = (conclusion or "").split("\n")
    while lines and lines[0].startswith(("Status: ", "Resolution: ")):
        lines.pop(0)
    return "\n".join(lines).strip() or None


def outward_links(issue: JiraIssue) -> tuple[tuple[str, str], ...]:
    """(link type name, issue key) of each outward link in the issue's `issuelinks` field.

    Jira lists a link from the issue's side: an outward one ("duplicates" for the Duplicate
    type) carries `outwardIssue`, an inward one ("is duplicated by") `inwardIssue`.
    """
    links = (issue.fields or {}).get("issuelinks")
    found = []
    for link in links if isinstance(links, list) else ():
        if not isinstance(link, Mapping):
            continue
        kind = link.get("type")
        target = link.get("outwardIssue")
        name = kind.get("name") if isinstance(kind, Mapping) else None
        key = target.get("key") if isinstance(target, Mapping) else None
        if isinstance(name, str) and isinstance(key, str):
            found.append((name, key))
    return tuple(found)


def reading_of(key: str, issue: JiraIssue, options: LinkOptions, comments: list[str] | None = None) -> IssueReading:
    """What the bridge keeps of an issue it syncs: status, resolution, conclusion and outward links.

    Under `key`, the key the bridge holds (an answer for a moved issue may spell it differently).
    """
    return IssueReading(
        key=key,
        status=issue.status,
        status_category=issue.status_category,
        resolution=issue.resolution,
        conclusion=conclusion_of(issue, options, comments),
        outward_links=outward_links(issue),
    )


def move_issue(
    jira: JiraPort,
    key: str,
    *,
    name: str | None,
    to_categories: tuple[str, ...],
    transition_fields: Mapping[str, Mapping[str, Any]] | None = None,
) -> str | None:
    """Transition an issue by name, or to the first status in one of `to_categories`.

    Returns the transition taken, or None when the issue is already in such a status.
    `transition_fields` (transition name -> fields, from rules.yaml) fills the transition's
    screen. Checks the result, because Jira answers 204 even when a workflow post-function
    leaves the issue elsewhere.

    Raises:
        JiraError: no fitting transition or a screen field missing (not retryable), or a failed call.
    """
    issue = jira.get_issue(key, fields=("status",))
    if issue is None:
        raise JiraError(f"Jira issue {key} does not exist", status=404)
    if issue.status_category in to_categories:
        return None
    options = jira.transitions(key)
    if name is not None:
        chosen = next((t for t in options if t.get("name", "").lower() == name.lower()), None)
    else:
        chosen = next(
            (t for t in options if ((t.get("to") or {}).get("statusCategory") or {}).get("key") in to_categories), None
        )
    if chosen is None:
        wanted = f"named {name!r}" if name else f"to a {'/'.join(to_categories)} status"
        available = ", ".join(t.get("name", "?") for t in options) or "none"
        raise JiraError(f"no transition {wanted} from {issue.status!r} on {key} (available: {available})")
    chosen_name = str(chosen.get("name"))
    fields = _fields_for(transition_fields or {}, chosen_name)
    try:
        jira.transition(key, str(chosen["id"]), fields)
    except JiraError as exc:
        if exc.status != 400 or not exc.field_errors:
            raise
        raise JiraError(
            _fields_refused(chosen_name, key, exc.field_errors, fields or {}),
            status=exc.status,
            field_errors=exc.field_errors,
        ) from exc
    after = jira.get_issue(key, fields=("status",))
    if after is None or after.status_category not in to_categories:
        raise JiraError(
            f"{key} is in {after.status if after else '?'!r} after transition {chosen_name!r}", retryable=True
        )
    return chosen_name


def _fields_refused(name: str, key: str, errors: Mapping[str, str], sent: Mapping[str, Any]) -> str:
    """Say what to fix: Jira's answer names the fields, not where the bridge takes them from.

    A field we did not send is one the screen requires; one we sent was refused (not on the
    screen, or a bad value), and Jira's reason is kept.
    """
    missing = sorted(f for f in errors if f not in sent)
    refused = sorted(f for f in errors if f in sent)
    parts = []
    if missing:
        parts.append(f"needs fields: {', '.join(missing)}; set them under jira.transition_fields in rules.yaml")
    if refused:
        reasons = ", ".join(f"{f} ({errors[f]})" for f in refused)
        parts.append(f"refused fields: {reasons}; check jira.transition_fields in rules.yaml")
    return f"transition {name!r} on {key} " + "; ".join(parts)


def _fields_for(transition_fields: Mapping[str, Mapping[str, Any]], name: str) -> dict[str, Any] | None:
    """The configured fields of a transition, matched by name in any case, as transitions are chosen."""
    return next((dict(f) for n, f in transition_fields.items() if n.lower() == name.lower()), None)
