"""Benchmark: scrapes, pages and writes must not cost more as the history the bridge keeps grows.

Loads a throwaway database with set-based SQL (PostgreSQL: INSERT ... SELECT generate_series,
secondary indexes built once after the load; SQLite: a recursive CTE): `--incidents` incidents
(20,000 firing, 20,000 resolved, the rest closed, one problem holding 10,000 of them), 100,000
problems (2,000 live), `--bodies` raw notification bodies past retention, and 200 releases.
Then it serves the bridge (one process, `incident-bridge serve`) and times:

- GET /metrics (p50, p99 of 200 scrapes);
- the overview page, the problem list, the incident list with each filter (pages and API), a
  problem's page with 10,000 incidents, and the release health page (p50, p99 of 20 each);
- a storm (bench/storm.py's Alertmanager workload, 10 s of firing notifications) against the
  same storm on an empty database;
- the daily prune of the expired bodies, with the webhook latency p99 measured meanwhile;
- `migrate` from the previous schema (one revision down first), timed.

Run: PYTHONPATH=. .venv/bin/python bench/growth.py --store postgres --incidents 10000000
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import threading
import time
import uuid
from datetime import UTC, datetime
from typing import Any

import requests
import sqlalchemy as sa
from alembic import command as alembic_command

from bench.storm import ROOT, TOKEN, bridge, database, notification, run_wrk
from bridge.storage.engine import _alembic_config, make_engine, migrate

LIVE_FIRING = 20_000
LIVE_RESOLVED = 20_000
PROBLEMS = 100_000
LIVE_PROBLEMS = 2_000
BIG_PROBLEM_INCIDENTS = 10_000
RELEASES = 200
RELEASE_SUMMARY = """'{"closed_problems": [1, 2, 3], "closed_incidents": 300, "issues": []}'"""
SOURCES = ("alertmanager", "zabbix", "grafana", "events")
SCRAPES = 200
PAGE_READS = 20


def _series(dialect: str, count: int) -> str:
    """A relation `s(g)` of the integers 1..count."""
    if dialect == "postgresql":
        return f"generate_series(1, {count}) AS s(g)"
    return f"(WITH RECURSIVE r(g) AS (SELECT 1 UNION ALL SELECT g + 1 FROM r WHERE g < {count}) SELECT g FROM r) AS s"


def _pick(dialect: str, values: tuple[str, ...], expression: str) -> str:
    """One of `values` chosen by an integer expression, as SQL."""
    cases = " ".join(f"WHEN {i} THEN '{value}'" for i, value in enumerate(values))
    return f"(CASE ({expression}) % {len(values)} {cases} END)"


def _ago(dialect: str, seconds: str) -> str:
    """A timestamp `seconds` (an SQL expression) before the load's now, in the store's own form."""
    if dialect == "postgresql":
        return f"(:now - ({seconds}) * interval '1 second')"
    return f"(strftime('%Y-%m-%d %H:%M:%f', :now, '-' || ({seconds}) || ' seconds') || '000')"


def load(url: str, incidents: int, bodies: int) -> dict[str, float]:
    """Fill a migrated, empty database; seconds per table."""
    engine = make_engine(url)
    dialect = engine.dialect.name
    now = datetime.now(UTC)
    now_bind: Any = now if dialect == "postgresql" else now.replace(tzinfo=None).isoformat(sep=" ")
    closed = incidents - LIVE_FIRING - LIVE_RESOLVED
    history = 730 * 86400
    timings: dict[str, float] = {}
    true, false = ("true", "false") if dialect == "postgresql" else ("1", "0")
    json_empty = "'{}'::jsonb" if dialect == "postgresql" else "'{}'"
    state = (
        f"(CASE WHEN g > {closed + LIVE_RESOLVED} THEN 'firing' WHEN g > {closed} THEN 'resolved' ELSE 'closed' END)"
    )
    # Closed incidents spread over two years, the live ones in the last day; problem 1 holds the first 10,000.
    first_seen = _ago(
        dialect,
        f"CASE WHEN g > {closed} THEN ({incidents} - g) * 2 ELSE {history} - g * {history // max(closed, 1)} / 1 END",
    )
    problem = f"(CASE WHEN g <= {BIG_PROBLEM_INCIDENTS} THEN 1 ELSE 2 + g % {PROBLEMS - 1} END)"
    statements = {
        "problems": f"""
            INSERT INTO problems (id, problem_key, rule, state, summary, description, incident_count, opened_at,
                closed_at, regressions, comment_pending, reopened_by_ticket)
            SELECT g, 'growth:problem:' || g, 'portal-critical',
                CASE WHEN g > {PROBLEMS - LIVE_PROBLEMS} THEN (CASE WHEN g % 2 = 0 THEN 'open' ELSE 'known_error' END)
                     ELSE 'closed' END,
                'Problem ' || g, 'Grown by bench/growth.py', 100, {_ago(dialect, f"{history} - g * 600")},
                CASE WHEN g > {PROBLEMS - LIVE_PROBLEMS} THEN NULL ELSE {_ago(dialect, f"{history} - g * 600 - 3600")} END,
                0, 0, 0
            FROM {_series(dialect, PROBLEMS)}""",
        "incidents": f"""
            INSERT INTO incidents (id, dedup_key, source, state, line, impact, urgency, priority, route, summary,
                labels, annotations, occurrences, reopen_count, first_seen, last_seen, resolved_at, closed_at,
                close_reason, problem_id, problem_key, sla_elapsed_seconds, sla_breached, response_breached, held)
            SELECT g, 'growth:' || g, {_pick(dialect, SOURCES, "g")}, {state}, 'L3', 'medium', 'medium',
                {_pick(dialect, ("P1", "P2", "P3", "P4", "P5"), "g / 7")}, 'default', 'Grown incident ' || g,
                {json_empty}, {json_empty}, 1, 0, {first_seen}, {first_seen},
                CASE WHEN g > {closed + LIVE_RESOLVED} THEN NULL ELSE {first_seen} END,
                CASE WHEN g > {closed} THEN NULL ELSE {first_seen} END,
                CASE WHEN g > {closed} THEN NULL ELSE 'auto_closed' END,
                {problem}, 'growth:problem:' || {problem}, 0, CASE WHEN g % 13 = 0 THEN {true} ELSE {false} END,
                {false}, {false}
            FROM {_series(dialect, incidents)}""",
        "notifications": f"""
            INSERT INTO notifications (id, source, received_at, alert_count, rejected_count, truncated_alerts, body)
            SELECT g, {_pick(dialect, SOURCES, "g")}, {_ago(dialect, f"40 * 86400 + ({bodies} - g)")}, 10, 0, 0,
                '{{"receiver":"bridge","status":"firing","alerts":[' || g || ']}}'
            FROM {_series(dialect, bodies)}""",
        "releases": f"""
            INSERT INTO releases (id, project, version, released_at, received_at, via, summary)
            SELECT g, 'portal', '1.' || g, {_ago(dialect, f"({RELEASES} - g) * 86400 + 3600")},
                {_ago(dialect, f"({RELEASES} - g) * 86400 + 3600")}, 'api',
                {RELEASE_SUMMARY}
            FROM {_series(dialect, RELEASES)}""",
    }
    with engine.begin() as conn:
        if dialect == "postgresql":
            conn.execute(sa.text("SET LOCAL maintenance_work_mem = '512MB'"))
            indexes = _secondary_indexes(conn, ("incidents", "problems", "notifications"))
            for name, _ in indexes:
                conn.execute(sa.text(f'DROP INDEX "{name}"'))
        for table, statement in statements.items():
            started = time.monotonic()
            conn.execute(sa.text(statement), {"now": now_bind})
            timings[table] = time.monotonic() - started
        if dialect == "postgresql":
            started = time.monotonic()
            for _, definition in indexes:
                conn.execute(sa.text(definition))
            for table in ("incidents", "problems", "notifications", "releases"):
                conn.execute(
                    sa.text(f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))")
                )
            timings["indexes"] = time.monotonic() - started
    started = time.monotonic()
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE"))
    timings["analyze"] = time.monotonic() - started
    engine.dispose()
    return timings


def _secondary_indexes(conn: sa.Connection, tables: tuple[str, ...]) -> list[tuple[str, str]]:
    """(name, CREATE statement) of each index of `tables` that backs no constraint."""
    rows = conn.execute(
        sa.text(
            "SELECT i.indexname, i.indexdef FROM pg_indexes i WHERE i.schemaname = 'public' AND i.tablename = ANY(:t) "
            "AND NOT EXISTS (SELECT 1 FROM pg_constraint c WHERE c.conname = i.indexname)"
        ),
        {"t": list(tables)},
    )
    return [(name, definition) for name, definition in rows]


def timed(session: requests.Session, url: str, times: int) -> tuple[float, float, int]:
    """p50 and p99 in ms of `times` GETs, and the last status."""
    durations = []
    status = 0
    for _ in range(times):
        started = time.perf_counter()
        answer = session.get(url, timeout=60)
        durations.append(1000 * (time.perf_counter() - started))
        status = answer.status_code
    durations.sort()
    return durations[len(durations) // 2], durations[min(len(durations) - 1, int(len(durations) * 0.99))], status


READS: tuple[tuple[str, str, int], ...] = (
    ("GET /metrics", "/metrics", SCRAPES),
    ("overview page", "/ui/", PAGE_READS),
    ("problem list page", "/ui/problems", PAGE_READS),
    ("incident list page", "/ui/incidents", PAGE_READS),
    ("incident list page, firing", "/ui/incidents?state=firing", PAGE_READS),
    ("incident list page, resolved", "/ui/incidents?state=resolved", PAGE_READS),
    ("incident list page, closed", "/ui/incidents?state=closed", PAGE_READS),
    ("incident list page, source", "/ui/incidents?source=zabbix", PAGE_READS),
    ("incident list page, priority", "/ui/incidents?priority=P2", PAGE_READS),
    ("problem page, 10,000 incidents", "/ui/problems/1", PAGE_READS),
    ("release health page", f"/ui/releases/portal/1.{RELEASES}", PAGE_READS),
    ("API incidents, firing", "/api/v1/incidents?state=firing", PAGE_READS),
    ("API incidents, problem", "/api/v1/incidents?problem_id=1", PAGE_READS),
    ("API problems, open", "/api/v1/problems?state=open", PAGE_READS),
)


def reads(base: str) -> list[str]:
    session = requests.Session()
    rows = []
    for name, path, times in READS:
        session.get(base + path, timeout=60)  # warm
        p50, p99, status = timed(session, base + path, times)
        rows.append(f"| {name} | {p50:.1f} | {p99:.1f} | {status} |")
    return rows


def storm_rate(base: str, pgid: int, seconds: int) -> float:
    """Notifications/s of bench/storm.py's firing storm (creates, then repeats) for `seconds`."""
    run = uuid.uuid4().hex[:6]
    bodies = [notification(b, "firing", run) for b in range(2_000)]
    summary = run_wrk(base, bodies, threads=2, connections=16, seconds=seconds, pgid=pgid)
    return summary["requests"] / (summary["duration_us"] / 1e6)


