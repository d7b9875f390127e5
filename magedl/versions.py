"""Version strings as the downloads service uses them: ordering and matching.

Magento 2 versions have three parts and an optional ``-pN`` patch level
(``2.4.6`` < ``2.4.6-p1`` < ``2.4.6-p10`` < ``2.4.7``); Magento 1 has four
(``1.9.4.5``, EE ``1.14.4.5``); early Magento 2 had pre-releases
(``2.0.0-beta``, ``2.0.0-rc1``). The feed is untrusted, so anything else must
still sort without raising.
"""

import re
from fnmatch import fnmatchcase

_VERSION = re.compile(r"v?(\d+(?:\.\d+)*)(?:[-_.+]?(.*))?")
_TAG = re.compile(r"([a-z]+)[-_.]?(\d*)")

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


def version_key(version):
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
        return (0, (), 0, 0, 0, text.lower(), text)
    numbers = tuple(int(part) for part in match.group(1).split("."))
    suffix = match.group(2) or ""
    tag = _TAG.fullmatch(suffix)
    if not suffix:
        rank = (_RELEASE, 0, 0)
    elif tag and tag.group(1) == "p":
        rank = (_PATCH, 0, int(tag.group(2) or 0))
    elif tag and tag.group(1) in _PRE_RELEASE:
        rank = (_PRE, _PRE_RELEASE[tag.group(1)], int(tag.group(2) or 0))
    else:
        rank = (_PRE, _UNKNOWN_RANK, 0)
    return (1, numbers) + rank + (suffix, text)


def sort_versions(versions, newest_first=True):
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


def version_matches(version, pattern):
    """Tell whether ``version`` matches a shell glob, case-insensitively.

    ``*``, ``?`` and ``[...]`` work as in the service's
    ``info/filter/version/1.9.*``; a pattern without them matches only that
    exact version (``2.4.6`` does not match ``2.4.6-p1``).
    """
    return fnmatchcase(version.lower(), pattern.lower())


def edition_of(type_):
    """Return ``"CE"`` or ``"EE"`` for a feed category, ``""`` for others.

    Examples
    --------
    >>> edition_of("ee-patch")
    'EE'
    """
    prefix = type_.lower()[:3] if isinstance(type_, str) else ""
    return {"ce-": "CE", "ee-": "EE"}.get(prefix, "")
