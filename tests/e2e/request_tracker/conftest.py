"""A real Request Tracker 5 for the tests of this folder: started once per session by rt-env.sh, stopped after.

Its port and state directory are RT_E2E_PORT and RT_E2E_DIR when set (several test runs on one
machine each keep their own), else a free port and a temporary directory.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from adapters.request_tracker import RtClient
from bridge.domain.tickets import TicketSystem
from tests.conftest import free_port

ENV_SCRIPT = Path(__file__).resolve().parent / "rt-env.sh"
CANNOT_INSTALL = 3

can_install = (
    Path("/usr/share/request-tracker5/libexec/rt-server").exists()
    or os.geteuid() == 0
    or shutil.which("sudo") is not None
)


class RtServer:
    """The running RT: its URL, and the script that starts, stops and configures it."""

    def __init__(self, env: dict[str, str]) -> None:
        self.env = env
        self.url = ""

    def run(self, *arguments: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["bash", str(ENV_SCRIPT), *arguments], capture_output=True, text=True, timeout=600, env=self.env
        )

    def start(self) -> None:
        started = self.run("start")
        if started.returncode == CANNOT_INSTALL:
            pytest.skip(f"LOUD SKIP: request-tracker5 cannot be installed here: {started.stderr.strip()}")
        assert started.returncode == 0, started.stdout + started.stderr
        found = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
        self.url = found["RT_URL"]

    def stop(self) -> None:
        self.run("stop")

    def backdate(self, ticket_id: str, when: str) -> None:
        """Set a ticket's LastUpdated (`2026-12-07T04:32:55Z`): changed in that second, however slow RT answered."""
        done = self.run("backdate", ticket_id, when.replace("T", " ").removesuffix("Z"))
        assert done.returncode == 0, done.stdout + done.stderr

    def custom_field(self, name: str) -> None:
        """A ticket custom field applied to every queue (RT keeps no value of one that is not applied)."""
        done = self.run("custom-field", name)
        assert done.returncode == 0, done.stdout + done.stderr


@pytest.fixture(scope="session")
def rt_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RtServer]:
    if not can_install:
        pytest.skip("LOUD SKIP: cannot install request-tracker5 (no root, no sudo)")
    env = {
        **os.environ,
        "RT_E2E_PORT": os.environ.get("RT_E2E_PORT") or str(free_port()),
        "RT_E2E_DIR": os.environ.get("RT_E2E_DIR") or str(tmp_path_factory.mktemp("rt")),
    }
    server = RtServer(env)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="session")
def rt_url(rt_server: RtServer) -> str:
    return rt_server.url


@pytest.fixture
def rt(rt_url: str) -> RtClient:
    return RtClient.for_system(TicketSystem("rt", "rt", rt_url, username="root", password="password"))
