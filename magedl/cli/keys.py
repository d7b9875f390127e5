"""``magedl keys check|store``: Marketplace keys found as Composer finds them, checked, explained and stored.

The public key is only ever shown masked (its first four characters), the
private key never; keys are read from stdin or a hidden prompt, never from
the command line.
"""

import argparse
import logging
import os
import stat
import sys
from urllib.parse import urlsplit

from magedl.cli.app import Parser, add_command
from magedl.cli.common import retry_policy, settings_without_credentials, timeouts
from magedl.cli.output import print_json, write_line
from magedl.composer.auth import find_keys
from magedl.composer.authfile import composer_auth_json, store_keys, web_root_reason
from magedl.composer.home import composer_file, global_auth_path, project_auth_path
from magedl.composer.hosts import host_key
from magedl.composer.keys import key_shape_problems, mask_public, read_keys
from magedl.composer.probe import keys_client, parse_package, probe
from magedl.composer.remote import KEYS_PAGE, keys_label, looked_in, where
from magedl.composer.sources import WARNING
from magedl.errors import AuthError, MagedlError, UsageError
from magedl.secrecy import SECURITY, redact
from magedl.text import plural, printable

log = logging.getLogger(__name__)

MARKETPLACE_URL = "https://repo.magento.com/"


def add_parser(subparsers) -> None:
    p = add_command(subparsers, "keys", credentials=False, tls=False, retry=False, json=False)
    actions = p.add_subparsers(dest="keys_action", metavar="ACTION", parser_class=Parser)
    p.set_defaults(run=_no_action)

    c = add_command(actions, "check", "find the keys as Composer would, say where they came from, and ask the "
                    "repository what they unlock", credentials=False)
    c.add_argument("--repo-url", type=repo_url, default=MARKETPLACE_URL, metavar="URL",
                   help=f"the Composer repository (default {MARKETPLACE_URL})")
    c.add_argument("--package", action="append", default=[], metavar="NAME[:VERSION]",
                   help="check that this account may fetch the package's archive (newest version, or the one "
                        "given); one byte is fetched, never the file (repeatable)")
    c.add_argument("--project", metavar="DIR", help="the Composer project folder (default: the current one)")
    c.set_defaults(run=run_check)

    s = add_command(actions, "store", "store keys read from stdin or a hidden prompt in the right auth.json",
                    credentials=False, json=False)
    where = s.add_mutually_exclusive_group()
    where.add_argument("--global", dest="global_", action="store_true",
                       help="in $COMPOSER_HOME/auth.json, for every project of this user")
    where.add_argument("--project", metavar="DIR", help="in DIR/auth.json, next to the project's composer.json")
    s.add_argument("--repo-url", type=repo_url, default=MARKETPLACE_URL, metavar="URL",
                   help=f"the Composer repository the keys are for (default {MARKETPLACE_URL})")
    s.add_argument("--no-check", action="store_true", help="store without asking the repository first")
    s.add_argument("--print-env", type=_fd, metavar="FD",
                   help="write the COMPOSER_AUTH value (JSON, for CI variables) to file descriptor FD: alone, "
                        "instead of storing the keys (with --global or --project, as well), e.g. --print-env 3 "
                        "3>composer-auth.json; refused when FD is a terminal, stdout or stderr")
    s.set_defaults(run=run_store, on_interrupt="nothing was stored")


def repo_url(text):
    """A Composer repository URL: http(s) with a host, checked before any key is looked for."""

    try:
        parts = urlsplit(text.strip())
        parts.port  # noqa: B018  (raises ValueError for a port that is not a number)
        ok = parts.scheme in ("http", "https") and bool(parts.hostname)
    except ValueError:
        ok = False
    if not ok:
        raise argparse.ArgumentTypeError(f"not a repository URL: {printable(text)!r} (e.g. {MARKETPLACE_URL})")
    return text.strip()


def _fd(text):

    if not text.isdigit():
        raise argparse.ArgumentTypeError(f"not a file descriptor number: {text!r} (e.g. 3, with 3>FILE)")
    return int(text)


def _no_action(args, out):
    raise UsageError("'magedl keys' needs an action: 'keys check' or 'keys store' (see 'magedl keys --help')")


# -- finding -------------------------------------------------------------------------------


def find(url, project=None):
    """The :class:`~magedl.composer.auth.KeyLookup` for *url*, its findings logged (never a key)."""

    lookup = find_keys(url, project_dir=project)
    for finding in lookup.findings:
        log.log(logging.WARNING if finding.level == WARNING else logging.INFO, "%s", finding.message)
    return lookup


