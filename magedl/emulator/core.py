"""An emulator of Magento's downloads API, with switches for its failures.

The real service cannot be reached from our machines and is known mostly by
what goes wrong with it (see ``API.md``).  The emulator is a real HTTP server
on loopback serving a generated demo catalogue behind Basic auth, plus
:class:`Faults` that reproduce each reported or plausible misbehaviour, so
the client can be tested against every answer the service might give.

Run ``python -m magedl.emulator --help`` for the command line.
"""

from __future__ import annotations

import argparse
import dataclasses
import gzip
import hashlib
import os
import random
import signal
import sys
import threading
from dataclasses import dataclass, field
from typing import Dict, Optional, Set, Tuple
from urllib.parse import quote

from magedl.server.app import ApiServer, FilePolicy, Hooks, MemoryStore, Pacing, Reply

__all__ = ["Faults", "Emulator", "demo_catalogue", "make_file", "DEMO_MAGEID",
           "DEMO_TOKEN", "AUTH_FAILURE_BODY", "main"]

DEMO_MAGEID = "MAG000123456"
# A fixed, obviously fake token: 40 lower-case hex digits like the real ones.
DEMO_TOKEN = hashlib.sha1(b"magedl demo downloads token").hexdigest()
DEFAULT_PREFIX = "/products/downloads/"
# What a user once saved as Magento-CE-2.4.0.tar.gz (25 bytes).
AUTH_FAILURE_BODY = b"Invalid login or password"

LOGIN_PAGE = b"""<!DOCTYPE html>
<html><head><title>Customer Login</title></head>
<body><h1>Login or Create an Account</h1>
<form method="post" action="/customer/account/loginPost/">
<input name="login[username]"><input name="login[password]" type="password">
<button type="submit">Login</button></form></body></html>
"""
FORBIDDEN_PAGE = (b"<!DOCTYPE html><html><head><title>403 Forbidden</title></head>"
                  b"<body><h1>Forbidden</h1><p>You are not entitled to this download."
                  b"</p></body></html>\n")


@dataclass
class Faults:
    """Misbehaviours to switch on; all off by default.

    The emulator reads these on every request, so a test may change a field
    while the server runs.  "First N" counters belong to the emulator and
    restart whenever a new Faults is installed.

    Attributes
    ----------
    no_range : bool
        Ignore Range and If-Range, always answer 200 with the whole file,
        and do not advertise Accept-Ranges.
    no_validators : bool
        Send no ETag or Last-Modified on files.
    rate : int or None
        Bytes per second per connection for file bodies.
    drop_after, drop_count : int or None, int
        For the first ``drop_count`` file GETs, close the connection after
        ``drop_after`` body bytes although Content-Length promised more.
    stall_after, stall_count, stall_seconds : int or None, int, float
        For the first ``stall_count`` file GETs, send ``stall_after`` bytes
        and then nothing for ``stall_seconds`` with the socket left open.
    fail_status, fail_count, retry_after, fail_paths : int or None, int, str or None, str
        The first ``fail_count`` matching requests answer ``fail_status``
        (503, 429...), with ``Retry-After: retry_after`` when set.
        ``fail_paths`` is ``"all"``, ``"file"`` or ``"info"``.
    forbidden : set of str
        File names answered with 403 and a short HTML page.
    html_200 : set of str
        File names answered with 200 and an HTML login page.
    auth_failure : str
        How bad credentials are answered: ``"401"``, ``"text-200"`` (the
        25-byte ``Invalid login or password`` as 200 text/plain) or
        ``"html-200"`` (200 with a login page).
    redirect_files_to : str or None
        Base URL of another server; ``file/<name>`` answers 302 to
        ``<base>/file/<name>``.
    gzip_unless_identity : bool
        Gzip every body unless the client sent ``Accept-Encoding: identity``.
    missing_files : set of str
        Listed in the feed, but ``file/`` answers 404.
    """

    no_range: bool = False
    no_validators: bool = False
    rate: Optional[int] = None
    drop_after: Optional[int] = None
    drop_count: int = 0
    stall_after: Optional[int] = None
    stall_count: int = 0
    stall_seconds: float = 0.0
    fail_status: Optional[int] = None
    fail_count: int = 0
    retry_after: Optional[str] = None
    fail_paths: str = "all"
    forbidden: Set[str] = field(default_factory=set)
    html_200: Set[str] = field(default_factory=set)
    auth_failure: str = "401"
    redirect_files_to: Optional[str] = None
    gzip_unless_identity: bool = False
    missing_files: Set[str] = field(default_factory=set)

    def __post_init__(self):
        if self.auth_failure not in ("401", "text-200", "html-200"):
            raise ValueError(f"auth_failure must be 401, text-200 or html-200, "
                             f"not {self.auth_failure!r}")
        if self.fail_paths not in ("all", "file", "info"):
            raise ValueError(f"fail_paths must be all, file or info, "
                             f"not {self.fail_paths!r}")


