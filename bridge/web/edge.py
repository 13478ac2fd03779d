"""What every view checks at the HTTP edge: tokens, requests from other sites, the JSON content type, the body
size, query arguments.

The API, the webhooks and the pages share these, so each rule of the edge is written once.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable
from datetime import date, datetime
from functools import wraps
from typing import Any
from urllib.parse import urlsplit
from zoneinfo import ZoneInfo

from flask import Blueprint, request
from pydantic import BaseModel, ValidationError
from werkzeug.exceptions import RequestEntityTooLarge

from bridge.config import TOKEN_GROUPS, Secret, is_loopback_bind
from bridge.domain.reports import FIRST_YEAR, LAST_YEAR, Period, last_full_month, month_period, period_problem
from bridge.errors import BadPayload, Forbidden, NotFound, PayloadTooLarge, Unauthorized, UnsupportedMediaType
from bridge.storage.engine import MAX_ID
from bridge.validation import describe
from bridge.web.context import bridge
from bridge.web.throttle import count_failure, refuse_if_throttled

DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 500
_INTEGER = re.compile(r"-?[0-9]+")
_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")
_MONTH = re.compile(r"([0-9]{4})-([0-9]{2})")
# How much of a refused query value an error repeats.
SHOWN_VALUE = 40


def check_bearer(group: str) -> None:
    """Require `Authorization: Bearer <token>` when the group (config.TOKEN_GROUPS) has a token.

    A client address that failed too often lately is refused before anything is compared
    (bridge.web.throttle); each failure is counted against it.

    Raises:
        TooManyFailures: the address waits (429).
        Unauthorized: missing or wrong token (compared in constant time).
    """
    expected = group_token(group)
    if expected is None:
        return
    refuse_if_throttled(group)
    header = request.headers.get("Authorization", "")
    scheme, _, given = header.partition(" ")
    if scheme.lower() != "bearer" or not expected.matches(given.strip()):
        count_failure(group)
        raise Unauthorized("missing or invalid bearer token", ["Authorization: expected 'Bearer <token>'"])


def group_token(group: str) -> Secret | None:
    """The token of an endpoint group (config.TOKEN_GROUPS), None when the operator left it open."""
    return bridge().settings.token(group)


def requires_token(group: str) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """Guard a view with the bearer token of its endpoint group."""
    assert group in TOKEN_GROUPS, group

    def decorate(view: Callable[..., Any]) -> Callable[..., Any]:
        @wraps(view)
        def guarded(*args: Any, **kwargs: Any) -> Any:
            check_bearer(group)
            return view(*args, **kwargs)

        return guarded

    return decorate


# The methods that act or write; a browser sends them cross-site from a form or a no-cors fetch.
ACTING_METHODS = frozenset({"POST", "PUT", "PATCH", "DELETE"})
# Sec-Fetch-Site values of a request this bridge's own pages made, or a person typed.
OWN_FETCH_SITES = ("same-origin", "none")


def _own_origin(origin: str) -> bool:
    """Whether an Origin header names this bridge: the host the request was sent to, or BRIDGE_PUBLIC_URL's."""
    given = urlsplit(origin.strip().lower())
    public = urlsplit(bridge().settings.public_url.lower())
    return bool(given.netloc) and (
        given.netloc == request.host.lower() or (given.scheme, given.netloc) == (public.scheme, public.netloc)
    )


def _loopback_host(host: str) -> bool:
    """Whether a Host header's name (port and brackets aside) is this machine's: a loopback address or localhost."""
    try:
        name = urlsplit(f"//{host}").hostname or ""
    except ValueError:
        return False
    try:
        return ipaddress.ip_address(name).is_loopback
    except ValueError:
        return name == "localhost" or name.endswith(".localhost")


def refuse_foreign_host() -> None:
    """A bridge listening on loopback answers only requests addressed to loopback or BRIDGE_PUBLIC_URL.

    A web page can point a name of its own at 127.0.0.1 (DNS rebinding): the browser then
    treats the bridge as that page's own site, so Origin and Sec-Fetch-Site say same-origin and
    a bridge without tokens (what `make run` starts) would answer and act. The Host header still
    carries the page's name. A unix socket (a proxy in front) and network binds are left to their
    tokens and the proxy.

    Raises:
        Forbidden: a Host that is neither a loopback name or address nor BRIDGE_PUBLIC_URL's host.
    """
    settings = bridge().settings
    if settings.bind.startswith("unix:") or not is_loopback_bind(settings.bind):
        return
    host = request.host.lower()
    if _loopback_host(host) or host == urlsplit(settings.public_url.lower()).netloc:
        return
    raise Forbidden(
        "refused a request addressed to another host name",
        [f"Host: {host[:SHOWN_VALUE]!r} is not this bridge (listening on {settings.bind}; set BRIDGE_PUBLIC_URL)"],
    )


