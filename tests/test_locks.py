"""locks.FileLock: one exclusive lock for a file's download and for a whole mirror."""

import json
import os
import subprocess
import sys

import pytest

from magedl.errors import BusyError
from magedl.locks import FileLock


def test_a_second_holder_is_refused_with_the_message(tmp_path):
    path = tmp_path / "x.magedl-lock"
    with FileLock(path, "busy: {holder}"):
        with pytest.raises(BusyError) as info:
            with FileLock(path, "busy: {holder}"):
                pass
    assert str(info.value) == "busy: another process"
    assert not path.exists()  # a per-file lock is removed on release


def test_a_kept_lock_says_who_holds_it_and_stays(tmp_path):
    path = tmp_path / "lock"
    with FileLock(path, "mirror busy ({holder})", keep=True):
        held = json.loads(path.read_text())
        assert held["pid"] == os.getpid()
        with pytest.raises(BusyError) as info:
            with FileLock(path, "mirror busy ({holder})", keep=True):
                pass
    assert f"pid {os.getpid()} on " in str(info.value)
    assert path.exists() and path.read_text() == ""


def test_a_lock_of_a_killed_process_does_not_block(tmp_path):
    path = tmp_path / "lock"
    code = ("import sys, os; from magedl.locks import FileLock\n"
            "l = FileLock(sys.argv[1], 'x', keep=True); l.__enter__(); os._exit(0)")
    subprocess.run([sys.executable, "-c", code, str(path)], check=True)  # dies holding it
    with FileLock(path, "x", keep=True):
        pass


def test_a_planted_link_is_refused_never_followed(tmp_path):
    victim = tmp_path / "victim"
    victim.write_text("precious")
    (tmp_path / "lock").symlink_to(victim)
    with pytest.raises(OSError):
        with FileLock(tmp_path / "lock", "x", keep=True):
            pass
    assert victim.read_text() == "precious"


def test_stale_locks_names_the_locks_nobody_holds_and_what_is_only_named_like_one(tmp_path):
    """What ``doctor`` reports of a folder's locks, asked of the module that owns them (issue 23)."""
    from magedl.locks import StaleLock, stale_locks

    (tmp_path / "b.zip.magedl-lock").write_text("")  # a killed run's
    os.mkfifo(tmp_path / "a.zip.magedl-lock")
    (tmp_path / "c.zip").write_text("")
    with FileLock(tmp_path / "held.zip.magedl-lock", "busy"):
        found = stale_locks(tmp_path)
    assert found == [StaleLock("a.zip.magedl-lock", regular=False), StaleLock("b.zip.magedl-lock", regular=True)]
    assert stale_locks(tmp_path / "missing") == []
