"""The delta survives a run killed between its index writes and the commit that notes what they changed.

The kill is ``os._exit`` in a real ``python -m magedl``-like child, at the call that would note the changes
(no ``finally``, no close, nothing saved): the mechanism, never a timing.
"""

import hashlib
import os
import subprocess
import sys

import pytest
from clirun import run
from sshkit import make_key, needs_ssh_keygen

from magedl.mirror import core
from magedl.mirror.layout import SUMS_FOUND
from magedl.mirror.state import State
from magedl.service.catalog import parse_feed

PATCH = "patches/MDVA-43395_CE_2.4.6_v1.sh"
SEL = ("--type", "ce-patch")
INDEX = {"info/json", "info/files", "info/versions", "index.html", "SHA256SUMS"}

# The child: magedl's command line, killed where the run would note what its index writes changed.
CHILD = """
import os, sys
import magedl.mirror.core as core
if sys.argv[1] == "no-links":  # a filesystem without hard links: the copy is kept instead
    def refuse(*args, **kwargs):
        raise PermissionError(1, "Operation not permitted")
    os.link = refuse
core.note_changes = lambda *args, **kwargs: os._exit(9)
from magedl import cli
sys.exit(cli.main(["--retry-wait", "0", "mirror", *sys.argv[2:]]))
"""


@pytest.fixture
def mdir(tmp_path):
    return tmp_path / "mirror"


def killed_run(emulator, mdir, *argv, links=True):
    """``magedl mirror MDIR ARGV...`` killed (``os._exit``) at the call that notes its index changes."""
    env = dict(os.environ, MAGEDL_BASE_URL=emulator.base_url, MAGEDL_MAGEID=emulator.mageid,
               MAGEDL_TOKEN=emulator.token)
    proc = subprocess.run([sys.executable, "-c", CHILD, "links" if links else "no-links", str(mdir), *argv],
                          env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 9, proc.stderr  # killed there, not finished nor failed before
    return proc


def delta_of_next_run(capsys, mdir, tmp_path, *argv):
    diff = tmp_path / "delta.txt"
    code, _, err = run(capsys, "mirror", str(mdir), *argv, "--diff-file", str(diff))
    assert code == 0, err
    return set(diff.read_text().splitlines())


def sums(mdir):
    return dict(reversed(line.split("  ", 1)) for line in (mdir / "SHA256SUMS").read_text().splitlines())


@pytest.mark.parametrize("links", [True, False], ids=["hard-link", "copy"])
def test_a_run_killed_after_replacing_sha256sums_leaves_its_index_changes_to_the_next_delta(
        env, capsys, mdir, tmp_path, links):
    assert run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(tmp_path / "first.txt"))[0] == 0
    found = (mdir / "SHA256SUMS").read_bytes()
    env.store.replace(PATCH, b"#!/bin/bash\necho republished\n")
    killed_run(env, mdir, *SEL, links=links)
    assert sums(mdir)[f"file/{PATCH}"] == hashlib.sha256(env.store.data(PATCH)).hexdigest()  # renamed in
    assert (mdir / SUMS_FOUND).read_bytes() == found  # what it found, kept in the bookkeeping
    # The next run changes nothing, so only what the killed run kept can tell what its index writes changed.
    assert delta_of_next_run(capsys, mdir, tmp_path, *SEL) == {f"file/{PATCH}", "info/json", "info/files",
                                                               "index.html", "SHA256SUMS"}
    assert not (mdir / SUMS_FOUND).exists()
    assert delta_of_next_run(capsys, mdir, tmp_path, *SEL) == set()  # handed over once


def test_a_cold_run_killed_there_hands_every_file_and_index_to_the_next_delta(env, capsys, mdir, tmp_path):
    killed_run(env, mdir, *SEL)
    assert (mdir / SUMS_FOUND).read_bytes() == b""  # there was no SHA256SUMS: nothing before
    patches = {f"file/{r.file_name}" for r in parse_feed(env.store.feed()) if r.type == "ce-patch"}
    assert delta_of_next_run(capsys, mdir, tmp_path, *SEL) == patches | INDEX
    assert not (mdir / SUMS_FOUND).exists()


