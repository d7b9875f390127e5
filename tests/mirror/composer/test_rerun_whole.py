"""What an up-to-date Composer re-run no longer does per package or per archive (issue 18, second Composer round).

The selection holds each chosen entry as the text the state keeps for it
(:class:`~magedl.mirror.composer.index.KeptEntry`), so the plan compares it with the stored record
without encoding anything; one memo over the whole Composer index (:data:`publish.WHOLE`) stands for
every package's own memo while nothing the index is rendered from changed, and a p2 file touched,
removed or damaged on disk is still noticed.
"""

import json
import os
from unittest.mock import ANY

from mirror.composer.mirrorkit import mirror

from magedl.mirror import model
from magedl.mirror.composer import index, listing, publish
from magedl.mirror.composer.index import KeptEntry
from magedl.mirror.model import Status


def counted(monkeypatch, module, name):
    """Record the calls of *module*.*name* (their first arguments after *root*, or all of them) in a list."""
    calls, original = [], getattr(module, name)

    def wrapper(*args, **kwargs):
        calls.append(args)
        return original(*args, **kwargs)

    monkeypatch.setattr(module, name, wrapper)
    return calls


def test_the_selection_holds_each_entry_as_the_text_the_state_keeps(repos, tmp_path):
    mdir, seen = tmp_path / "m", []
    mirror(mdir, repos, seen=seen)  # resolved
    mirror(mdir, repos, seen=seen)  # the last resolution reused
    for selection in seen:
        entries = [entry for _, _, entry in selection.entries()]
        assert entries and all(type(entry) is KeptEntry for entry in entries)
    resolved, reused = ({(n, vn): e.text for n, vn, e in s.entries()} for s in seen)
    assert resolved == reused
    entry = next(e for _, _, e in seen[0].entries() if "dist" in e)
    assert "source" not in entry and entry["dist"]["url"]  # as the mirror keeps it, read as a mapping
    assert f"[{entry.text}]" == model.canonical_records([entry.parsed()])


def test_an_up_to_date_plan_encodes_no_entry_and_asks_no_memo_per_package(repos, tmp_path, monkeypatch):
    mdir = tmp_path / "m"
    statuses = mirror(mdir, repos)
    before = {p: p.read_bytes() for p in (mdir / index.P2).rglob("*.json")}
    encoded = counted(monkeypatch, model, "canonical_json")
    asked = counted(monkeypatch, publish, "unchanged_since")
    rendered = counted(monkeypatch, index, "render_package")
    assert mirror(mdir, repos) == {rel: Status.PRESENT for rel in statuses}
    assert encoded == []  # each archive's entry compared with its stored record as text
    assert [args[2] for args in asked] == [publish.WHOLE] and rendered == []  # one memo, not one per package
    assert {p: p.read_bytes() for p in (mdir / index.P2).rglob("*.json")} == before


def test_a_p2_file_removed_or_damaged_or_an_archive_damaged_is_noticed_despite_the_whole_memo(repos, tmp_path,
                                                                                              monkeypatch):
    mdir = tmp_path / "m"
    mirror(mdir, repos)
    rendered = counted(monkeypatch, index, "render_package")
    log = mdir / index.p2_rel("psr/log")
    good = log.read_bytes()
    log.unlink()
    mirror(mdir, repos)
    assert [args[0] for args in rendered] == ["psr/log"] and log.read_bytes() == good
    rendered.clear()
    st = log.stat()
    log.write_bytes(good.replace(b"psr/log", b"psr/lol"))  # the same size, the mtime put back: ctime still moves
    os.utime(log, ns=(st.st_atime_ns, st.st_mtime_ns))
    mirror(mdir, repos)
    assert [args[0] for args in rendered] == ["psr/log"] and log.read_bytes() == good
    rendered.clear()
    victim = sorted((mdir / index.DIST).rglob("*.zip"))[0]
    victim.write_bytes(victim.read_bytes() + b"x")  # repaired, and left out of the index while it is replaced
    rel = victim.relative_to(mdir).as_posix()
    assert mirror(mdir, repos)[rel] == Status.REPAIRED
    assert "/".join(rel.split("/")[2:4]) in [args[0] for args in rendered]
    rendered.clear()
    mirror(mdir, repos)
    assert rendered == []


def test_an_up_to_date_plan_lists_no_folder_of_composer_dist_yet_finds_a_new_stray(repos, tmp_path, monkeypatch):
    monkeypatch.setattr(listing, "SETTLED_NS", 0)  # the folders were made a moment ago
    mdir = tmp_path / "m"
    statuses = mirror(mdir, repos)
    mirror(mdir, repos)  # lists composer/dist/ (the cold run filled it after its plan listed it) and remembers it
    listed, scandir = [], os.scandir

    def counted_scandir(path="."):
        if not isinstance(path, int) and index.DIST in os.fsdecode(path):  # an int: a descriptor (rmtree)
            listed.append(path)
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counted_scandir)
    assert mirror(mdir, repos) == {rel: Status.PRESENT for rel in statuses}
    assert listed == []  # the folders' times vouch for the names listed last time
    folder = sorted((mdir / index.DIST).rglob("*.zip"))[0].parent
    stray = folder / "0.0.0.0-stray.zip"
    stray.write_bytes(b"not from upstream")
    found = mirror(mdir, repos)
    assert found[stray.relative_to(mdir).as_posix()] == Status.STRAY and listed
    nested = folder / "deeper" / "1.0.0.0.zip"  # a new folder is a new name in its parent
    nested.parent.mkdir()
    nested.write_bytes(b"not from upstream either")
    mirror(mdir, repos)
    listed.clear()
    found = mirror(mdir, repos)
    assert found[nested.relative_to(mdir).as_posix()] == Status.STRAY and listed == []


def test_a_damaged_or_foreign_listing_is_only_a_miss(tmp_path, monkeypatch):
    monkeypatch.setattr(listing, "SETTLED_NS", 0)
    archive = tmp_path / index.DIST / "a" / "b" / "1.0.0.0.zip"
    archive.parent.mkdir(parents=True)
    archive.write_bytes(b"zip")

    class Memo(dict):
        remembered, remember = dict.get, dict.__setitem__

    memo = Memo()
    files, kept = listing.files_under(tmp_path, memo)
    listing.remember(memo, kept)
    assert files == [f"{index.DIST}/a/b/1.0.0.0.zip"] and listing.files_under(tmp_path, memo) == (files, None)
    good = json.loads(memo[listing.MEMO])
    folder = f"{index.DIST}/a/b"

    def with_names(names):
        return {**good, "folders": {**good["folders"], folder: good["folders"][folder][:3] + [names, []]}}

    for damaged in (with_names(["1.0.0.0.zip", "../../../etc/passwd"]), with_names([7]), with_names([".hidden"]),
                    {**good, "folders": {**good["folders"], "composer/p2": good["folders"][folder]}},
                    {**good, "folders": {}}, {**good, "format": 1}, "not a listing"):
        memo[listing.MEMO] = json.dumps(damaged)
        assert listing.files_under(tmp_path, memo) == (files, ANY)  # listed again, as it is
        assert listing.files_under(tmp_path, memo)[1] is not None
