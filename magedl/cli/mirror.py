"""The ``mirror`` command: arguments, terminal side.

The work itself is one call, :func:`magedl.mirror.run.mirror_folder`; here the request its arguments
make and the report rendered.
"""

import logging
import os
import time
from pathlib import Path

from magedl.cli.advisories import report_advisories, with_advisories
from magedl.cli.app import add_command, add_selection, add_transfer_options
from magedl.cli.common import first_failure_code, has_selection, make_client, progress_mode, transfer_options
from magedl.cli.output import Column, SpilledRows, print_json_rows, print_table
from magedl.cli.progress import ProgressView
from magedl.cli.sign import add_sign_key, report_signed, sign_key
from magedl.composer.semver import normalize
from magedl.errors import ConstraintError, UsageError
from magedl.mirror.defaults import DEFAULT_REPOS, DEFAULT_URL
from magedl.mirror.model import Action, Status
from magedl.paths import BOOKKEEPING
from magedl.text import human_bytes, printable
from magedl.urls import check_http_url

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    """Register ``mirror``."""

    p = add_command(subparsers, "mirror", "copy a selection of the catalogue (and Composer packages) into a "
                                          "mirror folder, incrementally")
    p.add_argument("dir", metavar="DIR", help="the mirror folder (created if needed)")
    add_selection(p)
    p.add_argument("--prune", action="store_true",
                   help="remove files that are no longer selected or no longer upstream, only in the parts this "
                        "run selects: release files unless only Composer options are given, Composer archives only "
                        "with --composer-require/--composer-lock")
    p.add_argument("--dry-run", action="store_true", help="print the plan, with sizes when known; change nothing")
    p.add_argument("--diff-file", metavar="PATH",
                   help="write the paths (relative to DIR) this run added or changed, one a line (the folder "
                        "must exist)")
    p.add_argument("--no-html", action="store_true",
                   help="write no browsable pages (DIR/index.html and the pages it links to); removes old ones")
    add_transfer_options(p)
    add_sign_key(p)
    g = p.add_argument_group("Composer packages", "into DIR/composer/; with these and no release selection, the "
                             "downloads feed is not asked")
    g.add_argument("--composer-require", action="append", default=[], metavar="NAME[:CONSTRAINT]",
                   help="a package and, recursively, what it requires, e.g. magento/project-community-edition:2.4.7 "
                        "(repeatable); NAME may be a pattern, 'VENDOR/*' or '*': every package the repositories "
                        "offer these keys that matches")
    g.add_argument("--composer-exclude", action="append", default=[], metavar="PATTERN",
                   help="leave out these packages (a name or a pattern such as 'magento/module-*'), as "
                        "requirements, matches and dependencies (repeatable)")
    g.add_argument("--composer-lock", action="append", default=[], metavar="PATH",
                   help="exactly the packages a composer.lock lists (repeatable)")
    g.add_argument("--composer-repo", action="append", default=[], metavar="URL",
                   help=f"Composer repositories, canonical first (default {' then '.join(DEFAULT_REPOS)})")
    g.add_argument("--composer-dev", action="store_true", help="also the locks' packages-dev")
    g.add_argument("--composer-php", metavar="V", help="leave out versions that need another PHP than V")
    g.add_argument("--composer-newest", action="store_true",
                   help="only the newest version that satisfies each constraint")
    g.add_argument("--composer-url", metavar="URL",
                   help=f"where clients reach DIR/composer/ (default {DEFAULT_URL}, what 'magedl serve DIR' "
                        "answers at; serve rewrites it to the address it is reached at)")
    advisories = g.add_mutually_exclusive_group()
    advisories.add_argument("--composer-advisories", metavar="URL",
                            help="the security advisory API to ask about every package mirrored (default: the one "
                                 "each repository names, e.g. packagist's), so 'composer audit' works on the far "
                                 "side")
    advisories.add_argument("--no-composer-advisories", action="store_true",
                            help="carry no security advisories")
    p.set_defaults(run=run_mirror)


