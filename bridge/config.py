"""Deployment settings from environment variables, through one explicit mapping table."""

from __future__ import annotations

import hmac
import ipaddress
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from datetime import timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from adapters import SOURCES
from bridge.validation import parse_duration


class SettingsError(Exception):
    """An environment variable holds a value the bridge cannot use."""


@dataclass(frozen=True)
class Secret:
    """A credential whose repr never shows the value (logs, tracebacks, debuggers)."""

    value: str

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__

    def matches(self, given: str) -> bool:
        """Compare in constant time, so response timing reveals nothing of the secret."""
        return hmac.compare_digest(given.encode(), self.value.encode())


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise ValueError("must be a positive integer")
    return value


def _positive_float(text: str) -> float:
    value = float(text)
    if value <= 0:
        raise ValueError("must be a positive number")
    return value


def _flag(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off", ""):
        return False
    raise ValueError("must be one of 1, 0, true, false, yes, no")


def positive_duration(text: str) -> timedelta:
    """A duration like `30d` or `12h` (the rules file's syntax), never zero."""
    value = parse_duration(text)
    if value <= timedelta(0):
        raise ValueError("must be a positive duration such as 30d or 12h")
    return value


def _log_level(text: str) -> str:
    level = text.strip().upper()
    if level not in ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"):
        raise ValueError("must be one of DEBUG, INFO, WARNING, ERROR, CRITICAL")
    return level


def _log_format(text: str) -> str:
    if text not in ("text", "json"):
        raise ValueError("must be text or json")
    return text


HTTP_SERVERS = ("granian", "gunicorn")


def _http_server(text: str) -> str:
    if text not in HTTP_SERVERS:
        raise ValueError(f"must be one of {', '.join(HTTP_SERVERS)}")
    return text


def _time_zone(text: str) -> ZoneInfo:
    """An IANA time zone such as Europe/Moscow."""
    try:
        return ZoneInfo(text.strip())
    except (ZoneInfoNotFoundError, ValueError) as exc:
        raise ValueError(f"unknown IANA time zone {text!r} (such as UTC or Europe/Moscow)") from exc


def _optional(text: str) -> str | None:
    return text or None


def _jira_flavour(text: str) -> str:
    if text not in ("cloud", "datacenter"):
        raise ValueError("must be cloud or datacenter")
    return text


def _label_safe(text: str) -> str:
    if not text or any(ch.isspace() for ch in text):
        raise ValueError("must be non-empty without spaces (it becomes a Jira label)")
    return text


Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def _networks(text: str) -> tuple[Network, ...]:
    """Comma-separated addresses or CIDR ranges; a bare address is a range of one."""
    try:
        return tuple(ipaddress.ip_network(part.strip()) for part in text.split(",") if part.strip())
    except ValueError as exc:
        raise ValueError(f"expected comma-separated IP addresses or CIDR ranges ({exc})") from exc


def _header_name(text: str) -> str | None:
    """An HTTP header name (RFC 9110 token), such as X-Forwarded-User; empty means none."""
    if not text:
        return None
    if not re.fullmatch(r"[A-Za-z0-9!#$%&'*+.^_`|~-]+", text):
        raise ValueError("must be an HTTP header name such as X-Forwarded-User")
    return text


def _secret(text: str) -> Secret | None:
    return Secret(text) if text else None


def _token(text: str) -> Secret:
    """A bearer token; set but blank is a mistake (a template with an unset variable), never "no token"."""
    if not text.strip():
        raise ValueError("is set but empty: set the token, or unset the variable to leave its endpoints open")
    return Secret(text)


@dataclass(frozen=True)
class Settings:
    """Everything an operator sets per deployment; see docs/reference/environment.md."""

    database_url: str = "sqlite:///bridge.db"
    rules_path: str = "rules.yaml"
    bind: str = "127.0.0.1:8080"
    # `serve` speaks HTTPS itself with this certificate chain and key (PEM files), for installs without a proxy.
    tls_cert: str | None = None
    tls_key: str | None = None
    http_workers: int = 2
    http_threads: int = 8
    http_server: str = "granian"  # chosen on measurements: bench/RESULTS.md
    # A no-op webhook-shaped endpoint for `make bench` to measure the server's own ceiling; never on by default.
    bench_noop_endpoint: bool = False
    ingest_batch_max: int = 64
    run_worker: bool = True
    worker_interval_seconds: float = 5.0
    max_body_bytes: int = 5 * 1024 * 1024
    rejected_body_limit: int = 1024 * 1024
    max_json_depth: int = 32
    max_alerts: int = 5000
    allow_anonymous: bool = False
    log_level: str = "INFO"
    log_format: str = "text"
    retention: timedelta = timedelta(days=30)
    # Endpoint group (TOKEN_GROUPS) -> its bearer token; a group the operator left open has none.
    tokens: Mapping[str, Secret] = field(default_factory=dict, repr=False, hash=False)
    public_url: str = "http://127.0.0.1:8080"
    trusted_proxies: tuple[Network, ...] = ()
    trusted_user_header: str | None = None
    # How long a sign-in to the pages lasts, counted from signing in (activity never extends it).
    session_lifetime: timedelta = timedelta(hours=12)
    release_watch: timedelta = timedelta(hours=24)
    # The longest a maintenance window made through the API or the pages may hold (none holds forever).
    maintenance_max: timedelta = timedelta(days=7)
    # The longest a deploy the pipeline never said finished (or failed) stays in progress, marking and holding.
    deploy_max: timedelta = timedelta(hours=2)
    # The zone whose calendar days and months the service report counts in.
    timezone: ZoneInfo = field(default_factory=lambda: ZoneInfo("UTC"))
    outbox_dead_after_seconds: float = 24 * 3600.0
    outbox_max_backoff_seconds: float = 600.0
    outbox_lease_seconds: float = 300.0
    jira_url: str | None = None
    jira_flavour: str = "cloud"
    jira_email: str | None = None
    jira_api_token: Secret | None = field(default=None, repr=False)
    jira_pat: Secret | None = field(default=None, repr=False)
    jira_timeout_seconds: float = 10.0
    jira_marker_prefix: str = "incident-bridge"
    jira_webhook_secret: Secret | None = field(default=None, repr=False)
    jira_sync_interval_seconds: float = 600.0
    jira_conclusion_field: str | None = None
    jira_conclusion_marker: str = "Conclusion:"
    jira_search_settle_seconds: float = 30.0
    zabbix_url: str | None = None
    zabbix_api_token: Secret | None = field(default=None, repr=False)
    zabbix_timeout_seconds: float = 10.0

    def token(self, group: str) -> Secret | None:
        """The bearer token of an endpoint group, None when the operator left it open."""
        return self.tokens.get(group)

    @property
    def token_api(self) -> Secret | None:
        """The read API's token, which also guards /ui/."""
        return self.token("api")


# Environment variable -> (settings field, parser). docs/reference/environment.md documents each one.
ENVIRONMENT: Mapping[str, tuple[str, Callable[[str], Any]]] = {
    "BRIDGE_DATABASE_URL": ("database_url", str),
    "BRIDGE_RULES": ("rules_path", str),
    "BRIDGE_BIND": ("bind", str),
    "BRIDGE_TLS_CERT": ("tls_cert", _optional),
    "BRIDGE_TLS_KEY": ("tls_key", _optional),
    "BRIDGE_HTTP_WORKERS": ("http_workers", _positive_int),
    "BRIDGE_HTTP_THREADS": ("http_threads", _positive_int),
    "BRIDGE_HTTP_SERVER": ("http_server", _http_server),
    "BRIDGE_BENCH_NOOP_ENDPOINT": ("bench_noop_endpoint", _flag),
    "BRIDGE_INGEST_BATCH_MAX": ("ingest_batch_max", _positive_int),
    "BRIDGE_RUN_WORKER": ("run_worker", _flag),
    "BRIDGE_WORKER_INTERVAL_SECONDS": ("worker_interval_seconds", _positive_float),
    "BRIDGE_MAX_BODY_BYTES": ("max_body_bytes", _positive_int),
    "BRIDGE_REJECTED_BODY_LIMIT": ("rejected_body_limit", _positive_int),
    "BRIDGE_MAX_JSON_DEPTH": ("max_json_depth", _positive_int),
    "BRIDGE_MAX_ALERTS": ("max_alerts", _positive_int),
    "BRIDGE_ALLOW_ANONYMOUS": ("allow_anonymous", _flag),
    "BRIDGE_LOG_LEVEL": ("log_level", _log_level),
    "BRIDGE_LOG_FORMAT": ("log_format", _log_format),
    "BRIDGE_RETENTION": ("retention", positive_duration),
    "BRIDGE_PUBLIC_URL": ("public_url", str),
    "BRIDGE_TRUSTED_PROXIES": ("trusted_proxies", _networks),
    "BRIDGE_TRUSTED_USER_HEADER": ("trusted_user_header", _header_name),
    "BRIDGE_SESSION_LIFETIME": ("session_lifetime", positive_duration),
    "BRIDGE_RELEASE_WATCH": ("release_watch", positive_duration),
    "BRIDGE_MAINTENANCE_MAX": ("maintenance_max", positive_duration),
    "BRIDGE_DEPLOY_MAX": ("deploy_max", positive_duration),
    "BRIDGE_TIMEZONE": ("timezone", _time_zone),
    "BRIDGE_OUTBOX_DEAD_AFTER_SECONDS": ("outbox_dead_after_seconds", _positive_float),
    "BRIDGE_OUTBOX_MAX_BACKOFF_SECONDS": ("outbox_max_backoff_seconds", _positive_float),
    "BRIDGE_OUTBOX_LEASE_SECONDS": ("outbox_lease_seconds", _positive_float),
    "BRIDGE_JIRA_URL": ("jira_url", _optional),
    "BRIDGE_JIRA_FLAVOUR": ("jira_flavour", _jira_flavour),
    "BRIDGE_JIRA_EMAIL": ("jira_email", _optional),
    "BRIDGE_JIRA_API_TOKEN": ("jira_api_token", _secret),
    "BRIDGE_JIRA_PAT": ("jira_pat", _secret),
    "BRIDGE_JIRA_TIMEOUT_SECONDS": ("jira_timeout_seconds", _positive_float),
    "BRIDGE_JIRA_MARKER_PREFIX": ("jira_marker_prefix", _label_safe),
    "BRIDGE_JIRA_WEBHOOK_SECRET": ("jira_webhook_secret", _secret),
    "BRIDGE_JIRA_SYNC_INTERVAL_SECONDS": ("jira_sync_interval_seconds", _positive_float),
    "BRIDGE_JIRA_CONCLUSION_FIELD": ("jira_conclusion_field", _optional),
    "BRIDGE_JIRA_CONCLUSION_MARKER": ("jira_conclusion_marker", str),
    "BRIDGE_JIRA_SEARCH_SETTLE_SECONDS": ("jira_search_settle_seconds", _positive_float),
    "BRIDGE_ZABBIX_URL": ("zabbix_url", _optional),
    "BRIDGE_ZABBIX_API_TOKEN": ("zabbix_api_token", _secret),
    "BRIDGE_ZABBIX_TIMEOUT_SECONDS": ("zabbix_timeout_seconds", _positive_float),
}

# Endpoint group -> the environment variable of its bearer token (Settings.tokens): the webhook of
# each source (adapters.SOURCES) that takes a bearer token, the release hook, heartbeat pings, the read API (with /ui/)
# and the acting API (operate: link, close, acknowledge... from the API or the pages). bridge/web/edge.py guards
# each group with it; check_exposure wants them all. A source whose
# credential is in its body (PagerDuty's routing_key) is no group: with no key configured it refuses all.
TOKEN_GROUPS: Mapping[str, str] = {
    **{name: source.token_variable for name, source in SOURCES.items() if source.token_variable is not None},
    "release": "BRIDGE_TOKEN_RELEASE",
    "tickets": "BRIDGE_TOKEN_TICKETS",
    "heartbeats": "BRIDGE_TOKEN_HEARTBEATS",
    "api": "BRIDGE_TOKEN_API",
    "operate": "BRIDGE_TOKEN_OPERATE",
}

assert {name for name, _ in ENVIRONMENT.values()} | {"tokens"} == {f.name for f in fields(Settings)}
assert not set(ENVIRONMENT) & set(TOKEN_GROUPS.values()), "a token is set through TOKEN_GROUPS alone"


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, then explicit overrides (CLI options, tests).

    Raises:
        SettingsError: a variable is set to an unusable value (never silently ignored).
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for variable, (name, parse) in ENVIRONMENT.items():
        if variable in environ:
            values[name] = _parsed(variable, parse, environ[variable])
    values["tokens"] = {
        group: _parsed(variable, _token, environ[variable])
        for group, variable in TOKEN_GROUPS.items()
        if variable in environ
    }
    values.update({name: value for name, value in overrides.items() if value is not None})
    settings = Settings(**values)
    check_jira_settings(settings)
    check_tls_settings(settings)
    return settings


def _parsed(variable: str, parse: Callable[[str], Any], text: str) -> Any:
    try:
        return parse(text)
    except ValueError as exc:
        raise SettingsError(f"{variable}: {exc}") from exc


def check_jira_settings(settings: Settings) -> None:
    """Jira needs credentials of its flavour once a URL is set.

    Raises:
        SettingsError: naming the missing variables.
    """
    if settings.jira_url is None:
        return
    if settings.jira_flavour == "cloud" and (settings.jira_email is None or settings.jira_api_token is None):
        raise SettingsError("BRIDGE_JIRA_URL is set: Jira Cloud needs BRIDGE_JIRA_EMAIL and BRIDGE_JIRA_API_TOKEN")
    if settings.jira_flavour == "datacenter" and settings.jira_pat is None:
        raise SettingsError("BRIDGE_JIRA_URL is set: Jira Data Center needs BRIDGE_JIRA_PAT")


def check_tls_settings(settings: Settings) -> None:
    """A certificate needs its key and the other way round.

    Raises:
        SettingsError: one of BRIDGE_TLS_CERT and BRIDGE_TLS_KEY without the other.
    """
    if (settings.tls_cert is None) != (settings.tls_key is None):
        given, missing = (
            ("BRIDGE_TLS_CERT", "BRIDGE_TLS_KEY") if settings.tls_cert else ("BRIDGE_TLS_KEY", "BRIDGE_TLS_CERT")
        )
        raise SettingsError(f"{given} is set: serving HTTPS needs {missing} too (PEM files)")


def is_loopback_bind(bind: str) -> bool:
    """Whether a gunicorn bind address only listens on this machine (or a unix socket)."""
    if bind.startswith("unix:"):
        return True
    host = bind.rsplit(":", 1)[0].strip("[]")
    return host in ("localhost", "::1") or host.startswith("127.")


# The shortest token a bridge on a network address takes (`openssl rand -hex 32` gives 64 characters).
MIN_TOKEN_LENGTH = 16


def check_token_strength(settings: Settings) -> None:
    """On a network address, each token set is at least MIN_TOKEN_LENGTH characters and belongs to one group:
    a short one can be guessed, and one shared lets a sender's token act or read.

    Raises:
        SettingsError: naming the variables (never the values).
    """
    if is_loopback_bind(settings.bind):
        return
    holders: dict[str, list[str]] = {}
    for group, variable in TOKEN_GROUPS.items():
        token = settings.token(group)
        if token is not None:
            holders.setdefault(token.value, []).append(variable)
    short = sorted(
        variable for value, variables in holders.items() if len(value) < MIN_TOKEN_LENGTH for variable in variables
    )
    if short:
        raise SettingsError(
            f"refusing to listen on {settings.bind}: {', '.join(short)} shorter than {MIN_TOKEN_LENGTH} characters "
            "(generate each with `openssl rand -hex 32`)"
        )
    shared = [" and ".join(variables) for variables in holders.values() if len(variables) > 1]
    if shared:
        raise SettingsError(
            f"refusing to listen on {settings.bind}: {'; '.join(shared)} hold the same token; give each its own, "
            "so a sender's token cannot read or act"
        )


def check_exposure(settings: Settings) -> None:
    """Refuse to serve the network while any endpoint group has no token, unless the operator says so,
    or with a token too short or shared (check_token_strength).

    One token left unset would leave its endpoints open to anyone who can reach the port.

    Raises:
        SettingsError: a non-loopback bind, BRIDGE_ALLOW_ANONYMOUS unset, naming every missing token variable;
            or a weak or shared token, naming its variables.
    """
    if is_loopback_bind(settings.bind) or settings.allow_anonymous:
        check_token_strength(settings)
        return
    missing = [variable for group, variable in TOKEN_GROUPS.items() if settings.token(group) is None]
    if missing:
        raise SettingsError(
            f"refusing to listen on {settings.bind} without {', '.join(missing)}: anyone could reach those "
            "endpoints. Set every BRIDGE_TOKEN_*, or BRIDGE_ALLOW_ANONYMOUS=1 if a proxy in front authenticates."
        )
    check_token_strength(settings)
