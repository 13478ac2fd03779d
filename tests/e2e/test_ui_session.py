"""The /ui/ session through Flask's test client: a signed cookie without the token, a logout that
ends it, security headers on every response, the Secure flag behind trusted proxies only."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from bridge.config import SettingsError, load_settings
from tests.conftest import Clock, build_app, payload_bytes

TOKEN = "ui-read-token-31337"
AM = {"Authorization": "Bearer am-token", "Content-Type": "application/json"}
PAGES = ["/ui/", "/ui/incidents", "/ui/incidents/1", "/ui/problems", "/ui/problems/1", "/ui/rejected"]


def make_app(tmp_path: Path, clock: Clock, token: str = TOKEN, **extra: str):
    tmp_path.mkdir(exist_ok=True)
    return build_app(tmp_path, {"BRIDGE_TOKEN_API": token, "BRIDGE_TOKEN_ALERTMANAGER": "am-token", **extra}, clock)


@pytest.fixture
def app(tmp_path: Path, clock: Clock):
    app = make_app(tmp_path, clock)
    sent = app.test_client().post(
        "/api/v1/alerts/alertmanager", headers=AM, data=payload_bytes("alertmanager-0.25-two-firing.json")
    )
    assert sent.status_code == 200
    return app


def sign_in(client, token: str = TOKEN, **environ):
    return client.post("/ui/login", data={"token": token, "next": "/ui/incidents"}, environ_base=environ)


def test_the_session_cookie_is_signed_and_never_holds_the_token(app):
    client = app.test_client()
    response = sign_in(client)
    assert response.status_code == 302 and response.headers["Location"] == "/ui/incidents"
    [cookie] = response.headers.getlist("Set-Cookie")
    assert cookie.startswith("bridge_session=") and TOKEN not in cookie
    assert {"HttpOnly", "SameSite=Strict", "Path=/ui/"} <= {part.strip() for part in cookie.split(";")}
    assert client.get("/ui/incidents").status_code == 200


@pytest.mark.parametrize(
    "name, value",
    [
        ("bridge_token", TOKEN),  # the old cookie, the raw token: no longer a way in
        ("bridge_session", '{"signed_in": true}'),
        ("bridge_session", "eyJzaWduZWRfaW4iOnRydWV9.aaaaaa.forgedsignatureforgedsignature"),
    ],
)
def test_a_forged_or_raw_token_cookie_does_not_open_the_pages(app, name, value):
    client = app.test_client()
    client.set_cookie(name, value, path="/ui/")
    response = client.get("/ui/problems")
    assert response.status_code == 302 and response.headers["Location"].startswith("/ui/login")


def test_every_replica_accepts_the_session_and_rotating_the_token_ends_it(app, tmp_path: Path, clock: Clock):
    client = app.test_client()
    sign_in(client)
    cookie = client.get_cookie("bridge_session", path="/ui/").value
    replica = make_app(tmp_path, clock).test_client()  # another process on the same database
    replica.set_cookie("bridge_session", cookie, path="/ui/")
    assert replica.get("/ui/rejected").status_code == 200
    rotated = make_app(tmp_path, clock, token="the-new-token").test_client()
    rotated.set_cookie("bridge_session", cookie, path="/ui/")
    assert rotated.get("/ui/rejected").status_code == 302


def test_every_page_has_a_logout_button_and_logout_ends_the_session(app):
    client = app.test_client()
    sign_in(client)
    for page in PAGES:
        html = client.get(page).get_data(as_text=True)
        assert re.search(
            r'<form class="logout" method="post" action="/ui/logout"><button type="submit" id="logout">', html
        ), page
    assert client.get("/ui/logout").status_code == 405, "a link or an image cannot sign anyone out"
    response = client.post("/ui/logout")
    assert response.status_code == 302 and response.headers["Location"] == "/ui/login"
    assert "Max-Age=0" in response.headers["Set-Cookie"]
    assert client.get_cookie("bridge_session", path="/ui/") is None
    assert client.get("/ui/").status_code == 302


def test_a_cross_site_post_cannot_sign_in_or_out(app):
    client = app.test_client()
    response = client.post("/ui/login", data={"token": TOKEN}, headers={"Sec-Fetch-Site": "cross-site"})
    assert response.status_code == 403 and "Set-Cookie" not in response.headers
    sign_in(client)
    assert client.post("/ui/logout", headers={"Sec-Fetch-Site": "same-site"}).status_code == 403
    assert client.get("/ui/").status_code == 200


@pytest.mark.parametrize(
    "path",
    [
        *PAGES,
        "/ui/login",
        "/ui/incidents?cursor=x",
        "/ui/static/ui.js",
        "/api/v1/incidents",
        "/healthz",
        "/nothing",
        "/api/v1/openapi.json",
    ],
)
def test_every_response_forbids_framing_and_sniffing(app, path):
    client = app.test_client()
    sign_in(client)
    response = client.get(path, headers={"Authorization": f"Bearer {TOKEN}"})
    policy = response.headers["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in policy and "script-src 'self'" in policy and "unsafe-inline" not in policy
    assert response.headers["X-Content-Type-Options"] == "nosniff"


def test_pages_carry_no_inline_script_or_style(app):
    client = app.test_client()
    sign_in(client)
    for page in [*PAGES, "/ui/login"]:
        html = client.get(page).get_data(as_text=True)
        assert not re.search(r"<script(?![^>]*\bsrc=)", html), page
        assert "<style" not in html and " style=" not in html and not re.search(r"\son[a-z]+=", html), page


def test_incident_links_open_an_incident_page_not_json(app):
    client = app.test_client()
    sign_in(client)
    html = client.get("/ui/incidents").get_data(as_text=True)
    links = re.findall(r'href="(/[^"]*)">#(\d+)</a>', html)
    assert links and all(href == f"/ui/incidents/{number}" for href, number in links)
    page = client.get(links[0][0])
    assert page.status_code == 200 and page.mimetype == "text/html"
    assert "Incident #" in page.get_data(as_text=True)
    assert client.get("/ui/incidents/999").status_code == 404


@pytest.mark.parametrize("peer, trusted", [("10.0.0.7", True), ("192.0.2.1", False)])
def test_secure_cookie_from_forwarded_proto_only_behind_trusted_proxies(tmp_path: Path, clock: Clock, peer, trusted):
    app = make_app(tmp_path, clock, BRIDGE_TRUSTED_PROXIES="10.0.0.0/24, 2001:db8::1")
    client = app.test_client()
    response = client.post(
        "/ui/login",
        data={"token": TOKEN},
        environ_base={"REMOTE_ADDR": peer},
        headers={"X-Forwarded-Proto": "https", "X-Forwarded-For": "203.0.113.9"},
    )
    flags = {part.strip() for part in response.headers["Set-Cookie"].split(";")}
    assert ("Secure" in flags) is trusted


def test_secure_cookie_when_the_bridge_itself_serves_https(app):
    response = app.test_client().post("/ui/login", data={"token": TOKEN}, base_url="https://localhost")
    assert "Secure" in {part.strip() for part in response.headers["Set-Cookie"].split(";")}


@pytest.mark.parametrize("value", ["10.0.0.0/33", "bridge.example", "10.0.0.1,,nope"])
def test_bad_trusted_proxies_are_a_start_up_error(value):
    with pytest.raises(SettingsError, match="BRIDGE_TRUSTED_PROXIES"):
        load_settings({"BRIDGE_TRUSTED_PROXIES": value})


@pytest.mark.parametrize("target", ["https://evil.example/", "//evil.example/ui/", "/ui/\x00x", "/ui/\u00e9"])
def test_login_only_returns_to_our_own_pages(app, target):
    response = app.test_client().post("/ui/login", data={"token": TOKEN, "next": target})
    assert response.status_code == 302 and response.headers["Location"] == "/ui/"
