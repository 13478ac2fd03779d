"""A notify target's body template writes alert text as JSON values: no field of an event can add keys.

Every field an event carries (summary, description, labels and their names, annotations, source,
dedup key, problem key, Jira key, ticket text, release, reason...) is set to hostile text in turn
and rendered by a template that reads it; the bytes sent parse as JSON with exactly the
template's keys, the value intact.
"""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import orjson
import pytest
import requests

from bridge.domain.tickets import EVENTS
from bridge.outbox.jobs import Deliver
from bridge.outbox.notify import DeliveryFailed, Endpoint, request_of, send
from bridge.rules.load import parse_rules
from bridge.rules.samples import sample_event
from tests.receiver import Receiver
from tests.unit.test_tickets_rules import ENV, rules_with

T = 1_795_608_000
NOW = datetime(2026, 11, 25, 12, 0, tzinfo=UTC)
HOSTILE = (
    'x", "channel": "#general", "username": "CEO", "text": "All clear',
    'a\\"}, "b": "\\\\',
    "line\nbreak\r\ttab\x00nul\x1b[31m",
    "</script><script>alert(1)</script>",
    "{{ 7 * 7 }}{% raw %}",
    "\u2028\u2029 separators \ufeff\U0001f525",
    "'single' & <angle>",
)


def leaves(value: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, ...]]:
    """Every path to a value that is no mapping (lists are values: templates write them whole)."""
    if isinstance(value, dict):
        for key, inner in value.items():
            yield from leaves(inner, (*path, key))
    else:
        yield path


def with_value(body: dict[str, Any], path: tuple[str, ...], value: Any) -> dict[str, Any]:
    copied = orjson.loads(orjson.dumps(body))
    place = copied
    for key in path[:-1]:
        place = place[key]
    place[path[-1]] = value
    return copied


def target(template: str) -> Endpoint:
    """The notify target rules.yaml builds from `template` (checked against the samples as at load)."""
    rules = parse_rules(
        rules_with(
            notify=[
                {
                    "name": "chat",
                    "url": "https://chat.example",
                    "secret_env": "CHAT_SECRET",
                    "events": list(EVENTS),
                    "body_template": template,
                }
            ]
        ),
        environ=ENV,
    )
    [chat] = rules.notify_targets
    return Endpoint(chat.name, chat.url, chat.secret, chat.body_template)


def sent(endpoint: Endpoint, body: dict[str, Any]) -> Any:
    """The body as it would be sent, parsed."""
    raw, _ = request_of(endpoint, Deliver("notify:chat", body["event"], body["id"], body), T)
    return orjson.loads(raw)


EXAMPLE = sample_event("problem.opened")
PATHS = sorted({path for event in EVENTS for path in leaves(sample_event(event))})


def test_the_samples_reach_every_field_an_event_carries():
    assert {path[0] for path in PATHS} >= {"event", "id", "occurred_at", "incident", "problem", "ticket", "release"}
    assert ("incident", "summary") in PATHS and ("problem", "jira_key") in PATHS and ("ticket", "summary") in PATHS


@pytest.mark.parametrize("path", PATHS, ids=".".join)
def test_hostile_text_in_any_field_stays_one_json_value(path):
    expression = path[0] + "".join(f"[{orjson.dumps(key).decode()}]" for key in path[1:])
    endpoint = target('{"text": {{ ' + expression + ' }}, "channel": "#ops"}')
    for text in HOSTILE:
        body = sent(endpoint, with_value(EXAMPLE, path, text))
        assert body == {"text": text, "channel": "#ops"}


@pytest.mark.parametrize("mapping", ["labels", "annotations"])
def test_hostile_label_names_and_values_stay_json_values(mapping):
    endpoint = target(
        '{"pairs": [{% for name, value in incident.' + mapping + ".items() %}"
        '{% if not loop.first %}, {% endif %}{"name": {{ name }}, "value": {{ value }}}{% endfor %}], "n": 1}'
    )
    hostile = {text: text[::-1] for text in HOSTILE}
    body = sent(endpoint, with_value(EXAMPLE, ("incident", mapping), hostile))
    assert set(body) == {"pairs", "n"}
    assert [(pair["name"], pair["value"]) for pair in body["pairs"]] == list(hostile.items())
    assert all(set(pair) == {"name", "value"} for pair in body["pairs"])


def test_a_subject_written_whole_comes_out_as_it_went_in():
    endpoint = target('{"incident": {{ incident }}, "problem": {{ problem }}}')
    hostile = with_value(with_value(EXAMPLE, ("incident", "summary"), HOSTILE[0]), ("problem", "summary"), HOSTILE[1])
    body = sent(endpoint, hostile)
    assert body == {"incident": hostile["incident"], "problem": hostile["problem"]}


def test_a_body_that_renders_no_json_dead_letters_naming_the_template_and_is_never_sent():
    # Valid on the samples (no regressions there), broken on a regressed problem.
    endpoint = target('{"text": {{ problem.summary }}{% if problem.regressions %},{% endif %}}')
    body = with_value(EXAMPLE, ("problem", "regressions"), 1)
    with Receiver("s3cret") as receiver, requests.Session() as session:
        endpoint = Endpoint(endpoint.name, receiver.url, endpoint.secret, endpoint.template)
        with pytest.raises(DeliveryFailed) as failed:
            send(session, endpoint, Deliver("notify:chat", "problem.regressed", "abc", body), NOW)
    assert not failed.value.retryable
    assert str(failed.value) == "body_template of chat renders no valid JSON on problem.regressed"
    assert receiver.received == []
