"""The report's charts as geometry: where each bar, tick and marker goes, for the page's SVG templates.

No charting library fitted the pages: pygal writes an inline <style> and style attributes (the
Content-Security-Policy refuses both) and a <script> tag; leather draws with presentation
attributes but at a fixed size, without a title or description for assistive technology,
themed through module globals. Four charts are a little arithmetic, done here once and drawn
by Jinja2 (templates/report_charts.html) with presentation attributes only, each with a
<title> and <desc> and its numbers in a table beside it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from bridge.domain.reports import Resolution

WIDTH, HEIGHT = 720, 260
LEFT, RIGHT, TOP, BOTTOM = 44, 12, 16, 40
# Colours of the GitHub Primer palette: each at least 4.5:1 against white, so text and shapes read.
COLOURS = {
    Resolution.MET.value: "#1a7f37",
    Resolution.BREACHED.value: "#cf222e",
    Resolution.OPEN_PAST_DUE.value: "#9a6700",
    Resolution.OPEN.value: "#0969da",
    "monitoring": "#0969da",
    "people": "#8250df",
    "bar": "#0969da",
    "release": "#cf222e",
    "grid": "#d0d7de",
    "text": "#1b1f24",
}
SLA_PARTS = (Resolution.MET, Resolution.BREACHED, Resolution.OPEN_PAST_DUE, Resolution.OPEN)
SLA_LABELS = {
    Resolution.MET.value: "met",
    Resolution.BREACHED.value: "breached",
    Resolution.OPEN_PAST_DUE.value: "open past due",
    Resolution.OPEN.value: "open within target",
}


@dataclass(frozen=True)
class Bar:
    x: float
    y: float
    width: float
    height: float
    colour: str
    label: str = ""


@dataclass(frozen=True)
class Tick:
    position: float
    label: str


@dataclass(frozen=True)
class Chart:
    """One chart: its bars, axis ticks and markers in the viewBox's units."""

    width: int
    height: int
    bars: list[Bar] = field(default_factory=list)
    x_ticks: list[Tick] = field(default_factory=list)
    y_ticks: list[Tick] = field(default_factory=list)
    markers: list[Tick] = field(default_factory=list)
    rows: list[Tick] = field(default_factory=list)  # row labels of a horizontal chart
    legend: list[tuple[str, str]] = field(default_factory=list)  # (colour, label)
    plot_left: float = LEFT

    @property
    def plot_top(self) -> float:
        return TOP

    @property
    def plot_right(self) -> float:
        return self.width - RIGHT

    @property
    def plot_bottom(self) -> float:
        return self.height - BOTTOM


def nice_step(largest: float, steps: int = 4) -> int:
    """A round step (1, 2, 5 times a power of ten) that divides 0..largest into about `steps` ticks."""
    if largest <= steps:
        return 1
    raw = largest / steps
    power = 10 ** math.floor(math.log10(raw))
    return int(next(m * power for m in (1, 2, 5, 10) if m * power >= raw))


def _y_axis(largest: int, plot_top: float, plot_bottom: float) -> tuple[list[Tick], float]:
    """Ticks from 0 past the largest value, and the scale (units per count)."""
    step = nice_step(largest)
    top = max(step, math.ceil(largest / step) * step)
    scale = (plot_bottom - plot_top) / top
    return [Tick(plot_bottom - value * scale, str(value)) for value in range(0, top + 1, step)], scale


def columns(values: Sequence[tuple[str, int]], label_every: int = 1) -> Chart:
    """Vertical bars, one per (label, count), on a count axis from zero."""
    plot_bottom = HEIGHT - BOTTOM
    y_ticks, scale = _y_axis(max((count for _, count in values), default=0), TOP, plot_bottom)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(values))
    bars, x_ticks = [], []
    for n, (label, count) in enumerate(values):
        x = LEFT + n * slot
        bars.append(Bar(x + slot * 0.1, plot_bottom - count * scale, slot * 0.8, count * scale, COLOURS["bar"], label))
        if n % label_every == 0:
            x_ticks.append(Tick(x + slot / 2, label))
    return Chart(WIDTH, HEIGHT, bars=bars, x_ticks=x_ticks, y_ticks=y_ticks)