class _Counters:
    """How many requests each "first N" fault has already hit."""

    def __init__(self):
        self.lock = threading.Lock()
        self.failed = 0
        self.dropped = 0
        self.stalled = 0

    def take(self, name, limit):
        """Count one hit if fewer than ``limit`` so far; True if counted."""
        with self.lock:
            used = getattr(self, name)
            if used >= limit:
                return False
            setattr(self, name, used + 1)
            return True


def _accepts_identity_only(header):
    # The client must ask for identity explicitly; "gzip, deflate" (the
    # requests default) or no header at all earns a gzip body.
    for token in (header or "").split(","):
        coding, _, params = token.strip().partition(";")
        if coding.strip().lower() == "identity":
            q = params.strip().replace(" ", "")
            return q not in ("q=0", "q=0.0", "q=0.00", "q=0.000")
    return False


class _FaultHooks(Hooks):
    """The emulator's faults, applied at the server's hook points."""

    def __init__(self, emulator):
        self.emu = emulator

    def before(self, req):
        faults = self.emu.faults
        if faults.fail_status is None or faults.fail_count <= 0:
            return None
        area = "file" if req.file_name is not None else "info"
        if faults.fail_paths not in ("all", area):
            return None
        if not self.emu._counters.take("failed", faults.fail_count):
            return None
        headers = []
        if faults.retry_after is not None:
            headers.append(("Retry-After", str(faults.retry_after)))
        return Reply.text(faults.fail_status,
                          f"Service unavailable ({faults.fail_status})\n",
                          headers=headers)

    def unauthorized(self, req):
        mode = self.emu.faults.auth_failure
        if mode == "text-200":
            return Reply.text(200, AUTH_FAILURE_BODY, content_type="text/plain")
        if mode == "html-200":
            return Reply.text(200, LOGIN_PAGE, content_type="text/html; charset=utf-8")
        return super().unauthorized(req)

    def before_file(self, req, file_name):
        faults = self.emu.faults
        if file_name in faults.missing_files:
            return Reply.text(404, "Not Found\n")
        if file_name in faults.forbidden:
            return Reply.text(403, FORBIDDEN_PAGE,
                              content_type="text/html; charset=utf-8")
        if file_name in faults.html_200:
            return Reply.text(200, LOGIN_PAGE,
                              content_type="text/html; charset=utf-8")
        if faults.redirect_files_to:
            target = faults.redirect_files_to.rstrip("/") + "/file/" + quote(file_name)
            return Reply.text(302, f"Found: {target}\n",
                              headers=[("Location", target)])
        return None

    def file_policy(self, req, file_name):
        faults = self.emu.faults
        pacing = Pacing(rate=faults.rate)
        if req.method == "GET":
            counters = self.emu._counters
            if faults.drop_after is not None and faults.drop_count > 0 \
                    and counters.take("dropped", faults.drop_count):
                pacing.cut_after = faults.drop_after
            if faults.stall_after is not None and faults.stall_count > 0 \
                    and counters.take("stalled", faults.stall_count):
                pacing.pause_after = faults.stall_after
                pacing.pause_seconds = faults.stall_seconds
        gzipped = self._gzips(req)
        return FilePolicy(ranges=not faults.no_range and not gzipped,
                          validators=not faults.no_validators,
                          pacing=pacing)

    def _gzips(self, req):
        return (self.emu.faults.gzip_unless_identity
                and not _accepts_identity_only(req.header("Accept-Encoding")))

    def finish(self, req, reply):
        if not self._gzips(req) or reply.status not in (200, 206) \
                or req.route is None:
            return reply
        body = gzip.compress(reply.read_body(), mtime=0)
        reply.body = body
        reply.set_header("Content-Encoding", "gzip")
        reply.set_header("Vary", "Accept-Encoding")
        etag = reply.get_header("ETag")
        if etag and not etag.startswith("W/"):
            # Another representation: the tag may no longer be strong.
            reply.set_header("ETag", "W/" + etag)
        return reply


