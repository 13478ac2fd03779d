"""The shipped Dockerfile, built and run as operators run it: a fresh volume, an alert, SIGTERM, its own user.

`image-env.sh build` builds the Dockerfile as shipped with podman, on a debian:bookworm-slim
bootstrapped here from Debian's packages. `podman run` needs setrlimit, which some machines (this
one among them) forbid, so the image's file system is mounted instead (`podman image mount`,
read-only) and its entry point run as a container engine runs it: in PID and mount namespaces of
its own (tini is PID 1), chrooted, as the image's user, in its working directory, with the image's
environment and what `docker run -e` would add, a fresh /data and /tmp mounted, the host's
loopback shared.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shlex
import shutil
import signal
import subprocess
import tempfile
import tomllib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import psycopg
import pytest
import requests

from bridge.config import TOKEN_GROUPS
from tests.conftest import ROOT, free_port, new_pg_database, payload_bytes, wait_for

HERE = Path(__file__).resolve().parent
CACHE = Path(os.environ.get("IMAGE_E2E_CACHE", "/var/cache/incident-bridge-image"))
BUILD_TIMEOUT_SECONDS = 30 * 60
# What the image may weigh (docs/how-to/production.md gives its size): a build that ships a
# compiler, pip's cache or apt's lists again goes past it.
SIZE_BUDGET_BYTES = 300 * 1000 * 1000
TOKENS = {variable: f"image-test-{group}" for group, variable in TOKEN_GROUPS.items()}

# Runs in the new mount namespace: the container's mounts, then the entry point as the image's user.
# /dev and /proc as a container has them; /data and /tmp fresh, as a new volume and a writable layer.
ENTER = """
set -e
root=$1 data=$2 tmp=$3 userspec=$4 workdir=$5
shift 5
mount --rbind /dev "$root/dev"
mount -t proc proc "$root/proc"
mount --bind "$data" "$root/data"
mount --bind "$tmp" "$root/tmp"
exec chroot --userspec="$userspec" "$root" /usr/bin/env -i -C "$workdir" "$@"
"""


def _podman_env() -> Any:
    return {**os.environ, "IMAGE_E2E_LOCK_HELD": "1"}


@dataclass
class Image:
    """The built image: its mounted file system and its configuration, as `podman image inspect` gives them."""

    root: Path
    inspected: dict[str, Any]

    @property
    def config(self) -> dict[str, Any]:
        return self.inspected["Config"]

    def environment(self, user: str, **overrides: str) -> dict[str, str]:
        """The image's ENV, HOME as the engine sets it from the user's entry, then `docker run -e`."""
        env = dict(item.split("=", 1) for item in self.config["Env"])
        env.setdefault("HOME", self.passwd(user)[5])
        return {**env, **overrides}

    def passwd(self, user: str) -> list[str]:
        """The /etc/passwd entry of a user named by name or uid, read from the image."""
        for line in (self.root / "etc" / "passwd").read_text().splitlines():
            fields = line.split(":")
            if user in (fields[0], fields[2]):
                return fields
        raise AssertionError(f"no user {user} in the image's /etc/passwd")


@pytest.fixture(scope="module")
def image() -> Iterator[Image]:
    if os.geteuid() != 0:
        pytest.skip("LOUD SKIP: building and running the image needs root (mmdebstrap, podman, mounts, chroot)")
    installed = subprocess.run(["bash", str(HERE / "image-env.sh"), "install"], capture_output=True, text=True)
    if installed.returncode == 3:
        pytest.skip(f"LOUD SKIP: podman and mmdebstrap cannot be installed here: {installed.stderr.strip()}")
    assert installed.returncode == 0, installed.stderr
    CACHE.mkdir(parents=True, exist_ok=True)
    # One image test at a time on a machine: the build prunes what earlier builds left.
    with open(CACHE / "lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        built = subprocess.run(
            ["bash", str(HERE / "image-env.sh"), "build"],
            capture_output=True,
            text=True,
            env=_podman_env(),
            timeout=BUILD_TIMEOUT_SECONDS,
        )
        assert built.returncode == 0, f"the image did not build:\n{built.stderr[-6000:]}"
        facts = dict(line.split("=", 1) for line in built.stdout.splitlines() if "=" in line)
        podman = ["podman", *shlex.split(facts["PODMAN_ARGS"])]
        image_id = facts["IMAGE_ID"]
        [inspected] = json.loads(subprocess.run([*podman, "image", "inspect", image_id], **_checked()).stdout)
        root = Path(subprocess.run([*podman, "image", "mount", image_id], **_checked()).stdout.strip())
        try:
            yield Image(root, inspected)
        finally:
            subprocess.run([*podman, "image", "unmount", image_id], **_checked())


def _checked() -> dict[str, Any]:
    return {"capture_output": True, "text": True, "check": True, "env": _podman_env()}


def _userspec(image: Image, user: str) -> str:
    fields = image.passwd(user)
    return f"{fields[2]}:{fields[3]}"


class Container:
    """The image's entry point running as a container would, until stopped like `docker stop` does."""

    def __init__(
        self,
        image: Image,
        data: Path,
        env: dict[str, str],
        args: list[str] | None = None,
        user: str | None = None,
        command: list[str] | None = None,
    ) -> None:
        """`args` replace the image's CMD (as `docker run IMAGE ARGS`), `command` its entry point too."""
        user = user or image.config["User"].split(":")[0]
        command = command or [*image.config["Entrypoint"], *(args if args is not None else image.config["Cmd"])]
        environment = [f"{name}={value}" for name, value in image.environment(user, **env).items()]
        self.tmp = Path(tempfile.mkdtemp(prefix="image-tmp-"))
        self.tmp.chmod(0o1777)
        self.log = tempfile.NamedTemporaryFile(prefix="image-", suffix=".log", delete=False)
        self.argv = [
            *("unshare", "--mount", "--pid", "--fork", "--kill-child"),
            *("sh", "-c", ENTER, "enter", str(image.root), str(data), str(self.tmp), _userspec(image, user)),
            image.config["WorkingDir"],
            *environment,
            *command,
        ]
        self.process: subprocess.Popen[bytes] | None = None

    def output(self) -> str:
        return Path(self.log.name).read_text(errors="replace")

    def __enter__(self) -> Container:
        self.process = subprocess.Popen(self.argv, stdout=self.log, stderr=subprocess.STDOUT, start_new_session=True)
        return self

    def wait_ready(self, url: str, timeout: float = 90) -> None:
        """Poll /readyz until it answers 200; fail with the log if the entry point exits first."""

        def ready() -> bool:
            assert self.process is not None
            if self.process.poll() is not None:
                raise AssertionError(f"the entry point exited with {self.process.returncode}:\n{self.output()}")
            with contextlib.suppress(requests.ConnectionError):
                return requests.get(url + "/readyz", timeout=2).status_code == 200
            return False

        wait_for(ready, timeout, f"{url}/readyz to answer 200", interval=0.3)

    def init_pid(self) -> int:
        """The host's PID of the container's PID 1 (the entry point), the child of unshare."""
        assert self.process is not None
        children = Path(f"/proc/{self.process.pid}/task/{self.process.pid}/children").read_text().split()
        assert len(children) == 1, children
        return int(children[0])

    def stop(self, timeout: float = 45) -> int:
        """SIGTERM to PID 1, as `docker stop` sends it; the exit status once everything in the container ended."""
        assert self.process is not None
        os.kill(self.init_pid(), signal.SIGTERM)
        return self.process.wait(timeout=timeout)

    def __exit__(self, *exc: object) -> None:
        assert self.process is not None
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.process.pid, signal.SIGKILL)  # PID 1 dies with unshare, and the namespace with it
        self.process.wait()
        shutil.rmtree(self.tmp, ignore_errors=True)
        Path(self.log.name).unlink(missing_ok=True)


