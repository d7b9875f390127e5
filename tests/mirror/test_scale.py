"""Issue 18: what keeps a large mirror's cost linear, asserted as mechanisms (the figures are in scripts/bench.py).

An up-to-date re-run writes no record and re-renders no index; one landed file
writes one record; the plan never scans the whole catalogue per file.
"""

import json
import os

import pytest
from clirun import run

from magedl.mirror import index as index_mod
from magedl.mirror.state import State
from magedl.service import catalog

SEL = ("--type", "ce-full", "--type", "ce-patch", "--version", "2.4.6*")
PATCH = "patches/MDVA-43395_CE_2.4.6_v1.sh"


@pytest.fixture
def mdir(tmp_path):
    return tmp_path / "mirror"


@pytest.fixture
def writes(monkeypatch):
    """Every record the run writes to the state: a list of paths."""
    written = []
    real = State.set

    def spy(self, rel, entry):
        written.append(rel)
        return real(self, rel, entry)

    monkeypatch.setattr(State, "set", spy)
    return written


def stamp(path):
    st = os.lstat(path)
    return st.st_ino, st.st_mtime_ns, st.st_ctime_ns


def index_stamps(mdir):
    return {rel: stamp(mdir / rel) for rel in ("SHA256SUMS", "info/json", "info/files", "info/versions")}


def test_an_up_to_date_re_run_writes_no_record_and_renders_no_index(env, capsys, mdir, writes, monkeypatch):
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    files = len([1 for _, _, names in os.walk(mdir / "file") for _ in names])
    assert sorted(writes) == sorted(set(writes)) and len(writes) == files  # each landed file: one record, once
    before = index_stamps(mdir)
    writes.clear()

    def no_render(records):
        raise AssertionError("the info/ files were rendered again though nothing changed")

    monkeypatch.setattr(index_mod, "render_indexes", no_render)
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    assert writes == []
    assert index_stamps(mdir) == before  # not rewritten: same inode, mtime and ctime


def test_an_index_file_touched_by_hand_is_rendered_again(env, capsys, mdir):
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    good = (mdir / "info" / "files").read_bytes()
    (mdir / "info" / "files").write_bytes(b"edited by hand\n")
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    assert (mdir / "info" / "files").read_bytes() == good


def test_one_file_changed_upstream_writes_one_record(env, capsys, mdir, writes):
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    writes.clear()
    env.store.replace(PATCH, b"#!/bin/bash\necho republished\n")
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    assert writes == [f"file/{PATCH}"]


def test_the_plan_settles_md5s_over_one_files_listings_not_the_catalogue(env, capsys, mdir, monkeypatch):
    seen = []
    real = catalog.settle_md5

    def spy(release, releases):
        releases = list(releases)
        seen.append(len(releases))
        assert all(r.file_name == release.file_name for r in releases)
        return real(release, releases)

    from magedl.mirror import plan as plan_mod

    monkeypatch.setattr(plan_mod, "settle_md5", spy)
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    assert seen and max(seen) <= 2  # the patch listed under two versions


def test_an_older_mirror_state_json_keeps_working(env, capsys, mdir, writes):
    """A mirror made by an older magedl (state.json) is re-run without re-fetching or re-hashing."""
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    state = State(mdir)
    files = {rel: state.get(rel).to_json() for rel in state.paths()}
    state.close()
    for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
        if (mdir / ".magedl" / name).exists():
            (mdir / ".magedl" / name).unlink()
    (mdir / ".magedl" / "state.json").write_text(json.dumps({"version": 2, "files": files, "delta": []}))
    env.clear_log()
    writes.clear()
    code, out, err = run(capsys, "-v", "mirror", str(mdir), *SEL)
    assert code == 0 and "re-hashing" not in err
    assert not [r for r in env.log if r.file_name is not None]  # nothing fetched again
    assert not (mdir / ".magedl" / "state.json").exists() and State(mdir).paths() == set(files)


