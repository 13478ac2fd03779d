"""The background worker: passes run on their own and SIGTERM stops it cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from datetime import UTC, datetime, timedelta

from bridge.domain import IncidentState
from bridge.storage import IncidentFilter, Store, incidents
from bridge.worker import run_forever
from tests.conftest import ROOT
from tests.integration.test_storage import incident_row

T0 = datetime(2026, 11, 23, 19, 0, tzinfo=UTC)


def test_worker_loop_closes_due_incidents_without_being_asked(store: Store):
    with store.engine.begin() as conn:
        conn.execute(incidents.insert(), incident_row(state="resolved", resolved_at=T0, auto_close_at=T0))
    stop = threading.Event()
    thread = threading.Thread(target=run_forever, args=(store, 0.05, lambda: T0 + timedelta(seconds=1), stop))
    thread.start()
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        [incident] = store.list_incidents(IncidentFilter(), 10, None).items
        if incident.state is IncidentState.CLOSED:
            break
        time.sleep(0.05)
    stop.set()
    thread.join(timeout=5)
    assert not thread.is_alive()
    assert (incident.state, incident.close_reason) == (IncidentState.CLOSED, "auto_closed")


def test_worker_process_stops_on_sigterm(database_url: str):
    process = subprocess.Popen(
        [sys.executable, "-m", "bridge", "worker"], cwd=ROOT, stderr=subprocess.PIPE,
        env={**os.environ, "BRIDGE_DATABASE_URL": database_url, "BRIDGE_WORKER_INTERVAL_SECONDS": "0.1"})
    time.sleep(1.5)
    process.send_signal(signal.SIGTERM)
    _, err = process.communicate(timeout=10)
    assert process.returncode == 0
    assert b"worker stopped" in err
