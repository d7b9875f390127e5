"""mirror.state: the digest cache and the pending delta in SQLite, one record at a time; older state.json migrated."""

import json
import os
import shutil
import sqlite3
import subprocess
import sys
from contextlib import closing

from magedl.mirror.model import Entry, Fingerprint, StoredRecords
from magedl.mirror.state import State


def entry(tmp_path, name="x", md5="md5"):
    path = tmp_path / name
    path.write_bytes(b"x")
    return Entry(md5, "sha", Fingerprint.of(path), ({"file_name": name},), "")


def test_entries_and_delta_round_trip(tmp_path):
    state, held = State(tmp_path), entry(tmp_path)
    state.set("file/a.zip", held)
    state.add_delta(["file/a.zip"])
    again = State(tmp_path)
    assert again.get("file/a.zip") == held and again.delta == {"file/a.zip"}
    assert again.paths("file") == {"file/a.zip"} and again.paths("composer/dist") == set()


def test_reading_creates_nothing(tmp_path):
    state = State(tmp_path / "mirror")
    assert state.get("file/a.zip") is None and state.paths() == set() and state.delta == set()
    assert not (tmp_path / "mirror").exists()


def test_one_change_writes_one_record_and_an_unchanged_one_writes_none(tmp_path):
    state = State(tmp_path)
    with state.batch():
        for i in range(50):
            state.set(f"file/{i}.zip", entry(tmp_path, f"{i}"))
    before = state.changes
    state.set("file/7.zip", entry(tmp_path, "7", md5="other"))
    assert state.changes - before == 1
    with state.batch():  # a re-run records what the plan found: all unchanged
        for i in range(50):
            state.set(f"file/{i}.zip", state.get(f"file/{i}.zip"))
    assert state.changes - before == 1


def test_every_change_is_committed_at_once_so_a_kill_loses_none(tmp_path):
    # A child process records a file and is killed with SIGKILL before it could close or save anything.
    code = ("import os, signal, sys; from pathlib import Path; from magedl.mirror.model import Entry, Fingerprint; "
            "from magedl.mirror.state import State; s = State(sys.argv[1]); "
            "s.set('file/a.zip', Entry('m', 's', Fingerprint(1, 2, 3, 4), ({'file_name': 'a.zip'},))); "
            "s.add_delta(['file/a.zip'], durable=True); os.kill(os.getpid(), signal.SIGKILL)")
    proc = subprocess.run([sys.executable, "-c", code, str(tmp_path)])
    assert proc.returncode == -9
    again = State(tmp_path)
    assert again.get("file/a.zip").fingerprint == Fingerprint(1, 2, 3, 4) and again.delta == {"file/a.zip"}


def test_sync_puts_every_commit_in_the_database_file_itself(tmp_path):
    # A commit is in the write-ahead log at once, but synced only at a checkpoint: what sync makes.
    state = State(tmp_path)
    state.add_delta(["file/0.zip"])
    state.sync()  # the tables too, in the database file
    state.add_delta(["file/a.zip"], durable=True)

    def in_the_database_file_alone():  # as a power cut could leave it: without the unsynced log
        shutil.copy(tmp_path / ".magedl" / "state.sqlite", tmp_path / "copy.sqlite")
        with closing(sqlite3.connect(tmp_path / "copy.sqlite")) as db:
            return {rel for rel, in db.execute("SELECT rel FROM delta")}

    assert in_the_database_file_alone() == {"file/0.zip"}
    state.sync()
    assert in_the_database_file_alone() == {"file/0.zip", "file/a.zip"}


def test_sync_says_so_when_a_reader_keeps_the_checkpoint_from_finishing(tmp_path):
    state = State(tmp_path)
    state.add_delta(["file/0.zip"])
    with closing(sqlite3.connect(tmp_path / ".magedl" / "state.sqlite")) as reader:
        reader.execute("BEGIN")
        reader.execute("SELECT count(*) FROM delta").fetchall()  # a snapshot the checkpoint must not overwrite
        state.add_delta(["file/a.zip"])
        state._open().execute("PRAGMA busy_timeout = 50")
        assert state.sync() is False
        reader.execute("COMMIT")
    assert state.sync() is True


def test_clearing_the_delta(tmp_path):
    state = State(tmp_path)
    state.add_delta(["file/a.zip"], durable=True)
    state.clear_delta()
    assert State(tmp_path).delta == set()


