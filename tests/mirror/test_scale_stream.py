"""Issue 18, the release mirror's fourth round: what a run holds per file, asserted as mechanisms.

An up-to-date re-run builds no entry for an unchanged file (the plan compares the state's rows as
they are read, the index write lists the files from the state); a cold run drops a landed file's
entry once it is reported; ``info/json`` is written without a dict per record.
"""

import hashlib
import json
import random

import pytest
from clirun import run

from magedl.mirror import model as model_mod
from magedl.mirror.index import feed_json
from magedl.service.catalog import Release, releases_to_feed

SEL = ("--type", "ce-full", "--type", "ce-patch", "--version", "2.4.6*")


@pytest.fixture
def mdir(tmp_path):
    return tmp_path / "mirror"


def sums(mdir):
    return dict(reversed(line.split("  ", 1)) for line in (mdir / "SHA256SUMS").read_text().splitlines())


def test_an_up_to_date_re_run_builds_no_entry_for_an_unchanged_file(env, capsys, mdir, monkeypatch):
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    before = (mdir / "SHA256SUMS").read_bytes()
    built = []
    real = model_mod.Entry.__init__

    def counted(self, *args, **kwargs):
        built.append(args[:2])
        real(self, *args, **kwargs)

    monkeypatch.setattr(model_mod.Entry, "__init__", counted)
    assert run(capsys, "-q", "mirror", str(mdir), *SEL)[0] == 0
    assert built == []  # neither the plan, the run nor the index write made one per file
    assert (mdir / "SHA256SUMS").read_bytes() == before


def test_a_file_changed_on_disk_is_left_out_of_the_index_though_its_state_row_is_read_there(env, capsys, mdir):
    """The index write lists the files from the state, each checked against its lstat first."""
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    name = sorted(rel for rel in sums(mdir) if rel.startswith("file/"))[0]
    path = mdir / name
    assert run(capsys, "mirror", str(mdir), *SEL)[0] == 0
    from magedl.mirror.held import Held
    from magedl.mirror.state import State

    state = State(mdir)
    path.write_bytes(path.read_bytes() + b"changed")
    held = Held(mdir, state, {}, set())
    listed = {rel for rel, _ in held.items()}
    assert name not in listed and held.gone == {name} and len(held) == len(listed)
    assert len(held._listed) == len(listed) + 1  # one byte per row, not an object per file
    held.release_sums.seek(0)  # its SHA256SUMS lines wait in a file, not in memory beside the info/ files' renders
    assert held.release_sums.read().decode().splitlines() == [f"{e.sha256}  {rel}" for rel, e in held.items()]


def test_a_cold_run_drops_each_landed_entry_once_reported_and_indexes_it(env, capsys, mdir, monkeypatch):
    from magedl.mirror import core as core_mod

    plans = []
    real = core_mod.Mirror.plan
    monkeypatch.setattr(core_mod.Mirror, "plan", lambda self, *a, **k: plans.append(real(self, *a, **k)) or plans[-1])
    code, out, _ = run(capsys, "--json", "mirror", str(mdir), *SEL)
    plan = plans[0]
    assert code == 0 and plan.fetch_new and not [it for it in plan.items if it.rel.startswith("file/")]
    assert plan.landed == {r.file_name for r in plan.fetch_new}
    listed = sums(mdir)
    for name in plan.landed:
        assert listed["file/" + name] == hashlib.sha256((mdir / "file" / name).read_bytes()).hexdigest()
    rows = {row["file_name"]: row for row in json.loads(out)}
    assert all(rows[name]["sha256"] == listed["file/" + name] for name in plan.landed)  # made as they were reported


def test_a_cold_run_holds_no_item_per_file_to_fetch(env, capsys, mdir, monkeypatch):
    """The plan lists the files to fetch (Plan.fetch_new); each item is made as its transfer ends and dropped
    once reported, so no more than two are alive at a time however many files are fetched."""
    from magedl.mirror import core as core_mod
    from magedl.mirror import plan as plan_mod

    alive, most, made = [0], [0], []

    class Counted(model_mod.Item):
        def __init__(self, *args, **kwargs):
            super().__init__(*args, **kwargs)
            alive[0] += 1
            most[0] = max(most[0], alive[0])
            made.append(self.rel)

        def __del__(self):
            alive[0] -= 1

    monkeypatch.setattr(plan_mod, "Item", Counted)
    monkeypatch.setattr(core_mod, "Item", Counted)
    assert run(capsys, "-q", "mirror", str(mdir), *SEL)[0] == 0
    fetched = [rel for rel in sums(mdir) if rel.startswith("file/")]
    assert len(fetched) > 3 and sorted(made) == sorted(fetched) and most[0] <= 2  # the one reported, the next


