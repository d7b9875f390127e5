"""The command line: parse arguments, call the library, render, map errors to exit codes.

This is the only place that turns a :class:`~magedl.errors.MagedlError` into
an exit code and a one-line message. Heavy modules (requests, rich, tqdm) are
imported inside the commands, so ``magedl --help`` starts instantly.
"""

import argparse
import logging
import os
import sys

from magedl import __version__
from magedl.cli.output import print_json
from magedl.config import redact
from magedl.errors import Interrupted, MagedlError, UsageError

log = logging.getLogger("magedl")

EPILOG = """\
credentials (first found wins):
  --mageid/--token-file, MAGEDL_MAGEID/MAGEDL_TOKEN, the config file
  ($XDG_CONFIG_HOME/magedl/config, mode 600), ~/.netrc for the API host, or a
  curl-style base URL https://MAGEID:TOKEN@host/... . Prefer --token-file or
  MAGEDL_TOKEN over --token: a token on the command line is visible to other
  users in the process list and lands in shell history.

exit codes:
  0 ok, 1 other error, 2 usage, 3 credentials refused (401), 4 no entitlement
  (403), 5 not found, 6 checksum mismatch or not the archive, 7 network or
  server failure after all retries, 130 interrupted
"""


# What a web browser opens to one host: polite to a slow service, yet enough to
# fill a link when the service throttles each connection.
DEFAULT_CONNECTIONS = 6
DEFAULT_JOBS = 4


