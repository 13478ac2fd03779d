"""deploy/ (compose, Kubernetes) and the Dockerfile agree with each other and with the bridge they run.

Each file is checked against its format's own schema (the Compose specification, Kubernetes' API
schemas, strictly: an unknown field is an error), then against the bridge: every BRIDGE_* variable
is a setting of bridge/config.py, every command and option is the CLI's, every probe asks a path
the API serves, and image, port, user and paths are the Dockerfile's. What is compared is read from
the bridge and the Dockerfile, never listed here, so a new setting or token group needs no edit.
"""

from __future__ import annotations

import json
import re
import shlex
import subprocess
import sys
import tomllib
from functools import cache
from pathlib import Path, PurePosixPath
from typing import Any

import kubernetes_validate
import pytest
import yaml

from bridge.api.openapi.document import build_document
from bridge.cli import main
from bridge.config import ENVIRONMENT, TOKEN_GROUPS
from tests.conftest import ROOT

DEPLOY = ROOT / "deploy"
COMPOSE = DEPLOY / "compose.yaml"
KUBERNETES = DEPLOY / "kubernetes"
# The oldest Kubernetes the manifests are meant for, and the newest whose schemas are at hand.
KUBERNETES_VERSIONS = ("1.30.0", kubernetes_validate.latest_version())
IMAGE_NAME = "incident-bridge"


def _dockerfile_final_stage() -> list[tuple[str, str]]:
    """The final stage's instructions as (KEYWORD, arguments), continuation lines joined."""
    instructions: list[tuple[str, str]] = []
    for line in re.sub(r"\\\n", " ", (ROOT / "Dockerfile").read_text()).splitlines():
        line = line.strip()
        if line and not line.startswith("#"):
            keyword, _, arguments = line.partition(" ")
            instructions = [] if keyword.upper() == "FROM" else instructions
            instructions.append((keyword.upper(), arguments.strip()))
    return instructions


def _dockerfile(keyword: str) -> list[str]:
    return [arguments for name, arguments in _dockerfile_final_stage() if name == keyword]


@cache
def _image_environment() -> dict[str, str]:
    return dict(item.split("=", 1) for arguments in _dockerfile("ENV") for item in shlex.split(arguments))


def _image_port() -> int:
    [exposed] = _dockerfile("EXPOSE")
    return int(exposed)


def _version() -> str:
    return tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["version"]


def _manifests() -> list[tuple[Path, dict[str, Any]]]:
    return [
        (path, document)
        for path in sorted(KUBERNETES.glob("*.yaml"))
        for document in yaml.safe_load_all(path.read_text())
        if document is not None and document.get("kind") != "Kustomization"
    ]


def _pod_specs() -> list[dict[str, Any]]:
    return [document["spec"]["template"]["spec"] for _, document in _manifests() if document["kind"] == "Deployment"]


def _containers() -> list[dict[str, Any]]:
    return [container for pod in _pod_specs() for container in [*pod.get("initContainers", []), *pod["containers"]]]


def _compose() -> dict[str, Any]:
    return yaml.safe_load(COMPOSE.read_text())


def _bridge_services() -> dict[str, dict[str, Any]]:
    """The compose services that run the bridge's image."""
    return {
        name: service
        for name, service in _compose()["services"].items()
        if service.get("image", "").partition(":")[0] == IMAGE_NAME
    }


def _api_paths() -> set[str]:
    return set(build_document()["paths"])


def test_every_deploy_file_is_yaml_that_parses():
    files = sorted(DEPLOY.rglob("*.yaml"))
    assert COMPOSE in files and len(files) > 1
    for path in files:
        assert [document for document in yaml.safe_load_all(path.read_text()) if document], path


