"""Benchmark: the monthly service report of a site holding a million incidents (target: under 2 s on PostgreSQL).

Loads the data set set-based (one INSERT ... SELECT over a generated series per table, a
minute or so), then times the report of October 2026 in Europe/Moscow: the JSON report
(`service_report`, every figure of both months) and the CSV export of the month's incidents
(streamed page by page; the process's peak RSS is reported). `--months 12` spreads the
incidents over a year (a month holds a twelfth); `--months 1` puts them all in the month.
Run: PYTHONPATH=. .venv/bin/python bench/report.py [--incidents N] [--months M] [--stores postgres,sqlite]
"""

from __future__ import annotations

import argparse
import os
import resource
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import orjson
import psycopg
import sqlalchemy as sa

from bridge.domain.reports import month_period
from bridge.reports.exports import incidents_csv
from bridge.reports.service import report_scope, service_report
from bridge.rules.load import load_rules
from bridge.storage.engine import migrate
from bridge.storage.store import Store

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BRIDGE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
ZONE = ZoneInfo("Europe/Moscow")
PERIOD = month_period(2026, 10, ZONE)
NOW = datetime(2026, 11, 3, 12, tzinfo=UTC)
PROBLEMS = 20_000
RELEASES = 60


def _instant(dialect: str) -> Callable[[str], str]:
    """SQL for the instant `seconds` after the data set's start, as each backend stores a UtcDateTime."""
    if dialect == "postgresql":
        return lambda seconds: f"(CAST(:start AS TIMESTAMPTZ) + ({seconds}) * INTERVAL '1 second')"
    return lambda seconds: f"(strftime('%Y-%m-%d %H:%M:%S', :start, '+' || ({seconds}) || ' seconds') || '.000000')"


def _series(dialect: str, count: str) -> str:
    """A FROM clause yielding i = 1..count."""
    if dialect == "postgresql":
        return f"generate_series(1, {count}) AS g(i)"
    return f"(WITH RECURSIVE g(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM g WHERE i < {count}) SELECT i FROM g) AS g"


