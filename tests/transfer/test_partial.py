"""The partial file and its sidecar (magedl.transfer.partial): what a later run may trust.

The sidecar is a file anyone with access to the folder may have edited, left
by an older magedl, or written by another tool: each such case is discarded
with an info line, never trusted, never a crash.
"""

import errno
import json
import logging
import os
import stat

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from magedl.errors import LocalFileError
from magedl.ranges import Validators
from magedl.text import human_bytes
from magedl.transfer import partial
from magedl.transfer.partial import FORMAT, PartialState, Sidecar
from magedl.transfer.segments import Segment

URL = "http://127.0.0.1:8080/file/a.tar.gz"
MD5 = "0" * 32


@pytest.fixture
def sidecar(tmp_path):
    return Sidecar(tmp_path / "a.tar.gz", "a.tar.gz")


def good_state(**changes):
    state = PartialState(MD5, URL, 100, Validators('"v1"', None), [Segment(0, 50, 50), Segment(50, 100, 10)], True)
    for name, value in changes.items():
        setattr(state, name, value)
    return state


def write(sidecar, doc=None, part=b"x" * 100, raw=None):
    sidecar.part.write_bytes(part)
    sidecar.path.write_bytes(raw if raw is not None else json.dumps(doc or good_state().to_json()).encode())


def test_nothing_on_disk_means_a_fresh_start(sidecar):
    assert sidecar.load(MD5, URL) is None


def test_a_saved_state_loads_back(sidecar):
    write(sidecar)
    state = sidecar.load(MD5, URL)
    assert state == good_state(resumed_from=60, joined=True)
    doc = json.loads(sidecar.path.read_text())
    assert doc["format"] == FORMAT == 1 and doc["tool"] == "magedl"


def test_save_syncs_the_data_before_recording_it_and_writes_0644(sidecar, monkeypatch):
    calls = []
    real_fdatasync, real_fsync = os.fdatasync, os.fsync
    monkeypatch.setattr(os, "fdatasync", lambda fd: calls.append("data") or real_fdatasync(fd))
    monkeypatch.setattr(os, "fsync", lambda fd: calls.append("sidecar") or real_fsync(fd))
    old = os.umask(0)  # a permissive umask must not widen the mode
    try:
        fd = sidecar.open(fresh=True)
        sidecar.save(good_state().to_json(), fd)
        os.close(fd)
    finally:
        os.umask(old)
    assert calls[:2] == ["data", "sidecar"]  # the bytes first, then the sidecar that counts them
    assert stat.S_IMODE(sidecar.path.stat().st_mode) == 0o644
    assert stat.S_IMODE(sidecar.part.stat().st_mode) == 0o644
    assert [p.name for p in sidecar.path.parent.iterdir() if "tmp" in p.name] == []


def unusable(sidecar, caplog, words):
    with caplog.at_level(logging.INFO, logger="magedl.transfer.partial"):
        assert sidecar.load(MD5, URL) is None
    assert words in caplog.text
    assert not sidecar.path.exists() and not sidecar.part.exists()


@pytest.mark.parametrize("raw, words", [
    (b"{not json", "corrupt"),
    (b"\xff\xfe\x00garbage", "corrupt"),
    (b"[1, 2, 3]", "corrupt"),
    (b"[" * 200_000 + b"]" * 200_000, "corrupt"),  # deeper than the JSON parser's recursion
    (b"", "corrupt"),
])
def test_a_corrupt_sidecar_is_discarded(sidecar, caplog, raw, words):
    write(sidecar, raw=raw)
    unusable(sidecar, caplog, words)


def test_a_sidecar_from_an_older_magedl_is_discarded(sidecar, caplog):
    doc = good_state().to_json()
    del doc["format"], doc["tool"], doc["splittable"]
    doc["max_workers"] = 4  # what the sidecars of earlier versions held
    write(sidecar, doc)
    unusable(sidecar, caplog, "older magedl")


