"""The transfer engine against the emulator, a real HTTP server on 127.0.0.1.

Every guarantee of DESIGN.md about a single file is checked here by what
the server actually sent (its request log), not by what the client says.
"""

import dataclasses
import hashlib
import json
import threading

import pytest

from magedl.config import Credentials, Settings
from magedl.errors import (
    AuthError,
    ChecksumMismatch,
    EntitlementError,
    Interrupted,
    LocalFileError,
    NetworkError,
    NotAnArchive,
    NotFoundError,
    UnsafeNameError,
    UnverifiedFile,
)
from magedl.service.api import Client
from magedl.service.retry import RetryPolicy
from magedl.transfer.fetch import fetch_release
from magedl.transfer.one_file import md5_file
from magedl.transfer.options import TransferOptions, Tuning

BIG = "Magento-CE-2.4.7.tar.gz"


def range_start(record):
    """First byte a logged request asked for (``Range: bytes=N-...``), or None."""
    return int(record.range.split("=")[1].split("-")[0]) if record.range else None


def client_for(server, token=None, attempts=4, timeout=(5.0, 5.0), mageid=None):
    creds = Credentials(mageid or server.mageid, token or server.token)
    return Client(Settings(server.base_url, creds), retry=RetryPolicy(attempts=attempts, backoff=0.01),
                  timeout=timeout)


def release(client, name):
    return next(r for r in client.catalog() if r.file_name == name)


def file_gets(server, name):
    return [r for r in server.log if r.file_name == name and r.method == "GET"]


# One connection, and progress events for every chunk, so a test can stop a transfer at a byte count.
OPTS = TransferOptions(connections=1, tuning=Tuning(progress_interval=0))


def fetch(client, rel, folder, options=OPTS, **kwargs):
    return fetch_release(client, rel, folder, options, **kwargs)


def interrupted_fetch(server, rel, folder, after=100_000):
    """A run stopped by Ctrl-C once *after* bytes are on disk; returns the bytes kept.

    The server cuts the body a little later, so the client cannot have the
    whole file by the time it is interrupted, however the reads fall.
    """

    cancel = threading.Event()

    def stop(p):
        if p.event == "data" and p.done >= after:
            cancel.set()

    server.set_faults(drop_after=after + 50_000, drop_count=1)
    with pytest.raises(Interrupted):
        fetch(client_for(server), rel, folder, progress=stop, cancel=cancel)
    server.set_faults(drop_after=None)
    assert server.wait_for(lambda s: len(file_gets(s, rel.file_name)) == 1)
    server.clear_log()
    return kept_bytes(folder / rel.file_name)


def kept_bytes(dest):
    """Bytes a partial download holds, by its sidecar (the part file is preallocated)."""
    state = json.loads((dest.parent / (dest.name + ".magedl-part.json")).read_text())
    return sum(done for _, _, done in state["segments"])


def leftovers(folder):
    return sorted(p.name for p in folder.rglob("*") if ".magedl-" in p.name)


