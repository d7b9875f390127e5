"""``-q`` silences progress and chatter, never a security warning (DESIGN: "switching TLS off is loud").

A warning the engine marks :data:`magedl.secrecy.SECURITY` (TLS verification off, a server open to the
network, keys stored where a web server could serve them, a signature not checked or removed) reaches stderr with
``-q`` too; every other warning and info line stays silent; exit codes do not change.
"""

import io
import logging

from clirun import run

from magedl.cli.progress import ConsoleHandler, setup_logging
from magedl.secrecy import SECURITY


def test_insecure_warns_even_with_q(env, capsys):
    code, out, err = run(capsys, "-q", "--insecure", "versions")
    assert code == 0 and out
    assert "TLS verification is OFF (--insecure)" in err
    assert err.count("\n") == 1  # that line, and no chatter


def test_q_stays_silent_without_insecure(env, capsys):
    code, out, err = run(capsys, "-q", "versions")
    assert code == 0 and out and err == ""


def test_q_passes_security_warnings_and_errors_only(monkeypatch):
    stream = io.StringIO()
    restore = setup_logging(0, quiet=True)
    try:
        log = logging.getLogger("magedl.test")
        handler = logging.getLogger("magedl").handlers[0]
        assert isinstance(handler, ConsoleHandler)
        monkeypatch.setattr(handler, "_terminal", None)
        monkeypatch.setattr("magedl.cli.progress.terminal", lambda: _Lines(stream))
        log.info("progress chatter")
        log.warning("an ordinary warning")
        log.warning("a protection is off", extra=SECURITY)
        log.error("a failure")
    finally:
        restore()
    assert stream.getvalue().splitlines() == ["magedl: warning: a protection is off", "magedl: error: a failure"]


def test_keys_stored_where_a_web_server_could_serve_them_is_said_with_q(tmp_path, capsys, monkeypatch):
    root = tmp_path / "shop"
    (root / "pub").mkdir(parents=True)
    (root / "pub" / "index.php").write_text("<?php")
    (root / "composer.json").write_text('{"name": "magento/project-community-edition"}')
    monkeypatch.setattr("sys.stdin", io.StringIO("0a1b2c3d4e5f60718293a4b5c6d7e8f9 f9e8d7c6b5a4938271605f4e3d2c1b0a\n"))
    code, _, err = run(capsys, "-q", "keys", "store", "--project", str(root), "--no-check")
    assert code == 0 and "auth.json must answer 403 or 404" in err
    assert "stored the keys" not in err  # the info line stays quiet


class _Lines:
    def __init__(self, stream):
        self.stream = stream

    def message(self, text):
        self.stream.write(text + "\n")
