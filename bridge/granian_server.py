"""`serve --server granian`: the bridge's WSGI app under Granian (a Rust HTTP server), with gunicorn's guarantees.

Chosen on measurements (bench/RESULTS.md): Granian's HTTP layer costs a fraction of
gunicorn's per request, which decides the storm rate on two cores. What `serve` promises
under gunicorn holds here too: each worker process loads the app from the environment
(the factory), SIGTERM stops accepting and lets requests in flight finish before the
workers exit, the background worker runs as a child started and stopped with the server,
and metrics are summed across workers through PROMETHEUS_MULTIPROC_DIR (counters and
histograms only: a dead worker's files keep counting, and no live gauge needs dropping).
"""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import Any

from bridge.app import create_app, tune_gc_for_serving
from bridge.config import Settings

# Granian's own lines go through the root logger (BRIDGE_LOG_FORMAT), as gunicorn's do.
_LOGGING = {"version": 1, "disable_existing_loggers": False, "loggers": {"_granian": {"propagate": True}}}
# How long a stopping worker may take to finish its requests, as gunicorn's graceful_timeout.
GRACEFUL_SECONDS = 30


class WholeBodies:
    """WSGI middleware: each answer's body as one piece, which Granian writes in one call.

    Flask answers with an iterator, which Granian drives from Rust back into Python chunk
    by chunk: about a sixth of a webhook's Python time under a storm (py-spy --gil). The
    bridge's answers are small JSON documents and pages, never streams.
    """

    def __init__(self, app: Callable[..., Iterable[bytes]]) -> None:
        self.app = app

    def __call__(self, environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        body = self.app(environ, start_response)
        try:
            return [b"".join(body)]
        finally:
            close = getattr(body, "close", None)
            if close is not None:
                close()


def create_wsgi_app() -> WholeBodies:
    """What each Granian worker serves: the bridge's app (settings from the environment), bodies whole."""
    app = WholeBodies(create_app())
    tune_gc_for_serving()
    return app


def granian_address(bind: str) -> dict[str, Any]:
    """BRIDGE_BIND as Granian takes it: `host:port`, `[v6]:port`, or `unix:/path` as for gunicorn.

    Raises:
        ValueError: neither.
    """
    if bind.startswith("unix:"):
        return {"uds": Path(bind.removeprefix("unix:"))}
    host, _, port = bind.rpartition(":")
    if not host or not port.isdigit():
        raise ValueError(f"expected host:port or unix:/path, got {bind!r}")
    return {"address": host.strip("[]"), "port": int(port)}


def serve_granian(settings: Settings) -> None:
    """Serve the bridge's app under Granian until SIGTERM or SIGINT."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    server: Any = Server(
        "bridge.granian_server:create_wsgi_app",
        **granian_address(settings.bind),
        interface=Interfaces.WSGI,
        websockets=False,
        factory=True,
        workers=settings.http_workers,
        blocking_threads=settings.http_threads,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=_LOGGING,
        log_access=False,  # the app logs each request itself, with its request id
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_SECONDS,
    )
    worker: list[subprocess.Popen[bytes]] = []

    def start_worker() -> None:
        if settings.run_worker:
            worker.append(subprocess.Popen([sys.executable, "-m", "bridge", "worker"]))

    def stop_worker() -> None:
        for process in worker:
            if process.poll() is None:
                process.terminate()
                try:
                    process.wait(timeout=GRACEFUL_SECONDS)
                except subprocess.TimeoutExpired:
                    process.kill()

    server.on_startup(start_worker)
    server.on_shutdown(stop_worker)
    server.serve()
