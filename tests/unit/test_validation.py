"""The JSON depth limit counted on the raw bytes agrees with the depth of the parsed value."""

from __future__ import annotations

import json

import orjson
from hypothesis import given
from hypothesis import strategies as st

from bridge.validation import nesting_depth_exceeds

# Strings full of what could fool a byte scanner: brackets, quotes, backslashes, unicode.
tricky_text = st.text(alphabet=st.sampled_from(list('[]{}"\\:,ab \u044f\u2028')), max_size=12)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2**63), max_value=2**63 - 1) | tricky_text,
    lambda children: st.lists(children, max_size=4) | st.dictionaries(tricky_text, children, max_size=4),
    max_leaves=40,
)


def depth(value: object) -> int:
    if isinstance(value, dict):
        return 1 + max((depth(child) for child in value.values()), default=0)
    if isinstance(value, list):
        return 1 + max((depth(child) for child in value), default=0)
    return 0


@given(json_values, st.integers(min_value=0, max_value=8), st.booleans())
def test_byte_count_agrees_with_the_parsed_depth(value: object, limit: int, ascii_escapes: bool) -> None:
    body = json.dumps(value, ensure_ascii=True).encode() if ascii_escapes else orjson.dumps(value)
    assert nesting_depth_exceeds(body, limit) == (depth(value) > limit)


def test_brackets_inside_strings_do_not_count() -> None:
    assert not nesting_depth_exceeds(b'{"a": "[[[[[[{{{{", "b": "\\"[[[["}', 1)
    assert nesting_depth_exceeds(b'{"a": "\\\\", "b": [[1]]}', 2)
