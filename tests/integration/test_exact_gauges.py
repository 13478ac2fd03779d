"""The system gauges of /metrics are exact: after a random mix of what changes them, each equals a count
from the tables, on SQLite and PostgreSQL (they are read from indexes of live rows, never kept apart)."""

from __future__ import annotations

import json
import random
from collections import Counter

import pytest
import sqlalchemy as sa
from prometheus_client.parser import text_string_to_metric_families

from bridge.app import create_app
from bridge.config import load_settings
from bridge.storage.schema import incidents, outbox, problems
from tests.conftest import ROOT, Clock, empty_tables
from tests.integration.test_problems import firing

API = {"Authorization": "Bearer api-token"}
OPERATE = {"Authorization": "Bearer operate-token", "X-Bridge-Actor": "Gauge Test"}
RELEASE = {"Authorization": "Bearer release-token"}
ALERTNAMES = ("DiskFull", "HighErrorRate", "QueueStuck", "CertExpiry")
GAUGES = (
    "bridge_incidents_open",
    "bridge_incidents_sla_breached",
    "bridge_problems_open",
    "bridge_outbox_pending",
    "bridge_outbox_dead",
    "bridge_outbox_backlog",
)


@pytest.fixture
def app(database_url: str, clock: Clock):
    settings = load_settings(
        {
            "BRIDGE_TOKEN_API": "api-token",
            "BRIDGE_TOKEN_OPERATE": "operate-token",
            "BRIDGE_TOKEN_RELEASE": "release-token",
            "BRIDGE_UI_SECRET_KEY": "x" * 32,
        },
        database_url=database_url,
        rules_path=str(ROOT / "rules.yaml"),
    )
    app = create_app(settings, now=clock)
    empty_tables(app.extensions["bridge"].store)
    yield app
    app.extensions["bridge"].store.engine.dispose()


def scraped(client) -> dict[str, dict[tuple[str, ...], float]]:
    """The store gauges of one scrape: name -> labels (in order) -> value, zeros left out."""
    values: dict[str, dict[tuple[str, ...], float]] = {name: {} for name in GAUGES}
    for family in text_string_to_metric_families(client.get("/metrics").get_data(as_text=True)):
        if family.name in values:
            for sample in family.samples:
                if sample.value:
                    values[family.name][tuple(sample.labels.values())] = sample.value
    return values


def counted(engine: sa.Engine) -> dict[str, dict[tuple[str, ...], float]]:
    """The same, counted from the tables in Python: every row read, nothing but the rows trusted."""
    with engine.connect() as conn:
        live = [row for row in conn.execute(sa.select(incidents)).mappings() if row["state"] != "closed"]
        kept = [row for row in conn.execute(sa.select(problems.c.state)) if row.state != "closed"]
        jobs = list(conn.execute(sa.select(outbox.c.state, outbox.c.target, outbox.c.kind)))
    by = {
        "bridge_incidents_open": Counter((row["line"], row["priority"], row["source"]) for row in live),
        "bridge_incidents_sla_breached": Counter((row["priority"],) for row in live if row["sla_breached"]),
        "bridge_problems_open": Counter((row.state,) for row in kept),
        "bridge_outbox_pending": Counter((job.target,) for job in jobs if job.state == "pending"),
        "bridge_outbox_dead": Counter((job.target,) for job in jobs if job.state == "dead"),
        "bridge_outbox_backlog": Counter((job.kind,) for job in jobs if job.state == "pending"),
    }
    return {name: {labels: float(count) for labels, count in counts.items()} for name, counts in by.items()}