def daily_chart(daily: Sequence[Mapping[str, Any]]) -> Chart:
    """Incidents per day, with a marker on each day a release shipped (the cadence they follow)."""
    label_every = max(1, math.ceil(len(daily) / 16))
    chart = columns([(day["date"][5:], int(day["incidents"])) for day in daily], label_every)
    slot = (WIDTH - LEFT - RIGHT) / max(1, len(daily))
    markers = [
        Tick(LEFT + n * slot + slot / 2, ", ".join(day["releases"])) for n, day in enumerate(daily) if day["releases"]
    ]
    legend = [(COLOURS["bar"], "incidents"), (COLOURS["release"], "release")] if markers else []
    return replace(chart, markers=markers, legend=legend)


def _horizontal(rows: Sequence[tuple[str, Sequence[tuple[float, str, str]]]], label_width: int) -> Chart:
    """Horizontal bars of shares (0..1), one row each, stacked from the left: (row label, [(share, colour, label)])."""
    row_height, gap = 28, 10
    height = TOP + max(1, len(rows)) * (row_height + gap) + BOTTOM
    plot_left, plot_width = label_width, WIDTH - label_width - RIGHT
    bars, labels = [], []
    for n, (label, parts) in enumerate(rows):
        y = TOP + n * (row_height + gap)
        x: float = plot_left
        labels.append(Tick(y + row_height / 2, label))
        for fraction, colour, part in parts:
            if fraction > 0:
                bars.append(Bar(x, y, fraction * plot_width, row_height, colour, part))
                x += fraction * plot_width
    x_ticks = [Tick(plot_left + plot_width * q / 4, f"{25 * q}%") for q in range(5)]
    return Chart(WIDTH, height, bars=bars, x_ticks=x_ticks, rows=labels, plot_left=plot_left)


def sla_chart(sla: Sequence[Mapping[str, Any]]) -> Chart:
    """Per priority with a target and incidents: the share met, breached, open past due and open."""
    rows = []
    for entry in sla:
        resolution = entry["resolution"]
        counted = sum(resolution[part.value] for part in SLA_PARTS) if resolution else 0
        if not counted:
            continue
        parts = [(resolution[part.value] / counted, COLOURS[part.value], SLA_LABELS[part.value]) for part in SLA_PARTS]
        rows.append((entry["priority"], parts))
    chart = _horizontal(rows, 60)
    legend = [(COLOURS[part.value], SLA_LABELS[part.value]) for part in SLA_PARTS]
    return replace(chart, legend=legend)


def channel_chart(channels: Sequence[Mapping[str, Any]]) -> Chart:
    """Each source channel's share of the incidents, monitoring and people told apart by colour."""
    rows = [
        (entry["channel"], [(entry["share"] or 0.0, COLOURS[entry["kind"]], entry["kind"])])
        for entry in channels
        if entry["incidents"]
    ]
    chart = _horizontal(rows, 150)
    legend = [(COLOURS["monitoring"], "monitoring"), (COLOURS["people"], "people (tickets)")]
    return replace(chart, legend=legend)


def resolve_chart(distribution: Sequence[Mapping[str, Any]]) -> Chart:
    """How many incidents took how long to resolve, in working time."""
    return columns([(entry["bucket"], int(entry["incidents"])) for entry in distribution])


def report_charts(report: Mapping[str, Any]) -> dict[str, Chart]:
    """The four charts of the report's period."""
    current = report["current"]
    return {
        "daily": daily_chart(current["daily"]),
        "sla": sla_chart(current["sla"]),
        "channels": channel_chart(current["channels"]),
        "resolve": resolve_chart(current["time_to_resolve_distribution"]),
    }
