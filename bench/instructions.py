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
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

from bench.storm import notification

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


def instructions(count: int) -> int:
    """Instructions callgrind collected for one run of `drive(count)` on a fresh database."""
    with tempfile.TemporaryDirectory(prefix="bench-instructions-") as directory:
        env = {
            **os.environ,
            "BRIDGE_DATABASE_URL": f"sqlite:///{directory}/bench.db",
            "BRIDGE_RULES": str(ROOT / "rules.yaml"),
            "PYTHONPATH": str(ROOT),
        }
        subprocess.run([sys.executable, "-m", "bridge", "migrate"], env=env, check=True, capture_output=True)
        run = subprocess.run(
            [
                "valgrind",
                "--tool=callgrind",
                f"--callgrind-out-file={directory}/callgrind.out",
                sys.executable,
                __file__,
                "--drive",
                str(count),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        found = _COLLECTED.search(run.stderr)
        if run.returncode != 0 or found is None:
            raise SystemExit(f"callgrind run failed ({run.returncode}): {run.stderr[-2000:]}")
        return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=100, help="of each kind: create, repeat, resolve")
    parser.add_argument("--drive", type=int, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.drive is not None:
        drive(args.drive)
        return
    base = instructions(0)
    loaded = instructions(args.notifications)
    total = 3 * args.notifications
    print(f"| instructions for {total} notifications | per notification |")
    print("|---|---|")
    print(f"| {(loaded - base) / 1e6:,.1f} million | {(loaded - base) / total / 1e6:,.2f} million |")


if __name__ == "__main__":
    main()
