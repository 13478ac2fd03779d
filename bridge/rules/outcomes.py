"""The `jira.outcomes` part of a problem rule: which Jira resolutions mean fixed, won't do or duplicate.

Each outcome may be left out (its defaults apply); a resolution may mean one outcome only.
"""

from __future__ import annotations

from pydantic import Field

from bridge.domain.outcomes import OutcomeRules
from bridge.validation import StrictModel

_DEFAULTS = OutcomeRules()
Resolutions = list[str]


class FixedModel(StrictModel):
    resolutions: Resolutions = Field(default=list(_DEFAULTS.fixed), min_length=1)


class WontDoModel(StrictModel):
    resolutions: Resolutions = Field(default=list(_DEFAULTS.wont_do), min_length=1)
    close_incidents: bool = _DEFAULTS.close_incidents


class DuplicateModel(StrictModel):
    resolutions: Resolutions = Field(default=list(_DEFAULTS.duplicate), min_length=1)
    link_type: str = Field(default=_DEFAULTS.duplicate_link_type, min_length=1, max_length=255)


class OutcomesModel(StrictModel):
    fixed: FixedModel = FixedModel()
    wont_do: WontDoModel = WontDoModel()
    duplicate: DuplicateModel = DuplicateModel()


def build_outcomes(model: OutcomesModel, where: str, problems: list[str]) -> OutcomeRules:
    """The outcome rules of one problem rule; findings (blank or doubly claimed resolutions) go to `problems`."""
    claimed: dict[str, str] = {}
    for outcome, names in (
        ("fixed", model.fixed.resolutions),
        ("wont_do", model.wont_do.resolutions),
        ("duplicate", model.duplicate.resolutions),
    ):
        for name in names:
            if not name.strip():
                problems.append(f"{where} key jira.outcomes.{outcome}.resolutions: a resolution name cannot be blank")
                continue
            earlier = claimed.setdefault(name.strip().casefold(), outcome)
            if earlier != outcome:
                problems.append(
                    f"{where} key jira.outcomes.{outcome}.resolutions: {name!r} already means {earlier}; "
                    "a resolution can mean one outcome only"
                )
    return OutcomeRules(
        fixed=tuple(model.fixed.resolutions),
        wont_do=tuple(model.wont_do.resolutions),
        duplicate=tuple(model.duplicate.resolutions),
        close_incidents=model.wont_do.close_incidents,
        duplicate_link_type=model.duplicate.link_type,
    )
