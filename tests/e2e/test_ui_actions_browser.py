"""Acting from the pages in a real browser (Debian's Chromium through Playwright, as test_ui_browser.py).

A running bridge with a read token and an operate token: a person signs in with the operate
token and a name, then links, unlinks, files the Jira issue, adds a note, closes and reopens
a problem and acknowledges an incident, each confirmed on the page and recorded with the
name. The keyboard alone can do it. A read-only session sees no forms and is refused when it
posts anyway; a form without its CSRF token is refused.
"""

from __future__ import annotations

import re
import time
from collections.abc import Iterator

import pytest
import requests

from bridge.storage.engine import migrate
from tests.conftest import BridgeProcess, payload_bytes
from tests.e2e.test_ui_browser import ARGS, CHROMIUM, DOCS, pytestmark  # noqa: F401  (skip without Chromium)
from tests.fakes import FakeJira
from tests.integration.test_problems import firing

READ_TOKEN = "ui-read-token"
OPERATE_TOKEN = "ui-operate-token"
NAME = "Ann Operator"


@pytest.fixture(scope="module")
def jira() -> Iterator[FakeJira]:
    with FakeJira() as fake:
        yield fake


@pytest.fixture(scope="module")
def bridge(tmp_path_factory, jira: FakeJira) -> Iterator[BridgeProcess]:
    url = f"sqlite:///{tmp_path_factory.mktemp('ui-actions') / 'ui.db'}"
    migrate(url)
    env = {
        "BRIDGE_TOKEN_API": READ_TOKEN,
        "BRIDGE_TOKEN_OPERATE": OPERATE_TOKEN,
        "BRIDGE_JIRA_URL": jira.url,
        "BRIDGE_JIRA_EMAIL": "bot@example.com",
        "BRIDGE_JIRA_API_TOKEN": "jira-token",
        "BRIDGE_WORKER_INTERVAL_SECONDS": "0.2",
    }
    with BridgeProcess(url, env=env) as process:
        for event_id in ("1", "2"):
            body = payload_bytes("zabbix-6.0.14-problem.json").replace(
                b'"event_id": "1"', f'"event_id": "{event_id}"'.encode()
            )
            answer = requests.post(
                f"{process.url}/api/v1/alerts/zabbix",
                data=body,
                timeout=10,
                headers={"Content-Type": "application/json"},
            )
            assert answer.status_code == 200, answer.text
        yield process


@pytest.fixture(scope="module")
def browser(bridge: BridgeProcess):
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        yield chromium
        chromium.close()


