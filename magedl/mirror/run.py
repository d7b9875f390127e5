"""One mirror run, start to end: :func:`mirror_folder` takes a :class:`MirrorRequest`, returns a :class:`MirrorReport`.

What ``magedl mirror`` does, as a library call: the command line only turns
its arguments into a request and renders the report. The rule a reader must
not break: everything that can be refused is refused before ``DIR`` or
``DIR/.magedl`` is created (a bad ``diff_file``, a selection that matches
nothing, a mirror whose own folders are links), and the state is read only
once the mirror's lock is held.
"""

from __future__ import annotations

import logging
import os
from concurrent.futures import ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Callable, ContextManager, List, Optional

from magedl.errors import LocalFileError, MagedlError, NotFoundError, UnsafeNameError, UsageError
from magedl.fsutil import atomic_write, file_in_the_way, make_dirs
from magedl.mirror.bulk import collector_paused
from magedl.mirror.core import Mirror, sums_digest
from magedl.mirror.layout import check_layout, check_release_name
from magedl.mirror.model import Item, Plan, Status, Summary
from magedl.service.catalog import Release, select_checked
from magedl.text import printable
from magedl.transfer.options import TransferOptions

if TYPE_CHECKING:  # the Composer part and signing: imported by a run that has a Composer selection or a sign key
    from magedl.mirror.composer.advisories import AdvisoryReport
    from magedl.mirror.composer.select import ComposerOptions
    from magedl.mirror.signature import SignKey
    from magedl.mirror.sshsig import SignedBy

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReleaseSelection:
    """Which release files to mirror (``--type``, ``--version``, ``--format``, ``--latest``); empty: all of them."""

    types: tuple = ()
    versions: tuple = ()
    formats: tuple = ()
    latest: bool = False


@dataclass(frozen=True)
class MirrorRequest:
    """What one run is asked to do.

    Attributes
    ----------
    root : Path
        The mirror folder (created if needed, unless the run is refused).
    releases : ReleaseSelection or None
        None: no release selection, so the downloads feed is not asked and
        release files held are kept (even with *prune*).
    composer : ComposerOptions or None
        The Composer packages to mirror (:mod:`magedl.mirror.composer.select`);
        without packages to select, the Composer archives held are kept (even with *prune*).
    prune : bool
        Remove files no longer selected or no longer upstream, in the parts this run
        selects (releases, Composer packages): never a part it was not asked about.
    dry_run : bool
        Plan (with HEAD sizes) and change nothing.
    diff_file : str or None
        Where to write the paths the run added or changed, as given (its folder must exist).
    html : bool
        Write the browsable pages (False removes them).
    transfer : TransferOptions
        How files are fetched.
    sign_key : SignKey or None
        Sign ``SHA256SUMS`` with it (:mod:`magedl.mirror.signature`) once the run completed.
    """

    root: Path
    releases: Optional[ReleaseSelection] = ReleaseSelection()
    composer: Optional[ComposerOptions] = None
    prune: bool = False
    dry_run: bool = False
    diff_file: Optional[str] = None
    html: bool = True
    transfer: TransferOptions = TransferOptions()
    sign_key: Optional[SignKey] = None


@dataclass(frozen=True)
class Clients:
    """How a run reaches upstream: each a factory of a client used as a context manager, called only when needed.

    *releases* asks the downloads service (its credentials), *composer* the
    Composer repositories (no downloads credentials: the repositories' own).
    """

    releases: Callable[[], ContextManager]
    composer: Callable[[], ContextManager]


@dataclass
class MirrorReport:
    """What a run came to.

    Attributes
    ----------
    plan : Plan
        What was decided for each file (a dry run's sizes filled in by HEAD requests).
    dry_run : bool
        Nothing was changed: the report is the plan.
    summary : Summary
        Counts, bytes transferred and the failed items (a dry run: empty).
    items : list of Item
        Each item, in the order its fate became known, unchanged files' too, when the run was asked
        for *every_item*; otherwise empty: *on_item* receives each as it is known, and the summary
        counts them (a run of 100,000 files would hold an item per file).
    advisories : AdvisoryReport or None
        The security advisories refreshed for the Composer part, if any.
    signed : SignedBy or None
        Who signed ``SHA256SUMS`` this run (None: not signed, or the signature was current).
    sums_sha256 : str
        sha256 of ``SHA256SUMS`` to note for the far side, when the run did not sign it.
    """

    plan: Plan
    dry_run: bool = False
    summary: Summary = field(default_factory=Summary)
    items: List[Item] = field(default_factory=list)
    advisories: Optional[AdvisoryReport] = None
    signed: Optional[SignedBy] = None
    sums_sha256: str = ""

    @property
    def failures(self) -> list:
        """The items that failed (a dry run: the Composer requirements that cannot be met)."""
        if self.dry_run:
            return list(self.plan.composer.failures) if self.plan.composer is not None else []
        return self.summary.failures


