"""The downloads-API emulator: demo catalogue, each fault switch, the CLI."""

import gzip
import hashlib
import http.client
import signal
import subprocess
import sys
import threading
import time

import pytest
import requests
from clirun import printed_lines

from magedl.config import parse_size
from magedl.emulator import AUTH_FAILURE_BODY, DEMO_TOKEN, Emulator, Faults, demo_catalogue, make_file
from magedl.service.catalog import parse_feed, select

SMALL = "Magento-CE-2.4.6.tar.gz"
BIG_FILE = "Magento-CE-2.4.7.tar.gz"
SMALL_BIG_SIZE = 512 * 1024  # what the conftest fixtures generate


@pytest.fixture
def get(emulator, emulator_auth):
    """GET (or another method) against the emulator, identity encoding."""
    session = requests.Session()
    session.auth = emulator_auth
    session.headers["Accept-Encoding"] = "identity"

    def call(path, method="GET", **kwargs):
        return session.request(method, emulator.base_url + path, **kwargs)

    yield call
    session.close()


def raw_file_get(emulator, name, headers=None):
    """GET a file with http.client, returning (response, body, short)."""
    conn = http.client.HTTPConnection("127.0.0.1", emulator.port, timeout=10)
    headers = dict(headers or {})
    headers.setdefault("Accept-Encoding", "identity")
    token = requests.auth._basic_auth_str(emulator.mageid, emulator.token)
    conn.request("GET", emulator.prefix + "file/" + name,
                 headers={"Authorization": token, **headers})
    resp = conn.getresponse()
    try:
        body, short = resp.read(), False
    except http.client.IncompleteRead as exc:
        body, short = exc.partial, True
    conn.close()
    return resp, body, short


# -- demo catalogue ------------------------------------------------------------


def test_demo_catalogue_parses_and_md5s_match(demo):
    feed, files = demo
    warnings = []
    releases = parse_feed(feed, warn=warnings.append)
    assert warnings == []
    assert {r.file_name for r in releases} == set(files)
    unverified = [r for r in releases if not r.md5]
    assert [r.file_name for r in unverified] == ["PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh"]
    for r in releases:
        if r.md5:
            assert hashlib.md5(files[r.file_name]).hexdigest() == r.md5, r.file_name
        assert r.extra.get("date")


def test_demo_catalogue_has_every_oddity(demo):
    feed, files = demo
    releases = parse_feed(feed)
    versions = {r.version for r in releases if r.type == "ce-full"}
    assert {"2.4.6-p1", "2.4.6-p2", "2.4.6-p10", "2.4.7"} <= versions
    suffixes = {r.suffix for r in releases}
    assert {".tar.gz", ".zip", ".tar.bz2", ".sh"} <= suffixes
    names = [r.file_name for r in releases]
    assert any("_sample_data" in n for n in names)
    assert any(n.startswith("Magento-EE-") and n.count("-") >= 7 for n in names)
    assert any("/" in n for n in names)
    assert len(names) > len(set(names)), "one file should be listed twice"
    assert isinstance(feed["other"], list)
    assert "magento-1.9.4.5.tar.gz" in names
    assert set(feed) - {"ce-full", "ee-full", "ce-patch", "ee-patch", "other"}
    assert any(r.ce_versions for r in releases if r.type == "ce-patch")
    assert any(r.ee_versions for r in releases if r.type == "ee-patch")
    assert any("release_notes" in r.extra for r in releases)
    assert select(releases, types=["ce-full"], latest=True)[0].version == "2.4.7"


def test_demo_content_looks_like_its_format(demo):
    _, files = demo
    for name, data in files.items():
        if name.endswith(".tar.gz"):
            assert data[:3] == b"\x1f\x8b\x08", name
        elif name.endswith(".zip"):
            assert data[:4] == b"PK\x03\x04", name
        elif name.endswith(".tar.bz2"):
            assert data[:3] == b"BZh", name
        elif name.endswith(".sh"):
            assert data.startswith(b"#!/bin/bash\n"), name
            data.decode("ascii")
        else:
            pytest.fail(f"unexpected suffix: {name}")
    assert len(files[BIG_FILE]) == SMALL_BIG_SIZE
    others = [len(d) for n, d in files.items() if n != BIG_FILE]
    assert max(others) <= 64 * 1024 and len(set(others)) > 1