class Emulator(ApiServer):
    """The downloads API on loopback, with faults.

    Parameters
    ----------
    store : MemoryStore or DirStore or None
        What to serve; None builds the demo catalogue.
    mageid, token : str
        The credentials accepted as HTTP Basic auth.
    host, port, prefix : str, int, str
        Where to listen; ``port=0`` picks a free port.
    faults : Faults or None
    require_auth : bool
        False serves without credentials (like a mirror).
    access_log : callable or None
        See :class:`magedl.server.ApiServer`.

    Examples
    --------
    >>> with Emulator() as emu:                              # doctest: +SKIP
    ...     emu.set_faults(drop_after=1000, drop_count=1)
    ...     requests.get(emu.base_url + "info/json",
    ...                  auth=(emu.mageid, emu.token)).json()
    """

    def __init__(self, store=None, mageid=DEMO_MAGEID, token=DEMO_TOKEN,
                 host="127.0.0.1", port=0, prefix=DEFAULT_PREFIX, faults=None,
                 require_auth=True, access_log=None):
        if store is None:
            store = MemoryStore(*demo_catalogue())
        self.mageid = mageid
        self.token = token
        self._faults = faults if faults is not None else Faults()
        self._counters = _Counters()
        super().__init__(store, host=host, port=port, prefix=prefix,
                         auth={mageid: token} if require_auth else None,
                         hooks=_FaultHooks(self), access_log=access_log)

    @property
    def faults(self) -> Faults:
        """The faults in force; assigning a new one restarts the counters."""
        return self._faults

    @faults.setter
    def faults(self, faults: Faults):
        self._counters = _Counters()
        self._faults = faults

    def set_faults(self, **changes) -> Faults:
        """Install a copy of the current faults with ``changes`` applied.

        Counters restart.  Returns the new :class:`Faults`.
        """
        self.faults = dataclasses.replace(self._faults, **changes)
        return self._faults

    def clear_faults(self):
        """Switch every fault off."""
        self.faults = Faults()

    def __repr__(self):
        # Never the token: a repr ends up in test reports and logs.
        return f"<Emulator {self.base_url} mageid={self.mageid}>"


# --------------------------------------------------------------------------
# The demo catalogue

_MAGIC = (
    (".tar.gz", b"\x1f\x8b\x08"),
    (".tgz", b"\x1f\x8b\x08"),
    (".gz", b"\x1f\x8b\x08"),
    (".zip", b"PK\x03\x04"),
    (".tar.bz2", b"BZh9"),
    (".bz2", b"BZh9"),
)


def make_file(name: str, size: int, seed: int = 0) -> bytes:
    """Deterministic content of ``size`` bytes that looks like ``name``.

    Archives start with their format's magic number (gzip, zip, bzip2) and
    continue with pseudo-random bytes; ``.sh`` patches are bash text.

    Parameters
    ----------
    name : str
        File name; its suffix picks the format, and it seeds the bytes so
        two files never share content.
    size : int
    seed : int

    Returns
    -------
    bytes
    """
    # String seeds are hashed with SHA-512 by random, so this is stable
    # across runs and independent of PYTHONHASHSEED.
    rng = random.Random(f"{seed}:{name}")
    lower = name.lower()
    if lower.endswith(".sh") or lower.endswith(".patch"):
        return _patch_text(name, size, rng)
    magic = next((m for suffix, m in _MAGIC if lower.endswith(suffix)), b"")
    magic = magic[:size]
    return magic + rng.randbytes(size - len(magic))


