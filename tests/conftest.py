"""Shared fixtures: an emulator of the downloads API on loopback, a second
host for redirects, a mirror folder, and the emulated Composer repositories.

Every server binds to 127.0.0.1 (127.0.0.2 for the second host) on a free
port and is stopped after the test.  Synchronise with ``server.wait_for``,
never with sleeps.
"""

import json
import os
import signal
import stat

import pytest
import tenacity

from magedl.emulator import ComposerRepos, Emulator, RecordingServer, demo_catalogue
from magedl.server import MemoryStore

# Every test is scanned for leaked secrets (tests/secretscan.py).
pytest_plugins = ["secretscan"]

# A shell starts a background job (`make test &`, nohup, CI runners) with SIGINT ignored, and an
# ignored signal stays ignored in every child: the tests that press Ctrl-C on a magedl process
# would then wait for an exit that never comes. A user's magedl starts with SIGINT live; so do ours.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


@pytest.fixture(autouse=True)
def isolated_home(tmp_path_factory, monkeypatch):
    """No real user config, netrc or MAGEDL_* variable leaks into any test.

    The home lies outside ``tmp_path``, which tests may expect to be empty.
    """
    home = tmp_path_factory.mktemp("home")
    monkeypatch.setenv("HOME", str(home))
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / ".config"))
    for name in ("MAGEDL_BASE_URL", "MAGEDL_MAGEID", "MAGEDL_TOKEN", "NETRC", "MAGEDL_CA_BUNDLE", "MAGEDL_SIGN_KEY",
                 "MAGEDL_ALLOWED_SIGNERS", "SSH_AUTH_SOCK",
                 "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE", "SSL_CERT_DIR", "COMPOSER_HOME",
                 "COMPOSER_AUTH", "COMPOSER", "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY",
                 "http_proxy", "https_proxy", "no_proxy", "all_proxy"):
        monkeypatch.delenv(name, raising=False)
    return home


@pytest.fixture(autouse=True)
def no_wait_for_the_disk(monkeypatch):
    """In this process ``os.fsync`` and ``os.fdatasync`` check their descriptor but do not wait for the disk.

    What they buy, bytes that survive a power cut, no test can observe: a killed process loses nothing
    either way (and the crash tests kill real subprocesses, which sync for real). The waits cost a few
    ms each on a busy disk, thousands of times a run. Descriptors other than files and folders get the
    real call (and its EINVAL); a test that counts the calls or makes them fail patches over this.
    """
    real = {"fsync": os.fsync, "fdatasync": os.fdatasync}

    def checked(name):
        def sync(fd):
            mode = os.fstat(fd).st_mode  # EBADF for a closed descriptor, as the real call
            if not (stat.S_ISREG(mode) or stat.S_ISDIR(mode)):
                real[name](fd)
        return sync

    for name in real:
        monkeypatch.setattr(os, name, checked(name))


@pytest.fixture
def env(emulator, monkeypatch):
    """The ``emulator``, with MAGEDL_BASE_URL, MAGEDL_MAGEID and MAGEDL_TOKEN pointing at it."""
    monkeypatch.setenv("MAGEDL_BASE_URL", emulator.base_url)
    monkeypatch.setenv("MAGEDL_MAGEID", emulator.mageid)
    monkeypatch.setenv("MAGEDL_TOKEN", emulator.token)
    return emulator


@pytest.fixture
def sleeps(monkeypatch):
    """Replace tenacity's sleep with a recorder; returns the list of waits."""
    waits = []
    real = tenacity.Retrying

    def retrying(*args, **kwargs):
        kwargs["sleep"] = waits.append
        return real(*args, **kwargs)

    monkeypatch.setattr(tenacity, "Retrying", retrying)
    return waits


# Big enough for several 64 KiB chunks (progress, resume), small enough to
# keep every test fast.
SMALL_BIG_SIZE = 512 * 1024
BIG_FILE = "Magento-CE-2.4.7.tar.gz"


@pytest.fixture(scope="session")
def demo():
    """The demo catalogue with a small big file: ``(feed, files)``.

    Shared by the session: treat as read-only (stores copy it).
    """
    return demo_catalogue(seed=0, big_size=SMALL_BIG_SIZE)


@pytest.fixture
def make_emulator(demo):
    """Factory: ``make_emulator(**Emulator kwargs)`` -> a started Emulator.

    Each gets its own MemoryStore of the demo catalogue unless ``store`` is
    given.  All are stopped after the test.
    """
    started = []

    def make(**kwargs):
        if "store" not in kwargs:
            kwargs["store"] = MemoryStore(*demo)
        emu = Emulator(**kwargs).start()
        started.append(emu)
        return emu

    yield make
    for emu in reversed(started):
        emu.stop()


@pytest.fixture
def emulator(make_emulator):
    """A started Emulator on 127.0.0.1, demo catalogue, auth required.

    Use ``emulator.base_url``, ``(emulator.mageid, emulator.token)``,
    ``emulator.faults`` / ``emulator.set_faults(...)``, ``emulator.log``,
    ``emulator.wait_for(...)``, ``emulator.store``.
    """
    return make_emulator()


@pytest.fixture
def emulator_auth(emulator):
    """``(mageid, token)`` accepted by the ``emulator`` fixture."""
    return emulator.mageid, emulator.token


@pytest.fixture
def second_host(emulator):
    """An open server on 127.0.0.2 serving the emulator's store, with a request log.

    Plays a CDN: point ``emulator.set_faults(redirect_files_to=
    second_host.base_url)`` at it and check ``second_host.log`` for
    ``had_authorization``.
    """
    server = RecordingServer(emulator.store, host="127.0.0.2", prefix=emulator.prefix)
    server.start()
    yield server
    server.stop()


@pytest.fixture
def demo_mirror(tmp_path, demo):
    """A mirror folder of the demo catalogue (``info/json``, ``file/...``).

    Returns the folder path; serve it with ``DirStore(path)``.
    """
    feed, files = demo
    root = tmp_path / "mirror"
    (root / "info").mkdir(parents=True)
    (root / "info" / "json").write_text(json.dumps(feed), encoding="utf-8")
    for name, data in files.items():
        path = root / "file" / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(data)
    return root


@pytest.fixture
def composer_repos():
    """repo.magento.com and packagist played on 127.0.0.1, each on a free port (a ComposerRepos).

    ``composer_repos.magento_url``, ``.packagist_url`` (ending with ``/``) and
    ``.keys``, Marketplace keys per entitlement: ``{"open-source" | "commerce" |
    "disabled" | "lapsed": (public, private)}``. ``.magento_app`` / ``.packagist_app``
    take ``throttle(n)`` and ``tamper(target)``; ``.magento.log`` / ``.packagist.log``
    are the request logs (``wait_for`` as on the emulator).
    """
    with ComposerRepos() as repos:
        yield repos


@pytest.fixture
def lock_files_taken(monkeypatch):
    """The per-file lock files downloads take from now on (``NAME.magedl-lock`` paths), in order."""
    from magedl.transfer import one_file

    taken = []

    class Recorded(one_file.FileLock):
        def __enter__(self):
            taken.append(self.path)
            return super().__enter__()

    monkeypatch.setattr(one_file, "FileLock", Recorded)
    return taken