@pytest.mark.parametrize("changes", [{"format": 2}, {"format": "1"}, {"tool": "aria2"}, {"format": True}])
def test_a_sidecar_from_a_newer_magedl_or_another_tool_is_discarded(sidecar, caplog, changes):
    write(sidecar, {**good_state().to_json(), **changes})
    unusable(sidecar, caplog, "another tool")


@pytest.mark.parametrize("changes", [
    {"size": "100"}, {"size": -1}, {"size": True}, {"size": 1.5e2}, {"md5": None}, {"url": 5},
    {"splittable": "yes"}, {"etag": 1}, {"segments": [[0, 100, 200]]}, {"segments": "all"},
    {"segments": [[0, 50, 50]]}, {"size": 10**30},
])
def test_a_sidecar_with_wrong_values_is_discarded(sidecar, caplog, changes):
    write(sidecar, {**good_state().to_json(), **changes})
    unusable(sidecar, caplog, "corrupt")


def test_a_sidecar_for_another_md5_is_discarded(sidecar, caplog):
    write(sidecar, good_state(md5="1" * 32).to_json())
    unusable(sidecar, caplog, "another version")


def test_a_partial_file_shorter_than_recorded_is_discarded(sidecar, caplog):
    write(sidecar, part=b"x" * 40)
    unusable(sidecar, caplog, "shorter")


def test_a_missing_partial_file_or_sidecar_is_discarded(sidecar, caplog):
    write(sidecar)
    sidecar.part.unlink()
    unusable(sidecar, caplog, "missing")
    sidecar.part.write_bytes(b"x" * 100)
    unusable(sidecar, caplog, "no usable sidecar")


def test_an_oversized_sidecar_is_not_read(sidecar, caplog):
    doc = json.dumps(good_state().to_json())
    write(sidecar, raw=doc[:-1].encode() + b" " * partial.SIDECAR_LIMIT + b"}")  # valid JSON, too big to trust
    unusable(sidecar, caplog, "no usable sidecar")


def test_a_hard_linked_partial_file_is_discarded_and_its_twin_untouched(sidecar, caplog, tmp_path):
    write(sidecar)
    twin = tmp_path / "someone-elses-file"
    os.link(sidecar.part, twin)
    unusable(sidecar, caplog, "not a plain file")
    assert twin.read_bytes() == b"x" * 100


def test_another_source_is_resumed_when_the_md5_vouches(sidecar):
    write(sidecar)
    state = sidecar.load(MD5, "https://mirror.example/file/a.tar.gz")
    # Another server's ETag would mean nothing: dropped; the final md5 check vouches.
    assert state.done == 60 and not state.validators and not state.strict
    assert state.url == "https://mirror.example/file/a.tar.gz"


def test_another_source_without_md5_must_show_the_same_validator(sidecar, caplog):
    write(sidecar, good_state(md5="").to_json())
    state = sidecar.load("", "https://mirror.example/file/a.tar.gz")
    assert state.strict and state.validators == Validators('"v1"', None)
    write(sidecar, good_state(md5="", validators=Validators()).to_json())
    with caplog.at_level(logging.INFO, logger="magedl.transfer.partial"):
        assert sidecar.load("", "https://mirror.example/file/a.tar.gz") is None
    assert "another source" in caplog.text and not sidecar.part.exists()


def test_the_sidecar_masks_credentials_of_a_url(sidecar):
    write(sidecar)
    state = sidecar.load(MD5, "https://user:s3cret@mirror.example/file/a.tar.gz")
    assert "s3cret" not in json.dumps(state.to_json())


def test_a_planted_link_is_refused_up_front(sidecar, tmp_path):
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    for path in (sidecar.lock_path, sidecar.part, sidecar.path):
        path.symlink_to(target)
        with pytest.raises(LocalFileError, match="symbolic link"):
            sidecar.refuse_links()
        path.unlink()
    assert target.read_bytes() == b"precious"


