"""``python -m magedl.emulator``: the emulator as a process, for demos, scripts and practice by hand.

Rule: what it prints once listening is shell that ``eval`` can run (``export NAME='value'`` lines and
``#`` comments), and its ports are fixed by default, so keys stored for it survive a restart.
"""

from __future__ import annotations

import argparse
import os
import shlex
import signal
import subprocess
import sys
import threading

from magedl.config import parse_size
from magedl.emulator.catalogue import DEMO_MAGEID, DEMO_TOKEN, demo_catalogue
from magedl.emulator.composer import LAYOUTS, ComposerRepos
from magedl.emulator.core import DEFAULT_PREFIX, Emulator
from magedl.emulator.faults import Faults
from magedl.emulator.hostile import ATTACKS, HostileRepo
from magedl.fsutil import atomic_write
from magedl.server import MemoryStore

__all__ = ["main", "DEFAULT_PORT"]

#: The downloads service's port; repo.magento.com and packagist take the next two. Fixed, not free ports,
#: because Composer stores keys per host and port: keys stored for the emulator must outlive a restart.
DEFAULT_PORT = 8780
_DETACHED = "--detached-child"  # how --background tells the process it starts to let go of its pipes


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m magedl.emulator",
        description="Serve an emulation of Magento's downloads API on loopback, with switches for "
                    "its failures. Sizes take binary units: 100000, 512K, 2M.",
        epilog=f"Once listening, it prints lines for a shell to eval: MAGEDL_BASE_URL, MAGEDL_MAGEID "
               f"({DEMO_MAGEID} unless --mageid), MAGEDL_TOKEN (the demo token, unless --token-file), "
               "MAGEDL_EMULATOR_PID and, with --composer, MAGEDL_EMULATOR_MAGENTO, MAGEDL_EMULATOR_PACKAGIST and "
               "one Marketplace key pair per entitlement (MAGEDL_EMULATOR_KEYS_OPEN_SOURCE, ..._COMMERCE, "
               "..._DISABLED, ..._LAPSED, each 'PUBLIC PRIVATE'), and with --composer-hostile "
               "MAGEDL_EMULATOR_HOSTILE. These are demo values, not secrets. "
               "Example: eval \"$(python -m magedl.emulator --background --composer)\"; ...; "
               "kill $MAGEDL_EMULATOR_PID. In the foreground, stop it with Ctrl-C or SIGTERM.")
    where = p.add_argument_group("where and who")
    where.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="address to listen on (default %(default)s)")
    where.add_argument("--port", type=int, default=DEFAULT_PORT,
                       help="port to listen on (default %(default)s; with --composer, repo.magento.com and "
                            "packagist take the next two); 0 picks free ones")
    where.add_argument("--background", action="store_true",
                       help="start detached, print the lines to eval once it listens, and return; stop it with "
                            "kill $MAGEDL_EMULATOR_PID")
    where.add_argument(_DETACHED, action="store_true", help=argparse.SUPPRESS)
    where.add_argument("--prefix", default=DEFAULT_PREFIX, metavar="PATH",
                       help="URL path the API lives under (default %(default)s, as the real service)")
    where.add_argument("--mageid", default=DEMO_MAGEID, metavar="ID",
                       help="the MAGEID accepted as the Basic auth user (default %(default)s)")
    where.add_argument("--token-file", metavar="PATH",
                       help="file holding the accepted token (default: the fixed demo token)")
    where.add_argument("--no-auth", action="store_true", help="accept requests without credentials, like a mirror")
    where.add_argument("--ready-file", metavar="PATH",
                       help="write the base URL here, one line, atomically, once listening: for scripts to wait "
                            "on, as with 'magedl serve --ready-file'")
    where.add_argument("-v", "--verbose", action="store_true",
                       help="one line per request on stderr (in the foreground only)")
    comp = p.add_argument_group("Composer repositories")
    comp.add_argument("--composer", action="store_true",
                      help="also play repo.magento.com and packagist, on the next two ports of --bind; their "
                           "URLs and Marketplace keys are among the lines printed")
    comp.add_argument("--composer-layout", choices=LAYOUTS, default="providers",
                      help="repo.magento.com's packages.json layout (default %(default)s, as served since 2024)")
    comp.add_argument("--composer-hostile", choices=sorted(ATTACKS), metavar="ATTACK",
                      help="also run a hostile Composer repository playing ATTACK (one of: %(choices)s); "
                           "ask it for evil/root (docs/security.md)")
    cat = p.add_argument_group("the demo catalogue")
    cat.add_argument("--seed", type=int, default=0,
                     help="changes every file's bytes, and so the md5s (default %(default)s)")
    cat.add_argument("--big-size", type=parse_size, default=8 * 2**20, metavar="SIZE",
                     help="size of Magento-CE-2.4.7.tar.gz, the one large archive (default 8M)")
    body = p.add_argument_group("faults in file bodies")
    body.add_argument("--rate", type=parse_size, metavar="SIZE",
                      help="throttle each file body to SIZE bytes per second, e.g. 2M")
    body.add_argument("--no-range", action="store_true",
                      help="ignore Range and If-Range: always the whole file, no Accept-Ranges")
    body.add_argument("--no-validators", action="store_true", help="send no ETag or Last-Modified on files")
    body.add_argument("--drop-after", type=parse_size, metavar="SIZE",
                      help="cut the connection after SIZE body bytes, for the first --drop-count file GETs")
    body.add_argument("--drop-count", type=int, default=1, metavar="N",
                      help="how many file GETs --drop-after cuts (default %(default)s)")
    body.add_argument("--stall-after", type=parse_size, metavar="SIZE",
                      help="stop sending after SIZE body bytes, socket left open, for the first --stall-count GETs")
    body.add_argument("--stall-count", type=int, default=1, metavar="N",
                      help="how many file GETs --stall-after stalls (default %(default)s)")
    body.add_argument("--stall-seconds", type=float, default=30.0, metavar="S",
                      help="how long a stall lasts (default %(default)s)")
    body.add_argument("--gzip-unless-identity", action="store_true",
                      help="gzip every body unless the client sends Accept-Encoding: identity")
    answers = p.add_argument_group("faults in answers")
    answers.add_argument("--fail-status", type=int, metavar="STATUS",
                         help="answer the first --fail-count requests with STATUS, e.g. 503 or 429")
    answers.add_argument("--fail-count", type=int, default=1, metavar="N",
                         help="how many requests --fail-status fails (default %(default)s)")
    answers.add_argument("--fail-paths", choices=("all", "file", "info"), default="all",
                         help="which requests --fail-status applies to (default %(default)s)")
    answers.add_argument("--retry-after", metavar="VALUE",
                         help="Retry-After sent with --fail-status: seconds or an HTTP date")
    answers.add_argument("--forbidden", action="append", default=[], metavar="NAME",
                         help="answer file NAME with 403 and an HTML page (repeatable)")
    answers.add_argument("--html-200", action="append", default=[], metavar="NAME",
                         help="answer file NAME with 200 and an HTML login page (repeatable)")
    answers.add_argument("--missing", action="append", default=[], metavar="NAME",
                         help="list file NAME in the feed but answer it 404 (repeatable)")
    answers.add_argument("--auth-failure", choices=("401", "text-200", "html-200"), default="401",
                         help="how wrong credentials are answered: 401, 200 with 'Invalid login or password', "
                              "or 200 with a login page (default %(default)s)")
    answers.add_argument("--redirect-files-to", metavar="URL",
                         help="answer file/NAME with 302 to URL/file/NAME (another host, e.g. a CDN)")
    return p