def test_a_lock_left_beside_a_landed_file_by_a_kill_is_removed_and_a_held_one_kept(env, capsys, mdir):
    """A kill between a file's landing and its unlock leaves NAME.magedl-lock; the next run clears it."""
    from magedl.locks import FileLock

    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    names = sorted(p.name for p in (mdir / "file").iterdir() if p.is_file())
    stale, held = mdir / "file" / f"{names[0]}.magedl-lock", mdir / "file" / f"{names[1]}.magedl-lock"
    stale.write_bytes(b"")
    with FileLock(held, "busy"):
        assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
        assert not stale.exists() and held.exists()


def test_an_up_to_date_re_run_reads_the_state_in_whole_folder_queries_not_one_per_file(env, capsys, mdir, monkeypatch):
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    queries = []
    real = State._connect

    def traced(self):
        db = real(self)
        db.set_trace_callback(queries.append)
        return db

    monkeypatch.setattr(State, "_connect", traced)
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    reads = [q for q in queries if q.lstrip().upper().startswith("SELECT") and "sha256" in q and "FROM files" in q]
    # Whole-folder reads in path order, as many whatever the mirror's size: the plan's (records compared),
    # the index write's check of each held file, the pages' inputs and SHA256SUMS; never one per path.
    assert len(reads) <= 4 and all("rel >= " in q and "ORDER BY rel" in q for q in reads), reads


def test_an_up_to_date_re_run_renders_no_page_and_a_page_touched_by_hand_is_rendered_again(env, capsys, mdir,
                                                                                          monkeypatch):
    from magedl.mirror.pages import site

    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    front = (mdir / "index.html").read_bytes()
    before = stamp(mdir / "index.html")
    real = site.render_pages
    rendered = []

    def spy(*args, **kwargs):
        rendered.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(site, "render_pages", spy)
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    assert rendered == [] and stamp(mdir / "index.html") == before
    (mdir / "index.html").write_bytes(b"edited by hand\n")
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    again = site._STAMP.search((mdir / "index.html").read_bytes())  # its time is now: only the content digest holds
    assert rendered == [1] and again and again.group(1) == site._STAMP.search(front).group(1)


def test_an_up_to_date_re_run_parses_no_stored_record_and_stats_each_file_once(env, capsys, mdir, monkeypatch):
    from magedl.mirror import core as core_mod
    from magedl.mirror import layout as layout_mod
    from magedl.mirror import model as model_mod
    from magedl.mirror import plan as plan_mod

    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    parsed, stats = [], []
    real_records = model_mod.StoredRecords._records

    def parse(self):
        parsed.append(self.text)
        return real_records(self)

    monkeypatch.setattr(model_mod.StoredRecords, "_records", parse)
    real_entries = layout_mod.walk_entries

    def walk(root, top, **options):  # the entries whose lstat the plan asks for
        for rel, entry in real_entries(root, top, **options):
            yield rel, type("Counted", (), {"name": entry.name, "is_dir": entry.is_dir,
                                            "stat": lambda self, **kw: stats.append(rel) or entry.stat(**kw)})()

    monkeypatch.setattr(plan_mod, "walk_entries", walk)
    real_lstat = os.lstat

    class CountingOs:
        def __getattr__(self, name):
            return getattr(os, name)

        @staticmethod
        def lstat(path, *args, **kwargs):
            if "/file/" in str(path):
                stats.append(os.path.relpath(path, mdir))
            return real_lstat(path, *args, **kwargs)

    monkeypatch.setattr(plan_mod, "os", CountingOs())
    plans = []
    real_plan = core_mod.Mirror.plan
    monkeypatch.setattr(core_mod.Mirror, "plan", lambda self, *a, **k: plans.append(real_plan(self, *a, **k))
                        or plans[-1])
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    [plan] = plans
    assert plan.unchanged and not [it for it in plan.items if it.rel.startswith("file/")]
    assert parsed == []  # the stored records were compared as text, never parsed
    assert sorted(stats) == sorted(f"file/{name}" for name in plan.unchanged)  # one lstat per file in the plan


