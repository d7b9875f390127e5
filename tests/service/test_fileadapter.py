"""Reading a mirror folder: ``open_published`` (the one rule) and the ``file://`` transport over it."""

import hashlib
import json
import os
import threading

import pytest
import requests
from clirun import run

from magedl.errors import UnsafeSourceError
from magedl.service.fileadapter import FileAdapter, open_published

DATA = bytes(range(256)) * 40  # 10240 bytes


@pytest.fixture
def folder(tmp_path):
    root = tmp_path / "m"
    (root / "file" / "patches").mkdir(parents=True)
    (root / "info").mkdir()
    (root / "info" / "json").write_text("{}")
    (root / "file" / "a.zip").write_bytes(DATA)
    (root / "file" / "patches" / "p.sh").write_bytes(b"#!/bin/sh\n")
    return root


@pytest.fixture
def session(folder):
    with requests.Session() as s:
        s.mount("file://", FileAdapter(folder.as_uri()))
        yield s


# -- open_published --------------------------------------------------------------------


def test_a_plain_file_opens(folder):
    f, info = open_published(folder, "file/patches/p.sh")
    with f:
        assert f.read() == b"#!/bin/sh\n" and info.st_size == 10


def test_a_missing_file_is_file_not_found(folder):
    with pytest.raises(FileNotFoundError):
        open_published(folder, "file/nope.zip")


@pytest.mark.parametrize("rel", ["file/../info/json", "/etc/passwd", "file/./a.zip", "file//a.zip", "file/a\x1b.zip",
                                 "file/a.zip.magedl-part", "file/a.zip.magedl-lock", ".magedl/state.json",
                                 "file/.a.zip.magedl-tmp-00ff"])
def test_unsafe_or_side_names_are_refused(folder, rel):
    with pytest.raises(UnsafeSourceError) as info:
        open_published(folder, rel)
    assert "refused" in str(info.value) and "\x1b" not in str(info.value)


def test_a_symlink_on_the_way_is_refused_even_inside_the_folder(folder):
    os.symlink("/", folder / "file" / "root")
    os.symlink("a.zip", folder / "file" / "b.zip")
    with pytest.raises(UnsafeSourceError, match="symbolic link"):
        open_published(folder, "file/root/etc/passwd")
    with pytest.raises(UnsafeSourceError):
        open_published(folder, "file/b.zip")


def test_a_fifo_is_refused_not_read(folder):
    os.mkfifo(folder / "file" / "fifo.zip")
    with pytest.raises(UnsafeSourceError, match="not a regular file"):
        open_published(folder, "file/fifo.zip")  # returns at once: the open does not wait for a writer


def test_a_folder_is_refused(folder):
    with pytest.raises(UnsafeSourceError):
        open_published(folder, "file/patches")


def test_a_file_with_another_hard_link_is_refused(folder, tmp_path):
    os.link(folder / "file" / "a.zip", tmp_path / "elsewhere.zip")
    with pytest.raises(UnsafeSourceError, match="hard links"):
        open_published(folder, "file/a.zip")


# -- the file:// transport ----------------------------------------------------------------


def test_get_head_and_ranges(folder, session):
    url = (folder / "file" / "a.zip").as_uri()
    r = session.get(url)
    assert r.status_code == 200 and r.content == DATA and r.headers["Accept-Ranges"] == "bytes"
    assert r.headers["Last-Modified"]
    r = session.get(url, headers={"Range": "bytes=100-199"})
    assert (r.status_code, r.content, r.headers["Content-Range"]) == (206, DATA[100:200], "bytes 100-199/10240")
    r = session.get(url, headers={"Range": "bytes=-10"})  # a suffix range, as servers answer it
    assert r.status_code == 206 and r.content == DATA[-10:]
    r = session.get(url, headers={"Range": "bytes=" + "9" * 5000 + "-"})
    assert r.status_code == 416 and r.headers["Content-Range"] == "bytes */10240"
    r = session.get(url, headers={"Range": "bytes=9-3"})  # invalid: ignored
    assert r.status_code == 200 and r.content == DATA
    r = session.head(url)
    assert r.status_code == 200 and r.headers["Content-Length"] == "10240" and r.content == b""
    assert session.post(url).status_code == 405


