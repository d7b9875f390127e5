"""``magedl get``: download files by name or by selection, each resumed and verified.

Progress and one line per file go to stderr as transfers end; stdout gets
the paths (or ``--json``) at the end, in catalogue order, whatever order the
transfers finished in, so a script's ``[0]`` is always the same file.
"""

import logging

from magedl.cli.app import add_command, add_selection, add_transfer_options
from magedl.cli.common import (
    catalogue,
    first_failure_code,
    has_selection,
    make_client,
    progress_mode,
    select_releases,
    transfer_options,
)
from magedl.cli.output import print_json, write_line
from magedl.cli.progress import ProgressView
from magedl.errors import MagedlError, UsageError
from magedl.fsutil import file_in_the_way
from magedl.paths import check_name
from magedl.secrecy import redact
from magedl.service.catalog import find_by_name, select_checked, settle_md5, unique_files
from magedl.text import human_bytes, plural
from magedl.transfer.fetch import fetch_many

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    p = add_command(subparsers, "get")
    p.add_argument("names", nargs="*", metavar="NAME",
                   help="file names as 'magedl list' shows them (or select with --version/--type/...)")
    add_selection(p)
    p.add_argument("-o", "--output", default=".", metavar="DIR",
                   help="target folder (default: the current one)")
    add_transfer_options(p)
    p.set_defaults(run=run)


def run(args, out) -> int:

    selecting = has_selection(args)
    if args.names and selecting:
        raise UsageError("give file names or a selection (--version/--type/--format/--latest), not both")
    if not args.names and not selecting:
        raise UsageError("nothing to get: give file names, or select with --version/--type/--latest "
                         "(see 'magedl list')")
    for name in args.names:  # refuse unsafe names before any request
        check_name(name)
    blocker = file_in_the_way(args.output)
    if blocker:
        raise UsageError(f"-o {args.output}: {blocker} is a file, not a folder; give the folder to save the files in")

    with make_client(args) as client:
        # Connections to a far server are opened while the feed comes; the downloads then find them ready.
        client.warm_up(min(args.jobs, len(args.names)) if args.names else args.jobs)
        chosen = _choose(catalogue(client), args)
        view = ProgressView(progress_mode(args), files=len(chosen))
        outcomes = {}
        try:
            for release, outcome in fetch_many(client, chosen, args.output, transfer_options(args), progress=view):
                outcomes[release.file_name] = outcome
                _report(release, outcome, args.quiet)
        finally:
            view.close()
    ordered = [(r, outcomes[r.file_name]) for r in chosen if r.file_name in outcomes]
    if args.json:
        print_json([_row(release, outcome) for release, outcome in ordered], out)
    else:
        for _, outcome in ordered:
            if not isinstance(outcome, MagedlError):
                write_line(out, str(outcome.path))
    failures = [o for _, o in ordered if isinstance(o, MagedlError)]
    if len(failures) > 1:
        log.error("%d of %s failed", len(failures), plural(len(chosen), "file"))
    return first_failure_code(outcome for _, outcome in ordered)


def _choose(releases, args):
    """The records to fetch, one per file name: in the order given, or in catalogue order for a selection."""

    if args.names:
        select_checked(releases, names=args.names)  # an unknown name is refused, with the closest one
        chosen = [find_by_name(releases, name) for name in args.names]
    else:
        chosen = select_releases(releases, args)
    return [settle_md5(r, releases) for r in unique_files(chosen)]


def _report(release, outcome, quiet):
    """One line on stderr as a file ends (``-q`` keeps only failures)."""
    if isinstance(outcome, MagedlError):
        log.error("%s", outcome)
        return
    if quiet:
        return
    state = "already present" if outcome.skipped else "fetched"
    check = "md5 verified" if outcome.verified else "UNVERIFIED (no md5 in feed)"
    how = ""
    if outcome.resumed_from:
        how = f", resumed at {human_bytes(outcome.resumed_from)}"
    elif getattr(outcome, "restarted", False):
        how = ", restarted from the start (the server could not resume, or the file changed)"
    log.info("%s: %s, %s, %s%s", release.file_name, state, human_bytes(outcome.size), check, how)


def _row(release, outcome):
    """One ``get --json`` object: the catalogue record plus what became of it."""
    row = release.to_dict()
    if isinstance(outcome, MagedlError):
        row.update(status="failed", error=redact(str(outcome)), exit_code=outcome.exit_code)
    else:
        row.update(path=str(outcome.path), size=outcome.size, verified=outcome.verified,
                   status="present" if outcome.skipped else "fetched")
    return row

