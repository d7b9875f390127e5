"""fsutil: how magedl opens, creates and replaces files, never through a planted link."""

import os
import stat

import pytest

from magedl import fsutil
from magedl.fsutil import NotRegularFile


@pytest.fixture
def open_umask():
    old = os.umask(0)  # the most permissive umask a shared host can have
    yield
    os.umask(old)


def mode(path):
    return stat.S_IMODE(os.lstat(path).st_mode)


def test_make_dirs_never_wider_than_0755_whatever_the_umask(tmp_path, open_umask):
    fsutil.make_dirs(tmp_path / "a" / "b" / "c")
    assert [mode(tmp_path / p) for p in ("a", "a/b", "a/b/c")] == [0o755] * 3


def test_make_dirs_leaves_existing_folders_alone(tmp_path):
    (tmp_path / "a").mkdir(mode=0o700)
    fsutil.make_dirs(tmp_path / "a" / "b")
    assert mode(tmp_path / "a") == 0o700 and (tmp_path / "a" / "b").is_dir()


def test_atomic_write_creates_0644_and_replaces_whole(tmp_path, open_umask):
    path = tmp_path / "sub" / "index"
    assert fsutil.atomic_write(path, b"one") is True
    assert path.read_bytes() == b"one" and mode(path) == 0o644
    assert fsutil.atomic_write(path, b"two", mode=fsutil.SECRET_MODE) is True
    assert path.read_bytes() == b"two" and mode(path) == 0o600
    assert sorted(p.name for p in path.parent.iterdir()) == ["index"]  # no temporary left


def test_atomic_write_leaves_an_identical_file_untouched(tmp_path):
    path = tmp_path / "index"
    fsutil.atomic_write(path, b"same")
    before = os.stat(path)
    assert fsutil.atomic_write(path, b"same") is False
    after = os.stat(path)
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_atomic_write_replaces_a_planted_link_without_writing_through_it(tmp_path):
    victim = tmp_path / "victim"
    victim.write_bytes(b"precious")
    link = tmp_path / "index"
    link.symlink_to(victim)
    fsutil.atomic_write(link, b"new")
    assert victim.read_bytes() == b"precious"
    assert not link.is_symlink() and link.read_bytes() == b"new"


def test_open_nofollow_refuses_a_link(tmp_path):
    (tmp_path / "target").write_bytes(b"x")
    (tmp_path / "link").symlink_to(tmp_path / "target")
    with pytest.raises(OSError):
        fsutil.open_nofollow(tmp_path / "link", os.O_RDWR)


def test_create_new_refuses_an_existing_path_even_a_dangling_link(tmp_path):
    (tmp_path / "dangling").symlink_to(tmp_path / "nowhere")
    with pytest.raises(FileExistsError):
        fsutil.create_new(tmp_path / "dangling")
    assert not (tmp_path / "nowhere").exists()
    fd = fsutil.create_new(tmp_path / "fresh", fsutil.SECRET_MODE)
    os.close(fd)
    assert mode(tmp_path / "fresh") == 0o600


def test_temp_names_are_side_names_and_unguessable(tmp_path):
    from magedl.paths import is_side_name

    a, b = fsutil.temp_name(tmp_path / "x.zip"), fsutil.temp_name(tmp_path / "x.zip")
    assert a != b and a.parent == tmp_path and is_side_name(a.name)


def test_read_if_regular(tmp_path):
    (tmp_path / "f").write_bytes(b"12345")
    (tmp_path / "l").symlink_to(tmp_path / "f")
    os.mkfifo(tmp_path / "fifo")
    assert fsutil.read_if_regular(tmp_path / "f", 10) == b"12345"
    assert fsutil.read_if_regular(tmp_path / "f", 4) is None  # over the limit
    assert fsutil.read_if_regular(tmp_path / "l", 10) is None
    assert fsutil.read_if_regular(tmp_path / "fifo", 10) is None  # and it did not hang
    assert fsutil.read_if_regular(tmp_path / "missing", 10) is None


@pytest.fixture
def tree(tmp_path):
    root = tmp_path / "root"
    (root / "file" / "sub").mkdir(parents=True)
    (root / "file" / "sub" / "a.zip").write_bytes(b"archive")
    (tmp_path / "secret").write_bytes(b"outside")
    return root


def read_within(root, *parts):
    fd = fsutil.open_within(root, parts)
    with os.fdopen(fd, "rb") as f:
        return f.read()


def test_open_within_reads_a_plain_file(tree):
    assert read_within(tree, "file", "sub", "a.zip") == b"archive"


@pytest.mark.parametrize("plant", ["file-link", "folder-link", "root-link"])
def test_open_within_follows_no_link_anywhere_on_the_way(tree, tmp_path, plant):
    if plant == "file-link":
        (tree / "file" / "sub" / "b.zip").symlink_to(tmp_path / "secret")
        parts = ("file", "sub", "b.zip")
    elif plant == "folder-link":
        (tree / "file" / "out").symlink_to(tmp_path)
        parts = ("file", "out", "secret")
    else:  # the carried-mirror attack: file/root -> /
        (tree / "file" / "root").symlink_to("/")
        parts = ("file", "root", "etc", "passwd")
    with pytest.raises(NotRegularFile):
        read_within(tree, *parts)


@pytest.mark.parametrize("parts", [("..", "secret"), ("file", "..", "..", "secret"), ("a/b",), ()])
def test_open_within_refuses_anything_but_plain_relative_parts(tree, parts):
    with pytest.raises(NotRegularFile):
        read_within(tree, *parts)


def test_open_within_refuses_a_fifo_without_hanging_and_a_folder(tree):
    os.mkfifo(tree / "file" / "fifo")
    with pytest.raises(NotRegularFile):
        read_within(tree, "file", "fifo")
    with pytest.raises(NotRegularFile):
        read_within(tree, "file", "sub")


def test_open_within_says_missing_as_file_not_found(tree):
    with pytest.raises(FileNotFoundError):
        read_within(tree, "file", "nope.zip")


def test_refuse_symlinks(tree, tmp_path):
    fsutil.refuse_symlinks(tree, "file", "info")  # a real folder and a missing one: fine
    (tree / "info").symlink_to(tmp_path)
    with pytest.raises(NotRegularFile):
        fsutil.refuse_symlinks(tree, "file", "info")
