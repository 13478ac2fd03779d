"""Who acts: the person's name behind a request that changes something.

Behind a single-sign-on proxy (oauth2-proxy and the like) the name comes from the header
the proxy sets (BRIDGE_TRUSTED_USER_HEADER), honoured only when the request came from one
of BRIDGE_TRUSTED_PROXIES: anyone else could send the header. Otherwise a page's session
carries the name given at sign-in, and an API client names itself in `X-Bridge-Actor`
(the operate token says it may act; the header says who it acts for). An API client that
gives no name is recorded as "api".
"""

from __future__ import annotations

import unicodedata

from flask import request, session

from bridge.errors import BadPayload
from bridge.web.context import bridge

# Set in the WSGI environ by app.TrustedProxies when the peer is a trusted proxy.
TRUSTED_PEER = "bridge.trusted_peer"
ACTOR_HEADER = "X-Bridge-Actor"
SESSION_ACTOR = "actor"
UNNAMED_API_CLIENT = "api"
MAX_ACTOR_LENGTH = 200


def checked_name(given: str, where: str) -> str:
    """A person's name as it will be recorded: trimmed, 1 to 200 characters, no control characters.

    Raises:
        BadPayload: empty, too long, or with control characters (a NUL cannot be stored).
    """
    name = given.strip()
    if not name or len(name) > MAX_ACTOR_LENGTH:
        raise BadPayload(f"invalid {where}", [f"{where}: a name of 1 to {MAX_ACTOR_LENGTH} characters"])
    if any(unicodedata.category(ch).startswith("C") for ch in name):
        raise BadPayload(f"invalid {where}", [f"{where}: control characters are not allowed"])
    return name


def proxy_user() -> str | None:
    """The signed-in user named by a trusted single-sign-on proxy, if there is one."""
    header = bridge().settings.trusted_user_header
    if header is None or not request.environ.get(TRUSTED_PEER):
        return None
    given = request.headers.get(header)
    return checked_name(given, header) if given else None


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
        return named if isinstance(named, str) and named else "unnamed (page)"
    given = request.headers.get(ACTOR_HEADER)
    return checked_name(given, ACTOR_HEADER) if given else UNNAMED_API_CLIENT
