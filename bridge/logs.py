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


def printable(text: str) -> str:
    """`text` with every character that is not printable (controls such as ESC, DEL, C1, line and
    paragraph separators, format characters) as its JSON escape, as the JSON format writes it: a
    request path or header can then never move a terminal's cursor, colour it or forge a line."""
    if text.isprintable():
        return text
    return "".join(ch if ch.isprintable() else json.dumps(ch)[1:-1] for ch in text)


def _text_value(value: Any) -> str:
    """Strings bare unless they hold spaces, quotes, `=` or anything unprintable (then JSON-quoted);
    anything else as compact JSON. Either way only printable characters and escapes."""
    if not isinstance(value, str):
        return json.dumps(value, default=str, separators=(",", ":"))
    if value == "" or not value.isprintable() or any(ch.isspace() or ch in '"=' for ch in value):
        return printable(json.dumps(value, ensure_ascii=False))
    return value


class TextFormatter(logging.Formatter):
    """`time LEVEL logger message key=value ...`, values with spaces or quotes JSON-quoted, and nothing
    unprintable anywhere: a traceback keeps its line breaks, every other control character is escaped."""

    def __init__(self) -> None:
        super().__init__(TEXT_FORMAT)

    def format(self, record: logging.LogRecord) -> str:
        record.message = record.getMessage()
        record.asctime = self.formatTime(record)
        line = printable(self.formatMessage(record))
        pairs = " ".join(f"{printable(key)}={_text_value(value)}" for key, value in extra_fields(record).items())
        if pairs:
            line = f"{line} {pairs}"
        if record.exc_info:
            text = _without_message_breaks(self.formatException(record.exc_info), record.exc_info[1])
            line = f"{line}\n{_printable_lines(text)}"
        if record.stack_info:
            line = f"{line}\n{_printable_lines(self.formatStack(record.stack_info))}"
        return line


def _without_message_breaks(text: str, error: BaseException | None) -> str:
    """A traceback with the messages of its exceptions (and their causes) on one line each: a line
    break in a message someone else wrote does not start a line of its own."""
    seen: set[int] = set()
    while error is not None and id(error) not in seen:
        seen.add(id(error))
        try:
            message = str(error)
        except Exception:  # a broken __str__: the traceback says so itself
            message = ""
        if "\n" in message or "\r" in message:
            text = text.replace(message, printable(message))
        error = error.__cause__ or error.__context__
    return text


def _printable_lines(text: str) -> str:
    """A traceback, its lines kept apart and each made printable."""
    return "\n".join(printable(line) for line in text.split("\n"))


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
