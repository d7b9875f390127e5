"""``python -m magedl.emulator``: the emulator as a process, for demos, scripts and manual tests."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading

from magedl.emulator.catalogue import DEMO_MAGEID, DEMO_TOKEN, demo_catalogue
from magedl.emulator.composer import LAYOUTS, ComposerRepos
from magedl.emulator.core import DEFAULT_PREFIX, Emulator
from magedl.emulator.faults import Faults
from magedl.emulator.hostile import ATTACKS, HostileRepo
from magedl.server import MemoryStore

__all__ = ["main", "parse_size"]



def parse_size(text: str) -> int:
    """``"2M"``, ``"512k"``, ``"100000"`` (binary units) in bytes, for argparse: the one size parser, config's."""
    from magedl.config import parse_size as parse

    try:
        return parse(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m magedl.emulator",
        description="Serve an emulation of Magento's downloads API on loopback, with switches for "
                    "its failures. Sizes take binary units: 100000, 512K, 2M.",
        epilog=f"Credentials: MAGEID {DEMO_MAGEID} and a fixed demo token (printed nowhere; see "
               "magedl.emulator.DEMO_TOKEN), unless --mageid/--token-file say otherwise; Marketplace keys for "
               "--composer: magedl.emulator.DEMO_KEYS (one pair per entitlement). Once listening, the "
               "emulator prints 'magedl emulator: URL' (then, with --composer, 'magedl emulator: "
               "repo.magento.com URL' and 'magedl emulator: packagist URL'); the ready file holds the same "
               "lines without the prefix. Stop with Ctrl-C or SIGTERM.")
    where = p.add_argument_group("where and who")
    where.add_argument("--bind", default="127.0.0.1", metavar="ADDR", help="address to listen on (default %(default)s)")
    where.add_argument("--port", type=int, default=0, help="port to listen on; 0 (the default) picks a free one")
    where.add_argument("--prefix", default=DEFAULT_PREFIX, metavar="PATH",
                       help="URL path the API lives under (default %(default)s, as the real service)")
    where.add_argument("--mageid", default=DEMO_MAGEID, metavar="ID",
                       help="the MAGEID accepted as the Basic auth user (default %(default)s)")
    where.add_argument("--token-file", metavar="PATH",
                       help="file holding the accepted token (default: the fixed demo token)")
    where.add_argument("--no-auth", action="store_true", help="accept requests without credentials, like a mirror")
    where.add_argument("--ready-file", metavar="PATH",
                       help="write the base URL here (atomically) once listening, for scripts to wait on")
    where.add_argument("-v", "--verbose", action="store_true", help="one line per request on stderr")
    comp = p.add_argument_group("Composer repositories")
    comp.add_argument("--composer", action="store_true",
                      help="also play repo.magento.com and packagist, each on its own free port of --bind; "
                           "their URLs follow the API's on stdout and in the ready file")
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


def _write_ready(path: str, text: str) -> None:
    # Write then rename, so a waiting script never reads half a URL.
    tmp = f"{path}.tmp{os.getpid()}"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text + "\n")
    os.replace(tmp, path)


def _ready_lines(emu: Emulator, hostile=None) -> list:
    """The API's base URL; with --composer, ``repo.magento.com URL`` and ``packagist URL`` lines too."""
    lines = [emu.base_url]
    if emu.composer is not None:
        lines += [f"repo.magento.com {emu.composer.magento_url}", f"packagist {emu.composer.packagist_url}"]
    if hostile is not None:
        lines.append(f"hostile {hostile.url}")
    return lines


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
    """Run the emulator until SIGTERM or SIGINT; returns the exit status."""
    args = _parser().parse_args(argv)
    token = DEMO_TOKEN
    if args.token_file:
        token, problem = _read_token(args.token_file)
        if problem:
            print(f"magedl emulator: {problem}", file=sys.stderr)
            return 2
    access = (lambda line: print(line, file=sys.stderr, flush=True)) if args.verbose else None
    try:
        composer = ComposerRepos(host=args.bind, layout=args.composer_layout, access_log=access) \
            if args.composer else False
        emu = Emulator(MemoryStore(*demo_catalogue(args.seed, args.big_size)), mageid=args.mageid, token=token,
                       host=args.bind, port=args.port, prefix=args.prefix, faults=_faults_from(args),
                       require_auth=not args.no_auth, access_log=access, composer=composer)
        hostile = HostileRepo(ATTACKS[args.composer_hostile](), host=args.bind) if args.composer_hostile else None
    except OSError as exc:
        print(f"magedl emulator: cannot listen on {args.bind} port {args.port}: {exc.strerror or exc}",
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
        lines = _ready_lines(emu, hostile)
        if args.ready_file:  # before the lines on stdout, so a reader of either finds both
            _write_ready(args.ready_file, "\n".join(lines))
        print("\n".join(f"magedl emulator: {line}" for line in lines), flush=True)
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
