"""rules.yaml `maintenance`: recurring maintenance windows (bridge/domain/windows.py)."""

from __future__ import annotations

from pydantic import Field

from bridge.domain.windows import Recurrence, RecurringWindow, matcher_is_selective
from bridge.rules.matching import MatchModel, matcher_of
from bridge.validation import StrictModel


class RecurringWindowModel(StrictModel):
    name: str = Field(min_length=1, max_length=200)
    every: str = Field(min_length=1)
    timezone: str = "UTC"
    match: MatchModel
    reason: str = Field(default="recurring maintenance", min_length=1, max_length=2000)


def build_recurring_windows(models: list[RecurringWindowModel], problems: list[str]) -> tuple[RecurringWindow, ...]:
    """Check each recurring window (its days and hours, its zone, a selective match) and build them."""
    built = []
    seen: set[str] = set()
    for model in models:
        where = f'maintenance window "{model.name}"'
        if model.name in seen:
            problems.append(f"{where}: name used twice")
        seen.add(model.name)
        matcher = matcher_of(model.match)
        if not matcher_is_selective(matcher):
            problems.append(
                f"{where}: match must name a source or a label (a window over everything hides every alarm)"
            )
        try:
            recurrence = Recurrence.parse(model.every, model.timezone)
        except ValueError as exc:
            problems.append(f"{where}: every/timezone: {exc}")
            continue
        built.append(RecurringWindow(model.name, recurrence, matcher, model.reason))
    return tuple(built)
