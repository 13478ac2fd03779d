"""`serve --server granian`: the bridge under Granian (a Rust HTTP server), with gunicorn's guarantees.

Chosen on measurements (bench/RESULTS.md): Granian's HTTP layer costs a fraction of
gunicorn's per request, which decides the storm rate on two cores. It serves the bridge
as ASGI (bridge.asgi): alerts webhooks on an event loop, the rest on Flask. What `serve`
promises under gunicorn holds here too: each worker process loads the app from the environment
(the factory), SIGTERM stops accepting and lets requests in flight finish before the
workers exit, the background worker runs as a child started and stopped with the server,
and metrics are summed across workers through PROMETHEUS_MULTIPROC_DIR (counters and
histograms only: a dead worker's files keep counting, and no live gauge needs dropping).
"""

from __future__ import annotations

import ssl
import subprocess
import sys
from pathlib import Path
from typing import Any

from bridge.config import Settings

# Granian's own lines go through the root logger (BRIDGE_LOG_FORMAT), as gunicorn's do.
_LOGGING = {"version": 1, "disable_existing_loggers": False, "loggers": {"_granian": {"propagate": True}}}
# How long a stopping worker may take to finish its requests, as gunicorn's graceful_timeout.
GRACEFUL_SECONDS = 30


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


def check_tls_files(settings: Settings) -> None:
    """BRIDGE_TLS_CERT and BRIDGE_TLS_KEY load as a certificate chain and its key (nothing to check without).

    Raises:
        ValueError: naming the file that cannot be read, or that they do not belong together.
    """
    if settings.tls_cert is None or settings.tls_key is None:
        return
    for variable, path in (("BRIDGE_TLS_CERT", settings.tls_cert), ("BRIDGE_TLS_KEY", settings.tls_key)):
        try:
            Path(path).read_bytes()
        except OSError as exc:
            raise ValueError(f"{variable}: cannot read {path}: {exc.strerror}") from exc
    try:
        ssl.create_default_context(ssl.Purpose.CLIENT_AUTH).load_cert_chain(settings.tls_cert, settings.tls_key)
    except (ssl.SSLError, ValueError) as exc:
        raise ValueError(
            f"BRIDGE_TLS_CERT and BRIDGE_TLS_KEY: not a PEM certificate chain and its private key ({exc})"
        ) from exc


def granian_tls(settings: Settings) -> dict[str, Any]:
    """Granian's TLS options: HTTPS with the operator's certificate, TLS 1.2 and later; none without one."""
    from granian.constants import SSLProtocols

    if settings.tls_cert is None or settings.tls_key is None:
        return {}
    return {
        "ssl_cert": Path(settings.tls_cert),
        "ssl_key": Path(settings.tls_key),
        "ssl_protocol_min": SSLProtocols.tls12,
    }


def serve_granian(settings: Settings) -> None:
    """Serve the bridge's app under Granian until SIGTERM or SIGINT, over HTTPS when BRIDGE_TLS_CERT is set."""
    from granian.constants import Interfaces
    from granian.log import LogLevels
    from granian.server import Server

    server: Any = Server(
        "bridge.asgi:create_asgi_app",
        **granian_address(settings.bind),
        interface=Interfaces.ASGI,
        websockets=False,
        factory=True,
        workers=settings.http_workers,
        log_level=LogLevels(settings.log_level.lower()),
        log_dictconfig=_LOGGING,
        log_access=False,  # the app logs each request itself, with its request id
        respawn_failed_workers=True,
        workers_kill_timeout=GRACEFUL_SECONDS,
        **granian_tls(settings),
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