def refuse_cross_site() -> None:
    """No request from a web page of another site acts, on any endpoint, whatever token it carries.

    The browser's own verdict (Sec-Fetch-Site) decides when it sent one; an older browser's
    Origin is compared with this bridge's. Senders and curl send neither and pass.

    Raises:
        Forbidden: an acting request that a browser marked cross-site, or whose Origin is another site.
    """
    if request.method not in ACTING_METHODS:
        return
    fetch_site = request.headers.get("Sec-Fetch-Site")
    if fetch_site is not None:
        if fetch_site.strip().lower() not in OWN_FETCH_SITES:
            raise Forbidden("refused a request from another site", [f"Sec-Fetch-Site: {fetch_site[:SHOWN_VALUE]!r}"])
        return
    origin = request.headers.get("Origin")
    if origin is not None and not _own_origin(origin):
        raise Forbidden("refused a request from another site", [f"Origin: {origin[:SHOWN_VALUE]!r} is not this bridge"])


def require_json() -> None:
    """A request that acts declares JSON, even without a body. A form or a no-cors fetch cannot send
    that type, so a web page cannot make a browser act on a bridge whose tokens are unset.

    Raises:
        UnsupportedMediaType: an acting request of any other Content-Type, or none (a charset parameter is fine).
    """
    if request.method in ACTING_METHODS and request.mimetype != "application/json":
        raise UnsupportedMediaType(
            "expected Content-Type: application/json",
            [f"Content-Type: got {request.content_type or 'none'!r} (declare JSON, also without a body)"],
        )


def json_writes(blueprint: Blueprint) -> Blueprint:
    """The blueprint's writes carry JSON (`require_json`): the one before-request check of every API resource."""
    blueprint.before_request(require_json)
    return blueprint


def unread_head() -> bytes:
    """The first BRIDGE_REJECTED_BODY_LIMIT bytes of a body nobody read, to keep with its refusal."""
    head: bytes = request.environ["wsgi.input"].read(bridge().settings.rejected_body_limit)
    return head


def read_body(limit_name: str = "BRIDGE_MAX_BODY_BYTES") -> bytes:
    """The whole body, or 413 when it is past the request's limit (BRIDGE_MAX_BODY_BYTES unless a view lowered it).

    Werkzeug stops a streamed (chunked) body at the limit without saying so; one more byte
    from the server's stream tells a body of exactly the limit from a longer one. A body
    declared too long is not read, but its first BRIDGE_REJECTED_BODY_LIMIT bytes are, so a
    webhook's refusal can be kept.

    Raises:
        PayloadTooLarge: the body is longer than the limit.
    """
    limit = request.max_content_length
    assert limit is not None, "create_app sets MAX_CONTENT_LENGTH"
    try:
        body = request.get_data()
    except RequestEntityTooLarge as exc:
        raise PayloadTooLarge(limit, unread_head(), limit_name) from exc
    if request.content_length is None and len(body) >= limit and request.environ["wsgi.input"].read(1):
        raise PayloadTooLarge(limit, body, limit_name)
    return body


def json_object() -> Any:
    read_body()
    return request.get_json(silent=True)


def validated_body(model: type[BaseModel], *, optional: bool = False) -> Any:
    """The JSON body as `model`; an empty body is `model()` when `optional`.

    Raises:
        BadPayload: not a JSON object, or a field fails its check (each named).
    """
    if optional and not read_body():
        return model()
    body = json_object()
    if not isinstance(body, dict):
        raise BadPayload("expected a JSON object", ["body: not a JSON object"])
    try:
        return model.model_validate(body)
    except ValidationError as exc:
        raise BadPayload(f"invalid {model.__name__}", describe(exc)) from exc


