"""The names a person acts under: never one the bridge records its own actions under, never with
invisible characters, in any script otherwise; at sign-in and in the API's X-Bridge-Actor."""

from __future__ import annotations

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

from bridge.app import create_app
from bridge.config import load_settings
from bridge.errors import BadPayload
from bridge.web.actors import SYSTEM_ACTORS, checked_name
from tests.conftest import ROOT, example_rules_with, payload_bytes

READ, OPERATE = "names-read-token", "names-operate-token"
AM = {"Authorization": "Bearer am-token", "Content-Type": "application/json"}
# Names rules.yaml gives below: a ticket system and an Events v2 routing key.
CONFIGURED = ["itsm", "portal-uptime"]
REFUSED = [
    *sorted(SYSTEM_ACTORS),
    "JIRA",
    "Jira",
    "ｊｉｒａ",  # fullwidth: NFKC makes it jira
    "ji\u200bra",  # zero-width space
    "\u202eajir",  # right-to-left override: shows as "rija" backwards
    "Ann\u200d",  # zero-width joiner at the end
    "Ann\u3164",  # Hangul filler, a "letter" shown as nothing
    "Ann\ufe0f",  # variation selector
    "Ann\u00a0Lee",  # a space that is not the plain one
    "Ann\u2028Lee",  # a line separator
    "Ann\ue000",  # private use
    "Ann\U000e0001",  # a language tag
    "Ann\u0378",  # unassigned
    "x" * 201,
    "ann (in Zabbix)",
    *CONFIGURED,
    "ITSM",
]
ACCEPTED = ["Анна", "Ann Lee", "李娜", "José Núñez", "O'Brien-Smith", "x" * 200]


@pytest.fixture
def app(tmp_path: Path) -> Iterator:
    environ = {"BRIDGE_ITSM_URL": "http://127.0.0.1:9/", "BRIDGE_ITSM_SECRET": "s", "BRIDGE_EVENTS_KEY": "k" * 32}
    rules = example_rules_with(
        environ,
        ticket_systems={"itsm": {"url": "${BRIDGE_ITSM_URL}", "secret_env": "BRIDGE_ITSM_SECRET"}},
        events={"routing_keys": [{"name": "portal-uptime", "key": "${BRIDGE_EVENTS_KEY}"}]},
    )
    settings = load_settings(
        {"BRIDGE_TOKEN_API": READ, "BRIDGE_TOKEN_OPERATE": OPERATE, "BRIDGE_TOKEN_ALERTMANAGER": "am-token"},
        database_url=f"sqlite:///{tmp_path / 'names.db'}",
    )
    from bridge.storage.engine import migrate

    migrate(settings.database_url)
    app = create_app(settings, rules=rules)
    sent = app.test_client().post(
        "/api/v1/alerts/alertmanager", headers=AM, data=payload_bytes("alertmanager-0.25-two-firing.json")
    )
    assert sent.status_code == 200
    yield app
    app.extensions["bridge"].store.engine.dispose()


def as_header(name: str) -> str:
    """The header as a client sends it in UTF-8, as the server's WSGI layer hands it over (Latin-1)."""
    return name.encode("utf-8", "surrogatepass").decode("latin-1")


def ack(app, name: str):
    headers = {
        "Authorization": f"Bearer {OPERATE}",
        "X-Bridge-Actor": as_header(name),
        "Content-Type": "application/json",
    }
    return app.test_client().post("/api/v1/incidents/1/ack", headers=headers)


def acknowledged_by(app) -> str | None:
    return (
        app.test_client()
        .get("/api/v1/incidents/1", headers={"Authorization": f"Bearer {READ}"})
        .json["acknowledged_by"]
    )


def sign_in(app, name: str):
    return app.test_client().post("/ui/login", data={"token": OPERATE, "name": name})


@pytest.mark.parametrize("name", REFUSED, ids=ascii)
def test_a_reserved_or_unprintable_name_is_refused_at_sign_in(app, name: str):
    refused = sign_in(app, name)
    page = refused.get_data(as_text=True)
    assert refused.status_code == 401 and "Set-Cookie" not in refused.headers
    assert "That name cannot be recorded: name: " in page


@pytest.mark.parametrize("name", REFUSED, ids=ascii)
def test_a_reserved_or_unprintable_name_is_refused_by_the_api(app, name: str):
    refused = ack(app, name)
    assert refused.status_code == 400 and refused.json["message"] == "invalid X-Bridge-Actor"
    [error] = refused.json["errors"]
    assert error.startswith("X-Bridge-Actor: ")
    assert acknowledged_by(app) is None


@pytest.mark.parametrize("name", ["jira", "ji\u200bra"])
def test_the_refusal_says_what_is_wrong(app, name: str):
    [error] = ack(app, name).json["errors"]
    assert ("records its own actions under" in error) if name == "jira" else ("U+200B is not allowed" in error)
    assert "That name cannot be recorded" in sign_in(app, name).get_data(as_text=True)


@pytest.mark.parametrize("name", ACCEPTED)
def test_a_name_in_any_script_is_accepted_at_sign_in_and_by_the_api(app, name: str):
    signed = sign_in(app, name)
    assert signed.status_code == 302
    acked = ack(app, name)
    assert acked.status_code == 200 and acked.json["acknowledged_by"] == name


def test_spaces_around_a_name_are_trimmed_by_the_sign_in_form_and_refused_where_they_would_be_kept(app):
    signed = app.test_client()
    assert signed.post("/ui/login", data={"token": OPERATE, "name": "  Ann  "}).status_code == 302
    assert 'id="actor">Ann<' in signed.get("/ui/").get_data(as_text=True)
    with app.test_request_context(), pytest.raises(BadPayload, match="invalid name"):
        checked_name(" Ann", "name")


def test_a_name_spelt_in_latin_1_by_an_older_client_is_still_read():
    """Bytes that are not UTF-8 are read as Latin-1, as before: José stays José."""
    from bridge.web.actors import header_text

    assert header_text("Jos\xe9") == "José"
    assert header_text(as_header("Анна")) == "Анна"


def literal_actors() -> set[str]:
    """Every string the bridge's code writes where a person's name goes: actor keywords and *_ACTOR(S) constants."""
    found = set()
    for path in (ROOT / "bridge").rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.keyword) and node.arg in ("actor", "created_by", "ended_by", "acknowledged_by"):
                if isinstance(node.value, ast.Constant) and isinstance(node.value.value, str):
                    found.add(node.value.value)
            if isinstance(node, ast.Assign) and any(
                isinstance(t, ast.Name)
                and t.id.endswith(("_ACTOR", "ACTORS", "UNNAMED_API_CLIENT"))
                and t.id != "SESSION_ACTOR"  # the cookie's key, not a name
                for t in node.targets
            ):
                found |= {
                    c.value for c in ast.walk(node.value) if isinstance(c, ast.Constant) and isinstance(c.value, str)
                }
    return found


def test_every_name_the_bridge_writes_for_itself_is_reserved():
    written = literal_actors()
    assert {"jira", "rt", "jsm", "api", "rules.yaml"} <= written, "the scan finds the bridge's own names"
    assert sorted(name for name in written if name.casefold() not in SYSTEM_ACTORS) == []
