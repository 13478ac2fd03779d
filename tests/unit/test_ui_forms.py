"""The page forms' field readers: what an action route gets, or the 400 message it flashes."""

from __future__ import annotations

import pytest
from flask import Flask

from bridge.errors import BadPayload
from bridge.pages.actions import form_id, form_text


def fields(**data: str):
    return Flask(__name__).test_request_context("/", method="POST", data=data)


def test_form_text_is_trimmed_and_optional_fields_may_be_empty():
    with fields(reason="  fixed  ", note="  "):
        assert form_text("reason") == "fixed"
        assert form_text("note", required=False) is None


@pytest.mark.parametrize(
    "data, error",
    [({}, "reason is required"), ({"reason": "x" * 2001}, "invalid reason"), ({"reason": "a\x00b"}, "invalid reason")],
)
def test_form_text_refuses_missing_long_or_nul(data, error):
    with fields(**data), pytest.raises(BadPayload, match=error):
        form_text("reason")


@pytest.mark.parametrize("given, expected", [("42", 42), (" #7 ", 7)])
def test_form_id_reads_a_number(given, expected):
    with fields(into=given):
        assert form_id("into") == expected


@pytest.mark.parametrize("given", ["", "0", "-1", "abc", "٣", "9" * 20, "1_0"])
def test_form_id_refuses_anything_else(given):
    with fields(into=given), pytest.raises(BadPayload, match="invalid into|into is required"):
        form_id("into")