def load(store: Store, incidents: int, start: datetime, span_seconds: int) -> float:
    """The data set, set-based: incidents over the span (a tenth tickets of two systems, a fifth of Zabbix,
    five priorities, 5% still firing, 60% acknowledged, 80% in one of PROBLEMS problems), problems with
    their events (linked, released, closed by hand, regressed) and RELEASES releases. Returns seconds taken."""
    dialect = store.engine.dialect.name
    at = _instant(dialect)
    json = "CAST({} AS JSONB)" if dialect == "postgresql" else "{}"
    first = f"(CAST(g.i AS BIGINT) * {span_seconds} / {incidents})"
    took = "(600 + (g.i * 37) % 36000)"
    acked = "(60 + (g.i * 13) % 3000)"
    firing = "g.i % 20 = 3"
    ticket = "g.i % 20 IN (0, 1)"
    system = "CASE WHEN g.i % 40 < 20 THEN 'itsm' ELSE 'portal' END"
    labels = json.format(
        f"""CASE WHEN {ticket} THEN '{{"ticket_system": "' || {system} || '"}}' ELSE '{{"alertname": "Bench"}}' END"""
    )
    empty = json.format("'{}'")
    summary = json.format(
        """'{"closed_problems": [' || (g.i * 3) || ', ' || (g.i * 3 + 1) || '], "closed_incidents": 40, "tickets_told": 2}'"""
    )
    incident_sql = f"""
        INSERT INTO incidents (dedup_key, source, state, line, impact, urgency, priority, route, summary, labels,
            annotations, occurrences, reopen_count, first_seen, last_seen, resolved_at, closed_at, problem_id,
            sla_elapsed_seconds, sla_running_since, sla_due, sla_breached, acknowledged_at, acknowledged_by,
            response_due, response_breached)
        SELECT 'bench:' || g.i,
            CASE WHEN {ticket} THEN 'ticket' WHEN g.i % 20 BETWEEN 2 AND 5 THEN 'zabbix'
                 WHEN g.i % 20 = 6 THEN 'grafana' WHEN g.i % 20 = 7 THEN 'events' ELSE 'alertmanager' END,
            CASE WHEN {firing} THEN 'firing' WHEN g.i % 10 = 4 THEN 'resolved' ELSE 'closed' END,
            'L3', 'high', 'high', 'P' || (1 + (g.i * 7) % 5), 'bench', 'bench',
            {labels}, {empty}, 1, 0, {at(first)}, {at(first)},
            CASE WHEN {firing} THEN NULL ELSE {at(first + " + " + took)} END,
            CASE WHEN {firing} OR g.i % 10 = 4 THEN NULL ELSE {at(first + " + " + took + " + 86400")} END,
            CASE WHEN g.i % 5 = 0 THEN NULL ELSE 1 + g.i % {PROBLEMS} END,
            CASE WHEN {firing} THEN 0 ELSE {took} END,
            CASE WHEN {firing} THEN {at(first)} ELSE NULL END,
            CASE WHEN {firing} THEN {at(first + " + 14400")} ELSE NULL END,
            {took} > 14400,
            CASE WHEN g.i % 5 < 3 THEN {at(first + " + " + acked)} ELSE NULL END,
            CASE WHEN g.i % 5 < 3 THEN 'bench' ELSE NULL END,
            CASE WHEN (g.i * 7) % 5 < 3 THEN {at(first + " + 1800")} ELSE NULL END,
            (g.i * 7) % 5 < 3 AND g.i % 5 < 3 AND {acked} > 1800
        FROM {_series(dialect, str(incidents))}
    """
    opened = f"(CAST(g.i AS BIGINT) * {span_seconds} / {PROBLEMS})"
    problem_sql = f"""
        INSERT INTO problems (problem_key, rule, state, summary, description, incident_count, opened_at, regressions,
            comment_pending, jira_project, jira_key)
        SELECT 'bench/' || g.i, 'portal-errors', CASE g.i % 3 WHEN 0 THEN 'closed' WHEN 1 THEN 'known_error' ELSE 'open' END,
            'bench problem ' || g.i, '', 0, {at(opened)}, 0, 0, 'LKK', 'LKK-' || g.i
        FROM {_series(dialect, str(PROBLEMS))}
    """
    events = [
        ("opened", "1 = 1", "0", "NULL"),
        ("linked", "g.i % 2 = 0", "3600", "NULL"),
        ("released", "g.i % 3 = 0", "864000", "NULL"),
        ("closed", "g.i % 7 = 0", "432000", "'Ann'"),
        ("regressed", "g.i % 11 = 0", "1728000", "NULL"),
    ]
    event_sql = [
        f"""
        INSERT INTO problem_events (problem_id, at, kind, detail, actor, release_version)
        SELECT g.i, {at(opened + " + " + offset)}, '{kind}', 'bench', {actor},
            CASE WHEN '{kind}' = 'regressed' THEN '1.' || (g.i % {RELEASES}) ELSE NULL END
        FROM {_series(dialect, str(PROBLEMS))} WHERE {where}
        """
        for kind, where, offset, actor in events
    ]
    shipped = f"(CAST(g.i AS BIGINT) * {span_seconds} / {RELEASES})"
    release_sql = f"""
        INSERT INTO releases (project, version, released_at, received_at, via, summary)
        SELECT 'LKK', '1.' || g.i, {at(shipped)}, {at(shipped)}, 'pipeline',
            {summary}
        FROM {_series(dialect, str(RELEASES))}
    """
    started = time.perf_counter()
    with store.engine.begin() as conn:
        for statement in (incident_sql, problem_sql, *event_sql, release_sql):
            conn.execute(
                sa.text(statement), {"start": start.strftime("%Y-%m-%d %H:%M:%S") if dialect == "sqlite" else start}
            )
    with store.engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        conn.execute(sa.text("VACUUM ANALYZE" if dialect == "postgresql" else "ANALYZE"))
    return time.perf_counter() - started


