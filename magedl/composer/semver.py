"""Composer's version rules: normalization, stability and ordering, ported from composer/semver and PHP.

Rule: Composer's answers are the specification, quirks included; whatever PHP accepts is accepted here
and whatever it rejects raises :class:`~magedl.errors.ConstraintError`. Why the patterns are written
as they are: see docs/design.md, "Notes: Composer repositories".
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from magedl.errors import ConstraintError

# Composer's stability ranks (BasePackage::$stabilities): higher is less stable.
STABILITIES = {"stable": 0, "RC": 5, "beta": 10, "alpha": 15, "dev": 20}

_A = re.ASCII
_AI = re.ASCII | re.IGNORECASE
_PHP_TRIM = " \t\n\r\0\x0b"
_ASCII_LOWER = str.maketrans("ABCDEFGHIJKLMNOPQRSTUVWXYZ", "abcdefghijklmnopqrstuvwxyz")
# The largest C long: PHP clamps numbers there (strtol) or turns them into floats.
_LONG_MAX = 2**63 - 1
MAX_LENGTH = 1024  # real versions and constraints are short; Composer's patterns are super-linear on long ones
_LONG_DIGITS = 19

# Pre-release part of a version (groups: stability word, its number, a dev suffix).
MODIFIER = (
    r"[._-]?(?:(stable|beta|b|RC|alpha|a|patch|pl|p)((?:[.-]?\d+(?!\d))*)?)?([.-]?dev)?"
)
STABILITY_WORDS = "stable|RC|beta|alpha|dev"

_ALIAS = re.compile(r"^([^,\s]+) +as +([^,\s]+)$", _A)
_FLAG_SUFFIX = re.compile(r"@(?:" + STABILITY_WORDS + r")$", _AI)
_BUILD = re.compile(r"^([^,\s+]+)\+[^\s]+$", _A)
_CLASSICAL = re.compile(r"^v?(\d{1,5})(\.\d+)?(\.\d+)?(\.\d+)?" + MODIFIER + r"$", _AI)
_DATE = re.compile(
    r"^v?(\d{4}(?:[.:-]?\d{2}){1,6}(?:[.:-]?\d{1,3})?)" + MODIFIER + r"$", _AI
)
_NON_DIGIT = re.compile(r"\D", _A)
_BRANCH = re.compile(
    r"^v?(\d+)(\.(?:\d+|[xX*]))?(\.(?:\d+|[xX*]))?(\.(?:\d+|[xX*]))?$", _AI
)
_REF = re.compile(r"#.+$", _A)
_STABILITY_TAIL = re.compile(MODIFIER + r"(?:\+.*)?$", _AI)
_EXPANDED = {"a": "alpha", "b": "beta", "p": "patch", "pl": "patch", "rc": "RC"}
_DEFAULT_BRANCHES = ("dev-master", "dev-default", "dev-trunk")


def php_trim(text: str) -> str:
    """Strip what PHP's ``trim()`` strips (not Unicode spaces, but NUL)."""
    return text.strip(_PHP_TRIM)


def php_lower(text: str) -> str:
    """Lower-case ASCII letters only, as PHP 8's ``strtolower()`` does."""
    return text.translate(_ASCII_LOWER)


def quote(text: str, limit: int = 120) -> str:
    """Quote user input for a one-line error message (escapes, shortened)."""
    if len(text) > limit:
        return repr(text[:limit]) + "..."
    return repr(text)


def normalize(version: str, full_version: str | None = None) -> str:
    """Normalize a version string the way Composer does.

    Parameters
    ----------
    version : str
        A version as written in ``composer.json`` or repository metadata.
    full_version : str, optional
        The whole constraint ``version`` came from, to explain alias errors.

    Returns
    -------
    str
        ``1.2`` -> ``1.2.0.0``, ``v1.0.0`` -> ``1.0.0.0``, ``2.4.7-p1`` ->
        ``2.4.7.0-patch1``, ``1.0.x-dev`` -> ``1.0.9999999.9999999-dev``,
        ``dev-main`` unchanged.

    Raises
    ------
    ConstraintError
        Composer rejects the string, or it is longer than :data:`MAX_LENGTH`.
    """
    check_length(version, "version")
    return _normalize(version, full_version)


