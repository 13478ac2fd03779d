"""What the bridge asks of Jira: the narrow port the linker, the worker and the services use.

`JiraClient` (REST over HTTP) is the production implementation; unit tests pass an
in-memory one (tests/jira_memory.py). Signatures are JiraClient's own, so either can
be handed to the linker; tests/unit/test_jira_port.py checks both stay in step.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Protocol

from jira_link.client import JiraIssue


class JiraPort(Protocol):
    """The Jira calls the bridge makes. Every call raises `JiraError` when Jira fails."""

    def search(
        self, jql: str, fields: Sequence[str] = ..., max_results: int = ..., limit: int = ...
    ) -> list[JiraIssue]:
        """Issues matching a bounded JQL query, with the requested fields only."""
        ...

    def create_issue(self, fields: Mapping[str, Any]) -> str:
        """Create an issue; returns its key."""
        ...

    def create_issue_ref(self, fields: Mapping[str, Any], properties: Sequence[Mapping[str, Any]] = ...) -> JiraIssue:
        """Create an issue with entity properties (`[{key, value}]`) in the same request; returns key and id."""
        ...

    def link_issues(self, link_type: str, inward_key: str, outward_key: str) -> None:
        """Link two issues (`inward_key` duplicates `outward_key` for "Duplicate"); an existing link is not doubled."""
        ...

    def get_issue(self, key: str, fields: Sequence[str] = ...) -> JiraIssue | None:
        """One issue by key or id, or None when it does not exist (or is not visible).

        A moved issue answers under its old key too, with its new key in `JiraIssue.key`.
        """
        ...

    def transitions(self, key: str) -> list[dict[str, Any]]:
        """Transitions valid from the issue's current status, each with `id`, `name` and `to` (a status)."""
        ...

    def transition(self, key: str, transition_id: str, fields: Mapping[str, Any] | None = ...) -> None:
        """Apply a transition with the screen's `fields`; Jira's answer does not prove where the issue ended up.

        A required field left out raises a `JiraError` whose `field_errors` name it.
        """
        ...

    def add_comment(self, key: str, text: str) -> None:
        """Add a plain-text comment."""
        ...

    def recent_comments(self, key: str, limit: int = ...) -> list[str]:
        """The plain text of the newest comments, newest first."""
        ...

    def add_remote_link(self, key: str, global_id: str, url: str, title: str, summary: str = ...) -> None:
        """Create a remote link, or update the one with the same `global_id`."""
        ...

    def issue_url(self, key: str) -> str:
        """The issue's page, for people."""
        ...

    def text(self, value: str) -> Any:
        """A description or comment body in the site's format (ADF on Cloud, a string on Data Center)."""
        ...
