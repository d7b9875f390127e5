"""A pytest plugin: a test fails when anything it produced holds a registered secret.

Every token, key and password magedl handles goes through
:func:`magedl.secrecy.register_secret`. After each test this plugin searches,
for every secret registered so far (at least :data:`MIN_LENGTH` characters):

- what the test printed (stdout and stderr, whether or not it read them
  through ``capsys``/``capfd``), and pytest's captured log;
- every log record emitted through the ``logging`` module, before any
  handler's redaction (a record is a leak even when one handler masks it:
  another handler, a file log, may not);
- every regular file under the test's ``tmp_path`` and the isolated home
  (``isolated_home``), except files that hold a secret on purpose: private
  files (no group or other permission bit, the rule every secret file
  follows), files named like secret inputs (:data:`INPUT_NAMES`: token,
  netrc, auth, config, key ... files a test writes as input; Composer's
  ``composer.json``), and paths a
  test passes to ``secret_scan.allow(path)``.

A test that feeds a secret to logging on purpose (to check redaction) is
marked ``@pytest.mark.secrets_on_purpose``.

Enable it for the whole suite with one line in ``tests/conftest.py``::

    pytest_plugins = ["secretscan"]

or per run with ``pytest -p secretscan``; a single module can import the
fixture (``from secretscan import secret_scan  # noqa: F401``).
"""

import hashlib
import logging
import os
import re
import stat
from pathlib import Path

import pytest

from magedl.secrecy import registered_secrets

# Shorter registered values ("pass", "abcd"), or ones of few distinct characters ("0" * 40, which
# any SHA-256 of zeros holds), are too likely to occur by chance in real output.
MIN_LENGTH = 8
MIN_DISTINCT = 5
# Files a test writes as input that hold a secret on purpose (any part of the path below the root),
# and Composer project files (by file name), where a test puts keys to check the warnings about them.
INPUT_NAMES = re.compile(r"token|netrc|auth|passw|secret|cred|config|users|key|\.pem$", re.I)
INPUT_FILES = re.compile(r"^composer[^/]*\.(json|lock)$", re.I)
_FILE_LIMIT = 8 * 2**20
_TOTAL_LIMIT = 256 * 2**20


def _shown(secret):
    """A secret named in a failure without printing it."""
    return f"{secret[:3]}... ({len(secret)} characters)"


def _masked(text, secrets):
    for secret in secrets:
        text = text.replace(secret, _shown(secret))
    return text


def _find(secrets, pieces):
    """[(where, secret)] for each secret found in pieces of (where, text or bytes), in the order of pieces.

    The answer of searching every piece for every secret, which would cost the number of secrets
    (hundreds by the end of the suite) times every byte the tests write. Two shortcuts keep it exact:

    - a large piece whose content (by its BLAKE2 digest) was searched before for the same secrets and
      held none of them is searched only for the secrets registered since: tests write the same demo
      archives again and again;
    - the small pieces (log records, captured lines) are joined and each secret is looked for once in
      the whole; only a secret found there is looked for piece by piece, so a match across a join costs
      a second look, never a false report.
    """
    found = []
    small = {str: [], bytes: []}
    searched_now = _SECRETS_CACHE["set"] if secrets is _SECRETS_CACHE["list"] else frozenset(secrets)
    for order, (where, content) in enumerate(pieces):
        if not content:
            continue
        if len(content) < _DIGEST_FROM:
            small.setdefault(type(content), []).append((order, where, content))
            continue
        raw = content if isinstance(content, bytes) else content.encode("utf-8", "surrogatepass")
        key = (type(content), hashlib.blake2b(raw, digest_size=20).digest())
        searched = _SEARCHED.get(key)
        todo = secrets if searched is None else [s for s in secrets if s not in searched]
        hits = [s for s in todo if _needle(s, content) in content]
        found += [(order, where, s) for s in hits]
        if not hits:
            _SEARCHED[key] = searched_now
    for kind, group in small.items():
        if group:
            whole = kind().join(content for _, _, content in group)
            for secret in secrets:
                needle = _needle(secret, whole)
                if needle in whole:
                    found += [(order, where, secret) for order, where, content in group if needle in content]
    rank = {secret: i for i, secret in enumerate(secrets)}
    return [(where, secret) for _, where, secret in sorted(found, key=lambda f: (f[0], rank[f[2]]))]


