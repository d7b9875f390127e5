"""The terminal owner and its tqdm bar, in-process: layout, book-keeping, lines written above the bar.

A fake terminal (a StringIO that says it is a TTY) records what would be
drawn; ``replay`` (conftest) turns it into the screen a person sees.
"""

import fcntl
import io
import os
import re
import struct
import termios

import pytest

from magedl.cli import progress
from magedl.cli.output import terminal_width
from magedl.cli.progress import ByteBar, ProgressView, Terminal, _layout, terminal
from magedl.transfer.one_file import Progress

BIG = "Magento-CE-2.4.7.tar.gz"
FIGURES = ["381.5/573.5 KiB", "2.9 MiB/s", "ETA 00:00"]


class Tty(io.StringIO):
    def isatty(self):
        return True


@pytest.fixture
def tty(monkeypatch):
    """The process's terminal owner drawing on a fake terminal 60 columns wide; the fake terminal."""
    stream = Tty()
    monkeypatch.setenv("COLUMNS", "60")
    monkeypatch.setattr(progress, "_TERMINAL", Terminal(stream))
    yield stream
    terminal().close_bar()


def drawn(raw):
    """Every state of the bar line: the text between a carriage return and an erase-to-end-of-line."""
    return [text for text in re.findall(r"\r([^\r\n]*)\x1b\[K", raw) if text]


# -- how a line is spent ------------------------------------------------------------------


def test_a_single_files_name_stays_whole_with_the_bar_when_it_fits():
    assert _layout("", BIG, True, FIGURES, 79) == (BIG, True, 3)


def test_the_bar_goes_first_then_the_eta_then_the_rate():
    assert _layout("", BIG, True, FIGURES, 60) == (BIG, False, 2)  # no bar, no ETA, the name whole
    assert _layout("", BIG, True, FIGURES, 48) == (BIG, False, 1)


def test_then_the_name_loses_its_start_not_its_version():
    name, bar, keep = _layout("", BIG, True, FIGURES, 39)
    assert (bar, keep) == (False, 1)
    assert name.startswith("\u2026") and name.endswith("2.4.7.tar.gz") and len(name) == 39 - 5 - 16


def test_behind_a_file_count_the_name_only_gets_what_is_left():
    name, bar, keep = _layout("1/2 files:", BIG + " +1", True, FIGURES, 79)
    assert bar and keep == 3 and name.startswith("\u2026") and name.endswith(".tar.gz +1")
    assert _layout("1/2 files:", BIG, True, FIGURES, 60)[0] == ""  # too little room: count and figures only


def test_unknown_size_has_no_bar_nor_eta():
    assert _layout("", BIG, False, ["1.5 MiB", "1.0 MiB/s"], 79) == (BIG, False, 2)


# -- one owner of the terminal ------------------------------------------------------------


def test_lines_and_data_land_whole_above_the_bar_and_no_fragment_stays(tty, replay):
    view = ProgressView("bar", files=2)
    view(Progress(BIG, 0, 600 << 10, event="start"))
    view(Progress(BIG, 300 << 10, 600 << 10))
    terminal().message("magedl: a message while the bar is drawn")
    terminal().data(tty, "/data/a path on stdout")
    view(Progress(BIG, 600 << 10, 600 << 10, event="done"))
    view.close()
    raw = tty.getvalue()
    lines, wrapped = replay(raw, 60)
    assert lines == ["magedl: a message while the bar is drawn", "/data/a path on stdout"]
    assert wrapped == []
    states = drawn(raw)
    assert any(s.startswith("0/2 files:") for s in states) and any(s.startswith("1/2 files:") for s in states)
    assert max(len(s) for s in states) <= 59  # never into the last column
    assert any("600.0/600.0 KiB" in s for s in states)  # binary units, one unit when both share it
    assert not re.search(r"[0-9.]+ ?[kMG]B", raw)


def test_data_on_a_pipe_does_not_lift_the_bar(tty):
    pipe = io.StringIO()
    ProgressView("bar")(Progress(BIG, 0, 100, event="start"))
    before = tty.getvalue()
    terminal().data(pipe, "/data/x")
    assert pipe.getvalue() == "/data/x\n" and tty.getvalue() == before


def test_resumed_bytes_are_shown_but_are_not_a_speed(tty):
    view = ProgressView("bar")
    view(Progress(BIG, 900, 1000, resumed_from=900, event="start"))
    bar = terminal().bar
    assert (bar.n, bar.initial, bar.total) == (900, 900, 1000)
    view(Progress(BIG, 950, 1000))
    assert bar.n - bar.initial == 50  # what tqdm's average rate is computed from
    view(Progress(BIG, 0, 1000, event="restart"))
    assert bar.n == 0
    view(Progress(BIG, 1000, 1000, event="done"))
    assert bar.n == 1000


def test_files_already_present_draw_no_bar(tty):
    view = ProgressView("bar", files=2)
    view(Progress(BIG, 10, 10, event="skip"))
    view.close()
    assert tty.getvalue() == "" and terminal().bar is None


def test_quiet_draws_nothing(tty):
    view = ProgressView("none", files=1)
    view(Progress(BIG, 0, 10, event="start"))
    view.close()
    assert tty.getvalue() == ""


def test_byte_bar_draws_and_removes_itself(tty, replay):
    bar = ByteBar("bar", "verifying")
    bar(0, 4 << 20)
    bar(4 << 20, 4 << 20)
    bar.close()
    assert any(s.startswith("verifying 100%") and "4.0/4.0 MiB" in s for s in drawn(tty.getvalue()))
    assert replay(tty.getvalue(), 60)[0] == []


def test_a_terminal_reporting_zero_columns_is_taken_as_80(monkeypatch):
    monkeypatch.delenv("COLUMNS", raising=False)
    master, slave = os.openpty()
    try:
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 0, 0, 0))
        with open(slave, "w", closefd=False) as stream:
            assert terminal_width(stream) == 80
            assert Terminal(stream).width() == 80
    finally:
        os.close(master)
        os.close(slave)


def test_tqdm_variables_cannot_hide_the_bar_or_leave_it_behind(tty, replay, monkeypatch):
    monkeypatch.setenv("TQDM_DISABLE", "1")
    monkeypatch.setenv("TQDM_DELAY", "30")
    monkeypatch.setenv("TQDM_LEAVE", "1")
    view = ProgressView("bar")
    view(Progress(BIG, 0, 100, event="start"))
    view(Progress(BIG, 100, 100, event="done"))
    view.close()
    assert any(s.startswith(BIG) for s in drawn(tty.getvalue()))
    assert replay(tty.getvalue(), 60)[0] == []


def test_urllib3s_own_warnings_never_reach_the_terminal_raw():
    # "Connection pool is full, discarding connection" once broke a progress line under load: it went up
    # to the root logger, whose handler (or Python's last-resort one) prints it raw on stderr.
    import logging

    from magedl.cli.progress import setup_logging

    seen = []
    catcher = logging.Handler()
    catcher.emit = seen.append
    logging.getLogger().addHandler(catcher)
    restore = setup_logging(0, False)
    try:
        logging.getLogger("urllib3.connectionpool").warning("Connection pool is full, discarding connection: x")
    finally:
        restore()
        logging.getLogger().removeHandler(catcher)
    assert seen == []