def _run_once(image: Image, data: Path, env: dict[str, str], command: list[str], timeout: float = 60) -> int:
    """Run one command in a container of the image, as its user, to its end: its exit status."""
    with Container(image, data, env, command=command) as container:
        assert container.process is not None
        return container.process.wait(timeout=timeout)


def _send_an_alertmanager_notification(url: str) -> dict[str, Any]:
    """A recorded Alertmanager 0.25 notification of two firing alerts, with the sender's token: the answer."""
    sent = requests.post(
        url + "/api/v1/alerts/alertmanager",
        data=payload_bytes("alertmanager-0.25-two-firing.json"),
        headers={"Content-Type": "application/json", "Authorization": f"Bearer {TOKENS['BRIDGE_TOKEN_ALERTMANAGER']}"},
        timeout=10,
    )
    assert sent.status_code == 200, sent.text
    return sent.json()


def _incidents(url: str) -> list[dict[str, Any]]:
    listed = requests.get(
        url + "/api/v1/incidents", headers={"Authorization": f"Bearer {TOKENS['BRIDGE_TOKEN_API']}"}, timeout=10
    )
    assert listed.status_code == 200, listed.text
    return listed.json()["items"]


@pytest.fixture
def fresh_volume(image: Image, tmp_path: Path) -> Path:
    """An empty named volume: Docker gives it the image's /data, owned as the image has it."""
    volume = tmp_path / "volume"
    volume.mkdir()
    owner = (image.root / "data").stat()
    os.chown(volume, owner.st_uid, owner.st_gid)
    return volume


