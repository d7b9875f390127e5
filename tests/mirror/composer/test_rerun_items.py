"""What an up-to-date Composer re-run holds per archive, and what a run leaves for the next one to list (issue 18).

A cold run makes no lock file per archive in its staging folder, which the mirror's own lock covers.

An archive present as the state records it gets no plan item (:attr:`ComposerPart.unchanged`), and its entry
is not parsed to find where it goes; a run that landed archives lists the folders it changed at its end, so
the next run lists none of ``composer/dist/`` (and still notices what changed behind its back).
"""

import os

import pytest
from mirror.composer.mirrorkit import mirror

from magedl.mirror.composer import index, listing
from magedl.mirror.composer.index import KeptEntry, archive_type
from magedl.mirror.core import Mirror
from magedl.mirror.index import read_sums
from magedl.mirror.model import Status


@pytest.fixture
def listed(monkeypatch):
    """The folders under ``composer/dist/`` listed (``os.scandir``) from now on, as relative paths."""
    folders, scandir = [], os.scandir

    def counted_scandir(path="."):
        if not isinstance(path, int) and index.DIST in os.fsdecode(path):  # an int: a descriptor (rmtree)
            folders.append(os.fsdecode(path).split(index.DIST, 1)[1])
        return scandir(path)

    monkeypatch.setattr(os, "scandir", counted_scandir)
    return folders


def _plan(mdir, repos, seen, every_item=False):
    with Mirror(mdir).lock():
        return Mirror(mdir).plan(None, (), composer=seen[-1], every_item=every_item).composer


def test_an_up_to_date_plan_makes_no_item_and_parses_no_entry_per_archive(repos, tmp_path, monkeypatch):
    mdir, seen = tmp_path / "m", []
    statuses = mirror(mdir, repos)
    assert mirror(mdir, repos, seen=seen) == {rel: Status.PRESENT for rel in statuses}  # reported all the same
    parsed, parse = [], KeptEntry.parsed
    monkeypatch.setattr(KeptEntry, "parsed", lambda self: parsed.append(self) or parse(self))
    part = _plan(mdir, repos, seen)
    archives = {rel for rel in statuses if rel.startswith(index.DIST + "/")}
    assert part.items == [] and set(part.unchanged) == archives
    assert all(archive_type(parse(entry)) is None for entry in parsed)  # only metapackages (no archive to place)
    # A dry run (or a caller asking for every item) still gets one per archive.
    assert {it.rel for it in _plan(mdir, repos, seen, every_item=True).items} == archives
    # An archive changed on disk is planned as an item again; the others stay unchanged.
    victim = sorted(archives)[0]
    (mdir / victim).write_bytes((mdir / victim).read_bytes() + b"x")
    part = _plan(mdir, repos, seen)
    assert [it.rel for it in part.items] == [victim] and set(part.unchanged) == archives - {victim}
    assert mirror(mdir, repos)[victim] == Status.REPAIRED


def test_the_first_rerun_after_a_cold_run_lists_no_folder_of_composer_dist(repos, tmp_path, monkeypatch, listed):
    monkeypatch.setattr(listing, "SETTLED_NS", 0)  # the folders were made a moment ago
    mdir = tmp_path / "m"
    statuses = mirror(mdir, repos)  # lists the folders it filled once more at its end
    listed.clear()
    assert mirror(mdir, repos) == {rel: Status.PRESENT for rel in statuses}
    assert listed == []
    # A file added, or one removed, behind magedl's back: its folder alone is listed again, and it is noticed.
    archive = sorted(rel for rel in statuses if rel.startswith(index.DIST + "/"))[0]
    folder = os.path.dirname(archive)
    stray = f"{folder}/0.0.0.0-stray.zip"
    (mdir / stray).write_bytes(b"not from upstream")
    assert mirror(mdir, repos)[stray] == Status.STRAY and listed == [folder[len(index.DIST):]]
    listed.clear()
    (mdir / stray).unlink()
    assert stray not in mirror(mdir, repos) and listed == [folder[len(index.DIST):]]


def test_a_folder_too_fresh_to_vouch_is_listed_again_until_it_settles(repos, tmp_path, monkeypatch, listed):
    monkeypatch.setattr(listing, "SETTLED_NS", 10**18)  # every folder changed "within the last tick"
    mdir = tmp_path / "m"
    mirror(mdir, repos)
    listed.clear()
    mirror(mdir, repos)
    assert "" in listed and len(listed) > 5  # composer/dist/ itself and every folder under it
    monkeypatch.setattr(listing, "SETTLED_NS", 0)
    mirror(mdir, repos)
    listed.clear()
    mirror(mdir, repos)
    assert listed == []