def test_a_record_changed_upstream_is_written_again_and_a_damaged_file_still_found(env, capsys, mdir, writes):
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    state = State(mdir)
    [rel] = [r for r in state.paths("file") if r.endswith(PATCH)]
    entry = state.get(rel)
    db = state._open()
    # As if upstream had changed the file's records since (the bytes and the md5 the same).
    db.execute("UPDATE files SET records = ? WHERE rel = ?", (json.dumps([{"file_name": PATCH, "name": "old"}]), rel))
    state.close()
    writes.clear()
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    assert writes == [rel]  # only that record is written again
    assert tuple(State(mdir).get(rel).records) == tuple(entry.records)
    path = mdir / rel
    data = path.read_bytes()
    path.write_bytes(b"X" + data[1:])  # damaged on disk (the same size)
    code, out, err = run(capsys, "mirror", str(mdir), *SEL)
    assert code == 0 and path.read_bytes() == data and "repaired" in (out + err).lower()


def test_select_computes_one_sort_key_per_version_not_per_file(monkeypatch):
    keys = []
    real = catalog.version_key
    monkeypatch.setattr(catalog, "version_key", lambda v: keys.append(v) or real(v))
    releases = [catalog.Release(f"f{i}", f"f{i}.zip", f"2.4.{i % 3}", "ce-patch", "") for i in range(300)]
    chosen = catalog.select(releases)
    assert len(keys) == 3 and [r.version for r in chosen[:1]] == ["2.4.2"] and len(chosen) == 300


def test_the_records_digest_is_that_of_the_whole_list_encoded_in_batches():
    import hashlib

    odd = 'é"\u2028'  # not ASCII, a quote, a line separator: encoded as json.dumps does
    releases = [catalog.Release(f"n{i}", f"f{i}{odd}.zip", "1", "t", "") for i in range(index_mod._DIGEST_BATCH * 2)]
    releases += [catalog.Release("x", "x.zip", "1", "t", "", ce_versions=("2.4.7",), extra={"date": "ü"})] * 5
    for count in (0, 1, index_mod._DIGEST_BATCH, len(releases)):
        whole = json.dumps([r.to_dict() for r in releases[:count]], ensure_ascii=False, separators=(",", ":"))
        assert index_mod.records_digest(releases[:count]) == hashlib.sha256(whole.encode("utf-8")).hexdigest()


def test_the_feed_records_text_written_directly_is_the_canonical_one():
    from magedl.mirror.model import canonical_records, canonical_release_records

    plain = catalog.Release('é "quoted"', "a/b\\c\u2028.zip", "2.4.7", "ce-full", "0" * 32)
    bare = catalog.Release("n.zip", "n.zip", "", "other", "")
    listed = catalog.Release("n.zip", "n.zip", "1", "t", "", ce_versions=("2.4.7",))
    extra = catalog.Release("n.zip", "n.zip", "1", "t", "", extra={"date": "2024", "size": 3})
    for releases in ([], [plain], [plain, bare], [bare, listed], [extra], [plain, extra]):
        assert canonical_release_records(releases) == canonical_records([r.to_dict() for r in releases])


def test_the_catalogue_plan_and_index_write_run_without_the_cyclic_collector(env, capsys, mdir, monkeypatch):
    import gc

    from magedl.mirror import core as core_mod
    from magedl.mirror import run as run_mod
    from magedl.mirror.bulk import collector_paused

    seen = {}

    def spy(name, real):
        def call(*args, **kwargs):
            seen.setdefault(name, set()).add(gc.isenabled())
            return real(*args, **kwargs)
        return call

    monkeypatch.setattr(run_mod, "_catalogue", spy("catalogue", run_mod._catalogue))
    monkeypatch.setattr(core_mod, "ReleasePlanner", spy("plan", core_mod.ReleasePlanner))
    monkeypatch.setattr(core_mod, "records_digest", spy("index", core_mod.records_digest))
    monkeypatch.setattr(core_mod, "fetch_many", spy("fetch", core_mod.fetch_many))
    assert gc.isenabled()
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    assert seen == {"catalogue": {False}, "plan": {False}, "index": {False}, "fetch": {True}}
    assert gc.isenabled()  # back once each phase ended (the transfers ran with it)
    with pytest.raises(ValueError):
        with collector_paused():
            raise ValueError
    assert gc.isenabled()
    gc.disable()
    try:
        with collector_paused():
            pass
        assert not gc.isenabled()  # a caller's own choice is left as it was
    finally:
        gc.enable()


