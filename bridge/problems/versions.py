"""Release versions compared as versions: 2026.11.10 is newer than 2026.11.9, never by date or text."""

from __future__ import annotations

import re

from packaging.version import Version

_PARTS = re.compile(r"\d+|[A-Za-z]+")
# Versions come from alert labels (up to 16 kB): past this length they are not real versions,
# and packaging's int() of a long digit run raises ValueError (over 4300 digits) or is slow.
MAX_VERSION_LENGTH = 200


def _number(digits: str) -> tuple[int, str]:
    # Natural order without int(): fewer significant digits is smaller, then digit by digit.
    significant = digits.lstrip("0")
    return len(significant), significant


def _fallback_key(text: str) -> tuple[tuple[int, tuple[int, str] | str], ...]:
    # Natural order for schemes PEP 440 cannot read (e.g. "release-7b"): numbers compare as numbers.
    return tuple((0, _number(part)) if part.isdigit() else (1, part.lower()) for part in _PARTS.findall(text))


def is_older(running: str, fixed_in: str) -> bool:
    """True when version `running` precedes `fixed_in`, i.e. the fix is not deployed there yet."""
    if len(running) <= MAX_VERSION_LENGTH and len(fixed_in) <= MAX_VERSION_LENGTH:
        try:
            return Version(running) < Version(fixed_in)
        except ValueError:  # InvalidVersion is a ValueError
            pass
    return _fallback_key(running) < _fallback_key(fixed_in)
