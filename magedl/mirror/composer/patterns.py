"""What ``--composer-require`` and ``--composer-exclude`` accept: names, and patterns such as ``VENDOR/*`` or ``*``.

``*`` stands for any run of characters (``/`` included); everything else is
Composer's name characters, matched lower-cased.
"""

from __future__ import annotations

import re
from typing import Callable

from magedl.composer.constraints import parse_constraint
from magedl.composer.metadata import check_package_name
from magedl.errors import ConstraintError, MagedlError, UnsafeNameError, UsageError
from magedl.secrecy import redact
from magedl.text import printable

# A pattern: Composer's name characters and "*", a vendor and a name (or "*" alone for everything).
_PATTERN = re.compile(r"^(?:\*|[a-z0-9*][a-z0-9_.*-]*/[a-z0-9*][a-z0-9_.*-]*)$")


def is_pattern(name: str) -> bool:
    """Whether a ``--composer-require`` or ``--composer-exclude`` name is a pattern (has a ``*``)."""
    return "*" in name


def check_pattern(text: str) -> str:
    """A name pattern (``VENDOR/*``, ``*``, ``magento/module-*``), lower-cased.

    Raises
    ------
    UnsafeNameError
    """
    pattern = text.lower() if isinstance(text, str) else ""
    if not _PATTERN.fullmatch(pattern):
        raise UnsafeNameError(f"refusing Composer name pattern {printable(text)!r}: expected VENDOR/NAME where "
                              "'*' stands for any characters (e.g. 'magento/*' or '*')")
    return pattern


def parse_exclude(text: str) -> str:
    """A ``--composer-exclude`` value: a package name or a pattern, lower-cased.

    Raises
    ------
    UsageError
    """
    try:
        return check_pattern(text) if is_pattern(text or "") else check_package_name(text or "")
    except UnsafeNameError as exc:
        raise UsageError(f"--composer-exclude {printable(text)!r}: {exc}") from None


def matcher(pattern: str) -> Callable[[str], bool]:
    """A test of lower-cased names against *pattern* (``*``: any run of characters, ``/`` included)."""
    regex = re.compile(".*".join(re.escape(part) for part in pattern.split("*")))
    return lambda name: regex.fullmatch(name) is not None


def offered_matches(repos, pattern: str, fail: Callable[[Exception], None], warn: Callable[[str], None]) -> list:
    """Every name the repositories offer these keys that matches *pattern*: validated, sorted.

    A repository that cannot say what it offers is reported to *fail* and the others are still asked;
    a name Composer would refuse is reported to *warn* and left out (no URL is ever built from it).
    """
    matches, names = matcher(pattern), set()
    for repo in repos:
        try:
            offered = repo.offered_names(pattern)
        except MagedlError as exc:
            fail(exc)
            continue
        for name in offered:
            if not matches(name) or name in names:
                continue
            try:
                names.add(check_package_name(name))
            except UnsafeNameError as exc:
                warn(f"{redact(repo.url)} offers {exc}; skipped")
    return sorted(names)


def parse_require(text: str) -> tuple:
    """``NAME[:CONSTRAINT]`` (or ``NAME=CONSTRAINT``, ``NAME CONSTRAINT``) -> (name, constraint).

    Raises
    ------
    UsageError
        A name Composer would refuse, or a constraint it cannot parse.
    """
    match = re.match(r"^\s*([^:=\s]+)\s*(?:[:=\s]\s*(.*?))?\s*$", text or "")
    if match is None:
        raise ConstraintError(f"--composer-require {printable(text)!r}: expected NAME[:CONSTRAINT]")
    try:
        name = check_pattern(match.group(1)) if is_pattern(match.group(1)) else check_package_name(match.group(1))
    except UnsafeNameError as exc:
        raise ConstraintError(f"--composer-require {printable(text)!r}: {exc}") from None
    constraint = match.group(2) or "*"
    parse_constraint(constraint)  # refused now, not after the metadata was fetched
    return name, constraint
