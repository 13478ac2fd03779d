"""Hostile payloads (tests/fixtures/hostile/): always a clean 2xx or 4xx, kept when refused, nothing leaks."""

from __future__ import annotations

import io
import json
from pathlib import Path

import pytest
import requests

from bridge.config import TOKEN_GROUPS, SettingsError, check_exposure, load_settings
from bridge.storage.engine import migrate
from tests.conftest import ROOT, BridgeProcess, Clock, build_app, payload, payload_bytes

HOSTILE = Path(__file__).resolve().parents[1] / "fixtures" / "hostile"
AM = {"Authorization": "Bearer am-token", "Content-Type": "application/json"}
API = {"Authorization": "Bearer api-token"}


@pytest.fixture
def client(tmp_path: Path, clock: Clock):
    return build_app(
        tmp_path,
        {
            "BRIDGE_TOKEN_ALERTMANAGER": "am-token",
            "BRIDGE_TOKEN_ZABBIX": "zbx-token",
            "BRIDGE_TOKEN_API": "api-token",
            "BRIDGE_MAX_ALERTS": "50",
        },
        clock,
    ).test_client()


# (file, source, expected status, expected message or error start)
CASES = [
    ("truncated.json", "alertmanager", 400, "body is not valid JSON"),
    ("not-json.txt", "alertmanager", 400, "body is not valid JSON"),
    ("deep-nesting.json", "alertmanager", 400, "JSON nested too deep"),
    ("orjson-depth-limit.json", "alertmanager", 400, "body is not valid JSON"),
    ("invalid-utf8.bin", "alertmanager", 400, "body is not valid JSON"),
    ("raw-nul-bytes.bin", "alertmanager", 400, "body is not valid JSON"),
    ("wrong-types.json", "alertmanager", 400, "invalid Alertmanager payload"),
    ("escaped-nul-in-label.json", "alertmanager", 400, "no valid alert in Alertmanager payload"),
    ("too-many-labels.json", "alertmanager", 400, "no valid alert in Alertmanager payload"),
    ("huge-label-value.json", "alertmanager", 400, "no valid alert in Alertmanager payload"),
    ("zabbix-unresolved-macros.json", "zabbix", 400, "invalid Zabbix payload"),
    ("sql-injection-labels.json", "alertmanager", 200, None),
    ("template-injection-labels.json", "alertmanager", 200, None),
    ("unicode-and-rtl.json", "alertmanager", 200, None),
]


@pytest.mark.parametrize("name, source, status, message", CASES, ids=[c[0] for c in CASES])
def test_hostile_payload_gets_a_clean_answer_and_is_kept_when_refused(client, name, source, status, message):
    headers = AM if source == "alertmanager" else {"Authorization": "Bearer zbx-token"}
    response = client.post(
        f"/api/v1/alerts/{source}", data=(HOSTILE / name).read_bytes(), headers=headers, content_type="application/json"
    )
    assert response.status_code == status, response.get_data(as_text=True)
    assert response.is_json
    rejected = client.get("/api/v1/rejected", headers=API).json["items"]
    if status == 400:
        assert response.json["message"] == message and response.json["errors"]
        assert [r["reason"] for r in rejected] == [message]
    else:
        assert rejected == []
        incidents = client.get("/api/v1/incidents", headers=API).json["items"]
        assert len(incidents) == 1


def test_injection_attempts_are_stored_as_plain_data(client):
    client.post("/api/v1/alerts/alertmanager", data=(HOSTILE / "sql-injection-labels.json").read_bytes(), headers=AM)
    template_attack = json.loads((HOSTILE / "template-injection-labels.json").read_text())
    client.post("/api/v1/alerts/alertmanager", data=json.dumps(template_attack), headers=AM)
    template_attack["alerts"][0].update(fingerprint="7e3a7e3a7e3a0002")
    template_attack["alerts"][0]["labels"]["instance"] = "second"
    client.post("/api/v1/alerts/alertmanager", data=json.dumps(template_attack), headers=AM)
    incidents = client.get("/api/v1/incidents", headers=API).json["items"]
    assert {i["labels"]["alertname"] for i in incidents} == {
        "x'); DROP TABLE incidents;--",
        "{{ cycler.__init__.__globals__.os.environ }}",
    }
    [problem] = client.get("/api/v1/problems", headers=API).json["items"]
    assert problem["problem_key"].startswith("{{ cycler.__init__.__globals__.os.environ }}/"), (
        "a label value is rendered as text, never evaluated as a template"
    )