class Mix:
    """A seeded random mix of creates, resolves, closes, merges, moves and releases, over HTTP."""

    def __init__(self, client, engine: sa.Engine, seed: int) -> None:
        self.client, self.engine, self.random = client, engine, random.Random(seed)
        self.firing: list[tuple[str, str]] = []  # (fingerprint, alertname) of alerts sent firing
        self.sent = 0
        self.releases = 0

    def live_problems(self) -> list[int]:
        with self.engine.connect() as conn:
            return list(conn.scalars(sa.select(problems.c.id).where(problems.c.state != "closed")))

    def create(self) -> None:
        self.sent += 1
        fingerprint, name = f"{self.sent:016x}", self.random.choice(ALERTNAMES)
        self.post(firing(fingerprint, alertname=name))
        self.firing.append((fingerprint, name))

    def resolve(self) -> None:
        if self.firing:
            fingerprint, name = self.firing.pop(self.random.randrange(len(self.firing)))
            body = json.loads(firing(fingerprint, alertname=name))
            body["status"] = body["alerts"][0]["status"] = "resolved"
            body["alerts"][0]["endsAt"] = "2026-11-23T19:30:00Z"
            self.post(json.dumps(body).encode())

    def close(self) -> None:
        if live := self.live_problems():
            path = f"/api/v1/problems/{self.random.choice(live)}/close"
            self.expect(self.client.post(path, json={"reason": "done"}, headers=OPERATE))

    def merge(self) -> None:
        live = self.live_problems()
        if len(live) >= 2:
            source, into = self.random.sample(live, 2)
            path = f"/api/v1/problems/{source}/merge"
            self.expect(self.client.post(path, json={"into": into}, headers=OPERATE))

    def move(self) -> None:
        live = self.live_problems()
        with self.engine.connect() as conn:
            movable = list(
                conn.scalars(
                    sa.select(incidents.c.id).where(incidents.c.state != "closed", incidents.c.problem_id.in_(live))
                )
            )
        if movable and len(live) >= 2:
            incident = self.random.choice(movable)
            path = f"/api/v1/incidents/{incident}/move"
            answer = self.client.post(path, json={"problem_id": self.random.choice(live)}, headers=OPERATE)
            assert answer.status_code in (200, 409), answer.json  # 409: moved to the problem it is in

    def release(self) -> None:
        """Link a live problem to a Jira key (in the table: no Jira here), then ship its fix."""
        if live := self.live_problems():
            self.releases += 1
            key = f"LKK-{self.releases}"
            with self.engine.begin() as conn:
                conn.execute(problems.update().where(problems.c.id == self.random.choice(live)).values(jira_key=key))
            body = {"project": "LKK", "version": f"1.{self.releases}", "issues": [key]}
            self.expect(self.client.post("/api/v1/releases", json=body, headers=RELEASE))

    def post(self, body: bytes) -> None:
        answer = self.client.post("/api/v1/alerts/alertmanager", data=body, content_type="application/json")
        assert answer.status_code == 200, answer.json

    @staticmethod
    def expect(answer) -> None:
        assert answer.status_code == 200, answer.json


@pytest.mark.parametrize("seed", [7, 31])
def test_every_gauge_equals_a_count_from_the_tables_after_a_random_mix(app, clock: Clock, seed: int):
    client = app.test_client()
    engine = app.extensions["bridge"].store.engine
    mix = Mix(client, engine, seed)
    actions = (
        (mix.create, 6),
        (mix.resolve, 3),
        (mix.close, 1),
        (mix.merge, 1),
        (mix.move, 2),
        (mix.release, 1),
    )
    steps = [action for action, weight in actions for _ in range(weight)]
    for step in range(80):
        mix.random.choice(steps)()
        clock.advance(minutes=1)
        if step % 10 == 9:
            assert scraped(client) == counted(engine), f"after step {step}"
    final = counted(engine)
    assert final["bridge_incidents_open"], "the mix left live incidents to count"
    assert final["bridge_problems_open"] and final["bridge_outbox_pending"], "and live problems, waiting jobs"
    with engine.connect() as conn:
        assert conn.scalar(sa.select(sa.func.count()).where(incidents.c.state == "closed")), "and closed incidents"
    assert scraped(client) == final
