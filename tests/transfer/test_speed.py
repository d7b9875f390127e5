"""The speed work of issue 12, held to what it must not change.

Connections are reused across files and opened ahead of need; finished
files are moved into place in batches and still only ever appear complete
and synced; a run keeps to its connection budget; the number of files at
once follows how far the server is; a plain body is read in large blocks
without losing a byte on a cut. No timing is asserted: each test checks
what the server saw or what is on disk.
"""

import hashlib
import os
import threading

import pytest
import requests
from transfer.xferkit import BIG, client_for, options, release

from magedl.service.api import Client
from magedl.transfer import commit as commitlib
from magedl.transfer.commit import Committer
from magedl.transfer.fetch import FAR, NEAR_JOBS, _Last, _Pace, _placer, fetch_many
from magedl.transfer.one_file import Download
from magedl.transfer.options import TransferOptions
from magedl.transfer.shared import Budget, Shared
from magedl.transfer.workers import SegmentWorkers


def small_releases(client, n=5):
    """*n* catalogue records of distinct small files (patches, sample data...), each with an md5."""
    rels = {r.file_name: r for r in client.catalog() if r.md5 and not r.file_name.startswith("Magento-")}
    assert len(rels) >= n
    return [rels[name] for name in sorted(rels)[:n]]


def file_gets(server):
    return [r for r in server.log if r.method == "GET" and r.file_name]


# -- connections ---------------------------------------------------------------------


def test_files_one_after_another_share_one_connection(emulator, tmp_path):
    """The body is read to its end, so the connection goes back to the pool for the next file."""
    client = client_for(emulator)
    rels = small_releases(client)
    outcomes = dict(fetch_many(client, rels, tmp_path, TransferOptions(jobs=1)))
    assert all(not isinstance(o, Exception) for o in outcomes.values())
    gets = file_gets(emulator)
    assert len(gets) == len(rels)
    assert len({r.client for r in gets}) == 1  # one client port: one connection, kept alive


def test_warm_up_opens_connections_the_downloads_then_use(emulator, tmp_path):
    client = client_for(emulator)
    thread = client.warm_up(3, far=0.0)  # "far" whatever the distance: all three are opened
    thread.join(10)
    assert not thread.is_alive() and client.rtt is not None
    pool = pool_of(client)
    assert open_in(pool) == 3
    rels = small_releases(client, 3)
    list(fetch_many(client, rels, tmp_path, TransferOptions(jobs=3)))
    assert pool.num_connections == 3 and open_in(pool) == 3  # feed and files came over them: none new


def test_a_near_server_gets_one_warm_connection_only(emulator):
    client = client_for(emulator)
    client.warm_up(5, far=3600.0).join(10)  # nothing is that far: the first one shows it is near
    assert open_in(pool_of(client)) == 1


def test_warming_up_a_server_that_is_not_there_raises_nothing(tmp_path):
    from magedl.config import Settings

    client = Client(Settings("http://127.0.0.1:9/", None), timeout=(1.0, 1.0))  # discard port: refused
    thread = client.warm_up(4, far=0.0)
    thread.join(10)
    assert not thread.is_alive() and client.rtt is None


def open_in(pool):
    """Connections idle in *pool* and open."""
    return sum(1 for conn in list(pool.pool.queue) if conn is not None and conn.sock is not None)


def pool_of(client):
    prepared = requests.Request("GET", client.base_url).prepare()
    adapter = client.session.get_adapter(client.base_url)
    return adapter.get_connection_with_tls_context(prepared, client.session.verify, client.session.proxies)


def test_a_request_built_directly_is_the_one_session_request_builds(emulator):
    client = client_for(emulator)
    url = client.file_url("dir/ä b+c.tar.gz")
    direct = client._prepare("GET", url, {"Range": "bytes=0-", "Accept-Encoding": "identity"})
    usual = client.session.prepare_request(requests.Request(
        "GET", url, headers={"Range": "bytes=0-", "Accept-Encoding": "identity"}))
    assert (direct.method, direct.url, direct.body) == (usual.method, usual.url, usual.body)
    assert dict(direct.headers) == dict(usual.headers)  # Authorization, User-Agent and the rest


