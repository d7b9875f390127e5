"""Tables in-process: rich on a (fake) terminal of a given width, plain aligned columns in a pipe.

``replay`` (conftest) turns what was written into the screen a person sees.
"""

import io
import os
import re

import pytest

from magedl.cli.output import Column, SpilledRows, print_json, print_json_rows, print_table

COLUMNS = [Column("TYPE"), Column("VERSION"), Column("FILE NAME", whole=True), Column("MD5", whole=True),
           Column("DESCRIPTION", drop=1, shortest=16)]
ROWS = [
    ["ce-full", "2.4.7", "Magento-CE-2.4.7_sample_data.tar.gz", "d02091e4bf71ee90865789e0bf61e98b",
     "Magento Open Source 2.4.7 with Sample Data"],
    ["b2b-extension", "1.4.2", "Magento-B2B-1.4.2.zip", "2d17abce80cece55fb49b382bc9ebb33",
     "Adobe Commerce B2B 1.4.2"],
]
NATURAL = 13 + 7 + 35 + 32 + 42 + 4 * 3  # every column whole, rich's three-column gaps


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture(autouse=True)
def colour_terminal(monkeypatch):
    monkeypatch.setenv("TERM", "xterm-256color")
    for name in ("NO_COLOR", "FORCE_COLOR", "COLUMNS"):
        monkeypatch.delenv(name, raising=False)


def table(width, rows=ROWS, columns=COLUMNS):
    out = Tty()
    print_table(columns, rows, out, width=width)
    return out.getvalue()


def words(lines):
    return [w for line in lines for w in line.split()]


@pytest.mark.parametrize("width", [NATURAL + 10, NATURAL, NATURAL - 20, NATURAL - 40, 80, 60, 40])
def test_names_and_md5s_are_whole_at_every_width(replay, width):
    lines, wrapped = replay(table(width), width)
    assert wrapped == []
    for row in ROWS:
        assert row[2] in words(lines) and row[3] in words(lines)


def test_side_by_side_when_everything_fits(replay):
    raw = table(NATURAL)
    assert "\x1b[1m" in raw  # rich drew the header bold
    lines, _ = replay(raw, NATURAL)
    assert lines[0].split() == ["TYPE", "VERSION", "FILE", "NAME", "MD5", "DESCRIPTION"]
    assert set(lines[1]) == {"\u2500"}  # rich's rule under the header
    assert ROWS[0][4] in lines[2]


def test_the_droppable_column_is_shortened_then_dropped(replay):
    lines, _ = replay(table(NATURAL - 20), NATURAL - 20)
    assert lines[0].split()[-1] == "DESCRIPTION"
    assert lines[2].endswith(" Magento Open Source 2\u2026")  # 20 columns short: 42 - 20 characters
    lines, _ = replay(table(NATURAL - 40), NATURAL - 40)
    assert lines[0].split() == ["TYPE", "VERSION", "FILE", "NAME", "MD5"]


def test_blocks_when_even_the_whole_columns_do_not_stand_side_by_side(replay):
    lines, _ = replay(table(80), 80)
    assert lines[0].split() == [ROWS[0][2], ROWS[0][3]]
    assert lines[1].split()[:2] == ["ce-full", "2.4.7"]
    lines, _ = replay(table(60), 60)
    assert lines[:2] == [ROWS[0][2], "  " + ROWS[0][3]]  # one a line when even two do not fit


def test_no_trailing_blanks_on_a_copied_row(replay):
    raw = table(NATURAL + 10)
    for line in raw.splitlines():
        assert not re.sub(r"\x1b\[[0-9;]*m", "", line).endswith(" "), repr(line)


def test_feed_text_is_neither_markup_nor_raw_control_characters():
    rows = [["ce-full", "2.4.7", "[bold]x[/bold].zip", "-", "a \x1b[31mred\x1b[0m :smile: name"]]
    raw = table(140, rows)
    assert "[bold]x[/bold].zip" in raw and ":smile:" in raw
    assert "\x1b[31m" not in raw


