"""Unit tests for magedl.paths: untrusted feed names never leave the folder."""

import os
import re
import shutil
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magedl import paths
from magedl.errors import UnsafeNameError, UsageError
from magedl.paths import LOCK_SUFFIX, PART_SUFFIX, STATE_SUFFIX, Destinations, check_name, destination, side_file


@pytest.mark.parametrize(
    "name",
    [
        "",
        "/abs",
        "/etc/passwd",
        "../x",
        "..",
        ".",
        "a/../b",
        "a/..",
        "./a",
        "a/./b",
        "a//b",
        "a/",
        "C:x",
        "c:/windows/x.zip",
        "a\\b",
        "..\\x",
        "a\x00b",
        "a\nb",
        "a\rb",
        "a\tb",
        "a\x7fb",
        "x.tar.gz" + PART_SUFFIX,
        "x.tar.gz" + STATE_SUFFIX,
        "x.tar.gz" + LOCK_SUFFIX,
        "sub/x" + PART_SUFFIX,
        None,
        b"x.zip",
    ],
)
def test_check_name_refuses(name):
    with pytest.raises(UnsafeNameError) as info:
        check_name(name)
    assert isinstance(info.value, UsageError)
    assert info.value.exit_code == 2
    assert "\n" not in str(info.value) and "\x00" not in str(info.value)


@pytest.mark.parametrize(
    "name",
    [
        "Magento-CE-2.4.7.tar.gz",
        "sub/dir/file.zip",
        "Magento-CE-2.0.2+sample_data.zip",
        "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh",
        "..hidden-but-fine.zip",
        "a..b.zip",
        "x.magedl-part.zip",
        "caf\xe9.zip",
    ],
)
def test_check_name_accepts(name):
    assert check_name(name) == name


@pytest.mark.parametrize("name", ["a\x9bb.zip", "a\x85b.zip"])
def test_check_name_refuses_c1_controls(name):
    with pytest.raises(UnsafeNameError):
        check_name(name)


def test_destination_plain(tmp_path):
    assert destination(tmp_path, "Magento-CE-2.4.7.tar.gz") == tmp_path.resolve() / "Magento-CE-2.4.7.tar.gz"


def test_destination_nested(tmp_path):
    got = destination(tmp_path, "sub/dir/file.zip")
    assert got == tmp_path.resolve() / "sub" / "dir" / "file.zip"
    assert tmp_path.resolve() in got.parents


def test_destination_checks_the_name(tmp_path):
    with pytest.raises(UnsafeNameError):
        destination(tmp_path, "../escape.zip")
    assert not (tmp_path.parent / "escape.zip").exists()


def test_destination_refuses_symlinked_subfolder_outside(tmp_path):
    root = tmp_path / "root"
    outside = tmp_path / "outside"
    root.mkdir()
    outside.mkdir()
    os.symlink(outside, root / "sub")
    with pytest.raises(UnsafeNameError) as info:
        destination(root, "sub/file.zip")
    assert "outside" in str(info.value)
    with pytest.raises(UnsafeNameError):
        destination(root, "sub/deeper/file.zip")


def test_destination_allows_symlinked_subfolder_inside(tmp_path):
    root = tmp_path / "root"
    (root / "real").mkdir(parents=True)
    os.symlink(root / "real", root / "alias")
    assert destination(root, "alias/file.zip") == root.resolve() / "real" / "file.zip"