def test_runs_that_end_leave_no_kept_copy_and_one_that_changes_nothing_keeps_none(env, capsys, mdir):
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    assert not (mdir / SUMS_FOUND).exists() and (mdir / "SHA256SUMS").stat().st_nlink == 1
    before = (mdir / "SHA256SUMS").stat()
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    assert not (mdir / SUMS_FOUND).exists()
    after = (mdir / "SHA256SUMS").stat()  # not even given a second name for a while (that changes its ctime)
    assert (after.st_ino, after.st_ctime_ns, after.st_nlink) == (before.st_ino, before.st_ctime_ns, 1)


def test_a_run_that_fails_before_noting_its_changes_still_lists_them_in_its_own_delta_file(
        env, capsys, mdir, tmp_path, monkeypatch):
    assert run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(tmp_path / "first.txt"))[0] == 0
    env.store.replace(PATCH, b"#!/bin/bash\necho republished\n")

    def fails(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(core, "note_changes", fails)
    diff = tmp_path / "delta.txt"
    code, _, err = run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(diff))
    assert code != 0 and "Traceback" not in err
    assert set(diff.read_text().splitlines()) == {f"file/{PATCH}", "info/json", "info/files", "index.html",
                                                  "SHA256SUMS"}
    assert not (mdir / SUMS_FOUND).exists()


def test_a_folder_where_the_kept_file_goes_is_a_one_line_error(env, capsys, mdir):
    assert run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(mdir.parent / "first.txt"))[0] == 0
    (mdir / SUMS_FOUND).mkdir()
    code, _, err = run(capsys, "mirror", str(mdir), *SEL)
    assert code == 1 and "Traceback" not in err
    assert f"{mdir / SUMS_FOUND}: not a file, where magedl keeps its own file; move it out of the way" in err
    (mdir / SUMS_FOUND).rmdir()
    diff = mdir.parent / "delta.txt"
    assert run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(diff))[0] == 0
    assert diff.read_text() == ""  # the folder was never read as "nothing before": no path was noted


def test_a_copy_that_cannot_be_synced_yet_stays_for_the_next_run(env, capsys, mdir, tmp_path, monkeypatch):
    assert run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(tmp_path / "first.txt"))[0] == 0
    env.store.replace(PATCH, b"#!/bin/bash\necho republished\n")
    with monkeypatch.context() as patched:
        patched.setattr(State, "sync", lambda self: False)  # a reader holds the database
        assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    assert (mdir / SUMS_FOUND).exists()
    assert delta_of_next_run(capsys, mdir, tmp_path, *SEL) == {f"file/{PATCH}", "info/json", "info/files",
                                                               "index.html", "SHA256SUMS"}
    assert not (mdir / SUMS_FOUND).exists()


@needs_ssh_keygen
def test_a_signature_a_killed_run_left_stale_is_removed_with_a_warning(env, capsys, mdir, tmp_path):
    """Killed after it replaced SHA256SUMS and before it signed or removed the old signature: the next
    run, which changes nothing itself, removes the signature that no longer matches, and says so."""
    key = make_key(tmp_path / "keys", "ops@example.com")
    assert run(capsys, "mirror", str(mdir), *SEL, "--sign-key", str(key))[0] == 0
    env.store.replace(PATCH, b"#!/bin/bash\necho republished\n")
    killed_run(env, mdir, *SEL)
    code, _, err = run(capsys, "mirror", str(mdir), *SEL)
    assert code == 0, err
    assert not (mdir / "SHA256SUMS.sig").exists()
    assert "SHA256SUMS changed, so its old signature was removed" in err


@needs_ssh_keygen
def test_a_signature_made_after_the_kill_is_kept(env, capsys, mdir, tmp_path):
    """The operator signed the index as the killed run left it: the next run's note of what that run changed
    does not take the signature for a stale one (no pages here: a page names the signature, so a run
    after `sign` renders it again, which changes the index)."""
    key, sel = make_key(tmp_path / "keys", "ops@example.com"), (*SEL, "--no-html")
    assert run(capsys, "mirror", str(mdir), *sel, "--sign-key", str(key))[0] == 0
    env.store.replace(PATCH, b"#!/bin/bash\necho republished\n")
    killed_run(env, mdir, *sel)
    assert run(capsys, "sign", str(mdir), "--key", str(key))[0] == 0
    signed = (mdir / "SHA256SUMS.sig").read_bytes()
    code, _, err = run(capsys, "mirror", str(mdir), *sel)
    assert code == 0 and "signature was removed" not in err
    assert (mdir / "SHA256SUMS.sig").read_bytes() == signed
