"""Finished files are synced per filesystem before they are renamed, never renamed when that failed (issue 17, 4).

A batch may span filesystems (a sub-folder of the target that is a mount
point): one ``syncfs`` covers only its own. The tests mount a tmpfs inside
the target (root only; skipped with the reason otherwise) and record which
syncs ran on which filesystem.
"""

import errno
import os
import subprocess

import pytest

from magedl.transfer import commit as commitlib


@pytest.fixture
def mounted(tmp_path):
    """``tmp_path/mnt``, a tmpfs of its own inside the target folder."""
    mount = tmp_path / "mnt"
    mount.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root; test_speed.py covers one filesystem")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=4m", "tmpfs", str(mount)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode(errors='replace').strip()}")
    assert os.stat(mount).st_dev != os.stat(tmp_path).st_dev
    yield mount
    subprocess.run(["umount", "-l", str(mount)], capture_output=True)


def partial(folder, name, data=b"x" * 5000):
    part, dest = folder / f"{name}.magedl-part", folder / name
    fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
    os.write(fd, data)
    return fd, part, dest


@pytest.fixture
def syncs(monkeypatch):
    """Every sync the committer makes: ``("syncfs", st_dev)`` or ``("fdatasync", path-of-fd)``."""
    made, real_fdatasync = [], os.fdatasync

    def syncfs(fd):
        made.append(("syncfs", os.fstat(fd).st_dev))
        return True

    def fdatasync(fd):
        made.append(("fdatasync", os.readlink(f"/proc/self/fd/{fd}")))
        real_fdatasync(fd)

    monkeypatch.setattr(commitlib, "_syncfs", syncfs)
    monkeypatch.setattr(commitlib.os, "fdatasync", fdatasync)
    return made


def commit_all(files):
    """Commit *files* as one batch (what the committer's thread does); ``{dest: error}``."""
    batch = [commitlib._Handover(fd, part, dest, None) for fd, part, dest in files]
    commitlib._apply(batch)
    return {h.dest: h.error for h in batch}


def test_a_batch_spanning_two_filesystems_is_synced_on_each(tmp_path, mounted, syncs):
    files = [partial(tmp_path, f"a{i}.zip") for i in range(3)] + [partial(mounted, "b.zip")]
    settled = commit_all(files)
    assert all(error is None for error in settled.values()) and len(settled) == 4
    # One syncfs for the three on the target's filesystem; the lone file on the tmpfs syncs itself.
    assert ("syncfs", os.stat(tmp_path).st_dev) in syncs
    assert ("fdatasync", str(mounted / "b.zip.magedl-part")) in syncs
    assert len(syncs) == 2
    assert all(dest.exists() for _, _, dest in files)


def test_a_file_whose_sync_failed_on_another_filesystem_keeps_its_partial_name(tmp_path, mounted, syncs,
                                                                                 monkeypatch):
    files = [partial(tmp_path, f"a{i}.zip") for i in range(2)] + [partial(mounted, "b.zip")]
    failing = str(mounted / "b.zip.magedl-part")
    recording = commitlib.os.fdatasync

    def fdatasync(fd):
        recording(fd)
        if os.readlink(f"/proc/self/fd/{fd}") == failing:
            raise OSError(errno.EIO, "injected writeback error")

    monkeypatch.setattr(commitlib.os, "fdatasync", fdatasync)
    settled = commit_all(files)
    assert isinstance(settled[mounted / "b.zip"], OSError)
    assert not (mounted / "b.zip").exists() and (mounted / "b.zip.magedl-part").exists()
    assert all(settled[tmp_path / f"a{i}.zip"] is None and (tmp_path / f"a{i}.zip").exists() for i in range(2))


def test_when_syncfs_fails_each_file_is_synced_and_only_the_failed_one_stays(tmp_path, monkeypatch):
    files = [partial(tmp_path, f"a{i}.zip") for i in range(3)]
    monkeypatch.setattr(commitlib, "_syncfs", lambda fd: False)
    real_fdatasync = os.fdatasync

    def fdatasync(fd):
        if os.readlink(f"/proc/self/fd/{fd}").endswith("a1.zip.magedl-part"):
            raise OSError(errno.EIO, "injected writeback error")
        real_fdatasync(fd)

    monkeypatch.setattr(commitlib.os, "fdatasync", fdatasync)
    settled = commit_all(files)
    assert [dest.name for dest, error in sorted(settled.items()) if error is not None] == ["a1.zip"]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a0.zip", "a1.zip.magedl-part", "a2.zip"]


@pytest.mark.parametrize("release, trusted", [("5.4.0-150-generic", False), ("5.8.0", True), ("6.1.0-18-amd64", True),
                                              ("4.19.0", False), ("weird", False)])
def test_syncfs_is_trusted_only_where_it_reports_writeback_errors(monkeypatch, release, trusted):
    monkeypatch.setattr(commitlib.platform, "system", lambda: "Linux")
    monkeypatch.setattr(commitlib.platform, "release", lambda: release)
    assert commitlib._syncfs_reports_errors() is trusted