def test_too_many_alerts_in_one_notification(client):
    body = payload("alertmanager-0.25-two-firing.json")
    body["alerts"] = [dict(body["alerts"][0], fingerprint=f"{n:016x}") for n in range(51)]
    response = client.post("/api/v1/alerts/alertmanager", data=json.dumps(body), headers=AM)
    assert response.status_code == 400 and response.json["message"] == "too many alerts in one notification"


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"]
)
@pytest.mark.parametrize(
    "path", ["/api/v1/alerts/alertmanager", "/api/v1/releases", "/api/v1/jira/webhook", "/api/v1/problems/1/close"]
)
def test_a_body_not_declared_json_is_415_so_web_pages_cannot_post(client, path, content_type):
    body = (ROOT / "tests" / "fixtures" / "payloads" / "alertmanager-0.25-two-firing.json").read_bytes()
    response = client.post(path, data=body, headers={"Authorization": AM["Authorization"]}, content_type=content_type)
    assert response.status_code == 415 and response.is_json
    assert response.json["message"] == "expected Content-Type: application/json"
    assert client.get("/api/v1/incidents", headers=API).json["items"] == []


def test_webhook_refused_for_its_type_or_size_is_kept_unless_unauthenticated(small_limit_client):
    """The rule of the edge: 413 and 415 are refusals like 400, kept with their reason; a 401 is not stored."""
    client = small_limit_client
    form = client.post(
        "/api/v1/alerts/alertmanager",
        data=b"alertname=x",
        content_type="text/plain",
        headers={"Authorization": AM["Authorization"]},
    )
    too_long = client.post("/api/v1/alerts/alertmanager", data=padded_notification(LIMIT + 10), headers=AM)
    chunked = post_chunked(client, "/api/v1/alerts/alertmanager", padded_notification(LIMIT + 10))
    anonymous = client.post("/api/v1/alerts/alertmanager", data=b"alertname=x", content_type="text/plain")
    assert (form.status_code, too_long.status_code, chunked.status_code, anonymous.status_code) == (415, 413, 413, 401)
    kept = client.get("/api/v1/rejected", headers=API).json["items"]
    assert [(item["reason"], item["content_type"]) for item in kept] == [
        (f"request body larger than {LIMIT} bytes", "application/json"),
        (f"request body larger than {LIMIT} bytes", "application/json"),
        ("expected Content-Type: application/json", "text/plain"),
    ]
    bodies = [client.get(f"/api/v1/rejected/{item['id']}", headers=API).json["body"] for item in kept]
    assert bodies[2] == "alertname=x"
    assert all('"receiver": "bridge"' in body for body in bodies[:2]), "what was read of an oversized body is kept"


def test_json_with_a_charset_parameter_is_accepted(client):
    body = (ROOT / "tests" / "fixtures" / "payloads" / "alertmanager-0.25-two-firing.json").read_bytes()
    response = client.post(
        "/api/v1/alerts/alertmanager", data=body, headers=AM, content_type="application/json; charset=utf-8"
    )
    assert response.status_code == 200


def test_fifty_megabyte_body_is_refused_with_413_before_reading_it(client):
    response = client.post(
        "/api/v1/alerts/alertmanager", data=b"[" * (50 * 1024 * 1024), headers=AM, content_type="application/json"
    )
    assert response.status_code == 413 and response.json["message"].startswith("request body larger than")


LIMIT = 4096


def padded_notification(size: int) -> bytes:
    """A valid notification padded with trailing spaces to exactly `size` bytes."""
    body = payload_bytes("alertmanager-0.25-two-firing.json").strip()
    assert len(body) <= size
    return body + b" " * (size - len(body))


@pytest.fixture
def small_limit_client(tmp_path: Path, clock: Clock):
    return build_app(
        tmp_path,
        {"BRIDGE_TOKEN_ALERTMANAGER": "am-token", "BRIDGE_TOKEN_API": "api-token", "BRIDGE_MAX_BODY_BYTES": str(LIMIT)},
        clock,
    ).test_client()


def post_chunked(client, path: str, body: bytes):
    """As gunicorn hands a chunked body over: no Content-Length, the server terminates the stream."""
    return client.post(
        path,
        input_stream=io.BytesIO(body),
        content_type="application/json",
        headers={**AM, "Transfer-Encoding": "chunked"},
        environ_overrides={"wsgi.input_terminated": True},
    )


@pytest.mark.parametrize("path", ["/api/v1/alerts/alertmanager", "/api/v1/jira/webhook", "/api/v1/releases"])
def test_chunked_body_past_the_limit_is_413_not_cut_to_invalid_json(small_limit_client, path):
    response = post_chunked(small_limit_client, path, padded_notification(LIMIT + 1))
    assert response.status_code == 413, response.get_data(as_text=True)
    assert response.json["message"] == f"request body larger than {LIMIT} bytes"