def test_open_refuses_a_link_planted_after_the_checks(sidecar, tmp_path):
    target = tmp_path / "victim"
    target.write_bytes(b"precious")
    sidecar.part.symlink_to(target)
    with pytest.raises(LocalFileError, match="symbolic link"):
        sidecar.open(fresh=False)
    assert target.read_bytes() == b"precious"


def test_check_space_refuses_with_the_figures(sidecar, monkeypatch):
    class Vfs:
        f_bavail, f_frsize = 100, 1 << 20  # 100 MiB free

    monkeypatch.setattr(partial.os, "statvfs", lambda path: Vfs)
    sidecar.check_space(100 << 20)  # exactly fits
    with pytest.raises(LocalFileError) as info:
        sidecar.check_space(3 << 30)
    message = str(info.value)
    assert "needs 3.0 GiB more" in message and "100.0 MiB is free" in message and "*.magedl-part" in message
    sidecar.check_space(150 << 20, done=50 << 20)  # what the partial file holds is not needed again
    sidecar.check_space(None)  # size unknown: nothing to check


def test_a_full_disk_mid_way_says_what_is_missing_and_what_was_kept(sidecar, monkeypatch):
    class Vfs:
        f_bavail, f_frsize = 1, 1 << 20

    monkeypatch.setattr(partial.os, "statvfs", lambda path: Vfs)
    state = good_state(size=10 << 20, segments=[Segment(0, 10 << 20, 3 << 20)])
    message = str(sidecar.error(OSError(errno.ENOSPC, "No space left on device"), state))
    assert "disk is full" in message and "1.0 MiB free" in message and "6.0 MiB more is needed" in message
    assert "3.0 MiB received are kept" in message


def test_disk_figures_are_in_mib_or_gib():
    assert human_bytes(1536 << 10, "MiB") == "1.5 MiB" and human_bytes(3 << 30, "MiB") == "3.0 GiB"
    assert human_bytes(0, "MiB") == "0.0 MiB" and human_bytes(1536) == "1.5 KiB" and human_bytes(5) == "5 B"


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=5) | st.dictionaries(st.text(max_size=12), inner, max_size=6),
    max_leaves=30,
)
keys = st.sampled_from(["format", "tool", "md5", "url", "size", "etag", "last_modified", "splittable",
                        "segments"])


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.dictionaries(keys, json_values) | json_values)
def test_any_json_sidecar_is_trusted_only_if_valid(tmp_path, doc):
    sidecar = Sidecar(tmp_path / "h.tar.gz", "h.tar.gz")
    write(sidecar, {**good_state().to_json(), **doc} if isinstance(doc, dict) else doc)
    state = sidecar.load(MD5, URL)
    if state is not None:  # then it must describe a sane partial file of 100 bytes
        assert state.size == 100 and sum(s.done for s in state.segments) <= 100
    sidecar.discard()


@settings(max_examples=100, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.binary(max_size=300))
def test_any_bytes_as_sidecar_never_crash(tmp_path, raw):
    sidecar = Sidecar(tmp_path / "b.tar.gz", "b.tar.gz")
    write(sidecar, raw=raw)
    assert sidecar.load(MD5, URL) is None
    sidecar.discard()


def test_unfinished_downloads_lists_the_partial_files_of_a_folder(tmp_path):
    """What ``doctor`` reports of a folder's partial files, asked of the module that owns them (issue 23)."""
    from magedl.transfer.partial import Unfinished, unfinished_downloads

    for name in ("b.zip.magedl-part", "b.zip.magedl-part.json", "a.tgz.magedl-part", "a.tgz", "x.magedl-lock"):
        (tmp_path / name).write_text("")
    assert unfinished_downloads(tmp_path) == [Unfinished("a.tgz.magedl-part", "a.tgz"),
                                              Unfinished("b.zip.magedl-part", "b.zip")]
    assert unfinished_downloads(tmp_path / "missing") == []
