"""The fake Jira refuses what real Jira refuses, so client mistakes fail tests."""

from __future__ import annotations

import json

import pytest
import requests

from jira_link.client import JiraClient, JiraError, adf
from tests.fakes import OPENAPI_DOCUMENT, VALIDATED_REQUESTS, FakeJira, openapi_validator
from tests.fixtures.jira import extract_subset


def client(jira: FakeJira) -> JiraClient:
    return JiraClient.basic(requests.Session(), jira.url, "bot@example.com", "jira-token", timeout=2)


def test_openapi_schema_rejects_a_malformed_create_body():
    errors = openapi_validator().errors("POST", "/rest/api/3/issue", {"fields": "not an object"})
    assert errors and errors[0].startswith("fields:")
    assert openapi_validator().errors("POST", "/rest/api/3/issue", {"fields": {"summary": "ok"}}) == []
    assert openapi_validator().errors("POST", "/rest/api/3/issue/X-1/remotelink", {"globalId": "g"}) != []


def test_our_requests_match_the_jira_openapi_document():
    with FakeJira() as jira:
        jira_client = client(jira)
        key = jira_client.create_issue(
            {
                "project": {"key": "LKK"},
                "issuetype": {"name": "Bug"},
                "summary": "s",
                "description": adf("d"),
                "labels": ["a"],
            }
        )
        jira_client.add_comment(key, "hello")
        jira_client.add_remote_link(key, "g-1", "http://bridge.test/p/1", "problem 1")
        assert jira.state.schema_violations == []


def test_real_jira_rules_are_enforced():
    with FakeJira() as jira:
        jira_client = client(jira)
        base = {"project": {"key": "LKK"}, "issuetype": {"name": "Bug"}, "summary": "s"}
        for fields, error in [
            ({**base, "project": {"key": "NOPE"}}, "project: valid project is required"),
            ({**base, "labels": ["has space"]}, "labels: The label can't contain spaces."),
            ({**base, "description": "plain text on v3"}, "description: Operation value must be an Atlassian Document"),
        ]:
            try:
                jira_client.create_issue(fields)
            except JiraError as exc:
                assert error in exc.message and exc.status == 400 and not exc.retryable
            else:
                raise AssertionError(f"fake Jira accepted {fields}")
        wrong = JiraClient.basic(requests.Session(), jira.url, "bot@example.com", "wrong", timeout=2)
        try:
            wrong.search('labels = "x"')
        except JiraError as exc:
            assert exc.status == 401
        else:
            raise AssertionError("fake Jira accepted bad credentials")
        legacy = requests.get(
            jira.url + "/rest/api/3/search",
            params={"jql": "project = LKK"},
            headers={"Authorization": jira_client._authorization},
            timeout=2,
        )
        assert legacy.status_code == 410


def test_vendored_schemas_are_the_ones_the_fake_validates_and_match_atlassians_document():
    """The subset holds every schema the fake checks; where ../shared is present, it is
    exactly what extract_subset.py cuts from Atlassian's full document today."""
    vendored = json.loads(OPENAPI_DOCUMENT.read_text())
    assert set(VALIDATED_REQUESTS.values()) == set(extract_subset.ROOT_SCHEMAS)
    assert set(extract_subset.ROOT_SCHEMAS) <= set(vendored["components"]["schemas"])
    if not extract_subset.FULL_DOCUMENT.exists():
        pytest.skip(f"{extract_subset.FULL_DOCUMENT} not here to compare with")
    assert vendored == extract_subset.subset(json.loads(extract_subset.FULL_DOCUMENT.read_text()))