def test_once_the_server_set_a_cookie_requests_builds_every_request(emulator):
    client = client_for(emulator)
    client.session.cookies.set("lb", "node-2", domain="127.0.0.1")
    assert client._prepare("GET", client.file_url("x.tar.gz"), None) is None


# -- the committer -------------------------------------------------------------------


def parts(folder, n):
    """*n* complete partial files in *folder*: ``[(fd, part, dest, data)]``."""
    out = []
    for i in range(n):
        part, dest = folder / f"f{i}.tar.gz.magedl-part", folder / f"f{i}.tar.gz"
        data = os.urandom(1000 + i)
        fd = os.open(part, os.O_RDWR | os.O_CREAT | os.O_EXCL, 0o644)
        os.write(fd, data)
        out.append((fd, part, dest, data))
    return out


@pytest.mark.parametrize("syncfs", [True, False])
def test_files_handed_over_together_are_moved_in_one_batch(tmp_path, monkeypatch, syncfs):
    """While one batch is being synced the others wait, and then go together: one folder sync for them.

    A batch is synced with one syncfs where there is one, else file by file.
    """
    if not syncfs:
        monkeypatch.setattr(commitlib, "_syncfs", lambda fd: False)
    folder_syncs, first_sync_started, release_first = [], threading.Event(), threading.Event()
    per_file = []
    real_fdatasync = os.fdatasync

    def fdatasync(fd):
        per_file.append(fd)
        if not first_sync_started.is_set():
            first_sync_started.set()
            release_first.wait(10)
        real_fdatasync(fd)

    monkeypatch.setattr(commitlib.os, "fdatasync", fdatasync)
    monkeypatch.setattr(commitlib, "fsync_dir", folder_syncs.append)
    settled = []

    def settle(dest):
        def report(error):
            settled.append((dest, error, dest.read_bytes() if dest.exists() else None))
        return report

    files = parts(tmp_path, 5)
    with Committer() as committer:
        fd, part, dest, _ = files[0]
        committer.submit(fd, part, dest, settle(dest))
        assert first_sync_started.wait(10)
        for fd, part, dest, _ in files[1:]:
            committer.submit(fd, part, dest, settle(dest))
        release_first.set()
    assert len(settled) == 5 and all(error is None for _, error, _ in settled)
    # Each was reported only once in place, with its bytes; the four that waited shared one folder sync.
    assert [data for _, _, data in settled] == [data for *_, data in files]
    assert folder_syncs == [tmp_path, tmp_path]
    assert len(per_file) == (1 if syncfs else 5)  # the lone first file, then one syncfs for the four
    assert not list(tmp_path.glob("*.magedl-part"))


def test_a_file_that_cannot_be_moved_is_reported_and_its_partial_kept(tmp_path):
    files = parts(tmp_path, 2)
    (tmp_path / "f0.tar.gz").mkdir()  # a folder where the file should go: the rename fails
    (tmp_path / "f0.tar.gz" / "x").write_text("keep")
    settled = {}
    with Committer() as committer:
        for fd, part, dest, _ in files:
            committer.submit(fd, part, dest, lambda error, dest=dest: settled.__setitem__(dest.name, error))
    assert isinstance(settled["f0.tar.gz"], OSError) and settled["f1.tar.gz"] is None
    assert (tmp_path / "f0.tar.gz.magedl-part").read_bytes() == files[0][3]
    assert (tmp_path / "f1.tar.gz").read_bytes() == files[1][3]


def test_fetched_files_are_in_place_when_reported(emulator, tmp_path):
    client = client_for(emulator)
    rels = small_releases(client)
    for rel, result in fetch_many(client, rels, tmp_path, TransferOptions(jobs=4)):
        assert hashlib.md5((tmp_path / rel.file_name).read_bytes()).hexdigest() == rel.md5 == result.md5
    assert not [p for p in tmp_path.rglob("*") if ".magedl-" in p.name]


# -- how many at once -----------------------------------------------------------------


def test_the_budget_grants_what_is_free_and_never_more():
    budget = Budget(4)
    budget.hold()
    budget.hold()
    assert budget.take(5) == 2 and budget.take(1) == 0
    budget.give(2)
    assert budget.take(1) == 1