def check_length(text, what: str) -> None:
    """Refuse a *what* (``version``, ``version constraint``) longer than :data:`MAX_LENGTH` before any pattern runs."""
    if isinstance(text, str) and len(text) > MAX_LENGTH:
        raise ConstraintError(f"invalid {what} {quote(text, 40)}: {len(text):,} characters, over {MAX_LENGTH:,}")


@functools.lru_cache(maxsize=8192)
def _normalize(version: str, full_version: str | None) -> str:
    version = php_trim(version)
    original = version
    if full_version is None:
        full_version = version
    match = _ALIAS.match(version)
    if match:
        version = match.group(1)
    match = _FLAG_SUFFIX.search(version)
    if match:
        version = version[: len(version) - len(match.group(0))]
    # Composer 1 accepted these bare branch names as versions.
    if version in ("master", "trunk", "default"):
        version = "dev-" + version
    if php_lower(version[:4]) == "dev-":
        return "dev-" + version[4:]
    match = _BUILD.match(version)
    if match:
        version = match.group(1)

    index = 0
    match = _CLASSICAL.match(version)
    if match:
        version = match.group(1) + "".join(match.group(i) or ".0" for i in (2, 3, 4))
        index = 5
    else:
        match = _DATE.match(version)
        if match:
            version = _NON_DIGIT.sub(".", match.group(1))
            index = 2
    if match:
        word = match.group(index)
        if word:
            if word == "stable":
                return version
            number = (match.group(index + 1) or "").lstrip(".-")
            version += "-" + _EXPANDED.get(php_lower(word), php_lower(word)) + number
        if match.group(index + 2):
            version += "-dev"
        return version

    prefix = _dev_suffix_prefix(version)
    if prefix is not None:
        branch = normalize_branch(prefix)
        # Only numeric branches may end in -dev; others need a dev- prefix.
        if "dev-" not in branch:
            return branch

    extra = ""
    flags = r"(?:@(?:" + STABILITY_WORDS + r"))?"
    if re.search(r" +as +" + re.escape(version) + flags + r"$", full_version, _A):
        extra = f" in {quote(full_version)}, the alias must be an exact version"
    elif re.match(r"^" + re.escape(version) + flags + r" +as +", full_version, _A):
        extra = (
            f" in {quote(full_version)}, the alias source must be an exact version;"
            " a branch name needs a dev- prefix"
        )
    raise ConstraintError(f"invalid version {quote(original)}{extra}")


def _dev_suffix_prefix(version: str) -> str | None:
    """What ``(.*?)[.-]?dev$`` would capture, found in linear rather than quadratic time."""
    end = len(version) - 1 if version.endswith("\n") else len(version)
    if end < 3 or php_lower(version[end - 3:end]) != "dev":
        return None
    # The leftmost match starts after the last newline, since "." stops at one.
    start = version.rfind("\n", 0, end - 3) + 1
    if end - 4 >= start and version[end - 4] in ".-":
        return version[start:end - 4]
    return version[start:end - 3]


def normalize_branch(name: str) -> str:
    """Normalize a branch name as Composer does.

    ``1.x`` and ``1.*`` -> ``1.9999999.9999999.9999999-dev``; ``v2.3`` ->
    ``2.3.9999999.9999999-dev``; anything else ``name`` -> ``dev-name``.
    """
    name = php_trim(name)
    match = _BRANCH.match(name)
    if not match:
        return "dev-" + name
    parts = [match.group(1)] + [match.group(i) or ".x" for i in (2, 3, 4)]
    version = "".join(parts).replace("*", "x").replace("X", "x")
    return version.replace("x", "9999999") + "-dev"


def normalize_stability(name: str) -> str:
    """Return Composer's spelling of a stability name (``rc`` -> ``RC``, ``Beta`` -> ``beta``).

    Raises
    ------
    ConstraintError
        ``name`` is not one of stable, RC, beta, alpha, dev.
    """
    lowered = php_lower(name)
    result = "RC" if lowered == "rc" else lowered
    if result not in STABILITIES:
        raise ConstraintError(
            f"invalid stability {quote(name)}: expected one of {', '.join(STABILITIES)}"
        )
    return result


