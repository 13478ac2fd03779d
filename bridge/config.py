"""Deployment settings from environment variables, through one explicit mapping table."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any


class SettingsError(Exception):
    """An environment variable holds a value the bridge cannot use."""


@dataclass(frozen=True)
class Secret:
    """A credential whose repr never shows the value (logs, tracebacks, debuggers)."""

    value: str

    def __repr__(self) -> str:
        return "Secret('***')"

    __str__ = __repr__


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


def _secret(text: str) -> Secret | None:
    return Secret(text) if text else None


@dataclass(frozen=True)
class Settings:
    """Everything an operator sets per deployment; see the README's configuration table."""

    database_url: str = "sqlite:///bridge.db"
    rules_path: str = "rules.yaml"
    bind: str = "127.0.0.1:8080"
    http_workers: int = 2
    http_threads: int = 4
    run_worker: bool = True
    worker_interval_seconds: float = 5.0
    max_body_bytes: int = 5 * 1024 * 1024
    rejected_body_limit: int = 1024 * 1024
    log_level: str = "INFO"
    token_alertmanager: Secret | None = field(default=None, repr=False)
    token_zabbix: Secret | None = field(default=None, repr=False)
    token_release: Secret | None = field(default=None, repr=False)
    token_api: Secret | None = field(default=None, repr=False)


# Environment variable -> (settings field, parser). The README documents each one.
ENVIRONMENT: Mapping[str, tuple[str, Callable[[str], Any]]] = {
    "BRIDGE_DATABASE_URL": ("database_url", str),
    "BRIDGE_RULES": ("rules_path", str),
    "BRIDGE_BIND": ("bind", str),
    "BRIDGE_HTTP_WORKERS": ("http_workers", _positive_int),
    "BRIDGE_HTTP_THREADS": ("http_threads", _positive_int),
    "BRIDGE_RUN_WORKER": ("run_worker", _flag),
    "BRIDGE_WORKER_INTERVAL_SECONDS": ("worker_interval_seconds", _positive_float),
    "BRIDGE_MAX_BODY_BYTES": ("max_body_bytes", _positive_int),
    "BRIDGE_REJECTED_BODY_LIMIT": ("rejected_body_limit", _positive_int),
    "BRIDGE_LOG_LEVEL": ("log_level", str.upper),
    "BRIDGE_TOKEN_ALERTMANAGER": ("token_alertmanager", _secret),
    "BRIDGE_TOKEN_ZABBIX": ("token_zabbix", _secret),
    "BRIDGE_TOKEN_RELEASE": ("token_release", _secret),
    "BRIDGE_TOKEN_API": ("token_api", _secret),
}

assert {name for name, _ in ENVIRONMENT.values()} == {f.name for f in fields(Settings)}


def load_settings(environ: Mapping[str, str] | None = None, **overrides: Any) -> Settings:
    """Settings from the environment, then explicit overrides (CLI options, tests).

    Raises:
        SettingsError: a variable is set to an unusable value (never silently ignored).
    """
    environ = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for variable, (name, parse) in ENVIRONMENT.items():
        if variable in environ:
            try:
                values[name] = parse(environ[variable])
            except ValueError as exc:
                raise SettingsError(f"{variable}: {exc}") from exc
    values.update({name: value for name, value in overrides.items() if value is not None})
    return Settings(**values)
