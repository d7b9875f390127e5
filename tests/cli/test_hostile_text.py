"""Control characters from a feed (type, version, name, file name) never reach the terminal raw: every table,
line and message shows them escaped (issue 13). JSON keeps the values exact (JSON escapes them itself)."""

import copy
import json

import pytest
from clirun import run

from magedl.server import MemoryStore

ESC = "\x1b"
EVIL_TYPE = "ce-full\x1b[31m"
EVIL_VERSION = "2.4.7\x07"
EVIL_NAME = "Evil \x1b]0;owned\x07 release\x1b[2J"
EVIL_FILE = "Magento-CE-2.4.7\x1b[8m.zip"


@pytest.fixture
def hostile(make_emulator, demo, monkeypatch):
    feed, files = copy.deepcopy(demo[0]), dict(demo[1])
    entry = dict(feed["ce-full"]["2.4.7"][0], name=EVIL_NAME)
    odd = dict(feed["ce-full"]["2.4.7"][1], name=EVIL_NAME, file_name=EVIL_FILE)
    feed[EVIL_TYPE] = {EVIL_VERSION: [entry, odd]}
    files[EVIL_FILE] = files["Magento-CE-2.4.7.zip"]
    emulator = make_emulator(store=MemoryStore(feed, files))
    monkeypatch.setenv("MAGEDL_BASE_URL", emulator.base_url)
    monkeypatch.setenv("MAGEDL_MAGEID", emulator.mageid)
    monkeypatch.setenv("MAGEDL_TOKEN", emulator.token)
    return emulator


@pytest.mark.parametrize("argv", [
    ["list"], ["list", "--type", EVIL_TYPE], ["versions"], ["versions", "--type", EVIL_TYPE],
    ["get", EVIL_FILE, "-o", "{tmp}"], ["list", "--type", "ce-fulll"], ["-v", "list", "--type", EVIL_TYPE],
])
def test_no_raw_control_character_reaches_the_terminal(hostile, capsys, tmp_path, argv):
    code, out, err = run(capsys, *[a.replace("{tmp}", str(tmp_path)) for a in argv])
    assert ESC not in out and "\x07" not in out, out
    assert ESC not in err and "\x07" not in err, err
    assert "internal error" not in err


def test_the_escaped_values_are_still_shown(hostile, capsys):
    code, out, err = run(capsys, "list", "--type", EVIL_TYPE)
    assert code == 0
    assert "ce-full\\x1b[31m" in out and "2.4.7\\x07" in out and "Evil \\x1b]0;owned\\x07 release" in out


def test_json_keeps_the_exact_values(hostile, capsys):
    code, out, err = run(capsys, "--json", "list", "--type", EVIL_TYPE)
    rows = json.loads(out)
    assert {r["name"] for r in rows} == {EVIL_NAME} and ESC not in out  # escaped by JSON, exact once parsed
