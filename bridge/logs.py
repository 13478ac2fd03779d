"""Log lines that keep every `extra=` field: `key=value` text, or one JSON object per line.

The standard formatter drops extras, so the request id a 500 answer names, or the job id
of a failing outbox job, never reached the log. Every command configures logging here.
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import Any, TextIO

# Libraries that log secrets at DEBUG (pyzabbix logs each JSON-RPC body, where Zabbix 6.0
# takes the API token) or URLs and connection strings: never below INFO.
QUIET_LIBRARIES = ("pyzabbix", "urllib3", "requests", "psycopg")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s %(message)s"
_RECORD_FIELDS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {"message", "asctime"}


def extra_fields(record: logging.LogRecord) -> dict[str, Any]:
    """What the caller passed in `extra=`: every attribute a bare LogRecord does not have."""
    return {key: value for key, value in vars(record).items() if key not in _RECORD_FIELDS and not key.startswith("_")}


def _text_value(value: Any) -> str:
    """Strings bare unless they hold spaces, quotes or `=` (then JSON-quoted); anything else as compact JSON."""
    if not isinstance(value, str):
        return json.dumps(value, default=str, separators=(",", ":"))
    if value == "" or any(ch.isspace() or ch in '"=' for ch in value):
        return json.dumps(value)
    return value


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value ...`, values with spaces or quotes JSON-quoted."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = self.formatMessage(record)
        pairs = " ".join(f"{key}={_text_value(value)}" for key, value in extra_fields(record).items())
        if pairs:
            line = f"{line} {pairs}"
        if record.exc_info:
            line = f"{line}\n{self.formatException(record.exc_info)}"
        if record.stack_info:
            line = f"{line}\n{self.formatStack(record.stack_info)}"
        return line


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, message, the extras, and any traceback."""

    def format(self, record: logging.LogRecord) -> str:
        line: dict[str, Any] = {
            **extra_fields(record),
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
        }
        if record.exc_info:
            line["exception"] = self.formatException(record.exc_info)
        if record.stack_info:
            line["stack"] = self.formatStack(record.stack_info)
        return json.dumps(line, default=str)


class _StderrHandler(logging.StreamHandler):  # type: ignore[type-arg]
    """Writes to whatever sys.stderr is at the time (test runners swap it)."""

    def __init__(self) -> None:
        super().__init__()

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        pass


FORMATTERS = {"text": TextFormatter, "json": JsonFormatter}


def configure_logging(level: str, log_format: str = "text") -> None:
    """Send every log line (ours, gunicorn's, libraries') to stderr in one format; idempotent."""
    root = logging.getLogger()
    for handler in [h for h in root.handlers if isinstance(h, _StderrHandler)]:
        root.removeHandler(handler)
    handler = _StderrHandler()
    handler.setFormatter(FORMATTERS[log_format]())
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET_LIBRARIES:
        logging.getLogger(name).setLevel(max(logging.INFO, root.level))