def _patch_text(name, size, rng):
    lines = [b"#!/bin/bash\n", f"# {name}: demo patch for magedl tests\n".encode()]
    words = [b"diff", b"--git", b"a/app/code", b"b/app/code", b"@@", b"-1,7",
             b"+1,8", b"Magento", b"Framework", b"return", b"$this;"]
    out = b"".join(lines)
    while len(out) < size:
        out += b" ".join(rng.choice(words) for _ in range(rng.randint(3, 9))) + b"\n"
    return out[:size]


def _entry(name, file_name, date, **more):
    return {"name": name, "file_name": file_name, "md5": None, "date": date, **more}


def demo_catalogue(seed: int = 0, big_size: int = 8 * 2**20
                   ) -> Tuple[dict, Dict[str, bytes]]:
    """A small, realistic, deterministic catalogue and its files.

    It holds every oddity ``API.md`` lists: ``-pN`` versions up to ``-p10``,
    ``.tar.gz``/``.zip``/``.tar.bz2`` variants, a sample-data archive, an
    EE name with a timestamp suffix, patches with ``ce_versions`` /
    ``ee_versions``, a list-shaped ``other`` category with Magento 1, a
    file name containing ``/``, an empty md5, one file under two versions,
    unknown fields and an unknown category.

    Parameters
    ----------
    seed : int
        Changes every file's bytes (and so the md5s).
    big_size : int
        Size of ``Magento-CE-2.4.7.tar.gz``, the one large file for
        progress and resume demos; the rest are tens of KiB.

    Returns
    -------
    feed : dict
        The ``info/json`` feed; md5s match the content (except the one
        entry whose md5 is deliberately empty).
    files : dict of str to bytes
    """
    d = "2024-04-09 10:04:33"
    notes = "https://experienceleague.adobe.com/docs/commerce-operations/release/notes/overview.html"
    feed = {
        "ce-full": {
            "2.4.7": [
                _entry("Magento Open Source 2.4.7", "Magento-CE-2.4.7.tar.gz", d,
                       release_notes=notes),
                _entry("Magento Open Source 2.4.7", "Magento-CE-2.4.7.zip", d),
                _entry("Magento Open Source 2.4.7", "Magento-CE-2.4.7.tar.bz2", d),
                _entry("Magento Open Source 2.4.7 with Sample Data",
                       "Magento-CE-2.4.7_sample_data.tar.gz", d),
            ],
            "2.4.6-p10": [
                _entry("Magento Open Source 2.4.6-p10", "Magento-CE-2.4.6-p10.tar.gz",
                       "2025-02-11 09:00:00"),
                _entry("Magento Open Source 2.4.6-p10", "Magento-CE-2.4.6-p10.zip",
                       "2025-02-11 09:00:00"),
            ],
            "2.4.6-p2": [
                _entry("Magento Open Source 2.4.6-p2", "Magento-CE-2.4.6-p2.tar.gz",
                       "2023-08-08 12:00:00"),
            ],
            "2.4.6-p1": [
                _entry("Magento Open Source 2.4.6-p1", "Magento-CE-2.4.6-p1.zip",
                       "2023-06-13 12:00:00"),
            ],
            "2.4.6": [
                _entry("Magento Open Source 2.4.6", "Magento-CE-2.4.6.tar.gz",
                       "2023-03-14 12:00:00"),
            ],
        },
        "ee-full": {
            "2.4.7": [
                _entry("Adobe Commerce 2.4.7", "Magento-EE-2.4.7-2024-04-09-10-04-33.zip", d),
                _entry("Adobe Commerce 2.4.7", "Magento-EE-2.4.7.tar.gz", d),
            ],
            "2.4.6-p2": [
                _entry("Adobe Commerce 2.4.6-p2", "Magento-EE-2.4.6-p2.tar.bz2",
                       "2023-08-08 12:00:00"),
            ],
            "2.4.6": [
                _entry("Adobe Commerce 2.4.6", "Magento-EE-2.4.6.tar.gz",
                       "2023-03-14 12:00:00", support_ends="2026-03-14"),
            ],
        },
        "ce-patch": {
            # The same file under two versions, with a "/" in its name.
            "2.4.6": [
                _entry("Security patch APSB24-40", "patches/MDVA-43395_CE_2.4.6_v1.sh",
                       "2024-06-11 12:00:00", ce_versions=["2.4.6", "2.4.6-p1"]),
            ],
            "2.4.6-p1": [
                _entry("Security patch APSB24-40", "patches/MDVA-43395_CE_2.4.6_v1.sh",
                       "2024-06-11 12:00:00", ce_versions=["2.4.6", "2.4.6-p1"]),
            ],
            "1.9.2.1": [
                # Published without a checksum.
                _entry("SUPEE-6788", "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh",
                       "2015-10-27 00:00:00", ce_versions=["1.9.2.1"]),
            ],
        },
        "ee-patch": {
            "2.4.6": [
                _entry("Security patch APSB24-40 (Commerce)",
                       "MDVA-43395_EE_2.4.6_v1.sh", "2024-06-11 12:00:00",
                       ee_versions=["2.4.6", "2.4.6-p1", "2.4.6-p2"]),
            ],
            "1.14.4.5": [
                _entry("SUPEE-11314", "PATCH_SUPEE-11314_EE_1.14.4.5_v1.sh",
                       "2020-04-28 00:00:00", ee_versions=["1.14.4.5"]),
            ],
        },
        "other": [
            _entry("Magento Open Source 1.9.4.5", "magento-1.9.4.5.tar.gz",
                   "2020-04-28 00:00:00", version="1.9.4.5"),
            _entry("Magento Open Source 1.9 sample data",
                   "magento-sample-data-1.9.2.4.zip", "2016-10-11 00:00:00",
                   version="1.9.2.4"),
        ],
        "b2b-extension": {
            "1.4.2": [
                _entry("Adobe Commerce B2B 1.4.2", "Magento-B2B-1.4.2.zip", d,
                       release_notes=notes),
            ],
        },
    }
    empty_md5 = "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh"
    files = {}
    for name in sorted(_names(feed)):
        if name == "Magento-CE-2.4.7.tar.gz":
            size = big_size
        else:
            # Varied sizes so length mix-ups show: 16..64 KiB.
            size = random.Random(f"{seed}:size:{name}").randint(16 * 1024, 64 * 1024)
        files[name] = make_file(name, size, seed)
    for entry in _all_entries(feed):
        name = entry["file_name"]
        entry["md5"] = "" if name == empty_md5 else hashlib.md5(files[name]).hexdigest()
    return feed, files