def prune_with_webhooks(url: str, base: str) -> tuple[float, float, float, int]:
    """The prune's seconds, and the webhook p50, p99, max in ms answered one after another while it runs."""
    durations: list[float] = []
    done = threading.Event()
    run = uuid.uuid4().hex[:6]

    def post() -> None:
        session = requests.Session()
        headers = {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"}
        batch = 0
        while not done.is_set():
            body = notification(batch, "firing", run)
            started = time.perf_counter()
            answer = session.post(base + "/api/v1/alerts/alertmanager", data=body, headers=headers, timeout=60)
            durations.append(1000 * (time.perf_counter() - started))
            assert answer.status_code == 200, answer.text
            batch += 1
            time.sleep(0.01)

    poster = threading.Thread(target=post)
    poster.start()
    time.sleep(1)
    durations.clear()
    env = {**os.environ, "BRIDGE_DATABASE_URL": url, "BRIDGE_RULES": str(ROOT / "rules.yaml")}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "bridge", "prune"], check=True, capture_output=True, env=env, cwd=ROOT)
    seconds = time.monotonic() - started
    done.set()
    poster.join()
    durations.sort()
    return seconds, durations[len(durations) // 2], durations[int(len(durations) * 0.99)], len(durations)


def timed_migrate(url: str) -> tuple[str, float]:
    """Take the schema one revision back, then time `migrate` to the newest: (from revision, seconds)."""
    config = _alembic_config(url)
    alembic_command.downgrade(config, "-1")
    engine = make_engine(url)
    with engine.connect() as conn:
        revision = str(conn.execute(sa.text("SELECT version_num FROM alembic_version")).scalar_one())
    engine.dispose()
    env = {**os.environ, "BRIDGE_DATABASE_URL": url, "BRIDGE_RULES": str(ROOT / "rules.yaml")}
    started = time.monotonic()
    subprocess.run([sys.executable, "-m", "bridge", "migrate"], check=True, capture_output=True, env=env, cwd=ROOT)
    return revision, time.monotonic() - started


def measure(store: str, incidents: int, bodies: int, storm_seconds: int, steps: set[str]) -> None:
    extra = {"BRIDGE_RUN_WORKER": "0"}
    print(
        f"## {store}, {incidents:,} incidents, {bodies:,} bodies; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}"
    )
    empty_rate = 0.0
    if "storm" in steps:
        with database(store) as url, bridge(url, 1, extra) as (base, sampler):
            empty_rate = storm_rate(base, sampler.pgid, storm_seconds)
    with database(store) as url:
        migrate(url)
        started = time.monotonic()
        timings = load(url, incidents, bodies)
        print(
            f"loaded in {time.monotonic() - started:.0f} s: " + ", ".join(f"{k} {v:.0f} s" for k, v in timings.items())
        )
        with bridge(url, 1, extra) as (base, sampler):
            if "reads" in steps:
                print("| read | p50 ms | p99 ms | status |\n|---|---|---|---|")
                for line in reads(base):
                    print(line, flush=True)
            if "storm" in steps:
                rate = storm_rate(base, sampler.pgid, storm_seconds)
                print(
                    f"storm: {rate:,.0f} notifications/s here, {empty_rate:,.0f} on an empty database "
                    f"({100 * rate / empty_rate:.0f}%)",
                    flush=True,
                )
            if "prune" in steps:
                seconds, p50, p99, count = prune_with_webhooks(url, base)
                print(
                    f"prune of {bodies:,} bodies: {seconds:.1f} s; webhooks meanwhile: p50 {p50:.1f} ms, "
                    f"p99 {p99:.1f} ms ({count} posted)",
                    flush=True,
                )
        if "migrate" in steps:
            revision, seconds = timed_migrate(url)
            print(f"migrate from {revision} to the newest: {seconds:.1f} s", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="postgres")
    parser.add_argument("--incidents", type=int, default=10_000_000)
    parser.add_argument("--bodies", type=int, default=2_000_000)
    parser.add_argument("--storm-seconds", type=int, default=10)
    parser.add_argument("--steps", default="reads,storm,prune,migrate")
    args = parser.parse_args()
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    for store in stores:
        measure(store, args.incidents, args.bodies, args.storm_seconds, set(args.steps.split(",")))


if __name__ == "__main__":
    main()
