"""Who acts: the person's name behind a request that changes something.

Behind a single-sign-on proxy (oauth2-proxy and the like) the name comes from the header
the proxy sets (BRIDGE_TRUSTED_USER_HEADER), honoured only when the request came from one
of BRIDGE_TRUSTED_PROXIES: anyone else could send the header. Otherwise a page's session
carries the name given at sign-in, and an API client names itself in `X-Bridge-Actor`
(the operate token says it may act; the header says who it acts for). An API client that
gives no name is recorded as "api".
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Iterable

from flask import request, session

from adapters import SOURCES
from bridge.errors import BadPayload
from bridge.jira.outcomes import JIRA_ACTOR
from bridge.problems.corrections import DEFAULT_ACTOR
from bridge.tickets.sync import ACTORS as TICKET_ACTORS
from bridge.watch.windows import RECURRING_ACTOR
from bridge.web.context import bridge

# Set in the WSGI environ by app.TrustedProxies when the peer is a trusted proxy.
TRUSTED_PEER = "bridge.trusted_peer"
ACTOR_HEADER = "X-Bridge-Actor"
SESSION_ACTOR = "actor"
UNNAMED_API_CLIENT = "api"
UNNAMED_PAGE_VISITOR = "unnamed (page)"
MAX_ACTOR_LENGTH = 200
# Every name the bridge itself writes where a person's name goes (histories, acknowledgements,
# windows): taken by a person, their action would read as the bridge's own. Compared casefolded
# after NFKC; rules.yaml's ticket systems and Events v2 routing keys are reserved too (reserved_names).
SYSTEM_ACTORS = frozenset(
    name.casefold()
    for name in (
        UNNAMED_API_CLIENT,
        UNNAMED_PAGE_VISITOR,
        DEFAULT_ACTOR,
        JIRA_ACTOR,
        RECURRING_ACTOR,
        *TICKET_ACTORS.values(),
        *SOURCES,
        "release",
        "worker",
        "bridge",
        "incident-bridge",
        "system",
    )
)
# Zabbix's acknowledgers are recorded as "<user> (in Zabbix)" (adapters/zabbix.py).
_SYSTEM_SUFFIX = re.compile(r"\(\s*in\s+zabbix\s*\)\Z")
# Not in a C category, yet shown as nothing: Hangul fillers, blank braille, variation selectors,
# the combining grapheme joiner, Mongolian free variation selectors.
_INVISIBLE = re.compile(
    "[\u034f\u115f\u1160\u17b4\u17b5\u180b-\u180f\u2800\u3164\ufe00-\ufe0f\uffa0\U000e0100-\U000e01ef]"
)


def _problem_with(name: str, reserved: Iterable[str]) -> str | None:
    """What makes `name` unusable as a person's name, or None."""
    if not name or len(name) > MAX_ACTOR_LENGTH:
        return f"a name of 1 to {MAX_ACTOR_LENGTH} characters"
    if name != name.strip():
        return "no spaces before or after the name"
    if any(unicodedata.category(ch) == "Cc" for ch in name):
        return "control characters are not allowed"
    unseen = next(
        (ch for ch in name if _INVISIBLE.match(ch) or unicodedata.category(ch)[0] in "CZ" and ch != " "), None
    )
    if unseen is not None:
        return f"U+{ord(unseen):04X} is not allowed: only printable characters, and the plain space between words"
    folded = unicodedata.normalize("NFKC", name).strip().casefold()
    if folded in SYSTEM_ACTORS or folded in reserved or _SYSTEM_SUFFIX.search(folded):
        return f"{name!r} is a name the bridge records its own actions under; give your own name"
    return None


def reserved_names() -> frozenset[str]:
    """The names a person may not take on this deployment: the bridge's own and those rules.yaml gives
    to ticket systems and Events v2 routing keys (casefolded, NFKC)."""
    rules = bridge().rules
    named = [*rules.ticket_systems, *(key.name for key in rules.event_routing_keys)]
    return frozenset(unicodedata.normalize("NFKC", name).strip().casefold() for name in named)


def checked_name(given: str, where: str) -> str:
    """A person's name as it will be recorded: 1 to 200 printable characters, none of the bridge's own.

    Raises:
        BadPayload: empty, too long, spaces around it, control or invisible characters, or a reserved name.
    """
    problem = _problem_with(given, reserved_names())
    if problem is not None:
        raise BadPayload(f"invalid {where}", [f"{where}: {problem}"])
    return given


def header_text(value: str) -> str:
    """A header's text as the client wrote it: WSGI hands bytes over as Latin-1, names come in UTF-8."""
    try:
        return value.encode("latin-1").decode("utf-8")
    except (UnicodeEncodeError, UnicodeDecodeError):
        return value


def proxy_user() -> str | None:
    """The signed-in user named by a trusted single-sign-on proxy, if there is one."""
    header = bridge().settings.trusted_user_header
    if header is None or not request.environ.get(TRUSTED_PEER):
        return None
    given = request.headers.get(header)
    return checked_name(header_text(given), header) if given else None


def request_actor() -> str:
    """The name to record for the action this request performs (API or page).

    Raises:
        BadPayload: the name given is unusable.
    """
    from_proxy = proxy_user()
    if from_proxy is not None:
        return from_proxy
    if request.blueprint is not None and request.blueprint.startswith("ui"):
        named = session.get(SESSION_ACTOR)
        return named if isinstance(named, str) and named else UNNAMED_PAGE_VISITOR
    given = request.headers.get(ACTOR_HEADER)
    return checked_name(header_text(given), ACTOR_HEADER) if given else UNNAMED_API_CLIENT