def not_found(lookup) -> AuthError:
    """No keys for the host anywhere Composer reads: say where we looked and how to make and store some."""

    return AuthError(f"no Marketplace keys for {lookup.host_key} in any place Composer reads ({looked_in(lookup)}); "
                     f"make a pair at {KEYS_PAGE}, then store it with 'magedl keys store --global' (or --project DIR)")


def probe_keys(args, url, public, private, packages=(), label="the keys"):
    """Ask the repository at *url* with these keys (TLS, retries and timeouts from *args*).

    A refusal says what is wrong with the pair when that can be told: a shape
    that is not a Marketplace key's, or a pair the repository accepts the
    other way round.
    """
    try:
        return _probe(args, url, public, private, packages, label)
    except AuthError as exc:
        raise _why_refused(args, url, public, private, exc) from None


def _probe(args, url, public, private, packages=(), label="the keys"):

    tls = settings_without_credentials(args, base_url=url)
    client = keys_client(url, public, private, ca_bundle=tls.ca_bundle, insecure=tls.insecure,
                         retry=retry_policy(args), timeout=timeouts(args))
    with client:
        return probe(client, url, packages, keys_label=label)


def _why_refused(args, url, public, private, refusal: AuthError) -> AuthError:
    """*refusal*, told more exactly when the pair's shape or order is the cause (the keys never shown)."""

    problems = key_shape_problems(public, private)
    if problems:
        return AuthError(f"{refusal}. Marketplace keys are 32 letters and digits each, and these are not: "
                         + "; ".join(problems))
    try:  # the same two secrets, to the same host: a swap costs one request to say for sure
        _probe(args, url, private, public)
    except MagedlError:
        return refusal
    return AuthError(f"{printable(url)} refused the keys, but accepts them the other way round: the keys look "
                     "swapped. The public key is the user name and goes first; store them again in that order")


# -- check ---------------------------------------------------------------------------------


def run_check(args, out) -> int:

    for asked in args.package:  # a typo is refused before anything is read or asked
        parse_package(asked)
    lookup = find(args.repo_url, args.project)
    report = {"repo_url": lookup.url, "keys": _keys_dict(lookup)}
    try:
        if not lookup.found:
            raise not_found(lookup)
        _say_disagreements(lookup)
        result = probe_keys(args, args.repo_url, *lookup.credentials, packages=args.package,
                            label=keys_label(lookup))
    except MagedlError as exc:
        if args.json:
            report.update(ok=False, exit_code=exc.exit_code, error=redact(str(exc)))
            print_json(report, out)
        raise
    report.update(result.to_dict())
    report["ok"] = result.exit_code == 0
    if args.json:
        print_json(report, out)
    else:
        _print_check(lookup, result, out)
    for answer in ([result.sample] if result.sample else []) + list(result.packages):
        if not answer.ok:
            log.error("%s", answer.detail)
    return result.exit_code


def _keys_dict(lookup):
    others = [{"source": c.source.value, "path": str(c.path) if c.path else None, "entry": c.key,
               "public_key": c.public_masked, "same_keys": c.agrees, "same_public_key": c.same_public,
               "composer_reads_it": c.composer_match} for c in lookup.others]
    return {"found": lookup.found, "public_key": lookup.public_masked,
            "source": lookup.source.value if lookup.source else None,
            "path": str(lookup.path) if lookup.path else None, "entry": lookup.entry_key, "others": others,
            "findings": [{"level": f.level, "message": f.message} for f in lookup.findings]}


def _say_disagreements(lookup):

    for other in lookup.others:
        if other.agrees:
            continue
        what = "another private key" if other.same_public else f"other keys (public key {other.public_masked})"
        place = f"{other.source.label}" + (f" ({other.path})" if other.path else "")
        log.warning("%s holds %s for %s; %s wins%s", place, what, lookup.host_key, where(lookup),
                    "" if other.composer_match else f" (and Composer ignores the entry named {other.key!r})")


def _print_check(lookup, result, out):

    layout = {"providers": "provider files", "metadata-url": "Composer 2 metadata", "inline": "inline packages"}
    write_line(out, f"repository  {printable(result.to_dict()['repo_url'])} ({layout.get(result.layout, '?')})")
    write_line(out, f"keys        public key {lookup.public_masked} from {printable(where(lookup))}")
    if result.groups:
        groups = ", ".join(f"{printable(g)}: {plural(n, 'package')}" for g, n in result.groups.items())
        write_line(out, f"unlocks     {groups}")
    elif result.listed is not None:
        write_line(out, f"unlocks     {plural(result.listed, 'package')}")
    states = {3: "REFUSED", 4: "NOT ENTITLED", 5: "NOT FOUND"}
    for answer in ([result.sample] if result.sample else []) + list(result.packages):
        state = "OK" if answer.ok else states.get(answer.exit_code, "FAILED")
        label = "archives" if answer is result.sample else "package"
        what = " ".join(printable(x) for x in (answer.name, answer.version) if x)
        write_line(out, f"{label:<11} {what}: {state}")


