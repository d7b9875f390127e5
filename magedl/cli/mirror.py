"""The ``mirror``, ``verify`` and ``serve`` commands: terminal side.

Called from :mod:`magedl.cli`, which parses the arguments and turns errors
into exit codes; the work itself is in :mod:`magedl.mirror`,
:mod:`magedl.verify` and :mod:`magedl.server`.
"""

import ipaddress
import logging
import os
import signal
import socket
import sys
import threading
import time
from pathlib import Path

from magedl.cli.output import print_json
from magedl.cli.progress import ProgressView, human_bytes
from magedl.errors import IntegrityError, NotFoundError, UsageError

log = logging.getLogger("magedl")


# -- mirror ---------------------------------------------------------------------


def run_mirror(args, out, make_client, catalog, mode, transfer_options):
    from magedl.fsutil import atomic_write
    from magedl.mirror.core import FETCH_ACTIONS, Mirror, Summary, head_sizes, sums_digest
    from magedl.service.catalog import select

    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        raise UsageError(f"{root}: not a folder")
    started = time.monotonic()
    with make_client(args) as client:
        if args.dry_run:
            upstream = catalog(client)
            selected = _selected(select, upstream, args)
            items = Mirror(root).plan(upstream, selected, prune=args.prune, rehash=False)
            head_sizes(client, items, args.jobs)
            return _print_plan(items, args, out, FETCH_ACTIONS)
        root.mkdir(parents=True, exist_ok=True)
        with Mirror(root).lock():
            mirror = Mirror(root)  # the state read only once we hold the lock
            upstream = catalog(client)
            selected = _selected(select, upstream, args)
            items = mirror.plan(upstream, selected, prune=args.prune)
            summary, rows = Summary(), []
            view = ProgressView(mode)
            limiter = None
            if args.limit_rate:
                from magedl.transfer.ratelimit import RateLimiter

                limiter = RateLimiter(args.limit_rate)

            def on_item(item):
                summary.add(item)
                rows.append(item.to_dict())
                _report_item(item, args.quiet)

            try:
                mirror.run(client, items, jobs=args.jobs, limiter=limiter, progress=view,
                                     require_checksum=args.require_checksum, on_item=on_item, **transfer_options)
            finally:
                view.close()
                if args.diff_file:
                    # Everything changed since the last delta file, runs killed meanwhile included.
                    text = "".join(f"{rel}\n" for rel in mirror.changed)
                    atomic_write(os.path.abspath(args.diff_file), text.encode("utf-8"))
                    mirror.delta_written()
    if args.json:
        print_json(rows, out)
    _summarise(root, summary, time.monotonic() - started, sums_digest(root))
    if summary.failures:
        return summary.failures[0].error.exit_code
    return 0


def _selected(select, upstream, args):
    from magedl.errors import UnsafeNameError
    from magedl.paths import check_name

    def safe(release):
        try:
            check_name(release.file_name)
            return True
        except UnsafeNameError:
            return False

    chosen = select(upstream, types=args.type, versions=args.versions, formats=args.formats, latest=args.latest)
    if not any(safe(r) for r in chosen):  # unsafe names are skipped later: they select nothing
        # Never prune a whole mirror because of a typo in --version, or an empty feed.
        raise NotFoundError("nothing in the catalogue matches that selection (see 'magedl list'); "
                            "the mirror was not changed")
    return chosen


def _report_item(item, quiet):
    name = item.file_name
    if item.status == "failed":
        log.error("%s", item.error)
    elif quiet:
        return
    elif item.status in ("fetched", "updated", "repaired"):
        how = "md5 verified" if item.release.md5 else "UNVERIFIED (no md5 in feed)"
        why = f" ({item.reason})" if item.status != "fetched" else ""
        log.info("%s: %s%s, %s, %s", name, item.status, why, human_bytes(item.size), how)
    elif item.status == "stray" or (item.status == "keep" and item.entry is None):
        log.warning("%s: %s", name, item.reason)
    elif item.status == "pruned":
        log.info("%s: removed (%s)", name, item.reason)


def _summarise(root, summary, elapsed, digest):
    c = summary.counts
    fetched = sum(c.get(k, 0) for k in ("fetched", "updated", "repaired"))
    parts = [f"{fetched} fetched ({human_bytes(summary.transferred)} transferred)",
             f"{c.get('present', 0)} already present"]
    for key, label in (("failed", "failed"), ("keep", "kept though not selected (--prune removes them)"), ("pruned", "pruned"),
                       ("skip", "skipped (unsafe name)"), ("stray", "stray")):
        if c.get(key):
            parts.append(f"{c[key]} {label}")
    level = logging.WARNING if summary.failures else logging.INFO
    log.log(level, "mirror %s: %s, in %.1f s", root, ", ".join(parts), elapsed)
    if summary.failures:
        log.error("failed: %s", ", ".join(it.file_name for it in summary.failures))
    if digest:
        log.info("SHA256SUMS sha256 %s (note it to check the copy on the far side)", digest)


def _print_plan(items, args, out, fetch_actions):
    from magedl.cli.output import _table

    if args.json:
        print_json([it.to_dict() for it in items], out)
    else:
        rows = [[it.action, human_bytes(it.size) if it.size is not None else "?", it.file_name, it.reason]
                for it in items]
        _table(["ACTION", "SIZE", "FILE NAME", "REASON"], rows, out)
    todo = [it for it in items if it.action in fetch_actions]
    known = sum(it.size or 0 for it in todo)
    unknown = sum(1 for it in todo if it.size is None)
    pruned = [it for it in items if it.action == "prune"]
    log.info("plan: %d to fetch (%s%s), %d already present, %d to re-check, %d to prune; nothing was changed",
             len(todo), human_bytes(known), f" + {unknown} of unknown size" if unknown else "",
             sum(1 for it in items if it.action == "present"), sum(1 for it in items if it.action == "recheck"),
             len(pruned))
    return 0