def test_demo_catalogue_is_deterministic():
    one = demo_catalogue(seed=1, big_size=1000)
    assert one == demo_catalogue(seed=1, big_size=1000)
    other = demo_catalogue(seed=2, big_size=1000)
    assert one[1][SMALL] != other[1][SMALL]


@pytest.mark.parametrize("name, size, head", [
    ("a.tar.gz", 100, b"\x1f\x8b\x08"), ("a.zip", 10, b"PK\x03\x04"),
    ("a.tar.bz2", 50, b"BZh"), ("p.sh", 300, b"#!/bin/bash\n"), ("a.zip", 2, b"PK"),
])
def test_make_file(name, size, head):
    data = make_file(name, size, seed=3)
    assert len(data) == size and data.startswith(head)
    assert data == make_file(name, size, seed=3)
    assert data != make_file("other-" + name, size, seed=3) or size <= 4


# -- plain behaviour --------------------------------------------------------------


def test_defaults(emulator, get):
    assert emulator.base_url == f"http://127.0.0.1:{emulator.port}/products/downloads/"
    assert emulator.mageid == "MAG000123456"
    assert len(emulator.token) == 40 and int(emulator.token, 16) >= 0
    assert emulator.token not in repr(emulator)
    r = get("file/" + SMALL)
    assert r.status_code == 200
    assert r.content == emulator.store.data(SMALL)
    assert r.headers["Accept-Ranges"] == "bytes" and r.headers["ETag"]
    assert get("info/json").json() == emulator.store.feed()


def test_auth_required_by_default(emulator):
    r = requests.get(emulator.base_url + "info/json")
    assert r.status_code == 401 and "Basic" in r.headers["WWW-Authenticate"]
    r = requests.get(emulator.base_url + "info/json", auth=(emulator.mageid, "0" * 40))
    assert r.status_code == 401


def test_require_auth_false(make_emulator):
    emu = make_emulator(require_auth=False)
    assert requests.get(emu.base_url + "info/help").status_code == 200


def test_custom_credentials(make_emulator):
    emu = make_emulator(mageid="MAG000000042", token="f" * 40)
    assert requests.get(emu.base_url + "info/help", auth=("MAG000000042", "f" * 40)).ok
    assert not requests.get(emu.base_url + "info/help", auth=("MAG000123456", DEMO_TOKEN)).ok


# -- faults --------------------------------------------------------------------------


def test_auth_failure_text_200(emulator):
    emulator.set_faults(auth_failure="text-200")
    r = requests.get(emulator.base_url + "file/Magento-CE-2.4.0.tar.gz", auth=("x", "y"))
    assert r.status_code == 200
    assert r.content == AUTH_FAILURE_BODY and len(r.content) == 25
    assert r.headers["Content-Type"].startswith("text/plain")


def test_auth_failure_html_200(emulator):
    emulator.set_faults(auth_failure="html-200")
    r = requests.get(emulator.base_url + "info/json")
    assert r.status_code == 200
    assert r.headers["Content-Type"].startswith("text/html")
    assert b"<html" in r.content.lower()


def test_no_range(emulator, get):
    emulator.set_faults(no_range=True)
    etag = get("file/" + SMALL, "HEAD").headers["ETag"]
    r = get("file/" + SMALL, headers={"Range": "bytes=100-", "If-Range": etag})
    assert r.status_code == 200
    assert r.content == emulator.store.data(SMALL)
    assert "Accept-Ranges" not in r.headers
    emulator.faults.no_range = False  # read per request
    assert get("file/" + SMALL, headers={"Range": "bytes=100-"}).status_code == 206


def test_no_validators(emulator, get):
    emulator.set_faults(no_validators=True)
    r = get("file/" + SMALL, headers={"Range": "bytes=0-9"})
    assert r.status_code == 206
    assert "ETag" not in r.headers and "Last-Modified" not in r.headers
    # Without validators no If-Range can match: the whole file comes back.
    r = get("file/" + SMALL, headers={"Range": "bytes=0-9", "If-Range": '"x"'})
    assert r.status_code == 200 and len(r.content) == len(emulator.store.data(SMALL))


def test_rate_limits_file_bodies(emulator, get):
    size = len(emulator.store.data(SMALL))
    rate = size * 4  # the body should take at least 1/4 s
    emulator.set_faults(rate=rate)
    started = time.monotonic()
    r = get("file/" + SMALL)
    elapsed = time.monotonic() - started
    assert r.content == emulator.store.data(SMALL)
    assert elapsed >= 0.9 * size / rate


