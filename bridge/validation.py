"""Shared helpers that turn pydantic findings into messages naming the field."""

from __future__ import annotations

import re
from datetime import timedelta
from re import _constants as sre  # type: ignore[attr-defined]  # the parse tree re.compile builds, for nested_repeat
from re import _parser  # type: ignore[attr-defined]
from typing import Annotated, Any
from urllib.parse import quote

import orjson
from pydantic import AfterValidator, BaseModel, ConfigDict, StringConstraints, ValidationError
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


def bounded_str(min_length: int = 0, max_length: int | None = None) -> Any:
    """SafeStr within length bounds, usable inside `X | None` (where Field bounds would count "items")."""
    return Annotated[str, StringConstraints(min_length=min_length, max_length=max_length), AfterValidator(_no_nul)]


# Bounds on what one alert may carry: far above real use, low enough to keep rows and keys sane.
MAX_LABELS = 128
MAX_LABEL_NAME_LENGTH = 256
MAX_LABEL_VALUE_LENGTH = 16_384


def _bounded_labels(labels: dict[str, str]) -> dict[str, str]:
    if len(labels) > MAX_LABELS:
        raise ValueError(f"more than {MAX_LABELS} entries")
    for name, value in labels.items():
        if len(name) > MAX_LABEL_NAME_LENGTH:
            raise ValueError(f"name longer than {MAX_LABEL_NAME_LENGTH} characters: {name[:40]!r}...")
        if len(value) > MAX_LABEL_VALUE_LENGTH:
            raise ValueError(f"value of {name[:40]!r} longer than {MAX_LABEL_VALUE_LENGTH} characters")
    return labels


LabelMap = Annotated[dict[SafeStr, SafeStr], AfterValidator(_bounded_labels)]


# Every byte that is not a bracket, and both kinds of bracket as one (nesting is all the check reads).
_NOT_BRACKETS = bytes(byte for byte in range(256) if byte not in b"[]{}")
_NOT_BRACKETS_OR_QUOTES = bytes(byte for byte in range(256) if byte not in b'[]{}"')
_ONE_KIND = bytes.maketrans(b"{}", b"[]")
_ESCAPE = re.compile(rb"\\.", re.DOTALL)


def nesting_depth_exceeds(body: bytes, limit: int) -> bool:
    """True when the containers of a well-formed JSON body nest deeper than `limit`.

    Works on the bytes rather than walking the parsed value, in C calls only (this runs on
    every webhook): escapes dropped (each backslash with the byte after it, left to right, as
    a string's escapes read), then all but brackets and quotes; a bracket is inside a string when an odd
    number of quotes precede it, which dropping two adjacent quotes does not change, so the
    strings without brackets (nearly all) go in one replace, and splitting on the few quotes
    left keeps the brackets outside strings (a 10-alert body: 8 µs, where splitting the body
    on its 500 quotes took 24). Each round of removing empty pairs then takes one level off.
    """
    # Brackets inside strings only add to this count: few enough of them settles it at once.
    if len(body.translate(None, _NOT_BRACKETS)) <= 2 * limit:
        return False
    marks = _ESCAPE.sub(b"", body).translate(None, _NOT_BRACKETS_OR_QUOTES).replace(b'""', b"")
    brackets = b"".join(marks.split(b'"')[::2]).translate(_ONE_KIND)
    for _ in range(limit):
        if not brackets:
            return False
        brackets = brackets.replace(b"[]", b"")
    return bool(brackets)


def json_in_text(text: str, max_depth: int) -> Any:
    """Parse JSON a sender put inside a string field, refusing what nests deeper than `max_depth`.

    Raises:
        ValueError: not JSON, or nested too deep (json.loads would hit RecursionError first).
    """
    raw = text.encode("utf-8", "surrogatepass")
    if nesting_depth_exceeds(raw, max_depth):
        raise ValueError(f"JSON nested more than {max_depth} levels deep")
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise ValueError(f"not valid JSON: {exc}") from exc


class StrictModel(BaseModel):
    """A section of a configuration file: unknown keys are errors, never silently ignored."""

    model_config = ConfigDict(extra="forbid", frozen=True)


_DURATION = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")


def parse_duration(text: str) -> timedelta:
    """Parse `90s`, `30m`, `4h`, `1d12h` into a timedelta.

    Raises:
        ValueError: the text is not such a duration.
    """
    match = _DURATION.match(text.strip()) if isinstance(text, str) else None
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"invalid duration {text!r}: use forms like 90s, 30m, 4h, 1d")
    days, hours, minutes, seconds = (int(group or 0) for group in match.groups())
    return timedelta(days=days, hours=hours, minutes=minutes, seconds=seconds)


def nested_repeat(pattern: str) -> bool:
    """Whether a (compilable) regex repeats a group that itself repeats without bound, as `(a+)+`: such a
    pattern can take exponential time on one crafted label, and the webhook path would wait for it."""
    repeats = (sre.MAX_REPEAT, sre.MIN_REPEAT, sre.POSSESSIVE_REPEAT)

    def walk(items: Any, repeated: bool) -> bool:
        for op, value in items:
            if op in repeats:
                _, high, inner = value
                if repeated and high == sre.MAXREPEAT:
                    return True
                if walk(inner, repeated or high > 1):
                    return True
            elif op is sre.SUBPATTERN and walk(value[-1], repeated):
                return True
            elif op is sre.BRANCH and any(walk(branch, repeated) for branch in value[1]):
                return True
        return False

    return walk(_parser.parse(pattern), False)


def url_segment(value: object) -> str:
    """One path segment of an outbound URL, percent-encoded whole: a `/` stays inside it, and a segment of
    dots only (which clients and servers collapse as `.` and `..`) has its dots encoded too."""
    encoded = quote(str(value), safe="")
    return encoded.replace(".", "%2E") if encoded.strip(".") == "" else encoded
