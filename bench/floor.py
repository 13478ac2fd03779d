"""Benchmark: what share of the no-op ceiling a minimal durable write reaches on the same server.

Issue 15 asks the bridge for 60% of its server's no-op ceiling. This measures the most any
durable ingest can expect: a minimal design with none of the bridge's work (no routing,
lifecycle, SLA, problems, raw bodies, outbox or metrics) served by the same Granian (ASGI, 2
workers) under the same wrk load. Each notification is one transaction with one multi-row
`INSERT ... ON CONFLICT (fingerprint) DO UPDATE ... RETURNING id`, written on a thread of the
loop's default pool, one connection each; SQLite in WAL mode with synchronous=NORMAL and its
writers queued on a file lock, as the bridge's are; PostgreSQL with durable commits.

The app below (`app`) is what Granian serves; `main` runs it and wrk and prints a table:
the no-op ceiling, a storm of the bench's 20,000 alerts (creates then repeats, as
`bench/storm.py --workload storm` sends them) and creates only, with each one's share.

Run: PYTHONPATH=. .venv/bin/python bench/floor.py --store both
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import fcntl
import os
import sqlite3
import sys
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import psycopg

from bench.storm import (
    ALERTS,
    PER_NOTIFICATION,
    ROOT,
    STORM_CONNECTIONS,
    RssSampler,
    database,
    free_port,
    notification,
    row,
    run_wrk,
    served,
)
from bridge.asgi import lifespan

DATABASE_ENV = "FLOOR_DATABASE_URL"
CREATE_NOTIFICATIONS = 60_000
SCHEMA = (
    "CREATE TABLE IF NOT EXISTS alerts (id {id} PRIMARY KEY, fingerprint TEXT NOT NULL UNIQUE, "
    "status TEXT NOT NULL, labels TEXT NOT NULL, first_seen TEXT NOT NULL, last_seen TEXT NOT NULL, "
    "occurrences INTEGER NOT NULL DEFAULT 1)"
)
UPSERT = (
    "INSERT INTO alerts (fingerprint, status, labels, first_seen, last_seen) VALUES {values} "
    "ON CONFLICT (fingerprint) DO UPDATE SET status = excluded.status, last_seen = excluded.last_seen, "
    "occurrences = alerts.occurrences + 1 RETURNING id"
)


class MinimalStore:
    """One connection per worker process; one transaction per notification."""

    def __init__(self, url: str) -> None:
        self.sqlite = url.startswith("sqlite:///")
        if self.sqlite:
            path = url.removeprefix("sqlite:///")
            self.conn: Any = sqlite3.connect(path, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=NORMAL")
            self.conn.execute("PRAGMA busy_timeout=5000")
            self.lock = open(path + ".writers", "a+b")
            self.mark = "?"
        else:
            self.conn = psycopg.connect(url)
            self.mark = "%s"
        self._upserts: dict[int, str] = {}

    def upsert(self, alerts: list[dict[str, Any]]) -> list[int]:
        now = datetime.now(UTC).isoformat()
        values: list[Any] = []
        for alert in alerts:
            values += [alert["fingerprint"], alert["status"], orjson.dumps(alert["labels"]).decode(), now, now]
        statement = self._upserts.get(len(alerts))
        if statement is None:
            one = "(" + ", ".join([self.mark] * 5) + ")"
            statement = self._upserts[len(alerts)] = UPSERT.format(values=", ".join([one] * len(alerts)))
        if not self.sqlite:
            with self.conn.transaction():
                return [row[0] for row in self.conn.execute(statement, values).fetchall()]
        fcntl.flock(self.lock, fcntl.LOCK_EX)
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            try:
                ids = [row[0] for row in self.conn.execute(statement, values).fetchall()]
            except BaseException:
                self.conn.execute("ROLLBACK")
                raise
            self.conn.execute("COMMIT")
            return ids
        finally:
            fcntl.flock(self.lock, fcntl.LOCK_UN)


_local = threading.local()


def _upsert(alerts: list[dict[str, Any]]) -> list[int]:
    """On a thread of the loop's default pool, each with its own connection (and, on SQLite, its own
    open lock file, so flock queues the threads too): PostgreSQL gets the concurrent commits its
    group commit needs."""
    store = getattr(_local, "store", None)
    if store is None:
        store = _local.store = MinimalStore(os.environ[DATABASE_ENV])
    return store.upsert(alerts)


async def app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """POST /noop answers after parsing; POST /floor also upserts the alerts; GET /readyz answers."""
    if scope["type"] == "lifespan":
        await lifespan(receive, send)
        return
    chunks = []
    while scope["method"] == "POST":
        message = await receive()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            break
    status = 200
    answer: dict[str, Any] = {"status": "ok"}
    try:
        if scope["path"] != "/readyz":
            payload = orjson.loads(b"".join(chunks))
            alerts = payload["alerts"]
            if scope["path"] == "/floor":
                answer["incidents"] = await asyncio.to_thread(_upsert, alerts)
            answer["alerts"] = len(alerts)
    except (orjson.JSONDecodeError, KeyError, TypeError) as exc:
        status, answer = 400, {"error": str(exc)}
    body = orjson.dumps(answer) + b"\n"
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
        }
    )
    await send({"type": "http.response.body", "body": body})


@contextlib.contextmanager
def floor_server(url: str, workers: int) -> Iterator[tuple[str, RssSampler]]:
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute(SCHEMA.format(id="INTEGER"))
            conn.commit()
    else:
        with psycopg.connect(url) as conn:
            conn.execute(SCHEMA.format(id="BIGSERIAL"))
    port = free_port()
    command = [
        *(sys.executable, "-m", "granian", "--interface", "asgi", "--workers", str(workers)),
        *("--host", "127.0.0.1", "--port", str(port), "--log-level", "warning", "bench.floor:app"),
    ]
    with served(command, {**os.environ, DATABASE_ENV: url, "PYTHONPATH": str(ROOT)}, port) as running:
        yield running


def stored(url: str) -> tuple[int, int]:
    """Rows and occurrences the minimal store holds."""
    query = "SELECT count(*), coalesce(sum(occurrences), 0) FROM alerts"
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            found = conn.execute(query).fetchone()
    else:
        with psycopg.connect(url) as conn:
            found = conn.execute(query).fetchone()
    assert found is not None
    return int(found[0]), int(found[1])


def floor(store: str, workers: int, connections: int = STORM_CONNECTIONS) -> list[str]:
    """The no-op ceiling, the storm's firing phase and creates only, on the minimal app."""
    run = os.urandom(3).hex()
    firing = [notification(b, "firing", run) for b in range(ALERTS // PER_NOTIFICATION)]
    lines = []
    with database(store) as url, floor_server(url, workers) as (base, sampler):
        noop = run_wrk(base, firing, threads=2, connections=connections, seconds=10, path="/noop", pgid=sampler.pgid)
        fire = run_wrk(base, firing, threads=2, connections=connections, seconds=30, path="/floor", pgid=sampler.pgid)
        rows, occurrences = stored(url)
        answered = fire["requests"] - fire["status_errors"]
        fire_ok = rows == ALERTS and answered * PER_NOTIFICATION <= occurrences
        # Past the storm's batches (new fingerprints), and more than wrk sends in 6 s: none sent twice.
        creates = [notification(b, "firing", run) for b in range(ALERTS, ALERTS + CREATE_NOTIFICATIONS)]
        create = run_wrk(base, creates, threads=2, connections=connections, seconds=6, path="/floor", pgid=sampler.pgid)
        rows_after, _ = stored(url)
        create_answered = create["requests"] - create["status_errors"]
        create_ok = (
            create["requests"] <= CREATE_NOTIFICATIONS
            and create_answered * PER_NOTIFICATION
            <= rows_after - rows
            <= (create_answered + connections) * PER_NOTIFICATION
        )
        rss = dict(sampler.peak)
        lines.append(
            row("minimal: no-op endpoint", store, noop, PER_NOTIFICATION, rss, f"{noop['status_errors']} errors")
        )
        lines.append(
            row(
                "minimal upsert: storm firing",
                store,
                fire,
                PER_NOTIFICATION,
                rss,
                f"{'yes' if fire_ok else 'NO'} ({rows} rows, {occurrences} occurrences for {answered} answers)",
                noop,
            )
        )
        lines.append(
            row(
                "minimal upsert: creates only",
                store,
                create,
                PER_NOTIFICATION,
                rss,
                f"{'yes' if create_ok else 'NO'} ({rows_after - rows} rows for {create_answered} answers)",
                noop,
            )
        )
    return lines


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--connections", type=int, default=STORM_CONNECTIONS, help="concurrent senders, as bench/storm.py's"
    )
    args = parser.parse_args()
    print(f"granian (minimal ASGI app), {args.workers} worker processes; {os.cpu_count()} cores")
    print(
        "| workload | store | server | notifications/s | alerts/s | p50 ms | p99 ms | server CPU ms per notification "
        "| share of the no-op ceiling | peak RSS MB (max process) | correct |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    for store in ["sqlite", "postgres"] if args.store == "both" else [args.store]:
        for line in floor(store, args.workers, args.connections):
            print(line, flush=True)


if __name__ == "__main__":
    main()
