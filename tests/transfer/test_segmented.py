"""Segmented transfers: several connections per file, each segment keeping the core guarantees.

Unit tests for the segment arithmetic, then integration tests against the
emulator. Piece sizes are shrunk so the 512 KiB test file splits into many
segments; one test uses a real ``magedl`` process and real piece sizes.
"""

import hashlib
import json
import os
import signal
import subprocess
import sys
import threading

import pytest

from magedl.config import Credentials, Settings
from magedl.errors import Interrupted
from magedl.service.api import Client
from magedl.service.retry import RetryPolicy
from magedl.transfer import download as transfer
from magedl.transfer import segments as seglib
from magedl.transfer.fetch import fetch_release
from magedl.transfer.ratelimit import RateLimiter, parse_rate
from magedl.transfer.segments import Segment

BIG = "Magento-CE-2.4.7.tar.gz"


# -- segment arithmetic --------------------------------------------------------


def test_plan_is_one_segment():
    assert seglib.plan(10) == [Segment(0, 10)]
    assert seglib.plan(None) == [Segment(0, None)]


def test_carve_cuts_the_rest_into_ordered_pieces(monkeypatch):
    monkeypatch.setattr(seglib, "MIN_SPLIT", 10)
    monkeypatch.setattr(seglib, "ALIGN", 1)
    first = Segment(0, 100, done=5, busy=True)
    segs = [first]
    new = seglib.carve(segs, piece=20)
    assert first.end == 25
    assert [(s.start, s.end) for s in new] == [(25, 45), (45, 65), (65, 85), (85, 100)]
    # Idle workers take the lowest offset first, so the hashed prefix keeps growing.
    assert seglib.next_segment(segs) is new[0]


def test_next_segment_splits_the_longest_busy_segment_when_nothing_is_idle(monkeypatch):
    monkeypatch.setattr(seglib, "MIN_SPLIT", 10)
    monkeypatch.setattr(seglib, "ALIGN", 1)
    a, b = Segment(0, 50, done=40, busy=True), Segment(50, 150, done=0, busy=True)
    segs = [a, b]
    new = seglib.next_segment(segs)
    assert (new.start, new.end) == (100, 150) and b.end == 100
    new.busy = True
    a.done, b.done, new.done = 50, 45, 35
    assert seglib.next_segment(segs) is None  # what is left is too short to share


def test_contiguous_end_stops_at_the_first_gap():
    segs = [Segment(0, 10, 10), Segment(10, 20, 4), Segment(20, 30, 10)]
    assert seglib.contiguous_end(segs) == 14
    segs[1].done = 10
    assert seglib.contiguous_end(segs) == 30


@pytest.mark.parametrize("data", [
    [[0, 10, 3], [10, 20, 0]],
    [[0, None, 7]],
])
def test_sidecar_segments_round_trip(data):
    size = None if data[-1][1] is None else data[-1][1]
    segs = seglib.segments_from_json(data, size)
    assert seglib.segments_to_json(segs) == data


@pytest.mark.parametrize("data, size", [
    ([[0, 10, 3], [12, 20, 0]], 20),   # a hole
    ([[0, 10, 11]], 10),               # more done than the segment holds
    ([[0, 10, 0]], 20),                # does not reach the size
    ("nonsense", 10),
    ([], 0),
])
def test_corrupt_sidecar_segments_are_refused(data, size):
    assert seglib.segments_from_json(data, size) is None


# -- rate limit ------------------------------------------------------------------


@pytest.mark.parametrize("text, rate", [("20M", 20 << 20), ("500k", 500 << 10), ("1G", 1 << 30),
                                        ("1.5M", int(1.5 * (1 << 20))), ("800", 800), ("20MB/s", 20 << 20)])
def test_parse_rate(text, rate):
    assert parse_rate(text) == rate


@pytest.mark.parametrize("text", ["", "fast", "0", "-1M", "20X"])
def test_parse_rate_refuses(text):
    with pytest.raises(ValueError):
        parse_rate(text)


def test_rate_limiter_books_every_byte_against_one_budget(monkeypatch):
    clock = [100.0]
    slept = []
    monkeypatch.setattr("magedl.transfer.ratelimit.time.monotonic", lambda: clock[0])

    def sleep(seconds):
        slept.append(seconds)
        clock[0] += seconds

    monkeypatch.setattr("magedl.transfer.ratelimit.time.sleep", sleep)
    limiter = RateLimiter(1000, burst=0)
    for _ in range(10):  # 10 x 500 bytes at 1000 B/s: 5 seconds in all
        limiter.take(500)
    assert sum(slept) == pytest.approx(5.0)
    clock[0] += 1000  # a long idle spell earns at most the burst capacity, not 1000 seconds' worth
    slept.clear()
    limiter.take(limiter.capacity + 1000)
    assert sum(slept) == pytest.approx(1.0)


