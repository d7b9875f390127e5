"""What a person sees on a real terminal: tables that never wrap a name or an md5, one progress line that
never collides with messages or stdout, progress even on a terminal that reports 0 columns, binary units.

Each test runs ``python -m magedl`` on a pseudo-terminal of a given width and
replays the output the way a terminal would (see ``conftest.screen``).
"""

import json

import pytest
from clirun import run

BIG = "Magento-CE-2.4.7.tar.gz"
SAMPLE = "Magento-CE-2.4.7_sample_data.tar.gz"


@pytest.mark.parametrize("columns", [80, 110, 140])
def test_list_never_wraps_a_file_name_or_an_md5(env, capsys, cli_env, pty_magedl, columns):
    code, out, _ = run(capsys, "--json", "list")
    releases = json.loads(out)
    code, lines, wrapped, raw = pty_magedl("list", env=cli_env(env), columns=columns)
    assert code == 0
    assert wrapped == [], f"lines wider than {columns} columns"
    for r in releases:
        # Whole, on one line, so a double-click copies it into 'magedl get'.
        assert any(r["file_name"] in line.split() for line in lines), r["file_name"]
        if r["md5"]:
            assert any(r["md5"] in line.split() for line in lines), r["md5"]
    if columns == 140:
        assert lines[0].split()[:4] == ["TYPE", "VERSION", "FILE", "NAME"]  # side by side when it fits


def test_list_in_a_pipe_is_never_shortened(env, capsys, monkeypatch):
    monkeypatch.setenv("COLUMNS", "60")
    code, out, _ = run(capsys, "list")
    code, js, _ = run(capsys, "--json", "list")
    longest = max(json.loads(js), key=lambda r: len(r["name"]))
    assert any(longest["name"] in line for line in out.splitlines())  # nothing cut for awk


def test_progress_messages_and_paths_never_collide(env, cli_env, pty_magedl, tmp_path):
    env.set_faults(rate=2 << 20)
    code, lines, wrapped, raw = pty_magedl("get", "--type", "ce-full", "--version", "2.4.7", "--format", "tar.gz",
                                           "-o", str(tmp_path), env=cli_env(env), columns=80)
    assert code == 0, raw
    paths = [str((tmp_path / name).resolve()) for name in (BIG, SAMPLE)]
    assert [w for w in wrapped if not any(p.startswith(w) for p in paths)] == []  # paths are data: as long as they are
    assert "\r" in raw and "files" in raw  # an overall status line was drawn, in place
    # Every line on the screen is whole: a message, or a path, never a bar glued to either.
    for line in lines:
        assert line.startswith("magedl: ") or line in paths, repr(line)
    assert [line for line in lines if line in paths] == paths  # catalogue order
    assert any(line.startswith(f"magedl: {SAMPLE}: fetched") for line in lines)


def test_a_terminal_of_zero_columns_still_shows_progress(env, cli_env, pty_magedl, tmp_path):
    code, lines, wrapped, raw = pty_magedl("get", BIG, "-o", str(tmp_path), env=cli_env(env), columns=0)
    assert code == 0, raw
    assert f"\r{BIG}" in raw  # the status line, drawn for an 80-column fallback
    assert any(line.startswith(f"magedl: {BIG}: fetched") for line in lines)


def test_one_unit_system_binary(env, cli_env, pty_magedl, tmp_path, capsys):
    code, lines, wrapped, raw = pty_magedl("get", BIG, "-o", str(tmp_path / "a"), env=cli_env(env), columns=100)
    assert code == 0
    assert "iB" in raw
    for decimal in ("MB/s", "kB/s", " MB", " kB"):
        assert decimal not in raw
    code, _, err = run(capsys, "get", BIG, "-o", str(tmp_path / "b"))
    assert "KiB" in err or "MiB" in err
    assert " MB" not in err and " kB" not in err


def test_quiet_draws_no_bar_only_the_paths(env, cli_env, pty_magedl, tmp_path):
    code, lines, wrapped, raw = pty_magedl("-q", "get", BIG, "-o", str(tmp_path), env=cli_env(env), columns=80)
    assert code == 0, raw
    assert "\r" not in raw.replace("\r\n", "\n")
    assert lines == [str((tmp_path / BIG).resolve())]


