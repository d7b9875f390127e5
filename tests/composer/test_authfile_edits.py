"""store_keys edits auth.json text in place: the host's entry changes, every other byte stays."""

import json
import logging
import os

import pytest
from composer.authkit import HOST, OTHERS, entry_json, make, mode_of, no_leftovers, pair

from magedl.composer import authfile
from magedl.composer.authfile import store_keys
from magedl.composer.jsonfile import EditError, last_member, parse_spans


def test_existing_entry_replaced_everything_else_byte_for_byte(tmp_path):
    keys = pair()
    path = make(tmp_path / "auth.json", OTHERS)
    result = store_keys(path, HOST, *keys)
    assert (result.created, result.changed, result.rewritten) == (False, True, False)
    old_entry = '{\n            "username": "OLDPUBLIC",\n            "password": "OLDPRIVATE"\n' \
                "        }"
    assert path.read_text() == OTHERS.replace(old_entry, entry_json(keys, lead="        "))
    assert mode_of(path) == 0o600 and no_leftovers(tmp_path)


def test_new_host_inserted_after_the_last_entry(tmp_path):
    keys = pair()
    path = make(tmp_path / "auth.json", OTHERS)
    store_keys(path, "http://127.0.0.1:8080/", *keys)
    anchor = '"password": "OLDPRIVATE"\n        }'
    expected = OTHERS.replace(anchor, anchor + ',\n        "127.0.0.1:8080": '
                              + entry_json(keys, lead="        "))
    assert path.read_text() == expected


def test_http_basic_inserted_when_missing(tmp_path):
    keys = pair()
    text = '{\n\t"github-oauth": {\n\t\t"github.com": "abc"\n\t}\n}'
    path = make(tmp_path / "auth.json", text)
    store_keys(path, HOST, *keys)
    assert path.read_text() == (
        '{\n\t"github-oauth": {\n\t\t"github.com": "abc"\n\t},\n\t"http-basic": {\n'
        '\t\t"repo.magento.com": ' + entry_json(keys, lead="\t\t", unit="\t") + "\n\t}\n}")


def test_compact_file_stays_compact(tmp_path):
    keys = pair()
    path = make(tmp_path / "auth.json", '{"github-oauth":{"github.com":"abc"},"http-basic":{}}')
    store_keys(path, HOST, *keys)
    assert path.read_text() == (
        '{"github-oauth":{"github.com":"abc"},"http-basic":{"repo.magento.com": '
        f'{{"username": "{keys[0]}", "password": "{keys[1]}"}}}}}}')


def test_crlf_file_keeps_crlf(tmp_path):
    keys = pair()
    text = ('{\r\n  "http-basic": {\r\n    "a.example": {"username": "u", "password": "p"}\r\n'
            '  }\r\n}\r\n')
    path = make(tmp_path / "auth.json", text)
    store_keys(path, HOST, *keys)
    new = path.read_bytes().decode()
    assert new == text.replace(
        '"p"}\r\n', '"p"},\r\n    "repo.magento.com": '
        + entry_json(keys, lead="    ", unit="  ", nl="\r\n") + "\r\n")
    assert "\n" not in new.replace("\r\n", "")


def test_empty_http_basic_in_pretty_file(tmp_path):
    keys = pair()
    text = '{\n    "http-basic": {},\n    "gitlab-token": {}\n}\n'
    path = make(tmp_path / "auth.json", text)
    store_keys(path, HOST, *keys)
    assert path.read_text() == text.replace(
        "{},", '{\n        "repo.magento.com": ' + entry_json(keys, lead="        ")
        + "\n    },", 1)


@pytest.mark.parametrize("text", ["[]", '{"http-basic": []}'])
def test_php_empty_arrays_become_objects(tmp_path, text):
    keys = pair()
    path = make(tmp_path / "auth.json", text)
    result = store_keys(path, HOST, *keys)
    data = json.loads(path.read_text())
    assert data["http-basic"] == {HOST: {"username": keys[0], "password": keys[1]}}
    assert not result.rewritten


def test_duplicate_names_last_one_is_replaced(tmp_path):
    keys = pair()
    text = ('{"http-basic": {"repo.magento.com": {"username": "A", "password": "A"}, '
            '"repo.magento.com": {"username": "B", "password": "B"}}}')
    path = make(tmp_path / "auth.json", text)
    store_keys(path, HOST, *keys)
    assert path.read_text() == text.replace(
        '{"username": "B", "password": "B"}',
        f'{{"username": "{keys[0]}", "password": "{keys[1]}"}}')


