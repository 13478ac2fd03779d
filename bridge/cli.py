"""The `incident-bridge` command: serve, worker, migrate, check-rules, explain."""

from __future__ import annotations

import logging
import os
import subprocess
import sys
import tempfile
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import click
import orjson
from gunicorn.app.base import BaseApplication
from gunicorn.glogging import Logger as GunicornLogger

from adapters import SOURCES, events
from bridge import metrics
from bridge.app import create_app, tune_gc_for_serving
from bridge.config import HTTP_SERVERS, Settings, SettingsError, check_exposure, load_settings, positive_duration
from bridge.domain.deploys import DeployHold, projects_shipping
from bridge.domain.heartbeats import HeartbeatRecord, HeartbeatState, IncidentChange, Transition, duration_text
from bridge.domain.incidents import Routing
from bridge.domain.rules import Rules, route_alert
from bridge.errors import BridgeError, StoreUnavailable
from bridge.ingest.deliveries import parse_body
from bridge.logs import configure_logging
from bridge.metrics import MULTIPROC_ENV, mark_process_dead
from bridge.problems.tickets import reported_priority
from bridge.rules.load import RulesError, load_rules
from bridge.storage.engine import migrate, schema_is_current
from bridge.storage.store import Store
from bridge.watch.heartbeats import signal_delivery
from bridge.web.context import utc_now
from bridge.web.server import check_tls_files, granian_address, serve_granian
from bridge.worker import OutboxRunner, Pruner, install_stop_signals, prune, run_forever

log = logging.getLogger(__name__)


def _settings(**overrides: Any) -> Settings:
    try:
        return load_settings(**overrides)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc


def _configure_logging(settings: Settings) -> None:
    configure_logging(settings.log_level, settings.log_format)


def _rules_or_exit(path: str) -> Any:
    try:
        return load_rules(path)
    except RulesError as exc:
        click.echo(f"{exc.path}: {len(exc.problems)} problem(s):", err=True)
        for problem in exc.problems:
            click.echo(f"  - {problem}", err=True)
        sys.exit(1)


@click.group()
def main() -> None:
    """incident-bridge: monitoring webhooks in, deduplicated incidents out."""


@main.command("migrate")
def migrate_command() -> None:
    """Create or upgrade the database schema (BRIDGE_DATABASE_URL); safe to run from several processes at once."""
    settings = _settings()
    _configure_logging(settings)
    _migrate(settings.database_url)
    click.echo("database schema is up to date")


def _migrate(url: str) -> None:
    try:
        migrate(url)
    except StoreUnavailable as exc:
        raise click.ClickException(f"cannot migrate: {exc.message}") from exc


def _require_current_schema(url: str) -> None:
    if not schema_is_current(url):
        raise click.ClickException(
            "the database schema is missing or old; run `incident-bridge migrate` first, or start with --migrate"
        )


def _warn_if_root(command: str) -> None:
    """Nothing the bridge does needs root, and the image runs as the unprivileged user bridge."""
    if os.geteuid() == 0:
        log.warning(
            "running as root: run `incident-bridge %s` as an unprivileged user "
            "(the image's is bridge, uid 10001); nothing it does needs root",
            command,
        )


# Shared by serve and worker: what a replica needs to start on a fresh database.
migrate_option = click.option(
    "--migrate",
    "migrate_first",
    is_flag=True,
    help="migrate the database first; replicas starting together migrate it once",
)


@main.command("check-rules")
@click.argument("path", required=False)
def check_rules(path: str | None) -> None:
    """Validate a rules file (default BRIDGE_RULES); exit 1 with every problem found."""
    path = path or _settings().rules_path
    rules = _rules_or_exit(path)
    counted = [
        (len(rules.routes), "route"),
        (len(rules.heartbeats), "heartbeat"),
        (len(rules.maintenance), "maintenance window"),
        (len(rules.projects), "project"),
    ]
    parts = [
        f"{count} {noun}s" if count != 1 else f"1 {noun}"
        for index, (count, noun) in enumerate(counted)
        if count or index == 0
    ]
    click.echo(f"{path}: OK ({', '.join(parts)})")


