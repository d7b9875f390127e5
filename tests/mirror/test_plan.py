"""Mirror planning without the network or the command line: a folder, a state, a catalogue, a plan."""

import hashlib
import os

import pytest

from magedl.errors import LocalFileError
from magedl.mirror import plan as plan_mod
from magedl.mirror.core import Mirror
from magedl.mirror.index import write_indexes
from magedl.mirror.layout import check_layout, walk_files
from magedl.mirror.model import Action, Entry, Fingerprint, Plan, Status, Summary
from magedl.mirror.plan import ReleasePlanner
from magedl.mirror.state import State
from magedl.service.catalog import Release

A, B, C = b"archive a" * 100, b"archive b" * 100, b"archive c" * 100


def release(name, data, version="2.4.7", type_="ce-full", md5=True):
    return Release(name=name, file_name=name, version=version, type=type_,
                   md5=hashlib.md5(data).hexdigest() if md5 else "")


UPSTREAM = [release("a.zip", A), release("b.zip", B), release("sub/c.zip", C, type_="ce-patch")]


def put(root, name, data):
    path = root / "file" / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def verified(root, name, data, state=None):
    """Put *name* on disk and record it in the state as verified."""
    path = put(root, name, data)
    state = state or State(root)
    state.set(f"file/{name}", Entry(hashlib.md5(data).hexdigest(), hashlib.sha256(data).hexdigest(),
                                    Fingerprint.of(path), ({"file_name": name},)))
    state.save()
    return state


def actions(plan):
    return {it.rel: it.action for it in plan}


def planned(root, selected, upstream=UPSTREAM, **kwargs):
    """The plan with an item for every file (what these tests look at); a run's plan names some files only."""
    rehash, every_item = kwargs.pop("rehash", True), kwargs.pop("every_item", True)
    return ReleasePlanner(root, State(root), upstream, rehash=rehash, every_item=every_item).plan(selected, **kwargs)


def test_an_empty_folder_fetches_everything_selected(tmp_path):
    plan = planned(tmp_path, UPSTREAM[:2])
    assert actions(plan) == {"file/a.zip": Action.FETCH, "file/b.zip": Action.FETCH}
    assert [it.reason for it in plan] == ["new", "new"]
    assert plan.to_fetch == plan.items and plan.upstream == tuple(UPSTREAM)
    assert not any(tmp_path.iterdir())  # planning writes nothing
    # A run's plan makes no item for a file with no copy and no state row: it lists it, in path order.
    plan = planned(tmp_path, UPSTREAM[1::-1], every_item=False)
    assert plan.items == [] and plan.fetch_new == list(UPSTREAM[:2]) and plan.fetch_count == 2


def test_a_verified_file_is_present_without_reading_it(tmp_path, monkeypatch):
    verified(tmp_path, "a.zip", A)
    monkeypatch.setattr(plan_mod, "file_digests", lambda *a, **k: pytest.fail("re-hashed"))
    [item] = planned(tmp_path, UPSTREAM[:1]).items
    assert item.action is Action.PRESENT and item.entry.sha256 == hashlib.sha256(A).hexdigest()
    assert item.entry.records == (UPSTREAM[0].to_dict(),)  # the records it is now described by


def test_a_touched_file_is_rehashed_and_kept(tmp_path):
    verified(tmp_path, "a.zip", A)
    os.utime(tmp_path / "file" / "a.zip", (1, 1))
    [item] = planned(tmp_path, UPSTREAM[:1]).items
    assert item.action is Action.PRESENT
    assert item.entry.fingerprint == Fingerprint.of(tmp_path / "file" / "a.zip")


def test_a_dry_run_does_not_rehash_a_changed_file(tmp_path, monkeypatch):
    verified(tmp_path, "a.zip", A)
    os.utime(tmp_path / "file" / "a.zip", (1, 1))
    monkeypatch.setattr(plan_mod, "file_digests", lambda *a, **k: pytest.fail("re-hashed"))
    [item] = planned(tmp_path, UPSTREAM[:1], rehash=False).items
    assert item.action is Action.RECHECK and item.entry is None


def test_changed_upstream_is_an_update_and_a_bad_copy_a_repair(tmp_path):
    verified(tmp_path, "a.zip", A)
    put(tmp_path, "b.zip", b"rotten")
    newer = release("a.zip", b"republished")
    plan = planned(tmp_path, [newer, UPSTREAM[1]], upstream=[newer, UPSTREAM[1]])
    items = {it.rel: it for it in plan}
    assert items["file/a.zip"].action is Action.UPDATE and "changed upstream" in items["file/a.zip"].reason
    assert items["file/a.zip"].entry is not None  # the good old copy stays described until replaced
    assert items["file/b.zip"].action is Action.REPAIR and items["file/b.zip"].entry is None


def test_unselected_files_are_kept_strays_named_and_prune_removes_both(tmp_path):
    verified(tmp_path, "a.zip", A)
    put(tmp_path, "stray.txt", b"not ours")
    plan = planned(tmp_path, UPSTREAM[1:2])
    assert actions(plan) == {"file/b.zip": Action.FETCH, "file/a.zip": Action.KEEP, "file/stray.txt": Action.STRAY}
    keep = next(it for it in plan if it.action is Action.KEEP)
    assert keep.entry is not None and "no longer selected" in keep.reason
    plan = planned(tmp_path, UPSTREAM[1:2], prune=True)
    assert actions(plan)["file/a.zip"] is Action.PRUNE and actions(plan)["file/stray.txt"] is Action.PRUNE


def test_files_gone_from_disk_are_dropped(tmp_path):
    state = verified(tmp_path, "a.zip", A)
    (tmp_path / "file" / "a.zip").unlink()
    plan = ReleasePlanner(tmp_path, state, UPSTREAM, every_item=True).plan(UPSTREAM[1:2])
    assert plan.dropped == ("file/a.zip",) and actions(plan) == {"file/b.zip": Action.FETCH}