def test_a_cold_run_reads_the_sha256sums_it_wrote_a_line_at_a_time_for_its_delta(env, capsys, mdir, tmp_path,
                                                                                    monkeypatch):
    """What changed is found without parsing the whole new SHA256SUMS into a dict (a cold run's peak at 100,000
    files): only the listing as found (none, on a cold run) is parsed; the delta still lists every file."""
    from magedl.mirror import core as core_mod

    parsed = []
    real = core_mod._parsed_sums
    monkeypatch.setattr(core_mod, "_parsed_sums", lambda raw: parsed.append(len(raw)) or real(raw))
    delta = tmp_path / "delta.txt"
    assert run(capsys, "mirror", str(mdir), *SEL, "--diff-file", str(delta))[0] == 0
    assert parsed and set(parsed) == {0}  # the SHA256SUMS as found (none); the one written is never parsed whole
    listed = set(delta.read_text().split())
    assert set(sums(mdir)) | {"SHA256SUMS"} == listed


def test_info_json_is_written_without_a_dict_per_plain_record(monkeypatch):
    records = [Release(name=f"n{i}", file_name=f"f{i}.zip", version=f"2.4.{i % 3}", type="ce-patch", md5="0" * 32)
               for i in range(50)]
    expected = (json.dumps(releases_to_feed(records), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
    monkeypatch.setattr(Release, "to_dict", lambda self: pytest.fail("a dict per record"))
    assert feed_json(records) == expected


def test_info_json_is_byte_for_byte_the_feed_json_dumps_wrote():
    rnd = random.Random(18)
    names = ["a.zip", 'q"x.tgz', "b\\c.zip", "p/q.sh", "z\u00e9.zip", "\u4e2d.zip"]
    for _ in range(300):
        records = [Release(name=rnd.choice(names), file_name=rnd.choice(names), version=rnd.choice(["", "2.4.7"]),
                           type=rnd.choice(["ce-full", "other", 'x"y']), md5=rnd.choice(["", "0" * 32]),
                           ce_versions=rnd.choice([(), ("2.4.7",)]), ee_versions=rnd.choice([(), ("1", "2")]),
                           extra=rnd.choice([{}, {"date": "2020"}, {"n": {"a": [1, {"b": None}]}, "l": []}]))
                   for _ in range(rnd.randint(0, 6))]
        expected = (json.dumps(releases_to_feed(records), indent=1, ensure_ascii=False) + "\n").encode("utf-8")
        assert feed_json(records) == expected


def test_the_feeds_common_entries_are_read_as_the_full_checks_read_them(monkeypatch):
    """parse_feed's quick path for a plain entry gives the records (and warnings) the full checks give."""
    from magedl.service import catalog

    rnd = random.Random(18)
    values = [None, "", "a.zip", "b.zip", 3, ["x"], "0" * 32, " " + "A" * 32, "g" * 32]
    feeds = []
    for _ in range(400):
        entries = [{k: rnd.choice(values) for k in rnd.sample(["name", "file_name", "md5", "version", "date"],
                                                                rnd.randint(0, 4))} for _ in range(rnd.randint(0, 5))]
        feeds.append({"ce-full": {"2.4.7": entries, "2.4.6": entries[:2]}, "other": entries[:3]})

    def parsed(feed):
        warnings = []
        return catalog.parse_feed(json.loads(json.dumps(feed)), warn=warnings.append), warnings

    quick = [parsed(feed) for feed in feeds]
    monkeypatch.setattr(catalog, "_plain", lambda *args: None)
    for feed, (records, warnings) in zip(feeds, quick):
        full, full_warnings = parsed(feed)
        assert [(r, r.extra) for r in records] == [(r, r.extra) for r in full] and warnings == full_warnings


def test_a_feed_decoded_compact_gives_the_records_and_warnings_json_loads_gives():
    """Wherever a plain-looking object sits (an entry, a category, the whole feed, an extra field), the records,
    their extra fields and the warnings are those of the feed decoded as dicts."""
    from magedl.service import catalog, feedjson

    rnd = random.Random(18)
    values = [None, "", "a.zip", "b.zip", 3, ["x"], "0" * 32, " " + "A" * 32, "g" * 32, {"name": "n", "file_name": "f"}]
    keys = ["name", "file_name", "md5", "version", "date"]

    def entry():
        return {k: rnd.choice(values) for k in rnd.sample(keys, rnd.randint(0, 4))}

    for _ in range(400):
        entries = [entry() for _ in range(rnd.randint(0, 5))]
        feed = {"ce-full": {"2.4.7": entries, "2.4.6": entries[:2], "x": entry()}, "other": entries[:3],
                "odd": entry()}
        text = json.dumps(rnd.choice([feed, entry()]))
        text = text.replace('"md5": null', '"md5": null, "md5": "' + "1" * 32 + '"', rnd.randint(0, 1))
        got, want = [], []
        compact = catalog.parse_feed(json.loads(text, object_pairs_hook=feedjson.feed_decoder()), warn=got.append,
                                     consume=True)
        full = catalog.parse_feed(json.loads(text), warn=want.append)
        assert [(r, r.extra) for r in compact] == [(r, r.extra) for r in full] and got == want
        assert all(type(v) is not feedjson.CompactEntry for r in compact for v in r.extra.values())


def test_sha256sums_is_written_a_chunk_at_a_time_from_the_lines_held_spilled(env, capsys, mdir, monkeypatch):
    """The index write never holds SHA256SUMS whole: Held's lines are read back from its file a chunk at a time
    (here 64 bytes) between the index files' lines, compared with the file there and written."""
    from magedl.mirror import index as index_mod

    monkeypatch.setattr(index_mod, "_READ_CHUNK", 64)
    chunks = []
    real = index_mod.atomic_write_parts
    monkeypatch.setattr(index_mod, "atomic_write_parts",
                        lambda path, parts, **kw: chunks.append([len(c) for c in parts()]) or real(path, parts, **kw))
    made = index_mod.sums_parts

    def made_twice(*args):  # a second call on the same Held gives the same bytes (it once dropped its file's)
        first, second = made(*args), made(*args)
        assert b"".join(first()) == b"".join(second())
        return second

    monkeypatch.setattr(index_mod, "sums_parts", made_twice)
    assert run(capsys, "-q", "mirror", str(mdir), *SEL)[0] == 0
    last = chunks[-1]
    assert len(last) > 4 and max(last[1:-1]) <= 64 and sum(last) == (mdir / "SHA256SUMS").stat().st_size
    assert sums(mdir) == {rel: hashlib.sha256((mdir / rel).read_bytes()).hexdigest() for rel in sums(mdir)}
    before = (mdir / "SHA256SUMS").stat()
    assert run(capsys, "-q", "mirror", str(mdir), *SEL)[0] == 0
    assert (mdir / "SHA256SUMS").stat().st_mtime_ns == before.st_mtime_ns  # the same bytes: left alone


def test_sha256sums_goes_in_the_delta_in_the_same_commit_as_the_paths_it_lists_differently(tmp_path):
    """A kill between two commits must never leave the changed paths in the delta without SHA256SUMS: the next run
    finds SHA256SUMS as it wrote it and would never add it."""
    from contextlib import contextmanager

    from magedl.mirror.delta import note_changes

    class Commits:
        def __init__(self):
            self.commits, self.pending = [], []

        @contextmanager
        def batch(self):
            yield
            self.commits.append(self.pending)
            self.pending = []

        def add_delta(self, paths):
            self.pending += paths

    (tmp_path / "SHA256SUMS").write_text(f"{'a' * 64}  file/x.zip\n{'b' * 64}  info/json\n")
    state = Commits()
    assert note_changes(tmp_path, state, {"file/x.zip": "a" * 64, "info/json": "c" * 64})
    assert state.commits == [["info/json", "SHA256SUMS"]]
    assert not note_changes(tmp_path, state, {"file/x.zip": "a" * 64, "info/json": "b" * 64})
    assert state.commits[1:] == [[]]
    assert note_changes(tmp_path, state, {"file/x.zip": "a" * 64, "info/json": "b" * 64, "gone.zip": "d" * 64})
    assert state.commits[2:] == [["SHA256SUMS"]]  # a path listed no more changes it too
