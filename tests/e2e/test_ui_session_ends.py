"""A /ui/ session ends for good, on SQLite and PostgreSQL: signing out refuses every copy of its
cookie on every replica, the lifetime counts from signing in whatever the activity, and signing
out everywhere ends every browser of that person and no one else's."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from bridge.app import create_app
from bridge.config import load_settings
from tests.conftest import ROOT, Clock, payload_bytes

READ, OPERATE = "sessions-read-token", "sessions-operate-token"
AM = {"Authorization": "Bearer am-token", "Content-Type": "application/json"}


@pytest.fixture
def replicas(database_url: str, clock: Clock) -> Iterator[list]:
    """Two bridge processes on one database, as behind a load balancer, with one firing incident."""
    environ = {"BRIDGE_TOKEN_API": READ, "BRIDGE_TOKEN_OPERATE": OPERATE, "BRIDGE_TOKEN_ALERTMANAGER": "am-token"}
    apps = [
        create_app(load_settings(environ, database_url=database_url, rules_path=str(ROOT / "rules.yaml")), now=clock)
        for _ in range(2)
    ]
    sent = (
        apps[0]
        .test_client()
        .post("/api/v1/alerts/alertmanager", headers=AM, data=payload_bytes("alertmanager-0.25-two-firing.json"))
    )
    assert sent.status_code == 200
    yield apps
    for app in apps:
        app.extensions["bridge"].store.engine.dispose()


def signed_in(app, name: str = "Ann", token: str = OPERATE):
    client = app.test_client()
    response = client.post("/ui/login", data={"token": token, "name": name})
    assert response.status_code == 302, response.get_data(as_text=True)
    return client


def cookie_of(client) -> str:
    return client.get_cookie("bridge_session", path="/ui/").value


def with_cookie(app, cookie: str):
    client = app.test_client()
    client.set_cookie("bridge_session", cookie, path="/ui/")
    return client


def form_token(client, page: str = "/ui/incidents/1") -> str:
    html = client.get(page).get_data(as_text=True)
    return html.split('name="csrf_token" value="')[1].split('"')[0]


def acknowledged_by(app) -> str | None:
    return (
        app.test_client()
        .get("/api/v1/incidents/1", headers={"Authorization": f"Bearer {READ}"})
        .json["acknowledged_by"]
    )


def test_a_cookie_copied_before_sign_out_is_refused_after_it_on_every_replica(replicas):
    first, second = replicas
    browser = signed_in(first)
    copy = with_cookie(second, cookie_of(browser))
    token = form_token(copy)
    assert copy.get("/ui/problems").status_code == 200, "the other replica accepts the live session"
    assert browser.post("/ui/logout").status_code == 302
    for app in (first, second):
        stolen = with_cookie(app, cookie_of(copy))
        assert stolen.get("/ui/problems").status_code == 302
        refused = stolen.post("/ui/incidents/1/ack", data={"csrf_token": token})
        assert refused.status_code == 302 and refused.headers["Location"].startswith("/ui/login")
    assert acknowledged_by(first) is None


def test_signing_in_again_ends_the_browsers_earlier_session(replicas):
    first, second = replicas
    browser = signed_in(first, token=READ)
    copy = with_cookie(second, cookie_of(browser))
    assert browser.post("/ui/login", data={"token": OPERATE, "name": "Ann"}).status_code == 302
    assert browser.get("/ui/problems").status_code == 200
    assert copy.get("/ui/problems").status_code == 302


def test_a_session_ends_its_lifetime_after_signing_in_whatever_the_activity(replicas, clock: Clock):
    first, second = replicas
    browser = signed_in(first)
    clock.advance(hours=11, minutes=50)
    acted = browser.post("/ui/incidents/1/ack", data={"csrf_token": form_token(browser)})
    assert acted.status_code == 303 and acknowledged_by(first) == "Ann"
    assert "bridge_session=" in acted.headers["Set-Cookie"], "acting re-signs the cookie"
    renewed = cookie_of(browser)
    assert browser.get("/ui/problems").status_code == 200
    clock.advance(minutes=11)
    for app in (first, second):
        assert with_cookie(app, renewed).get("/ui/problems").status_code == 302, "12 hours from signing in"


def test_the_lifetime_is_a_setting(database_url: str, clock: Clock):
    environ = {"BRIDGE_TOKEN_API": READ, "BRIDGE_SESSION_LIFETIME": "30m"}
    app = create_app(load_settings(environ, database_url=database_url, rules_path=str(ROOT / "rules.yaml")), now=clock)
    try:
        browser = signed_in(app, token=READ)
        clock.advance(minutes=29)
        assert browser.get("/ui/problems").status_code == 200
        clock.advance(minutes=2)
        assert browser.get("/ui/problems").status_code == 302
    finally:
        app.extensions["bridge"].store.engine.dispose()


def test_sign_out_everywhere_ends_every_browser_of_that_person_and_no_one_elses(replicas):
    first, second = replicas
    laptop, phone, colleague = signed_in(first), signed_in(second), signed_in(second, "Bob")
    page = laptop.get("/ui/").get_data(as_text=True)
    assert 'action="/ui/logout/everywhere"' in page and 'id="logout-everywhere"' in page
    assert laptop.post("/ui/logout/everywhere", data={"csrf_token": "forged"}).status_code == 400
    assert phone.get("/ui/problems").status_code == 200, "a post without the form token ends nothing"
    ended = laptop.post("/ui/logout/everywhere", data={"csrf_token": form_token(laptop, "/ui/")})
    assert ended.status_code == 302 and ended.headers["Location"] == "/ui/login"
    assert "Signed out everywhere: 2 session(s) of Ann ended." in laptop.get("/ui/login").get_data(as_text=True)
    assert laptop.get("/ui/problems").status_code == 302
    assert phone.get("/ui/problems").status_code == 302
    assert colleague.get("/ui/problems").status_code == 200


@pytest.mark.parametrize("name", ["", "Ann"])
def test_a_read_session_cannot_sign_anyone_out_everywhere(replicas, name: str):
    """Not even a name given with the read token: anyone holding it could end someone else's sessions."""
    first, second = replicas
    acting = signed_in(second)
    reader = signed_in(first, name=name, token=READ)
    assert 'id="logout-everywhere"' not in reader.get("/ui/").get_data(as_text=True)
    assert reader.post("/ui/logout/everywhere").status_code == 403
    assert acting.get("/ui/problems").status_code == 200
