"""One contract, three Jiras: the in-memory fake answers like JiraClient talking to the HTTP fake.

The linker's unit tests trust MemoryJira; this is what earns that trust. Each test runs
against MemoryJira and against JiraClient (Cloud and Data Center) on the HTTP FakeJira,
which is itself checked against Atlassian's OpenAPI document.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass

import pytest
import requests

from jira_link.client import CLOUD, DATACENTER, JiraClient, JiraError, JiraRateLimited
from jira_link.linker import outward_links
from jira_link.port import JiraPort
from tests.fakes import STATUS_DONE, FakeJira
from tests.jira_memory import MemoryJira


@dataclass
class Site:
    """A Jira behind the port, a look at its remote links (which the port cannot read), its test controls."""

    jira: JiraPort
    links: Callable[[str], dict[str, str]]
    controls: MemoryJira | FakeJira


@pytest.fixture(params=["memory-datacenter", "memory-cloud", "http-cloud", "http-datacenter"])
def site(request: pytest.FixtureRequest) -> Iterator[Site]:
    if request.param.startswith("memory"):
        memory = MemoryJira(flavour=CLOUD if request.param == "memory-cloud" else DATACENTER)
        yield Site(
            memory,
            lambda key: {g: link["url"] for g, link in memory.issues[key].remote_links.items()},
            memory,
        )
        return
    with FakeJira() as fake:
        if request.param == "http-cloud":
            client = JiraClient.basic(requests.Session(), fake.url, "bot@example.com", "jira-token", timeout=2)
        else:
            client = JiraClient.bearer(requests.Session(), fake.url, "jira-pat", timeout=2)
            assert client.flavour == DATACENTER
        yield Site(
            client,
            lambda key: {g: link["object"]["url"] for g, link in fake.remote_links(key).items()},
            fake,
        )


def create(jira: JiraPort, project: str = "LKK", labels: tuple[str, ...] = ("ours",)) -> str:
    return jira.create_issue(
        {
            "project": {"key": project},
            "issuetype": {"name": "Bug"},
            "summary": "s",
            "description": jira.text("d"),
            "labels": list(labels),
        }
    )


def test_keys_count_per_project_and_a_new_issue_is_open(site):
    assert [create(site.jira), create(site.jira, "OPS"), create(site.jira)] == ["LKK-1", "OPS-1", "LKK-2"]
    issue = site.jira.get_issue("LKK-2")
    assert (issue.key, issue.status, issue.status_category, issue.resolution, issue.labels) == (
        "LKK-2",
        "To Do",
        "new",
        None,
        ("ours",),
    )
    assert site.jira.get_issue("LKK-99") is None


def test_search_by_project_and_label_returns_only_the_requested_fields(site):
    create(site.jira, labels=("a", "marker-1"))
    create(site.jira, "OPS", labels=("marker-1",))
    [found] = site.jira.search('project = LKK AND labels = "marker-1"', fields=("labels",))
    assert (found.key, found.labels, found.status) == ("LKK-1", ("a", "marker-1"), None)
    assert site.jira.search('project = LKK AND labels = "marker-2"', fields=("labels",)) == []


def test_transitions_depend_on_the_status_and_done_sets_a_resolution(site):
    key = create(site.jira)
    offered = {t["name"]: t["to"]["statusCategory"]["key"] for t in site.jira.transitions(key)}
    assert offered == {"In Progress": "indeterminate", "Close Issue": "done"}
    done = next(t for t in site.jira.transitions(key) if t["name"] == "Close Issue")
    site.jira.transition(key, str(done["id"]))
    issue = site.jira.get_issue(key)
    assert (issue.status, issue.status_category, issue.resolution) == ("Done", "done", "Done")
    assert [t["name"] for t in site.jira.transitions(key)] == ["Reopen"]
    with pytest.raises(JiraError) as refused:
        site.jira.transition(key, str(done["id"]))
    assert (refused.value.status, refused.value.retryable) == (400, False)


def test_a_transition_screen_with_required_fields_names_them_and_takes_them(site):
    key = create(site.jira)
    site.controls.require_fields("31", "resolution", "customfield_10050")
    with pytest.raises(JiraError) as refused:
        site.jira.transition(key, "31")
    assert (refused.value.status, refused.value.retryable) == (400, False)
    assert sorted(refused.value.field_errors) == ["customfield_10050", "resolution"]
    assert site.jira.get_issue(key).status == "To Do"
    site.jira.transition(key, "31", {"resolution": {"name": "Fixed"}, "customfield_10050": "deploy rolled back"})
    issue = site.jira.get_issue(key)
    assert (issue.status, issue.resolution) == ("Done", "Fixed")


def test_a_field_off_the_transition_screen_is_refused_by_name(site):
    key = create(site.jira)
    site.controls.refuse_fields("31", "customfield_10050")
    with pytest.raises(JiraError) as refused:
        site.jira.transition(key, "31", {"customfield_10050": "x"})
    assert (refused.value.status, list(refused.value.field_errors)) == (400, ["customfield_10050"])
    site.jira.transition(key, "31")
    assert site.jira.get_issue(key).status == "Done"


def test_comments_come_back_newest_first_as_the_plain_text_sent(site):
    key = create(site.jira)
    assert site.jira.recent_comments(key) == []
    site.jira.add_comment(key, "first")
    site.jira.add_comment(key, "second\nline [x|http://e] *{code}* h1. C:\\ #1 &amp; 2026-11-23")
    newest = "second\nline [x|http://e] *{code}* h1. C:\\ #1 &amp; 2026-11-23"
    assert site.jira.recent_comments(key) == [newest, "first"]
    assert site.jira.recent_comments(key, limit=1) == [newest]


def test_a_remote_link_with_the_same_global_id_is_updated_not_doubled(site):
    key = create(site.jira)
    site.jira.add_remote_link(key, "bridge:problem:1", "http://b/1", "problem 1")
    site.jira.add_remote_link(key, "bridge:problem:1", "http://b/1-moved", "problem 1")
    site.jira.add_remote_link(key, "bridge:problem:2", "http://b/2", "problem 2")
    assert site.links(key) == {"bridge:problem:1": "http://b/1-moved", "bridge:problem:2": "http://b/2"}


@pytest.mark.parametrize(
    "call, status",
    [
        pytest.param(lambda jira: create(jira, "NOPE"), 400, id="create-in-unknown-project"),
        pytest.param(lambda jira: create(jira, labels=("has space",)), 400, id="label-with-a-space"),
        pytest.param(lambda jira: jira.add_comment("LKK-9", "x"), 404, id="comment-on-missing-issue"),
        pytest.param(lambda jira: jira.transitions("LKK-9"), 404, id="transitions-of-missing-issue"),
        pytest.param(lambda jira: jira.add_remote_link("LKK-9", "g", "http://b", "t"), 404, id="link-on-missing-issue"),
    ],
)
def test_what_jira_refuses_is_a_final_error(site, call, status):
    with pytest.raises(JiraError) as refused:
        call(site.jira)
    assert (refused.value.status, refused.value.retryable) == (status, False)


# Jira identity (issue 16): ids, moves, a lagging search index, entity properties, issue links.


def properties_of(site: Site, key: str) -> dict:
    controls = site.controls
    return controls.issue(key).properties if isinstance(controls, MemoryJira) else controls.issue(key)["properties"]


def create_ref(site: Site, properties: list[dict], project: str = "LKK") -> str:
    fields = {"project": {"key": project}, "issuetype": {"name": "Bug"}, "summary": "s", "labels": ["m-1"]}
    return site.jira.create_issue_ref(fields, properties).key


def test_a_create_with_entity_properties_answers_key_and_id_and_keeps_them(site):
    value = {"marker": "incident-bridge-problem-7", "problem_id": 7}
    created = site.jira.create_issue_ref(
        {"project": {"key": "LKK"}, "issuetype": {"name": "Bug"}, "summary": "s"},
        [{"key": "incident-bridge.problem", "value": value}],
    )
    assert created.key == "LKK-1" and created.id is not None and created.id.isdigit()
    assert properties_of(site, "LKK-1") == {"incident-bridge.problem": value}
    by_id = site.jira.get_issue(created.id)
    assert (by_id.key, by_id.id) == ("LKK-1", created.id)


@pytest.mark.parametrize(
    "properties",
    [
        pytest.param([{"key": "", "value": 1}], id="empty-key"),
        pytest.param([{"key": "k" * 256, "value": 1}], id="key-too-long"),
        pytest.param([{"key": "k"}], id="no-value"),
        pytest.param([{"key": "k", "value": "x" * 32_768}], id="value-too-large"),
    ],
)
def test_a_malformed_entity_property_is_refused_and_nothing_is_created(site, properties):
    with pytest.raises(JiraError) as refused:
        create_ref(site, properties)
    assert (refused.value.status, refused.value.retryable) == (400, False)
    assert site.jira.get_issue("LKK-1") is None


def test_a_moved_issue_keeps_its_id_and_answers_under_its_old_key(site):
    first = site.jira.create_issue_ref(
        {"project": {"key": "LKK"}, "issuetype": {"name": "Bug"}, "summary": "s", "labels": ["m-1"]}
    )
    create(site.jira, "OPS")
    new_key = site.controls.move(first.key, "OPS")
    assert new_key == "OPS-2"
    old = site.jira.get_issue(first.key)
    assert (old.key, old.id) == ("OPS-2", first.id)
    site.jira.add_comment(first.key, "via the old key")
    assert site.jira.recent_comments(new_key) == ["via the old key"]
    [found] = site.jira.search('labels = "m-1"', fields=("labels",))
    assert (found.key, found.id) == ("OPS-2", first.id)
    assert create(site.jira) == "LKK-2", "a moved-away key is never handed out again"


def test_a_lagging_index_hides_new_issues_from_search_but_not_from_get(site):
    site.controls.lag_search(60)
    key = create(site.jira, labels=("m-1",))
    assert site.jira.search('labels = "m-1"', fields=("labels",)) == []
    assert site.jira.get_issue(key).key == key
    site.controls.lag_search(0)
    assert [i.key for i in site.jira.search('labels = "m-1"', fields=("labels",))] == [key]


def test_a_duplicate_link_shows_on_both_issues_and_is_not_doubled(site):
    original, twin = create(site.jira), create(site.jira)
    site.jira.link_issues("Duplicate", twin, original)
    site.jira.link_issues("Duplicate", twin, original)
    [outward] = site.jira.get_issue(twin, fields=("issuelinks",)).fields["issuelinks"]
    assert (outward["type"]["name"], outward["type"]["outward"], outward["outwardIssue"]["key"]) == (
        "Duplicate",
        "duplicates",
        original,
    )
    [inward] = site.jira.get_issue(original, fields=("issuelinks",)).fields["issuelinks"]
    assert inward["inwardIssue"]["key"] == twin
    with pytest.raises(JiraError) as unknown:
        site.jira.link_issues("Clones of", twin, original)
    assert unknown.value.status == 404
    with pytest.raises(JiraError) as missing:
        site.jira.link_issues("Duplicate", twin, "LKK-99")
    assert missing.value.status == 404


def test_wont_do_and_duplicate_resolutions_and_the_duplicate_link_read_alike(site):
    original, duplicate, dropped = create(site.jira), create(site.jira), create(site.jira)
    site.controls.resolve(dropped, "Won't Do")
    site.controls.resolve(duplicate, "Duplicate", duplicates=original)
    wanted = ("status", "resolution", "issuelinks")
    dropped_issue, duplicate_issue = site.jira.get_issue(dropped, wanted), site.jira.get_issue(duplicate, wanted)
    assert (dropped_issue.status_category, dropped_issue.resolution, outward_links(dropped_issue)) == (
        "done",
        "Won't Do",
        (),
    )
    assert (duplicate_issue.status_category, duplicate_issue.resolution) == ("done", "Duplicate")
    assert outward_links(duplicate_issue) == (("Duplicate", original),), "the duplicate names what it duplicates"
    [link] = duplicate_issue.fields["issuelinks"]
    assert link["type"]["outward"] == "duplicates" and link["outwardIssue"]["key"] == original
    original_issue = site.jira.get_issue(original, wanted)
    assert outward_links(original_issue) == (), "the original's side is inward: it duplicates nothing"
    assert original_issue.fields["issuelinks"][0]["inwardIssue"]["key"] == duplicate
    assert site.jira.get_issue(duplicate, ("status",)).fields == {"status": STATUS_DONE}, "links only when asked"
    site.controls.reopen(dropped)
    reopened = site.jira.get_issue(dropped)
    assert (reopened.status_category, reopened.resolution) == ("new", None)


def test_cloud_rate_limits_raise_the_scope_to_hold_back(site):
    key = create(site.jira)
    api = "/rest/api/3" if getattr(site.jira, "flavour", None) == CLOUD else "/rest/api/2"
    site.controls.limit_issue_writes(key, retry_after=7)
    assert site.jira.get_issue(key) is not None, "a read of the issue passes"
    with pytest.raises(JiraRateLimited) as per_issue:
        site.jira.add_comment(key, "x")
    assert (per_issue.value.status, per_issue.value.retryable) == (429, True)
    assert (per_issue.value.reason, per_issue.value.scope.key, per_issue.value.retry_after) == (
        "jira-per-issue-on-write",
        f"issue:{key}",
        7.0,
    )
    site.jira.add_comment(key, "x")
    site.controls.limit_endpoint("GET", r"/transitions$", retry_after=3)
    with pytest.raises(JiraRateLimited) as burst:
        site.jira.transitions(key)
    assert (burst.value.scope.key, burst.value.scope.operation) == (
        f"endpoint:GET {api}/issue/{{issueIdOrKey}}/transitions",
        "get_transitions",
    )
    site.controls.limit_quota(retry_after=5, reason="jira-quota-tenant-based")
    with pytest.raises(JiraRateLimited) as quota:
        site.jira.search('project = LKK AND labels = "ours"', fields=("labels",))
    assert (quota.value.scope.key, quota.value.reason, quota.value.retry_after) == (
        "quota",
        "jira-quota-tenant-based",
        5.0,
    )
    assert [found.key for found in site.jira.search('project = LKK AND labels = "ours"', fields=("labels",))] == [key]
