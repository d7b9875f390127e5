"""The fault matrix of issue 9, for single-stream and segmented downloads, on loopback only.

Faults the emulator plays (cuts, stalls, trickle, 5xx and 429 with
Retry-After, Range ignored, redirects to another host) are played by it;
the others (a cut inside the headers or at the last byte, a Content-Range
that starts elsewhere, lying Content-Lengths, redirect loops, a file replaced
between attempts, TLS) by the small server in ``loopback.py``. A DNS name
that does not resolve uses ``.invalid`` with the resolver stubbed, so not
even a DNS query leaves the machine.

Every case checks the outcome by bytes (the file equals the served data,
or nothing is at the final path) and by what the server saw.
"""

import email.utils
import hashlib
import socket
import ssl
import time

import pytest
import trustme
from transfer.loopback import Loopback
from transfer.xferkit import BIG, SMALL, client_for, gets, leftovers, options, range_start, release

from magedl.config import Settings
from magedl.emulator.catalogue import make_file
from magedl.errors import ChecksumMismatch, MagedlError, NetworkError
from magedl.service.api import Client
from magedl.service.catalog import Release
from magedl.service.retry import RetryPolicy
from magedl.transfer.fetch import fetch_release

SIZE = 512 << 10
DATA = make_file(BIG, SIZE, seed=11)
NEW = make_file(BIG, SIZE + 4096, seed=12)


@pytest.fixture(params=["single", "segmented"])
def mode(request):
    """Transfer options: one connection, or four sharing the file in 32 KiB pieces."""
    return options(connections=1 if request.param == "single" else 4)


def rel_for(data=DATA, md5=None):
    return Release(name="Magento Open Source 2.4.7", file_name=BIG, version="2.4.7", type="ce-full",
                   md5=hashlib.md5(data).hexdigest() if md5 is None else md5)


def plain_client(base_url, attempts=4, timeout=(5.0, 5.0), **settings):
    return Client(Settings(base_url, None, **settings), retry=RetryPolicy(attempts=attempts, backoff=0.01),
                  timeout=timeout)


@pytest.fixture
def loop():
    with Loopback(DATA) as server:
        yield server


def fetch_from(server, folder, opts, data=DATA, hold=True, **kwargs):
    """Fetch from a Loopback; *hold*: make sure a segmented run splits (see Loopback.hold_plain)."""
    server.hold_plain = hold and opts.connections > 1
    return fetch_release(plain_client(server.base_url, **kwargs), rel_for(data), folder, opts)


def assert_nothing_saved(folder):
    assert not (folder / BIG).exists()


# -- connection cuts -----------------------------------------------------------------


