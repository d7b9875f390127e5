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