def test_compose_follows_the_compose_specification():
    checked = subprocess.run(
        [
            str(Path(sys.executable).parent / "check-jsonschema"),
            "--builtin-schema",
            "vendor.compose-spec",
            str(COMPOSE),
        ],
        capture_output=True,
        text=True,
    )
    assert checked.returncode == 0, checked.stdout + checked.stderr


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
def test_kubernetes_manifests_follow_the_kubernetes_schemas_strictly(version: str):
    for path, document in _manifests():
        try:
            kubernetes_validate.validate(document, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            raise AssertionError(f"{path.name} {document['kind']}: {exc.message} at {list(exc.path)}") from exc


def test_the_kustomization_lists_every_manifest_and_the_image():
    kustomization = yaml.safe_load((KUBERNETES / "kustomization.yaml").read_text())
    assert sorted(kustomization["resources"]) == sorted(
        path.name for path in KUBERNETES.glob("*.yaml") if path.name != "kustomization.yaml"
    )
    assert kustomization["images"] == [{"name": IMAGE_NAME, "newTag": _version()}]


def test_every_bridge_variable_in_deploy_and_the_dockerfile_is_a_setting():
    settings = set(ENVIRONMENT) | set(TOKEN_GROUPS.values())
    named = {
        name
        for path in [ROOT / "Dockerfile", *DEPLOY.rglob("*.yaml")]
        for name in re.findall(r"\bBRIDGE_[A-Z0-9_]+\b(?!\*)", path.read_text())
    }
    assert named and named - settings == set()


def test_compose_gives_the_network_facing_service_every_endpoint_token():
    """It listens on 0.0.0.0 in its container, where `serve` refuses to start with a token unset."""
    serving = [service for service in _bridge_services().values() if service["command"][0] == "serve"]
    assert serving
    for service in serving:
        assert set(TOKEN_GROUPS.values()) - set(service["environment"]) == set()


def test_the_image_its_version_and_port_agree_everywhere():
    image = f"{IMAGE_NAME}:{_version()}"
    assert [arguments for arguments in _dockerfile("ARG") if arguments.startswith("VERSION=")] == [
        f"VERSION={_version()}"
    ]
    assert {service["image"] for service in _bridge_services().values()} == {image}
    assert {container["image"] for container in _containers()} == {image}
    port = _image_port()
    assert _image_environment()["BRIDGE_BIND"].rpartition(":")[2] == str(port)
    binds = [
        value
        for path in DEPLOY.rglob("*.yaml")
        for value in re.findall(r"BRIDGE_BIND\W+(?:value:\s*)?\"?([^\"}\s]+)", path.read_text())
    ]
    assert all(bind.rpartition(":")[2] == str(port) for bind in binds), binds
    published = [
        mapping.rpartition(":")[2] for service in _bridge_services().values() for mapping in service.get("ports", [])
    ]
    assert published and set(published) == {str(port)}
    container_ports = [p["containerPort"] for container in _containers() for p in container.get("ports", [])]
    assert container_ports and set(container_ports) == {port}


def test_rules_data_and_user_are_where_the_dockerfile_puts_them():
    rules = PurePosixPath(_image_environment()["BRIDGE_RULES"])
    compose_targets = {volume["target"] for service in _bridge_services().values() for volume in service["volumes"]}
    assert str(rules) in compose_targets
    for container in _containers():
        mounts = {mount["mountPath"] for mount in container.get("volumeMounts", [])}
        assert str(rules.parent) in mounts and "/tmp" in mounts, container["name"]
    [volume] = _dockerfile("VOLUME")
    database = _image_environment()["BRIDGE_DATABASE_URL"].removeprefix("sqlite:///")
    assert json.loads(volume) == [str(PurePosixPath(database).parent)]
    [user] = _dockerfile("USER")
    uid, _, gid = user.partition(":")
    assert int(uid) != 0
    for pod in _pod_specs():
        context = pod["securityContext"]
        assert (context["runAsNonRoot"], context["runAsUser"], context["runAsGroup"]) == (True, int(uid), int(gid))


def test_every_probe_and_health_check_asks_a_path_the_bridge_serves():
    paths = _api_paths()
    [healthcheck] = _dockerfile("HEALTHCHECK")
    [image_path] = re.findall(r"http://127\.0\.0\.1:\{port\}(/[\w/]*)", healthcheck)
    assert image_path in paths
    probed = 0
    for container in _containers():
        port_names = {port.get("name") for port in container.get("ports", [])} | {
            port["containerPort"] for port in container.get("ports", [])
        }
        for kind in ("startupProbe", "livenessProbe", "readinessProbe"):
            if kind in container:
                probe = container[kind]["httpGet"]
                assert probe["path"] in paths and probe["port"] in port_names, (container["name"], kind)
                probed += 1
        if "livenessProbe" in container:
            # Liveness is the image's own health check; readiness may ask more (the database).
            assert container["livenessProbe"]["httpGet"]["path"] == image_path
    assert probed >= 3


def _commands() -> list[list[str]]:
    entry = json.loads(_dockerfile("CMD")[0])
    compose = [service["command"] for service in _bridge_services().values()]
    return [entry, *compose, *(container["args"] for container in _containers())]


def test_every_command_in_deploy_and_the_dockerfile_is_one_the_cli_has():
    for command in _commands():
        name, *options = command
        assert name in main.commands, command
        known = {option for parameter in main.commands[name].params for option in parameter.opts}
        assert {option for option in options if option.startswith("-")} - known == set(), command


def test_every_container_has_resources_and_no_privilege():
    for container in _containers():
        assert {"requests", "limits"} <= set(container["resources"]) and "memory" in container["resources"]["limits"]
        context = container["securityContext"]
        assert context["allowPrivilegeEscalation"] is False and context["readOnlyRootFilesystem"] is True
        assert context["capabilities"]["drop"] == ["ALL"]


def test_a_network_policy_selects_every_pod():
    selectors = [
        document["spec"]["podSelector"]["matchLabels"]
        for _, document in _manifests()
        if document["kind"] == "NetworkPolicy"
    ]
    for _, document in _manifests():
        if document["kind"] == "Deployment":
            labels = document["spec"]["template"]["metadata"]["labels"]
            assert any(selector.items() <= labels.items() for selector in selectors), document["metadata"]["name"]
