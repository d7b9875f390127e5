"""mirror.state: the digest cache and the pending delta, and what survives a kill between saves."""

from magedl.mirror.model import Entry, Fingerprint
from magedl.mirror.state import State


def entry(tmp_path):
    path = tmp_path / "x"
    path.write_bytes(b"x")
    return Entry("md5", "sha", Fingerprint.of(path), (), "")


def test_entries_and_delta_round_trip(tmp_path):
    state, held = State(tmp_path), entry(tmp_path)
    state.set("file/a.zip", held)
    state.add_delta(["file/a.zip"])
    state.save()
    again = State(tmp_path)
    assert again.get("file/a.zip") == held and again.delta == {"file/a.zip"}


def test_a_durable_delta_survives_a_kill_before_the_next_save(tmp_path):
    state = State(tmp_path)
    state.add_delta(["file/a.zip"], durable=True)
    state.add_delta(["file/b.zip"], durable=True)
    # killed here: no save() ran
    assert State(tmp_path).delta == {"file/a.zip", "file/b.zip"}


def test_a_save_folds_the_journal_into_the_state(tmp_path):
    state = State(tmp_path)
    state.add_delta(["file/a.zip"], durable=True)
    state.save()
    assert not (tmp_path / ".magedl" / "delta.journal").exists()
    assert State(tmp_path).delta == {"file/a.zip"}


def test_clearing_the_delta_drops_journalled_paths_too(tmp_path):
    state = State(tmp_path)
    state.add_delta(["file/a.zip"], durable=True)
    state.clear_delta()
    state.save()
    assert State(tmp_path).delta == set()


def test_a_damaged_state_is_an_empty_cache_not_an_error(tmp_path):
    (tmp_path / ".magedl").mkdir()
    (tmp_path / ".magedl" / "state.json").write_text("{not json")
    state = State(tmp_path)
    assert state.entries == {} and state.delta == set()