def test_an_older_state_json_and_its_journal_move_into_the_database_on_the_first_write(tmp_path):
    bookkeeping = tmp_path / ".magedl"
    bookkeeping.mkdir()
    held = entry(tmp_path)
    (bookkeeping / "state.json").write_text(json.dumps({"version": 2, "files": {"file/a.zip": held.to_json()},
                                                        "delta": ["file/a.zip"]}))
    (bookkeeping / "delta.journal").write_text("file/b.zip\n")
    old = State(tmp_path)  # read as it is: nothing written yet (a dry run stays a dry run)
    assert old.get("file/a.zip") == held and old.delta == {"file/a.zip", "file/b.zip"}
    assert sorted(os.listdir(bookkeeping)) == ["delta.journal", "state.json"]
    old.set("file/c.zip", held)
    assert not (bookkeeping / "state.json").exists() and not (bookkeeping / "delta.journal").exists()
    again = State(tmp_path)
    assert again.paths() == {"file/a.zip", "file/c.zip"} and again.get("file/a.zip") == held
    assert again.delta == {"file/a.zip", "file/b.zip"}


def test_a_damaged_database_is_an_empty_cache_not_an_error(tmp_path):
    (tmp_path / ".magedl").mkdir()
    (tmp_path / ".magedl" / "state.sqlite").write_bytes(b"not a database" * 100)
    state = State(tmp_path)
    assert state.paths() == set() and state.delta == set()
    state.set("file/a.zip", entry(tmp_path))
    assert State(tmp_path).paths() == {"file/a.zip"}


def test_a_damaged_row_is_skipped(tmp_path):
    State(tmp_path).set("file/a.zip", entry(tmp_path))
    with sqlite3.connect(tmp_path / ".magedl" / "state.sqlite") as db:
        db.execute("UPDATE files SET records = '{not json'")
    assert State(tmp_path).get("file/a.zip") is None


def test_a_link_where_the_database_belongs_is_not_followed(tmp_path):
    (tmp_path / ".magedl").mkdir()
    outside = tmp_path / "outside"
    outside.write_bytes(b"precious")
    os.symlink(outside, tmp_path / ".magedl" / "state.sqlite")
    State(tmp_path).set("file/a.zip", entry(tmp_path))
    assert outside.read_bytes() == b"precious"
    assert not os.path.islink(tmp_path / ".magedl" / "state.sqlite")


def test_all_records_under_a_folder_come_in_one_read_and_a_damaged_one_costs_only_itself(tmp_path):
    state = State(tmp_path)
    with state.batch():
        for i in range(3):
            state.set(f"file/{i}.zip", entry(tmp_path, f"{i}"))
        state.set("composer/dist/a.zip", entry(tmp_path, "a"))
    good = dict(state.entries_in_order("file"))
    assert good == {f"file/{i}.zip": state.get(f"file/{i}.zip") for i in range(3)} and None not in good.values()
    db = sqlite3.connect(tmp_path / ".magedl" / "state.sqlite")
    db.execute("UPDATE files SET records = '[{\"file_name\": ' WHERE rel = 'file/1.zip'")
    db.commit()
    db.close()
    found = dict(State(tmp_path).entries_in_order("file"))
    # Damaged records read as none (the plan writes the feed's back); its digests and fingerprint still hold.
    assert tuple(found["file/1.zip"].records) == () and found["file/1.zip"].sha256 == good["file/1.zip"].sha256
    assert found["file/0.zip"] == good["file/0.zip"]
    assert set(found) == {"file/0.zip", "file/1.zip", "file/2.zip"}
    db = sqlite3.connect(tmp_path / ".magedl" / "state.sqlite")
    db.execute("UPDATE files SET records = '{}' WHERE rel = 'file/2.zip'")
    db.execute("UPDATE files SET md5 = NULL WHERE rel = 'file/0.zip'")
    db.commit()
    db.close()
    found = dict(State(tmp_path).entries_in_order("file"))
    assert found["file/0.zip"] is None and found["file/2.zip"] is None  # not an entry at all: re-hashed


def test_records_are_read_as_the_stored_text_and_parsed_only_when_read(tmp_path):
    state = State(tmp_path)
    records = ({"file_name": "a.zip", "md5": "x", "name": "a.zip"}, {"file_name": "a.zip", "version": "2"})
    state.set("file/a.zip", Entry("md5", "sha", Fingerprint.of(tmp_path), records))
    stored = dict(State(tmp_path).entries_in_order("file"))["file/a.zip"].records
    assert isinstance(stored, StoredRecords) and stored._parsed is None
    assert stored == records and stored == tuple(dict(r) for r in records)  # compared as text: still unparsed
    assert stored != records[:1] and stored._parsed is None
    assert list(stored) == list(records) and stored[0]["md5"] == "x" and len(stored) == 2
    assert StoredRecords("[]") == () and not StoredRecords("[]") and tuple(StoredRecords("[1, {}]")) == ({},)