def _repo_url(url):
    check_http_url(url, "--composer-repo", "an http(s) URL such as https://repo.packagist.org/",
                   "magedl finds credentials where Composer does (auth.json, COMPOSER_AUTH)")
    return url


def composer_options(args):
    """The :class:`ComposerOptions` the ``--composer-*`` options give, checked; None when none was given."""
    given = (args.composer_require or args.composer_lock or args.composer_repo or args.composer_dev
             or args.composer_php or args.composer_newest or args.composer_url or args.composer_exclude
             or args.composer_advisories or args.no_composer_advisories)
    if not given:
        return None
    # The Composer part's code: imported by a run that asks for it, not by parsing nor by a release-only run.
    from magedl.mirror.composer.advisories import AdvisoryOptions, check_source_url
    from magedl.mirror.composer.index import normalize_url
    from magedl.mirror.composer.patterns import parse_exclude, parse_require
    from magedl.mirror.composer.select import ComposerOptions

    advisories = AdvisoryOptions(url=check_source_url(args.composer_advisories) if args.composer_advisories else None,
                                 enabled=not args.no_composer_advisories)
    for path in args.composer_lock:
        if not os.path.isfile(path):
            raise UsageError(f"--composer-lock {path}: no such file (give the path of a composer.lock)")
    repos = tuple(_repo_url(url) for url in args.composer_repo) or DEFAULT_REPOS
    if args.composer_php:
        try:
            normalize(args.composer_php)
        except ConstraintError:
            raise UsageError(f"--composer-php {printable(args.composer_php)!r}: not a PHP version such as 8.2") \
                from None
    if (args.composer_dev or args.composer_php or args.composer_newest or args.composer_repo or args.composer_exclude
            or advisories != AdvisoryOptions()) and not (args.composer_require or args.composer_lock):
        raise UsageError("--composer-repo/-dev/-php/-newest/-exclude/-advisories choose how packages are selected: "
                         "give --composer-require or --composer-lock too")
    return ComposerOptions(
        requires=tuple(parse_require(text) for text in args.composer_require),
        locks=tuple(args.composer_lock), repos=repos, dev=args.composer_dev, php=args.composer_php,
        newest=args.composer_newest, url=normalize_url(args.composer_url) if args.composer_url else None,
        advisories=advisories, excludes=tuple(parse_exclude(text) for text in args.composer_exclude))


# -- mirror ---------------------------------------------------------------------


def run_mirror(args, out):
    """``magedl mirror``: the request its arguments make, run by :func:`magedl.mirror.run.mirror_folder`, rendered.

    The exit code is that of the first failure.
    """
    from magedl.mirror.run import Clients, mirror_folder  # the engine: imported by a run, not by its parsing

    started = time.monotonic()
    request = mirror_request(args)
    clients = Clients(releases=lambda: make_client(args), composer=lambda: make_client(args, credentials=False))
    view = ProgressView(progress_mode(args))

    # --json: each file's row made as it is reported (neither the item nor the row is kept in memory), printed
    # in path order once all are: files are reported as transfers finish, and unchanged ones after the plan's.
    rows = SpilledRows(request.root / BOOKKEEPING)  # DIR/.magedl, there once a file is reported

    def on_plan(plan):
        view.files = plan.fetch_count

    def on_item(item):
        _report_item(item, args.quiet)
        if args.json:
            rows.add(item.rel, item.to_dict())

    with rows:
        try:
            report = mirror_folder(request, clients, progress=view, on_plan=on_plan, on_item=on_item,
                                   every_file=bool(args.json))
        finally:
            view.close()
        if report.dry_run:
            return _print_plan(report, args, out)
        if args.json:
            print_json_rows(with_advisories(rows, report.advisories), out)
    if report.signed is not None:
        report_signed(request.root, report.signed)
    _summarise(request.root, report.summary, time.monotonic() - started, report.sums_sha256)
    report_advisories(report.advisories)
    return first_failure_code(item.error for item in report.failures)