# -- verify ---------------------------------------------------------------------


class ByteProgress:
    """One progress bar (or a plain line every few seconds) over a byte total."""

    def __init__(self, mode, label, interval=5.0):
        self.mode, self.label, self.interval = mode, label, interval
        self._bar, self._last = None, time.monotonic()

    def __call__(self, done, total):
        if self.mode == "bar":
            if self._bar is None:
                from tqdm import tqdm

                self._bar = tqdm(total=total, desc=self.label, unit="B", unit_scale=True, unit_divisor=1024,
                                 file=sys.stderr, dynamic_ncols=True, mininterval=0.2)
            self._bar.update(done - self._bar.n)
        elif self.mode == "lines" and time.monotonic() - self._last >= self.interval:
            self._last = time.monotonic()
            pct = f"{100 * done // total}% " if total else ""
            sys.stderr.write(f"magedl: {self.label}: {pct}{human_bytes(done)} of {human_bytes(total)}\n")
            sys.stderr.flush()

    def close(self):
        if self._bar is not None:
            self._bar.close()


def run_verify(args, out, mode):
    from magedl.mirror.core import sums_digest
    from magedl.mirror.verify import verify

    started = time.monotonic()
    bar = ByteProgress(mode, "verifying")
    try:
        findings = verify(args.targets, progress=bar)
    finally:
        bar.close()
    roots = sorted({f.root for f in findings})
    if args.json:
        print_json([f.to_dict() for f in findings], out)
    else:
        for f in findings:
            shown = f.rel if len(roots) == 1 else str(f.path)
            out.write(f"{shown}: {f.status.upper()}" + (f" ({f.problem})" if f.problem and f.status != "ok" else "")
                      + "\n")
        out.flush()
    bad = [f for f in findings if f.failed]
    checked = [f for f in findings if f.sha256]
    size = sum(f.size or 0 for f in checked)
    for root in roots:
        digest = sums_digest(root)
        if digest:
            log.info("%s: SHA256SUMS sha256 %s (compare with the one noted when seeding)", root, digest)
    for f in findings:
        if f.status == "partial":
            log.warning("%s: an unfinished download (not served; 'magedl mirror' finishes or prunes it)", f.path)
    elapsed = time.monotonic() - started
    if bad:
        counts = {}
        for f in bad:
            counts[f.status] = counts.get(f.status, 0) + 1
        for f in bad:
            log.error("%s: %s (%s)", f.path, f.status, f.problem)
        log.error("%d files (%s) checked in %.1f s: %s: NOT intact", len(checked), human_bytes(size), elapsed,
                  ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
        return IntegrityError.exit_code
    log.info("%d files (%s) checked in %.1f s: all intact", len(checked), human_bytes(size), elapsed)
    return 0


# -- serve ----------------------------------------------------------------------


def read_auth_file(path):
    """``{user: password}`` from a file of ``user:password`` lines (``#`` comments allowed)."""
    from magedl.config import register_secret

    try:
        text = Path(path).read_text(encoding="utf-8-sig")
        mode = os.stat(path).st_mode
    except OSError as exc:
        raise UsageError(f"cannot read auth file {path}: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise UsageError(f"auth file {path} is not text") from None
    accounts = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r")  # only the line ending: a password may end in a space
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.partition(":")
        register_secret(password)
        if not sep or not user or not password:
            raise UsageError(f"auth file {path}, line {number}: expected 'user:password'")
        accounts[user] = password
    if not accounts:
        raise UsageError(f"auth file {path} holds no 'user:password' line")
    if mode & 0o077:
        log.warning("auth file %s is readable by other users; chmod 600 it", path)
    return accounts


def _loopback(host):
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def run_serve(args, out):
    from magedl.fsutil import atomic_write
    from magedl.server.app import ApiServer, DirStore

    root = Path(args.dir)
    if not (root / "info" / "json").is_file():
        raise NotFoundError(f"{root}: not a mirror (no info/json); make one with 'magedl mirror {root}'")
    auth = read_auth_file(args.auth_file) if args.auth_file else None
    access = (lambda line: log.info("%s", line)) if args.verbose else None
    try:
        server = ApiServer(DirStore(root), host=args.bind, port=args.port, prefix="/", auth=auth, access_log=access)
    except OSError as exc:
        raise UsageError(f"cannot listen on {args.bind} port {args.port}: {exc.strerror or exc}") from None
    if not _loopback(args.bind):
        if auth is None:
            log.warning("SERVING %s TO THE NETWORK (%s) WITHOUT A PASSWORD: anyone who can reach this host can "
                        "download every archive; give --auth-file to require one", root, args.bind)
        else:
            log.warning("credentials travel in clear over plain HTTP; put a TLS proxy in front for untrusted networks")
    done = threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda signum, frame: done.set())
    server.start()
    try:
        out.write(server.base_url + "\n")
        out.flush()
        if args.ready_file:
            atomic_write(os.path.abspath(args.ready_file), (server.base_url + "\n").encode())
        log.info("serving %s at %s%s (Ctrl-C stops)", root, server.base_url,
                 " with Basic auth" if auth else "")
        if args.bind in ("0.0.0.0", "::"):
            log.info("other hosts reach it as http://%s:%d/", socket.getfqdn(), server.port)
        while not done.wait(0.5):
            pass
        log.info("stopped")
    finally:
        server.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return 0