def mirror_folder(request: MirrorRequest, clients: Clients, *, progress=None,
                  on_plan: Optional[Callable[[Plan], None]] = None,
                  on_item: Optional[Callable[[Item], None]] = None, every_file: bool = False,
                  every_item: bool = False) -> MirrorReport:
    """Plan, fetch, prune, index and sign *request.root*; or, for a dry run, only plan.

    *progress* receives the transfers' progress events (:mod:`magedl.transfer`),
    *on_plan* the plan once made (before anything is fetched), *on_item* each
    :class:`Item` once its fate is known. A file present as the state records it
    (:attr:`Plan.unchanged`) is only counted in the summary, unless *every_file* asks for it to be
    reported too (``--json``: its item made from its state row as it is reported, and dropped once
    *on_item* returns). *every_item* (implies *every_file*) keeps every item in
    :attr:`MirrorReport.items`, for a caller that wants the list (an item per file in memory). Index
    files and the delta file are written even when some files failed (and on Ctrl-C).

    Raises
    ------
    MagedlError
        A refusal before anything was created (bad request, nothing selected,
        a busy or unsafe mirror), or a failure of the run as a whole.
    """
    root = Path(request.root)
    blocker = file_in_the_way(root)
    if blocker:
        raise UsageError(f"{root}: {blocker} is a file, not a folder; give the mirror's folder (it is created if "
                         "needed)")
    composer = request.composer
    diff_file = _diff_file(request.diff_file)
    check_layout(root)
    releases = request.releases
    with ExitStack() as stack:
        client = stack.enter_context(clients.releases()) if releases is not None else None
        with collector_paused():
            upstream = _catalogue(client) if releases is not None else None
            selected = _selected(upstream, releases) if releases is not None else ()
        composer_client = keys = selection = None
        if composer is not None and composer.selects:
            composer_client = stack.enter_context(clients.composer())
            keys, selection = _resolve(composer_client, composer, root, request.transfer.jobs)
            if releases is None and not selection.packages and not root.exists():
                # Nothing to mirror and no mirror yet: create nothing (as a release selection typo does).
                for failure in selection.failures[1:]:
                    log.error("%s", failure.error)
                raise selection.failures[0].error if selection.failures else NotFoundError(
                    "the Composer options select nothing; the mirror was not created")
        plan_options = dict(prune=request.prune, composer=selection, composer_url=composer.url if composer else None)
        if releases is None and request.prune:
            log.info("release files are kept: no release selection given (give --type/--version with --prune "
                     "to prune them)")
        if request.dry_run:
            plan = Mirror(root).plan(upstream, selected, rehash=False, every_item=True, **plan_options)
            _say_composer_kept(request, selection, plan)
            head_sizes(client, plan, request.transfer.jobs, composer_client)
            return MirrorReport(plan, dry_run=True)
        make_dirs(root)
        with Mirror(root).lock():
            if selection is not None:
                selection.save()  # the metadata read, for the next run to revalidate instead of fetch
            mirror = Mirror(root, html=request.html)  # the state read only once we hold the lock
            with collector_paused():
                plan = mirror.plan(upstream, selected, **plan_options)
            _say_composer_kept(request, selection, plan)
            if on_plan is not None:
                on_plan(plan)
            report = MirrorReport(plan, advisories=_advisories(composer_client, composer, selection, root, plan))
            every_file = every_file or every_item
            if not every_file:  # counted, with no item per file
                report.summary.counts[Status.PRESENT] = len(plan.unchanged) + (
                    len(plan.composer.unchanged) if plan.composer is not None else 0)
                if plan.composer is not None and plan.composer.kept:
                    report.summary.counts[Status.KEEP] = len(plan.composer.kept)

            def landed(item):
                report.summary.add(item)
                if every_item:
                    report.items.append(item)
                if on_item is not None:
                    on_item(item)

            try:
                mirror.run(client, plan, request.transfer, progress=progress, on_item=landed,
                           composer_client=composer_client, composer_keys=keys, sign_key=request.sign_key,
                           every_file=every_file)
            finally:
                if diff_file is not None:
                    # Everything changed since the last delta file, runs killed meanwhile included.
                    _write_delta(diff_file, mirror.delta())
                    mirror.delta_written()
    report.signed = mirror.signed
    report.sums_sha256 = "" if request.sign_key else sums_digest(root)
    return report