def _faults_from(args) -> Faults:
    return Faults(
        no_range=args.no_range, no_validators=args.no_validators, rate=args.rate,
        drop_after=args.drop_after, drop_count=args.drop_count if args.drop_after is not None else 0,
        stall_after=args.stall_after, stall_count=args.stall_count if args.stall_after is not None else 0,
        stall_seconds=args.stall_seconds,
        fail_status=args.fail_status, fail_count=args.fail_count if args.fail_status is not None else 0,
        retry_after=args.retry_after, fail_paths=args.fail_paths,
        forbidden=set(args.forbidden), html_200=set(args.html_200), missing_files=set(args.missing),
        auth_failure=args.auth_failure, redirect_files_to=args.redirect_files_to,
        gzip_unless_identity=args.gzip_unless_identity)


def _export(name: str, value) -> str:
    return f"export {name}={shlex.quote(str(value))}"


def _shell_lines(emu: Emulator, args, token_given: bool, hostile=None) -> list:
    """What the emulator plays and how to reach it, as lines a POSIX shell can ``eval``."""
    plays = "the downloads service" + (", repo.magento.com and packagist" if emu.composer is not None else "")
    lines = [f"# magedl emulator (pid {os.getpid()}): {plays}, on {args.bind}; demo values, not secrets",
             _export("MAGEDL_BASE_URL", emu.base_url)]
    if not args.no_auth:
        lines.append(_export("MAGEDL_MAGEID", emu.mageid))
        lines.append("# MAGEDL_TOKEN: the token in --token-file" if token_given
                     else _export("MAGEDL_TOKEN", emu.token))
    lines.append(_export("MAGEDL_EMULATOR_PID", os.getpid()))
    if emu.composer is not None:
        lines += [_export("MAGEDL_EMULATOR_MAGENTO", emu.composer.magento_url),
                  _export("MAGEDL_EMULATOR_PACKAGIST", emu.composer.packagist_url),
                  "# Marketplace keys of the emulated repo.magento.com, one pair per entitlement: PUBLIC PRIVATE"]
        for kind, pair in emu.composer.keys.items():
            lines.append(_export("MAGEDL_EMULATOR_KEYS_" + kind.upper().replace("-", "_"), " ".join(pair)))
    if hostile is not None:
        lines.append(_export("MAGEDL_EMULATOR_HOSTILE", hostile.url))
    lines.append("# stop it with: kill $MAGEDL_EMULATOR_PID")
    return lines


