"""rules.yaml `projects`: the services each project's releases ship, and what its deploys hold (bridge/domain/deploys.py)."""

from __future__ import annotations

from pydantic import Field

from bridge.domain.deploys import DeployHold, Project
from bridge.domain.problems import JIRA_PROJECT
from bridge.rules.matching import LabelsModel, matcher_of
from bridge.validation import parse_duration


class ProjectModel(LabelsModel):
    """A project: label matchers naming its services (any source), its deploys' hold and settle time."""

    hold: DeployHold = DeployHold.NONE
    settle: str = Field(default="10m", min_length=1)


def build_projects(
    models: dict[str, ProjectModel], environment_label: str | None, problems: list[str]
) -> tuple[Project, ...]:
    """Check each project (its name as releases name it, a label at least, a settle time) and build them."""
    built = []
    for name, model in models.items():
        where = f'project "{name}"'
        if not JIRA_PROJECT.fullmatch(name):
            problems.append(f"{where}: name it as releases do: a Jira project key such as LKK")
        if not model.labels and not model.labels_regex:
            problems.append(
                f"{where}: name a label of its services (labels or labels_regex); none would mark everything"
            )
        if environment_label is not None and environment_label in {*model.labels, *model.labels_regex}:
            problems.append(
                f"{where}: {environment_label} is releases.environment_label; a deploy names its environment itself"
            )
        try:
            settle = parse_duration(model.settle)
        except ValueError as exc:
            problems.append(f"{where}: settle: {exc}")
            continue
        built.append(Project(name, matcher_of(model), model.hold, settle))
    if built and environment_label is None:
        problems.append(
            "key projects: needs releases.environment_label: a deploy goes to one environment, "
            "and an alert says its environment in that label"
        )
    return tuple(built)