def test_the_image_runs_as_an_unprivileged_user_with_no_compiler_and_no_installer(image: Image):
    user, group = image.config["User"].split(":")
    fields = image.passwd(user)
    assert (fields[0], fields[2], fields[3]) == ("bridge", "10001", "10001")
    assert image.config["Volumes"] == {"/data": {}} and image.config["WorkingDir"] == "/data"
    assert (image.root / "data").stat().st_uid == 10001
    rules = image.environment("bridge")["BRIDGE_RULES"]
    assert rules == "/etc/incident-bridge/rules.yaml" and (image.root / rules.lstrip("/")).is_file()
    compilers = [name for name in ("cc", "gcc", "c++", "g++", "clang", "rustc", "make") if _in_image(image, name)]
    assert compilers == []
    venv = image.root / "opt" / "incident-bridge"
    assert not list(venv.glob("bin/pip*")) and not list(venv.glob("lib/python3*/site-packages/pip"))
    # The test's build-time mounts (the host's CA bundle, pip's configuration) leave nothing of theirs in
    # the image: at most the empty mount point podman 4.3's buildah keeps.
    for mount_point in ("run/host-ca.pem", "etc/pip.conf"):
        assert not (image.root / mount_point).exists() or (image.root / mount_point).stat().st_size == 0
    assert image.inspected["Size"] < SIZE_BUDGET_BYTES


def _in_image(image: Image, program: str) -> bool:
    return any((image.root / folder / program).exists() for folder in ("usr/bin", "usr/local/bin", "usr/sbin"))


def test_the_image_carries_its_labels_health_check_and_version(image: Image):
    labels = image.config["Labels"]
    version = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]
    assert labels["org.opencontainers.image.title"] == "incident-bridge"
    assert labels["org.opencontainers.image.version"] == version
    assert labels["org.opencontainers.image.licenses"] == "Apache-2.0"
    assert labels["org.opencontainers.image.base.name"] == "debian:bookworm-slim"
    assert image.inspected["Healthcheck"]["Test"][0] == "CMD"
    assert image.config["ExposedPorts"] == {"8080/tcp": {}}


def test_on_a_fresh_volume_it_migrates_serves_takes_an_alert_and_stops_cleanly_on_sigterm(
    image: Image, fresh_volume: Path
):
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    env = {**TOKENS, "BRIDGE_BIND": f"127.0.0.1:{port}"}
    with Container(image, fresh_volume, env) as container:
        container.wait_ready(url)
        assert requests.get(url + "/healthz", timeout=5).json() == {"status": "ok"}
        health = image.inspected["Healthcheck"]["Test"][1:]
        assert _run_once(image, fresh_volume, env, health) == 0

        sent = _send_an_alertmanager_notification(url)
        assert sorted(incident["id"] for incident in _incidents(url)) == sorted(sent["incidents"])
        # The pages' templates and static files are in the image (package data).
        assert "<form" in requests.get(url + "/ui/login", timeout=10).text
        assert requests.get(url + "/ui/static/ui.css", timeout=10).status_code == 200
        wait_for(lambda: "worker started" in container.output(), 60, "the background worker to start")

        assert container.stop() == 0
        output = container.output()
    assert "Running upgrade  -> 0001" in output
    assert "worker stopped" in output and "Traceback" not in output and "running as root" not in output
    assert (fresh_volume / "bridge.db").stat().st_uid == 10001
    assert _run_once(image, fresh_volume, env, health) != 0, "the health check passed with nothing listening"


