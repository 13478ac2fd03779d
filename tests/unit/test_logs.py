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