def _background(argv) -> int:
    """Start the emulator detached; print its lines once it listens; return at once (its exit code if it failed)."""
    child = subprocess.Popen([sys.executable, "-m", "magedl.emulator", *argv, _DETACHED],
                             stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             start_new_session=True)
    # The child lets go of both pipes once it listens (or exits): reading to the end is waiting for that.
    out, err = child.stdout.read(), child.stderr.read()
    child.stdout.close()
    child.stderr.close()
    if b"MAGEDL_EMULATOR_PID" in out:
        sys.stdout.write(out.decode("utf-8", "replace"))
        sys.stdout.flush()
        return 0
    sys.stderr.write(err.decode("utf-8", "replace"))
    return child.wait() or 1


def _let_go_of_the_terminal():
    """A --background child: stdout and stderr to /dev/null, so the starting shell's pipes reach their end."""
    sys.stdout.flush()
    sys.stderr.flush()
    devnull = os.open(os.devnull, os.O_WRONLY)
    os.dup2(devnull, 1)
    os.dup2(devnull, 2)
    os.close(devnull)


def _read_token(path: str):
    try:
        with open(path, encoding="utf-8") as fh:
            token = fh.read().strip()
    except (OSError, UnicodeDecodeError) as exc:
        return None, f"cannot read the token file {path}: {getattr(exc, 'strerror', None) or 'not text'}"
    if not token:
        return None, f"the token file {path} is empty"
    return token, None


def main(argv=None) -> int:
    """Run the emulator until SIGTERM or SIGINT (or, with --background, start it); returns the exit status."""
    argv = list(sys.argv[1:] if argv is None else argv)
    args = _parser().parse_args(argv)
    if args.background:
        return _background([a for a in argv if a != "--background"])
    token = DEMO_TOKEN
    if args.token_file:
        token, problem = _read_token(args.token_file)
        if problem:
            print(f"magedl emulator: {problem}", file=sys.stderr)
            return 2
    log = (lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose and not args.detached_child \
        else None
    ports = (args.port + 1, args.port + 2) if args.port else (0, 0)
    try:
        composer = ComposerRepos(host=args.bind, layout=args.composer_layout, access_log=log, ports=ports) \
            if args.composer else False
        emu = Emulator(MemoryStore(*demo_catalogue(args.seed, args.big_size)), mageid=args.mageid, token=token,
                       host=args.bind, port=args.port, prefix=args.prefix, faults=_faults_from(args),
                       require_auth=not args.no_auth, access_log=log, composer=composer)
        hostile = HostileRepo(ATTACKS[args.composer_hostile](), host=args.bind) if args.composer_hostile else None
    except OSError as exc:
        taken = f"ports {args.port}-{args.port + 2}" if args.composer and args.port else f"port {args.port}"
        print(f"magedl emulator: cannot listen on {args.bind} {taken}: {exc.strerror or exc}; is an emulator "
              "already running there (kill $MAGEDL_EMULATOR_PID)? Or pick another with --port N (0: free ones)",
              file=sys.stderr)
        return 2
    done = threading.Event()

    def on_signal(signum, frame):
        done.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    emu.start()
    if hostile is not None:
        hostile.start()
    try:
        if args.ready_file:  # before the lines on stdout, so a reader of either finds both
            atomic_write(args.ready_file, (emu.base_url + "\n").encode(), durable=False)
        print("\n".join(_shell_lines(emu, args, token_given=bool(args.token_file), hostile=hostile)), flush=True)
        if args.detached_child:
            _let_go_of_the_terminal()
        else:
            print("magedl emulator: running in the foreground; stop it with Ctrl-C, or start it with --background "
                  "to keep this terminal", file=sys.stderr, flush=True)
        # A timed wait keeps the main thread responsive to signals.
        while not done.wait(0.5):
            pass
    finally:
        emu.stop()
        if hostile is not None:
            hostile.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