def test_sums_rendered_in_batches_are_those_of_the_plain_join():
    odd = 'é \u2028'
    for count in (0, 1, index_mod._DIGEST_BATCH, index_mod._DIGEST_BATCH * 2 + 3):
        sums = {f"file/f{i:05d}{odd}.zip": f"{i:064x}" for i in reversed(range(count))}
        plain = "".join(f"{sha}  {rel}\n" for rel, sha in sorted(sums.items())).encode("utf-8")
        assert index_mod.render_sums(sums) == plain
        more = {"info/json": "a" * 64, f"file/f{count // 2:05d}{odd}.zip": "b" * 64, "zz": "c" * 64}
        merged = {**sums, **more}
        assert index_mod.render_sums(sums, more) == index_mod.render_sums(merged) and len(sums) == count


def test_an_identical_file_is_compared_a_chunk_at_a_time_and_left_alone(tmp_path, monkeypatch):
    from magedl import fsutil

    monkeypatch.setattr(fsutil, "_COMPARE_CHUNK", 7)
    path = tmp_path / "SHA256SUMS"
    data = bytes(range(256)) * 3
    fsutil.atomic_write(path, data)
    before = stamp(path)
    assert not fsutil.atomic_write(path, bytearray(data)) and stamp(path) == before
    for other in (data[:-1], data + b"x", data[:100] + b"!" + data[101:], b""):
        assert fsutil.atomic_write(path, other) and path.read_bytes() == other
        assert not fsutil.atomic_write(path, other)
    os.unlink(path)
    os.symlink(tmp_path / "target", path)
    (tmp_path / "target").write_bytes(data)
    assert fsutil.atomic_write(path, data) and not path.is_symlink()  # a link is replaced, never compared through


def test_the_plan_walks_the_files_folder_without_holding_its_listing(env, capsys, mdir, monkeypatch):
    """Sorting a folder's listing holds a DirEntry per file of it at once: the plan reads it as it comes."""
    from magedl.mirror import layout as layout_mod
    from magedl.mirror import plan as plan_mod

    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    for i in range(40):
        (mdir / "file" / f"stray-{i:02d}.txt").write_text("x")
    real_scandir, real_walk, read, lag = os.scandir, plan_mod.walk_entries, [0], []

    class Listing:  # counts the entries read from the system
        def __init__(self, path):
            self.inner = real_scandir(path)

        def __enter__(self):
            return self

        def __exit__(self, *exc):
            self.inner.close()

        def __iter__(self):
            for entry in self.inner:
                read[0] += 1
                yield entry

    class ListingOs:  # layout's own os, not the os module every other caller shares
        scandir = Listing

        def __getattr__(self, name):
            return getattr(os, name)

    def walk(root, top, **options):  # how far the reading ran ahead of the plan, at each entry handed to it
        for count, found in enumerate(real_walk(root, top, **options), 1):
            lag.append(read[0] - count)
            yield found

    monkeypatch.setattr(layout_mod, "os", ListingOs())
    monkeypatch.setattr(plan_mod, "walk_entries", walk)
    code, out, _ = run(capsys, "--json", "mirror", str(mdir), *SEL)
    assert code == 0 and len(lag) > 40 and max(lag) <= 2  # the folders met on the way, not the whole listing
    strays = [row["file_name"] for row in json.loads(out) if row["action"] == "stray"]
    assert strays == sorted(strays) and len(strays) == 40  # still reported in name order
    monkeypatch.undo()
    listed = [rel for rel, _ in layout_mod.walk_files(mdir, "file") if rel.count("/") == 1]
    assert listed == sorted(listed)  # walk_files keeps each folder's name order