def mirror_request(args):
    """The :class:`~magedl.mirror.run.MirrorRequest` of ``mirror``'s arguments, checked."""
    from magedl.mirror.run import MirrorRequest, ReleaseSelection

    composer = composer_options(args)
    releases = None
    if has_selection(args) or composer is None:  # Composer options never widen the release selection
        releases = ReleaseSelection(types=tuple(args.type or ()), versions=tuple(args.versions or ()),
                                    formats=tuple(args.formats or ()), latest=bool(args.latest))
    return MirrorRequest(root=Path(args.dir), releases=releases, composer=composer, prune=args.prune,
                         dry_run=args.dry_run, diff_file=args.diff_file, html=not args.no_html,
                         transfer=transfer_options(args, sha256=True), sign_key=sign_key(args))


def _report_item(item, quiet):

    name = printable(item.file_name)
    if item.status is Status.FAILED:
        log.error("%s", item.error)
    elif quiet:
        return
    elif item.status.transferred:
        how = _how_verified(item)
        why = f" ({item.reason})" if item.status is not Status.FETCHED else ""
        log.info("%s: %s%s, %s, %s", name, item.status.value, why, human_bytes(item.size), how)
    elif item.status is Status.STRAY or (item.action is Action.KEEP and item.entry is None):
        log.warning("%s: %s", name, item.reason)
    elif item.status is Status.PRUNED:
        log.info("%s: removed (%s)", name, item.reason)


def _how_verified(item):
    from magedl.mirror.composer.plan import Archive

    if isinstance(item.source, Archive):
        return "SHA-1 verified" if item.source.shasum else "UNVERIFIED (the repository gives no SHA-1)"
    return "md5 verified" if item.source.md5 else "UNVERIFIED (no md5 in feed)"


def _summarise(root, summary, elapsed, digest):

    fetched = summary.count(Status.FETCHED, Status.UPDATED, Status.REPAIRED)
    parts = [f"{fetched} fetched ({human_bytes(summary.transferred)} transferred)",
             f"{summary.count(Status.PRESENT)} already present"]
    for status, label in ((Status.FAILED, "failed"), (Status.KEEP, "kept though not selected (--prune removes them)"),
                          (Status.PRUNED, "pruned"), (Status.SKIP, "skipped (unsafe name)"),
                          (Status.STRAY, "stray")):
        if summary.count(status):
            parts.append(f"{summary.count(status)} {label}")
    level = logging.WARNING if summary.failures else logging.INFO
    log.log(level, "mirror %s: %s, in %.1f s", root, ", ".join(parts), elapsed)
    if summary.failures:
        log.error("failed: %s", ", ".join(printable(it.file_name) for it in summary.failures))
    if digest:
        log.info("SHA256SUMS sha256 %s (note it to check the copy on the far side)", digest)


def _print_plan(report, args, out):

    plan, failures = report.plan, report.failures
    if args.json:
        print_json_rows((it.to_dict() for it in failures + plan.items), out)
    else:
        rows = [["failed", "", it.file_name, it.reason] for it in failures]
        rows += [[it.action.value, human_bytes(it.size), it.file_name, it.reason] for it in plan]
        print_table([Column("ACTION"), Column("SIZE"), Column("FILE NAME", whole=True), Column("REASON", drop=1)],
                    rows, out)
    todo = plan.to_fetch
    known = sum(it.size or 0 for it in todo)
    unknown = sum(1 for it in todo if it.size is None)
    log.info("plan: %d to fetch (%s%s), %d already present, %d to re-check, %d to prune; nothing was changed",
             len(todo), human_bytes(known), f" + {unknown} of unknown size" if unknown else "",
             len(plan.with_action(Action.PRESENT)), len(plan.with_action(Action.RECHECK)),
             len(plan.with_action(Action.PRUNE)))
    if failures:
        log.error("%d Composer requirements cannot be met: %s", len(failures),
                  "; ".join(str(it.error) for it in failures))
        return failures[0].error.exit_code
    return 0
