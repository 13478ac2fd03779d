"""A real Zabbix 6.0 server runs the media type we ship against a running bridge, and the
bridge closes Zabbix problems through the real API (issue: real Zabbix end to end).

zabbix-env.sh installs and starts the server and its API on loopback; everything else is
provisioned here through the API with pyzabbix, as docs/how-to/zabbix.md describes.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests
from flask import Flask, Response, request
from pyzabbix import ZabbixAPI
from werkzeug.serving import make_server

from tests.conftest import ROOT, BridgeProcess, wait_for
from tests.fakes import FakeJira

ENV_SCRIPT = Path(__file__).resolve().parent / "zabbix-env.sh"
MEDIA_TYPE = ROOT / "adapters" / "zabbix" / "incident_bridge_media_type.yaml"
ZABBIX_TOKEN = "zbx-e2e-token"
API_TOKEN = "api-e2e-token"
RELEASE_TOKEN = "release-e2e-token"
SUPER_ADMIN_ROLE = "3"  # Zabbix 6.0 built-in role ids and groups
ZABBIX_ADMINISTRATORS = "7"
ADMIN_USER = "1"

can_install = shutil.which("zabbix_server") is not None or os.geteuid() == 0 or shutil.which("sudo") is not None
if not can_install and os.environ.get("CI"):
    raise RuntimeError("the Zabbix packages cannot be installed here and CI must run the real Zabbix tests")
pytestmark = pytest.mark.skipif(not can_install, reason="LOUD SKIP: cannot install Zabbix packages (no root, no sudo)")


@pytest.fixture(scope="module")
def zabbix_env() -> Iterator[dict[str, str]]:
    started = subprocess.run(["bash", str(ENV_SCRIPT), "start"], capture_output=True, text=True, timeout=600)
    assert started.returncode == 0, started.stdout + started.stderr
    env = dict(line.split("=", 1) for line in started.stdout.splitlines() if "=" in line)
    yield env
    subprocess.run(["bash", str(ENV_SCRIPT), "stop"], capture_output=True, timeout=120)


class LossyProxy:
    """Forwards Zabbix's webhook to the bridge; can lose the answer of the first delivery of an event."""

    def __init__(self) -> None:
        self.target = ""
        self.lose_first_for: set[str] = set()
        self.deliveries: list[dict] = []
        app = Flask("lossy_proxy")
        app.add_url_rule("/api/v1/alerts/zabbix", view_func=self._forward, methods=["POST"])
        self.server = make_server("127.0.0.1", 0, app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def _forward(self) -> Response:
        body = request.get_data()
        event = request.get_json(silent=True) or {}
        self.deliveries.append(event)
        answer = requests.post(
            self.target + "/api/v1/alerts/zabbix",
            data=body,
            timeout=20,
            headers={
                "Authorization": request.headers.get("Authorization", ""),
                "Content-Type": request.headers.get("Content-Type", ""),
            },
        )
        if event.get("event_id") in self.lose_first_for:
            self.lose_first_for.discard(event["event_id"])
            return Response('{"status": "error"}', status=502, content_type="application/json")
        return Response(answer.content, status=answer.status_code, content_type="application/json")


@pytest.fixture(scope="module")
def world(zabbix_env: dict[str, str], tmp_path_factory) -> Iterator[dict]:
    """Zabbix provisioned through its API, a bridge serving it, a fake Jira for the release."""
    suffix = uuid.uuid4().hex[:8]
    admin = ZabbixAPI(zabbix_env["ZABBIX_API_URL"], timeout=20)
    admin.login("Admin", "zabbix")
    proxy = LossyProxy()

    # The media type we ship, imported as an operator would.
    admin.configuration["import"](
        format="yaml",
        source=MEDIA_TYPE.read_text(),
        rules={"mediaTypes": {"createMissing": True, "updateExisting": True}},
    )
    [media] = admin.mediatype.get(filter={"name": "incident-bridge"}, output="extend")
    parameters = [
        dict(
            p,
            value={"bridge_url": proxy.url + "/api/v1/alerts/zabbix", "bridge_token": ZABBIX_TOKEN}.get(
                p["name"], p["value"]
            ),
        )
        for p in media["parameters"]
    ]
    admin.mediatype.update(
        mediatypeid=media["mediatypeid"], parameters=parameters, status="0", maxattempts="3", attempt_interval="2s"
    )

    # An API user (not the notified one) with a token for the bridge.
    [api_user] = admin.user.create(
        username=f"bridge-api-{suffix}",
        passwd=f"Pw-{uuid.uuid4().hex}",
        roleid=SUPER_ADMIN_ROLE,
        usrgrps=[{"usrgrpid": ZABBIX_ADMINISTRATORS}],
    )["userids"]
    [token_id] = admin.token.create(name=f"incident-bridge-{suffix}", userid=api_user)["tokenids"]
    api_token = admin.token.generate(token_id)[0]["token"]

    # A host with trapper items; one trigger allows manual close, one does not.
    [group] = admin.hostgroup.create(name=f"incident-bridge-e2e-{suffix}")["groupids"]
    host = f"lkk-app-{suffix}"
    [host_id] = admin.host.create(host=host, groups=[{"groupid": group}])["hostids"]
    triggers = {}
    for key, manual_close in (("lkk.errors", "1"), ("lkk.latency", "0")):
        admin.item.create(hostid=host_id, name=key, key_=key, type=2, value_type=3)
        [triggers[key]] = admin.trigger.create(
            description=f"LKK {key} high on {{HOST.NAME}}",
            expression=f"last(/{host}/{key})>10",
            priority=4,
            manual_close=manual_close,
            tags=[{"tag": "service", "value": "lkk"}, {"tag": "component", "value": "api"}],
        )["triggerids"]

    # The recipient's media and an action with problem, recovery and update operations.
    admin.user.update(
        userid=ADMIN_USER,
        medias=[
            {
                "mediatypeid": media["mediatypeid"],
                "sendto": "l3",
                "active": 0,
                "severity": 63,
                "period": "1-7,00:00-24:00",
            }
        ],
    )
    admin.action.create(
        name=f"incident-bridge-e2e-{suffix}",
        eventsource=0,
        status=0,
        esc_period="1h",
        filter={"evaltype": 0, "conditions": [{"conditiontype": 1, "operator": 0, "value": host_id}]},
        operations=[
            {
                "operationtype": 0,
                "esc_step_from": 1,
                "esc_step_to": 1,
                "opmessage": {"default_msg": 1, "mediatypeid": media["mediatypeid"]},
                "opmessage_usr": [{"userid": ADMIN_USER}],
            }
        ],
        recovery_operations=[{"operationtype": 11, "opmessage": {"default_msg": 1}}],
        update_operations=[{"operationtype": 12, "opmessage": {"default_msg": 1}}],
    )

    url = f"sqlite:///{tmp_path_factory.mktemp('zabbix-bridge') / 'bridge.db'}"
    subprocess.run(
        [sys.executable, "-m", "bridge", "migrate"],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "BRIDGE_DATABASE_URL": url},
    )
    with FakeJira() as jira:
        env = {
            "BRIDGE_TOKEN_ZABBIX": ZABBIX_TOKEN,
            "BRIDGE_TOKEN_API": API_TOKEN,
            "BRIDGE_TOKEN_RELEASE": RELEASE_TOKEN,
            "BRIDGE_ZABBIX_URL": zabbix_env["ZABBIX_API_URL"],
            "BRIDGE_ZABBIX_API_TOKEN": api_token,
            "BRIDGE_JIRA_URL": jira.url,
            "BRIDGE_JIRA_EMAIL": "bot@example.com",
            "BRIDGE_JIRA_API_TOKEN": "jira-token",
            "BRIDGE_WORKER_INTERVAL_SECONDS": "0.5",
        }
        with BridgeProcess(url, env=env) as bridge:
            proxy.target = bridge.url
            yield {
                "admin": admin,
                "api_token": api_token,
                "host": host,
                "triggers": triggers,
                "bridge": bridge,
                "jira": jira,
                "proxy": proxy,
                "zabbix": zabbix_env,
            }
    proxy.server.shutdown()


