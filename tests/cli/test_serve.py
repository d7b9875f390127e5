"""``magedl serve`` from the command line: where others reach it, its auth file, a clean stop."""

import os
import signal
import socket
import subprocess
import sys

from clirun import run

from magedl.cli import serve


def test_every_interface_is_never_announced_as_localhost(monkeypatch):
    monkeypatch.setattr(socket, "getfqdn", lambda *a: "localhost")
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: [(2, 1, 6, "", ("127.0.1.1", 0))])
    assert serve.reachable_urls("0.0.0.0", 8080) == []


def test_every_interface_lists_this_hosts_addresses(monkeypatch):
    infos = [(2, 1, 6, "", ("127.0.0.1", 0)), (2, 1, 6, "", ("192.0.2.7", 0)), (10, 1, 6, "", ("2001:db8::7", 0, 0, 0))]
    monkeypatch.setattr(socket, "getfqdn", lambda *a: "build7.example")
    monkeypatch.setattr(socket, "getaddrinfo", lambda *a, **k: infos)
    urls = serve.reachable_urls("::", 8080)
    assert urls == ["http://build7.example:8080/", "http://192.0.2.7:8080/", "http://[2001:db8::7]:8080/"]


def test_serve_on_every_interface_says_how_others_reach_it(demo_mirror):
    proc = subprocess.Popen([sys.executable, "-m", "magedl", "serve", str(demo_mirror), "--bind", "0.0.0.0",
                             "--port", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    url = proc.stdout.readline().strip()
    assert url.startswith("http://")
    line = ""
    while "other hosts reach it" not in line:
        line = proc.stderr.readline()
        assert line, "serve ended without saying how others reach it"
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "stopped" in err and "Traceback" not in err
    assert "localhost" not in line and "127.0.0.1" not in line


def test_an_auth_file_others_can_read_is_refused(demo_mirror, tmp_path, capsys):
    users = tmp_path / "users"
    users.write_text("ops:correct-horse\n")
    os.chmod(users, 0o644)
    code, out, err = run(capsys, "serve", str(demo_mirror), "--auth-file", str(users), "--port", "0")
    assert code == 1 and "chmod 600" in err and "correct-horse" not in err


def test_an_auth_file_keeps_a_password_exactly(tmp_path):
    users = tmp_path / "users"
    users.write_text("  # a comment\nops:ends with a space \r\n\nci:x\n")
    os.chmod(users, 0o600)
    assert serve.read_auth_file(users) == {"ops": "ends with a space ", "ci": "x"}


def test_a_port_in_use_says_so(demo_mirror, capsys):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        code, out, err = run(capsys, "serve", str(demo_mirror), "--port", str(taken.getsockname()[1]))
    assert code == 2 and "cannot listen" in err and "--port 0" in err


def test_an_address_that_is_not_one_is_blamed_not_the_port(demo_mirror, capsys):
    for bind, says in (("127.0.0.999", "is not an IP address"), ("192.0.2.1", "is not an address of this host")):
        code, out, err = run(capsys, "serve", str(demo_mirror), "--bind", bind, "--port", "0")
        assert code == 2 and says in err and bind in err, err
        assert "another server" not in err and "--bind 127.0.0.1" in err and len(err.strip().splitlines()) == 1


def test_a_public_url_must_be_a_plain_http_url(demo_mirror, capsys):
    for url, says in (("ftp://mirror.example/", "expected http(s)://"), ("https://mirror.example/?a=1", "no query"),
                      ("https://ops:S3cretPw@mirror.example/", "no user or password")):
        code, out, err = run(capsys, "serve", str(demo_mirror), "--public-url", url, "--port", "0")
        assert code == 2 and says in err and "S3cretPw" not in err, err


def test_serve_with_a_public_url_ignores_the_host(demo_mirror):
    import json

    import requests

    composer = demo_mirror / "composer" / "p2" / "psr"
    composer.mkdir(parents=True)
    (composer / "log.json").write_text(json.dumps({"packages": {"psr/log": [{"version": "3.0.0", "dist": {
        "type": "zip", "url": "http://127.0.0.1:8080/composer/dist/psr/log/3.0.0.0.zip"}}]}}))
    (demo_mirror / ".magedl").mkdir(exist_ok=True)
    (demo_mirror / ".magedl" / "composer.json").write_text(json.dumps({"version": 1,
                                                                       "url": "http://127.0.0.1:8080/composer/"}))
    proc = subprocess.Popen([sys.executable, "-m", "magedl", "serve", str(demo_mirror), "--port", "0",
                             "--public-url", "https://mirror.example"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        url = proc.stdout.readline().strip()
        assert url.startswith("http://127.0.0.1:"), proc.stderr.read()
        r = requests.get(url + "composer/p2/psr/log.json", headers={"Host": "evil.example"})
        assert r.json()["packages"]["psr/log"][0]["dist"]["url"] == \
            "https://mirror.example/composer/dist/psr/log/3.0.0.0.zip"
        assert "Vary" not in r.headers
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=30)
    assert proc.returncode == 0 and "clients reach it as https://mirror.example/" in err
