"""Benchmark: close a release whose problems hold 10,000 incidents (issue: release close hook).

Seeds problems and incidents with bulk inserts, then times `close_release` (database
work only: the issue list is given, Jira and Zabbix are reached later by the worker).
Run: .venv/bin/python bench/release_close.py [--incidents N] [--problems P]
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import psycopg
import sqlalchemy as sa

from bridge.problems.releases import close_release
from bridge.rules.load import load_rules
from bridge.storage.engine import migrate
from bridge.storage.schema import incidents, problems
from bridge.storage.store import Store

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BRIDGE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def seed(store: Store, n_incidents: int, n_problems: int) -> list[str]:
    keys = [f"LKK-{p + 1}" for p in range(n_problems)]
    with store.engine.begin() as conn:
        conn.execute(
            problems.insert(),
            [
                dict(
                    problem_key=f"bench/{p}",
                    rule="portal-errors",
                    state="known_error",
                    summary="bench",
                    description="",
                    incident_count=0,
                    opened_at=T0,
                    regressions=0,
                    comment_pending=0,
                    jira_key=keys[p],
                )
                for p in range(n_problems)
            ],
        )
        ids = list(conn.execute(sa.select(problems.c.id).order_by(problems.c.id)).scalars())
        rows = [
            dict(
                dedup_key=f"alertmanager:{i:016x}",
                source="alertmanager" if i % 10 else "zabbix",
                state="firing" if i % 3 else "resolved",
                line="L3",
                impact="high",
                urgency="high",
                priority="P1",
                route="bench",
                summary="bench",
                labels={"alertname": "Bench"},
                annotations={},
                occurrences=1,
                reopen_count=0,
                first_seen=T0,
                last_seen=T0,
                problem_id=ids[i % n_problems],
                problem_key=f"bench/{i % n_problems}",
            )
            for i in range(n_incidents)
        ]
        for start in range(0, len(rows), 5000):
            conn.execute(incidents.insert(), rows[start : start + 5000])
    return keys


def run(url: str, n_incidents: int, n_problems: int, rounds: int) -> list[float]:
    rules = load_rules(ROOT / "rules.yaml")
    timings = []
    for _ in range(rounds):
        store = Store.from_url(url)
        with store.engine.begin() as conn:
            conn.execute(incidents.delete())
            conn.execute(problems.delete())
            conn.execute(sa.text("DELETE FROM releases"))
            conn.execute(sa.text("DELETE FROM outbox"))
            conn.execute(sa.text("DELETE FROM problem_events"))
        keys = seed(store, n_incidents, n_problems)
        started = time.perf_counter()
        summary = close_release(
            store,
            None,
            rules,
            project="LKK",
            version=f"bench-{uuid.uuid4().hex[:6]}",
            issues=keys,
            released_at=T0 + timedelta(days=1),
            now=T0 + timedelta(days=1),
        )
        timings.append(time.perf_counter() - started)
        assert summary["closed_incidents"] == n_incidents, summary["closed_incidents"]
        store.engine.dispose()
    return timings


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=10_000)
    parser.add_argument("--problems", type=int, default=20)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args()
    sqlite_dir = tempfile.mkdtemp()
    sqlite_url = f"sqlite:///{sqlite_dir}/bench.db"
    migrate(sqlite_url)
    name = f"bridge_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    pg_url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    try:
        migrate(pg_url)
        print(f"release close: {args.incidents} incidents in {args.problems} problems, {args.rounds} rounds")
        print("| store | median s | max s | correct |")
        print("|---|---|---|---|")
        for label, url in (("SQLite", sqlite_url), ("PostgreSQL", pg_url)):
            timings = run(url, args.incidents, args.problems, args.rounds)
            print(f"| {label} | {statistics.median(timings):.3f} | {max(timings):.3f} | yes |")
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
