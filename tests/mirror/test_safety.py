"""A mirror never reads, writes or deletes through a link, and refuses what would make it (issues 8, 13)."""

import hashlib
import json
import os

import pytest
from clirun import run

from magedl.server.stores import MemoryStore

PATCHES = ("--type", "ce-patch")


@pytest.fixture
def outside(tmp_path):
    """A folder that is not part of any mirror, with a file that must survive."""
    folder = tmp_path / "outside"
    folder.mkdir()
    (folder / "precious.txt").write_text("keep me")
    return folder


@pytest.fixture
def mdir(env, capsys, tmp_path):
    root = tmp_path / "mirror"
    assert run(capsys, "mirror", str(root), *PATCHES)[0] == 0
    return root


def test_prune_refuses_a_symlinked_file_folder_and_deletes_nothing(mdir, outside, capsys):
    (mdir / "file").rename(mdir.parent / "moved")
    (mdir / "file").symlink_to(outside)
    code, out, err = run(capsys, "mirror", str(mdir), "--type", "ee-patch", "--prune")
    assert code == 1 and "symbolic link" in err and "file" in err and "internal error" not in err
    assert (outside / "precious.txt").read_text() == "keep me"
    code, _, err = run(capsys, "mirror", str(mdir), "--type", "ee-patch", "--prune", "--dry-run")
    assert code == 1 and "symbolic link" in err


@pytest.mark.parametrize("own", ["info", "composer", ".magedl", "SHA256SUMS"])
def test_every_own_part_of_the_mirror_as_a_link_is_refused(mdir, outside, capsys, own):
    target = outside / "sums" if own == "SHA256SUMS" else outside
    if own == "SHA256SUMS":
        target.write_text("")
    if (mdir / own).is_dir():
        (mdir / own).rename(mdir.parent / f"moved-{own}")
    elif (mdir / own).exists():
        (mdir / own).unlink()
    (mdir / own).symlink_to(target)
    before = sorted(p.name for p in outside.iterdir())
    code, _, err = run(capsys, "mirror", str(mdir), *PATCHES, "--prune")
    assert code == 1 and "symbolic link" in err and own in err
    assert sorted(p.name for p in outside.iterdir()) == before
    assert (outside / "precious.txt").read_text() == "keep me"


def test_a_link_inside_file_is_removed_as_an_entry_never_followed(mdir, outside, capsys):
    (mdir / "file" / "dir-link").symlink_to(outside)
    (mdir / "file" / "file-link").symlink_to(outside / "precious.txt")
    code, out, err = run(capsys, "--json", "mirror", str(mdir), *PATCHES, "--prune")
    assert code == 0, err
    statuses = {r["file_name"]: r["status"] for r in json.loads(out)}
    assert statuses["dir-link"] == statuses["file-link"] == "pruned"
    assert not (mdir / "file" / "dir-link").is_symlink() and not (mdir / "file" / "file-link").is_symlink()
    assert (outside / "precious.txt").read_text() == "keep me"


def test_verify_reports_dangling_and_other_links_as_findings(mdir, outside, capsys):
    (mdir / "file" / "dangling.zip").symlink_to(mdir / "nowhere")
    (mdir / "file" / "out").symlink_to(outside)
    code, out, err = run(capsys, "verify", str(mdir))
    assert code == 6 and "internal error" not in err
    assert "file/dangling.zip: BAD (a symbolic link" in out and "file/out: BAD (a symbolic link" in out
    code, out, err = run(capsys, "verify", str(mdir / "file" / "dangling.zip"))
    assert code == 6 and "symbolic link" in out and "internal error" not in err


def test_verify_never_reads_through_a_linked_archive_or_folder(mdir, tmp_path, capsys):
    listed = next(p for p in (mdir / "file").rglob("*") if p.is_file())
    copy = tmp_path / "copy"
    copy.write_bytes(listed.read_bytes())
    listed.unlink()
    listed.symlink_to(copy)  # the right bytes, but through a link: serve would refuse it
    code, out, _ = run(capsys, "verify", str(mdir))
    assert code == 6 and f"{listed.relative_to(mdir)}: BAD (a symbolic link" in out
    (mdir / "file").rename(tmp_path / "real-file")
    (mdir / "file").symlink_to(tmp_path / "real-file")
    code, out, err = run(capsys, "verify", str(mdir))
    assert code == 6 and "file: BAD (a symbolic link" in out and "internal error" not in err


def test_verify_calls_a_hard_linked_file_bad_as_serve_refuses_it(mdir, tmp_path, capsys):
    listed = next(p for p in (mdir / "file").rglob("*") if p.is_file())
    os.link(listed, tmp_path / "second-name")
    code, out, err = run(capsys, "verify", str(mdir))
    assert code == 6 and f"{listed.relative_to(mdir)}: BAD (it has 2 names (hard links)" in out
    assert "internal error" not in err


def test_an_unknown_type_creates_nothing(env, capsys, tmp_path):
    root = tmp_path / "mx"
    code, _, err = run(capsys, "mirror", str(root), "--type", "ce-ful")
    assert code == 5 and "not changed" in err
    assert not root.exists()
    root.mkdir()
    code, _, _ = run(capsys, "mirror", str(root), "--type", "ce-ful")
    assert code == 5 and list(root.iterdir()) == []


def test_diff_file_in_a_missing_folder_is_refused_before_anything_is_done(env, capsys, tmp_path):
    root = tmp_path / "m"
    code, _, err = run(capsys, "mirror", str(root), *PATCHES, "--diff-file", str(tmp_path / "no" / "such" / "d.txt"))
    assert code == 2 and f"{tmp_path / 'no'} does not exist" in err
    assert not (tmp_path / "no").exists() and not root.exists()


def test_diff_file_naming_a_folder_is_a_clear_error(env, capsys, tmp_path):
    code, _, err = run(capsys, "mirror", str(tmp_path / "m"), *PATCHES, "--diff-file", str(tmp_path))
    assert code == 2 and "is a folder" in err and "internal error" not in err
    assert not (tmp_path / "m").exists()


def test_feed_names_that_are_the_mirrors_own_paths_or_side_files_are_refused(make_emulator, capsys, tmp_path,
                                                                                monkeypatch):
    good = b"\x1f\x8b\x08" + b"x" * 5000
    md5 = hashlib.md5(good).hexdigest()
    names = ["SHA256SUMS", "info/json", "ok.tar.gz.magedl-part.json.tmp", "ok.tar.gz"]
    feed = {"ce-full": {"2.4.7": [{"name": n, "file_name": n, "md5": md5} for n in names]}}
    emu = make_emulator(store=MemoryStore(feed, {n: good for n in names}))
    for key, value in (("MAGEDL_BASE_URL", emu.base_url), ("MAGEDL_MAGEID", emu.mageid),
                       ("MAGEDL_TOKEN", emu.token)):
        monkeypatch.setenv(key, value)
    root = tmp_path / "m"
    code, out, err = run(capsys, "--json", "mirror", str(root))
    assert code == 0, err
    statuses = {r["file_name"]: r["status"] for r in json.loads(out)}
    assert statuses == {"SHA256SUMS": "skip", "info/json": "skip", "ok.tar.gz.magedl-part.json.tmp": "skip",
                        "ok.tar.gz": "fetched"}
    assert sorted(p.name for p in (root / "file").iterdir()) == ["ok.tar.gz"]
