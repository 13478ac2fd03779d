"""Shared helpers that turn pydantic findings into messages naming the field."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, ValidationError
from pydantic_core import ErrorDetails


def field_path(prefix: str, loc: tuple[object, ...]) -> str:
    """`alerts[3].labels.severity` style path for a pydantic location."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "body"


def message_for(error: ErrorDetails) -> str:
    """A finding's message in our wording for the common cases."""
    if error["type"] == "missing":
        return "required field is missing"
    if error["type"] == "extra_forbidden":
        return "unknown key"
    return error["msg"].removeprefix("Value error, ")


def describe(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per finding, each starting with the path of the field at fault."""
    return [f"{field_path(prefix, error['loc'])}: {message_for(error)}" for error in exc.errors(include_url=False)]


def _no_nul(value: str) -> str:
    # PostgreSQL text and JSONB cannot hold U+0000; refuse it at the edge with a clear message.
    if "\x00" in value:
        raise ValueError("NUL characters are not allowed")
    return value


SafeStr = Annotated[str, AfterValidator(_no_nul)]
