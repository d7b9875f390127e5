"""``magedl doctor``: everything a build host needs, checked, one line each: OK, or FAIL with the fix.

Exit 0 only when every check is OK; otherwise the exit code of the first
failure (3 credentials refused, 7 unreachable, ...; 1 for a local problem).
WARN (with the next step) marks what only some commands need: it fails nothing.
"""

import logging
import os
import platform
import re
import shutil
import sys
import time
from dataclasses import asdict, dataclass
from typing import List

import requests

from magedl import __version__
from magedl.cli import keys
from magedl.cli.app import add_command
from magedl.cli.common import catalogue, retry_policy, timeouts
from magedl.cli.keys import MARKETPLACE_URL, repo_url
from magedl.cli.output import is_tty, print_json, write_line
from magedl.composer.remote import keys_label, where
from magedl.config import is_service, resolve, shown_url
from magedl.errors import ConfigError, MagedlError
from magedl.locks import stale_locks
from magedl.mirror.signature import INSTALL, missing_operations, ssh_keygen
from magedl.ranges import parse_http_date
from magedl.secrecy import mageid_problem, mageid_shown, redact
from magedl.service import advice
from magedl.service.api import Client
from magedl.text import human_bytes, plural, printable
from magedl.transfer.partial import Unfinished, unfinished_downloads

log = logging.getLogger(__name__)

# Below this, a release with its sample data (and the partial file beside it) may not fit.
LOW_SPACE = 2 << 30
# TLS certificates and the service's signed links tolerate some skew; minutes of it break them.
CLOCK_SKEW = 120
_TOKEN = re.compile(r"[0-9a-f]{40}")


@dataclass
class Check:
    """One line of the report."""

    check: str
    ok: bool
    detail: str
    fix: str = ""
    exit_code: int = 0
    warning: bool = False  # OK for what the host needs, but some commands will not work (the fix says why)


def add_parser(subparsers) -> None:

    p = add_command(subparsers, "doctor", "check what a build host needs: credentials, the feed, Marketplace "
                    "keys, TLS, proxies, clock, free space, leftovers, ssh-keygen")
    p.add_argument("-o", "--output", default=".", metavar="DIR",
                   help="the folder downloads go to: free space and leftovers are checked there (default: current)")
    p.add_argument("--repo-url", type=repo_url, default=MARKETPLACE_URL, metavar="URL",
                   help=f"the Composer repository for the keys check (default {MARKETPLACE_URL})")
    p.add_argument("--project", metavar="DIR", help="the Composer project folder (default: the current one)")
    p.set_defaults(run=run)


def run(args, out) -> int:
    checks: List[Check] = [_versions()]
    settings = _settings(args, checks)
    if settings is not None:
        # The feed is asked first (reported after): a server that plays the service (the emulator) says so in
        # its answer, and the credentials are then judged as the service's, as get and list explain a refusal.
        service, feed = _is_service(settings), []
        if settings.credentials is not None or not service:  # nothing to show the service
            service = _feed(args, settings, feed) or service
        if settings.credentials is None and service:
            feed = []  # the credentials line says it all, as for the real service
        checks.append(_credentials(settings, service))
        _tls(settings, checks)
        _proxies(settings, checks)
        checks += feed
    _keys(args, checks)
    _space(args.output, checks)
    _leftovers(args.output, checks)
    _ssh_keygen(checks)
    if args.json:
        print_json([asdict(c) for c in checks], out)
    else:
        _print(checks, out)
    failed = [c for c in checks if not c.ok]
    if failed:
        log.error("%s of %s failed: %s", len(failed), plural(len(checks), "check"), ", ".join(c.check for c in failed))
    return next((c.exit_code or 1 for c in failed), 0)


def _print(checks, out):
    red = is_tty(out)
    for c in checks:
        state = ("WARN" if c.warning else "OK  ") if c.ok else ("\x1b[31mFAIL\x1b[0m" if red else "FAIL")
        write_line(out, f"{state}  {c.check}: {printable(c.detail)}")
        if (not c.ok or c.warning) and c.fix:
            write_line(out, f"      fix: {printable(c.fix)}")


def _failed(name, exc: MagedlError, fix=""):

    return Check(name, False, redact(str(exc)), fix, exc.exit_code)


# -- the checks ------------------------------------------------------------------------------


def _versions():
    python = platform.python_version()
    ok = sys.version_info >= (3, 9)
    return Check("versions", ok, f"magedl {__version__}, Python {python}",
                 "" if ok else "magedl needs Python 3.9 or newer", 0 if ok else 1)