def test_same_keys_again_change_nothing(tmp_path):
    keys = pair()
    path = make(tmp_path / "auth.json", OTHERS)
    store_keys(path, HOST, *keys)
    before = os.stat(path)
    result = store_keys(path, HOST, *keys)
    assert (result.changed, result.created) == (False, False)
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_existing_stricter_mode_is_kept(tmp_path):
    path = make(tmp_path / "auth.json", "{}", 0o400)
    store_keys(path, HOST, *pair())
    assert mode_of(path) == 0o400


def test_other_spellings_of_the_host_are_reported(tmp_path, caplog):
    keys = pair()
    path = make(tmp_path / "auth.json",
                '{"http-basic": {"REPO.magento.com:443": {"username": "u", "password": "p"}}}')
    with caplog.at_level(logging.WARNING):
        result = store_keys(path, "https://repo.magento.com/", *keys)
    assert result.key == HOST and result.other_forms == ("REPO.magento.com:443",)
    assert "REPO.magento.com:443" in caplog.text


def test_url_host_uses_composer_origin(tmp_path):
    path = tmp_path / "auth.json"
    assert store_keys(path, "https://REPO.magento.com:443/", *pair()).key == "REPO.magento.com:443"


def test_fallback_reserialises_with_four_spaces(tmp_path, monkeypatch, caplog):
    keys = pair()
    path = make(tmp_path / "auth.json", '{"b":1,\n"a":{"x":[1,2]}}')

    def broken(*args):
        raise EditError("simulated")

    monkeypatch.setattr(authfile, "set_entry", broken)
    with caplog.at_level(logging.WARNING):
        result = store_keys(path, HOST, *keys)
    assert result.rewritten and "rewriting it whole" in caplog.text
    expected = {"b": 1, "a": {"x": [1, 2]},
                "http-basic": {HOST: {"username": keys[0], "password": keys[1]}}}
    assert path.read_text() == json.dumps(expected, indent=4) + "\n"
    assert keys[1] not in caplog.text


def test_editor_output_that_does_not_parse_back_falls_back(tmp_path, monkeypatch):
    path = make(tmp_path / "auth.json", '{"a": 1}')
    monkeypatch.setattr(authfile, "set_entry", lambda *args: '{"a": 2}')
    assert store_keys(path, HOST, *pair()).rewritten
    assert json.loads(path.read_text())["a"] == 1


@pytest.mark.parametrize("text", [
    OTHERS,
    '{}',
    '{ }',
    '{\n}\n',
    '{"http-basic": {  }, "z": 0}',
    '  {"http-basic" : { "x" : {"username":"u","password":"p"} } }  ',
    ('{"a":[{"b":{}}],"http-basic":{"repo.magento.com":{"username":"1","password":"2",'
     '"extra":[true,false,null,-1.5e3]}}}'),
    '{\n  "http-basic": {\n    "repo.magento.com": "oops"\n  }\n}',
    ('{"k\\"ey": "v\\\\", "http-basic": {"repo\\u002emagento.com": {"username": "u", '
     '"password": "p"}}}'),
])
def test_editor_keeps_everything_else(tmp_path, text):
    keys = pair()
    path = make(tmp_path / "auth.json", text)
    result = store_keys(path, HOST, *keys)
    assert not result.rewritten
    new = path.read_text()
    data = json.loads(new)
    old = json.loads(text)
    assert data["http-basic"][HOST] == {"username": keys[0], "password": keys[1]}
    old_basic = old.get("http-basic", {})
    assert {k: v for k, v in data["http-basic"].items() if k != HOST} == \
        {k: v for k, v in old_basic.items() if k != HOST}
    assert {k: v for k, v in data.items() if k != "http-basic"} == \
        {k: v for k, v in old.items() if k != "http-basic"}
    # Every byte outside the changed span is kept: the old text is a prefix + suffix of the new.
    prefix = os.path.commonprefix([text, new])
    suffix = os.path.commonprefix([text[::-1], new[::-1]])
    assert len(prefix) + len(suffix) >= len(text) - len(_changed_span(text))


def _changed_span(text):
    """The old entry's text (or "" for an insert), found by parsing."""
    root = parse_spans(text)
    basic = last_member(root, "http-basic") if root.kind == "object" else None
    if basic is None:
        # Inserting into an empty object replaces the whitespace inside its braces.
        return "" if root.members else text[root.start + 1:root.end - 1]
    if basic.kind != "object":
        return text[basic.start:basic.end]
    entry = last_member(basic, HOST)
    if entry is None:
        return "" if basic.members else text[basic.start + 1:basic.end - 1]
    return text[entry.start:entry.end]
