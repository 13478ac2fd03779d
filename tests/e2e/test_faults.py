"""Faults: kill -9 mid-storm, the database going away, a worker killed mid-create, SIGTERM, secrets in logs."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime
from pathlib import Path

import requests
import sqlalchemy as sa

from bridge.rules.load import load_rules
from bridge.storage.schema import problems
from bridge.storage.store import Store
from tests.conftest import ROOT, BridgeProcess, empty_tables, ingest, payload, wait_for
from tests.fakes import FakeJira, FakeZabbix

TOKEN = "am-fault-token"
API_TOKEN = "api-fault-token"


def migrated_sqlite(tmp_path: Path, name: str = "faults.db") -> str:
    url = f"sqlite:///{tmp_path / name}"
    subprocess.run(
        [sys.executable, "-m", "bridge", "migrate"],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "BRIDGE_DATABASE_URL": url},
    )
    return url


def notification(n: int, per: int = 5) -> tuple[bytes, list[str]]:
    body = payload("alertmanager-0.25-two-firing.json")
    template = body["alerts"][0]
    fingerprints = [f"{n:08x}{i:08x}" for i in range(per)]
    body["alerts"] = [
        dict(template, fingerprint=fp, labels=dict(template["labels"], instance=fp)) for fp in fingerprints
    ]
    return json.dumps(body).encode(), fingerprints


def send(url: str, body: bytes) -> int:
    try:
        return requests.post(
            url + "/api/v1/alerts/alertmanager",
            data=body,
            timeout=10,
            headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json"},
        ).status_code
    except requests.RequestException:
        return 0


def dedup_keys(url: str) -> list[str]:
    store = Store.from_url(url)
    with store.engine.connect() as conn:
        keys = list(conn.exec_driver_sql("SELECT dedup_key FROM incidents").scalars())
    store.engine.dispose()
    return keys


def test_kill_9_mid_storm_loses_no_acknowledged_alert_and_resends_land_once(tmp_path: Path):
    url = migrated_sqlite(tmp_path)
    env = {"BRIDGE_TOKEN_ALERTMANAGER": TOKEN, "BRIDGE_RUN_WORKER": "0"}
    notifications = [notification(n) for n in range(400)]
    acknowledged: list[str] = []
    lock = threading.Lock()
    with BridgeProcess(url, env=env) as bridge:

        def deliver(item: tuple[bytes, list[str]]) -> None:
            if send(bridge.url, item[0]) == 200:
                with lock:
                    acknowledged.extend(item[1])

        with ThreadPoolExecutor(max_workers=8) as pool:
            futures = [pool.submit(deliver, item) for item in notifications]
            wait_for(lambda: len(acknowledged) >= 300, 60, "a storm under way")
            bridge.kill_hard()
            for future in futures:
                future.result()
    assert 300 <= len(acknowledged) < 2000, "killed in the middle of the storm"
    stored = set(dedup_keys(url))
    missing = [fp for fp in acknowledged if f"alertmanager:{fp}" not in stored]
    assert missing == [], "every alert answered 200 survived kill -9"

    with BridgeProcess(url, env=env) as bridge:  # Alertmanager re-sends what was not acknowledged
        with ThreadPoolExecutor(max_workers=8) as pool:
            assert set(pool.map(lambda item: send(bridge.url, item[0]), notifications)) == {200}
    keys = dedup_keys(url)
    assert len(keys) == len(set(keys)) == 2000, "each alert landed exactly once"


class TcpProxy:
    """A loopback TCP forwarder that can cut every connection and refuse new ones (a database outage)."""

    def __init__(self, target_port: int) -> None:
        self.target_port = target_port
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.blocked = threading.Event()
        self.connections: list[socket.socket] = []
        self.lock = threading.Lock()
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            if self.blocked.is_set():
                client.close()
                continue
            upstream = socket.create_connection(("127.0.0.1", self.target_port))
            with self.lock:
                self.connections += [client, upstream]
            for source, sink in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pump, args=(source, sink), daemon=True).start()

    @staticmethod
    def _pump(source: socket.socket, sink: socket.socket) -> None:
        try:
            while data := source.recv(65536):
                sink.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (source, sink):
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def cut(self) -> None:
        self.blocked.set()
        with self.lock:
            for sock in self.connections:
                try:
                    sock.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
            self.connections.clear()

    def restore(self) -> None:
        self.blocked.clear()

    def close(self) -> None:
        self.cut()
        self.listener.close()


def test_database_down_answers_503_and_recovers_without_restart(pg_database_url: str):
    store = Store.from_url(pg_database_url)
    empty_tables(store)
    store.engine.dispose()
    proxy = TcpProxy(5432)
    proxied = pg_database_url.replace("127.0.0.1:5432", f"127.0.0.1:{proxy.port}")
    try:
        with BridgeProcess(proxied, env={"BRIDGE_TOKEN_ALERTMANAGER": TOKEN, "BRIDGE_RUN_WORKER": "0"}) as bridge:
            assert send(bridge.url, notification(1)[0]) == 200
            proxy.cut()
            assert send(bridge.url, notification(2)[0]) == 503, "Alertmanager retries 5xx, never 4xx"
            assert requests.get(bridge.url + "/readyz", timeout=10).status_code == 503
            assert requests.get(bridge.url + "/healthz", timeout=10).status_code == 200
            proxy.restore()
            wait_for(lambda: requests.get(bridge.url + "/readyz", timeout=10).status_code == 200, 20, "recovery")
            assert send(bridge.url, notification(2)[0]) == 200
    finally:
        proxy.close()
    assert len(dedup_keys(pg_database_url)) == 10


def worker_process(url: str, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bridge", "worker"],
        cwd=ROOT,
        start_new_session=True,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
        env={
            **os.environ,
            "BRIDGE_DATABASE_URL": url,
            "BRIDGE_RULES": str(ROOT / "rules.yaml"),
            "BRIDGE_WORKER_INTERVAL_SECONDS": "0.2",
            **env,
        },
    )


def open_problem_with_create_job(url: str) -> None:
    store = Store.from_url(url)
    rules = load_rules(ROOT / "rules.yaml")
    for n in range(2):
        ingest(store, rules, "alertmanager", notification(n, per=1)[0], datetime.now(UTC))
    store.engine.dispose()


def linked_key(url: str) -> str | None:
    store = Store.from_url(url)
    with store.engine.connect() as conn:
        key = conn.execute(sa.select(problems.c.jira_key)).scalar_one_or_none()
    store.engine.dispose()
    return key


def test_worker_killed_between_jira_create_and_record_makes_no_twin(tmp_path: Path):
    url = migrated_sqlite(tmp_path)
    open_problem_with_create_job(url)
    with FakeJira() as jira:
        env = {
            "BRIDGE_JIRA_URL": jira.url,
            "BRIDGE_JIRA_EMAIL": "bot@example.com",
            "BRIDGE_JIRA_API_TOKEN": "jira-token",
            "BRIDGE_JIRA_TIMEOUT_SECONDS": "60",
            "BRIDGE_OUTBOX_LEASE_SECONDS": "2",
        }
        jira.fail("POST", r"/rest/api/3/issue$", lose_answer=True, delay=30)
        first = worker_process(url, env, tmp_path / "worker.log")
        wait_for(lambda: len(jira.issues()) == 1, 20, "Jira to create the issue")
        os.killpg(first.pid, signal.SIGKILL)  # the answer never reached us: nothing recorded
        first.wait()
        assert linked_key(url) is None
        second = worker_process(url, env, tmp_path / "worker.log")
        try:
            wait_for(lambda: linked_key(url) is not None, 30, "the restarted worker to find the issue")
        finally:
            second.send_signal(signal.SIGTERM)
            second.wait(timeout=30)
        assert [issue["key"] for issue in jira.issues()] == [linked_key(url)]
        assert len(jira.calls("POST", r"/rest/api/3/issue$")) == 1


def test_sigterm_lets_the_worker_finish_its_current_job(tmp_path: Path):
    url = migrated_sqlite(tmp_path)
    open_problem_with_create_job(url)
    with FakeJira() as jira:
        jira.fail("POST", r"/rest/api/3/issue$", delay=3)  # slow, but answered
        env = {
            "BRIDGE_JIRA_URL": jira.url,
            "BRIDGE_JIRA_EMAIL": "bot@example.com",
            "BRIDGE_JIRA_API_TOKEN": "jira-token",
        }
        worker = worker_process(url, env, tmp_path / "worker.log")
        wait_for(lambda: bool(jira.calls("GET", r"/search/jql")), 20, "the create job to start")
        time.sleep(0.5)
        worker.send_signal(signal.SIGTERM)
        assert worker.wait(timeout=30) == 0
        assert linked_key(url) == jira.issues()[0]["key"], "the job in flight was finished and recorded"


def test_no_secret_appears_in_logs_answers_or_the_api(tmp_path: Path):
    secrets = {
        "BRIDGE_TOKEN_ALERTMANAGER": "am-SECRET-1a2b",
        "BRIDGE_TOKEN_ZABBIX": "zbx-SECRET-3c4d",
        "BRIDGE_TOKEN_RELEASE": "rel-SECRET-5e6f",
        "BRIDGE_TOKEN_API": "api-SECRET-7a8b",
        "BRIDGE_TOKEN_OPERATE": "op-SECRET-8c9d",
        "BRIDGE_JIRA_API_TOKEN": "jira-SECRET-9c0d",
        "BRIDGE_ZABBIX_API_TOKEN": "zabbix-SECRET-e1f2",
        "BRIDGE_JIRA_WEBHOOK_SECRET": "hook-SECRET-3a4b",
    }
    url = migrated_sqlite(tmp_path)
    with (
        FakeJira(api_token=secrets["BRIDGE_JIRA_API_TOKEN"]) as jira,
        FakeZabbix(api_token=secrets["BRIDGE_ZABBIX_API_TOKEN"]) as zabbix,
    ):
        env = {
            **secrets,
            "BRIDGE_JIRA_URL": jira.url,
            "BRIDGE_JIRA_EMAIL": "bot@example.com",
            "BRIDGE_ZABBIX_URL": zabbix.url,
            "BRIDGE_WORKER_INTERVAL_SECONDS": "0.2",
            "BRIDGE_LOG_LEVEL": "DEBUG",
        }
        jira.fail("GET", r"/search/jql", status=500)  # one failure on the way: errors get logged
        answers = []
        with BridgeProcess(url, env=env) as bridge:
            am = {"Authorization": f"Bearer {secrets['BRIDGE_TOKEN_ALERTMANAGER']}", "Content-Type": "application/json"}
            api = {"Authorization": f"Bearer {secrets['BRIDGE_TOKEN_API']}"}
            for n in range(3):
                answers.append(
                    requests.post(
                        bridge.url + "/api/v1/alerts/alertmanager",
                        headers=am,
                        timeout=10,
                        data=notification(n, per=1)[0],
                    ).text
                )
            answers.append(
                requests.post(
                    bridge.url + "/api/v1/alerts/alertmanager",
                    timeout=10,
                    data=b"{}",
                    headers={"Authorization": "Bearer wrong", "Content-Type": "application/json"},
                ).text
            )
            answers.append(
                requests.post(bridge.url + "/api/v1/alerts/alertmanager", headers=am, data=b"{bad", timeout=10).text
            )
            wait_for(lambda: bool(jira.issues()), 30, "the Jira issue")
            key = jira.issues()[0]["key"]
            release = {"Authorization": f"Bearer {secrets['BRIDGE_TOKEN_RELEASE']}"}
            answers.append(
                requests.post(
                    bridge.url + "/api/v1/releases",
                    headers=release,
                    timeout=10,
                    json={"version": "1.0", "project": "LKK", "issues": [key]},
                ).text
            )
            for path in (
                "/api/v1/incidents",
                "/api/v1/problems",
                "/api/v1/outbox",
                "/api/v1/rejected",
                "/api/v1/releases",
                "/metrics",
            ):
                answers.append(requests.get(bridge.url + path, headers=api, timeout=10).text)
            time.sleep(1)
            log = bridge.output()
    assert "Jira search answered HTTP 500" in log or "will be retried" in log, "the run did log a Jira failure"
    for name, value in secrets.items():
        assert value not in log, f"{name} leaked into the logs"
        for answer in answers:
            assert value not in answer, f"{name} leaked into an HTTP answer"


def test_sigterm_drains_requests_in_flight(tmp_path: Path):
    url = migrated_sqlite(tmp_path)
    store = Store.from_url(url)
    ingest(
        store,
        load_rules(ROOT / "rules.yaml"),
        "zabbix",
        json.dumps(payload("zabbix-6.0.14-problem.json")).encode(),
        datetime.now(UTC),
    )
    store.engine.dispose()
    with FakeJira() as jira:
        jira.add_issue("LKK-77")
        jira.fail("GET", r"/issue/LKK-77", delay=3)  # the link check waits on a slow Jira
        env = {
            "BRIDGE_TOKEN_API": API_TOKEN,
            "BRIDGE_RUN_WORKER": "0",
            "BRIDGE_JIRA_URL": jira.url,
            "BRIDGE_JIRA_EMAIL": "bot@example.com",
            "BRIDGE_JIRA_API_TOKEN": "jira-token",
        }
        with BridgeProcess(url, env=env) as bridge, ThreadPoolExecutor(max_workers=1) as pool:
            pending = pool.submit(
                requests.post,
                bridge.url + "/api/v1/problems/1/jira",
                json={"jira_key": "LKK-77"},
                headers={"Authorization": f"Bearer {API_TOKEN}"},
                timeout=30,
            )
            time.sleep(1)  # the request is inside the 3 s Jira call now
            bridge.process.send_signal(signal.SIGTERM)
            response = pending.result()
            assert response.status_code == 200 and response.json()["jira_key"] == "LKK-77"
            assert bridge.process.wait(timeout=30) == 0
    assert linked_key(url) == "LKK-77"