def test_a_run_holds_no_copy_of_sha256sums_and_its_delta_still_lists_what_changed(env, capsys, mdir, tmp_path,
                                                                                  monkeypatch):
    from magedl.mirror import core as core_mod

    delta = tmp_path / "delta.txt"
    assert run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(delta))[0] == 0
    reads = []
    real = core_mod.sums_in_file
    monkeypatch.setattr(core_mod, "sums_in_file", lambda path: reads.append(1) or real(path))
    assert run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(delta))[0] == 0
    assert reads == [] and delta.read_text() == ""  # up to date: SHA256SUMS neither read nor held
    env.store.replace(PATCH, b"#!/bin/bash\necho republished\n")
    sums = (mdir / "SHA256SUMS").read_bytes()
    assert run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(delta))[0] == 0
    listed = delta.read_text().split()
    assert f"file/{PATCH}" in listed and "SHA256SUMS" in listed and "info/json" in listed
    assert (mdir / "SHA256SUMS").read_bytes() != sums
    (mdir / "SHA256SUMS").write_bytes(sums)  # edited in place by hand, back to the old listing
    assert run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(delta))[0] == 0
    listed = delta.read_text().split()  # against the listing as found: the file, and the index files, changed
    assert f"file/{PATCH}" in listed and "SHA256SUMS" in listed and "info/json" in listed


def test_json_rows_are_in_path_order_cold_and_re_run(env, capsys, mdir):
    """Rows are made as files are reported (transfers finish in any order; unchanged files come after the
    plan's items) and printed in path order, so a script sees the same order on every run."""
    def paths(rows):
        return [row["file_name"] if row["type"] == "composer" else "file/" + row["file_name"] for row in rows]

    code, out, _ = run(capsys, "--json", "mirror", str(mdir), "--jobs", "4", *SEL)
    cold = paths(json.loads(out))
    assert code == 0 and len(cold) > 3 and cold == sorted(cold)
    # A narrower selection: the files left out are kept (plan items) beside the unchanged ones (from the state).
    code, out, _ = run(capsys, "--json", "mirror", str(mdir), "--type", "ce-full", "--version", "2.4.6*")
    rows = json.loads(out)
    again = paths(rows)
    assert code == 0 and again == sorted(again) and sorted(again) == sorted(cold)
    assert {row["status"] for row in rows} == {"present", "keep"}


def test_an_up_to_date_re_run_builds_no_item_per_file_and_json_rows_come_from_the_state(env, capsys, mdir,
                                                                                      monkeypatch):
    """An unchanged file gets no plan item, no entry and no record text held; ``--json`` rows are made from
    its state row as they are reported, and the index lists it from the state as before."""
    from magedl.mirror import core as core_mod
    from magedl.mirror import model as model_mod

    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    sums, info = (mdir / "SHA256SUMS").read_bytes(), (mdir / "info" / "json").read_bytes()
    plans, built = [], []
    real = core_mod.Mirror.plan
    monkeypatch.setattr(core_mod.Mirror, "plan", lambda self, *a, **k: plans.append(real(self, *a, **k)) or plans[-1])
    real_item = model_mod.Item.__init__

    def counted(self, rel, *args, **kwargs):
        built.append(rel)
        real_item(self, rel, *args, **kwargs)

    monkeypatch.setattr(model_mod.Item, "__init__", counted)
    assert run(capsys, "-q", "mirror", str(mdir), *SEL)[0] == 0
    [plan] = plans
    assert plan.unchanged and not [rel for rel in built if rel.startswith("file/")]  # no item per file
    assert (mdir / "SHA256SUMS").read_bytes() == sums and (mdir / "info" / "json").read_bytes() == info
    code, out, _ = run(capsys, "--json", "mirror", str(mdir), *SEL)
    rows = json.loads(out)
    assert code == 0 and len(rows) == len(plans[1].unchanged) + len(plans[1].items)
    assert all(row["status"] == "present" and row["name"] and row["version"] and row["sha256"] for row in rows)
    assert (mdir / "SHA256SUMS").read_bytes() == sums and (mdir / "info" / "json").read_bytes() == info
