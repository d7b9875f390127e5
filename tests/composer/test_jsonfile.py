"""Composer's local JSON as text: strict parsing, value positions, one-entry edits."""

import json

import pytest

from magedl.composer.jsonfile import (
    EditError,
    json_type_name,
    last_member,
    parse_json_text,
    parse_spans,
    set_entry,
    strict_loads,
)
from magedl.errors import ConfigError

# ---------------------------------------------------------------- strict parsing


def test_parse_json_text_reads_json():
    assert parse_json_text('{"a": [1, 2.5, null, true]}', "f.json") == {"a": [1, 2.5, None, True]}


@pytest.mark.parametrize("text, match", [
    ('\ufeff{}', "f.json starts with a byte-order mark"),
    ('{"a": NaN}', r"f.json is not valid JSON \(NaN or Infinity\)"),
    ('[-Infinity]', r"NaN or Infinity"),
    ('{\n  "a": "secret-value",\n}', r"f.json is not valid JSON \(.* at line 3 column 1\)"),
    ("[" * 100000 + "]" * 100000, "f.json is nested too deeply"),
])
def test_parse_json_text_refuses_what_composer_refuses(text, match):
    with pytest.raises(ConfigError, match=match) as info:
        parse_json_text(text, "f.json")
    assert "secret-value" not in str(info.value)
    assert info.value.exit_code == 1


def test_strict_loads_refuses_constants():
    with pytest.raises(ValueError):
        strict_loads("Infinity")
    with pytest.raises(json.JSONDecodeError):
        strict_loads("{")
    assert strict_loads("1e400") == float("inf")  # a number, not the constant: json reads it


@pytest.mark.parametrize("value, name", [(None, "null"), (True, "boolean"), (0, "number"),
                                         (1.5, "number"), ("", "string"), ([], "list"),
                                         ({}, "object")])
def test_json_type_name(value, name):
    assert json_type_name(value) == name


# ---------------------------------------------------------------- positions


def test_parse_spans_records_every_member():
    text = ' {"a" : [1, {"x": 2}], "b\\u0021": "s", "a": -1.5e3 } '
    root = parse_spans(text)
    assert (root.kind, root.start, root.end) == ("object", 1, len(text) - 1)
    names = [name for name, _, _ in root.members]
    assert names == ["a", "b!", "a"]
    assert [text[key_start] for _, key_start, _ in root.members] == ['"', '"', '"']
    first = root.members[0][2]
    assert (first.kind, text[first.start:first.end]) == ("array", '[1, {"x": 2}]')
    assert text[root.members[1][2].start:root.members[1][2].end] == '"s"'
    assert text[last_member(root, "a").start:last_member(root, "a").end] == "-1.5e3"
    assert last_member(root, "zz") is None


@pytest.mark.parametrize("text", ['{"a": 1} x', "{'a': 1}", '{"a": NaN}', '{"a" 1}', '{"a": 1,}',
                                  '"\t"', "[1 2]", ""])
def test_parse_spans_refuses_what_it_does_not_read(text):
    with pytest.raises(EditError):
        parse_spans(text)


# ---------------------------------------------------------------- edits


def test_set_entry_replaces_only_the_value():
    text = '{"s": {"k": {"old": 1}, "o": 2}, "t": [1]}'
    assert set_entry(text, "s", "k", {"new": "v"}) == '{"s": {"k": {"new": "v"}, "o": 2}, "t": [1]}'


def test_set_entry_inserts_key_and_section_in_the_text_style():
    text = '{\r\n  "t": 1\r\n}'
    assert set_entry(text, "s", "k", {"a": "b"}) == (
        '{\r\n  "t": 1,\r\n  "s": {\r\n    "k": {\r\n      "a": "b"\r\n    }\r\n  }\r\n}')
    assert set_entry('{"s":{"x":1}}', "s", "k", "v") == '{"s":{"x":1, "k": "v"}}'


@pytest.mark.parametrize("text", ["[]", " [ ] "])
def test_set_entry_turns_php_empty_top_level_into_an_object(text):
    new = set_entry(text, "s", "k", "v")
    assert json.loads(new) == {"s": {"k": "v"}}
    assert new.startswith(text[: len(text) - len(text.lstrip())])


@pytest.mark.parametrize("text", ['"x"', "3", '{"s": "x"}', '{"s": 1}'])
def test_set_entry_refuses_shapes_it_does_not_handle(text):
    with pytest.raises(EditError):
        set_entry(text, "s", "k", "v")