def test_destination_through_symlinked_root(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    os.symlink(real, tmp_path / "link")
    assert destination(tmp_path / "link", "a/b.zip") == real.resolve() / "a" / "b.zip"


def test_destination_accepts_str_folder(tmp_path):
    assert destination(str(tmp_path), "x.zip") == Path(tmp_path).resolve() / "x.zip"


def _tree_with_links(tmp_path):
    real = tmp_path / "real"
    root = real / "root"
    (root / "in" / "deep").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    os.symlink(tmp_path / "outside", root / "out")
    os.symlink(root / "in", root / "alias")
    os.symlink(real, tmp_path / "link")
    return tmp_path / "link" / "root"


@pytest.mark.parametrize("name", ["x.zip", "in/x.zip", "in/deep/x.zip", "new/er/x.zip", "alias/x.zip",
                                  "alias/deep/x.zip", "alias/new/x.zip"])
def test_destinations_are_destination(tmp_path, name):
    folder = _tree_with_links(tmp_path)
    place = Destinations(folder)
    assert place(name) == destination(folder, name)
    assert place(name) == destination(folder, name)  # from what it found the first time


@pytest.mark.parametrize("name", ["out/x.zip", "out/deeper/x.zip", "../x.zip", "in/.magedl-lock/x.zip"])
def test_destinations_refuse_what_destination_refuses(tmp_path, name):
    folder = _tree_with_links(tmp_path)
    place = Destinations(folder)
    with pytest.raises(UnsafeNameError):
        destination(folder, name)
    for _ in range(2):  # a refused folder is not remembered as good
        with pytest.raises(UnsafeNameError):
            place(name)


@pytest.mark.parametrize("swapped", ["vendor", "vendor/pkg"])
@pytest.mark.parametrize("made", [True, False])
@pytest.mark.parametrize("to", ["another folder", "the folder moved out"])
def test_destinations_refuse_a_folder_swapped_for_a_link_out_after_its_first_use(tmp_path, swapped, made, to):
    """A folder (or one above it) replaced by a link out of the mirror between two names, whether it was
    there at the first name or made after it, as a writer makes it: the second name is refused. The folder
    itself moved out and linked back keeps its inode: refused too."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (outside / "pkg").mkdir(parents=True)
    root.mkdir()
    place = Destinations(root)
    if made:
        (root / "vendor/pkg").mkdir(parents=True)
    assert place("vendor/pkg/1.zip") == root / "vendor/pkg/1.zip"
    (root / "vendor/pkg").mkdir(parents=True, exist_ok=True)
    assert place("vendor/pkg/2.zip") == root / "vendor/pkg/2.zip"  # the folder now made, as it is found
    os.rename(root / swapped, tmp_path / "moved")
    if to == "another folder":
        os.symlink(outside / swapped.partition("/")[2] if "/" in swapped else outside, root / swapped)
    else:
        os.symlink(tmp_path / "moved", root / swapped)
    with pytest.raises(UnsafeNameError):
        destination(root, "vendor/pkg/3.zip")
    with pytest.raises(UnsafeNameError):
        place("vendor/pkg/3.zip")


def test_a_folder_not_made_yet_is_placed_without_resolving_the_whole_path(tmp_path, monkeypatch):
    """A cold run's common case: each new package's folder is not made yet. It is checked against the
    nearest folder above it, not by :func:`destination` (which resolves every level)."""
    root = tmp_path / "root"
    (root / "vendor").mkdir(parents=True)
    place = Destinations(root)
    assert place("x.zip") == root / "x.zip"  # the root found
    monkeypatch.setattr("magedl.paths.destination", lambda *a: pytest.fail("resolved in full"))
    assert place("vendor/pkg/1.zip") == root / "vendor/pkg/1.zip"
    assert place("new/deeper/pkg/1.zip") == root / "new/deeper/pkg/1.zip"


def test_a_folder_made_meanwhile_by_another_download_is_looked_at_again(tmp_path, monkeypatch):
    """Two archives of one new package: the other download makes the folder between this name's look at
    it and at the level above. The folder is looked at again, not resolved in full."""
    root = tmp_path / "root"
    (root / "vendor").mkdir(parents=True)
    place = Destinations(root)
    assert place("x.zip") == root / "x.zip"
    real_path = paths._real_path
    made = []

    def racing(path):
        if path == str(root / "vendor/pkg") and not made:
            made.append(path)
            (root / "vendor/pkg").mkdir()  # just after this look found nothing
            return None
        return real_path(path)

    monkeypatch.setattr("magedl.paths._real_path", racing)
    monkeypatch.setattr("magedl.paths.destination", lambda *a: pytest.fail("resolved in full"))
    assert place("vendor/pkg/1.zip") == root / "vendor/pkg/1.zip"
    assert made


@pytest.mark.parametrize("level", ["vendor", "vendor/pkg"])
@pytest.mark.parametrize("target", ["outside", "outside/missing"])
def test_a_link_where_a_folder_is_not_made_yet_is_resolved_in_full(tmp_path, level, target):
    """A link planted (even a dangling one) at a level that did not exist at the first name: the
    second name follows destination()'s rule, which refuses it."""
    root, outside = tmp_path / "root", tmp_path / "outside"
    (root / "vendor").mkdir(parents=True)
    outside.mkdir()
    place = Destinations(root)
    assert place("vendor/pkg/1.zip") == root / "vendor/pkg/1.zip"
    if level == "vendor":
        os.rename(root / "vendor", tmp_path / "moved")
    os.symlink(tmp_path / target, root / level)
    with pytest.raises(UnsafeNameError):
        destination(root, "vendor/pkg/2.zip")
    with pytest.raises(UnsafeNameError):
        place("vendor/pkg/2.zip")


_LEVELS = ("a", "a/b", "a/b/c", "x", "x/y")
_KINDS = ("folder", "nothing", "link in", "link out", "dangling", "file", "loop", "up")


def _outcome(place, *args):
    try:
        return str(place(*args))
    except UnsafeNameError:
        return "refused"
    except OSError as exc:
        return f"errno {exc.errno}"


def _change(root, outside, level, kind, target):
    """Put *kind* at *level* of the tree, after removing what was there (nothing when its parent is not a folder)."""
    path = root / level
    if path.is_symlink() or path.is_file():
        path.unlink()
    elif path.is_dir():
        shutil.rmtree(path)
    if kind == "nothing" or not path.parent.is_dir() or path.parent.is_symlink():
        return
    made = {"folder": lambda: path.mkdir(), "file": lambda: path.write_bytes(b""),
            "link in": lambda: path.symlink_to(root / target), "link out": lambda: path.symlink_to(outside),
            "dangling": lambda: path.symlink_to(outside / "missing"), "loop": lambda: path.symlink_to(path.name),
            "up": lambda: path.symlink_to("..")}
    made[kind]()


@settings(max_examples=60, deadline=None)
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(_LEVELS), st.sampled_from(_KINDS),
                          st.sampled_from(("x", "a", "x/y", "zz")), st.sampled_from(_LEVELS + ("a/b/c/d", "q/r"))),
                min_size=1, max_size=30))
