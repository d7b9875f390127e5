"""The ``verify`` command: arguments, terminal side.

The work itself is :class:`magedl.mirror.verify.Verification`; here its findings are printed as they come
(one line, or one JSON object, each), so a large mirror's findings are never held together.
"""

import logging
import time

from magedl.cli.app import add_command
from magedl.cli.common import progress_mode
from magedl.cli.output import print_json_rows, write_line
from magedl.cli.progress import ByteBar
from magedl.cli.sign import add_allowed_signers, allowed_signers, check_signatures
from magedl.errors import IntegrityError
from magedl.text import human_bytes, plural, printable

log = logging.getLogger(__name__)


def add_parser(subparsers) -> None:
    """Register ``verify``."""

    p = add_command(subparsers, "verify",
                    "re-hash a mirror, or files in one, against SHA256SUMS, info/json and the Composer "
                    "metadata (offline)", credentials=False, tls=False, retry=False)
    p.add_argument("targets", nargs="+", metavar="DIR|FILE")
    add_allowed_signers(p, "check SHA256SUMS.sig against it before anything else (exit 6 unless it verifies)")
    p.set_defaults(run=run_verify)


def signature_state(root, signed_sums) -> str:
    """What ``verify --json`` says of the signature of mirror *root*.

    "valid" (checked against the allowed signers, and the files against the checksums it covers), "not
    checked" (signed, but no allowed signers given) or "unsigned". A signature that does not verify has
    no state: it stops the run first (exit 6).
    """
    from magedl.mirror.signature import is_signed

    if root in signed_sums:
        return "valid"
    return "not checked" if is_signed(root) else "unsigned"


def run_verify(args, out):
    """``magedl verify``: one line per path on stdout; raises IntegrityError (exit 6) when not intact."""
    from magedl.mirror.core import sums_digest  # the engine: imported by a run, not by its parsing
    from magedl.mirror.verdict import Verdict
    from magedl.mirror.verify import Verification, mirror_roots

    started = time.monotonic()
    allowed = allowed_signers(args)
    mirrors = mirror_roots(args.targets)
    signed_sums = check_signatures(mirrors, allowed)  # before anything else is read
    signatures = {root: signature_state(root, signed_sums) for root in mirrors}
    mode = progress_mode(args)
    check = Verification(args.targets, signed_sums=signed_sums, sized=mode != "none")
    roots = check.roots
    bad, partial, counts = [], [], {"checked": 0, "size": 0}

    def tally(f):
        """Each finding as it passes to the output: only failures and unfinished downloads are kept."""
        if f.failed:
            bad.append(f)
        elif f.status is Verdict.PARTIAL:
            partial.append(f)
        if f.sha256:
            counts["checked"] += 1
            counts["size"] += f.size or 0
        return f

    bar = ByteBar(mode, "verifying")
    try:
        findings = map(tally, check.findings(bar if mode != "none" else None))
        if args.json:
            print_json_rows(({**f.to_dict(), "signature": signatures.get(f.root)} for f in findings), out)
        else:
            for f in findings:
                shown = f.rel if len(roots) == 1 else str(f.path)
                problem = f" ({f.problem})" if f.problem and f.status is not Verdict.OK else ""
                write_line(out, printable(f"{shown}: {f.status.value.upper()}{problem}"))
    finally:
        bar.close()
    for root in roots if allowed is None else ():
        digest = sums_digest(root)
        if digest:
            log.info("%s: SHA256SUMS sha256 %s (compare with the one noted when seeding)", root, digest)
    for f in partial:
        log.warning("%s: an unfinished download (not served; 'magedl mirror' finishes or prunes it)", f.path)
    elapsed = time.monotonic() - started
    what = f"{plural(counts['checked'], 'file')} ({human_bytes(counts['size'])}) checked in {elapsed:.1f} s"
    if bad:
        tallies = {}
        for f in bad:
            tallies[f.status.value] = tallies.get(f.status.value, 0) + 1
        for f in bad:
            log.error("%s: %s (%s)", f.path, f.status.value, f.problem)
        raise IntegrityError(f"{what}: {', '.join(f'{n} {s}' for s, n in sorted(tallies.items()))}: NOT intact")
    # Exit 0 vouches for what SHA256SUMS lists; an unfinished download is not among it, so it is said, not hidden.
    log.info("%s: %s", what, f"intact, {plural(len(partial), 'download')} unfinished" if partial else "all intact")
    return 0