def send_value(world: dict, key: str, value: int) -> None:
    """zabbix_sender, retried while the server's configuration cache learns the new item."""

    def sent() -> bool:
        result = subprocess.run(
            [
                "zabbix_sender",
                "-z",
                "127.0.0.1",
                "-p",
                world["zabbix"]["ZABBIX_SERVER_PORT"],
                "-s",
                world["host"],
                "-k",
                key,
                "-o",
                str(value),
            ],
            capture_output=True,
            text=True,
        )
        return "processed: 1" in result.stdout

    wait_for(sent, 60, f"Zabbix to accept {key}={value}")


def bridge_incidents(world: dict) -> list[dict]:
    response = requests.get(
        world["bridge"].url + "/api/v1/incidents?source=zabbix&limit=500",
        timeout=10,
        headers={"Authorization": f"Bearer {API_TOKEN}"},
    )
    return [i for i in response.json()["items"] if i["labels"].get("host") == world["host"]]


def incident_for(world: dict, trigger: str, **expected) -> dict:
    def found() -> dict | None:
        for incident in bridge_incidents(world):
            if incident["labels"]["trigger_id"] == world["triggers"][trigger] and all(
                incident.get(k) == v for k, v in expected.items()
            ):
                return incident
        return None

    return wait_for(found, 90, f"an incident for {trigger} with {expected}")  # type: ignore[return-value]


