"""Release versions compared as versions: 2026.11.10 is newer than 2026.11.9, never by date or text."""

from __future__ import annotations

import re

from packaging.version import InvalidVersion, Version

_PARTS = re.compile(r"\d+|[A-Za-z]+")


def _fallback_key(text: str) -> tuple[tuple[int, int | str], ...]:
    # Natural order for schemes PEP 440 cannot read (e.g. "release-7b"): numbers compare as numbers.
    return tuple((0, int(part)) if part.isdigit() else (1, part.lower()) for part in _PARTS.findall(text))


def is_older(running: str, fixed_in: str) -> bool:
    """True when version `running` precedes `fixed_in`, i.e. the fix is not deployed there yet."""
    try:
        return Version(running) < Version(fixed_in)
    except InvalidVersion:
        return _fallback_key(running) < _fallback_key(fixed_in)
