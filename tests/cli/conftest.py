"""Helpers for command-line tests that need a real process: a pseudo-terminal of a chosen size, and a screen.

In-process tests use ``clirun.run``; a test needs a process when it sends a
signal or needs a real terminal (progress lines, table widths).
"""

import errno
import fcntl
import os
import re
import struct
import subprocess
import sys
import termios

import pytest
from apphandler import app_handler


def magedl_env(emulator=None, **extra):
    """The environment of a ``python -m magedl`` child: no COLUMNS, no user MAGEDL_*, the emulator if given."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGEDL_") and k not in ("COLUMNS", "LINES")}
    if emulator is not None:
        env.update(MAGEDL_BASE_URL=emulator.base_url, MAGEDL_MAGEID=emulator.mageid, MAGEDL_TOKEN=emulator.token)
    env.update(extra)
    return env


class PtyRun:
    """A child on a pseudo-terminal (stdin, stdout and stderr all on it), *columns* wide."""

    def __init__(self, argv, env, columns=80, rows=24, cwd=None):
        self.master, slave = os.openpty()
        fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", rows, columns, 0, 0))
        self.proc = subprocess.Popen(argv, stdin=slave, stdout=slave, stderr=slave, env=env, cwd=cwd,
                                     start_new_session=True)
        os.close(slave)
        self.chunks = []

    def read_until(self, predicate, limit=1 << 24):
        """Read output until ``predicate(text so far)`` holds or the child closes the terminal; the text."""
        while not predicate(self.text) and sum(map(len, self.chunks)) < limit:
            try:
                data = os.read(self.master, 65536)
            except OSError as exc:
                if exc.errno != errno.EIO:
                    raise
                data = b""
            if not data:
                break
            self.chunks.append(data)
        return self.text

    @property
    def text(self):
        return b"".join(self.chunks).decode("utf-8", "replace")

    def finish(self, timeout=60):
        """Read to the end; (exit code, raw output)."""
        self.read_until(lambda text: False)
        os.close(self.master)
        return self.proc.wait(timeout), self.text


def run_in_pty(*argv, env, columns=80, cwd=None):
    """``python -m magedl ARGV`` on a terminal *columns* wide: (exit code, raw output)."""
    return PtyRun([sys.executable, "-m", "magedl", *argv], env, columns=columns, cwd=cwd).finish()


_ESCAPE = re.compile(r"\x1b\[[0-9;]*([A-Za-z])")


def screen(raw, columns):
    """What a terminal *columns* wide shows for *raw*: lines as they stand, plus those that wrapped.

    Understands what magedl writes (``\\r``, erase-to-end-of-line, colours).
    Returns ``(lines, wrapped)``: *wrapped* lists lines that reached the last
    column, where a terminal would wrap them.
    """
    lines, line, col, wrapped = [], [], 0, []
    pos = 0
    raw = raw.replace("\r\n", "\n")
    while pos < len(raw):
        m = _ESCAPE.match(raw, pos)
        if m:
            if m.group(1) == "K":
                del line[col:]
            pos = m.end()
            continue
        c = raw[pos]
        pos += 1
        if c == "\n":
            lines.append("".join(line))
            line, col = [], 0
        elif c == "\r":
            col = 0
        else:
            if col < len(line):
                line[col] = c
            else:
                line.append(c)
            col += 1
            if col == columns + 1:  # one more than fits: the terminal wraps it
                wrapped.append("".join(line))
    if line:
        lines.append("".join(line))
    return lines, wrapped


@pytest.fixture
def replay():
    """``replay(raw, columns)`` -> (lines, wrapped): :func:`screen`, for tests that draw in-process."""
    return screen


@pytest.fixture
def cli_env():
    """``cli_env(emulator=None, **extra)``: see :func:`magedl_env`."""
    return magedl_env


@pytest.fixture
def pty_magedl():
    """``pty_magedl(*argv, env=..., columns=80)`` -> (exit code, screen lines, wrapped lines, raw)."""

    def run(*argv, env, columns=80, cwd=None):
        code, raw = run_in_pty(*argv, env=env, columns=columns, cwd=cwd)
        lines, wrapped = screen(raw, columns or 80)
        return code, lines, wrapped, raw

    return run


# -- emulated Composer repositories (repo.magento.com) on loopback --------------------------


# Marketplace key pairs of the emulated repo.magento.com: 32 characters each, as real keys are.
MARKETPLACE_KEYS = {
    "open-source": ("0a1b2c3d4e5f60718293a4b5c6d7e8f9", "f9e8d7c6b5a4938271605f4e3d2c1b0a"),
    "commerce": ("1b2c3d4e5f60718293a4b5c6d7e8f90a", "0a9f8e7d6c5b4a3928170605f4e3d2c1"),
    "disabled": ("2c3d4e5f60718293a4b5c6d7e8f90a1b", "1b0a9f8e7d6c5b4a3928170605f4e3d2"),
    "lapsed": ("3d4e5f60718293a4b5c6d7e8f90a1b2c", "2c1b0a9f8e7d6c5b4a3928170605f4e3"),
}


@pytest.fixture
def magento_repo():
    """``magento_repo(layout="providers")`` -> (base URL, app): repo.magento.com played on 127.0.0.1.

    Keys: :data:`MARKETPLACE_KEYS` (``open-source``, ``commerce``, ``disabled``, ``lapsed``).
    """
    import threading
    from http.server import ThreadingHTTPServer

    from magedl.emulator.composer_apps import Entitlement, MagentoRepoApp
    from magedl.emulator.composer_graph import build_graph

    running = []
    graph = build_graph()

    def start(layout="providers"):
        keys = {public: Entitlement(private, kind) for kind, (public, private) in MARKETPLACE_KEYS.items()}
        app = MagentoRepoApp(graph, layout=layout, keys=keys)
        server = ThreadingHTTPServer(("127.0.0.1", 0), app_handler(app))
        server.daemon_threads = True
        thread = threading.Thread(target=server.serve_forever, args=(0.02,), daemon=True)
        thread.start()
        running.append((server, thread))
        return f"http://127.0.0.1:{server.server_port}/", app

    yield start
    for server, thread in running:
        server.shutdown()
        server.server_close()
        thread.join()


@pytest.fixture
def marketplace_keys():
    return MARKETPLACE_KEYS