@main.command("explain")
@click.option("--source", type=click.Choice(list(SOURCES)), default=None, help="the sender of FILE")
@click.option("--heartbeat", default=None, help="explain this heartbeat's incident instead of a FILE")
@click.option("--rules", "rules_path", default=None, help="rules file (default BRIDGE_RULES)")
@click.argument("file", type=click.Path(exists=True, dir_okay=False), required=False)
def explain(source: str | None, heartbeat: str | None, rules_path: str | None, file: str | None) -> None:
    """Dry run: the incident key, line and priority each alert in FILE would get, and why (pings and
    recurring maintenance windows included); or, with --heartbeat, what its silence would raise."""
    rules = _rules_or_exit(rules_path or _settings().rules_path)
    if heartbeat is not None:
        _explain_heartbeat(rules, heartbeat)
        return
    if source is None or file is None:
        raise click.UsageError("give --source and FILE, or --heartbeat NAME")
    body = Path(file).read_bytes()
    try:
        parsed = parse_body(source, body)
    except BridgeError as exc:
        click.echo(f"refused: {exc.message}", err=True)
        for error in exc.errors:
            click.echo(f"  - {error}", err=True)
        sys.exit(1)
    if source == events.SOURCE:
        parsed = _with_routing_key(rules, body, parsed)
    for index, alert in enumerate(parsed.alerts):
        click.echo(f"alert {index}: {alert.status.value} {alert.summary}")
        pinged = rules.heartbeat_pinged_by(alert)
        if pinged is not None:
            click.echo(f"  a ping of heartbeat {pinged.name}: counted there, never an incident")
            continue
        _echo_routing(reported_priority(rules, alert, route_alert(rules, alert)))
        _echo_windows(rules, alert.source, alert.labels)
        _echo_projects(rules, alert.labels)
    for item in parsed.rejected:
        click.echo(f"alert {item.index}: refused")
        for error in item.errors:
            click.echo(f"  - {error}")
    if parsed.truncated_alerts:
        click.echo(f"note: {SOURCES[source].display_name} truncated {parsed.truncated_alerts} alert(s) (max_alerts)")


def _echo_routing(routing: Routing) -> None:
    click.echo(f"  incident key: {routing.dedup_key}")
    click.echo(
        f"  line: {routing.line}  priority: {routing.priority} (impact {routing.impact}, urgency {routing.urgency})"
    )
    for reason in routing.reasons:
        click.echo(f"  because: {reason}")


def _echo_windows(rules: Rules, source: str, labels: Mapping[str, str]) -> None:
    """The recurring maintenance windows of the rules that would hold this incident if it opened in one."""
    now = utc_now()
    for window in rules.maintenance:
        if window.matcher.fits(source, labels):
            starts, ends = window.next_occurrence(now)
            click.echo(
                f"  held while recurring maintenance window {window.name!r} ({window.recurrence.text}, "
                f"{window.recurrence.zone.key}) covers it: next {starts:%Y-%m-%d %H:%M} to {ends:%Y-%m-%d %H:%M} UTC"
            )


def _echo_projects(rules: Rules, labels: Mapping[str, str]) -> None:
    """The projects whose deploys would mark (or hold) this incident, and whose releases are its suspects."""
    environment = labels.get(rules.environment_label) if rules.environment_label else None
    for project in projects_shipping(rules.projects, labels):
        where = f"to {environment}" if environment else f"(the alert has no {rules.environment_label} label)"
        does = "marks and holds it until it settles" if project.hold is DeployHold.SIDE_EFFECTS else "marks it"
        click.echo(f"  project {project.name} ships it: a deploy of {project.name} {where} {does}")


def _explain_heartbeat(rules: Rules, name: str) -> None:
    """What a heartbeat's silence raises: its incident's key, line, priority and reasons."""
    heartbeat = rules.heartbeat(name)
    if heartbeat is None:
        known = ", ".join(h.name for h in rules.heartbeats) or "none"
        click.echo(f"no heartbeat {name!r} in the rules (heartbeats: {known})", err=True)
        sys.exit(1)
    now = utc_now()
    expired = Transition(None, HeartbeatRecord(name, HeartbeatState.EXPIRED, now, now), IncidentChange.RAISE)
    delivery = signal_delivery(rules, heartbeat, expired, now)
    if heartbeat.matcher is not None:
        matcher = heartbeat.matcher
        wanted = [*(f'{k}="{v}"' for k, v in matcher.labels.items())]
        wanted += [f'{k}=~"{pattern.pattern}"' for k, pattern in matcher.labels_regex.items()]
        heard = f"{heartbeat.source} alerts matching {{{', '.join(wanted)}}} (pings, never incidents)"
    else:
        heard = (
            f"any notification of {heartbeat.source}" if heartbeat.source else f"POST /api/v1/heartbeats/{name}/ping"
        )
    silence = duration_text(heartbeat.allowed_silence)
    click.echo(f"heartbeat {name}: heard from {heard}; silence longer than {silence} raises")
    for alert, routing in zip(delivery.parsed.alerts, delivery.routings, strict=True):
        click.echo(f"incident: {alert.summary}")
        _echo_routing(routing)
        _echo_windows(rules, alert.source, alert.labels)