def _say_composer_kept(request, selection, plan) -> None:
    if request.prune and selection is None and plan.composer is not None and (plan.composer.items
                                                                              or plan.composer.kept):
        log.info("Composer packages are kept: no Composer options given (give --composer-require or "
                 "--composer-lock with --prune to prune them)")


def _catalogue(client) -> list:
    """Every release the account sees, feed warnings logged (their text made printable)."""
    return client.catalog(warn=lambda msg: log.warning("feed: %s", printable(msg)))


def _selected(upstream, releases: ReleaseSelection) -> list:
    """The releases selected; refused when nothing (safe) matches, before the mirror is touched."""
    def safe(release):
        try:
            check_release_name(release.file_name)
            return True
        except UnsafeNameError:
            return False

    try:
        chosen = select_checked(upstream, types=releases.types, versions=releases.versions,
                                formats=releases.formats, latest=releases.latest)
    except NotFoundError as exc:
        raise NotFoundError(f"{exc}; the mirror was not changed") from None
    if not any(safe(r) for r in chosen):  # unsafe names are skipped later: they select nothing
        # Never prune a whole mirror because of a hostile feed, or an empty one.
        raise NotFoundError("nothing safe to mirror in that selection: every name it matches is refused "
                            "(see the warnings); the mirror was not changed")
    return chosen


def _resolve(client, composer, root, jobs):
    """Find the repositories' keys and choose the Composer versions: (key notes, Selection)."""
    from magedl.mirror.composer.fetch import select

    return select(client, composer, root, jobs=max(8, jobs or 0))


def _advisories(client, composer, selection, root, plan):
    """Refresh the security advisories the Composer part will carry; their report, or None."""
    if plan.composer is None or selection is None:
        return None  # no Composer selection this run: the advisories held stay as they are
    from magedl.mirror.composer.advisories import update_part

    return update_part(client, plan.composer, selection.advisory_sources, composer.advisories, root, composer.locks)


def _diff_file(name):
    """The delta file's path, checked before anything is done: its folder must exist, and it is no folder."""
    if not name:
        return None
    path = Path(os.path.abspath(name))
    if path.is_dir():
        raise UsageError(f"--diff-file {name}: is a folder; give the path of a file to write the changed paths to")
    if not path.parent.is_dir():
        missing = path.parent
        while not missing.parent.is_dir() and missing.parent != missing:
            missing = missing.parent
        what = "is not a folder" if missing.exists() else "does not exist"
        raise UsageError(f"--diff-file {name}: {missing} {what}; create the folder first "
                         "(magedl does not create it, so a typo does not scatter files)")
    return path


def _write_delta(path, rels):
    try:
        atomic_write(path, "".join(f"{rel}\n" for rel in rels).encode("utf-8"))
    except OSError as exc:
        raise LocalFileError(f"--diff-file {path}: cannot write it: {exc.strerror or exc}; the mirror itself is "
                             "complete, and the next run's delta file lists these paths too") from None


def head_sizes(client, plan: Plan, jobs: int = 4, composer_client=None) -> None:
    """Fill in the size of files to fetch with HEAD requests (a dry run's plan); best effort."""
    todo = []
    if client is not None:
        todo += [(client, client.file_url(it.file_name), it) for it in plan.to_fetch if isinstance(it.source, Release)]
    if composer_client is not None:  # a run with a Composer selection: only it imports that part
        from magedl.mirror.composer.plan import Archive

        todo += [(composer_client, it.source.url, it) for it in plan.to_fetch if isinstance(it.source, Archive)]

    def head(job):
        session, url, it = job
        try:
            response = session.open(url, it.file_name, method="HEAD", stream=False)
        except MagedlError as exc:
            log.debug("HEAD %s: %s", it.file_name, exc)
            return
        length = response.headers.get("Content-Length", "")
        response.close()
        if length.isdigit() and len(length) < 20:
            it.size = int(length)

    with ThreadPoolExecutor(max_workers=max(1, min(jobs, len(todo) or 1))) as pool:
        list(pool.map(head, todo))


__all__ = ["Clients", "MirrorReport", "MirrorRequest", "ReleaseSelection", "head_sizes", "mirror_folder"]