# -- against the emulator --------------------------------------------------------


@pytest.fixture
def small_pieces(monkeypatch):
    """Pieces of 32 KiB, so the 512 KiB test file takes many segments."""
    monkeypatch.setattr(seglib, "MIN_SPLIT", 16 << 10)
    monkeypatch.setattr(seglib, "PIECE", 32 << 10)
    monkeypatch.setattr(seglib, "ALIGN", 4 << 10)
    monkeypatch.setattr(transfer, "PROGRESS_INTERVAL", 0)
    # carve's default argument was bound at import time; follow the patched value.
    monkeypatch.setattr(seglib.carve, "__defaults__", (32 << 10,))


def client_for(server, attempts=4):
    return Client(Settings(server.base_url, Credentials(server.mageid, server.token)),
                  retry=RetryPolicy(attempts=attempts, backoff=0.01), timeout=(5.0, 5.0))


def release(client, name=BIG):
    return next(r for r in client.catalog() if r.file_name == name)


def gets(server, name=BIG):
    return [r for r in server.log if r.file_name == name and r.method == "GET"]


def range_start(record):
    return int(record.range.split("=")[1].split("-")[0]) if record.range else 0


def test_several_connections_fetch_each_byte_once(emulator, tmp_path, small_pieces):
    client = client_for(emulator)
    rel = release(client)
    data = emulator.store.data(BIG)
    # Throttled, so the first stream cannot have the whole file before the pieces are cut.
    emulator.set_faults(rate=len(data) * 2)
    result = fetch_release(client, rel, tmp_path, connections=4, adaptive=False, sha256=True)
    assert emulator.wait_for(lambda s: not s.in_flight, timeout=10)  # the cut-short GET is logged too
    assert (tmp_path / BIG).read_bytes() == data
    assert result.md5 == rel.md5 and result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.connections > 1
    log = gets(emulator)
    ranged = [r for r in log if r.range]
    assert len(ranged) >= 3 and all(r.status == 206 and r.if_range for r in ranged)
    # The first plain GET is cut short where the pieces begin: nothing is fetched twice.
    assert sum(r.bytes_sent for r in log if r.status == 206) + min(
        r.bytes_sent for r in log if r.range is None) >= len(data) - (32 << 10)
    assert {p.name for p in tmp_path.iterdir()} == {BIG}


def test_failing_segment_is_retried_on_its_own(emulator, tmp_path, small_pieces):
    client = client_for(emulator)
    rel = release(client)
    emulator.set_faults(drop_after=8 << 10, drop_count=3)
    fetch_release(client, rel, tmp_path, connections=4, adaptive=False)
    assert transfer.md5_file(tmp_path / BIG) == rel.md5
    log = gets(emulator)
    cut = [r for r in log if r.aborted]
    assert len(cut) == 3
    for r in cut:  # each cut request is followed by one that resumes exactly where it stopped
        resumed_at = range_start(r) + r.bytes_sent
        assert any(range_start(o) == resumed_at for o in log if o is not r)


def test_interrupted_segments_resume_without_refetching(emulator, tmp_path, small_pieces, monkeypatch):
    client = client_for(emulator)
    rel = release(client)
    size = len(emulator.store.data(BIG))
    cancel = threading.Event()

    def stop(p):
        if p.event == "data" and p.done >= size // 2:
            cancel.set()

    emulator.set_faults(rate=size)  # one second per connection for the whole file: several run at once
    with pytest.raises(Interrupted):
        fetch_release(client, rel, tmp_path, connections=4, adaptive=False, progress=stop, cancel=cancel)
    state = json.loads((tmp_path / (BIG + ".magedl-part.json")).read_text())
    segments = state["segments"]
    kept = sum(done for _, _, done in segments)
    assert len(segments) > 2 and 0 < kept < size
    assert emulator.wait_for(lambda s: not s.in_flight, timeout=10)
    emulator.clear_faults()
    emulator.clear_log()
    # No further splitting on the resume: a split makes the server send bytes past the
    # new end into the socket, which its log would count as fetched.
    monkeypatch.setattr(seglib, "MIN_SPLIT", 1 << 30)
    fetch_release(client_for(emulator), rel, tmp_path, connections=4, adaptive=False)
    assert transfer.md5_file(tmp_path / BIG) == rel.md5
    log = gets(emulator)
    assert all(r.status == 206 for r in log)
    assert sum(r.bytes_sent for r in log) == size - kept
    starts = {range_start(r) for r in log}
    for start, end, done in segments:
        if start + done < end:
            assert start + done in starts