def _all_entries(feed):
    for value in feed.values():
        groups = value.values() if isinstance(value, dict) else [value]
        for entries in groups:
            yield from entries


def _names(feed):
    return {entry["file_name"] for entry in _all_entries(feed)}


# --------------------------------------------------------------------------
# Command line

_UNITS = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30}


def parse_size(text: str) -> int:
    """Parse ``"2M"``, ``"512k"``, ``"100000"`` (binary units) into bytes."""
    value = text.strip().upper().removesuffix("IB").removesuffix("B")
    unit = value[-1:] if value[-1:] in "KMG" else ""
    number = value[:len(value) - len(unit)]
    try:
        result = int(float(number) * _UNITS[unit])
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}") from None
    if result < 0:
        raise argparse.ArgumentTypeError(f"not a size: {text!r}")
    return result


def _parser():
    p = argparse.ArgumentParser(
        prog="python -m magedl.emulator",
        description="Serve an emulation of Magento's downloads API on loopback.")
    p.add_argument("--bind", default="127.0.0.1", help="address to listen on")
    p.add_argument("--port", type=int, default=0, help="0 picks a free port")
    p.add_argument("--prefix", default=DEFAULT_PREFIX)
    p.add_argument("--mageid", default=DEMO_MAGEID)
    p.add_argument("--token-file", help="file holding the accepted token "
                   "(default: a fixed demo token)")
    p.add_argument("--no-auth", action="store_true", help="accept any request")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--big-size", type=parse_size, default=8 * 2**20,
                   help="size of the one large archive (default 8M)")
    p.add_argument("--rate", type=parse_size, help="bytes/s per connection, e.g. 2M")
    p.add_argument("--no-range", action="store_true")
    p.add_argument("--no-validators", action="store_true")
    p.add_argument("--drop-after", type=parse_size)
    p.add_argument("--drop-count", type=int, default=1)
    p.add_argument("--stall-after", type=parse_size)
    p.add_argument("--stall-count", type=int, default=1)
    p.add_argument("--stall-seconds", type=float, default=30.0)
    p.add_argument("--fail-status", type=int)
    p.add_argument("--fail-count", type=int, default=1)
    p.add_argument("--fail-paths", choices=("all", "file", "info"), default="all")
    p.add_argument("--retry-after")
    p.add_argument("--forbidden", action="append", default=[], metavar="NAME")
    p.add_argument("--html-200", action="append", default=[], metavar="NAME")
    p.add_argument("--missing", action="append", default=[], metavar="NAME")
    p.add_argument("--auth-failure", choices=("401", "text-200", "html-200"),
                   default="401")
    p.add_argument("--redirect-files-to", metavar="URL")
    p.add_argument("--gzip-unless-identity", action="store_true")
    p.add_argument("--ready-file", help="write the base URL here once listening")
    p.add_argument("-v", "--verbose", action="store_true",
                   help="one line per request on stderr")
    return p