def _with_routing_key(rules: Any, body: bytes, parsed: Any) -> Any:
    """An event as the endpoint takes it: under its routing key's name, with its default labels.

    Raises:
        SystemExit: the file's routing_key is not one of rules.yaml's (the endpoint would answer 400).
    """
    given = orjson.loads(body).get("routing_key")
    key = events.find_routing_key(rules.event_routing_keys, given)
    if key is None:
        click.echo(
            "refused: invalid routing key (not in rules.yaml events.routing_keys; the endpoint answers 400)", err=True
        )
        sys.exit(1)
    return events.attach_routing_key(parsed, key, utc_now(), "<generated on receipt>")


@main.command("worker")
@migrate_option
def worker_command(migrate_first: bool) -> None:
    """Run the background worker alone: auto-close, SLA breaches, retention, the Jira and Zabbix outbox."""
    settings = _settings()
    _configure_logging(settings)
    _warn_if_root("worker")
    rules = _rules_or_exit(settings.rules_path)
    if migrate_first:
        _migrate(settings.database_url)
    else:
        _require_current_schema(settings.database_url)
    metrics.initialise(rules)
    store = Store.from_url(settings.database_url)
    stop = threading.Event()
    install_stop_signals(stop)
    outbox = OutboxRunner.from_settings(store, rules, settings)
    run_forever(store, settings.worker_interval_seconds, utc_now, stop, outbox, Pruner(settings.retention))


def _duration(text: str | None) -> Any:
    if text is None:
        return None
    try:
        return positive_duration(text)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from exc


@main.command("prune")
@click.option(
    "--older-than",
    default=None,
    callback=lambda _ctx, _param, value: _duration(value),
    help="delete what was received longer ago than this, e.g. 30d or 12h (default BRIDGE_RETENTION)",
)
def prune_command(older_than: Any) -> None:
    """Delete raw notifications and refused payloads past retention; incidents and problems stay."""
    settings = _settings()
    _configure_logging(settings)
    retention = older_than or settings.retention
    now = utc_now()
    deleted = prune(Store.from_url(settings.database_url), now, retention)
    click.echo(
        f"deleted {deleted['notifications']} notification(s) and {deleted['rejected_payloads']} "
        f"refused payload(s) received before {now - retention:%Y-%m-%d %H:%M:%S} UTC"
    )


@main.group("outbox")
def outbox_group() -> None:
    """The queue of Jira and Zabbix side effects."""


@outbox_group.command("retry")
@click.option("--kind", default=None, help="only dead jobs of this kind, e.g. zabbix.close_problems")
@click.option("--id", "job_id", type=click.IntRange(min=1), default=None, help="only this job")
def outbox_retry(kind: str | None, job_id: int | None) -> None:
    """Queue dead-lettered jobs again (attempts reset, due now) once their cause is fixed."""
    settings = _settings()
    _configure_logging(settings)
    store = Store.from_url(settings.database_url)
    retried, skipped = store.retry_dead_jobs(utc_now(), kind=kind, job_id=job_id)
    for dead_id, twin in sorted(skipped.items()):
        click.echo(f"job {dead_id} skipped: pending job {twin} has the same dedup key and does the same work")
    click.echo(f"retried {len(retried)} dead job(s)" + (f": {', '.join(map(str, retried))}" if retried else ""))
    if job_id is not None and not retried and not skipped:
        raise click.ClickException(f"no dead outbox job {job_id}")