def test_server_without_range_gets_a_single_stream(emulator, tmp_path, small_pieces):
    client = client_for(emulator)
    rel = release(client)
    emulator.set_faults(no_range=True)
    result = fetch_release(client, rel, tmp_path, connections=8, adaptive=False)
    [get] = gets(emulator)
    assert get.range is None and get.status == 200 and result.connections == 1
    assert transfer.md5_file(tmp_path / BIG) == rel.md5


def test_adaptive_mode_keeps_one_connection_when_it_is_fast(emulator, tmp_path, small_pieces, monkeypatch):
    monkeypatch.setattr(transfer, "FAST_ENOUGH", 0)  # any speed counts as fast
    monkeypatch.setattr(transfer, "EXPAND_AFTER", 0)
    client = client_for(emulator)
    fetch_release(client, release(client), tmp_path, connections=8)
    assert len(gets(emulator)) == 1


def test_adaptive_mode_adds_connections_when_one_is_slow(emulator, tmp_path, small_pieces, monkeypatch):
    monkeypatch.setattr(transfer, "FAST_ENOUGH", float("inf"))
    monkeypatch.setattr(transfer, "EXPAND_AFTER", 0)
    client = client_for(emulator)
    rel = release(client)
    emulator.set_faults(rate=256 << 10)
    fetch_release(client, rel, tmp_path, connections=4)
    assert len(gets(emulator)) > 2
    assert transfer.md5_file(tmp_path / BIG) == rel.md5


def test_rate_limit_spans_all_connections(emulator, tmp_path, small_pieces):
    """Every byte of every connection goes through the one limiter."""
    booked = []

    class Recorder(RateLimiter):
        def take(self, n, stop=None):
            booked.append(n)

    client = client_for(emulator)
    rel = release(client)
    fetch_release(client, rel, tmp_path, connections=4, adaptive=False, limiter=Recorder(1 << 30))
    size = len(emulator.store.data(BIG))
    # At most one read crosses into a piece carved off while it was in flight.
    assert size <= sum(booked) <= size + transfer.CHUNK


def test_kill_9_mid_segmented_run_then_resume(make_emulator, tmp_path):
    """A real process with real piece sizes: every segment resumes where it stopped."""
    from magedl.emulator.core import demo_catalogue, make_file
    from magedl.server.app import MemoryStore

    size = 12 << 20
    store = MemoryStore(*demo_catalogue(big_size=64 << 10))
    store.replace(BIG, make_file(BIG, size, seed=7))
    emulator = make_emulator(store=store)
    emulator.set_faults(rate=3 << 20)  # per connection: four of them fill the file in about a second
    env = dict(os.environ, MAGEDL_BASE_URL=emulator.base_url, MAGEDL_MAGEID=emulator.mageid,
               MAGEDL_TOKEN=emulator.token, HOME=str(tmp_path))
    cmd = [sys.executable, "-m", "magedl", "-q", "get", BIG, "-o", str(tmp_path), "--connections", "4"]
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    # Kill once data flows on several connections and a sidecar with segments has been written.
    sidecar = tmp_path / (BIG + ".magedl-part.json")

    def midway(server):
        live = [r for r in server.in_flight if r.file_name == BIG]
        return server.bytes_sent(BIG) >= size // 3 and len(live) >= 2 and sidecar.exists()

    assert emulator.wait_for(midway, timeout=30)
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    assert emulator.wait_for(lambda s: not [r for r in s.in_flight if r.file_name == BIG], timeout=30)
    segments = json.loads(sidecar.read_text())["segments"]
    kept = sum(done for _, _, done in segments)
    assert len(segments) > 1 and 0 < kept < size
    emulator.clear_faults()
    emulator.clear_log()
    done = subprocess.run(cmd, env=env, capture_output=True, timeout=60)
    assert done.returncode == 0, done.stderr
    log = gets(emulator)
    assert sum(r.bytes_sent for r in log) == size - kept
    assert transfer.md5_file(tmp_path / BIG) == hashlib.md5(store.data(BIG)).hexdigest()