class _Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line and exit 2."""

    def error(self, message):
        raise UsageError(f"{message} (see '{self.prog} --help')")


def _common(parser, suppress):
    """Options valid both before and after the command name."""
    default = argparse.SUPPRESS if suppress else None
    g = parser.add_argument_group("common options")
    g.add_argument("-v", "--verbose", action="count", default=argparse.SUPPRESS if suppress else 0,
                   help="more detail on stderr (twice for debug)")
    g.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS if suppress else False,
                   help="no progress, only errors on stderr")
    g.add_argument("--base-url", metavar="URL", default=default,
                   help="the API, a mirror (http/https) or a mirror folder (file://); env MAGEDL_BASE_URL")
    g.add_argument("--mageid", metavar="ID", default=default, help="your MAGEID (MAG + 9 digits); env MAGEDL_MAGEID")
    g.add_argument("--token-file", metavar="PATH", default=default,
                   help="file holding the downloads access token ('-' reads stdin); env MAGEDL_TOKEN")
    g.add_argument("--token", metavar="TOKEN", default=default,
                   help="the token itself; discouraged: visible in the process list, use --token-file")
    g.add_argument("--json", action="store_true", default=argparse.SUPPRESS if suppress else False,
                   help="machine-readable JSON array on stdout")
    g.add_argument("--ca-bundle", metavar="PATH", default=default, help="CA bundle to verify TLS with")
    g.add_argument("--insecure", action="store_true", default=argparse.SUPPRESS if suppress else False,
                   help="do NOT verify TLS (loudly discouraged)")
    g.add_argument("--retries", type=_positive_int, metavar="N", default=default,
                   help="attempts without progress before giving up (default 5)")
    g.add_argument("--retry-wait", type=_seconds, metavar="S", default=default,
                   help="first backoff wait in seconds, doubled each retry (default 1)")
    g.add_argument("--timeout", type=_seconds, metavar="S", default=default,
                   help="seconds without data before a connection counts as stalled (default 60)")


def _positive_int(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def _seconds(text):
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    return value


def build_parser():
    parser = _Parser(
        prog="magedl",
        description="List and fetch Adobe Commerce / Magento Open Source releases and patches, "
        "resumably and verified against the feed's md5.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"magedl {__version__}")
    _common(parser, suppress=False)
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    def command(name, help_text):
        p = sub.add_parser(name, help=help_text, description=help_text)
        _common(p, suppress=True)
        return p

    p = command("versions", "versions per feed category, newest first")
    p.add_argument("--type", action="append", default=[], metavar="T", help="ce-full, ee-full, ce-patch, ...")

    p = command("list", "files in the catalogue")
    _selection(p)

    p = command("get", "download files, resuming and verifying each")
    p.add_argument("names", nargs="*", metavar="NAME", help="file names as listed (or select with --version/--type)")
    _selection(p)
    p.add_argument("-o", "--output", default=".", metavar="DIR", help="target folder (default: current)")
    p.add_argument("--require-checksum", action="store_true", help="refuse files the feed gives no md5 for")
    _transfer_options(p)

    p = command("mirror", "copy a selection of the catalogue into a mirror folder, incrementally")
    p.add_argument("dir", metavar="DIR", help="the mirror folder (created if needed)")
    _selection(p)
    p.add_argument("--prune", action="store_true",
                   help="remove files that are no longer selected or no longer upstream")
    p.add_argument("--dry-run", action="store_true", help="print the plan, with sizes when known; change nothing")
    p.add_argument("--diff-file", metavar="PATH",
                   help="write the paths (relative to DIR) this run added or changed, one a line")
    p.add_argument("--require-checksum", action="store_true", help="refuse files the feed gives no md5 for")
    _transfer_options(p)

    p = command("verify", "re-hash a mirror, or files in one, against SHA256SUMS and info/json (offline)")
    p.add_argument("targets", nargs="+", metavar="DIR|FILE")

    p = command("serve", "serve a mirror folder over HTTP in the API's shape (Range, HEAD, info/*)")
    p.add_argument("dir", metavar="DIR")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=_port, default=8080, metavar="N", help="port (default 8080; 0 picks a free one)")
    p.add_argument("--auth-file", metavar="PATH",
                   help="require HTTP Basic auth: a file of 'user:password' lines")
    p.add_argument("--ready-file", metavar="PATH", help="write the base URL here once listening")
    return parser


def _port(text):
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}")
    return value


def _transfer_options(p):
    p.add_argument("--connections", type=_connections, default=None, metavar="N",
                   help=f"connections per large file when the server allows ranges (1-16). Default: "
                        f"start with one and go up to {DEFAULT_CONNECTIONS} if it is slow; N opens N at once")
    p.add_argument("--jobs", type=_positive_int, default=DEFAULT_JOBS, metavar="N",
                   help=f"files fetched at once (default {DEFAULT_JOBS})")
    p.add_argument("--limit-rate", type=_rate, default=None, metavar="RATE",
                   help="total bandwidth for the run, e.g. 500k, 20M (binary units, per second)")


def _connections(text):
    value = _positive_int(text)
    if value > 16:
        raise argparse.ArgumentTypeError(f"at most 16 connections: {text!r}")
    return value


def _rate(text):
    from magedl.transfer.ratelimit import parse_rate

    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _selection(p):
    p.add_argument("--type", action="append", default=[], metavar="T", help="feed category (repeatable)")
    p.add_argument("--version", action="append", default=[], metavar="GLOB", dest="versions",
                   help="version or glob such as '2.4.*' (repeatable)")
    p.add_argument("--format", action="append", default=[], metavar="EXT", dest="formats",
                   help="archive suffix: tar.gz, zip, tar.bz2 (repeatable)")
    p.add_argument("--latest", action="store_true", help="only the newest version of each type")


# -- commands -----------------------------------------------------------------


def _client(args):
    from magedl.config import resolve
    from magedl.service.api import Client
    from magedl.service.retry import RetryPolicy

    settings = resolve(
        base_url=args.base_url, mageid=args.mageid, token=args.token, token_file=args.token_file,
        ca_bundle=args.ca_bundle, insecure=args.insecure,
    )
    if settings.credentials is None and _is_service(settings.base_url):
        log.warning("no MAGEID and token found; the service will likely refuse (see 'magedl --help')")
    retry = RetryPolicy(
        attempts=args.retries or 5,
        backoff=1.0 if args.retry_wait is None else args.retry_wait,
    )
    read_timeout = 60.0 if args.timeout is None else args.timeout
    # Enough pooled connections per host for every job's every connection to be reused.
    pool = getattr(args, "jobs", 1) * (getattr(args, "connections", None) or DEFAULT_CONNECTIONS)
    return Client(settings, retry=retry, timeout=(min(15.0, read_timeout or 15.0), read_timeout or None),
                  pool_size=max(16, pool))


def _is_service(url):
    from urllib.parse import urlsplit

    from magedl.config import DEFAULT_BASE_URL

    # A mirror (file://, or any other host) usually needs no credentials.
    return urlsplit(url).hostname == urlsplit(DEFAULT_BASE_URL).hostname


def _catalog(client):
    return client.catalog(warn=lambda msg: log.warning("feed: %s", msg))


def cmd_versions(args, out):
    from magedl.versions import edition_of, sort_versions

    with _client(args) as client:
        releases = _catalog(client)
    types = args.type or sorted({r.type for r in releases})
    rows = []
    for type_ in types:
        for version in sort_versions(r.version for r in releases if r.type == type_ and r.version):
            rows.append({"type": type_, "edition": edition_of(type_), "version": version})
    if args.json:
        print_json(rows, out)
    else:
        from magedl.cli.output import print_versions

        print_versions(rows, types, out)
    return 0


def cmd_list(args, out):
    from magedl.service.catalog import select

    with _client(args) as client:
        releases = select(_catalog(client), types=args.type, versions=args.versions,
                          formats=args.formats, latest=args.latest)
    if args.json:
        print_json([r.to_dict() for r in releases], out)
    else:
        from magedl.cli.output import print_releases

        print_releases(releases, out)
    if not releases:
        log.warning("nothing in the catalogue matches")
    return 0


def cmd_get(args, out):
    from magedl.cli.progress import ProgressView, human_bytes
    from magedl.paths import check_name
    from magedl.service.catalog import find_by_name, select, settle_md5, unique_files
    from magedl.transfer.fetch import fetch_many

    selecting = args.versions or args.type or args.formats or args.latest
    if args.names and selecting:
        raise UsageError("give file names or a selection (--version/--type/--format/--latest), not both")
    if not args.names and not selecting:
        raise UsageError("nothing to get: give file names, or select with --version/--type/--latest")
    for name in args.names:  # refuse unsafe names before any request
        check_name(name)
    output = args.output
    if os.path.exists(output) and not os.path.isdir(output):
        raise UsageError(f"-o {output}: not a folder")

    with _client(args) as client:
        releases = _catalog(client)
        if args.names:
            chosen = []
            for name in args.names:
                found = find_by_name(releases, name)
                if found is None:
                    from magedl.errors import NotFoundError

                    raise NotFoundError(f"{name}: not in the catalogue (see 'magedl list')")
                chosen.append(found)
            chosen = [settle_md5(r, releases) for r in unique_files(chosen)]
        else:
            chosen = [settle_md5(r, releases) for r in unique_files(
                select(releases, types=args.type, versions=args.versions, formats=args.formats,
                       latest=args.latest))]
            if not chosen:
                from magedl.errors import NotFoundError

                raise NotFoundError("nothing in the catalogue matches that selection (see 'magedl list')")

        view = ProgressView(_progress_mode(args))
        limiter = None
        if args.limit_rate:
            from magedl.transfer.ratelimit import RateLimiter

            limiter = RateLimiter(args.limit_rate)
        results, failures = [], []
        try:
            for release, result in fetch_many(client, chosen, output, jobs=args.jobs,
                                              connections=args.connections or DEFAULT_CONNECTIONS,
                                              adaptive=args.connections is None, limiter=limiter,
                                              require_checksum=args.require_checksum, progress=view):
                results.append((release, result))
                if isinstance(result, MagedlError):
                    log.error("%s", result)
                    failures.append(result)
                    continue
                if not args.quiet:
                    state = "already present" if result.skipped else "saved"
                    check = "md5 verified" if result.verified else "UNVERIFIED (no md5 in feed)"
                    resumed = f", resumed at {human_bytes(result.resumed_from)}" if result.resumed_from else ""
                    _say(f"{release.file_name}: {state}, {human_bytes(result.size)}, {check}{resumed}")
                if not args.json:
                    out.write(f"{result.path}\n")
                    out.flush()
        finally:
            view.close()
    if args.json:
        print_json([_get_row(release, outcome) for release, outcome in results], out)
    if failures:
        if len(failures) > 1:
            log.error("%d of %d files failed", len(failures), len(chosen))
        return failures[0].exit_code
    return 0


# -- helpers ------------------------------------------------------------------


def _get_row(release, outcome):
    """One ``get --json`` object: the catalogue record plus what became of it."""
    row = release.to_dict()
    if isinstance(outcome, MagedlError):
        row.update(status="failed", error=str(outcome), exit_code=outcome.exit_code)
    else:
        row.update(path=str(outcome.path), size=outcome.size, verified=outcome.verified,
                   status="present" if outcome.skipped else "fetched")
    return row


def _progress_mode(args):
    if args.quiet:
        return "none"
    return "bar" if sys.stderr.isatty() else "lines"


def _say(text):
    log.info("%s", text)


def _setup_logging(args):
    from magedl.cli.progress import ConsoleHandler

    level = logging.WARNING
    if args.quiet:
        level = logging.ERROR
    elif args.verbose >= 2:
        level = logging.DEBUG
    elif args.verbose == 1 or not args.json:
        level = logging.INFO
    log.handlers[:] = [ConsoleHandler()]
    log.setLevel(level)
    log.propagate = False
    if args.verbose >= 2:
        # urllib3's debug lines show URLs and status; its handler gets our redaction too.
        lib = logging.getLogger("urllib3")
        lib.handlers[:] = [ConsoleHandler()]
        lib.setLevel(logging.DEBUG)


def cmd_mirror(args, out):
    from magedl.cli.mirror import run_mirror

    # The same transfer settings as get.
    options = {"connections": args.connections or DEFAULT_CONNECTIONS, "adaptive": args.connections is None}
    return run_mirror(args, out, _client, _catalog, _progress_mode(args), options)


def cmd_verify(args, out):
    from magedl.cli.mirror import run_verify

    return run_verify(args, out, _progress_mode(args))


def cmd_serve(args, out):
    from magedl.cli.mirror import run_serve

    return run_serve(args, out)


COMMANDS = {"versions": cmd_versions, "list": cmd_list, "get": cmd_get, "mirror": cmd_mirror,
            "verify": cmd_verify, "serve": cmd_serve}


def main(argv=None):
    """Run the command line; return the exit code."""
    out = sys.stdout
    try:
        args = build_parser().parse_args(argv)
        if args.command is None:
            build_parser().print_help(sys.stderr)
            return 2
        _setup_logging(args)
        return COMMANDS[args.command](args, out)
    except MagedlError as exc:
        sys.stderr.write(f"magedl: error: {redact(exc)}\n")
        return exc.exit_code
    except KeyboardInterrupt:
        sys.stderr.write("magedl: interrupted; partial files are kept and the next run resumes them\n")
        return Interrupted.exit_code
    except BrokenPipeError:
        # stdout closed early (e.g. piped into head): not an error worth a traceback.
        try:
            sys.stdout = open(os.devnull, "w")
        except OSError:
            pass
        return 1
    except Exception as exc:  # a bug: say so in one line, without secrets
        sys.stderr.write(f"magedl: internal error: {type(exc).__name__}: {redact(exc)}\n")
        if os.environ.get("MAGEDL_DEBUG"):
            import traceback

            sys.stderr.write(redact("".join(traceback.format_exc())))
        return 1
