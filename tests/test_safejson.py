"""safejson's nesting check: exact on any valid JSON, strings with brackets, quotes and escapes included."""

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magedl import safejson
from magedl.errors import FeedError
from magedl.safejson import MAX_DEPTH, parse_json

TRICKY = st.text(alphabet=st.sampled_from('[]{}"\\/ab\u00e9\u2028\n'), max_size=8)
VALUES = st.recursive(st.none() | st.integers(-5, 5) | TRICKY,
                      lambda inner: st.lists(inner, max_size=3) | st.dictionaries(TRICKY, inner, max_size=3),
                      max_leaves=30)


def depth(value):
    if isinstance(value, list):
        return 1 + max(map(depth, value), default=0)
    if isinstance(value, dict):
        return 1 + max(map(depth, value.values()), default=0)
    return 0


def nested(value, levels):
    for _ in range(levels):
        value = [value, "]]]]", {"k": "\\\"[{"}]
    return value


@settings(max_examples=300, deadline=None)
@given(VALUES, st.integers(0, 6))
def test_the_nesting_is_measured_outside_strings_only(value, extra):
    doc = nested(value, extra)
    for ascii_only in (True, False):
        text = json.dumps(doc, ensure_ascii=ascii_only)
        for limit in (0, 1, 2, 3, 5, 8):
            assert safejson._too_deep(text, limit) == (depth(doc) > limit), (text, limit)


def test_a_large_shallow_document_passes_and_a_deep_one_is_refused():
    feed = {"ce-patch": {f"9.{v}.0": [{"name": f"a[{i}", "file_name": f"{{x}}{i}\\\"", "md5": "0" * 32}
                                     for i in range(100)] for v in range(300)}}
    assert parse_json(json.dumps(feed), "feed") == feed
    deep = "[" * (MAX_DEPTH + 1) + '"]]]]"' + "]" * (MAX_DEPTH + 1)
    with pytest.raises(FeedError, match="nested deeper"):
        parse_json(deep, "feed")
    hidden = "[" * MAX_DEPTH + '"' + "[" * 10 + '"' + "]" * MAX_DEPTH  # brackets in a string do not count
    assert parse_json(hidden, "feed") is not None
