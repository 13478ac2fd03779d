"""Benchmark: what a group commit's transaction costs, apart from what each notification in it costs.

For each group size, on a fresh database, a process of its own starts the writer
(`bench.instructions.writer_session`: the storm's ten-alert notifications, created) and then
writes N repeats of them in groups of that size, measuring the CPU time of the repeats alone:
its own (user and system) and every PostgreSQL process's (from /proc, the postmaster's reaped
children included). A least-squares line over the group sizes splits a group's cost into a
part per group (the transaction: its round trips, its statements' fixed work, planning) and
a part per notification.

Run: PYTHONPATH=. .venv/bin/python bench/group_cost.py [--store postgres] [--repeats 8000]
Times, not instructions: run it on a quiet machine, and compare commits in one sitting.
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.instructions import WRITER_BATCHES, _migrated, writer_session
from bench.storm import processes_cpu_seconds

ROOT = Path(__file__).resolve().parent.parent
GROUPS = (1, 2, 4, 8)
WARM_GROUPS = 50


def postgres_cpu_seconds() -> float:
    """CPU time of every PostgreSQL process (a backend that ended is counted in its parent's)."""
    return processes_cpu_seconds(lambda name, _stat: name == "postgres")


def measure_repeats(repeats: int, group: int) -> dict[str, float]:
    """In the child: CPU seconds of `repeats` repeated notifications written in groups of `group`."""
    write = writer_session()
    for round_ in range(WARM_GROUPS):
        write((round_ * group) % WRITER_BATCHES, group)
    database_before, own_before = postgres_cpu_seconds(), time.process_time()
    for round_ in range(repeats // group):
        write((round_ * group) % WRITER_BATCHES, group)
    return {"writer": time.process_time() - own_before, "database": postgres_cpu_seconds() - database_before}


def fitted(points: list[tuple[int, float]]) -> tuple[float, float]:
    """The least-squares line through (group size, cost per group): (cost per group, cost per notification)."""
    count = len(points)
    mean_x = sum(x for x, _ in points) / count
    mean_y = sum(y for _, y in points) / count
    slope = sum((x - mean_x) * (y - mean_y) for x, y in points) / sum((x - mean_x) ** 2 for x, _ in points)
    return mean_y - slope * mean_x, slope


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="postgres")
    parser.add_argument("--repeats", type=int, default=8000, help="repeated notifications per group size")
    parser.add_argument("--measure", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure is not None:
        print(json.dumps(measure_repeats(args.repeats, args.measure)))
        return
    postgres = args.store == "postgres"
    points: dict[str, list[tuple[int, float]]] = {"writer": [], "database": []}
    print("| notifications per group | writer CPU per group | PostgreSQL CPU per group |")
    print("|---|---|---|")
    for group in GROUPS:
        with (
            tempfile.TemporaryDirectory(prefix="bench-group-cost-") as directory,
            _migrated(args.store, directory) as env,
        ):
            command = [sys.executable, __file__, "--repeats", str(args.repeats), "--measure", str(group)]
            run = subprocess.run(command, env=env, check=True, capture_output=True, text=True)
        measured = json.loads(run.stdout.strip().splitlines()[-1])
        groups = args.repeats // group
        for name in points:
            points[name].append((group, measured[name] / groups))
        database = f"{measured['database'] / groups * 1e6:,.0f} µs" if postgres else "-"
        print(f"| {group} | {measured['writer'] / groups * 1e6:,.0f} µs | {database} |")
    print()
    print("| fitted | per group | per notification |")
    print("|---|---|---|")
    for name, label in (("writer", "writer"), ("database", "PostgreSQL"))[: 2 if postgres else 1]:
        fixed, each = fitted(points[name])
        print(f"| {label} | {fixed * 1e6:,.0f} µs | {each * 1e6:,.0f} µs |")


if __name__ == "__main__":
    main()
