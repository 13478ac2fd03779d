"""Releases: a shipped version closes the problems its issues fixed, and every incident of those problems."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from bridge import metrics
from bridge.domain.deploys import DeployPhase
from bridge.domain.problems import Problem, release_comment_text
from bridge.domain.rules import Rules
from bridge.errors import BadPayload, Conflict, UpstreamError
from bridge.outbox.jobs import ReleaseComment, queue
from bridge.outbox.notify import Announcer
from bridge.problems.closing import queue_zabbix_close
from bridge.problems.deploys import Recorded, finish_release_deploys
from bridge.problems.tickets import after_close
from bridge.storage.engine import Connection
from bridge.storage.store import Store
from jira_link.client import JiraError, jql_string
from jira_link.port import JiraPort


def issue_keys_in(jira: JiraPort | None, jql: str, what: str) -> list[str]:
    """The keys of the issues a release carries, asked of Jira while the caller waits.

    Raises:
        Conflict: Jira is not configured. UpstreamError: Jira failed (503 when retrying may help).
    """
    if jira is None:
        raise Conflict(f"Jira is not configured: cannot find the issues of {what}; send the issue list")
    try:
        return [issue.key for issue in jira.search(jql, fields=("status",))]
    except JiraError as exc:
        raise UpstreamError(f"could not ask Jira for the issues of {what}: {exc.message}", exc.retryable) from exc


def close_release(
    store: Store,
    jira: JiraPort | None,
    rules: Rules,
    *,
    project: str,
    version: str,
    issues: Sequence[str] | None,
    released_at: datetime | None,
    now: datetime,
    via: str = "pipeline",
    environments: Sequence[str] | None = None,
) -> dict[str, Any]:
    """Close every problem linked to the release's new issues and every incident of those problems.

    A release is identified per issue: a later call for a version (a hotfix issue added to
    it) processes only the issues no call processed before, and answers what it did this
    time. A call whose issues were all processed changes nothing ("replay": true). The
    version's row keeps the summary of all its calls. Without `issues`, Jira is asked
    which issues carry the fix version. `environments` adds to the environments the release
    reached (a call that only deploys it further changes nothing else), and finishes its deploy
    to each (bridge/problems/deploys.py: a deploy window settles, a suspect is known).

    Raises:
        Conflict: no issue list and no Jira to ask. UpstreamError: Jira failed.
    """
    if issues is None:
        issues = issue_keys_in(
            jira, f"project = {project} AND fixVersion = {jql_string(version)}", f"fix version {version}"
        )
    keys = sorted(set(issues))
    shipped_at = released_at or now
    rules_by_name = {rule.name: rule for rule in rules.problem_rules}

    def work(conn: Connection) -> dict[str, Any]:
        # The row lock makes calls for one version take turns; the unique key on
        # (project, version, issue) backs it, a loser retrying the whole transaction.
        recorded = store.lock_release(conn, project, version)
        before: dict[str, Any] = recorded["summary"] if recorded is not None else {}
        release_id = (
            recorded["id"]
            if recorded is not None
            else store.add_release(
                conn, project=project, version=version, released_at=shipped_at, received_at=now, via=via, summary={}
            )
        )
        reached = (
            store.add_release_environments(conn, release_id, environments)
            if environments
            else (recorded or {}).get("environments")
        )
        deployed[:] = (
            finish_release_deploys(conn, store, rules, project, version, environments, keys, shipped_at, now)
            if environments
            else []
        )
        # Releases recorded before per-issue identity (0006) list their issues only in the summary.
        done = store.processed_release_issues(conn, project, version, keys)
        done |= set(before.get("issues", ())) & set(keys)
        new_keys = [key for key in keys if key not in done]
        answer = {
            "project": project,
            "version": version,
            "released_at": shipped_at.isoformat(),
            "issues": keys,
            "already_processed_issues": sorted(done),
            "environments": reached,
        }
        if recorded is not None and not new_keys:
            return {
                **answer,
                "closed_problems": [],
                "closed_incidents": 0,
                "already_closed_problems": [],
                "unmatched_issues": [],
                "tickets_told": 0,
                "replay": True,
            }
        store.add_release_issues(conn, release_id, project, version, new_keys, now)
        # An issue named by a key it has since moved away from is found under its current key.
        current = store.current_keys(conn, new_keys)
        linked = store.problems_for_issues(conn, list(current.values()))
        to_close = [p for p in linked if not p.is_closed]
        reason = f"released in {version}"
        per_problem, zabbix_closed = store.close_problems_and_incidents(
            conn, [p.stored_id for p in to_close], now, reason, fixed_in=version, fixed_at=shipped_at
        )
        store.add_problem_events(
            conn,
            [
                dict(
                    problem_id=p.stored_id,
                    at=now,
                    kind="released",
                    detail=f"{reason}: {per_problem.get(p.stored_id, 0)} incidents closed",
                )
                for p in to_close
            ],
        )
        tickets_told = after_close(
            conn,
            store,
            rules,
            [p.stored_id for p in to_close],
            now,
            reason,
            release={"project": project, "version": version},
        )
        by_issue: dict[str, list[Problem]] = {}
        for problem in to_close:
            by_issue.setdefault(problem.jira_key or "", []).append(problem)
        for key, problems_of_issue in by_issue.items():
            first = problems_of_issue[0]
            rule = rules_by_name.get(first.rule)
            transition = rule is not None and rule.jira is not None and rule.jira.close_on_release
            text = release_comment_text(
                version,
                [p.stored_id for p in problems_of_issue],
                sum(per_problem.get(p.stored_id, 0) for p in problems_of_issue),
            )
            queue(
                conn, store, ReleaseComment(first.stored_id, key, text, transition, first.rule, project, version), now
            )
            zabbix_of_issue = [closed for p in problems_of_issue for closed in zabbix_closed.get(p.stored_id, [])]
            queue_zabbix_close(
                conn,
                store,
                zabbix_of_issue,
                f"Closed by incident-bridge: fixed in release {version}",
                now,
                release=f"{project}:{version}:{key}",
            )
        matched = {p.jira_key for p in linked}
        summary = {
            **answer,
            "closed_problems": [p.id for p in to_close],
            "closed_incidents": sum(per_problem.values()),
            "already_closed_problems": [p.id for p in linked if p.is_closed],
            "unmatched_issues": [key for key in new_keys if current[key] not in matched],
            "tickets_told": tickets_told,
        }
        announcer = Announcer.of(store, rules)
        if announcer is not None:
            announcer.announce(conn, "release.received", now, {"release": summary})
        store.set_release_summary(conn, release_id, release_totals(before, summary))
        fix_times[:] = [(shipped_at - p.opened_at).total_seconds() for p in to_close]
        return {**summary, "replay": False}

    fix_times: list[float] = []
    deployed: list[Recorded] = []
    summary = store.run(work)
    if not summary["replay"]:
        metrics.record_release(summary["closed_incidents"], fix_times)
    for recorded in deployed:
        if not recorded.replay:
            metrics.count_deploy(project, recorded.deploy["environment"], DeployPhase.FINISHED.value)
    return summary


def release_totals(before: dict[str, Any], call: dict[str, Any]) -> dict[str, Any]:
    """A version's summary over all its calls, as the release list and the overview show it."""

    def union(name: str) -> list[Any]:
        return sorted({*before.get(name, ()), *call[name]})

    return {
        "project": call["project"],
        "version": call["version"],
        "released_at": before.get("released_at", call["released_at"]),
        "issues": sorted({*before.get("issues", ()), *call["issues"]}),
        "closed_problems": union("closed_problems"),
        "closed_incidents": before.get("closed_incidents", 0) + call["closed_incidents"],
        "already_closed_problems": union("already_closed_problems"),
        "unmatched_issues": union("unmatched_issues"),
        "tickets_told": before.get("tickets_told", 0) + call["tickets_told"],
        "calls": before.get("calls", 1 if before else 0) + 1,
    }


def release_from_jira_version(
    store: Store, jira: JiraPort | None, rules: Rules, version: Any, now: datetime
) -> dict[str, Any]:
    """The release close hook, fed by Jira's version-released webhook (which lists no issues).

    Raises:
        BadPayload: no version name or id. Conflict: Jira is not configured. UpstreamError: Jira failed.
    """
    if not isinstance(version, dict) or not version.get("name") or not str(version.get("id", "")).isdigit():
        raise BadPayload("version_released webhook without a version", ["version: needs id and name"])
    keys = issue_keys_in(jira, f"fixVersion = {version['id']}", f"version {version['name']}")
    project = keys[0].split("-")[0] if keys else str(version.get("projectId", "unknown"))
    return close_release(
        store,
        jira,
        rules,
        project=project,
        version=str(version["name"]),
        issues=keys,
        released_at=None,
        now=now,
        via="jira_webhook",
    )