def test_side_files_of_wanted_files_are_not_strays(tmp_path):
    put(tmp_path, "a.zip.magedl-part", b"half")
    put(tmp_path, "a.zip.magedl-part.json", b"{}")
    put(tmp_path, "old.zip.magedl-part", b"half")
    plan = planned(tmp_path, UPSTREAM[:1])
    assert actions(plan) == {"file/a.zip": Action.FETCH, "file/old.zip.magedl-part": Action.STRAY}


@pytest.mark.parametrize("name", ["../evil.zip", "/etc/passwd", "x.magedl-part.json.tmp", "SHA256SUMS", "info/json",
                                  ".magedl/state.json"])
def test_unsafe_and_reserved_names_are_skipped(tmp_path, name):
    plan = planned(tmp_path, [release(name, A)], upstream=[release(name, A)])
    [item] = plan.items
    assert item.action is Action.SKIP and "refusing" in item.reason


def test_lost_state_is_rebuilt_from_the_previous_index(tmp_path):
    put(tmp_path, "a.zip", A)
    write_indexes(tmp_path, UPSTREAM[:1], {"file/a.zip": hashlib.sha256(A).hexdigest()})
    [item] = planned(tmp_path, UPSTREAM[1:2], upstream=UPSTREAM[1:]).items[1:]
    assert item.action is Action.KEEP and item.entry is not None and "no longer upstream" in item.reason
    assert item.entry.records[0]["file_name"] == "a.zip"


def test_a_symlink_in_place_of_a_wanted_file_is_repaired_and_an_unwanted_one_is_an_entry(tmp_path):
    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "a.zip").write_bytes(A)
    root = tmp_path / "m"
    (root / "file").mkdir(parents=True)
    (root / "file" / "a.zip").symlink_to(outside / "a.zip")
    (root / "file" / "dir-link").symlink_to(outside)
    plan = planned(root, UPSTREAM[:1], prune=True)
    assert actions(plan) == {"file/a.zip": Action.REPAIR, "file/dir-link": Action.PRUNE}
    assert plan.items[0].reason == "a symbolic link, not a file"


@pytest.mark.parametrize("own", ["file", "info", "composer", ".magedl", "SHA256SUMS", "info/json"])
def test_a_mirror_whose_own_parts_are_links_is_refused_before_anything_is_read(tmp_path, own):
    outside = tmp_path / "outside"
    outside.mkdir()
    root = tmp_path / "m"
    root.mkdir()
    if "/" in own:
        (root / "info").mkdir()
    (root / own).symlink_to(outside)
    with pytest.raises(LocalFileError, match="symbolic link"):
        check_layout(root)
    with pytest.raises(LocalFileError, match=own.replace(".", r"\.")):
        Mirror(root)


def test_walk_files_never_descends_into_a_link(tmp_path):
    (tmp_path / "file" / "sub").mkdir(parents=True)
    (tmp_path / "file" / "sub" / "x").write_bytes(b"x")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "secret").write_bytes(b"s")
    (tmp_path / "file" / "link").symlink_to(tmp_path / "outside")
    (tmp_path / "file" / "dangling").symlink_to(tmp_path / "nowhere")
    assert sorted(rel for rel, _ in walk_files(tmp_path, "file")) == ["file/dangling", "file/link", "file/sub/x"]


def test_item_rows_and_summary(tmp_path):
    plan = Plan(planned(tmp_path, UPSTREAM[:1]).items, tuple(UPSTREAM))
    [item] = plan.items
    row = item.to_dict()
    assert row["action"] == "fetch" and row["status"] == "fetch" and row["file_name"] == "a.zip"
    item.status = Status.done(item.action)
    assert item.to_dict()["status"] == "fetched" and item.status.transferred
    summary = Summary()
    summary.add(item)
    assert summary.count(Status.FETCHED) == 1 and not summary.failures


def test_entries_survive_the_state_file_and_a_version_1_state_is_read(tmp_path):
    state = verified(tmp_path, "a.zip", A)
    again = State(tmp_path)
    assert again.get("file/a.zip") == state.get("file/a.zip")
    (tmp_path / ".magedl" / "state.sqlite").unlink()
    (tmp_path / ".magedl" / "state.json").write_text(
        '{"version": 1, "files": {"b.zip": {"md5": "m", "sha256": "s", "size": 1, "mtime_ns": 2, "ctime_ns": 3,'
        ' "ino": 4, "records": [{"file_name": "b.zip"}]}, "bad": {"md5": 1}}, "delta": ["file/b.zip", 7]}')
    old = State(tmp_path)
    assert old.paths() == {"file/b.zip"} and old.get("file/b.zip").fingerprint == Fingerprint(1, 2, 3, 4)
    assert old.delta == {"file/b.zip"}


def test_state_changes_of_two_instances_merge(tmp_path):
    one, two = State(tmp_path), State(tmp_path)
    verified(tmp_path, "a.zip", A, one)
    verified(tmp_path, "b.zip", B, two)
    assert State(tmp_path).paths() == {"file/a.zip", "file/b.zip"}
    two.drop("file/a.zip")
    two.add_delta(["file/b.zip"])
    assert State(tmp_path).paths() == {"file/b.zip"} and State(tmp_path).delta == {"file/b.zip"}


def test_a_damaged_state_is_an_empty_cache(tmp_path):
    (tmp_path / ".magedl").mkdir()
    for text in ("not json", "[]", '{"files": []}', '{"files": {"a": {"md5": "x"}}}'):
        (tmp_path / ".magedl" / "state.json").write_text(text)
        assert State(tmp_path).paths() == set()
