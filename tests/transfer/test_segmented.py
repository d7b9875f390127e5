"""Segmented transfers: several connections per file, each segment keeping the core guarantees.

Integration tests against the emulator. Piece sizes are shrunk (a small
Tuning) so the 512 KiB test file splits into many segments; one test uses a
real ``magedl`` process and real piece sizes.
"""

import dataclasses
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
from magedl.transfer.fetch import fetch_release
from magedl.transfer.one_file import md5_file
from magedl.transfer.options import TransferOptions, Tuning
from magedl.transfer.ratelimit import RateLimiter

BIG = "Magento-CE-2.4.7.tar.gz"


# -- against the emulator --------------------------------------------------------


# Pieces of 32 KiB, so the 512 KiB test file takes many segments; progress on every chunk.
SMALL = Tuning(min_split=16 << 10, piece=32 << 10, align=4 << 10, progress_interval=0)


def options(connections=4, adaptive=False, tuning=SMALL, **kwargs):
    return TransferOptions(connections=connections, adaptive=adaptive, tuning=tuning, **kwargs)


def client_for(server, attempts=4):
    return Client(Settings(server.base_url, Credentials(server.mageid, server.token)),
                  retry=RetryPolicy(attempts=attempts, backoff=0.01), timeout=(5.0, 5.0))


def release(client, name=BIG):
    return next(r for r in client.catalog() if r.file_name == name)


def gets(server, name=BIG):
    return [r for r in server.log if r.file_name == name and r.method == "GET"]


def range_start(record):
    return int(record.range.split("=")[1].split("-")[0]) if record.range else 0


def test_several_connections_fetch_each_byte_once(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client)
    data = emulator.store.data(BIG)
    # Throttled, so the first stream cannot have the whole file before the pieces are cut.
    emulator.set_faults(rate=len(data) * 2)
    result = fetch_release(client, rel, tmp_path, options(sha256=True, sha1=True))
    assert emulator.wait_for(lambda s: not s.in_flight, timeout=10)  # the cut-short GET is logged too
    assert (tmp_path / BIG).read_bytes() == data
    assert result.md5 == rel.md5 and result.sha256 == hashlib.sha256(data).hexdigest()
    assert result.sha1 == hashlib.sha1(data).hexdigest()  # computed as the pieces arrived, as md5 is
    assert result.connections > 1
    log = gets(emulator)
    ranged = [r for r in log if r.range]
    assert len(ranged) >= 3 and all(r.status == 206 and r.if_range for r in ranged)
    # The first plain GET is cut short where the pieces begin: nothing is fetched twice.
    assert sum(r.bytes_sent for r in log if r.status == 206) + min(
        r.bytes_sent for r in log if r.range is None) >= len(data) - (32 << 10)
    assert {p.name for p in tmp_path.iterdir()} == {BIG}


def test_failing_segment_is_retried_on_its_own(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client)
    emulator.set_faults(drop_after=8 << 10, drop_count=3)
    fetch_release(client, rel, tmp_path, options())
    assert md5_file(tmp_path / BIG) == rel.md5
    log = gets(emulator)
    cut = [r for r in log if r.aborted]
    assert len(cut) == 3
    for r in cut:  # each cut request is followed by one that resumes exactly where it stopped
        resumed_at = range_start(r) + r.bytes_sent
        assert any(range_start(o) == resumed_at for o in log if o is not r)


def test_interrupted_segments_resume_without_refetching(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client)
    size = len(emulator.store.data(BIG))
    cancel = threading.Event()

    def stop(p):
        if p.event == "data" and p.done >= size // 2:
            cancel.set()

    emulator.set_faults(rate=size)  # one second per connection for the whole file: several run at once
    with pytest.raises(Interrupted):
        fetch_release(client, rel, tmp_path, options(), progress=stop, cancel=cancel)
    state = json.loads((tmp_path / (BIG + ".magedl-part.json")).read_text())
    segments = state["segments"]
    kept = sum(done for _, _, done in segments)
    assert len(segments) > 2 and 0 < kept < size
    assert emulator.wait_for(lambda s: not s.in_flight, timeout=10)
    emulator.clear_faults()
    emulator.clear_log()
    # No further splitting on the resume: a split makes the server send bytes past the
    # new end into the socket, which its log would count as fetched.
    no_split = dataclasses.replace(SMALL, min_split=1 << 30)
    fetch_release(client_for(emulator), rel, tmp_path, options(tuning=no_split))
    assert md5_file(tmp_path / BIG) == rel.md5
    log = gets(emulator)
    assert all(r.status == 206 for r in log)
    assert sum(r.bytes_sent for r in log) == size - kept
    starts = {range_start(r) for r in log}
    for start, end, done in segments:
        if start + done < end:
            assert start + done in starts


def test_server_without_range_gets_a_single_stream(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client)
    emulator.set_faults(no_range=True)
    result = fetch_release(client, rel, tmp_path, options(connections=8))
    [get] = gets(emulator)
    assert get.range is None and get.status == 200 and result.connections == 1
    assert md5_file(tmp_path / BIG) == rel.md5


def test_adaptive_mode_keeps_one_connection_when_it_is_fast(emulator, tmp_path):
    fast = dataclasses.replace(SMALL, fast_enough=0, expand_after=0)  # any speed counts as fast
    client = client_for(emulator)
    fetch_release(client, release(client), tmp_path, options(connections=8, adaptive=True, tuning=fast))
    assert len(gets(emulator)) == 1


def test_adaptive_mode_adds_connections_when_one_is_slow(emulator, tmp_path):
    slow = dataclasses.replace(SMALL, fast_enough=float("inf"), expand_after=0)
    client = client_for(emulator)
    rel = release(client)
    emulator.set_faults(rate=256 << 10)
    fetch_release(client, rel, tmp_path, options(adaptive=True, tuning=slow))
    assert len(gets(emulator)) > 2
    assert md5_file(tmp_path / BIG) == rel.md5


def test_rate_limit_spans_all_connections(emulator, tmp_path):
    """Every byte of every connection goes through the one limiter."""
    booked = []

    class Recorder(RateLimiter):
        def take(self, n, stop=None):
            booked.append(n)

    client = client_for(emulator)
    rel = release(client)
    fetch_release(client, rel, tmp_path, options(), limiter=Recorder(1 << 30))
    size = len(emulator.store.data(BIG))
    # Each byte once: a block is cut to its segment (never split below it) before it is booked.
    assert sum(booked) == size


def test_kill_9_mid_segmented_run_then_resume(make_emulator, tmp_path):
    """A real process with real piece sizes: every segment resumes where it stopped."""
    from magedl.emulator.catalogue import demo_catalogue, make_file
    from magedl.server.stores import MemoryStore

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
    assert md5_file(tmp_path / BIG) == hashlib.md5(store.data(BIG)).hexdigest()