def test_on_the_network_without_tokens_it_refuses_to_start_naming_them(image: Image, fresh_volume: Path):
    # The image's own environment: BRIDGE_BIND=0.0.0.0:8080, and no token set.
    with Container(image, fresh_volume, {}) as container:
        assert container.process is not None
        status = container.process.wait(timeout=60)
        output = container.output()
    assert status == 1, output
    assert "refusing to listen on 0.0.0.0:8080 without " + ", ".join(TOKEN_GROUPS.values()) in output
    assert list(fresh_volume.iterdir()) == []  # refused before touching the database


def test_on_a_volume_its_user_cannot_write_it_refuses_to_start_naming_the_cause(image: Image, tmp_path: Path):
    """A host folder mounted as /data but owned by root: one clear line, not a traceback."""
    volume = tmp_path / "root-owned"
    volume.mkdir(mode=0o755)
    env = {**TOKENS, "BRIDGE_BIND": f"127.0.0.1:{free_port()}"}
    with Container(image, volume, env) as container:
        assert container.process is not None
        status = container.process.wait(timeout=60)
        output = container.output()
    assert status == 1, output
    assert "cannot migrate: cannot open the database's lock file: [Errno 13] Permission denied" in output
    assert "Traceback" not in output


def test_run_as_root_it_says_so_in_its_log(image: Image, fresh_volume: Path):
    port = free_port()
    env = {**TOKENS, "BRIDGE_BIND": f"127.0.0.1:{port}", "BRIDGE_RUN_WORKER": "0"}
    with Container(image, fresh_volume, env, user="root") as container:
        container.wait_ready(f"http://127.0.0.1:{port}")
        assert container.stop() == 0
        output = container.output()
    assert "WARNING bridge.cli running as root: run `incident-bridge serve` as an unprivileged user" in output


def test_two_replicas_and_a_worker_starting_at_once_on_postgresql_migrate_once_and_serve(
    image: Image, fresh_volume: Path
):
    with new_pg_database() as database_url:
        ports = [free_port(), free_port()]
        shared = {**TOKENS, "BRIDGE_DATABASE_URL": database_url, "BRIDGE_RUN_WORKER": "0"}
        replicas = [Container(image, fresh_volume, {**shared, "BRIDGE_BIND": f"127.0.0.1:{port}"}) for port in ports]
        worker = Container(image, fresh_volume, shared, args=["worker", "--migrate"])
        with replicas[0], replicas[1], worker:
            for port, replica in zip(ports, replicas, strict=True):
                replica.wait_ready(f"http://127.0.0.1:{port}")
            wait_for(lambda: "worker started" in worker.output(), 60, "the worker to start")
            sent = _send_an_alertmanager_notification(f"http://127.0.0.1:{ports[0]}")
            seen = _incidents(f"http://127.0.0.1:{ports[1]}")
            assert sorted(incident["id"] for incident in seen) == sorted(sent["incidents"]) and len(seen) == 2
            statuses = [container.stop() for container in (*replicas, worker)]
            outputs = [container.output() for container in (*replicas, worker)]
        with psycopg.connect(database_url) as conn:
            revisions = conn.execute("SELECT version_num FROM alembic_version").fetchall()
    assert statuses == [0, 0, 0], outputs
    assert [output.count("Running upgrade  -> 0001") for output in outputs].count(1) == 1, outputs
    assert sum(output.count("Running upgrade  -> 0001") for output in outputs) == 1
    assert len(revisions) == 1
    assert not any("Traceback" in output for output in outputs), outputs
    assert list(fresh_volume.iterdir()) == []  # on PostgreSQL, nothing is written to the volume