def test_missing_and_outside_the_root_are_404(folder, session, tmp_path):
    assert session.get((folder / "file" / "nope.zip").as_uri()).status_code == 404
    (tmp_path / "outside.zip").write_bytes(b"x")
    assert session.get((tmp_path / "outside.zip").as_uri()).status_code == 404


def test_a_refused_file_raises_naming_the_url(folder, session):
    os.symlink("/", folder / "file" / "root")
    with pytest.raises(UnsafeSourceError) as info:
        session.get((folder / "file" / "root" / "etc" / "passwd").as_uri())
    assert "file/root/etc/passwd: refused" in str(info.value)


def test_without_a_root_the_mirror_folders_bound_the_walk(folder):
    os.symlink("/", folder / "file" / "root")
    with requests.Session() as s:
        s.mount("file://", FileAdapter())
        assert s.get((folder / "file" / "a.zip").as_uri()).content == DATA
        with pytest.raises(UnsafeSourceError):
            s.get((folder / "file" / "root" / "etc" / "passwd").as_uri())


# -- get and mirror from a carried mirror ---------------------------------------------------


@pytest.fixture
def hostile(tmp_path):
    """A carried mirror whose ``file/root`` links to ``/`` and whose feed lists ``root/etc/passwd``."""
    root = tmp_path / "carried"
    (root / "info").mkdir(parents=True)
    (root / "file").mkdir()
    os.symlink("/", root / "file" / "root")
    md5 = hashlib.md5(open("/etc/passwd", "rb").read()).hexdigest()
    feed = {"ce-full": {"2.4.6": [{"name": "x", "file_name": "root/etc/passwd", "md5": md5,
                                   "date": "2024-01-01 00:00:00"}]}}
    (root / "info" / "json").write_text(json.dumps(feed))
    return root


def test_get_from_a_file_url_refuses_a_link_out_of_the_mirror(hostile, tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run(capsys, "--base-url", hostile.as_uri(), "get", "root/etc/passwd", "-o", str(out))
    assert code == 1
    assert "root/etc/passwd: refused" in err and "symbolic link" in err and "internal error" not in err
    assert not (out / "root" / "etc" / "passwd").exists()


def test_mirror_from_a_file_url_refuses_a_link_out_of_the_mirror(hostile, tmp_path, capsys):
    new = tmp_path / "new"
    code, _, err = run(capsys, "--base-url", hostile.as_uri(), "mirror", str(new))
    assert code != 0 and "refused" in err
    assert not (new / "file" / "root" / "etc" / "passwd").exists()


def test_get_from_a_file_url_refuses_a_fifo_instead_of_hanging(tmp_path, capsys):
    root = tmp_path / "carried"
    (root / "info").mkdir(parents=True)
    (root / "file").mkdir()
    os.mkfifo(root / "file" / "a.zip")
    feed = {"ce-full": {"2.4.6": [{"name": "x", "file_name": "a.zip", "md5": "0" * 32,
                                   "date": "2024-01-01 00:00:00"}]}}
    (root / "info" / "json").write_text(json.dumps(feed))
    result = {}
    worker = threading.Thread(target=lambda: result.update(r=run(capsys, "--base-url", root.as_uri(), "get",
                                                                  "a.zip", "-o", str(tmp_path / "out"))))
    worker.start()
    worker.join(30)
    if worker.is_alive():  # the old adapter blocks in open(); a writer lets it go before we fail
        with open(root / "file" / "a.zip", "wb"):
            pass
        worker.join(30)
        pytest.fail("get from a file:// mirror hung on a FIFO")
    code, _, err = result["r"]
    assert code == 1 and "not a regular file" in err