def test_fetch_saves_verified_file_and_no_side_files(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    events = []
    result = fetch(client, rel, tmp_path, progress=events.append)
    data = emulator.store.data(BIG)
    assert (tmp_path / BIG).read_bytes() == data
    assert result.md5 == hashlib.md5(data).hexdigest() == rel.md5
    assert result.size == len(data) and not result.skipped and result.verified
    assert leftovers(tmp_path) == []
    assert events[0].event == "start" and events[-1].event == "done"
    assert events[-1].done == events[-1].total == len(data)
    [get] = file_gets(emulator, BIG)
    assert get.headers.get("Accept-Encoding") == "identity"


def test_cut_connection_resumes_with_range_for_missing_bytes_only(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    size = len(emulator.store.data(BIG))
    emulator.set_faults(drop_after=100_000, drop_count=1)
    fetch(client, rel, tmp_path)
    first, second = file_gets(emulator, BIG)
    assert first.bytes_sent == 100_000 and first.range is None
    assert range_start(second) == 100_000 and second.status == 206 and second.if_range
    assert second.bytes_sent == size - 100_000
    assert md5_file(tmp_path / BIG) == rel.md5


def test_failed_run_keeps_partial_and_exits_7(emulator, tmp_path):
    client = client_for(emulator, attempts=2)
    rel = release(client, BIG)
    emulator.set_faults(drop_after=0, drop_count=100)
    with pytest.raises(NetworkError) as info:
        fetch(client, rel, tmp_path)
    assert info.value.exit_code == 7 and "gave up" in str(info.value)
    # A request is logged once its handler ends, which may be after the client saw the cut.
    assert emulator.wait_for(lambda s: not s.in_flight, timeout=10)
    assert len(file_gets(emulator, BIG)) == 2 and not (tmp_path / BIG).exists()


def test_partial_from_an_interrupted_run_is_resumed_by_the_next(emulator, tmp_path):
    rel = release(client_for(emulator), BIG)
    size = len(emulator.store.data(BIG))
    kept = interrupted_fetch(emulator, rel, tmp_path, after=200_000)
    assert 200_000 <= kept < size and not (tmp_path / BIG).exists()
    fetch(client_for(emulator), rel, tmp_path)
    [get] = file_gets(emulator, BIG)
    assert range_start(get) == kept and get.bytes_sent == size - kept
    assert md5_file(tmp_path / BIG) == rel.md5 and leftovers(tmp_path) == []


def test_server_without_range_restarts_from_zero(emulator, tmp_path):
    rel = release(client_for(emulator), BIG)
    size = len(emulator.store.data(BIG))
    emulator.set_faults(drop_after=150_000, drop_count=1, no_range=True)
    fetch(client_for(emulator), rel, tmp_path)
    first, second = file_gets(emulator, BIG)
    assert second.status == 200 and second.bytes_sent == size
    assert md5_file(tmp_path / BIG) == rel.md5


def test_file_changed_upstream_between_runs_restarts(emulator, tmp_path):
    rel = release(client_for(emulator), BIG)
    interrupted_fetch(emulator, rel, tmp_path)
    new = bytes([0x1F, 0x8B, 8]) + b"republished" * 40_000
    emulator.store.replace(BIG, new)  # new ETag, Last-Modified and feed md5
    emulator.clear_faults()
    emulator.clear_log()
    client = client_for(emulator)
    fetch(client, release(client, BIG), tmp_path)
    assert (tmp_path / BIG).read_bytes() == new
    # The old partial belonged to another md5, so no Range was even tried.
    assert all(r.range is None for r in file_gets(emulator, BIG))


def test_if_range_mismatch_gets_whole_new_file(emulator, tmp_path):
    """Feed md5 unchanged (stale feed) but the file changed: If-Range makes it a 200."""
    rel = release(client_for(emulator), BIG)
    interrupted_fetch(emulator, rel, tmp_path)
    emulator.store.replace(BIG, emulator.store.data(BIG)[:-1] + b"X", update_md5=False)
    with pytest.raises(ChecksumMismatch) as info:
        fetch(client_for(emulator), rel, tmp_path)
    [get] = file_gets(emulator, BIG)
    assert get.if_range and get.status == 200  # validators caught the change: no stale prefix kept
    assert info.value.exit_code == 6 and rel.md5 in str(info.value)
    assert not (tmp_path / BIG).exists() and leftovers(tmp_path) == []


def test_no_validators_and_stale_prefix_restarts_once_then_succeeds(emulator, tmp_path):
    rel = release(client_for(emulator), BIG)
    emulator.set_faults(no_validators=True)
    kept = interrupted_fetch(emulator, rel, tmp_path)
    part = tmp_path / (BIG + ".magedl-part")
    with open(part, "r+b") as f:  # the kept prefix rotted (or came from an older upload)
        f.write(b"\x1f\x8b\x08garbage")
    fetch(client_for(emulator), rel, tmp_path)
    resumed, whole = file_gets(emulator, BIG)
    assert range_start(resumed) == kept and not resumed.if_range and whole.range is None
    assert md5_file(tmp_path / BIG) == rel.md5


def test_503_with_retry_after_is_retried_then_succeeds(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    emulator.set_faults(fail_status=503, fail_count=2, retry_after="0", fail_paths="file")
    fetch(client, rel, tmp_path)
    assert [r.status for r in file_gets(emulator, BIG)] == [503, 503, 200]


def test_persistent_429_gives_up_with_exit_7(emulator, tmp_path):
    client = client_for(emulator, attempts=3)
    rel = release(client, BIG)
    emulator.set_faults(fail_status=429, fail_count=100, retry_after="0", fail_paths="file")
    with pytest.raises(NetworkError) as info:
        fetch(client, rel, tmp_path)
    assert info.value.exit_code == 7 and "429" in str(info.value)
    assert len(file_gets(emulator, BIG)) == 3


def test_403_is_not_retried_and_explains_entitlement(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    emulator.set_faults(forbidden={BIG})
    with pytest.raises(EntitlementError) as info:
        fetch(client, rel, tmp_path)
    assert info.value.exit_code == 4 and "listed" in str(info.value)
    assert len(file_gets(emulator, BIG)) == 1
    assert list(tmp_path.iterdir()) == []


def test_404_for_listed_but_missing_file(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    emulator.set_faults(missing_files={BIG})
    with pytest.raises(NotFoundError):
        fetch(client, rel, tmp_path)
    assert len(file_gets(emulator, BIG)) == 1


def test_bad_token_is_refused_with_exit_3(emulator, tmp_path):
    """On loopback the server is not Adobe's, so the advice is about what was sent, never the token itself.

    The token advice for the real service ("Downloads Access Token") is held by
    tests/service/test_api.py::test_401_is_auth_error.
    """
    client = client_for(emulator, token="0" * 40)
    with pytest.raises(AuthError) as info:
        client.catalog()
    message = str(info.value)
    assert info.value.exit_code == 3 and "HTTP 401" in message and emulator.mageid in message
    assert "0" * 40 not in message


@pytest.mark.parametrize("mode", ["text-200", "html-200"])
def test_bad_token_answered_with_200_page_is_not_saved(emulator, tmp_path, mode):
    rel = release(client_for(emulator), BIG)
    emulator.set_faults(auth_failure=mode)
    with pytest.raises(NotAnArchive) as info:
        fetch(client_for(emulator, token="f" * 40), rel, tmp_path)
    assert info.value.exit_code == 6
    assert list(tmp_path.iterdir()) == []


def test_bad_token_as_text_200_on_the_feed_reads_as_auth_failure(emulator):
    emulator.set_faults(auth_failure="text-200")
    with pytest.raises(AuthError):
        client_for(emulator, token="f" * 40).catalog()


def test_html_page_with_200_is_never_saved(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    emulator.set_faults(html_200={BIG})
    with pytest.raises(NotAnArchive) as info:
        fetch(client, rel, tmp_path)
    assert "HTML" in str(info.value)
    assert list(tmp_path.iterdir()) == []


def test_md5_mismatch_discards_data_and_names_both_sums(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    bad = bytearray(emulator.store.data(BIG))
    bad[-1] ^= 0xFF
    emulator.store.replace(BIG, bytes(bad), update_md5=False)
    with pytest.raises(ChecksumMismatch) as info:
        fetch(client, rel, tmp_path)
    message = str(info.value)
    assert rel.md5 in message and hashlib.md5(bad).hexdigest() in message
    assert list(tmp_path.iterdir()) == []


def test_redirect_to_other_host_drops_credentials(emulator, second_host, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    emulator.set_faults(redirect_files_to=second_host.base_url)
    fetch(client, rel, tmp_path)
    [redirect] = file_gets(emulator, BIG)
    assert redirect.status in (301, 302, 303, 307, 308) and redirect.had_authorization
    [cdn] = [r for r in second_host.log if r.method == "GET"]
    assert cdn.status == 200 and not cdn.had_authorization
    assert md5_file(tmp_path / BIG) == rel.md5


def test_stalled_server_times_out_and_resumes(emulator, tmp_path):
    client = client_for(emulator, timeout=(2.0, 0.5))
    rel = release(client, BIG)
    # Far longer than the read timeout: only a timeout gets the client past it, and nothing waits for it
    # to end: stopping the emulator cuts the stalled answer, and stop returns once every answer is logged.
    emulator.set_faults(stall_after=64 * 1024, stall_count=1, stall_seconds=30)
    fetch(client, rel, tmp_path)
    emulator.stop()
    assert len(file_gets(emulator, BIG)) == 2
    stalled = next(r for r in file_gets(emulator, BIG) if r.range is None)
    resumed = next(r for r in file_gets(emulator, BIG) if r.range is not None)
    assert stalled.aborted and range_start(resumed) == 64 * 1024 and resumed.status == 206
    assert md5_file(tmp_path / BIG) == rel.md5


def test_server_that_gzips_unless_asked_not_to(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    emulator.set_faults(gzip_unless_identity=True)
    fetch(client, rel, tmp_path)
    assert md5_file(tmp_path / BIG) == rel.md5


def test_present_and_verified_file_is_not_fetched_again(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    fetch(client, rel, tmp_path)
    emulator.clear_log()
    result = fetch(client, rel, tmp_path)
    assert result.skipped and file_gets(emulator, BIG) == []


def test_present_but_wrong_file_is_replaced_only_after_verification(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    (tmp_path / BIG).write_bytes(b"old corrupt copy")
    emulator.set_faults(html_200={BIG})
    with pytest.raises(NotAnArchive):
        fetch(client, rel, tmp_path)
    assert (tmp_path / BIG).read_bytes() == b"old corrupt copy"  # not lost on failure
    emulator.clear_faults()
    fetch(client, rel, tmp_path)
    assert md5_file(tmp_path / BIG) == rel.md5


def test_missing_md5_warns_and_require_checksum_refuses(emulator, tmp_path, caplog):
    client = client_for(emulator)
    rel = next(r for r in client.catalog() if not r.md5)
    with pytest.raises(UnverifiedFile):
        fetch(client, rel, tmp_path, dataclasses.replace(OPTS, require_checksum=True))
    assert file_gets(emulator, rel.file_name) == []
    result = fetch(client, rel, tmp_path)
    assert not result.verified
    assert "UNVERIFIED" in caplog.text


def test_missing_md5_still_refuses_wrong_magic(emulator, tmp_path):
    client = client_for(emulator)
    listed = next(r for r in client.catalog() if r.suffix == ".zip")
    rel = dataclasses.replace(listed, md5="")  # as if the feed gave no md5
    emulator.store.replace(rel.file_name, b"\x00" * 5000, update_md5=False)
    with pytest.raises(NotAnArchive):
        fetch(client, rel, tmp_path)


def test_unsafe_feed_name_refused_before_any_request(emulator, tmp_path):
    from magedl.service.catalog import Release

    client = client_for(emulator)
    evil = Release(name="x", file_name="../escape.tar.gz", version="2.4.7", type="ce-full", md5="0" * 32)
    emulator.clear_log()
    with pytest.raises(UnsafeNameError):
        fetch(client, evil, tmp_path / "out")
    assert emulator.log == []


def test_name_with_slash_lands_in_subfolder(emulator, tmp_path):
    client = client_for(emulator)
    rel = next(r for r in client.catalog() if "/" in r.file_name)
    result = fetch(client, rel, tmp_path)
    assert result.path == (tmp_path / rel.file_name).resolve()
    assert md5_file(result.path) == rel.md5


def test_sidecar_holds_no_credentials(emulator, tmp_path):
    rel = release(client_for(emulator), BIG)
    interrupted_fetch(emulator, rel, tmp_path)
    state = json.loads((tmp_path / (BIG + ".magedl-part.json")).read_text())
    assert state["url"].startswith("http://127.0.0.1:")
    text = json.dumps(state)
    assert emulator.token not in text and emulator.mageid not in text


def test_resume_past_a_shrunk_file_starts_over(emulator, tmp_path):
    """416 for the resume range (file re-published shorter, no validators to tell): start over."""
    client = client_for(emulator)
    rel = dataclasses.replace(release(client, BIG), md5="")  # a stale or empty feed md5 cannot tell either
    emulator.set_faults(no_validators=True)
    kept = interrupted_fetch(emulator, rel, tmp_path, after=200_000)
    shorter = emulator.store.data(BIG)[:50_000]
    emulator.store.replace(BIG, shorter, update_md5=False)
    result = fetch(client, rel, tmp_path)
    statuses = [r.status for r in file_gets(emulator, BIG)]
    assert kept >= 200_000 and statuses == [416, 200]
    assert (tmp_path / BIG).read_bytes() == shorter and result.size == 50_000


def test_unwritable_destination_is_a_typed_local_error(emulator, tmp_path):
    client = client_for(emulator)
    rel = release(client, BIG)
    (tmp_path / BIG).mkdir()  # something that is not a file already holds the name
    with pytest.raises(LocalFileError) as info:
        fetch(client, rel, tmp_path)
    assert info.value.exit_code == 1 and str(tmp_path / BIG) in str(info.value)