class _GunicornToRoot(GunicornLogger):  # type: ignore[misc]
    """Gunicorn's own lines go through the root logger, so they take BRIDGE_LOG_FORMAT too."""

    def setup(self, cfg: Any) -> None:
        super().setup(cfg)
        for logger in (self.error_log, self.access_log):
            for handler in [h for h in logger.handlers if getattr(h, "_gunicorn", False)]:
                logger.removeHandler(handler)
            logger.propagate = True


class _Gunicorn(BaseApplication):  # type: ignore[misc]
    """Gunicorn with our app and options, no config file or argv parsing."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.worker_process: subprocess.Popen[bytes] | None = None
        super().__init__()

    def load_config(self) -> None:
        options = {
            "bind": self.settings.bind,
            "workers": self.settings.http_workers,
            "threads": self.settings.http_threads,
            "worker_class": "gthread",
            "timeout": 30,
            "graceful_timeout": 30,
            "accesslog": None,  # the app logs each request itself, with its request id
            "logger_class": _GunicornToRoot,
            "loglevel": self.settings.log_level.lower(),
            "when_ready": self._start_worker,
            "on_exit": self._stop_worker,
            "child_exit": lambda _server, worker: mark_process_dead(worker.pid),
            "post_worker_init": lambda _worker: tune_gc_for_serving(),
        }
        if self.settings.tls_cert is not None and self.settings.tls_key is not None:
            options |= {"certfile": self.settings.tls_cert, "keyfile": self.settings.tls_key}
        # Several bridges on one host must not fight over gunicorn's (>= 24) control socket.
        if "control_socket_disable" in self.cfg.settings:
            options["control_socket_disable"] = True
        for key, value in options.items():
            self.cfg.set(key, value)

    def load(self) -> Any:
        return create_app(self.settings)

    def _start_worker(self, _server: Any) -> None:
        # A child process, not a thread in the master: gunicorn forks workers later.
        if self.settings.run_worker:
            self.worker_process = subprocess.Popen([sys.executable, "-m", "bridge", "worker"])

    def _stop_worker(self, _server: Any) -> None:
        if self.worker_process is not None and self.worker_process.poll() is None:
            self.worker_process.terminate()
            try:
                self.worker_process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.worker_process.kill()


def _wipe_metrics_dir(path: str) -> None:
    """Values of a previous run must not be summed into this one."""
    directory = Path(path)
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.db"):
        stale.unlink()


@main.command("serve")
@click.option("--bind", default=None, help="host:port (default BRIDGE_BIND)")
@click.option("--workers", type=click.IntRange(min=1), default=None, help="HTTP worker processes")
@click.option(
    "--server", type=click.Choice(HTTP_SERVERS), default=None, help="HTTP server (default BRIDGE_HTTP_SERVER)"
)
@click.option("--no-worker", is_flag=True, help="do not run the background worker alongside")
@migrate_option
def serve(bind: str | None, workers: int | None, server: str | None, no_worker: bool, migrate_first: bool) -> None:
    """Serve the HTTP API under gunicorn or Granian (HTTPS with BRIDGE_TLS_CERT and BRIDGE_TLS_KEY), with the
    background worker unless told not to."""
    settings = _settings(bind=bind, http_workers=workers, http_server=server, run_worker=False if no_worker else None)
    _configure_logging(settings)
    try:
        check_exposure(settings)
    except SettingsError as exc:
        raise click.ClickException(str(exc)) from exc
    _rules_or_exit(settings.rules_path)
    try:
        check_tls_files(settings)
    except ValueError as exc:
        raise click.ClickException(str(exc)) from exc
    if not migrate_first:
        _require_current_schema(settings.database_url)
    if not os.environ.get(MULTIPROC_ENV):
        # prometheus-client picks its storage when first imported, so start over with the
        # directory set: every gunicorn worker and the worker child then share it.
        os.environ[MULTIPROC_ENV] = tempfile.mkdtemp(prefix="incident-bridge-metrics-")
        os.execv(sys.executable, [sys.executable, "-m", "bridge", *sys.argv[1:]])
    _warn_if_root("serve")
    if migrate_first:
        _migrate(settings.database_url)
    _wipe_metrics_dir(os.environ[MULTIPROC_ENV])
    if settings.http_server == "granian":
        try:
            granian_address(settings.bind)
        except ValueError as exc:
            raise click.ClickException(f"BRIDGE_BIND: {exc}") from exc
        serve_granian(settings)
    else:
        _Gunicorn(settings).run()
