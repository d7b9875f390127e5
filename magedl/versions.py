"""Version strings as the downloads service uses them: ordering and matching.

Rule: the feed is untrusted, so any string must sort without raising. The version forms seen: see
docs/service.md, "Naming and versions seen".
"""

import re
from fnmatch import fnmatchcase
from typing import Iterable, List

# ASCII digits only: other scripts' digits are not version numbers, and int() would accept them.
_VERSION = re.compile(r"v?([0-9]+(?:\.[0-9]+)*)(?:[-_.+]?(.*))?")
_TAG = re.compile(r"([a-z]+)[-_.]?([0-9]*)")

# Rank of pre-release tags; all of them order before the plain release.
_PRE_RELEASE = {
    "dev": 0,
    "alpha": 1, "a": 1,
    "beta": 2, "b": 2, "preview": 2,
    "rc": 3, "c": 3, "pre": 3,
}
# Unknown suffixes go after the known pre-release tags but still before the
# plain release: a build we cannot name is not taken as newer than the release.
_UNKNOWN_RANK = 9

_PRE, _RELEASE, _PATCH = 0, 1, 2


def _number(digits):
    """A sort key for a run of digits: numeric order without int(), which refuses 4,300+ digits."""
    digits = digits.lstrip("0")
    return (len(digits), digits)


def version_key(version: str) -> tuple:
    """Return a sort key for a version string.

    Parameters
    ----------
    version : str
        Any string; the feed is untrusted.

    Returns
    -------
    tuple
        Keys of real versions compare by numeric parts (``1.10 > 1.9``), then
        pre-release (alpha < beta < rc) < plain release < ``-pN`` (by N).
        Strings that do not start with a number ("garbage") sort below every
        real version, alphabetically. The original string is the last
        element, so distinct strings never tie and sorting is deterministic.
    """
    text = version if isinstance(version, str) else str(version)
    match = _VERSION.fullmatch(text.strip().lower())
    if not match:
        return (0, (), 0, 0, _number(""), text.lower(), text)
    numbers = tuple(_number(part) for part in match.group(1).split("."))
    suffix = match.group(2) or ""
    tag = _TAG.fullmatch(suffix)
    if not suffix:
        rank = (_RELEASE, 0, _number(""))
    elif tag and tag.group(1) == "p":
        rank = (_PATCH, 0, _number(tag.group(2)))
    elif tag and tag.group(1) in _PRE_RELEASE:
        rank = (_PRE, _PRE_RELEASE[tag.group(1)], _number(tag.group(2)))
    else:
        rank = (_PRE, _UNKNOWN_RANK, _number(""))
    return (1, numbers) + rank + (suffix, text)


def sort_versions(versions: Iterable[str], newest_first: bool = True) -> List[str]:
    """Return the distinct versions, sorted.

    Parameters
    ----------
    versions : iterable of str
    newest_first : bool
        Newest first (default) or oldest first.

    Returns
    -------
    list of str
    """
    return sorted(set(versions), key=version_key, reverse=newest_first)


def version_matches(version: str, pattern: str) -> bool:
    """Tell whether ``version`` matches a shell glob, case-insensitively.

    ``*``, ``?`` and ``[...]`` work as in the service's
    ``info/filter/version/1.9.*``; a pattern without them matches only that
    exact version (``2.4.6`` does not match ``2.4.6-p1``).
    """
    return fnmatchcase(version.lower(), pattern.lower())


def edition_of(type_: str) -> str:
    """Return ``"CE"`` or ``"EE"`` for a feed category, ``""`` for others.

    Examples
    --------
    >>> edition_of("ee-patch")
    'EE'
    """
    prefix = type_.lower()[:3] if isinstance(type_, str) else ""
    return {"ce-": "CE", "ee-": "EE"}.get(prefix, "")


def unclosed_bracket(pattern: str) -> bool:
    """Whether a glob has a ``[`` that is never closed (``2.4.[7``): fnmatch takes it literally."""
    i, n = 0, len(pattern)
    while i < n:  # the scan fnmatch.translate makes
        i += 1
        if pattern[i - 1] != "[":
            continue
        j = i + (i < n and pattern[i] == "!")
        j += j < n and pattern[j] == "]"  # a ']' first is a member, not the end
        while j < n and pattern[j] != "]":
            j += 1
        if j >= n:
            return True
        i = j + 1
    return False