def session(browser, bridge: BridgeProcess, token: str, name: str | None = None):
    """A browser of its own signed in with `token` (and a name), typed with the keyboard alone."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    errors: list[str] = []
    page.on("console", lambda message: errors.append(message.text) if message.type == "error" else None)
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(bridge.url + "/ui/problems/1")
    page.focus("#token")
    page.keyboard.type(token)
    page.keyboard.press("Tab")
    if name:
        page.keyboard.type(name)
    page.keyboard.press("Enter")
    page.wait_for_url(re.compile(r".*/ui/problems/1$"))
    return context, page, errors


def tab_to(page, element_id: str, limit: int = 80) -> None:
    """Press Tab until the element has the focus, as a keyboard user would."""
    for _ in range(limit):
        if page.evaluate("document.activeElement && document.activeElement.id") == element_id:
            return
        page.keyboard.press("Tab")
    raise AssertionError(f"Tab never reached #{element_id}")


def confirmation(page) -> str:
    flash = page.locator("#flash")
    flash.wait_for()
    return flash.inner_text()


def submit(page, form_id: str) -> str:
    page.locator(f"#{form_id} button[type=submit]").click()
    return confirmation(page)


def test_the_overview_shows_who_waits_for_a_response(browser, bridge):
    """Both Zabbix incidents (P2, 30 business minutes) wait; the one due soonest comes first."""
    context, page, errors = session(browser, bridge, READ_TOKEN)
    page.goto(bridge.url + "/ui/")
    links = page.locator("#awaiting-table tbody a").all_inner_texts()
    assert sorted(links) == ["#1", "#2"]
    assert page.locator("#awaiting-table td[data-due]").count() == 2
    assert errors == []
    context.close()


def test_keyboard_alone_signs_in_adds_a_note_and_acknowledges(browser, bridge):
    context, page, errors = session(browser, bridge, OPERATE_TOKEN, NAME)
    assert page.locator("#actor").inner_text() == NAME
    tab_to(page, "note-text")
    page.keyboard.type("DBA paged about the replica lag")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert confirmation(page) == "Note added to problem #1."
    # The page's script moves the focus once it has run: wait for it (fails after 5 s if it never does).
    page.wait_for_function("document.activeElement && document.activeElement.id === 'flash'", timeout=5000)
    assert f"note DBA paged about the replica lag by {NAME}" in page.locator("#history").inner_text()
    page.goto(bridge.url + "/ui/incidents/1")
    tab_to(page, "ack-note")
    page.keyboard.type("looking at it")
    page.keyboard.press("Tab")
    page.keyboard.press("Enter")
    assert confirmation(page) == f"Incident #1 acknowledged by {NAME}."
    assert f"by {NAME}" in page.locator("#acknowledged").inner_text()
    assert (
        f"acknowledged incident 1 acknowledged: looking at it by {NAME}"
        in page.locator("#incident-history").inner_text()
    )
    page.screenshot(path=str(DOCS / "ui-incident-acknowledged.png"), full_page=True)
    assert errors == []
    context.close()


def test_link_unlink_file_the_issue_close_and_reopen_from_the_problem_page(browser, bridge, jira):
    jira.add_issue("LKK-77", "Replica lag")
    context, page, errors = session(browser, bridge, OPERATE_TOKEN, NAME)
    page.fill("#jira-key", "LKK-404")
    assert "does not exist" in submit(page, "link-form")
    assert page.locator("#flash").get_attribute("role") == "alert"
    page.fill("#jira-key", "LKK-77")
    assert submit(page, "link-form") == "Problem #1 linked to LKK-77."
    assert page.locator("#jira-link").inner_text() == "LKK-77"
    assert submit(page, "unlink-form") == "Problem #1 unlinked from LKK-77."
    assert "requested in LKK" in submit(page, "create-issue-form")
    deadline = time.monotonic() + 20
    while not page.locator("#jira-link").count() and time.monotonic() < deadline:
        time.sleep(0.3)
        page.reload()
    created = page.locator("#jira-link").inner_text()
    assert re.fullmatch(r"LKK-\d+", created) and created != "LKK-77"
    page.fill("#close-reason", "fixed by a config change")
    assert submit(page, "close-form") == "Problem #1 closed: fixed by a config change."
    assert page.locator(".cards .state").inner_text() == "closed"
    page.fill("#reopen-reason", "it came back")
    assert submit(page, "reopen-form") == "Problem #1 reopened: it came back."
    history = page.locator("#history").inner_text()
    for line in (
        f"linked linked to LKK-77 by hand by {NAME}",
        f"unlinked LKK-77 unlinked by {NAME}",
        f"issue_requested Jira issue requested in LKK by {NAME}",
        f"closed by hand: fixed by a config change (2 incidents closed) by {NAME}",
        f"reopened by hand: it came back by {NAME}",
    ):
        assert line in history, (line, history)
    page.screenshot(path=str(DOCS / "ui-problem-actions.png"), full_page=True)
    assert errors == []
    context.close()


def test_a_read_session_sees_no_forms_and_is_refused_when_it_posts(browser, bridge):
    context, page, _ = session(browser, bridge, READ_TOKEN)
    assert page.locator("form.action").count() == 0
    assert page.locator("#read-only").is_visible()
    page.evaluate(
        """() => { const form = document.createElement("form"); form.method = "post";
        form.action = "/ui/problems/1/notes"; form.innerHTML = '<input name="text" value="sneaky">';
        document.body.appendChild(form); form.submit(); }"""
    )
    page.wait_for_url(re.compile(r".*/ui/problems/1/notes$"))
    assert page.locator("#refused").inner_text().startswith("Acting needs the operate token")
    page.goto(bridge.url + "/ui/problems/1")
    assert "sneaky" not in page.locator("#history").inner_text()
    context.close()


def test_a_form_without_its_csrf_token_is_refused(browser, bridge):
    context, page, _ = session(browser, bridge, OPERATE_TOKEN, NAME)
    page.evaluate("""() => document.querySelector("#note-form input[name=csrf_token]").remove()""")
    page.fill("#note-text", "forged note")
    page.locator("#note-form button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/ui/problems/1/notes$"))
    assert page.locator("#refused").inner_text().startswith("This form has expired")
    page.goto(bridge.url + "/ui/problems/1")
    page.evaluate("""() => { document.querySelector("#note-form input[name=csrf_token]").value = "guessed"; }""")
    page.fill("#note-text", "forged note")
    page.locator("#note-form button[type=submit]").click()
    page.wait_for_url(re.compile(r".*/ui/problems/1/notes$"))
    assert page.locator("#refused").is_visible()
    page.goto(bridge.url + "/ui/problems/1")
    assert "forged note" not in page.locator("#history").inner_text()
    context.close()


def test_the_operate_token_needs_a_name(browser, bridge):
    context = browser.new_context()
    page = context.new_page()
    page.goto(bridge.url + "/ui/login")
    page.fill("#token", OPERATE_TOKEN)
    page.click("button[type=submit]")
    assert page.get_by_role("alert").inner_text().startswith("Give your name with the operate token")
    context.close()


def alertmanager_problem(bridge: BridgeProcess, name: str) -> int:
    """Open a problem of two Alertmanager incidents (the example rules open one at the second)."""
    for n in range(2):
        answer = requests.post(
            f"{bridge.url}/api/v1/alerts/alertmanager",
            data=firing(f"{name}{n:015x}"[-16:], alertname=name),
            headers={"Content-Type": "application/json"},
            timeout=10,
        )
        assert answer.status_code == 200, answer.text
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    items = requests.get(f"{bridge.url}/api/v1/problems?limit=200", headers=read, timeout=10).json()["items"]
    return next(p["id"] for p in items if p["problem_key"] == f"{name}/lkk")


def members(bridge: BridgeProcess, problem_id: int) -> list[int]:
    read = {"Authorization": f"Bearer {READ_TOKEN}"}
    detail = requests.get(f"{bridge.url}/api/v1/problems/{problem_id}", headers=read, timeout=10).json()
    return sorted(i["id"] for i in detail["incidents"])


def test_keyboard_alone_moves_a_wrongly_grouped_incident_and_merges_two_problems(browser, bridge):
    wrong, right = alertmanager_problem(bridge, "DiskFullPage"), alertmanager_problem(bridge, "DiskFullMail")
    stray = members(bridge, wrong)[0]
    context, page, errors = session(browser, bridge, OPERATE_TOKEN, NAME)
    page.goto(f"{bridge.url}/ui/incidents/{stray}")
    tab_to(page, "move-problem")
    page.keyboard.type(f"#{right}")
    page.keyboard.press("Enter")
    assert confirmation(page) == f"Incident #{stray} moved from problem #{wrong} to problem #{right}."
    assert stray in members(bridge, right) and stray not in members(bridge, wrong)
    assert f"moved from problem {wrong} to problem {right} by {NAME}" in page.locator("#incident-history").inner_text()
    page.goto(f"{bridge.url}/ui/problems/{wrong}")
    tab_to(page, "merge-into")
    page.keyboard.type(str(right))
    page.keyboard.press("Tab")
    page.keyboard.type("one disk, two alert names")
    page.keyboard.press("Enter")
    assert confirmation(page).startswith(f"Problem #{wrong} merged into problem #{right}: 1 incidents moved.")
    assert page.locator("#merged-into").is_visible()
    assert members(bridge, wrong) == [] and len(members(bridge, right)) == 4
    assert f"merged into problem {right} by {NAME}: one disk, two alert names" in page.locator("#history").inner_text()
    page.goto(f"{bridge.url}/ui/problems/{right}")
    tab_to(page, "merge-into")
    page.keyboard.type(str(wrong))
    page.keyboard.press("Enter")
    assert confirmation(page) == f"problem {wrong} is already merged into problem {right}; a merge back would loop"
    assert errors == []
    context.close()


def test_a_release_page_shows_what_it_closed_and_the_regression_after_it(browser, bridge):
    problem = requests.get(
        f"{bridge.url}/api/v1/problems/1", headers={"Authorization": f"Bearer {READ_TOKEN}"}, timeout=10
    ).json()
    release = {"project": "LKK", "version": "2026.12.0", "issues": [problem["jira_key"]], "environments": ["prod"]}
    assert requests.post(f"{bridge.url}/api/v1/releases", json=release, timeout=10).json()["closed_problems"] == [1]
    body = payload_bytes("zabbix-6.0.14-problem.json").replace(b'"event_id": "1"', b'"event_id": "3"')
    requests.post(
        f"{bridge.url}/api/v1/alerts/zabbix", data=body, timeout=10, headers={"Content-Type": "application/json"}
    )
    context, page, errors = session(browser, bridge, READ_TOKEN)
    page.goto(bridge.url + "/ui/")
    page.get_by_role("link", name="2026.12.0").click()
    page.wait_for_url(re.compile(r".*/ui/releases/LKK/2026\.12\.0$"))
    assert page.locator("#environments").inner_text() == "prod"
    assert page.locator("#regression-count").inner_text() == "1"
    assert "after the fix in 2026.12.0" in page.locator("#regressions").inner_text()
    assert page.locator("#opened-incidents").inner_text() == "1"
    page.screenshot(path=str(DOCS / "ui-release.png"), full_page=True)
    assert errors == []
    context.close()
