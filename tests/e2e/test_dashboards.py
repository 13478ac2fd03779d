"""The dashboard and alerting rules shipped in dashboards/: valid, and built only on exported metrics."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml
from flask.testing import FlaskClient

from tests.conftest import ROOT, build_app

DASHBOARDS = ROOT / "dashboards"
PROMTOOL = shutil.which("promtool")
if PROMTOOL is None and os.environ.get("CI"):
    raise RuntimeError("promtool is missing in CI; tests/setup-test-env.sh installs it (package prometheus)")
METRIC = re.compile(r"\bbridge_[a-z_]+")


def exported_names(client: FlaskClient) -> set[str]:
    text = client.get("/metrics").get_data(as_text=True)
    names = set()
    for line in text.splitlines():
        if line.startswith("# TYPE "):
            _, _, name, kind = line.split()
            names.add(name)
            if kind == "counter" and not name.endswith("_total"):
                names.add(name + "_total")
            if kind == "histogram":
                names.update({name + "_bucket", name + "_sum", name + "_count"})
    return names


@pytest.fixture
def client(tmp_path: Path) -> FlaskClient:
    return build_app(tmp_path, {}).test_client()


def queried_names() -> set[str]:
    dashboard = json.loads((DASHBOARDS / "incident-bridge.json").read_text())
    exprs = [target["expr"] for panel in dashboard["panels"] for target in panel["targets"]]
    rules = yaml.safe_load((DASHBOARDS / "bridge-alerts.rules.yml").read_text())
    exprs += [rule["expr"] for group in rules["groups"] for rule in group["rules"]]
    return {name for expr in exprs for name in METRIC.findall(expr)}


def test_every_metric_the_dashboard_and_alerts_query_is_exported(client):
    exported = exported_names(client)
    missing = sorted(queried_names() - exported)
    assert missing == []
    assert len(queried_names()) >= 15


def test_metric_names_follow_the_conventions(client):
    text = client.get("/metrics").get_data(as_text=True)
    for line in text.splitlines():
        if line.startswith("# TYPE bridge_"):
            _, _, name, kind = line.split()
            if kind == "counter":
                assert name.endswith("_total") or f"{name}_total" in text, name
            if kind == "histogram":
                assert name.endswith("_seconds"), f"{name}: histograms here measure time in base units"


@pytest.mark.skipif(PROMTOOL is None, reason="LOUD SKIP: promtool missing; run `make test` to install it")
def test_alerting_rules_pass_promtool():
    result = subprocess.run(
        [PROMTOOL, "check", "rules", str(DASHBOARDS / "bridge-alerts.rules.yml")], capture_output=True, text=True
    )
    assert result.returncode == 0, result.stdout + result.stderr
    groups = yaml.safe_load((DASHBOARDS / "bridge-alerts.rules.yml").read_text())["groups"]
    assert f"SUCCESS: {sum(len(group['rules']) for group in groups)} rules found" in result.stdout