def _settings(args, checks):

    try:
        return resolve(base_url=args.base_url, mageid=args.mageid, token=args.token, token_file=args.token_file,
                       ca_bundle=args.ca_bundle, insecure=args.insecure)
    except MagedlError as exc:
        checks.append(_failed("downloads credentials", exc, "see the message; 'magedl --help' lists the sources"))
        return None


def _credentials(settings, service: bool) -> Check:
    """The credentials line; *service*: the base URL is the service's, or its server says it plays it."""
    src = settings.sources
    if settings.credentials is None:
        if service:
            return Check("downloads credentials", False, "no MAGEID and token found (looked in --mageid/"
                         "--token-file, MAGEDL_MAGEID/MAGEDL_TOKEN, the config file and ~/.netrc)",
                         "give them with MAGEDL_MAGEID and --token-file PATH (or MAGEDL_TOKEN); the token is "
                         "under Account Settings > Downloads Access Token on magento.com", 3)
        return Check("downloads credentials", True, f"none, and none needed for {_where(settings)}")
    creds = settings.credentials
    detail = (f"MAGEID {mageid_shown(creds.mageid)} from {src.mageid or '?'}, a token of "
              f"{len(creds.token)} characters from {src.token or '?'}")
    problems = list(src.notes)
    if service and not _TOKEN.fullmatch(creds.token):
        problems.append(f"the token is {len(creds.token)} characters; a downloads access token is 40 letters "
                        "a-f and digits: copy it again from Account Settings > Downloads Access Token")
    problem = mageid_problem(creds.mageid, creds.token) if service else ""
    if problem:
        problems.append(f"the MAGEID {problem}")
    return Check("downloads credentials", not problems, detail, "; ".join(problems), 0 if not problems else 2)


def _is_service(settings):

    return is_service(settings.base_url)


def _where(settings):

    return shown_url(settings.base_url)


def _tls(settings, checks):
    if settings.insecure:
        checks.append(Check("TLS", False, "verification is OFF (--insecure)", "drop --insecure; give a private "
                            "CA's certificate with --ca-bundle PATH instead", 2))
        return
    if settings.ca_bundle:
        where = settings.sources.ca_bundle or "settings"
        checks.append(Check("TLS", True, f"CA bundle {printable(settings.ca_bundle)} (from {where})"))
        return
    try:
        import certifi

        bundle = certifi.where()
    except ImportError:  # pragma: no cover - requests brings certifi
        bundle = "the system's"
    checks.append(Check("TLS", True, f"CA bundle {bundle} (the default; --ca-bundle or MAGEDL_CA_BUNDLE for a "
                        "private CA)"))


def _proxies(settings, checks):


    proxies = requests.utils.get_environ_proxies(settings.base_url)
    if not proxies:
        checks.append(Check("proxies", True, f"none for {_where(settings)}"))
        return
    shown = ", ".join(f"{scheme} via {shown_url(url)}" for scheme, url in sorted(proxies.items()))
    checks.append(Check("proxies", True, f"{shown} (from HTTPS_PROXY/HTTP_PROXY/ALL_PROXY; NO_PROXY exempts hosts)"))


def _feed(args, settings, checks) -> bool:
    """The feed and clock lines; returns whether the server says it plays the service (advice.PLAYS_HEADER)."""
    plays = False
    try:
        with Client(settings, retry=retry_policy(args), timeout=timeouts(args)) as client:
            skew, plays = _first_answer(client)
            releases = catalogue(client)
    except MagedlError as exc:
        checks.append(_failed("downloads feed", exc))
        return plays
    per_type = {}
    for r in releases:
        per_type.setdefault(r.type, set()).add(r.file_name)
    counts = ", ".join(f"{printable(t)} {len(n)}" for t, n in sorted(per_type.items()))
    files = len({r.file_name for r in releases})
    checks.append(Check("downloads feed", bool(releases), f"{plural(files, 'file')} listed ({counts or 'none'})",
                        "" if releases else "the account sees no file: check its entitlements on magento.com", 0 if
                        releases else 5))
    if skew is None:
        checks.append(Check("clock", True, "not checked (the server sent no Date header)"))
    elif abs(skew) > CLOCK_SKEW:
        way = "behind" if skew > 0 else "ahead of"
        checks.append(Check("clock", False, f"this host's clock is {abs(skew):.0f} s {way} the server's",
                            "set the time right and keep it so (timedatectl set-ntp true, or chrony/ntpd): TLS "
                            "certificates and signed download links fail on a wrong clock", 1))
    else:
        checks.append(Check("clock", True, f"within {abs(skew):.0f} s of the server's"))
    return plays