def _faults_from(args):
    return Faults(
        no_range=args.no_range, no_validators=args.no_validators, rate=args.rate,
        drop_after=args.drop_after,
        drop_count=args.drop_count if args.drop_after is not None else 0,
        stall_after=args.stall_after,
        stall_count=args.stall_count if args.stall_after is not None else 0,
        stall_seconds=args.stall_seconds,
        fail_status=args.fail_status,
        fail_count=args.fail_count if args.fail_status is not None else 0,
        retry_after=args.retry_after, fail_paths=args.fail_paths,
        forbidden=set(args.forbidden), html_200=set(args.html_200),
        missing_files=set(args.missing), auth_failure=args.auth_failure,
        redirect_files_to=args.redirect_files_to,
        gzip_unless_identity=args.gzip_unless_identity)


def _write_ready(path, text):
    # Write then rename, so a waiting script never reads half a URL.
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    os.replace(tmp, path)


def main(argv=None) -> int:
    """Run the emulator until SIGTERM or SIGINT; returns the exit status."""
    args = _parser().parse_args(argv)
    token = DEMO_TOKEN
    if args.token_file:
        try:
            with open(args.token_file, encoding="utf-8") as fh:
                token = fh.read().strip()
        except OSError as exc:
            print(f"magedl emulator: cannot read the token file: {exc.strerror}",
                  file=sys.stderr)
            return 2
        if not token:
            print("magedl emulator: the token file is empty", file=sys.stderr)
            return 2
    access = (lambda line: print(line, file=sys.stderr, flush=True)) \
        if args.verbose else None
    emu = Emulator(MemoryStore(*demo_catalogue(args.seed, args.big_size)),
                   mageid=args.mageid, token=token, host=args.bind, port=args.port,
                   prefix=args.prefix, faults=_faults_from(args),
                   require_auth=not args.no_auth, access_log=access)
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emu.start()
    try:
        print(f"magedl emulator: {emu.base_url}", flush=True)
        if args.ready_file:
            _write_ready(args.ready_file, emu.base_url)
        # A timed wait keeps the main thread responsive to signals.
        while not done.wait(0.5):
            pass
    finally:
        emu.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
