"""The /ui/ pages in a real browser: Debian's Chromium driven by Playwright (no browser download).

A running bridge (gunicorn, worker on) gets the tutorial's sample notifications and a Jira
issue through the fake Jira; the pages must load without console errors, filters must
work, the SLA countdown must match sla_due, and an alert can be followed to its problem
and Jira link. Screenshots of each page are kept under docs/.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from tests.conftest import ROOT, BridgeProcess, payload_bytes
from tests.fakes import FakeJira

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists() and os.environ.get("CI"):
    raise RuntimeError("Debian's chromium is missing in CI; tests/setup-test-env.sh installs it")
pytestmark = pytest.mark.skipif(
    not Path(CHROMIUM).exists(), reason="LOUD SKIP: Debian's chromium is not installed; run `make test`"
)
API_TOKEN = "ui-read-token"
DOCS = ROOT / "docs"
ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


@pytest.fixture(scope="module")
def bridge(tmp_path_factory) -> Iterator[BridgeProcess]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui') / 'ui.db'}"
    subprocess.run(
        [sys.executable, "-m", "bridge", "migrate"],
        check=True,
        capture_output=True,
        cwd=ROOT,
        env={**os.environ, "BRIDGE_DATABASE_URL": url},
    )
    with FakeJira() as jira:
        env = {
            "BRIDGE_TOKEN_API": API_TOKEN,
            "BRIDGE_JIRA_URL": jira.url,
            "BRIDGE_JIRA_EMAIL": "bot@example.com",
            "BRIDGE_JIRA_API_TOKEN": "jira-token",
            "BRIDGE_WORKER_INTERVAL_SECONDS": "0.2",
        }
        with BridgeProcess(url, env=env) as process:
            sent = [
                ("alertmanager", payload_bytes("alertmanager-0.25-two-firing.json"), 200),
                ("alertmanager", payload_bytes("alertmanager-0.25-one-resolved-one-firing.json"), 200),
                ("zabbix", payload_bytes("zabbix-6.0.14-problem.json"), 200),
                ("alertmanager", b"{not json", 400),
            ]
            for source, body, status in sent:
                answer = requests.post(
                    f"{process.url}/api/v1/alerts/{source}",
                    data=body,
                    timeout=10,
                    headers={"Content-Type": "application/json"},
                )
                assert answer.status_code == status, answer.text
            deadline = time.monotonic() + 20
            while not jira.issues() and time.monotonic() < deadline:
                time.sleep(0.2)
            assert jira.issues(), "the problem's Jira issue was created"
            time.sleep(0.5)
            yield process


@pytest.fixture(scope="module")
def browser_page(bridge: BridgeProcess):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        context = browser.new_context(viewport={"width": 1280, "height": 860})
        page = context.new_page()
        errors: list[str] = []
        page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
        page.on("pageerror", lambda error: errors.append(str(error)))
        page.goto(bridge.url + "/ui/")
        page.fill("#token", API_TOKEN)
        page.click("button[type=submit]")
        page.wait_for_url(re.compile(r".*/ui/$"))
        yield page, errors
        browser.close()


def test_login_is_required_and_a_wrong_token_is_refused(bridge):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        page = browser.new_page()
        page.goto(bridge.url + "/ui/problems")
        assert "/ui/login" in page.url
        page.fill("#token", "wrong")
        page.click("button[type=submit]")
        assert page.get_by_role("alert").inner_text().startswith("That token is not the read token")
        browser.close()


def test_overview_counts_countdown_and_no_console_errors(browser_page):
    page, errors = browser_page
    assert page.locator("h1").inner_text() == "What is burning now"
    assert int(page.locator("#count-firing").inner_text()) == 2  # b:1 from Alertmanager, event 1 from Zabbix
    cell = page.locator("td[data-due]").first
    page.wait_for_timeout(1200)  # the script has ticked
    due = datetime.fromisoformat(cell.get_attribute("data-due").replace("Z", "+00:00"))
    shown = cell.locator(".countdown").inner_text()
    hours, minutes, seconds = (int(n) for n in re.fullmatch(r"(\d+)h (\d+)m (\d+)s", shown).groups())
    expected = (due - datetime.now(UTC)).total_seconds()
    assert abs(hours * 3600 + minutes * 60 + seconds - expected) <= 3, (shown, expected)
    page.screenshot(path=str(DOCS / "ui-overview.png"), full_page=True)
    assert errors == []


def test_incident_filters_work(browser_page, bridge):
    page, errors = browser_page
    page.goto(bridge.url + "/ui/incidents")
    assert page.locator("tbody tr").count() == 3
    page.select_option("#filter-state", "resolved")
    page.click("form.filters button")
    page.wait_for_url(re.compile(r".*state=resolved.*"))
    states = page.locator("tbody .state").all_inner_texts()
    assert states == ["resolved"]
    page.select_option("#filter-state", "")
    page.select_option("#filter-source", "zabbix")
    page.click("form.filters button")
    page.wait_for_url(re.compile(r".*source=zabbix.*"))
    assert page.locator("tbody tr").count() == 1
    page.goto(bridge.url + "/ui/incidents")
    page.screenshot(path=str(DOCS / "ui-incidents.png"), full_page=True)
    assert errors == []


def test_follow_an_alert_to_its_problem_and_jira_issue(browser_page, bridge):
    page, errors = browser_page
    page.goto(bridge.url + "/ui/incidents?source=alertmanager&state=firing")
    page.get_by_role("link", name=re.compile(r"problem #\d+")).first.click()
    page.wait_for_url(re.compile(r".*/ui/problems/\d+$"))
    assert page.locator("h1").inner_text().endswith("HighErrorRate keeps failing on lkk")
    jira = page.locator("#jira-link")
    assert re.fullmatch(r"LKK-\d+", jira.inner_text())
    assert jira.get_attribute("href").endswith("/browse/" + jira.inner_text())
    history = page.locator("#history").inner_text()
    assert "opened" in history and f"linked {jira.inner_text()} created by the bridge" in history
    page.screenshot(path=str(DOCS / "ui-problem.png"), full_page=True)
    page.goto(bridge.url + "/ui/problems")
    page.select_option("#filter-state", "known_error")
    page.click("form.filters button")
    page.wait_for_url(re.compile(r".*state=known_error.*"))
    assert page.locator("tbody .state").all_inner_texts() == ["known_error"]
    page.screenshot(path=str(DOCS / "ui-problems.png"), full_page=True)
    assert errors == []


def test_rejected_payloads_and_a_phone_screen(browser_page, bridge):
    page, errors = browser_page
    page.goto(bridge.url + "/ui/rejected")
    assert "body is not valid JSON" in page.locator("tbody").inner_text()
    page.screenshot(path=str(DOCS / "ui-rejected.png"), full_page=True)
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(bridge.url + "/ui/")
    assert page.evaluate("document.documentElement.scrollWidth <= window.innerWidth + 1"), "no sideways scrolling"
    page.screenshot(path=str(DOCS / "ui-overview-phone.png"), full_page=True)
    page.set_viewport_size({"width": 1280, "height": 860})
    assert errors == []


def test_keyboard_reaches_the_navigation_and_the_skip_link(browser_page, bridge):
    page, _ = browser_page
    page.goto(bridge.url + "/ui/")
    page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.textContent") == "Skip to content"
    for _ in range(3):
        page.keyboard.press("Tab")
    assert page.evaluate("document.activeElement.getAttribute('href')") == "/ui/problems"


def test_incident_page_and_the_sign_out_button_end_the_session(browser_page, bridge):
    context = browser_page[0].context.browser.new_context()  # a browser of its own: signing out ends only this one
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.goto(bridge.url + "/ui/incidents")
    page.fill("#token", API_TOKEN)
    page.click("button[type=submit]")
    page.wait_for_url(re.compile(r".*/ui/incidents$"))
    assert [c["name"] for c in context.cookies()] == ["bridge_session"]
    assert API_TOKEN not in context.cookies()[0]["value"]
    page.get_by_role("link", name=re.compile(r"^#\d+$")).first.click()
    page.wait_for_url(re.compile(r".*/ui/incidents/\d+$"))
    assert page.locator("h1").inner_text().startswith("Incident #")
    page.click("#logout")
    page.wait_for_url(re.compile(r".*/ui/login$"))
    assert context.cookies() == []
    page.goto(bridge.url + "/ui/")
    assert "/ui/login" in page.url
    assert errors == []
    context.close()
