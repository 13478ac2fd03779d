"""A problem with a long history, many notes and many tickets answers in bounded size, pages through them with
cursors, and refuses a cursor it did not give; the API and the page, on SQLite and PostgreSQL."""

from __future__ import annotations

import base64
import re
from datetime import timedelta

import orjson
import pytest

from bridge.storage.schema import problem_events, problem_tickets
from tests.conftest import Clock
from tests.e2e.test_operate_api import OPERATE, READ, app, client, fake_jira, problem_id  # noqa: F401

# Enough that serving them whole is what the answer's size shows.
MANY = 10_000


@pytest.fixture
def crowded(app, problem_id: int, clock: Clock) -> int:  # noqa: F811
    """The problem with MANY history entries (every other one a note, ten at each instant) and MANY tickets."""
    store = app.extensions["bridge"].store
    start = clock()
    with store.engine.begin() as conn:
        conn.execute(
            problem_events.insert(),
            [
                dict(
                    problem_id=problem_id,
                    at=start + timedelta(seconds=n // 10),
                    kind="note" if n % 2 else "ticket",
                    detail=f"entry {n}: " + "words " * 20,
                    actor="Ann" if n % 2 else None,
                )
                for n in range(MANY)
            ],
        )
        conn.execute(
            problem_tickets.insert(),
            [
                dict(
                    problem_id=problem_id,
                    system="itsm",
                    ticket_id=f"SR-{n}",
                    summary="a customer cannot pay " * 5,
                    state="open",
                    linked_at=start + timedelta(seconds=n // 10),
                )
                for n in range(MANY)
            ],
        )
    return problem_id


def walk(client, path: str) -> list[dict]:  # noqa: F811
    """Every item of a paged listing, following its cursors."""
    items: list[dict] = []
    cursor = None
    while True:
        answer = client.get(path, query_string={"limit": 500, **({"cursor": cursor} if cursor else {})}, headers=READ)
        assert answer.status_code == 200, answer.json
        items += answer.json["items"]
        cursor = answer.json["next_cursor"]
        if cursor is None:
            return items


def test_the_problem_answers_in_bounded_size_with_cursors_to_the_rest(client, crowded: int):  # noqa: F811
    answer = client.get(f"/api/v1/problems/{crowded}", headers=READ)
    assert answer.status_code == 200
    assert len(answer.data) < 100_000, f"{len(answer.data)} bytes"
    body = answer.json
    assert [len(body[name]) for name in ("history", "notes", "tickets")] == [50, 50, 50]
    assert all(body[f"{name}_next_cursor"] for name in ("history", "notes", "tickets"))
    ats = [entry["at"] for entry in body["history"]]
    assert ats == sorted(ats), "the newest entries, oldest first as ever"
    assert {entry["kind"] for entry in body["notes"]} == {"note"}


def test_the_listings_walk_every_entry_once_newest_first(client, crowded: int):  # noqa: F811
    history = walk(client, f"/api/v1/problems/{crowded}/history")
    assert len(history) == MANY + 1 and len({e["id"] for e in history}) == MANY + 1, "and the 'opened' entry"
    keys = [(e["at"], e["id"]) for e in history]
    assert keys == sorted(keys, reverse=True)
    notes = walk(client, f"/api/v1/problems/{crowded}/notes")
    assert len(notes) == MANY // 2 and {(e["kind"], e["actor"], e["count"]) for e in notes} == {("note", "Ann", 1)}
    tickets = walk(client, f"/api/v1/problems/{crowded}/tickets")
    assert sorted(t["ticket_id"] for t in tickets) == sorted(f"SR-{n}" for n in range(MANY))
    first = client.get(f"/api/v1/problems/{crowded}", headers=READ).json
    older = client.get(
        f"/api/v1/problems/{crowded}/history", query_string={"cursor": first["history_next_cursor"]}, headers=READ
    ).json["items"]
    assert older[0]["id"] == history[50]["id"], "the problem's cursor leads on from what it embedded"


def _encoded(value: object) -> str:
    return base64.urlsafe_b64encode(orjson.dumps(value)).decode().rstrip("=")


@pytest.mark.parametrize(
    "cursor",
    [
        "garbage!!",
        "%%%",
        "é",
        "a" * 201,
        _encoded({"at": "2026-11-23T19:00:00+00:00", "id": 5}),
        _encoded(["2026-11-23T19:00:00+00:00"]),
        _encoded(["2026-11-23T19:00:00", 5]),  # no zone
        _encoded(["not a time", 5]),
        _encoded(["2026-11-23T19:00:00+00:00", -1]),
        _encoded(["2026-11-23T19:00:00+00:00", 2**63]),
        _encoded(["2026-11-23T19:00:00+00:00", "5"]),
        _encoded(["2026-11-23T19:00:00+00:00", True]),
        _encoded(["2026-11-23T19:00:00+00:00", 0, 5]),  # a tickets cursor
    ],
)
def test_a_cursor_the_listing_did_not_give_is_refused_by_name(client, problem_id: int, cursor: str):  # noqa: F811
    answer = client.get(f"/api/v1/problems/{problem_id}/history", query_string={"cursor": cursor}, headers=READ)
    assert answer.status_code == 400
    assert answer.json["message"] == "invalid query parameter cursor" and answer.json["errors"][0].startswith("cursor:")
    tickets = client.get(
        f"/api/v1/problems/{problem_id}/tickets",
        query_string={"cursor": _encoded(["2026-11-23T19:00:00+00:00", 5])},
        headers=READ,
    )
    assert tickets.status_code == 400, "a history cursor is not a tickets cursor"
    assert client.get(f"/api/v1/problems/{problem_id}/notes?limit=501", headers=READ).status_code == 400
    assert client.get("/api/v1/problems/999/history", headers=READ).status_code == 404


def test_the_page_shows_the_newest_entries_and_links_to_older_ones(client, crowded: int):  # noqa: F811
    client.post("/ui/login", data={"token": "api-token"})
    page = client.get(f"/ui/problems/{crowded}")
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and len(page.data) < 200_000, f"{len(page.data)} bytes"
    assert "entry 9999:" in html and "entry 9949:" not in html
    assert "SR-9999" in html and "SR-9949" not in html
    older = re.search(r'<a id="older-history" href="([^"]+)"', html)
    assert older is not None
    before = client.get(older.group(1).replace("&amp;", "&")).get_data(as_text=True)
    assert "entry 9949:" in before and "entry 9950:" not in before
    tickets = re.search(r'<a id="older-tickets" href="([^"]+)"', html)
    assert tickets is not None and "SR-9949" in client.get(tickets.group(1).replace("&amp;", "&")).get_data(True)
    assert client.get(f"/ui/problems/{crowded}?history_cursor=garbage").status_code == 400


def test_a_note_too_long_is_refused_by_the_api_and_the_page(client, problem_id: int):  # noqa: F811
    path = f"/api/v1/problems/{problem_id}/notes"
    refused = client.post(path, json={"text": "x" * 5001}, headers=OPERATE)
    assert refused.status_code == 400 and "text" in str(refused.json["errors"])
    assert client.post(path, json={"text": "x" * 5000}, headers=OPERATE).status_code == 201
    client.post("/ui/login", data={"token": "operate-token", "name": "Ann"})
    page = client.get(f"/ui/problems/{problem_id}").get_data(as_text=True)
    csrf = page.split('name="csrf_token" value="')[1].split('"')[0]
    form = client.post(
        f"/ui/problems/{problem_id}/notes", data={"csrf_token": csrf, "text": "y" * 5001}, follow_redirects=True
    )
    assert "text: at most 5000 characters" in form.get_data(as_text=True), "the form says why"
    notes = client.get(f"/api/v1/problems/{problem_id}/notes", headers=READ).json["items"]
    assert [len(note["detail"]) for note in notes] == [5000]
