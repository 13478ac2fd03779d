"""Benchmark: instructions per notification, which the machine's load does not change.

Wall-clock rates on a shared machine follow the load of the moment; instruction counts do
not. This runs the ingest path in one process (`create_app` and Flask's test client on a
fresh SQLite database, the storm's Alertmanager bodies: creating, repeating, then resolving
notifications of 10 alerts) under valgrind's callgrind twice, with 0 and with N notifications
of each kind, and prints the difference per notification. Compare two commits by running it
in a checkout of each.

Run: PYTHONPATH=. .venv/bin/python bench/instructions.py [--notifications 100]
Needs valgrind (Debian package). Takes a few minutes: Python runs ~50x slower under callgrind.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import re
import subprocess
import sys
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

from bench.storm import database, notification

ROOT = Path(__file__).resolve().parent.parent
_COLLECTED = re.compile(r"Collected : ([0-9]+)")


def drive(count: int) -> None:
    """The measured work: a few warm-up notifications, then `count` creates, repeats and resolves."""
    from bridge.app import create_app

    client = create_app().test_client()
    headers = {"Content-Type": "application/json"}

    def send(batch: int, status: str) -> None:
        answer = client.post("/api/v1/alerts/alertmanager", data=notification(batch, status, "i"), headers=headers)
        if answer.status_code >= 300:
            raise SystemExit(f"notification refused: {answer.status_code} {answer.get_data(as_text=True)[:300]}")

    for batch in range(5):
        send(1_000_000 + batch, "firing")
    for status in ("firing", "firing", "resolved"):
        for batch in range(count):
            send(batch, status)


WRITER_BATCHES = 400


def writer_session() -> Callable[[int, int], None]:
    """The group commit's writer on the configured database, its WRITER_BATCHES notifications created
    (in groups of 8): `write(first, size)` writes notifications first..first+size again, in one group."""
    from bridge import metrics
    from bridge.config import load_settings
    from bridge.ingest.deliveries import prepare_delivery, write_deliveries
    from bridge.rules.load import load_rules
    from bridge.storage.store import Store
    from bridge.web.context import utc_now

    settings = load_settings()
    rules = load_rules(settings.rules_path)
    store = Store.from_url(settings.database_url)
    metrics.initialise(rules)
    bodies = [notification(batch, "firing", "w") for batch in range(WRITER_BATCHES)]

    def write(first: int, size: int) -> None:
        made = [
            prepare_delivery(store, rules, "alertmanager", body, utc_now()) for body in bodies[first : first + size]
        ]
        write_deliveries(store, rules, made)

    for first in range(0, WRITER_BATCHES, 8):
        write(first, 8)
    return write


def drive_writer(count: int, group: int) -> None:
    """The writer's work: WRITER_BATCHES notifications created in groups of 8, then `count` repeats in groups."""
    write = writer_session()
    for round_ in range(count // group):
        write((round_ * group) % WRITER_BATCHES, group)


def instructions(count: int, store: str = "sqlite", group: int | None = None) -> int:
    """Instructions callgrind collected for one run of `drive(count)` (or the writer's) on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as directory, _migrated(store, directory) as env:
        run = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={directory}/callgrind.out",
                sys.executable,
                __file__,
                *(["--drive", str(count)] if group is None else ["--drive-writer", str(count), "--group", str(group)]),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        found = _COLLECTED.search(run.stderr)
        if run.returncode != 0 or found is None:
            raise SystemExit(f"callgrind run failed ({run.returncode}): {run.stderr[-2000:]}")
        return int(found.group(1))


@contextlib.contextmanager
def _migrated(store: str, directory: str) -> Iterator[dict[str, str]]:
    """The bridge's environment on a fresh, migrated database: a SQLite file in `directory`, or a
    PostgreSQL database of its own (bench.storm's, dropped afterwards)."""
    with contextlib.ExitStack() as stack:
        url = f"sqlite:///{directory}/bench.db" if store == "sqlite" else stack.enter_context(database(store))
        env = {
            **os.environ,
            "BRIDGE_DATABASE_URL": url,
            "BRIDGE_RULES": str(ROOT / "rules.yaml"),
            "PYTHONPATH": str(ROOT),
        }
        subprocess.run([sys.executable, "-m", "bridge", "migrate"], env=env, check=True, capture_output=True)
        yield env


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=100, help="of each kind: create, repeat, resolve")
    parser.add_argument("--writer", type=int, help="measure the writer alone: this many repeats")
    parser.add_argument("--group", type=int, default=4, help="notifications per transaction (--writer)")
    parser.add_argument("--store", choices=["sqlite", "postgres"], default="sqlite", help="(--writer)")
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)
    parser.add_argument("--drive-writer", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive is not None:
        drive(args.drive)
        return
    if args.drive_writer is not None:
        drive_writer(args.drive_writer, args.group)
        return
    if args.writer is not None:
        base = instructions(0, args.store, args.group)
        loaded = instructions(args.writer, args.store, args.group)
        print(f"| writer, {args.store}, groups of {args.group} | instructions per repeated notification |")
        print("|---|---|")
        print(f"| {args.writer} repeats | {(loaded - base) / args.writer / 1e3:,.1f} thousand |")
        return
    base = instructions(0)
    loaded = instructions(args.notifications)
    total = 3 * args.notifications
    print(f"| instructions for {total} notifications | per notification |")
    print("|---|---|")
    print(f"| {(loaded - base) / 1e6:,.1f} million | {(loaded - base) / total / 1e6:,.2f} million |")


if __name__ == "__main__":
    main()
