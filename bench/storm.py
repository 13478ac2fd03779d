"""Benchmark: an alert storm, a steady stream, and alert-to-Jira latency, against the bridge as users run it.

The bridge runs under `incident-bridge serve` (the server of BRIDGE_HTTP_SERVER, production
settings) on SQLite or PostgreSQL; wrk (bench/notifications.lua) drives Alertmanager-shaped
load, so the load generator is C, not the bottleneck. Prints one markdown table row per
workload and store, with the CPU time the server's processes spent per notification (from
/proc, before and after each run) and, for the storm, the share of the same server's no-op
ceiling (BRIDGE_BENCH_NOOP_ENDPOINT: the same requests to an endpoint that only parses the
body and answers).

Workloads:
- storm: the no-op ceiling first (10 s), then 20,000 distinct alerts, 10 per notification; wrk cycles through the 2,000 firing
  notifications for 30 s (each re-sent many times: repeats), then through the 2,000 resolved
  ones for 15 s. Correct when incidents == distinct fingerprints (20,000), the occurrences
  add up to 10 per answered notification (wrk cannot stop on a count, so up to one request
  per connection may be processed after its count closes), and every incident ends resolved.
- create: 20,000 distinct notifications (200,000 new alerts) for 6 s: creates only.
- steady: a paced stream (about 500 notifications/s: 14 connections, 22 ms apart) for latency.
- jira: time from an alert's notification being accepted to its problem's Jira issue
  existing in the fake Jira (tests/fakes.py), with the background worker running.

Run: make bench   (or: PYTHONPATH=. .venv/bin/python bench/storm.py --store sqlite --workload storm)
"""

from __future__ import annotations

