"""What ``mirror`` says of the security advisories its Composer part carries (issue 21).

The advisories themselves are :mod:`magedl.mirror.composer.advisories`; here
only their lines in the summary and their place in ``mirror --json`` rows.
"""

import logging

from magedl.config import shown_url
from magedl.text import plural

log = logging.getLogger(__name__)


def with_advisories(rows, report):
    """``mirror --json`` rows as *rows* yields them, each Composer version with the advisories that affect
    it, then a row for each affected version no row is of (a metapackage has no archive row)."""
    if report is None:
        yield from rows
        return
    listed = set()  # (name, version) of the rows of affected packages: not a pair per file
    for row in rows:
        hits = report.for_row(row)
        if hits is not None:
            row["advisories"] = hits
        if row.get("name") in report.affected:
            listed.add((row.get("name"), row.get("version")))
        yield row
    for name, versions in sorted(report.affected.items()):
        for version, hits in versions.items():
            if (name, version) not in listed:
                yield dict({"name": name, "file_name": None, "version": version, "type": "composer", "md5": None,
                            "action": "metadata", "status": "present"},
                           advisories=report.for_row({"type": "composer", "name": name, "version": version}))


_DETAILS = 20  # advisory lines in the summary; a big mirror's full list is for --json


def report_advisories(report):
    """The summary's advisory lines: how many, from where, which mirrored and locked versions they affect."""

    if report is None:
        return
    from magedl.mirror.composer.advisories import describe  # the Composer part: loaded only when it carried some

    done = report.refresh
    log.info("advisories: %s carried for composer audit (%s to %s)", plural(report.count, "advisory", "advisories"),
             plural(done.requests, "request"), ", ".join(shown_url(u) for u in done.sources))
    if report.affected:
        shown = "; ".join(f"{name} {', '.join(versions) if len(versions) <= 3 else plural(len(versions), 'version')}"
                          for name, versions in sorted(report.affected.items()))
        log.warning("advisories affect %s mirrored (kept, so projects can upgrade from them; see 'composer audit' "
                    "or --json): %s", plural(sum(len(v) for v in report.affected.values()), "version"), shown)
        lines = [f"  {name} {version}: {describe(advisory)}" for name, versions in sorted(report.affected.items())
                 for version, hits in versions.items() for advisory in hits]
        for line in lines[:_DETAILS]:
            log.info("%s", line)
        if len(lines) > _DETAILS:
            log.info("  ... and %d more (--json lists every one)", len(lines) - _DETAILS)
    for line in report.locked:
        log.warning("%s", line)