def test_rate_leaves_info_bodies_alone(emulator, get):
    # At one byte a second the feed (kilobytes) would take hours if it were throttled too.
    emulator.set_faults(rate=1)
    result = {}
    worker = threading.Thread(target=lambda: result.update(feed=get("info/json")), daemon=True)
    worker.start()
    worker.join(30)  # a throttled feed would still be trickling (the emulator's stop ends it)
    assert "feed" in result, "info/json was throttled"
    feed = result["feed"]
    assert feed.json() == emulator.store.feed()
    assert emulator.log[-1].bytes_sent == len(feed.content) and not emulator.log[-1].aborted


def test_drop_after_cuts_first_gets_only(emulator):
    emulator.set_faults(drop_after=1000, drop_count=2)
    data = emulator.store.data(SMALL)
    for _ in range(2):
        resp, body, short = raw_file_get(emulator, SMALL)
        assert resp.status == 200 and short
        assert resp.getheader("Content-Length") == str(len(data))
        assert body == data[:1000]
        assert emulator.wait_for(lambda e: e.log and e.log[-1].aborted)
        assert emulator.log[-1].bytes_sent == 1000
    resp, body, short = raw_file_get(emulator, SMALL)
    assert not short and body == data


def test_drop_after_applies_to_ranged_gets_and_ignores_head(emulator, get):
    emulator.set_faults(drop_after=10, drop_count=1)
    get("file/" + SMALL, "HEAD")  # does not use up the count
    resp, body, short = raw_file_get(emulator, SMALL, {"Range": "bytes=500-"})
    assert resp.status == 206 and short
    assert body == emulator.store.data(SMALL)[500:510]


def test_stall_then_client_times_out(emulator, get):
    emulator.set_faults(stall_after=2000, stall_count=1, stall_seconds=30)
    with pytest.raises(requests.exceptions.ConnectionError):
        # The read timeout (not a sleep) is what notices the stall.
        get("file/" + SMALL, timeout=(5, 0.3)).content
    assert emulator.bytes_sent(SMALL) == 2000
    # The next GET is not stalled.
    assert get("file/" + SMALL).content == emulator.store.data(SMALL)


def test_stop_does_not_wait_for_a_stall(make_emulator):
    emu = make_emulator()
    emu.set_faults(stall_after=100, stall_count=1, stall_seconds=60)
    thread = threading.Thread(target=raw_file_get, args=(emu, SMALL), daemon=True)
    thread.start()
    assert emu.wait_for(lambda e: e.bytes_sent(SMALL) >= 100)
    emu.stop()
    thread.join(30)  # far less than the 60 s stall: stop ended it
    assert not thread.is_alive()


def test_fail_status_with_retry_after_for_first_k(emulator, get):
    emulator.set_faults(fail_status=503, fail_count=2, retry_after="7")
    for _ in range(2):
        r = get("info/json")
        assert r.status_code == 503 and r.headers["Retry-After"] == "7"
    r = get("info/json")
    assert r.status_code == 200 and "Retry-After" not in r.headers


def test_fail_paths_file_only_and_429(emulator, get):
    emulator.set_faults(fail_status=429, fail_count=1, fail_paths="file")
    assert get("info/json").status_code == 200
    r = get("file/" + SMALL)
    assert r.status_code == 429 and "Retry-After" not in r.headers
    assert get("file/" + SMALL).status_code == 200


def test_fail_paths_info_only(emulator, get):
    emulator.set_faults(fail_status=500, fail_count=1, fail_paths="info")
    assert get("file/" + SMALL).status_code == 200
    assert get("info/files").status_code == 500
    assert get("info/files").status_code == 200


def test_counters_restart_when_faults_are_replaced(emulator, get):
    emulator.set_faults(fail_status=503, fail_count=1)
    assert get("info/help").status_code == 503
    assert get("info/help").status_code == 200
    emulator.faults = Faults(fail_status=503, fail_count=1)
    assert get("info/help").status_code == 503
    emulator.set_faults()  # even with no change
    assert get("info/help").status_code == 503
    emulator.clear_faults()
    assert get("info/help").status_code == 200


def test_forbidden_html_200_and_missing(emulator, get):
    feed_names = {r.file_name for r in parse_feed(get("info/json").json())}
    ee = "Magento-EE-2.4.6.tar.gz"
    missing = "Magento-CE-2.4.6-p1.zip"
    emulator.set_faults(forbidden={ee}, html_200={SMALL}, missing_files={missing})
    assert missing in feed_names  # still listed
    r = get("file/" + ee)
    assert r.status_code == 403 and r.headers["Content-Type"].startswith("text/html")
    r = get("file/" + SMALL)
    assert r.status_code == 200 and r.headers["Content-Type"].startswith("text/html")
    assert b"<html" in r.content
    assert get("file/" + missing).status_code == 404
    assert get("file/Magento-CE-2.4.7.zip").status_code == 200