def stability(version: str) -> str:
    """Return the stability of a version, as ``VersionParser::parseStability`` does.

    Parameters
    ----------
    version : str
        A pretty or normalized version; never raises, whatever the text.

    Returns
    -------
    str
        One of ``'stable'``, ``'RC'``, ``'beta'``, ``'alpha'``, ``'dev'``.
        Magento's ``-pN`` patch releases are stable.
    """
    version = _REF.sub("", version)
    if version.startswith("dev-") or version[-4:] == "-dev":
        return "dev"
    # Always matches: every part of the pattern is optional before the end.
    match = _STABILITY_TAIL.search(php_lower(version))
    if match.group(3):
        return "dev"
    word = match.group(1)
    if word in ("beta", "b"):
        return "beta"
    if word in ("alpha", "a"):
        return "alpha"
    if word == "rc":
        return "RC"
    return "stable"


def is_stable_enough(
    version: str,
    minimum_stability: str = "stable",
    flags: str | Iterable[str] | None = None,
) -> bool:
    """Tell whether Composer would consider ``version`` at all.

    Parameters
    ----------
    version : str
        A pretty or normalized version.
    minimum_stability : str
        The project's ``minimum-stability``.
    flags : str or iterable of str, optional
        The package's stability flag(s), e.g. from
        ``VersionConstraint.stability_flag()``. When given they replace
        ``minimum_stability`` for this package, as in Composer: ``foo@stable``
        keeps foo stable even under ``minimum-stability: dev``. Several flags
        count as the least stable of them.

    Raises
    ------
    ConstraintError
        A stability name is unknown.
    """
    if isinstance(flags, str):
        flags = [flags]
    ranks = [STABILITIES[normalize_stability(flag)] for flag in flags or ()]
    threshold = max(ranks) if ranks else STABILITIES[normalize_stability(minimum_stability)]
    return STABILITIES[stability(version)] <= threshold


# -- PHP's version_compare ---------------------------------------------------------------------

def _is_digit(byte: int) -> bool:
    return 48 <= byte <= 57


def _is_alnum(byte: int) -> bool:
    return _is_digit(byte) or 65 <= byte <= 90 or 97 <= byte <= 122


def _canonicalize(version: bytes) -> bytes:
    # Separators become dots, and a dot goes between a digit and a non-digit.
    out = bytearray(version[:1])
    previous = version[0]
    for byte in version[1:]:
        last = out[-1]
        if byte in b"-_+":
            if last != 46:
                out.append(46)
        elif byte != 46 and previous != 46 and _is_digit(previous) != _is_digit(byte):
            if last != 46:
                out.append(46)
            out.append(byte)
        elif not _is_alnum(byte):
            if last != 46:
                out.append(46)
        else:
            out.append(byte)
        previous = byte
    return bytes(out)


_SPECIAL_FORMS = (
    (b"dev", 0), (b"alpha", 1), (b"a", 1), (b"beta", 2), (b"b", 2), (b"RC", 3), (b"rc", 3),
    (b"#", 4), (b"pl", 5), (b"p", 5),
)


def _form_order(form: bytes) -> int:
    # PHP compares prefixes, so "patch" ranks as "p"; unknown words rank lowest.
    for name, order in _SPECIAL_FORMS:
        if form.startswith(name):
            return order
    return -1


def _strtol(digits: bytes) -> int:
    match = re.match(rb"0*(\d*)", digits)
    significant = match.group(1) if match else b""
    if len(significant) > _LONG_DIGITS:
        return _LONG_MAX
    return min(int(significant or b"0"), _LONG_MAX)


def _sign(value: int) -> int:
    return (value > 0) - (value < 0)