def test_cut_inside_the_headers_is_retried(loop, tmp_path, mode):
    loop.faults.extend(["cut_headers", "cut_headers"])
    fetch_from(loop, tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == DATA
    assert [r.fault for r in loop.log[:3]] == ["cut_headers", "cut_headers", None]
    assert loop.log[2].range is None  # nothing was received, so nothing to resume


def test_cut_in_the_body_resumes_where_it_stopped(emulator, tmp_path, mode):
    client = client_for(emulator)
    emulator.set_faults(drop_after=20_000, drop_count=2)  # less than a piece: segmented requests are cut too
    fetch_release(client, release(client), tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == emulator.store.data(BIG)
    assert emulator.wait_for(lambda s: not s.in_flight)
    log = gets(emulator)
    cut = [r for r in log if r.aborted]
    assert len(cut) == 2
    for r in cut:  # each cut request is followed by one that continues exactly there
        assert any(range_start(o) == (range_start(r) or 0) + r.bytes_sent for o in log if o is not r)


def test_cut_at_the_last_byte_fetches_only_that_byte(loop, tmp_path, mode):
    if mode.connections == 1:
        loop.faults.append("cut_last_byte")
    else:  # the pieces, not the first GET whose end moves when the pieces are cut from it
        loop.ranged_faults.extend(["cut_last_byte"] * 3)
    fetch_from(loop, tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == DATA
    cut = [r for r in loop.log if r.fault == "cut_last_byte"]
    assert len(cut) == (1 if mode.connections == 1 else 3)
    for r in cut:  # the byte left out is asked for by itself
        assert any(o.range and o.range.startswith(f"bytes={r.start + r.sent}-") for o in loop.log)


def test_a_stall_past_the_read_timeout_is_cut_and_resumed(emulator, tmp_path, mode):
    client = client_for(emulator, timeout=(2.0, 0.5))
    # Less than any piece: in the segmented run a piece stalls too, not only the first answer.
    emulator.set_faults(stall_after=8 << 10, stall_count=2, stall_seconds=30)
    fetch_release(client, release(client), tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == emulator.store.data(BIG)
    # The stalled answers are still in flight (their handlers sleep until the emulator stops);
    # each was given up on and continued where it stood.
    stalled = [r for r in emulator.in_flight if r.file_name == BIG]
    assert len(stalled) == 2
    every = gets(emulator) + stalled
    for r in stalled:
        assert any(range_start(o) == (range_start(r) or 0) + (8 << 10) for o in every)


def test_a_trickle_is_slow_but_never_cut(emulator, tmp_path, mode):
    """Data that keeps coming, however slowly, is not a timeout: no request is abandoned."""
    client = client_for(emulator, timeout=(2.0, 1.0))
    emulator.set_faults(rate=1 << 20)
    fetch_release(client, release(client), tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == emulator.store.data(BIG)
    assert emulator.wait_for(lambda s: not s.in_flight)
    log = gets(emulator)
    assert all(r.status in (200, 206) for r in log)
    starts = [range_start(r) or 0 for r in log]
    assert len(set(starts)) == len(starts)  # no piece was asked for twice: nothing timed out
    if mode.connections == 1:
        assert len(log) == 1


# -- busy servers ----------------------------------------------------------------------


@pytest.mark.parametrize("status", [503, 429])
@pytest.mark.parametrize("form", ["seconds", "http-date"])
def test_5xx_and_429_bursts_wait_as_retry_after_says(emulator, tmp_path, mode, sleeps, status, form):
    client = client_for(emulator, attempts=5)
    rel = release(client)
    when = "7" if form == "seconds" else email.utils.formatdate(time.time() + 60, usegmt=True)
    emulator.set_faults(fail_status=status, fail_count=3, retry_after=when, fail_paths="file")
    fetch_release(client, rel, tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == emulator.store.data(BIG)
    assert [r.status for r in gets(emulator)][:4] == [status] * 3 + [200]
    assert len(sleeps) == 3
    if form == "seconds":
        assert sleeps == [7.0] * 3
    else:  # the date, one-second resolution, less the time the requests took
        assert all(50 < s <= 60 for s in sleeps)


def test_a_burst_longer_than_the_budget_gives_up_with_exit_7(emulator, tmp_path, mode, sleeps):
    client = client_for(emulator, attempts=3)
    rel = release(client)
    emulator.set_faults(fail_status=503, fail_count=100, retry_after="1", fail_paths="file")
    with pytest.raises(NetworkError) as info:
        fetch_release(client, rel, tmp_path, mode)
    assert info.value.exit_code == 7 and "503" in str(info.value)
    assert len(gets(emulator)) == 3 and len(sleeps) == 2
    assert_nothing_saved(tmp_path)


# -- lying servers ---------------------------------------------------------------------


def test_content_length_longer_than_the_body_once(loop, tmp_path, mode):
    loop.faults.append("long_length")
    fetch_from(loop, tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == DATA


def test_content_length_always_longer_than_the_body_ends_with_a_typed_error(loop, tmp_path, mode):
    """The file can never be completed: the run ends (no endless restarts) and saves nothing."""
    loop.always = "long_length"
    with pytest.raises(MagedlError) as info:
        fetch_from(loop, tmp_path, mode)
    assert info.value.exit_code in (6, 7) and "internal error" not in str(info.value)
    assert_nothing_saved(tmp_path)
    assert len(loop.log) < 60


def test_content_length_always_shorter_than_the_body_ends_with_a_typed_error(loop, tmp_path, mode):
    """Reading stops where the length says: the md5 (or the sizes the ranges state) shows the file is short."""
    loop.always = "short_length"
    with pytest.raises(MagedlError) as info:
        fetch_from(loop, tmp_path, mode)
    assert info.value.exit_code in (6, 7) and "internal error" not in str(info.value)
    assert_nothing_saved(tmp_path)
    assert len(loop.log) < 60


def test_a_content_length_of_five_thousand_digits_is_a_clear_error_or_ignored(loop, tmp_path, mode):
    loop.always = "huge_length"
    try:
        fetch_from(loop, tmp_path, mode, hold=False)  # no size, so no split to wait for
    except MagedlError as exc:
        assert exc.exit_code in (6, 7) and "internal error" not in str(exc)
        assert_nothing_saved(tmp_path)
    else:  # read to the end of the body instead, and proven by the md5
        assert (tmp_path / BIG).read_bytes() == DATA


def test_content_length_shorter_once_is_caught_by_the_md5(loop, tmp_path):
    loop.faults.append("short_length")
    with pytest.raises(ChecksumMismatch):
        fetch_from(loop, tmp_path, options(connections=1))
    assert_nothing_saved(tmp_path)
    assert leftovers(tmp_path) == []  # the bad data is discarded, not kept for a resume


def test_a_content_range_that_starts_elsewhere_is_never_spliced(loop, tmp_path, mode):
    loop.faults.append("cut_body")  # single stream: a resume is needed for a Range to be sent
    loop.ranged_faults.append("wrong_start")
    fetch_from(loop, tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == DATA
    wrong = next(i for i, r in enumerate(loop.log) if r.fault == "wrong_start")
    # The server cannot be trusted with ranges: the run starts over with a plain GET for the whole file.
    assert any(r.range is None and r.status == 200 and r.sent == SIZE for r in loop.log[wrong + 1:])


def test_a_server_that_ignores_range_restarts_cleanly(loop, tmp_path, mode):
    loop.faults.append("cut_body")
    loop.ranged_faults.append("ignore_range")
    result = fetch_from(loop, tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == DATA
    ignored = next(r for r in loop.log if r.fault == "ignore_range")
    assert ignored.status == 200 and result.resumed_from == 0


def test_a_server_that_ignores_range_without_saying_so(emulator, tmp_path, mode):
    client = client_for(emulator)
    emulator.set_faults(no_range=True, drop_after=100_000, drop_count=1)
    result = fetch_release(client, release(client), tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == emulator.store.data(BIG)
    first, second = gets(emulator)  # a resume is tried once; its 200 is the fresh start
    assert second.status == 200 and second.bytes_sent == len(emulator.store.data(BIG))
    assert result.connections == 1 and result.resumed_from == 0


@pytest.mark.parametrize("validators", [True, False])
def test_a_file_replaced_upstream_between_attempts_restarts_never_splices(tmp_path, mode, validators):
    """The feed already lists the new file; the old one was still served when the run began."""
    with Loopback(DATA, validators=validators) as loop:
        loop.next_data = NEW
        loop.faults.append("replace")
        loop.hold_plain = mode.connections > 1 and validators  # without them the file is never split
        result = fetch_release(plain_client(loop.base_url), rel_for(NEW), tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == NEW
    assert result.resumed_from == 0 and result.restarted
    later = loop.log[loop.swapped_at:]  # answered from the new file
    if validators:  # If-Range showed the change at once: no old-tagged range was answered 206
        new_tag = '"' + hashlib.md5(NEW).hexdigest()[:16] + '"'
        assert later and all(r.if_range == new_tag for r in later if r.status == 206)
    else:  # nothing could tell until the md5 did: then one fetch of the whole file
        assert later[-1].range is None and later[-1].status == 200 and later[-1].sent == len(NEW)


# -- redirects, names, TLS -------------------------------------------------------------


def test_redirect_to_another_host_never_carries_the_credentials(emulator, tmp_path, mode):
    client = client_for(emulator)
    data = emulator.store.data(BIG)
    with Loopback(data, host="127.0.0.2") as cdn:
        cdn.hold_plain = mode.connections > 1
        emulator.set_faults(redirect_files_to=cdn.base_url)
        fetch_release(client, release(client), tmp_path, mode)
    assert (tmp_path / BIG).read_bytes() == data
    redirects = gets(emulator)
    assert redirects and all(r.status == 302 and r.had_authorization for r in redirects)
    assert len(cdn.log) == len(redirects) and not any(r.authorization for r in cdn.log)  # every piece
    if mode.connections > 1:
        assert sum(1 for r in cdn.log if r.range) >= 2


def test_a_redirect_loop_fails_fast_with_exit_7(loop, tmp_path, mode):
    loop.always = "redirect_loop"
    with pytest.raises(NetworkError) as info:
        fetch_from(loop, tmp_path, mode)
    assert info.value.exit_code == 7 and "redirect" in str(info.value).lower()
    assert len(loop.log) <= 31  # requests' own limit, once: not retried
    assert list(tmp_path.iterdir()) == []


def test_a_host_name_that_does_not_resolve(tmp_path, mode, monkeypatch):
    real = socket.getaddrinfo
    asked = []

    def getaddrinfo(host, *args, **kwargs):
        if str(host).endswith(".invalid"):  # RFC 6761: never resolves; answered here, no query leaves
            asked.append(host)
            raise socket.gaierror(socket.EAI_NONAME, "Name or service not known")
        return real(host, *args, **kwargs)

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    client = plain_client("http://downloads.magedl-test.invalid/", attempts=2)
    with pytest.raises(NetworkError) as info:
        fetch_release(client, rel_for(), tmp_path, mode)
    assert info.value.exit_code == 7 and "internal error" not in str(info.value)
    assert asked and list(tmp_path.iterdir()) == []


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


def tls_loopback(ca):
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    return Loopback(DATA, tls=context)


def test_tls_with_an_unknown_ca_fails_fast_without_retries(ca, tmp_path, mode):
    with tls_loopback(ca) as server:
        with pytest.raises(NetworkError) as info:
            fetch_from(server, tmp_path, mode, attempts=5)
    assert info.value.exit_code == 7 and "TLS" in str(info.value)
    assert server.connections == 1 and server.log == []  # one handshake, refused; no request made
    assert list(tmp_path.iterdir()) == []


def test_tls_with_the_ca_given_works(ca, tmp_path, mode):
    """The same server, its CA trusted: proves the failure above is the CA and nothing else."""
    with ca.cert_pem.tempfile() as bundle, tls_loopback(ca) as server:
        fetch_from(server, tmp_path, mode, ca_bundle=bundle)
    assert (tmp_path / BIG).read_bytes() == DATA


def test_https_to_a_plain_http_server_fails_fast(loop, tmp_path, mode):
    url = loop.base_url.replace("http://", "https://")
    with pytest.raises(NetworkError) as info:
        fetch_release(plain_client(url, attempts=5), rel_for(), tmp_path, mode)
    assert info.value.exit_code == 7
    assert loop.connections == 1
    assert list(tmp_path.iterdir()) == []


def test_the_loopback_server_serves_ranges_like_a_web_server(loop):
    """The helper itself: a plain GET, a Range, If-Range with a stale tag."""
    import requests

    url = loop.base_url + "file/" + BIG
    assert requests.get(url).content == DATA
    part = requests.get(url, headers={"Range": "bytes=10-19"})
    assert part.status_code == 206 and part.content == DATA[10:20]
    stale = requests.get(url, headers={"Range": "bytes=10-19", "If-Range": '"old"'})
    assert stale.status_code == 200 and stale.content == DATA
    assert SMALL.piece < SIZE  # the segmented mode really splits this file