def test_redirect_to_second_host(emulator, get, second_host):
    emulator.set_faults(redirect_files_to=second_host.base_url)
    name = "patches/MDVA-43395_CE_2.4.6_v1.sh"
    r = get("file/" + name, allow_redirects=False)
    assert r.status_code == 302
    assert r.headers["Location"] == second_host.base_url + "file/" + name
    assert r.headers["Location"].startswith("http://127.0.0.2:")
    # Followed by requests, the credentials stay behind.
    r = get("file/" + name)
    assert r.status_code == 200 and r.content == emulator.store.data(name)
    assert [rec.had_authorization for rec in second_host.log] == [False]


def test_gzip_unless_identity(emulator, emulator_auth):
    emulator.set_faults(gzip_unless_identity=True)
    data = emulator.store.data(SMALL)
    url = emulator.base_url + "file/" + SMALL
    r = requests.get(url, auth=emulator_auth, stream=True,
                     headers={"Range": "bytes=100-"})
    raw = r.raw.read(decode_content=False)
    assert r.status_code == 200 and r.headers["Content-Encoding"] == "gzip"
    assert "Accept-Ranges" not in r.headers
    assert gzip.decompress(raw) == data
    assert r.headers["ETag"].startswith("W/")
    r = requests.get(emulator.base_url + "info/json", auth=emulator_auth)
    assert r.headers["Content-Encoding"] == "gzip" and r.json()
    r = requests.get(url, auth=emulator_auth, headers={"Accept-Encoding": "identity",
                                                      "Range": "bytes=100-"})
    assert r.status_code == 206 and "Content-Encoding" not in r.headers
    assert r.content == data[100:]


def test_replacing_a_file_upstream(emulator, get):
    old = get("file/" + SMALL, "HEAD").headers["ETag"]
    new = make_file(SMALL, 5000, seed=99)
    emulator.store.replace(SMALL, new)
    r = get("file/" + SMALL, headers={"Range": "bytes=10-", "If-Range": old})
    assert r.status_code == 200 and r.content == new
    md5 = {x.file_name: x.md5 for x in parse_feed(get("info/json").json())}[SMALL]
    assert md5 == hashlib.md5(new).hexdigest()


def test_wait_for_sees_bytes_while_in_flight(emulator, get):
    emulator.set_faults(rate=SMALL_BIG_SIZE)  # the big file takes about 1 s
    result = {}
    thread = threading.Thread(
        target=lambda: result.update(r=get("file/" + BIG_FILE)), daemon=True)
    thread.start()
    assert emulator.wait_for(lambda e: e.bytes_sent(BIG_FILE) >= 64 * 1024)
    assert [rec.file_name for rec in emulator.in_flight] == [BIG_FILE]
    assert not emulator.requests_for(BIG_FILE)
    thread.join(10)  # pacing is fixed per request: about 1 s in all
    assert result["r"].content == emulator.store.data(BIG_FILE)


def test_kill_9_client_mid_download(emulator, emulator_auth, tmp_path):
    emulator.set_faults(rate=SMALL_BIG_SIZE // 4)
    script = (
        "import requests, sys\n"
        "r = requests.get(sys.argv[1], auth=(sys.argv[2], sys.argv[3]), stream=True)\n"
        "for chunk in r.iter_content(8192):\n"
        "    pass\n")
    client = subprocess.Popen(
        [sys.executable, "-c", script, emulator.base_url + "file/" + BIG_FILE,
         *emulator_auth])
    try:
        assert emulator.wait_for(lambda e: e.bytes_sent(BIG_FILE) >= 64 * 1024)
    finally:
        client.kill()
        client.wait(10)
    assert emulator.wait_for(lambda e: e.requests_for(BIG_FILE))
    rec = emulator.requests_for(BIG_FILE)[0]
    assert rec.aborted and 64 * 1024 <= rec.bytes_sent < SMALL_BIG_SIZE


def test_faults_validate_their_choices():
    with pytest.raises(ValueError):
        Faults(auth_failure="500")
    with pytest.raises(ValueError):
        Faults(fail_paths="everything")


@pytest.mark.parametrize("text, value", [("2M", 2 * 2**20), ("512k", 512 * 1024),
                                         ("1000", 1000), ("1.5K", 1536), ("3MiB", 3 * 2**20)])
def test_parse_size(text, value):
    assert parse_size(text) == value


# -- command line ---------------------------------------------------------------------


def _start_cli(tmp_path, *args):
    """Start the emulator; return (process, base URL from the ready file, the lines it printed)."""
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, "-m", "magedl.emulator", "--port", "0", "--ready-file", str(ready), *args],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    # The emulator writes the ready file, then prints its lines, the last one saying how to stop it.
    lines = printed_lines(proc, lambda line: line.startswith("# stop it"))
    return proc, ready.read_text(), "".join(lines)