def test_destinations_follow_destination_whatever_the_tree_becomes_between_names(steps):
    """Folders made, removed, and swapped for links (inside, outside, dangling, loops) between names: each
    name is placed where :func:`destination` places it at that moment, or refused as it refuses it."""
    base = Path(tempfile.mkdtemp())
    try:
        root, outside = base / "root", base / "outside"
        root.mkdir()
        outside.mkdir()
        place = Destinations(root)
        for change, level, kind, target, folder in steps:
            if change:
                _change(root, outside, level, kind, target)
            name = f"{folder}/f.zip"
            assert _outcome(place, name) == _outcome(destination, root, name)
    finally:
        shutil.rmtree(base)


def test_a_link_loop_on_the_way_is_refused_as_unsafe(tmp_path):
    (tmp_path / "loop").symlink_to("loop")
    for place in (Destinations(tmp_path), lambda name: destination(tmp_path, name)):
        with pytest.raises(UnsafeNameError, match="link loop"):
            place("loop/x.zip")


def test_side_file(tmp_path):
    p = tmp_path / "x.tar.gz"
    assert side_file(p, PART_SUFFIX) == tmp_path / "x.tar.gz.magedl-part"
    assert side_file(str(p), STATE_SUFFIX) == tmp_path / "x.tar.gz.magedl-part.json"
    assert side_file(p, LOCK_SUFFIX).name == "x.tar.gz.magedl-lock"


_SUFFIXES = st.sampled_from(["", PART_SUFFIX, STATE_SUFFIX, LOCK_SUFFIX, ".tar.gz", "-tmp-0a"])


@given(st.text(alphabet="aZ09._+-/\\:\x00 .", max_size=12), _SUFFIXES)
def test_the_quick_accept_of_plain_names_agrees_with_every_check(stem, suffix):
    # check_name accepts a plain one-component name without the full checks (paths._PLAIN): it must
    # never accept a name they refuse, nor refuse one they accept.
    name = stem + suffix

    def verdict():
        try:
            return check_name(name) == name
        except UnsafeNameError:
            return False

    quick = verdict()
    with pytest.MonkeyPatch.context() as mp:
        mp.setattr(paths, "_PLAIN", re.compile(r"(?!)"))  # never matches: the full checks only
        assert verdict() == quick
