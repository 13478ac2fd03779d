"""Deploys and changes: the pipeline tells each deploy (release token); both are listed with the read token.

Change events arrive as PagerDuty sends them, with the webhooks (bridge/api/webhooks.py).
"""

from __future__ import annotations

import re

from flask import Blueprint, jsonify

from bridge.api.bodies import ENVIRONMENT, DeployRequest
from bridge.domain.deploys import DeployPhase, Step
from bridge.domain.problems import JIRA_PROJECT
from bridge.problems.deploys import DeployCall
from bridge.shapes import iso
from bridge.watch.deploys import deploy_json, record_deploy
from bridge.web.context import bridge
from bridge.web.edge import json_writes, page_args, pattern_arg, requires_token, validated_body

deploys = json_writes(Blueprint("deploys", __name__))


@deploys.post("/api/v1/deploys")
@requires_token("release")
def deploy_told():  # type: ignore[no-untyped-def]
    """A deploy started, finished or failed: 201 for a new deploy, 200 for a change of one or a repeat."""
    ctx = bridge()
    body = validated_body(DeployRequest)
    now = ctx.now()
    call = DeployCall(body.project, body.version, body.environment, DeployPhase(body.phase), tuple(body.issues))
    recorded, released = record_deploy(ctx.store, ctx.rules, call, now, ctx.settings.deploy_max)
    answer = {"status": "ok", "replay": recorded.replay, "deploy": deploy_json(recorded.deploy, now, ctx.rules)}
    if ctx.rules.project(body.project) is None:
        answer["note"] = (
            f"project {body.project} is not in rules.yaml projects: the deploy is recorded, no alert is marked or held, "
            "and it is no problem's suspect"
        )
    if released is not None:
        answer["released"] = {"ordinary": released.ordinary, "closed": released.closed}
    created = recorded.step in (Step.START, Step.RECORD_FINISHED, Step.RECORD_FAILED)
    return jsonify(answer), 201 if created else 200


@deploys.get("/api/v1/deploys")
@requires_token("api")
def list_deploys():  # type: ignore[no-untyped-def]
    """Deploys, newest first; `project` and `environment` narrow them."""
    limit, cursor = page_args()
    project = pattern_arg("project", JIRA_PROJECT, "LKK")
    environment = pattern_arg("environment", re.compile(ENVIRONMENT), "prod")
    ctx = bridge()
    now = ctx.now()
    page = ctx.store.list_deploys(project, environment, limit, cursor)
    return jsonify({"items": [deploy_json(row, now, ctx.rules) for row in page.items], "next_cursor": page.next_cursor})


@deploys.get("/api/v1/changes")
@requires_token("api")
def list_changes():  # type: ignore[no-untyped-def]
    """Changes (PagerDuty Change Events), newest first."""
    limit, cursor = page_args()
    page = bridge().store.list_changes(limit, cursor)
    items = [
        {
            "id": row["id"],
            "routing_key": row["routing_key"],
            "summary": row["summary"],
            "source": row["source"],
            "changed_at": iso(row["changed_at"]),
            "received_at": iso(row["received_at"]),
            "custom_details": row["custom_details"],
            "links": row["links"],
            "labels": row["labels"],
        }
        for row in page.items
    ]
    return jsonify({"items": items, "next_cursor": page.next_cursor})
