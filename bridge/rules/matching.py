"""The `match` of a rules.yaml section (routes, problem rules, maintenance windows): a source and labels."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import AfterValidator, field_validator

from adapters import SOURCES
from bridge.domain.incidents import Matcher
from bridge.validation import StrictModel


def known_source(value: str | None) -> str | None:
    """A source name of the registry (adapters.SOURCES), or None (any source)."""
    if value is not None and value not in SOURCES:
        raise ValueError(f"unknown source {value!r}; expected one of {', '.join(SOURCES)}")
    return value


KnownSource = Annotated[str | None, AfterValidator(known_source)]


class LabelsModel(StrictModel):
    """Label values a section selects by: exact, and full-match regexes (checked to compile)."""

    labels: dict[str, str] = {}
    labels_regex: dict[str, str] = {}

    @field_validator("labels_regex")
    @classmethod
    def _compiles(cls, value: dict[str, str]) -> dict[str, str]:
        for name, pattern in value.items():
            try:
                re.compile(pattern)
            except re.error as exc:
                raise ValueError(f"label {name!r}: invalid regex {pattern!r}: {exc}") from exc
        return value


class MatchModel(LabelsModel):
    source: KnownSource = None


def matcher_of(model: LabelsModel) -> Matcher:
    """The matcher of a section's `match` (a project's labels select from any source)."""
    return Matcher(
        source=model.source if isinstance(model, MatchModel) else None,
        labels=dict(model.labels),
        labels_regex={k: re.compile(v) for k, v in model.labels_regex.items()},
    )