import argparse
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import orjson
import psycopg
import requests
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parent.parent
PG_ADMIN_URL = os.environ.get("BRIDGE_TEST_PG_ADMIN_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
TOKEN = "bench-token"
ALERTS = 20_000
PER_NOTIFICATION = 10
# Concurrent senders of the storm and creates (wrk's connections); --connections changes it.
STORM_CONNECTIONS = 16
SENDS = 3
SERVER = os.environ.get("BRIDGE_HTTP_SERVER", "granian")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def notification(batch: int, status: str, run: str) -> bytes:
    alerts = []
    for i in range(PER_NOTIFICATION):
        fingerprint = f"{batch:08x}{i:08x}"
        alerts.append(
            {
                "status": status,
                "fingerprint": fingerprint,
                "labels": {
                    "alertname": "StormDependencyDown",
                    "service": "lkk",
                    "instance": f"host-{batch}-{i}:9100",
                    "severity": "critical",
                    "job": "node",
                },
                "annotations": {"summary": f"Dependency down on host-{batch}-{i}"},
                "startsAt": "2026-11-25T10:00:00Z",
                "endsAt": "2026-11-25T10:30:00Z" if status == "resolved" else "0001-01-01T00:00:00Z",
                "generatorURL": "http://prometheus.local/graph",
            }
        )
    return orjson.dumps(
        {
            "receiver": "bridge",
            "status": status,
            "alerts": alerts,
            "groupLabels": {},
            "commonLabels": {},
            "commonAnnotations": {},
            "externalURL": "http://am",
            "version": "4",
            "groupKey": f'{{}}:{{run="{run}", batch="{batch}"}}',
            "truncatedAlerts": 0,
        }
    )


@contextmanager
def database(store: str) -> Iterator[str]:
    if store == "sqlite":
        directory = tempfile.mkdtemp(prefix="bench-sqlite-")
        try:
            yield f"sqlite:///{directory}/bench.db"
        finally:
            shutil.rmtree(directory, ignore_errors=True)
        return
    name = f"bridge_bench_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        yield PG_ADMIN_URL.rsplit("/", 1)[0] + "/" + name
    finally:
        with psycopg.connect(PG_ADMIN_URL, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


class RssSampler(threading.Thread):
    """Peak RSS of every process in the server's process group, sampled every 100 ms."""

    def __init__(self, pgid: int) -> None:
        super().__init__(daemon=True)
        self.pgid = pgid
        self.peak: dict[int, int] = {}
        self.stop = threading.Event()

    def run(self) -> None:
        while not self.stop.is_set():
            for entry in Path("/proc").iterdir():
                if not entry.name.isdigit():
                    continue
                try:
                    stat = (entry / "stat").read_text().rsplit(")", 1)[1].split()
                    if int(stat[2]) != self.pgid:
                        continue
                    rss_kb = next(
                        int(line.split()[1])
                        for line in (entry / "status").read_text().splitlines()
                        if line.startswith("VmRSS:")
                    )
                except (OSError, StopIteration, IndexError, ValueError):
                    continue
                self.peak[int(entry.name)] = max(self.peak.get(int(entry.name), 0), rss_kb)
            self.stop.wait(0.1)


def processes_cpu_seconds(chosen: Callable[[str, list[str]], bool]) -> float:
    """User + system CPU seconds of every live process `chosen(name, stat fields after the name)`
    accepts, children that exited included (the kernel adds those to their parent's c-fields)."""
    ticks = 0
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            head, _, tail = (entry / "stat").read_text().rpartition(")")
        except OSError:
            continue
        stat = tail.split()
        if chosen(head.partition("(")[2], stat):
            ticks += sum(int(value) for value in stat[11:15])  # utime, stime, cutime, cstime
    return ticks / os.sysconf("SC_CLK_TCK")


def group_cpu_seconds(pgid: int) -> float:
    """CPU seconds of every live process in a process group (the server, its workers), exited children included."""
    return processes_cpu_seconds(lambda _name, stat: int(stat[2]) == pgid)


@contextmanager
def bridge(url: str, workers: int, extra_env: dict[str, str] | None = None) -> Iterator[tuple[str, RssSampler]]:
    env = {
        **os.environ,
        "BRIDGE_DATABASE_URL": url,
        "BRIDGE_RULES": str(ROOT / "rules.yaml"),
        "BRIDGE_TOKEN_ALERTMANAGER": TOKEN,
        "BRIDGE_LOG_LEVEL": "WARNING",
        "BRIDGE_HTTP_WORKERS": str(workers),
        "BRIDGE_HTTP_SERVER": SERVER,
        # The no-op endpoint the storm measures the server's own ceiling with (off in production).
        "BRIDGE_BENCH_NOOP_ENDPOINT": "1",
        **(extra_env or {}),
    }
    env.pop("PROMETHEUS_MULTIPROC_DIR", None)
    subprocess.run([sys.executable, "-m", "bridge", "migrate"], check=True, capture_output=True, env=env, cwd=ROOT)
    port = free_port()
    env["BRIDGE_BIND"] = f"127.0.0.1:{port}"
    with served([sys.executable, "-m", "bridge", "serve"], env, port) as running:
        yield running


@contextmanager
def served(command: list[str], env: dict[str, str], port: int) -> Iterator[tuple[str, RssSampler]]:
    """A server started in its own process group: its base URL once /readyz answers, and the sampler
    of the group's RSS; SIGTERM to the whole group at the end."""
    process = subprocess.Popen(
        command,
        env=env,
        cwd=ROOT,
        start_new_session=True,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    base = f"http://127.0.0.1:{port}"
    for _ in range(100):
        try:
            if requests.get(base + "/readyz", timeout=1).status_code == 200:
                break
        except requests.ConnectionError:
            time.sleep(0.2)
    sampler = RssSampler(process.pid)
    sampler.start()
    try:
        yield base, sampler
    finally:
        sampler.stop.set()
        os.killpg(process.pid, signal.SIGTERM)
        process.wait(timeout=60)


def run_wrk(
    base: str,
    bodies: list[bytes],
    threads: int,
    connections: int,
    seconds: int,
    delay_ms: int = 0,
    path: str = "/api/v1/alerts/alertmanager",
    pgid: int | None = None,
) -> dict:
    """wrk's summary, with `cpu_seconds` the server's process group spent meanwhile (when `pgid` is given)."""
    with tempfile.NamedTemporaryFile("wb", suffix=".jsonl", delete=False) as handle:
        handle.write(b"\n".join(bodies) + b"\n")
    env = {
        **os.environ,
        "BENCH_BODIES": handle.name,
        "BENCH_THREADS": str(threads),
        "BENCH_TOKEN": TOKEN,
        "BENCH_DELAY_MS": str(delay_ms),
    }
    cpu_before = group_cpu_seconds(pgid) if pgid is not None else 0.0
    result = subprocess.run(
        [
            "wrk",
            "-t",
            str(threads),
            "-c",
            str(connections),
            "-d",
            f"{seconds}s",
            "--timeout",
            "30s",
            "-s",
            str(ROOT / "bench" / "notifications.lua"),
            base + path,
        ],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    )
    summary = json.loads(result.stdout.strip().splitlines()[-1])
    os.unlink(handle.name)
    summary["cpu_seconds"] = group_cpu_seconds(pgid) - cpu_before if pgid is not None else None
    return summary


def counts(url: str) -> tuple[int, int, int]:
    engine = sa.create_engine(url.replace("postgresql://", "postgresql+psycopg://"))
    with engine.connect() as conn:
        row = conn.execute(
            sa.text(
                "SELECT count(*), coalesce(sum(occurrences), 0), "
                "sum(CASE WHEN state = 'resolved' THEN 1 ELSE 0 END) FROM incidents"
            )
        ).one()
    engine.dispose()
    return int(row[0]), int(row[1]), int(row[2] or 0)


def row(
    workload: str,
    store: str,
    summary: dict,
    alerts_per: int,
    rss: dict[int, int],
    correct: str,
    ceiling: dict | None = None,
) -> str:
    """A table row; CPU ms per notification from the server's process group, and the share of the no-op ceiling."""
    seconds = summary["duration_us"] / 1e6
    rate = summary["requests"] / seconds
    peak = max(rss.values()) / 1024 if rss else 0
    cpu = summary.get("cpu_seconds")
    cpu_text = f"{1000 * cpu / max(summary['requests'], 1):.2f}" if cpu is not None else ""
    share = ""
    if ceiling is not None:
        share = f"{100 * rate / (ceiling['requests'] / (ceiling['duration_us'] / 1e6)):.0f}%"
    return (
        f"| {workload} | {store} | {SERVER} | {rate:,.0f} | {rate * alerts_per:,.0f} | "
        f"{summary['p50_us'] / 1000:.1f} | {summary['p99_us'] / 1000:.1f} | {cpu_text} | {share} | {peak:.0f} | "
        f"{correct} |"
    )


def storm(store: str, workers: int, connections: int = STORM_CONNECTIONS) -> list[str]:
    """The no-op ceiling, then creates and repeats of 20,000 alerts, then their resolves, on one server."""
    batches = ALERTS // PER_NOTIFICATION
    run = uuid.uuid4().hex[:6]
    firing = [notification(b, "firing", run) for b in range(batches)]
    resolved = [notification(b, "resolved", run) for b in range(batches)]
    with database(store) as url, bridge(url, workers, {"BRIDGE_RUN_WORKER": "0"}) as (base, sampler):
        noop = run_wrk(
            base, firing, threads=2, connections=connections, seconds=10, path="/bench/noop", pgid=sampler.pgid
        )
        fire = run_wrk(base, firing, threads=2, connections=connections, seconds=30, pgid=sampler.pgid)
        time.sleep(1)
        incidents, occurrences, _ = counts(url)
        answered = fire["requests"] - fire["status_errors"]
        fire_ok = (
            incidents == ALERTS
            and fire["status_errors"] == 0
            and answered * PER_NOTIFICATION <= occurrences <= (answered + connections) * PER_NOTIFICATION
        )
        # Long enough for every resolved notification to go out at least once at the firing rate.
        fire_rate = fire["requests"] / (fire["duration_us"] / 1e6)
        resolve = run_wrk(
            base,
            resolved,
            threads=2,
            connections=connections,
            seconds=max(15, int(3 * len(resolved) / max(fire_rate, 1)) + 1),
            pgid=sampler.pgid,
        )
        time.sleep(1)
        incidents_after, _, resolved_count = counts(url)
        resolve_ok = incidents_after == ALERTS and resolved_count == ALERTS and resolve["status_errors"] == 0
        rss = dict(sampler.peak)
    return [
        row("no-op endpoint (ceiling)", store, noop, PER_NOTIFICATION, rss, f"{noop['status_errors']} errors"),
        row(
            "storm: firing, re-sent",
            store,
            fire,
            PER_NOTIFICATION,
            rss,
            f"{'yes' if fire_ok else 'NO'} ({incidents} incidents, {occurrences} occurrences for {answered} answers)",
            noop,
        ),
        row(
            "storm: resolve",
            store,
            resolve,
            PER_NOTIFICATION,
            rss,
            f"{'yes' if resolve_ok else 'NO'} ({resolved_count} resolved)",
            noop,
        ),
    ]


CREATE_NOTIFICATIONS = 20_000


def create(store: str, workers: int, connections: int = STORM_CONNECTIONS) -> list[str]:
    """Creates only: distinct notifications (10 new alerts each), none sent twice unless wrk runs out of them."""
    run = uuid.uuid4().hex[:6]
    bodies = [notification(b, "firing", run) for b in range(CREATE_NOTIFICATIONS)]
    with database(store) as url, bridge(url, workers, {"BRIDGE_RUN_WORKER": "0"}) as (base, sampler):
        summary = run_wrk(base, bodies, threads=2, connections=connections, seconds=6, pgid=sampler.pgid)
        time.sleep(1)
        incidents, _, _ = counts(url)
    answered = summary["requests"] - summary["status_errors"]
    ok = (
        summary["status_errors"] == 0
        and summary["requests"] <= CREATE_NOTIFICATIONS
        and answered * PER_NOTIFICATION <= incidents <= (answered + connections) * PER_NOTIFICATION
    )
    return [
        row(
            "storm: creates only",
            store,
            summary,
            PER_NOTIFICATION,
            sampler.peak,
            f"{'yes' if ok else 'NO'} ({incidents} incidents for {answered} answers)",
        )
    ]


def steady(store: str, workers: int) -> list[str]:
    run = uuid.uuid4().hex[:6]
    # 14 connections, each pausing 22 ms between requests: about 500 notifications/s at a 6 ms answer.
    bodies = [notification(b, "firing", run) for b in range(2_000)]
    with database(store) as url, bridge(url, workers, {"BRIDGE_RUN_WORKER": "0"}) as (base, sampler):
        summary = run_wrk(base, bodies, threads=1, connections=14, seconds=20, delay_ms=22, pgid=sampler.pgid)
    return [
        row(
            "steady (paced)",
            store,
            summary,
            PER_NOTIFICATION,
            sampler.peak,
            f"{'yes' if summary['status_errors'] == 0 else 'NO'} ({summary['status_errors']} errors)",
        )
    ]


def jira_latency(store: str, workers: int) -> list[str]:
    sys.path.insert(0, str(ROOT))
    from tests.fakes import FakeJira

    latencies = []
    with (
        FakeJira() as jira,
        database(store) as url,
        bridge(
            url,
            workers,
            {
                "BRIDGE_RUN_WORKER": "1",
                "BRIDGE_WORKER_INTERVAL_SECONDS": "0.2",
                "BRIDGE_JIRA_URL": jira.url,
                "BRIDGE_JIRA_EMAIL": "bot@example.com",
                "BRIDGE_JIRA_API_TOKEN": "jira-token",
            },
        ) as (base, _),
    ):
        for n in range(20):
            body = orjson.loads(notification(n, "firing", "jira"))
            for alert in body["alerts"]:
                alert["labels"]["alertname"] = f"JiraLatency{n}"  # one new problem per notification
            started = time.monotonic()
            answer = requests.post(
                base + "/api/v1/alerts/alertmanager",
                data=orjson.dumps(body),
                timeout=10,
                headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
            )
            assert answer.status_code == 200
            while len(jira.issues()) <= n:
                time.sleep(0.01)
            latencies.append(time.monotonic() - started)
    latencies.sort()
    return [
        f"| alert -> Jira issue | {store} | {SERVER} | p50 {latencies[len(latencies) // 2]:.2f} s | "
        f"max {latencies[-1]:.2f} s | worker interval 0.2 s | | | | | 20/20 issues created, one each |"
    ]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--store", choices=["sqlite", "postgres", "both"], default="both")
    parser.add_argument("--workload", choices=["storm", "create", "steady", "jira", "all"], default="all")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument(
        "--connections", type=int, default=STORM_CONNECTIONS, help="concurrent senders of the storm and creates"
    )
    args = parser.parse_args()
    stores = ["sqlite", "postgres"] if args.store == "both" else [args.store]
    workloads = ["storm", "create", "steady", "jira"] if args.workload == "all" else [args.workload]
    print(f"{SERVER}, {args.workers} worker processes; {os.cpu_count()} cores; load {os.getloadavg()[0]:.2f}")
    print(
        "| workload | store | server | notifications/s | alerts/s | p50 ms | p99 ms | server CPU ms per notification "
        "| share of the no-op ceiling | peak RSS MB (max process) | correct |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|")
    workload_of = {
        "storm": functools.partial(storm, connections=args.connections),
        "create": functools.partial(create, connections=args.connections),
        "steady": steady,
        "jira": jira_latency,
    }
    for workload in workloads:
        for store in stores:
            for line in workload_of[workload](store, args.workers):
                print(line, flush=True)


if __name__ == "__main__":
    main()