def test_problem_update_and_recovery_through_our_media_type(world):
    send_value(world, "lkk.errors", 50)
    incident = incident_for(world, "lkk.errors", state="firing")
    labels = incident["labels"]
    assert (labels["host"], labels["severity"], labels["service"], labels["component"]) == (
        world["host"],
        "High",
        "lkk",
        "api",
    )
    assert incident["priority"] == "P2" and incident["summary"] == f"LKK lkk.errors high on {world['host']}"
    event_id = incident["dedup_key"].split(":", 1)[1]

    # An update made by a user other than the recipient reaches us (Zabbix skips the author).
    acting = ZabbixAPI(world["zabbix"]["ZABBIX_API_URL"], timeout=20)
    acting.login(api_token=world["api_token"])
    acting.event.acknowledge(eventids=[event_id], action=2 | 4 | 8, message="L3 is on it", severity=5)
    updated = incident_for(world, "lkk.errors", priority="P1")
    assert updated["labels"]["severity"] == "Disaster" and updated["occurrences"] == 1
    assert updated["annotations"]["update_message"] == "L3 is on it"

    send_value(world, "lkk.errors", 0)
    resolved = incident_for(world, "lkk.errors", state="resolved")
    assert resolved["id"] == incident["id"]


def test_a_retried_delivery_doubles_nothing(world):
    proxy = world["proxy"]
    before = len(bridge_incidents(world))
    seen = {d.get("event_id") for d in proxy.deliveries}
    proxy.lose_first_for = _AnyNewEvent(seen)
    send_value(world, "lkk.errors", 60)
    incident = incident_for(world, "lkk.errors", state="firing")
    event_id = incident["dedup_key"].split(":", 1)[1]
    wait_for(
        lambda: (
            sum(
                1
                for d in proxy.deliveries
                if d.get("event_id") == event_id and d.get("event_update_status") == "0" and d.get("event_value") == "1"
            )
            >= 2
        ),
        60,
        "Zabbix to retry the delivery whose answer was lost",
    )
    time.sleep(2)
    again = [i for i in bridge_incidents(world) if i["dedup_key"] == incident["dedup_key"]]
    assert len(again) == 1 and again[0]["occurrences"] == 1, "the retry counted nothing twice"
    assert len(bridge_incidents(world)) == before + 1
    send_value(world, "lkk.errors", 0)
    incident_for(world, "lkk.errors", state="resolved", id=incident["id"])


class _AnyNewEvent(set):
    """`lose_first_for` that matches the first problem delivery of any event not seen before."""

    def __init__(self, seen: set[str]) -> None:
        super().__init__()
        self.seen = set(seen)
        self.used = False

    def __contains__(self, event_id: object) -> bool:
        return not self.used and event_id not in self.seen

    def discard(self, event_id: object) -> None:
        self.used = True


def test_release_closes_the_zabbix_problem_or_acknowledges_where_close_is_forbidden(world):
    jira, api = world["jira"], {"Authorization": f"Bearer {API_TOKEN}"}
    send_value(world, "lkk.errors", 70)
    send_value(world, "lkk.latency", 70)
    closable = incident_for(world, "lkk.errors", state="firing")
    forbidden = incident_for(world, "lkk.latency", state="firing")
    expected_closed = 0
    for number, incident in ((101, closable), (102, forbidden)):
        jira.add_issue(f"LKK-{number}")
        problem_id = incident["problem_id"]
        assert problem_id, "the zabbix-trigger rule opens a problem at once"
        linked = requests.post(
            f"{world['bridge'].url}/api/v1/problems/{problem_id}/jira",
            headers=api,
            timeout=10,
            json={"jira_key": f"LKK-{number}"},
        )
        assert linked.status_code == 200, linked.text
        expected_closed += linked.json()["incident_count"]  # every incident of the problem, earlier ones too
    released = requests.post(
        world["bridge"].url + "/api/v1/releases",
        timeout=10,
        headers={"Authorization": f"Bearer {RELEASE_TOKEN}"},
        json={"version": "2026.11.9", "project": "LKK", "issues": ["LKK-101", "LKK-102"]},
    )
    assert released.status_code == 200, released.text
    assert released.json()["closed_incidents"] == expected_closed >= 2

    admin = world["admin"]
    closed_event = closable["dedup_key"].split(":", 1)[1]
    kept_event = forbidden["dedup_key"].split(":", 1)[1]
    wait_for(lambda: admin.problem.get(eventids=[closed_event]) == [], 60, "Zabbix to close the problem")

    def acknowledged() -> bool:
        [problem] = admin.problem.get(eventids=[kept_event], selectAcknowledges="extend")
        return problem["acknowledged"] == "1" and any(
            "does not allow manual close" in a["message"] for a in problem["acknowledges"]
        )

    wait_for(acknowledged, 60, "Zabbix to show the acknowledgement where close is forbidden")
    closed = requests.get(f"{world['bridge'].url}/api/v1/incidents/{closable['id']}", headers=api, timeout=10).json()
    assert (closed["state"], closed["close_reason"]) == ("closed", "released in 2026.11.9")
