"""rules.yaml `heartbeats`: senders whose silence becomes an incident (bridge/domain/heartbeats.py)."""

from __future__ import annotations

from datetime import timedelta

from pydantic import Field

from bridge.domain.heartbeats import HEARTBEAT_SOURCE, NAME_PATTERN, Heartbeat
from bridge.domain.incidents import IMPACT_LEVELS, URGENCY_LEVELS, Matcher
from bridge.rules.matching import MatchModel, matcher_of
from bridge.validation import StrictModel, parse_duration


class HeartbeatModel(StrictModel):
    name: str = Field(pattern=NAME_PATTERN)
    source: str | None = None
    match: MatchModel | None = None
    interval: str
    grace: str = "0s"
    impact: str | None = None
    urgency: str | None = None


def _matcher(where: str, model: HeartbeatModel, problems: list[str]) -> Matcher | None:
    """The alerts that ping it, of its own source; None when any notification of the source does."""
    if model.match is None:
        return None
    if model.source is None:
        problems.append(f"{where}: match needs a source (the sender whose alerts are the pings)")
    if model.match.source is not None:
        problems.append(f"{where}: match.source: set the heartbeat's source instead")
    if not model.match.labels and not model.match.labels_regex:
        problems.append(f"{where}: match names no label; leave match out when any notification is a ping")
    return matcher_of(model.match.model_copy(update={"source": model.source}))


def _duration(where: str, key: str, text: str, problems: list[str], zero: bool) -> timedelta | None:
    try:
        value = parse_duration(text)
    except ValueError as exc:
        problems.append(f"{where}: {key}: {exc}")
        return None
    if value <= timedelta(0) and not zero:
        problems.append(f"{where}: {key}: must be longer than zero")
        return None
    return value


def build_heartbeats(models: list[HeartbeatModel], sources: set[str], problems: list[str]) -> tuple[Heartbeat, ...]:
    """Check each heartbeat (`sources`: the senders a heartbeat may watch) and build them."""
    built = []
    seen: set[str] = set()
    for model in models:
        where = f'heartbeat "{model.name}"'
        if model.name in seen:
            problems.append(f"{where}: name used twice")
        seen.add(model.name)
        if model.source is not None and (model.source not in sources or model.source == HEARTBEAT_SOURCE):
            allowed = ", ".join(sorted(sources - {HEARTBEAT_SOURCE}))
            problems.append(f"{where}: source {model.source!r} is not a sender; expected one of {allowed}")
        for key, value, levels in (("impact", model.impact, IMPACT_LEVELS), ("urgency", model.urgency, URGENCY_LEVELS)):
            if value is not None and value not in levels:
                problems.append(f"{where}: {key} {value!r} is not one of {', '.join(levels)}")
        matcher = _matcher(where, model, problems)
        interval = _duration(where, "interval", model.interval, problems, zero=False)
        grace = _duration(where, "grace", model.grace, problems, zero=True)
        if interval is None or grace is None:
            continue
        built.append(Heartbeat(model.name, interval, grace, model.source, matcher, model.impact, model.urgency))
    return tuple(built)