def backends_cpu(database: str | None) -> float:
    """CPU seconds the PostgreSQL backends serving `database` have used (from /proc: the server is on this
    machine): with the bench's own CPU time, what a report costs whatever else the machine runs."""
    if database is None:
        return 0.0
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        pids = [pid for (pid,) in conn.execute("SELECT pid FROM pg_stat_activity WHERE datname = %s", (database,))]
    ticks = 0
    for pid in pids:
        try:
            fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        ticks += int(fields[11]) + int(fields[12])  # utime, stime
    return ticks / os.sysconf("SC_CLK_TCK")


def measure(store: Store, rounds: int, database: str | None) -> dict[str, float]:
    """Median and max wall seconds of the JSON report, the median CPU seconds it cost (this process and the
    database's backends), and the seconds of streaming the month's incidents as CSV."""
    rules = load_rules(ROOT / "rules.yaml")
    service_report(store, rules, PERIOD, NOW)  # the pool's connection, the calendars' days: once per process
    reports, cpus, exports = [], [], []
    rows = 0
    for _ in range(rounds):
        cpu_before = time.process_time() + backends_cpu(database)
        started = time.perf_counter()
        report = service_report(store, rules, PERIOD, NOW)
        orjson.dumps(report)
        reports.append(time.perf_counter() - started)
        cpus.append(time.process_time() + backends_cpu(database) - cpu_before)
    for _ in range(max(1, rounds // 2)):
        started = time.perf_counter()
        scope = report_scope(PERIOD, NOW, rules, None)
        rows = sum(chunk.count("\r\n") for chunk in incidents_csv(store.incident_export(scope))) - 1
        exports.append(time.perf_counter() - started)
    return {
        "incidents_in_month": report["current"]["incidents"]["total"],
        "exported_rows": rows,
        "report_median": statistics.median(reports),
        "report_max": max(reports),
        "report_cpu": statistics.median(cpus),
        "export_median": statistics.median(exports),
        "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--incidents", type=int, default=1_000_000)
    parser.add_argument(
        "--months", type=int, default=12, help="months the incidents spread over, ending with October 2026"
    )
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--stores", default="postgres", help="comma-separated: postgres, sqlite")
    args = parser.parse_args()
    start = PERIOD.ends_at - timedelta(days=round(30.44 * args.months)) if args.months > 1 else PERIOD.starts_at
    span = int((PERIOD.ends_at - start).total_seconds()) - 1
    print(f"service report: {args.incidents:,} incidents over {args.months} month(s), October 2026 in Moscow")
    print(f"machine load average before: {os.getloadavg()[0]:.1f} ({os.cpu_count()} cores)")
    print(
        "| store | load s | incidents in the month | report median s | report max s | report CPU s "
        "| CSV export s (rows) | peak RSS MB |"
    )
    print("|---|---|---|---|---|---|---|---|")
    for backend in args.stores.split(","):
        name = f"bridge_bench_{uuid.uuid4().hex[:8]}"
        if backend == "postgres":
            with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            url = PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
        else:
            url = f"sqlite:///{tempfile.mkdtemp()}/bench.db"
        try:
            migrate(url)
            store = Store.from_url(url)
            loaded = load(store, args.incidents, start, span)
            got = measure(store, args.rounds, name if backend == "postgres" else None)
            store.engine.dispose()
            print(
                f"| {backend} | {loaded:.0f} | {got['incidents_in_month']:,} | {got['report_median']:.3f} | "
                f"{got['report_max']:.3f} | {got['report_cpu']:.2f} | {got['export_median']:.2f} ({got['exported_rows']:,}) "
                f"| {got['peak_rss_mb']:.0f} |"
            )
        finally:
            if backend == "postgres":
                with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


if __name__ == "__main__":
    main()