def test_mirror_leaves_no_bar_fragments(env, cli_env, pty_magedl, tmp_path):
    env.set_faults(rate=2 << 20)
    code, lines, wrapped, raw = pty_magedl("mirror", str(tmp_path / "m"), "--type", "ce-full", "--version", "2.4.7",
                                           env=cli_env(env), columns=80)
    assert code == 0, raw
    assert "\r" in raw.replace("\r\n", "\n")  # a bar was drawn
    assert all(w.startswith("magedl: ") for w in wrapped)  # long messages wrap; a bar never does
    for line in lines:
        assert line.startswith("magedl: "), repr(line)
    assert sum(": fetched" in line for line in lines) == 4


def test_verify_draws_its_bar_and_prints_whole_lines(env, capsys, cli_env, pty_magedl, tmp_path):
    mirror = tmp_path / "m"
    assert run(capsys, "mirror", str(mirror), "--type", "ce-full", "--version", "2.4.7")[0] == 0
    code, lines, wrapped, raw = pty_magedl("verify", str(mirror), env=cli_env(env), columns=80)
    assert code == 0, raw
    assert "\rverifying " in raw
    assert all(w.startswith("magedl: ") for w in wrapped)  # long messages wrap; a bar never does
    for line in lines:
        assert line.startswith("magedl: ") or line.endswith(": OK"), repr(line)


def test_rich_draws_the_table_on_a_terminal(env, cli_env, pty_magedl):
    code, lines, wrapped, raw = pty_magedl("list", env=cli_env(env), columns=140)
    assert code == 0
    assert set(lines[1]) == {"\u2500"}  # the rule rich draws under the header


# Imports rich and tqdm would cost every command; they are made only when a table or a bar is drawn.
PROBE = """import sys
from magedl.cli import main
try:
    main(sys.argv[1:])
except SystemExit:
    pass
print("loaded:", [m for m in ("rich", "tqdm") if m in sys.modules], file=sys.stderr)
"""


@pytest.mark.parametrize("argv", [["--help"], ["list"], ["get", BIG]])
def test_rich_and_tqdm_are_not_imported_in_a_pipe(env, cli_env, tmp_path, argv):
    import subprocess
    import sys

    done = subprocess.run([sys.executable, "-c", PROBE, *argv], env=cli_env(env), cwd=tmp_path,
                          stdin=subprocess.DEVNULL, capture_output=True, text=True, timeout=60)
    assert "loaded: []" in done.stderr, done.stderr


def _demo_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "scripts" / "demo.py"
    spec = importlib.util.spec_from_file_location("magedl_demo_script", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class _Stream:
    def __init__(self, tty):
        self.tty = tty

    def isatty(self):
        return self.tty


@pytest.mark.parametrize("tty, environ, expected", [
    (True, {"TERM": "xterm"}, True),
    (False, {"TERM": "xterm"}, False),          # make demo > log
    (True, {"TERM": "xterm", "NO_COLOR": "1"}, False),
    (True, {"TERM": "dumb"}, False),
])
def test_the_demo_styles_headings_only_on_a_terminal_that_takes_them(tty, environ, expected):
    assert _demo_script().styled(_Stream(tty), environ) is expected


def test_the_demo_writes_no_escape_sequence_into_a_file(capsys, monkeypatch):
    demo = _demo_script()
    monkeypatch.delenv("NO_COLOR", raising=False)
    demo.banner("a heading")
    assert capsys.readouterr().out == "\n== a heading\n"


@pytest.mark.parametrize("term, expected", [("xterm-256color", "bar"), ("dumb", "lines")])
def test_a_dumb_terminal_gets_plain_progress_lines(monkeypatch, term, expected):
    import argparse
    import sys

    from magedl.cli.common import progress_mode

    monkeypatch.setenv("TERM", term)
    monkeypatch.setattr(sys, "stderr", _Stream(True))
    assert progress_mode(argparse.Namespace(quiet=False)) == expected