def _first_answer(client) -> tuple:
    """(server time minus local time, or None; whether the server plays the service), from its answer to info/json.

    A refusal (401) still tells both; the feed's own request then reports it. file:// answers neither.
    """
    if client.base_url.startswith("file:"):
        return None, False
    response = client.retry.call(lambda: client.open(client.url("info/json"), "info/json", allow=(401,)),
                                 "info/json")
    try:
        date, plays = response.headers.get("Date"), advice.plays_service(response.headers)
    finally:
        response.close()
    when = parse_http_date(date)
    return (when - time.time() if when is not None else None), plays


def _keys(args, checks):

    name = "Marketplace keys"
    try:
        lookup = keys.find(args.repo_url, args.project)
        if not lookup.found:
            raise keys.not_found(lookup)
        result = keys.probe_keys(args, args.repo_url, *lookup.credentials, label=keys_label(lookup))
    except MagedlError as exc:
        checks.append(_failed(name, exc))
        return
    unlocks = ", ".join(f"{g}: {n}" for g, n in result.groups.items()) or (
        plural(result.listed, "package") if result.listed is not None else "?")
    detail = f"public key {lookup.public_masked} from {where(lookup)} unlocks {unlocks}"
    sample = result.sample
    if sample is not None and not sample.ok:
        checks.append(Check(name, False, detail, sample.detail, sample.exit_code))
    else:
        checks.append(Check(name, True, detail))


def _existing(folder):
    """*folder*, or its nearest existing ancestor (the folder may not exist yet)."""
    path = os.path.abspath(folder)
    while not os.path.isdir(path) and os.path.dirname(path) != path:
        path = os.path.dirname(path)
    return path


def _space(folder, checks):
    where = _existing(folder)
    try:
        free = shutil.disk_usage(where).free
    except OSError as exc:
        checks.append(Check("free space", False, f"{where}: {exc.strerror}", "check the folder", 1))
        return
    ok = free >= LOW_SPACE
    checks.append(Check("free space", ok, f"{human_bytes(free)} free in {where}",
                        "" if ok else f"free some space, or download elsewhere with -o DIR (a release with sample "
                        f"data needs about {human_bytes(LOW_SPACE)} with its partial file)", 0 if ok else 1))


def _leftovers(folder, checks):

    where = os.path.abspath(folder)
    try:
        found = sorted([*unfinished_downloads(where), *stale_locks(where)], key=lambda leftover: leftover.name)
    except OSError as exc:
        checks.append(Check("leftovers", False, f"{where}: {exc.strerror}", "check the folder's permissions", 1))
        return
    problems, fixes = [], []
    for leftover in found:
        name = leftover.name
        if isinstance(leftover, Unfinished):
            problems.append(f"{printable(leftover.file_name)}: an unfinished download")
            fixes.append(f"'magedl get {printable(leftover.file_name)} -o {printable(folder)}' resumes it (or delete "
                         f"{printable(name)}*)")
        else:
            problems.append(f"{printable(name)}: " + ("a lock no process holds (a run was killed)" if leftover.regular
                                                      else "named like a lock, but not a regular file"))
            fixes.append(f"delete {printable(name)}")
    if problems:
        checks.append(Check("leftovers", False, f"in {where}: " + "; ".join(problems), "; ".join(fixes), 1))
    else:
        checks.append(Check("leftovers", True, f"no unfinished download or stale lock in {where}"))


def _ssh_keygen(checks):
    """Signing and checking mirror signatures run OpenSSH's ssh-keygen; nothing else needs it, so absent is a WARN."""
    try:
        path = ssh_keygen()
    except ConfigError:
        checks.append(Check("ssh-keygen", True, "not found on PATH: 'mirror --sign-key', 'sign' and 'verify'/'serve "
                            "--allowed-signers' need it (nothing else does)", INSTALL, warning=True))
        return
    needs = "'mirror --sign-key', 'sign' and 'verify'/'serve --allowed-signers' will fail"
    try:
        missing = missing_operations()
    except ConfigError as exc:  # it hangs, or cannot be run
        checks.append(Check("ssh-keygen", True, f"{path}: {exc}; {needs}", INSTALL, warning=True))
        return
    if missing:
        checks.append(Check("ssh-keygen", True, f"{path} is too old: it lacks 'ssh-keygen -Y' {', '.join(missing)}; "
                            f"{needs}", INSTALL, warning=True))
        return
    checks.append(Check("ssh-keygen", True, f"{path} (signs mirrors and checks their signatures)"))