def _needle(secret, content):
    return secret.encode("utf-8", "replace") if isinstance(content, bytes) else secret


def _secrets():
    """The registered secrets worth searching, sorted; worked out again only when the registry changed."""
    registered = registered_secrets()
    if registered != _SECRETS_CACHE["registered"]:
        usable = sorted(s for s in registered if len(s) >= MIN_LENGTH and len(set(s)) >= MIN_DISTINCT)
        _SECRETS_CACHE.update(registered=registered, list=usable, set=frozenset(usable))
    return _SECRETS_CACHE["list"]


# Pieces of at least this many characters (or bytes) are remembered by digest once found clean.
_DIGEST_FROM = 4096
_SEARCHED = {}  # (type, digest) -> the frozenset of secrets that content was searched for and did not hold
_SECRETS_CACHE = {"registered": None, "list": [], "set": frozenset()}


class SecretScan:
    """What the autouse fixture gathered for one test; ``allow(path)`` exempts a file."""

    def __init__(self):
        self.texts = []
        self.allowed = set()

    def allow(self, path):
        self.allowed.add(Path(path).resolve())

    def files(self, roots):
        budget = _TOTAL_LIMIT
        for root in roots:
            for folder, _, names in os.walk(root):
                for name in names:
                    path = Path(folder, name)
                    try:
                        info = os.lstat(path)
                    except OSError:
                        continue
                    if (not stat.S_ISREG(info.st_mode) or not info.st_mode & 0o077
                            or any(INPUT_NAMES.search(part) for part in path.relative_to(root).parts)
                            or INPUT_FILES.match(name)
                            or path.resolve() in self.allowed or budget <= 0):
                        continue
                    try:
                        with open(path, "rb") as f:
                            data = f.read(min(_FILE_LIMIT, budget))
                    except OSError:
                        continue
                    budget -= len(data)
                    yield f"file {path}", data


def pytest_configure(config):
    config.addinivalue_line("markers", "secrets_on_purpose: the test feeds secrets to logging or files to check "
                                       "their redaction; the secret scan skips it")


@pytest.fixture(autouse=True)
def secret_scan(request):
    """Fail the test (at teardown) if its output, log records or files hold a registered secret."""
    scan = SecretScan()
    if request.node.get_closest_marker("secrets_on_purpose"):
        yield scan
        return
    # Asked for now, so that they are torn down after this fixture has searched them.
    roots = [request.getfixturevalue(name) for name in ("tmp_path", "isolated_home") if name in request.fixturenames]
    monkeypatch = pytest.MonkeyPatch()  # our own: undoing it must not undo the test's patches
    read = pytest.CaptureFixture.readouterr

    def readouterr(self):
        result = read(self)
        scan.texts.append(("output read by the test", f"{result.out}{result.err}"))
        return result

    monkeypatch.setattr(pytest.CaptureFixture, "readouterr", readouterr)
    call_handlers = logging.Logger.callHandlers

    def record_and_call(self, record):
        try:
            scan.texts.append((f"log record of {record.name}", record.getMessage()))
        except Exception:  # a bad format string is the logging module's to report
            pass
        return call_handlers(self, record)

    monkeypatch.setattr(logging.Logger, "callHandlers", record_and_call)
    yield scan
    monkeypatch.undo()
    leaks = _find(_secrets(), scan.texts + list(scan.files(roots)))
    if leaks:
        pytest.fail("a registered secret leaked: " + "; ".join(f"{_shown(s)} in {where}" for where, s in leaks[:5]),
                    pytrace=False)


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item, call):
    """Output the test did not read itself (pytest's captured stdout, stderr and log) is searched here."""
    outcome = yield
    report = outcome.get_result()
    if "secret_scan" not in item.fixturenames or item.get_closest_marker("secrets_on_purpose"):
        return
    secrets = _secrets()
    leaks = _find(secrets, [(name, text) for name, text in report.sections])
    if leaks:
        # pytest prints the captured sections of a failed test (in every phase's report): not with the secret.
        report.sections = [(name, _masked(text, secrets)) for name, text in report.sections]
    if leaks and report.when == "call" and not report.failed:
        report.outcome = "failed"
        report.longrepr = "a registered secret leaked: " + "; ".join(
            f"{_shown(s)} in {where}" for where, s in leaks[:5])