# -- store ---------------------------------------------------------------------------------


def run_store(args, out) -> int:

    target = None
    if args.global_:
        target = global_auth_path()
    elif args.project:
        if not os.path.isdir(args.project):
            raise UsageError(f"--project {printable(args.project)}: not a folder")
        target = project_auth_path(args.project)
        if not composer_file(args.project).is_file():
            log.warning("%s has no composer.json yet: Composer reads a project auth.json only next to one",
                        args.project)
    elif args.print_env is None:
        raise UsageError("where should the keys go? --global ($COMPOSER_HOME/auth.json, every project of this "
                         "user) or --project DIR (DIR/auth.json); or only --print-env FD for a CI variable")
    served = web_root_reason(target.parent) if target is not None else None
    if served and not composer_file(target.parent).is_file():  # before the keys are typed in, not after
        raise UsageError(f"refusing to write {target}: {served}, where a web server could serve it, and no "
                         "Composer project reads it there; store the keys with --global, or in the project's "
                         "root (the folder holding composer.json)")
    if args.print_env is not None:
        _check_fd(args.print_env)
    prompt = _interactive()
    try:
        public, private = read_keys(sys.stdin, prompt=prompt)
    except KeyboardInterrupt:
        if prompt:  # Ctrl-C leaves the cursor on the prompt's line: the message goes on the next one
            sys.stderr.write("\n")
        raise
    host = host_key(args.repo_url)
    if host == "repo.magento.com":
        problems = key_shape_problems(public, private)
        if problems:
            raise UsageError("these do not look like Marketplace keys: " + "; ".join(problems)
                             + " (nothing was stored)")
    if not args.no_check:
        result = probe_keys(args, args.repo_url, public, private)  # raises when refused: nothing stored
        if result.sample is not None and not result.sample.ok:
            log.warning("%s", result.sample.detail)
        log.info("the repository accepts the keys (public key %s)", _masked(public))
    if target is not None:
        stored = store_keys(target, args.repo_url, public, private, create_parent=args.global_)
        verb = "stored" if stored.changed else "already stored"
        log.info("%s the keys for %s in %s (mode 600)", verb, printable(stored.key), stored.path)
        for other in stored.other_forms:
            log.warning("%s also has an entry named %r for this host; Composer ignores it: remove it",
                        stored.path, other)
        if served:
            log.warning("%s: %s; Magento's sample nginx configuration and .htaccess deny auth.json, and a "
                        "document root set to pub/ never reaches it. Check that your web server does one of "
                        "these: https://YOUR-SHOP/auth.json must answer 403 or 404", stored.path, served,
                        extra=SECURITY)
    if args.print_env is not None:
        data = (composer_auth_json(args.repo_url, public, private) + "\n").encode()
        try:
            info = os.fstat(args.print_env)
            if stat.S_ISREG(info.st_mode) and info.st_mode & 0o077:
                # `3>file` under the usual umask makes the file 0644: it holds a private key.
                os.fchmod(args.print_env, 0o600)
            os.write(args.print_env, data)
        except OSError as exc:
            raise UsageError(f"--print-env {args.print_env}: cannot write: {exc.strerror}") from None
        log.info("wrote the COMPOSER_AUTH value to file descriptor %d", args.print_env)
    return 0


def _masked(public):

    return mask_public(public)


def _interactive():
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _check_fd(fd):
    """The descriptor is open for writing and no terminal: the private key must not be echoed."""
    try:
        os.fstat(fd)
    except OSError:
        raise UsageError(f"--print-env {fd}: file descriptor {fd} is not open; open it in the shell, "
                         f"e.g. --print-env {fd} {fd}>composer-auth.json") from None
    if os.isatty(fd):
        raise UsageError(f"--print-env {fd}: that is a terminal, and the value holds the private key; redirect "
                         f"it to a file or a pipe, e.g. --print-env {fd} {fd}>composer-auth.json")
    if fd in (1, 2):
        # Not a terminal: in CI, standard output and error are the job log, kept and shown to many.
        raise UsageError(f"--print-env {fd}: that is standard {'output' if fd == 1 else 'error'}, which in CI is "
                         "the job log, and the value holds the private key; use another descriptor, e.g. "
                         "--print-env 3 3>composer-auth.json")
