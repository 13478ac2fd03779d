"""The JSON bodies the API accepts, as pydantic models: the views validate with them, the OpenAPI document shows them."""

from __future__ import annotations

import re
from typing import Annotated, Literal

from pydantic import AfterValidator, AwareDatetime, BaseModel, ConfigDict, Field, StrictInt

from adapters import tickets as ticket_adapter
from bridge.domain.problems import JIRA_KEY, JIRA_PROJECT
from bridge.rules.matching import KnownSource
from bridge.storage.engine import MAX_ID
from bridge.validation import LabelMap, SafeStr, bounded_str, nested_repeat

# An environment as releases and deploys name it (the value of rules.yaml's releases.environment_label).
ENVIRONMENT = r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$"


class ReleaseRequest(BaseModel):
    """The close hook's body, as a release pipeline sends it."""

    model_config = ConfigDict(extra="forbid")

    version: str = Field(min_length=1, max_length=200)
    project: str = Field(pattern=JIRA_PROJECT.pattern)
    issues: list[Annotated[str, Field(pattern=JIRA_KEY.pattern)]] | None = Field(default=None, max_length=10_000)
    released_at: AwareDatetime | None = None
    environments: list[Annotated[str, Field(pattern=ENVIRONMENT)]] | None = Field(default=None, max_length=100)


class DeployRequest(BaseModel):
    """A release's version reaching an environment, as the pipeline tells each phase of it."""

    model_config = ConfigDict(extra="forbid")

    project: str = Field(pattern=JIRA_PROJECT.pattern)
    version: bounded_str(1, 200)  # type: ignore[valid-type]
    environment: str = Field(pattern=ENVIRONMENT)
    phase: Literal["started", "finished", "failed"]
    issues: list[Annotated[str, Field(pattern=JIRA_KEY.pattern)]] = Field(default=[], max_length=10_000)


class ReasonRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    reason: str = Field(min_length=1, max_length=2000)


class MergeRequest(BaseModel):
    """Merge this problem into another: its incidents gathered there, the Jira link kept or named in a conflict."""

    model_config = ConfigDict(extra="forbid")

    into: StrictInt = Field(ge=1, le=MAX_ID)
    reason: bounded_str(1, 2000) | None = None  # type: ignore[valid-type]


class MoveRequest(BaseModel):
    """Move this incident to another open problem."""

    model_config = ConfigDict(extra="forbid")

    problem_id: StrictInt = Field(ge=1, le=MAX_ID)


class AcknowledgeRequest(BaseModel):
    """An acknowledgement, optionally with a note (the body itself is optional)."""

    model_config = ConfigDict(extra="forbid")

    note: bounded_str(1, 2000) | None = None  # type: ignore[valid-type]


class NoteRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    text: bounded_str(1, 5000)  # type: ignore[valid-type]


class WorkaroundRequest(BaseModel):
    """What the first line can tell callers until the fix ships; every open ticket of the problem hears it."""

    model_config = ConfigDict(extra="forbid")

    text: bounded_str(1, 10_000)  # type: ignore[valid-type]


class LinkTicketRequest(BaseModel):
    """A ticket to link to a problem by hand."""

    model_config = ConfigDict(extra="forbid")

    system: str = Field(pattern=ticket_adapter.SYSTEM_PATTERN)
    ticket_id: str = Field(pattern=ticket_adapter.TICKET_ID_PATTERN)
    url: str | None = Field(default=None, pattern=ticket_adapter.URL_PATTERN)
    summary: SafeStr = Field(default="", max_length=ticket_adapter.MAX_SUMMARY_LENGTH)


MAX_PATTERN_LENGTH = 200


def _usable_pattern(pattern: str) -> str:
    """A regex a window may run on every alert it might hold: compiles, short, and never exponential."""
    if len(pattern) > MAX_PATTERN_LENGTH:
        raise ValueError(f"longer than {MAX_PATTERN_LENGTH} characters")
    try:
        re.compile(pattern)
    except re.error as exc:
        raise ValueError(f"invalid regex {pattern!r}: {exc}") from exc
    if nested_repeat(pattern):
        raise ValueError(f"{pattern!r} repeats a group that repeats (as (a+)+): it could stall the bridge")
    return pattern


Pattern = Annotated[str, AfterValidator(_usable_pattern)]


class WindowMatchRequest(BaseModel):
    """What a window covers: a source and label values (exact, or full-match regexes)."""

    model_config = ConfigDict(extra="forbid")

    source: KnownSource = None
    labels: LabelMap = {}
    labels_regex: dict[SafeStr, Pattern] = Field(default={}, max_length=32)


class MaintenanceRequest(BaseModel):
    """A maintenance window: it must end (`ends_at`), no later than BRIDGE_MAINTENANCE_MAX after it starts."""

    model_config = ConfigDict(extra="forbid")

    name: bounded_str(1, 200)  # type: ignore[valid-type]
    reason: bounded_str(1, 2000)  # type: ignore[valid-type]
    starts_at: AwareDatetime | None = None
    ends_at: AwareDatetime
    match: WindowMatchRequest