def problem_or_404(problem_id: int) -> dict[str, Any]:
    """The problem as the store reads it.

    Raises:
        NotFound: no such problem.
    """
    problem = bridge().store.get_problem(problem_id)
    if problem is None:
        raise NotFound(f"no problem {problem_id}")
    return problem


def int_arg(name: str, default: int | None = None, minimum: int = 1, maximum: int | None = None) -> int | None:
    """An integer query argument in bounds; ASCII digits only (int() would take "1_0" and other scripts' digits).

    Raises:
        BadPayload: not an integer, or out of bounds.
    """
    raw = request.args.get(name)
    if raw is None or raw == "":
        return default
    if not _INTEGER.fullmatch(raw):
        raise BadPayload(f"invalid query parameter {name}", [f"{name}: expected an integer, got {raw!r}"])
    value = int(raw) if len(raw) <= 20 else None  # longer is out of any bound here, and int() caps digits
    if value is None or value < minimum or (maximum is not None and value > maximum):
        bounds = f"between {minimum} and {maximum}" if maximum is not None else f"at least {minimum}"
        raise BadPayload(f"invalid query parameter {name}", [f"{name}: must be {bounds}"])
    return value


def choice_arg(name: str, allowed: Iterable[str]) -> str | None:
    """One of `allowed`, or None when absent.

    Raises:
        BadPayload: any other value.
    """
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    allowed = tuple(allowed)
    if raw not in allowed:
        raise BadPayload(f"invalid query parameter {name}", [f"{name}: expected one of {', '.join(allowed)}"])
    return raw


def page_args() -> tuple[int, int | None]:
    """The `limit` and `cursor` of a listing, validated (the UI pages use them too)."""
    limit = int_arg("limit", DEFAULT_PAGE_SIZE, maximum=MAX_PAGE_SIZE)
    assert limit is not None
    return limit, int_arg("cursor", maximum=MAX_ID)


def _refused_arg(name: str, why: str) -> BadPayload:
    return BadPayload(f"invalid query parameter {name}", [f"{name}: {why}"])


def date_arg(name: str) -> date | None:
    """A calendar date as YYYY-MM-DD, or None when absent.

    Raises:
        BadPayload: another shape, or no such day (2026-02-30).
    """
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not _DATE.fullmatch(raw):
        raise _refused_arg(name, f"expected a date as YYYY-MM-DD, got {raw[:SHOWN_VALUE]!r}")
    try:
        return date.fromisoformat(raw)
    except ValueError as exc:
        raise _refused_arg(name, f"{raw!r} is not a calendar date") from exc


def period_args(zone: ZoneInfo, now: datetime) -> Period:
    """The period a report covers, in `zone`: `from` and `to` (dates, both included), or `month` (YYYY-MM);
    the last full month when none is given.

    Raises:
        BadPayload: naming the parameter that is malformed, missing, out of range or in conflict.
    """
    first, last, month = date_arg("from"), date_arg("to"), request.args.get("month") or None
    if month is not None:
        matched = _MONTH.fullmatch(month)
        if first is not None or last is not None:
            raise _refused_arg("month", "give either month or from and to, not both")
        if matched is None or not 1 <= int(matched.group(2)) <= 12:
            raise _refused_arg("month", f"expected a month as YYYY-MM, got {month[:SHOWN_VALUE]!r}")
        if not FIRST_YEAR <= int(matched.group(1)) <= LAST_YEAR:
            raise _refused_arg("month", f"the year must be between {FIRST_YEAR} and {LAST_YEAR}")
        return month_period(int(matched.group(1)), int(matched.group(2)), zone)
    if first is None and last is None:
        return last_full_month(now, zone)
    if first is None or last is None:
        missing, given = ("from", "to") if first is None else ("to", "from")
        raise BadPayload(f"missing query parameter {missing}", [f"{missing}: required with {given} (YYYY-MM-DD)"])
    problem = period_problem(first, last)
    if problem is not None:
        raise _refused_arg(*problem)
    return Period(first, last, zone)


def pattern_arg(name: str, pattern: re.Pattern[str], example: str) -> str | None:
    """A query argument matching `pattern`, or None when absent.

    Raises:
        BadPayload: it does not match (the error shows `example`).
    """
    raw = request.args.get(name)
    if raw is None or raw == "":
        return None
    if not pattern.fullmatch(raw):
        raise _refused_arg(name, f"expected something like {example}, got {raw[:SHOWN_VALUE]!r}")
    return raw
