"""PagerDuty's official Python client (`pagerduty` 7.x from PyPI) against the bridge, which stands in for
events.pagerduty.com: `serve` terminates TLS itself under a throwaway CA (trustme), on SQLite and PostgreSQL.

The client refuses any base URL but https:// and posts to `<base>/v2/enqueue` and `<base>/v2/change/enqueue`.
"""

from __future__ import annotations

import ssl
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pagerduty
import pytest
import requests
import trustme
import yaml

from tests.conftest import ROOT, BridgeProcess

KEY = "0c5e7a1f9b2d4c6e8a0b1c2d3e4f5a6b"
API = {"Authorization": "Bearer api-token"}


@pytest.fixture
def ca(tmp_path: Path) -> Iterator[tuple[trustme.CA, dict[str, str]]]:
    """A throwaway CA, and the bridge's certificate chain and key (for 127.0.0.1) as files."""
    authority = trustme.CA()
    served = authority.issue_cert("127.0.0.1", "localhost")
    files = {name: str(tmp_path / f"{name}.pem") for name in ("ca", "chain", "key")}
    authority.cert_pem.write_to_path(files["ca"])
    served.private_key_pem.write_to_path(files["key"])
    for index, blob in enumerate(served.cert_chain_pems):
        blob.write_to_path(files["chain"], append=index > 0)
    yield authority, files


@pytest.fixture
def bridge(database_url: str, ca: tuple[trustme.CA, dict[str, str]], tmp_path: Path) -> Iterator[BridgeProcess]:
    _, files = ca
    rules = yaml.safe_load((ROOT / "rules.yaml").read_text())
    rules["releases"] = {"environment_label": "env"}
    rules["projects"] = {"LKK": {"labels": {"service": "lkk"}}}
    rules["events"] = {"routing_keys": [{"name": "ci", "key": KEY, "labels": {"service": "lkk", "env": "prod"}}]}
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(rules))
    env = {
        "BRIDGE_RULES": str(tmp_path / "rules.yaml"),
        "BRIDGE_TLS_CERT": files["chain"],
        "BRIDGE_TLS_KEY": files["key"],
        "BRIDGE_TOKEN_API": "api-token",
        "BRIDGE_RUN_WORKER": "0",
    }
    with BridgeProcess(database_url, env=env, workers=1, ca_file=files["ca"]) as process:
        yield process


def read(bridge: BridgeProcess, path: str) -> Any:
    answer = requests.get(bridge.url + path, headers=API, timeout=10, verify=bridge.verify)
    assert answer.status_code == 200, answer.text
    return answer.json()


def test_the_official_client_triggers_acknowledges_resolves_and_sends_a_change_over_tls(
    bridge: BridgeProcess, ca: tuple[trustme.CA, dict[str, str]]
):
    authority, _ = ca
    trusted = ssl.create_default_context()
    authority.configure_trust(trusted)
    client = pagerduty.EventsApiV2Client(KEY, base_url=bridge.url, verify=trusted)
    with pytest.raises(pagerduty.UrlError):
        pagerduty.EventsApiV2Client(KEY, base_url=bridge.url.replace("https://", "http://"))

    dedup_key = client.trigger("Checkout latency above 2 s", "checkout-1", severity="error")
    [incident] = read(bridge, "/api/v1/incidents?source=events")["items"]
    assert incident["dedup_key"] == f"events:ci:{dedup_key}" and incident["state"] == "firing"
    assert client.acknowledge(dedup_key) == dedup_key
    acknowledged = read(bridge, f"/api/v1/incidents/{incident['id']}")
    assert acknowledged["annotations"]["acknowledged_by"] == "events"
    assert client.resolve(dedup_key) == dedup_key
    assert read(bridge, f"/api/v1/incidents/{incident['id']}")["state"] == "resolved"

    client.submit(
        "Deploy checkout 2026.12.1",
        source="ci",
        custom_details={"revision": "4f2a9c1"},
        links=[{"href": "https://ci.example/builds/7", "text": "build 7"}],
        timestamp="2026-12-07T10:00:00Z",  # the client fails to make its own default in 7.2
    )
    [change] = read(bridge, "/api/v1/changes")["items"]
    assert (change["summary"], change["routing_key"], change["changed_at"]) == (
        "Deploy checkout 2026.12.1",
        "ci",
        "2026-12-07T10:00:00Z",
    )
    assert change["labels"] == {"service": "lkk", "env": "prod", "revision": "4f2a9c1"}
    assert len(read(bridge, "/api/v1/incidents")["items"]) == 1, "a change is never an incident"


def test_plain_http_to_the_tls_port_gets_no_answer_and_the_pages_cookie_is_secure(bridge: BridgeProcess):
    with pytest.raises(requests.ConnectionError):
        requests.get(bridge.url.replace("https://", "http://") + "/healthz", timeout=5)
    signed_in = requests.post(
        bridge.url + "/ui/login", data={"token": "api-token"}, timeout=10, verify=bridge.verify, allow_redirects=False
    )
    assert signed_in.status_code == 302 and "Secure" in signed_in.headers["Set-Cookie"]


def test_gunicorn_serves_https_under_the_same_settings(tmp_path: Path, ca: tuple[trustme.CA, dict[str, str]]):
    from bridge.storage.engine import migrate

    _, files = ca
    url = f"sqlite:///{tmp_path / 'bridge.db'}"
    migrate(url)
    env = {"BRIDGE_TLS_CERT": files["chain"], "BRIDGE_TLS_KEY": files["key"], "BRIDGE_RUN_WORKER": "0"}
    with BridgeProcess(url, env=env, workers=1, options=("--server", "gunicorn"), ca_file=files["ca"]) as process:
        assert requests.get(process.url + "/healthz", timeout=10, verify=process.verify).status_code == 200