def exported(text):
    """``{NAME: value}`` of the ``export NAME=value`` lines the emulator prints (as a shell would read them)."""
    import shlex

    return dict(word.split("=", 1) for line in text.splitlines() if line.startswith("export ")
                for word in shlex.split(line)[1:])


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT])
def test_cli_ready_file_serves_and_stops_on_signal(tmp_path, sig):
    token = "a" * 40
    (tmp_path / "token").write_text(token + "\n")
    proc, ready, printed = _start_cli(tmp_path, "--token-file", str(tmp_path / "token"),
                                      "--big-size", "64K", "--mageid", "MAG000000777")
    base_url = ready.strip()
    try:
        assert ready == base_url + "\n"  # one line: MAGEDL_BASE_URL=$(cat ready-file) works
        assert base_url.startswith("http://127.0.0.1:")
        assert base_url.endswith("/products/downloads/")
        feed = requests.get(base_url + "info/json", auth=("MAG000000777", token)).json()
        assert {r.file_name for r in parse_feed(feed)}
        big = requests.get(base_url + "file/" + BIG_FILE, auth=("MAG000000777", token))
        assert len(big.content) == 64 * 1024
        assert requests.get(base_url + "info/json",
                            auth=("MAG000000777", DEMO_TOKEN)).status_code == 401
    finally:
        proc.send_signal(sig)
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    values = exported(printed)
    assert values["MAGEDL_BASE_URL"] == base_url and values["MAGEDL_MAGEID"] == "MAG000000777"
    assert values["MAGEDL_EMULATOR_PID"] == str(proc.pid)
    assert "MAGEDL_TOKEN" not in values  # the user's own token file: never printed
    assert token not in printed + out + err


def test_cli_faults_and_default_token(tmp_path):
    proc, ready, printed = _start_cli(tmp_path, "--big-size", "1K", "--fail-status", "503",
                                      "--fail-count", "1", "--retry-after", "3",
                                      "--forbidden", SMALL, "--no-range")
    base_url = ready.strip()
    try:
        auth = ("MAG000123456", DEMO_TOKEN)
        r = requests.get(base_url + "info/help", auth=auth)
        assert r.status_code == 503 and r.headers["Retry-After"] == "3"
        assert requests.get(base_url + "file/" + SMALL, auth=auth).status_code == 403
        r = requests.get(base_url + "file/" + BIG_FILE, auth=auth,
                         headers={"Range": "bytes=0-1"})
        assert r.status_code == 200 and len(r.content) == 1024
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0
    assert exported(printed)["MAGEDL_TOKEN"] == DEMO_TOKEN  # the demo token is printed: practice needs it
    assert DEMO_TOKEN not in err


def test_cli_bad_token_file(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "magedl.emulator", "--token-file",
         str(tmp_path / "absent")], capture_output=True, text=True, timeout=30)
    assert proc.returncode == 2 and "token file" in proc.stderr
    assert proc.stdout == ""


def test_emulator_on_second_loopback_address(make_emulator):
    emu = make_emulator(host="127.0.0.2")
    assert emu.base_url.startswith("http://127.0.0.2:")
    r = requests.get(emu.base_url + "info/help", auth=(emu.mageid, emu.token))
    assert r.ok and emu.log[-1].had_authorization
    assert isinstance(emu, Emulator)


def test_every_cli_switch_has_help_text():
    from magedl.emulator.cli import _parser

    parser = _parser()
    missing = [a.option_strings for a in parser._actions if a.help in (None, "")]
    assert missing == []
    text = parser.format_help()
    for switch in ("--drop-after", "--stall-seconds", "--fail-paths", "--auth-failure", "--gzip-unless-identity"):
        assert switch in text
