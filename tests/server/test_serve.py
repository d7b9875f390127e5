"""Using a mirror like the real service: a plain static web server, file://, and ``magedl serve``."""

import functools
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer

import pytest
import requests
from clirun import run

from magedl.service.catalog import parse_feed

PATCH = "patches/MDVA-43395_CE_2.4.6_v1.sh"
ZIP = "Magento-CE-2.4.6-p10.zip"


@pytest.fixture
def mdir(emulator, tmp_path, capsys):
    """A mirror of the 2.4.6 CE archives and the patch (a name with '/'); the emulator then stops."""
    root = tmp_path / "srv" / "magento" / "mirror"
    code, _, err = run(capsys, "--base-url", emulator.base_url, "--mageid", emulator.mageid, "--token",
                       emulator.token, "mirror", str(root), "--type", "ce-full", "--type", "ce-patch",
                       "--version", "2.4.6*")
    assert code == 0, err
    emulator.stop()
    return root


def mirrored(mdir):
    return parse_feed(json.loads((mdir / "info" / "json").read_text()))


def check_like_the_service(capsys, base_url, mdir, tmp_path, *auth):
    """versions, list and get against *base_url* give what they give against the service."""
    code, out, err = run(capsys, "--base-url", base_url, *auth, "--json", "versions", "--type", "ce-full")
    assert code == 0, err
    assert [r["version"] for r in json.loads(out)] == ["2.4.6-p10", "2.4.6-p2", "2.4.6-p1", "2.4.6"]
    code, out, err = run(capsys, "--base-url", base_url, *auth, "--json", "list")
    assert code == 0, err
    assert [r["file_name"] for r in json.loads(out)] == [r["file_name"] for r in
                                                         (x.to_dict() for x in _sorted(mirrored(mdir)))]
    assert "no MAGEID" not in err
    dest = tmp_path / "dl"
    code, out, err = run(capsys, "--base-url", base_url, *auth, "--json", "get", ZIP, PATCH, "-o", str(dest))
    assert code == 0, err
    assert {r["status"] for r in json.loads(out)} == {"fetched"}
    assert all(r["verified"] for r in json.loads(out))
    for name in (ZIP, PATCH):
        assert (dest / name).read_bytes() == (mdir / "file" / name).read_bytes()
    # The same verification: a rotten archive in the mirror is refused, not saved.
    (mdir / "file" / ZIP).write_bytes(b"PK\x03\x04" + b"\0" * 60000)
    code, _, err = run(capsys, "--base-url", base_url, *auth, "get", ZIP, "-o", str(tmp_path / "dl2"))
    assert code == 6 and "md5 mismatch" in err
    assert not (tmp_path / "dl2" / ZIP).exists()


def _sorted(records):
    from magedl.service.catalog import select

    return select(records)


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, *args):
        pass


def test_a_plain_static_web_server_serves_a_mirror(mdir, capsys, tmp_path):
    # Python's static server: no Range, no ETag, Content-Type guessed; like a bare nginx location.
    handler = functools.partial(_Quiet, directory=str(tmp_path / "srv"))
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    try:
        base = f"http://127.0.0.1:{httpd.server_address[1]}/magento/mirror"
        check_like_the_service(capsys, base, mdir, tmp_path)
    finally:
        httpd.shutdown()
        httpd.server_close()


def test_a_mirror_folder_as_a_file_url(mdir, capsys, tmp_path):
    check_like_the_service(capsys, mdir.as_uri(), mdir, tmp_path)


# -- magedl serve -------------------------------------------------------------------


def serve(mdir, *argv):
    """Start ``magedl serve``; return (process, base URL read from its stdout)."""
    proc = subprocess.Popen([sys.executable, "-m", "magedl", "serve", str(mdir), "--port", "0", *argv],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://"), proc.communicate(timeout=10)
    return proc, url


def stop(proc):
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=10)
    return proc.returncode, err


def test_serve_answers_like_the_api(mdir, capsys, tmp_path):
    proc, url = serve(mdir)
    try:
        assert url.startswith("http://127.0.0.1:")
        data = (mdir / "file" / ZIP).read_bytes()
        ranged = requests.get(url + "file/" + ZIP, headers={"Range": "bytes=100-199"})
        assert ranged.status_code == 206 and ranged.content == data[100:200]
        head = requests.head(url + "file/" + ZIP)
        assert head.headers["Content-Length"] == str(len(data)) and head.headers["Accept-Ranges"] == "bytes"
        for endpoint in ("info/files", "info/versions", "info/help", "info/filter/type/ce-patch"):
            assert requests.get(url + endpoint).status_code == 200
        assert PATCH in requests.get(url + "info/filter/version/2.4.6-p1").text
        # Bookkeeping and unlisted files stay private.
        assert requests.get(url + "file/../.magedl/state.json").status_code == 404
        (mdir / "file" / "unlisted.zip").write_bytes(b"PK\x03\x04")
        assert requests.get(url + "file/unlisted.zip").status_code == 404
        check_like_the_service(capsys, url, mdir, tmp_path)
    finally:
        code, err = stop(proc)
    assert code == 0 and "Traceback" not in err


def test_serve_with_an_auth_file(mdir, capsys, tmp_path):
    secret = "correct-horse-battery"
    auth = tmp_path / "users"
    auth.write_text(f"# who may download\nops:{secret}\n")
    os.chmod(auth, 0o600)
    proc, url = serve(mdir, "--auth-file", str(auth), "-v")
    try:
        code, _, err = run(capsys, "--base-url", url, "list")
        assert code == 3
        token = tmp_path / "token"
        token.write_text(secret)
        os.chmod(token, 0o600)  # a secret's file must be private
        check_like_the_service(capsys, url, mdir, tmp_path, "--mageid", "ops", "--token-file", str(token))
        assert requests.get(url + "info/json", auth=("ops", "wrong")).status_code == 401
    finally:
        code, err = stop(proc)
    assert code == 0 and secret not in err and "GET /info/json" in err


def test_serve_warns_loudly_beyond_loopback(mdir):
    proc, url = serve(mdir, "--bind", "0.0.0.0")
    code, err = stop(proc)
    assert code == 0 and "WITHOUT A PASSWORD" in err


def test_serve_refuses_what_is_not_a_mirror(tmp_path, capsys):
    code, _, err = run(capsys, "serve", str(tmp_path))
    assert code == 5 and "not a mirror" in err
    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "json").write_text("{}")
    bad = tmp_path / "users"
    bad.write_text("no colon here\n")
    os.chmod(bad, 0o600)
    code, _, err = run(capsys, "serve", str(tmp_path), "--auth-file", str(bad))
    assert code == 2 and "user:password" in err


def test_sha256_of_the_sums_file_is_reported(mdir, capsys):
    digest = hashlib.sha256((mdir / "SHA256SUMS").read_bytes()).hexdigest()
    code, _, err = run(capsys, "verify", str(mdir))
    assert code == 0 and digest in err


def test_auth_file_keeps_a_password_exactly(tmp_path):
    from magedl.cli.serve import read_auth_file

    auth = tmp_path / "users"
    auth.write_text("  # a comment\nops:ends with a space \r\n\nci:x\n")
    os.chmod(auth, 0o600)
    assert read_auth_file(auth) == {"ops": "ends with a space ", "ci": "x"}