def test_in_a_pipe_plain_aligned_and_never_cut():
    out = io.StringIO()
    print_table(COLUMNS, ROWS, out, width=40)  # a width means nothing in a pipe
    lines = out.getvalue().splitlines()
    assert "\x1b" not in out.getvalue()
    assert lines[0].split() == ["TYPE", "VERSION", "FILE", "NAME", "MD5", "DESCRIPTION"]
    assert lines[1].endswith(ROWS[0][4]) and lines[2].endswith(ROWS[1][4])
    assert lines[1].index(ROWS[0][2]) == lines[2].index(ROWS[1][2]) == lines[0].index("FILE NAME")


# -- mirror --json rows held on disk (issue 18) ------------------------------------


def test_spilled_rows_come_back_equal_in_key_order_and_print_as_print_json_prints_them(tmp_path):
    rows = [("file/b", {"file_name": "b", "size": 2, "md5": None, "ok": True}),
            ("composer/dist/x", {"name": "v/x", "advisories": [{"cve": "CVE-1"}], "size": 10 ** 20}),
            ("file/a", {"file_name": "ä \udcff \u2028 \"q\"\n", "size": -1.5}),  # escapes survive the round trip
            ("file/b", {"file_name": "b again"})]  # equal keys: in the order added
    out, expected = io.StringIO(), io.StringIO()
    with SpilledRows(tmp_path) as spilled:
        for key, row in rows:
            spilled.add(key, row)
        assert len(spilled) == 4 and os.listdir(tmp_path) == []  # an unnamed file
        back = list(spilled)
        print_json_rows(spilled, out)
    assert back == [rows[1][1], rows[2][1], rows[0][1], rows[3][1]]
    print_json(back, expected)
    assert out.getvalue() == expected.getvalue()
    assert os.listdir(tmp_path) == []


@pytest.mark.parametrize("at_once, batch", [(2, 3), (3, 2), (4, 4), (16384, 4096)])
def test_spilled_rows_sort_their_keys_as_str_does_in_runs_merged_ties_in_the_order_added(tmp_path, monkeypatch,
                                                                                         at_once, batch):
    from magedl.cli import output

    monkeypatch.setattr(output, "_SORTED_AT_ONCE", at_once)
    monkeypatch.setattr(output, "_BATCH", batch)
    keys = ["file/b", "file/\udcff", "file/é", "composer/dist/a", "file/a", "file/\U0001f600", "file/\uffff",
            "file/b", "file/a", "file/", "file/A"]
    with SpilledRows(tmp_path) as spilled:
        for i, key in enumerate(keys):
            spilled.add(key, {"key": key, "i": i})
        back = [(row["key"], row["i"]) for row in spilled]
    assert back == sorted(((key, i) for i, key in enumerate(keys)), key=lambda pair: pair[0])  # stable


def test_spilled_rows_make_no_file_until_a_row_comes_and_hold_no_row(tmp_path, monkeypatch):
    import tempfile

    made = []
    real = tempfile.TemporaryFile
    monkeypatch.setattr(tempfile, "TemporaryFile", lambda **kw: made.append(real(**kw)) or made[-1])
    out = io.StringIO()
    with SpilledRows(tmp_path) as spilled:
        print_json_rows(spilled, out)
        assert out.getvalue() == "[]\n" and made == []
        row = {"file_name": "x"}
        spilled.add("file/x", row)
        row["file_name"] = "changed after"  # the row's text was written as it was added
        assert [made[0].closed, list(spilled)] == [False, [{"file_name": "x"}]]
    assert made[0].closed


def test_a_spill_that_cannot_be_written_is_a_one_line_local_file_error(tmp_path, monkeypatch):
    import errno
    import tempfile

    from magedl.errors import LocalFileError

    def full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(tempfile, "TemporaryFile", full)
    with pytest.raises(LocalFileError) as info, SpilledRows(tmp_path) as rows:
        rows.add("file/a", {"path": "file/a"})
    assert str(info.value) == (f"{tmp_path}: cannot hold the --json rows there until they are printed (No space "
                               "left on device); free some space, or leave out --json")
