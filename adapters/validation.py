"""Shared helpers that turn pydantic findings into messages naming the field."""

from __future__ import annotations

from pydantic import ValidationError


def field_path(prefix: str, loc: tuple[object, ...]) -> str:
    """`alerts[3].labels.severity` style path for a pydantic location."""
    path = prefix
    for part in loc:
        if isinstance(part, int):
            path += f"[{part}]"
        else:
            path = f"{path}.{part}" if path else str(part)
    return path or "body"


def describe(exc: ValidationError, prefix: str = "") -> list[str]:
    """One line per finding, each starting with the path of the field at fault."""
    lines = []
    for error in exc.errors(include_url=False):
        message = error["msg"]
        if error["type"] == "missing":
            message = "required field is missing"
        lines.append(f"{field_path(prefix, error['loc'])}: {message}")
    return lines