def test_chunked_body_of_exactly_the_limit_is_accepted(small_limit_client):
    response = post_chunked(small_limit_client, "/api/v1/alerts/alertmanager", padded_notification(LIMIT))
    assert response.status_code == 200, response.get_data(as_text=True)


def test_chunked_body_past_the_limit_is_413_under_gunicorn(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'serve.db'}"
    migrate(url)
    env = {"BRIDGE_TOKEN_ALERTMANAGER": "am-token", "BRIDGE_MAX_BODY_BYTES": str(LIMIT), "BRIDGE_RUN_WORKER": "0"}
    with BridgeProcess(url, env=env, workers=1) as bridge:

        def chunked(body: bytes):
            return requests.post(
                bridge.url + "/api/v1/alerts/alertmanager",
                data=iter([body[:1000], body[1000:]]),
                headers={**AM, "Content-Type": "application/json"},
                timeout=10,
            )

        too_long = chunked(padded_notification(LIMIT + 100))
        assert too_long.request.headers["Transfer-Encoding"] == "chunked"
        assert too_long.status_code == 413, too_long.text
        assert too_long.json()["message"] == f"request body larger than {LIMIT} bytes"
        assert chunked(padded_notification(LIMIT)).status_code == 200
        declared = requests.post(
            bridge.url + "/api/v1/alerts/alertmanager",
            data=padded_notification(LIMIT + 100),
            headers={**AM, "Content-Type": "application/json"},
            timeout=10,
        )
        assert declared.status_code == 413, declared.text
        kept = requests.get(bridge.url + "/api/v1/rejected", timeout=10).json()["items"]
        assert [item["reason"] for item in kept] == [f"request body larger than {LIMIT} bytes"] * 2


@pytest.mark.parametrize(
    "bind, tokens, anonymous, refused",
    [
        ("0.0.0.0:8080", {}, "0", True),
        ("10.1.2.3:8080", {}, "0", True),
        ("0.0.0.0:8080", {"BRIDGE_TOKEN_API": "t"}, "0", True),
        # Every bearer token (none for PagerDuty events: their routing key is in rules.yaml).
        ("0.0.0.0:8080", {variable: f"{variable}-long-enough" for variable in TOKEN_GROUPS.values()}, "0", False),
        ("0.0.0.0:8080", {}, "1", False),
        ("127.0.0.1:8080", {}, "0", False),
        ("[::1]:8080", {}, "0", False),
        ("unix:/run/bridge.sock", {}, "0", False),
    ],
)
def test_no_anonymous_service_on_the_network_unless_asked(bind, tokens, anonymous, refused):
    settings = load_settings({"BRIDGE_BIND": bind, "BRIDGE_ALLOW_ANONYMOUS": anonymous, **tokens})
    if refused:
        with pytest.raises(SettingsError, match="refusing to listen"):
            check_exposure(settings)
    else:
        check_exposure(settings)


@pytest.fixture
def backend_client(database_url: str):
    """The app on each backend: PostgreSQL refuses NUL in text and ids past bigint where SQLite does not."""
    from bridge.app import create_app

    settings = load_settings(
        {"BRIDGE_TOKEN_API": "api-token"}, database_url=database_url, rules_path=str(ROOT / "rules.yaml")
    )
    app = create_app(settings)
    yield app.test_client()
    app.extensions["bridge"].store.engine.dispose()


@pytest.mark.parametrize(
    "query, parameter",
    [
        ("/api/v1/incidents?priority=a%00b", "priority"),
        ("/api/v1/problems?jira_key=LKK-1%00", "jira_key"),
        ("/api/v1/rejected?x%00y=1", "x\\x00y"),
        ("/api/v1/incidents?cursor=%C2%B2", "cursor"),
        ("/api/v1/incidents?cursor=1_0", "cursor"),
        ("/api/v1/problems?cursor=99999999999999999999999", "cursor"),
        ("/api/v1/outbox?limit=%D9%A3", "limit"),
    ],
)
def test_hostile_query_arguments_get_a_400_naming_them(backend_client, query, parameter):
    response = backend_client.get(query, headers=API)
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.json["message"] == f"invalid query parameter {parameter}"
    assert response.json["errors"][0].startswith(f"{parameter}: ")


@pytest.mark.parametrize("page", ["/ui/incidents", "/ui/problems", "/ui/rejected"])
@pytest.mark.parametrize("cursor", ["%C2%B2", "99999999999999999999999", "-1", "abc", "%00"])
def test_ui_pages_refuse_odd_cursors_with_a_400_page(backend_client, page, cursor):
    backend_client.post("/ui/login", data={"token": "api-token"})
    response = backend_client.get(f"{page}?cursor={cursor}")
    assert response.status_code == 400, response.get_data(as_text=True)
    assert response.mimetype == "text/html"
    assert "invalid query parameter cursor" in response.get_data(as_text=True)
