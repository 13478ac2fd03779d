"""rules.yaml `ticket_systems` and `notify`: `${VAR}` read at start-up, unset variables named, secrets masked."""

from __future__ import annotations

from typing import Any

import pytest
import yaml

from bridge.rules.load import RulesError, parse_rules
from tests.conftest import ROOT

ENV = {"ITSM_URL": "https://itsm.example/hooks", "ITSM_SECRET": "s3cret", "CHAT_SECRET": "c", "RT_TOKEN": "tok"}


def rules_with(**sections: Any) -> dict[str, Any]:
    raw = yaml.safe_load((ROOT / "rules.yaml").read_text())
    raw.update(sections)
    return raw


def problems_of(raw: dict[str, Any], environ: dict[str, str]) -> list[str]:
    with pytest.raises(RulesError) as refused:
        parse_rules(raw, environ=environ)
    return refused.value.problems


def test_ticket_systems_and_notify_targets_read_their_variables():
    rules = parse_rules(
        rules_with(
            ticket_systems={
                "itsm": {"url": "${ITSM_URL}/", "secret_env": "ITSM_SECRET"},
                "rt": {"kind": "rt", "url": "https://rt.example", "token_env": "RT_TOKEN", "queue": "Support"},
            },
            notify=[
                {
                    "name": "chat",
                    "url": "https://chat.example/hook",
                    "secret_env": "CHAT_SECRET",
                    "events": ["problem.opened"],
                }
            ],
        ),
        environ=ENV,
    )
    itsm, rt = rules.ticket_systems["itsm"], rules.ticket_systems["rt"]
    assert (itsm.kind, itsm.url, itsm.secret, itsm.close_on_release) == (
        "webhook",
        "https://itsm.example/hooks",
        "s3cret",
        True,
    )
    assert (rt.kind, rt.token, rt.queue) == ("rt", "tok", "Support")
    [chat] = rules.notify_targets
    assert chat.wants("problem.opened") and not chat.wants("incident.opened")
    assert "s3cret" not in repr(itsm) and "tok" not in repr(rt) and "'c'" not in repr(chat)


def test_unset_variables_are_named_with_their_entry_and_key():
    raw = rules_with(
        ticket_systems={"itsm": {"url": "${BRIDGE_ITSM_URL}", "secret_env": "BRIDGE_ITSM_SECRET"}},
        notify=[{"name": "chat", "url": "${BRIDGE_CHAT_URL}", "secret_env": "CHAT_SECRET", "events": ["ticket.close"]}],
    )
    assert problems_of(raw, {"CHAT_SECRET": "c"}) == [
        'ticket system "itsm" key url: environment variable not set: BRIDGE_ITSM_URL',
        'ticket system "itsm" key secret_env: environment variable not set: BRIDGE_ITSM_SECRET',
        'notify target "chat" key url: environment variable not set: BRIDGE_CHAT_URL',
    ]


@pytest.mark.parametrize(
    ("sections", "expected"),
    [
        (
            {"ticket_systems": {"itsm": {"url": "https://x"}}},
            'ticket system "itsm" key secret_env: required for kind webhook (the key that signs deliveries)',
        ),
        (
            {"ticket_systems": {"rt": {"kind": "rt", "url": "https://x", "username_env": "ITSM_SECRET", "queue": "Q"}}},
            'ticket system "rt": kind rt needs token_env, or username_env and password_env (RT\'s credentials)',
        ),
        (
            {"ticket_systems": {"rt": {"kind": "rt", "url": "https://x", "token_env": "ITSM_SECRET"}}},
            'ticket system "rt" key queue: required for kind rt (the bridge changes only tickets of its queues',
        ),
        (
            {"ticket_systems": {"itsm": {"url": "ftp://x", "secret_env": "ITSM_SECRET"}}},
            "ticket system \"itsm\" key url: expected an http:// or https:// URL, got 'ftp://x'",
        ),
        (
            {"ticket_systems": {"itsm": {"url": "https://x", "colour": "red"}}},
            'ticket system "itsm" key colour: unknown key',
        ),
        (
            {
                "notify": [
                    {"name": "chat", "url": "https://x", "secret_env": "CHAT_SECRET", "events": ["problem.exploded"]}
                ]
            },
            'notify target "chat" key events.0:',
        ),
        (
            {
                "notify": [
                    {
                        "name": "chat",
                        "url": "https://x",
                        "secret_env": "CHAT_SECRET",
                        "events": ["problem.opened"],
                        "body_template": "{{ problem.summary",
                    }
                ]
            },
            'notify target "chat" key body_template: template does not compile:',
        ),
        (
            {
                "notify": [
                    {
                        "name": "chat",
                        "url": "https://x",
                        "secret_env": "CHAT_SECRET",
                        "events": ["problem.opened"],
                        "body_template": '{"text": "{{ event }}: {{ problem.summary }}"}',
                    }
                ]
            },
            'notify target "chat" key body_template: renders no valid JSON on a sample problem.opened',
        ),
        (
            {
                "notify": [
                    {
                        "name": "chat",
                        "url": "https://x",
                        "secret_env": "CHAT_SECRET",
                        "events": ["incident.opened"],
                        "body_template": '{"text": {{ incident.nothing }}}',
                    }
                ]
            },
            'notify target "chat" key body_template: fails on a sample incident.opened:',
        ),
    ],
)
def test_bad_entries_are_named(sections, expected):
    [problem] = problems_of(rules_with(**sections), ENV)
    assert problem.startswith(expected), problem


def test_a_body_template_runs_sandboxed_on_the_event():
    rules = parse_rules(
        rules_with(
            notify=[
                {
                    "name": "chat",
                    "url": "https://x",
                    "secret_env": "CHAT_SECRET",
                    "events": ["problem.opened"],
                    "body_template": '{"text": {{ event ~ ": " ~ problem.summary }}, "id": {{ problem.id }}}',
                }
            ]
        ),
        environ=ENV,
    )
    [chat] = rules.notify_targets
    assert chat.body_template is not None
    assert chat.body_template({"event": "problem.opened", "problem": {"summary": 'checkout "down"', "id": 4}}) == (
        '{"text": "problem.opened: checkout \\"down\\"", "id": 4}'
    )
