"""The report page in Debian's Chromium (Playwright): charts drawn, numbers in tables, no axe-core violations,
readable without JavaScript and printable; a screenshot of it is kept in docs/.

axe-core comes from the npm registry (a pinned version, installed once into .cache/ by the fixture)
and is injected by Playwright into a context that bypasses the page's Content-Security-Policy (the
policy refuses injected scripts, as it should); every other check runs under the policy.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.conftest import ROOT, BridgeProcess, Clock
from tests.e2e.report_data import MOSCOW, RULES_ENV, TOKENS, build_timeline, report_rules, report_site, utc
from tests.e2e.test_ui_browser import ARGS, CHROMIUM
from tests.fakes import FakeJira

pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="LOUD SKIP: Debian's chromium is not installed; run `make test`"
)
AXE_VERSION = "4.14.1"
AXE = ROOT / ".cache" / f"axe-core-{AXE_VERSION}" / "node_modules" / "axe-core" / "axe.min.js"
READ_TOKEN = TOKENS["BRIDGE_TOKEN_API"]
OCTOBER = "/ui/reports?month=2026-10"


@pytest.fixture(scope="module")
def axe_script() -> Path:
    """axe-core's browser build, installed with npm from its registry the first time."""
    if not AXE.exists():
        npm = shutil.which("npm")
        if npm is None:
            if os.environ.get("CI"):
                raise RuntimeError("npm is missing in CI: the accessibility check needs axe-core from the npm registry")
            pytest.skip("LOUD SKIP: npm is not installed, so axe-core cannot be fetched")
        prefix = AXE.parents[2]
        prefix.mkdir(parents=True, exist_ok=True)
        subprocess.run(
            [
                npm,
                "install",
                "--no-save",
                "--no-audit",
                "--no-fund",
                "--prefix",
                str(prefix),
                f"axe-core@{AXE_VERSION}",
            ],
            check=True,
            capture_output=True,
            timeout=300,
        )
    return AXE


@pytest.fixture(scope="module")
def bridge(tmp_path_factory) -> Iterator[BridgeProcess]:
    """A served bridge (worker off) on a SQLite file holding the report's month, built through the API."""
    folder = tmp_path_factory.mktemp("report")
    url = f"sqlite:///{folder / 'report.db'}"
    from bridge.storage.engine import migrate

    migrate(url)
    with FakeJira() as jira:
        jira.add_issue("LKK-1")
        jira.add_issue("LKK-2")
        site = build_timeline(report_site(url, jira.url, Clock(utc(9, 1, 0))))
        site.store.engine.dispose()
    rules = folder / "rules.yaml"
    rules.write_text(yaml.safe_dump(report_rules()))
    env = {**TOKENS, **RULES_ENV, "BRIDGE_TIMEZONE": MOSCOW, "BRIDGE_RULES": str(rules), "BRIDGE_RUN_WORKER": "0"}
    with BridgeProcess(url, env=env, workers=1) as process:
        yield process


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield launched
        launched.close()


def signed_in(browser: Any, bridge: BridgeProcess, **context: Any) -> tuple[Any, list[str]]:
    """A page of a new browser context signed in with the read token, and the console errors it collects."""
    page = browser.new_context(viewport={"width": 1280, "height": 900}, **context).new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(bridge.url + "/ui/login")
    page.fill("#token", READ_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/$"))
    return page, errors


def test_the_report_shows_its_charts_and_their_numbers(browser, bridge):
    page, errors = signed_in(browser, bridge)
    page.goto(bridge.url + OCTOBER)
    assert page.locator("h1").inner_text() == "Service report: October 2026"
    charts = page.locator("svg.chart[role=img]")
    assert charts.count() == 4
    for n in range(4):
        chart = charts.nth(n)
        assert chart.locator("title").text_content(), "each chart has a title for assistive technology"
        box = chart.bounding_box()
        assert box is not None and box["width"] > 300 and box["height"] > 60, "drawn at a readable size"
    assert page.locator("#chart-daily rect.bar").count() == 31
    assert page.locator("#chart-daily line.release-marker").count() == 2
    assert page.locator("#chart-sla rect.bar").count() >= 4
    assert page.locator("#total-incidents").inner_text() == "12"
    channels = page.locator("#table-channels tbody tr").all_inner_texts()
    assert any(row.split("\t")[:3] == ["ticket:portal", "people", "3"] for row in channels), channels
    assert page.locator("#table-releases tbody tr").count() == 2
    page.screenshot(path=str(ROOT / "docs" / "ui-report.png"), full_page=True)
    assert errors == [], "no console errors (a Content-Security-Policy refusal would be one)"


def test_the_month_picker_and_the_csv_download_work_without_javascript(browser, bridge):
    page, errors = signed_in(browser, bridge, java_script_enabled=False)
    page.goto(bridge.url + OCTOBER)
    page.fill("#month", "2026-09")
    page.click("#report-picker button[type=submit]")
    page.wait_for_url(re.compile(r".*month=2026-09"))
    assert page.locator("h1").inner_text() == "Service report: September 2026"
    assert page.locator("svg.chart").count() == 4
    with page.expect_download() as download:
        page.click("#download-incidents")
    lines = Path(download.value.path()).read_text().splitlines()
    assert lines[0].startswith("id,source,system,key,priority") and len(lines) == 2  # am-2
    page.goto(bridge.url + "/ui/reports?month=2026-08")
    assert "Nothing to report for August 2026" in page.locator("#empty-report").inner_text()
    assert errors == []


def test_printing_leaves_out_the_navigation_and_the_picker(browser, bridge):
    page, _ = signed_in(browser, bridge)
    page.goto(bridge.url + OCTOBER)
    page.emulate_media(media="print")
    assert page.locator("header").is_hidden() and page.locator("#report-picker").is_hidden()
    assert page.locator("svg.chart").first.is_visible() and page.locator("#table-sla").is_visible()
    assert page.pdf(format="A4")[:4] == b"%PDF"


@pytest.mark.parametrize("path", [OCTOBER, "/ui/reports?month=2026-08"])
def test_axe_core_finds_no_violations(browser, bridge, axe_script, path):
    page, _ = signed_in(browser, bridge, bypass_csp=True)
    page.goto(bridge.url + path)
    page.add_script_tag(path=str(axe_script))
    results = page.evaluate("async () => await axe.run(document, {resultTypes: ['violations']})")
    violations = [(v["id"], v["impact"], [node["target"] for node in v["nodes"]][:5]) for v in results["violations"]]
    assert violations == []
    assert results["passes"], "axe ran its rules"
