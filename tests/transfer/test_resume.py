"""Resuming, as issue 9 asks: from any source, with this run's settings, and honest about restarts.

Each test states what the server saw (its request log), not only what the
client reports.
"""

import dataclasses
import hashlib

from transfer.xferkit import (
    BIG,
    client_for,
    gets,
    interrupted_fetch,
    leftovers,
    options,
    range_start,
    release,
    sidecar_of,
)

from magedl.transfer.fetch import fetch_release
from magedl.transfer.one_file import md5_file


def test_a_partial_begun_from_the_service_is_finished_from_a_mirror(emulator, second_host, tmp_path):
    """curl and wget resume whatever the source; the feed's md5 vouches for the result."""
    rel = release(client_for(emulator))
    size = len(emulator.store.data(BIG))
    kept = interrupted_fetch(emulator, rel, tmp_path, options(), after=200_000)
    result = fetch_release(client_for(second_host), rel, tmp_path, options())
    [get] = gets(second_host)
    assert range_start(get) == kept and get.status == 206 and get.bytes_sent == size - kept
    assert not get.if_range  # the first server's ETag means nothing to this one
    assert md5_file(tmp_path / BIG) == rel.md5 and result.resumed_from == kept and not result.restarted
    assert gets(emulator) == [] and leftovers(tmp_path) == []


def test_a_mirror_with_a_different_file_under_the_same_name_is_caught_and_refetched(emulator, second_host,
                                                                                     tmp_path):
    """The other source's bytes are spliced onto ours only as far as the final md5 check: then refetched whole."""
    rel = release(client_for(emulator))
    kept = interrupted_fetch(emulator, rel, tmp_path, options(), after=200_000)
    with open(tmp_path / (BIG + ".magedl-part"), "r+b") as f:  # the kept prefix is not what the feed lists
        f.write(b"\x1f\x8b\x08stale bytes")
    result = fetch_release(client_for(second_host), rel, tmp_path, options())
    resumed, whole = gets(second_host)
    assert range_start(resumed) == kept and whole.range is None and whole.status == 200
    assert md5_file(tmp_path / BIG) == rel.md5 and result.resumed_from == 0 and result.restarted


def test_without_md5_another_source_must_show_the_same_validator(emulator, second_host, tmp_path):
    rel = dataclasses.replace(release(client_for(emulator)), md5="")
    kept = interrupted_fetch(emulator, rel, tmp_path, options(), after=200_000)
    fetch_release(client_for(second_host), rel, tmp_path, options())
    [get] = gets(second_host)
    # Same store, same ETag: If-Range proves it is the same file, so the resume stands.
    assert range_start(get) == kept and get.if_range and get.status == 206
    assert (tmp_path / BIG).read_bytes() == emulator.store.data(BIG)


def test_without_md5_or_validators_another_source_starts_over(emulator, second_host, tmp_path):
    rel = dataclasses.replace(release(client_for(emulator)), md5="")
    emulator.set_faults(no_validators=True)
    interrupted_fetch(emulator, rel, tmp_path, options(), after=200_000)
    result = fetch_release(client_for(second_host), rel, tmp_path, options())
    [get] = gets(second_host)
    assert get.range is None and get.status == 200 and result.resumed_from == 0
    assert (tmp_path / BIG).read_bytes() == emulator.store.data(BIG)


def test_a_resume_uses_this_runs_connection_count(emulator, tmp_path):
    """Begun with one connection, resumed with four: the resume splits the rest four ways."""
    rel = release(client_for(emulator))
    interrupted_fetch(emulator, rel, tmp_path, options(connections=1), after=100_000)
    state = sidecar_of(tmp_path / BIG)
    assert len(state["segments"]) == 1 and state["splittable"]
    emulator.set_faults(rate=512 << 10)  # so the first connection cannot finish before the others start
    result = fetch_release(client_for(emulator), rel, tmp_path, options(connections=4))
    assert emulator.wait_for(lambda s: not s.in_flight)
    ranged = [r for r in gets(emulator) if r.range]
    assert len(ranged) >= 3 and result.connections >= 3
    assert md5_file(tmp_path / BIG) == rel.md5


def test_a_restart_without_range_does_not_claim_a_resume(emulator, tmp_path):
    """After a restart from byte 0 the result and progress say resumed_from == 0."""
    rel = release(client_for(emulator))
    size = len(emulator.store.data(BIG))
    kept = interrupted_fetch(emulator, rel, tmp_path, options(), after=200_000)
    emulator.set_faults(no_range=True)
    events = []
    result = fetch_release(client_for(emulator), rel, tmp_path, options(), progress=events.append)
    [get] = gets(emulator)
    assert get.status == 200 and get.bytes_sent == size
    assert events[0].event == "start" and events[0].resumed_from == kept > 0
    restart = next(i for i, e in enumerate(events) if e.event == "restart")
    assert all(e.resumed_from == 0 for e in events[restart:])
    assert result.resumed_from == 0 and result.restarted
    assert md5_file(tmp_path / BIG) == rel.md5


def test_a_plain_resume_reports_what_it_continued(emulator, tmp_path):
    rel = release(client_for(emulator))
    kept = interrupted_fetch(emulator, rel, tmp_path, options(), after=200_000)
    result = fetch_release(client_for(emulator), rel, tmp_path, options())
    assert result.resumed_from == kept and not result.restarted
    assert hashlib.md5((tmp_path / BIG).read_bytes()).hexdigest() == rel.md5


def test_a_sidecar_left_by_a_kill_after_the_rename_is_removed_by_the_next_run(emulator, tmp_path):
    """A run killed between moving the file into place and dropping its sidecar leaves the sidecar alone."""
    rel = release(client_for(emulator))
    fetch_release(client_for(emulator), rel, tmp_path, options())
    orphan = tmp_path / (BIG + ".magedl-part.json")
    orphan.write_text('{"format": 1, "tool": "magedl"}')
    emulator.clear_log()
    result = fetch_release(client_for(emulator), rel, tmp_path, options())
    assert result.skipped and gets(emulator) == []
    assert leftovers(tmp_path) == [] and md5_file(tmp_path / BIG) == rel.md5


def test_a_sidecar_temporary_left_by_a_kill_is_removed_by_the_next_run(emulator, tmp_path):
    """A kill inside the sidecar's atomic replace leaves its temporary; the run that continues removes it."""
    rel = release(client_for(emulator))
    kept = interrupted_fetch(emulator, rel, tmp_path, options(), after=200_000)
    stale = tmp_path / f".{BIG}.magedl-part.json.magedl-tmp-0123456789ab"
    stale.write_text("{}")
    result = fetch_release(client_for(emulator), rel, tmp_path, options())
    assert result.resumed_from == kept and md5_file(tmp_path / BIG) == rel.md5
    assert sorted(p.name for p in tmp_path.iterdir()) == [BIG]