def _php_compare(ver1: bytes, ver2: bytes) -> int:
    if not ver1 or not ver2:
        return _sign(len(ver1) - len(ver2)) if (ver1 or ver2) else 0
    v1 = ver1 if ver1[:1] == b"#" else _canonicalize(ver1)
    v2 = ver2 if ver2[:1] == b"#" else _canonicalize(ver2)
    p1 = p2 = 0
    n1: int | None = 0
    n2: int | None = 0
    result = 0
    # Mirrors the C loop: walk both dotted strings while each has a segment and a
    # separator left; the remainders are judged afterwards.
    while p1 < len(v1) and p2 < len(v2) and n1 is not None and n2 is not None:
        found1, found2 = v1.find(b".", p1), v2.find(b".", p2)
        n1 = found1 if found1 >= 0 else None
        n2 = found2 if found2 >= 0 else None
        seg1 = v1[p1:n1]
        seg2 = v2[p2:n2]
        digit1 = bool(seg1) and _is_digit(seg1[0])
        digit2 = bool(seg2) and _is_digit(seg2[0])
        if digit1 and digit2:
            result = _sign(_strtol(seg1) - _strtol(seg2))
        elif not digit1 and not digit2:
            result = _sign(_form_order(seg1) - _form_order(seg2))
        elif digit1:
            result = _sign(_form_order(b"#N#") - _form_order(seg2))
        else:
            result = _sign(_form_order(seg1) - _form_order(b"#N#"))
        if result:
            return result
        if n1 is not None:
            p1 = n1 + 1
        if n2 is not None:
            p2 = n2 + 1
    if n1 is not None:
        if p1 < len(v1) and _is_digit(v1[p1]):
            return 1
        return _php_compare(v1[p1:], b"#N#")
    if n2 is not None:
        if p2 < len(v2) and _is_digit(v2[p2]):
            return -1
        return _php_compare(b"#N#", v2[p2:])
    return 0


def _c_string(text: str) -> bytes:
    # PHP hands version_compare a C string: bytes, cut at the first NUL.
    return text.encode("utf-8", "surrogatepass").split(b"\0", 1)[0]


def compare(a: str, b: str) -> int:
    """Compare two versions exactly as PHP's ``version_compare($a, $b)``.

    Meant for normalized versions, where it orders dev < alpha < beta < RC <
    stable < patch (``2.4.7.0-dev`` < ``2.4.7.0-RC1`` < ``2.4.7.0`` <
    ``2.4.7.0-patch1``), numbers numerically. Any text is accepted.

    Returns
    -------
    int
        -1, 0 or 1.
    """
    return _php_compare(_c_string(a), _c_string(b))


def version_compare(a: str, b: str, operator: str) -> bool:
    """Evaluate ``a OPERATOR b`` as PHP's three-argument ``version_compare`` does.

    ``operator`` is one of ``<``, ``<=``, ``>``, ``>=``, ``==``, ``=``, ``!=``, ``<>``.
    """
    result = compare(a, b)
    checks = {
        "<": result < 0, "<=": result <= 0, ">": result > 0, ">=": result >= 0,
        "==": result == 0, "=": result == 0, "!=": result != 0, "<>": result != 0,
    }
    if operator not in checks:
        raise ValueError(f"unknown operator {operator!r}")
    return checks[operator]


_CompareKey = functools.cmp_to_key(compare)


def version_key(version: str) -> object:
    """Return a sort key for a normalized version, ordering as :func:`compare` does."""
    return _CompareKey(version)


def _sort_cmp(left: str, right: str) -> int:
    # Composer's Comparator never orders two dev branches; treating them as
    # equal keeps them in input order (Python's sort is stable) below all
    # numbered versions, instead of an order that depends on PHP's sort.
    if left.startswith("dev-") and right.startswith("dev-"):
        return 0
    return compare(left, right)


def sort_versions(versions: Iterable[str], newest_first: bool = True) -> list[str]:
    """Sort pretty versions as ``Semver::rsort`` (``newest_first``) or ``Semver::sort`` do.

    Versions are normalized for the comparison and returned as given;
    ``dev-master``, ``dev-trunk`` and ``dev-default`` rank as ``9999999-dev``.
    Versions that compare equal keep their input order.

    Raises
    ------
    ConstraintError
        A version cannot be normalized.
    """
    keyed = []
    for version in versions:
        normalized = normalize(version)
        if normalized in _DEFAULT_BRANCHES:
            normalized = "9999999-dev"
        keyed.append((normalized, version))
    key = functools.cmp_to_key(lambda x, y: _sort_cmp(x[0], y[0]))
    return [version for _, version in sorted(keyed, key=key, reverse=newest_first)]