def test_a_large_file_splits_only_into_connections_the_run_leaves_free(emulator, tmp_path, monkeypatch):
    client = client_for(emulator)
    rel = release(client, BIG)
    most = []
    real_spawn = SegmentWorkers._spawn

    def spawn(self, n, first=None):
        real_spawn(self, n, first)
        most.append(len(self.workers))

    monkeypatch.setattr(SegmentWorkers, "_spawn", spawn)
    # Throttled, so the first stream cannot have the whole file before the pieces are cut.
    emulator.set_faults(rate=len(emulator.store.data(BIG)) * 2)
    budget = Budget(2)
    budget.hold()  # the download's own connection, as fetch_many holds it: one extra is left
    delivered = []
    with Committer() as committer:
        Download(client, client.file_url(BIG), tmp_path / BIG, file_name=BIG, md5=rel.md5,
                 options=options(connections=4), shared=Shared(committer, delivered.append, budget)).run()
    budget.give()
    [result] = delivered
    assert result.md5 == rel.md5 and result.connections > 2  # many pieces...
    assert max(most) == 2  # ...by two connections, not the four asked for
    assert budget.take(10) == 2  # everything given back


@pytest.mark.parametrize("same", [False, True])
def test_the_same_file_listed_twice_is_fetched_once_then_found(emulator, tmp_path, same):
    client = client_for(emulator)
    [rel] = small_releases(client, 1)
    twice = [rel, rel] if same else [rel]
    outcomes = [o for _, o in fetch_many(client, twice, tmp_path, TransferOptions(jobs=2))]
    assert [getattr(o, "skipped", None) for o in outcomes] == ([False, True] if same else [False])
    assert len([r for r in file_gets(emulator) if r.file_name == rel.file_name]) == 1


def test_files_at_once_follow_how_far_the_server_is():
    assert _Pace(16).jobs == NEAR_JOBS
    assert _Pace(16, rtt=FAR).jobs == 16
    assert _Pace(2).jobs == 2
    pace = _Pace(16)
    assert not pace.observe(FAR) and not pace.observe(FAR / 10) and not pace.observe(FAR)
    assert pace.jobs == NEAR_JOBS  # one quick answer among the last three: near
    assert not pace.observe(FAR)
    assert pace.observe(FAR) is True and pace.jobs == 16  # three slow ones in a row: far


@pytest.mark.parametrize("jobs", [1, 4])
def test_every_file_of_a_run_is_yielded_once(emulator, tmp_path, jobs):
    client = client_for(emulator)
    rels = small_releases(client)
    seen = [rel.file_name for rel, _ in fetch_many(client, rels, tmp_path, TransferOptions(jobs=jobs))]
    assert sorted(seen) == sorted(r.file_name for r in rels)


def test_the_last_outcome_wakes_the_caller_at_once_and_the_others_do_not():
    """Outcomes are polled (no wake-up per small file), except the run's last, which ends the wait."""
    last = _Last(3)
    last.count()
    last.count()
    assert not last._event.is_set()
    last.count()
    assert last._event.is_set()


def test_placing_names_looks_each_folder_up_once(tmp_path, monkeypatch):
    """Names placed in a few folders cost a look-up each and one per folder level the first time a folder is met,
    not a resolution of every path (~20 lstat each)."""
    place = _placer(tmp_path)  # what fetch_many places each file with
    place("composer/dist/a/b/first.zip")  # the folder itself, resolved once
    root = tmp_path.resolve()
    for i in range(4):
        (root / f"composer/dist/v{i % 2}/p{i % 4}").mkdir(parents=True)  # as the writer makes them
    calls = []
    for name in ("lstat", "stat", "open", "readlink"):
        real = getattr(os, name)
        monkeypatch.setattr(os, name, lambda *a, _real=real, **k: calls.append(a[0]) or _real(*a, **k))
    for i in range(40):
        got = place(f"composer/dist/v{i % 2}/p{i % 4}/{i}.zip")
        assert got == root.joinpath("composer", "dist", f"v{i % 2}", f"p{i % 4}", f"{i}.zip")
    # Per name, its folder opened and named by the kernel (the one found there), and for each of the four folders
    # met the first time, a look-up per level (composer, dist, v, p).
    assert len(calls) <= 40 * 2 + 4 * 4