def test_an_unchanged_archive_swapped_after_the_plan_is_not_listed(repos, tmp_path, monkeypatch):
    """The index write checks each archive the plan left without an item against its ``lstat`` again: bytes
    swapped between the plan and the write (same size) are not vouched for by SHA256SUMS."""
    mdir = tmp_path / "m"
    statuses = mirror(mdir, repos)
    victim = sorted(rel for rel in statuses if rel.startswith(index.DIST + "/"))[0]
    before = read_sums(mdir / "SHA256SUMS")[0][victim]
    plan = Mirror.plan

    def plan_then_swap(self, *args, **kwargs):
        planned = plan(self, *args, **kwargs)
        assert victim in planned.composer.unchanged
        size = (mdir / victim).stat().st_size
        (mdir / victim).unlink()
        (mdir / victim).write_bytes(b"\0" * size)  # another file, the same size
        return planned

    monkeypatch.setattr(Mirror, "plan", plan_then_swap)
    mirror(mdir, repos)
    assert read_sums(mdir / "SHA256SUMS")[0].get(victim) != before
    monkeypatch.setattr(Mirror, "plan", plan)
    assert mirror(mdir, repos)[victim] == Status.REPAIRED  # the next run puts the upstream's bytes back
    assert read_sums(mdir / "SHA256SUMS")[0][victim] == before


def test_a_listing_that_cannot_be_kept_costs_the_run_nothing(repos, tmp_path, monkeypatch):
    """The end of a run lists composer/dist/ again for the next one; a state that cannot be written then (a full
    disk) is only logged: the run's index, delta and signature bookkeeping are done before it, and it raises not."""
    import sqlite3

    calls = []

    def full_disk(memo, value):
        calls.append(value)
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(listing, "remember", full_disk)
    mdir = tmp_path / "m"
    statuses = mirror(mdir, repos)
    assert calls and all(status is Status.FETCHED for rel, status in statuses.items() if rel.startswith(index.DIST))
    assert "SHA256SUMS" in Mirror(mdir).delta()
    assert read_sums(mdir / "SHA256SUMS")[0].keys() >= {rel for rel in statuses if rel.startswith(index.DIST)}


def test_an_archive_never_lands_through_a_vendor_folder_linked_out_of_the_mirror(repos, tmp_path):
    """A folder under composer/dist/ planted as a link out of the mirror: its archives are skipped, nothing is read,
    removed or written where it leads, and the others land."""
    first = mirror(tmp_path / "first", repos)
    archives = sorted(rel for rel in first if rel.startswith(index.DIST + "/"))
    vendor = archives[0].split("/")[2]
    outside, mdir = tmp_path / "outside", tmp_path / "m"
    bait = outside / archives[0].split("/", 3)[3]  # where the archive's path leads: a file that is not it
    bait.parent.mkdir(parents=True)
    bait.write_bytes(b"not the archive")
    (mdir / index.DIST).mkdir(parents=True)
    os.symlink(outside, mdir / index.DIST / vendor)
    statuses = mirror(mdir, repos)
    assert [p for p in outside.rglob("*") if p.is_file()] == [bait] and bait.read_bytes() == b"not the archive"
    for rel in archives:
        linked = rel.split("/")[2] == vendor
        assert statuses[rel] == (Status.SKIP if linked else Status.FETCHED), rel
    assert not any(rel.split("/")[2] == vendor for rel in read_sums(mdir / "SHA256SUMS")[0] if rel in first)


def test_links_on_the_way_to_an_archive_are_found_at_any_level(tmp_path):
    dist = tmp_path / index.DIST
    (dist / "v/p").mkdir(parents=True)
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", dist / "v/linked")
    (dist / "w").write_bytes(b"a file where a folder belongs")
    links = listing.Links(tmp_path)
    assert links.on_the_way(f"{index.DIST}/v/p/1.zip") is None
    assert links.on_the_way(f"{index.DIST}/v/new/1.zip") is None  # not made yet: placed through Destinations
    assert links.on_the_way(f"{index.DIST}/v/linked/1.zip") == f"{index.DIST}/v/linked"
    assert links.on_the_way(f"{index.DIST}/w/p/1.zip") == f"{index.DIST}/w"
    os.symlink(tmp_path / "elsewhere", dist / "x")
    assert links.on_the_way(f"{index.DIST}/x/p/1.zip") == f"{index.DIST}/x"


def test_archives_are_fetched_under_the_mirror_lock_without_a_lock_file_each(repos, tmp_path, lock_files_taken):
    statuses = mirror(tmp_path / "m", repos)
    assert sum(status is Status.FETCHED for status in statuses.values()) > 10
    assert lock_files_taken == []
