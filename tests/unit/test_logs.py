"""Log formats keep every extra field: key=value text or one JSON object per line."""

from __future__ import annotations

import json
import logging

from bridge.logs import JsonFormatter, TextFormatter


def record(extra: dict, exc_info=None) -> logging.LogRecord:
    made = logging.LogRecord(
        "bridge.worker", logging.WARNING, __file__, 1, "outbox job will be retried", None, exc_info
    )
    made.__dict__.update(extra)
    return made


def test_text_appends_extras_as_key_value_pairs_quoting_spaces():
    line = TextFormatter().format(
        record(
            {
                "job_id": 7,
                "kind": "jira.comment_incidents",
                "error": 'Jira answered HTTP 500: "down"',
                "event_ids": ["1", "2"],
            }
        )
    )
    assert line.endswith(
        "WARNING bridge.worker outbox job will be retried job_id=7 kind=jira.comment_incidents "
        'error="Jira answered HTTP 500: \\"down\\"" event_ids=["1","2"]'
    )


def test_json_is_one_object_per_line_with_extras_and_traceback():
    try:
        raise RuntimeError("boom")
    except RuntimeError:
        import sys

        line = JsonFormatter().format(record({"request_id": "abc", "status": 500}, sys.exc_info()))
    assert "\n" not in line
    parsed = json.loads(line)
    assert (parsed["level"], parsed["logger"], parsed["message"]) == (
        "WARNING",
        "bridge.worker",
        "outbox job will be retried",
    )
    assert (parsed["request_id"], parsed["status"]) == ("abc", 500)
    assert "RuntimeError: boom" in parsed["exception"]


def test_no_log_call_names_an_extra_field_the_log_record_already_has():
    """logging raises KeyError for an extra that would overwrite a LogRecord attribute (`name`, `msg`...),
    so such a line crashes its request only where that level is enabled: found by reading the code."""
    import ast

    from tests.conftest import ROOT

    reserved = set(vars(logging.makeLogRecord({}))) | {"message", "asctime"}
    clashes = []
    for package in ("bridge", "adapters", "jira_link"):
        for path in sorted((ROOT / package).rglob("*.py")):
            for node in ast.walk(ast.parse(path.read_text())):
                if not isinstance(node, ast.Call):
                    continue
                for keyword in node.keywords:
                    if keyword.arg == "extra" and isinstance(keyword.value, ast.Dict):
                        keys = {key.value for key in keyword.value.keys if isinstance(key, ast.Constant)}
                        clashes += [f"{path.relative_to(ROOT)}:{node.lineno} {key}" for key in keys & reserved]
    assert clashes == []


HOSTILE = "\x1b[31mred\x1b[2J\x1b]0;pwned\x07 \x9b1m\x7f\x00\r\n\t\u2028\u2029\u200e\ufeff end"


def test_text_escapes_every_unprintable_character_of_message_extras_and_keys_as_json_does():
    extras = {
        "path": "/" + HOSTILE.replace(" ", ""),
        "content_type": HOSTILE,
        "error": 'said "no" ' + HOSTILE,
        "items": [HOSTILE, {"k" + HOSTILE: HOSTILE}],
        "count": 3,
        "nothing": None,
    }
    for key, value in extras.items():
        made = record({key: value})
        made.msg, made.args = "request %s", (HOSTILE,)
        line = TextFormatter().format(made)
        assert line.isprintable(), (key, [ch for ch in line if not ch.isprintable()])
        assert "request \\u001b[31mred\\u001b[2J\\u001b]0;pwned\\u0007 \\u009b1m\\u007f\\u0000\\r\\n\\t" in line
        assert json.loads(line.split(f" end {key}=", 1)[1]) == value  # the escapes decode to the value
    line = TextFormatter().format(record({"bad\x1bkey": "v"}))
    assert line.endswith(" bad\\u001bkey=v")


def test_a_traceback_keeps_its_lines_and_escapes_the_rest():
    try:
        raise ValueError(HOSTILE)
    except ValueError:
        import sys

        line = TextFormatter().format(record({}, sys.exc_info()))
    assert all(part.isprintable() for part in line.split("\n"))
    assert line.split("\n")[-1].startswith("ValueError: \\u001b[31mred")
