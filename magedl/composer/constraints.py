"""Composer version constraints: parsing and matching, ported from composer/semver.

Rule: Composer's answers are the specification (see :mod:`magedl.composer.semver`). The lower bound of
a range includes its pre-releases, as in Composer (``>=1.0`` is ``>= 1.0.0.0-dev``); dev branches
match only ``==``/``!=`` constraints that name them.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable

from magedl.composer.semver import (
    MODIFIER,
    STABILITIES,
    STABILITY_WORDS,
    check_length,
    compare,
    normalize,
    normalize_stability,
    php_lower,
    php_trim,
    quote,
    stability,
)
from magedl.errors import ConstraintError

_A = re.ASCII
_AI = re.ASCII | re.IGNORECASE
_VERSION = (
    r"v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.(\d+))?(?:" + MODIFIER + r"|\.([xX*][.-]?dev))"
    r"(?:\+[^\s]+)?"
)
# Composer splits alternatives with \s*\|\|?\s*, which backtracks quadratically over a long
# run of blanks; _split_or cuts at the pipes and trims the blanks beside them instead.
_PIPES = re.compile(r"\|\|?")
_BLANKS = " \t\n\r\f\v"
# PHP's (?<!^|as|[=>< ,]) needs a variable-width look-behind; three fixed ones agree.
_AND_SPLIT = re.compile(r"(?<!^)(?<!as)(?<![=>< ,]) *(?<!-)[, ](?!-) *(?!,|as|$)", _A)
_ALIAS = re.compile(r"^([^,\s]+) +as +([^,\s]+)$", _A)
_FLAG = re.compile(r"^([^,\s]*?)@(" + STABILITY_WORDS + r")$", _AI)
_REF = re.compile(r"^(dev-[^,\s@]+?|[^,\s@]+?\.x-dev)#.+$", _AI)
_ANY = re.compile(r"^(v)?[xX*](\.[xX*])*$", _AI)
_TILDE = re.compile(r"^~>?" + _VERSION + r"$", _AI)
_CARET = re.compile(r"^\^" + _VERSION + r"($)", _AI)
_WILDCARD = re.compile(r"^v?(\d+)(?:\.(\d+))?(?:\.(\d+))?(?:\.[xX*])+$", _A)
_HYPHEN = re.compile(r"^(?P<from>" + _VERSION + r") +- +(?P<to>" + _VERSION + r")($)", _AI)
_BASIC = re.compile(r"^(<>|!=|>=?|<=?|==?)?\s*(.*)", _A)
_BRANCH_LIKE = re.compile(r"^[0-9a-zA-Z./-]+$", _A)
# Deliberately case-sensitive on lower-cased text, as in Composer: "-rc1" is not
# seen as a modifier there, so ">=1.0-rc1" gets a "-dev" too.
_HAS_MODIFIER = re.compile(r"-" + MODIFIER + r"$", _A)
_EXPLICIT_FLAG = re.compile(r"^[^@]*?@(" + STABILITY_WORDS + r")$", _AI)
_ALIAS_TAIL = re.compile(r"^([^,\s@]+) as .+$", _A)
_PLAIN = re.compile(r"^[^,\s@]+$", _A)

_LONG_MAX = 2**63 - 1
_OPERATORS = {"=": "==", "==": "==", "<": "<", "<=": "<=", ">": ">", ">=": ">=",
              "<>": "!=", "!=": "!="}


class _Node:
    """A parsed constraint or part of one (Composer's ``ConstraintInterface``)."""

    __slots__ = ()

    def matches(self, other: _Node) -> bool:
        raise NotImplementedError


class _Single(_Node):
    """One ``operator version`` comparison (Composer's ``Constraint``)."""

    __slots__ = ("op", "version")

    def __init__(self, op: str, version: str) -> None:
        self.op = _OPERATORS[op]
        self.version = version

    def __str__(self) -> str:
        return f"{self.op} {self.version}"

    def matches(self, other: _Node) -> bool:
        if isinstance(other, _Single):
            return _match_specific(self, other)
        return other.matches(self)


class _Any(_Node):
    """``*``: matches every version, dev branches included."""

    __slots__ = ()

    def __str__(self) -> str:
        return "*"

    def matches(self, other: _Node) -> bool:
        return True


class _Multi(_Node):
    """Constraints joined by AND (``conjunctive``) or OR."""

    __slots__ = ("conjunctive", "items")

    def __init__(self, items: list[_Node], conjunctive: bool) -> None:
        self.items = items
        self.conjunctive = conjunctive

    def __str__(self) -> str:
        joiner = " " if self.conjunctive else " || "
        return "[" + joiner.join(str(item) for item in self.items) + "]"

    def matches(self, other: _Node) -> bool:
        # Composer asks other.matches(item), the other way round from a lone
        # constraint; kept, since matchSpecific is not symmetric for odd strings.
        if not self.conjunctive:
            return any(other.matches(item) for item in self.items)
        if isinstance(other, _Multi) and not other.conjunctive:
            return other.matches(self)
        return all(other.matches(item) for item in self.items)


def _is_branch(version: str) -> bool:
    return version.startswith("dev-")


def _compare_versions(a: str, b: str, op: str, compare_branches: bool = False) -> bool:
    a_branch, b_branch = _is_branch(a), _is_branch(b)
    if op == "!=" and (a_branch or b_branch):
        return a != b
    if a_branch and b_branch:
        return op == "==" and a == b
    # Unless asked to, dev branches never satisfy an ordering.
    if not compare_branches and (a_branch or b_branch):
        return False
    result = compare(a, b)
    return {"<": result < 0, "<=": result <= 0, ">": result > 0, ">=": result >= 0,
            "==": result == 0, "!=": result != 0}[op]


def _match_specific(this: _Single, provider: _Single) -> bool:
    """Whether two comparisons can hold at once (Composer's ``matchSpecific``)."""
    no_eq, provider_no_eq = this.op.replace("=", ""), provider.op.replace("=", "")
    is_eq, is_ne = this.op == "==", this.op == "!="
    provider_eq, provider_ne = provider.op == "==", provider.op == "!="
    if is_ne or provider_ne:
        if is_ne and not provider_ne and not provider_eq and _is_branch(provider.version):
            return False
        if provider_ne and not is_ne and not is_eq and _is_branch(this.version):
            return False
        if not is_eq and not provider_eq:
            return True
        return _compare_versions(provider.version, this.version, "!=")
    if not is_eq and no_eq == provider_no_eq:
        return not (_is_branch(this.version) or _is_branch(provider.version))
    first, second = (this, provider) if is_eq else (provider, this)
    op = provider.op if is_eq else this.op
    if not _compare_versions(first.version, second.version, op):
        return False
    # ">= 1.0" against "> 1.0": the shared end point is outside the open side.
    return not (
        provider.op == provider_no_eq and this.op != no_eq
        and compare(provider.version, this.version) == 0
    )


def _php_increment(digits: str) -> str:
    # PHP adds 1 to a numeric string: an int while it fits, else a float
    # printed with 14 significant digits ("1.0E+20", "INF").
    significant = digits.lstrip("0")
    if len(significant) <= 19 and int(significant or "0") < _LONG_MAX:
        return str(int(significant or "0") + 1)
    value = float(digits) + 1.0
    if value == float("inf"):
        return "INF"
    mantissa, exponent = f"{value:.14G}".split("E")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}E{exponent[0]}{int(exponent[1:])}"


def _bump(parts: list[str], position: int, increment: bool = False) -> str:
    """Pad parts after ``position`` with 0 and optionally add 1 at ``position``."""
    parts = list(parts)
    for i in range(4, 0, -1):
        if i > position:
            parts[i] = "0"
        elif i == position and increment:
            parts[i] = _php_increment(parts[i])
    return ".".join(parts[1:5])


def _groups(match: re.Match[str]) -> list[str]:
    # PHP reports a group that took no part as "", Python as None.
    return [match.group(0)] + [match.group(i) or "" for i in range(1, match.re.groups + 1)]


def _parse_one(constraint: str) -> list[_Node]:
    match = _ALIAS.match(constraint)
    if match:
        constraint = match.group(1)
    modifier = ""
    match = _FLAG.match(constraint)
    if match:
        constraint = match.group(1) or "*"
        if match.group(2) != "stable":
            modifier = match.group(2)
    match = _REF.match(constraint)
    if match:
        constraint = match.group(1)

    match = _ANY.match(constraint)
    if match:
        if match.group(1) or match.group(2):
            return [_Single(">=", "0.0.0.0-dev")]
        return [_Any()]

    match = _TILDE.match(constraint)
    if match:
        g = _groups(match)
        if constraint.startswith("~>"):
            raise ConstraintError("invalid operator '~>'; did you mean '~'?")
        position = next((i for i in (4, 3, 2) if g[i]), 1)
        if g[8]:
            position += 1
        suffix = "" if (g[5] or g[7] or g[8]) else "-dev"
        low = normalize((constraint + suffix)[1:])
        high = _bump(g, max(1, position - 1), True) + "-dev"
        return [_Single(">=", low), _Single("<", high)]

    match = _CARET.match(constraint)
    if match:
        g = _groups(match)
        if g[1] != "0" or not g[2]:
            position = 1
        elif g[2] != "0" or not g[3]:
            position = 2
        else:
            position = 3
        suffix = "" if (g[5] or g[7] or g[8]) else "-dev"
        low = normalize((constraint + suffix)[1:])
        return [_Single(">=", low), _Single("<", _bump(g, position, True) + "-dev")]

    match = _WILDCARD.match(constraint)
    if match:
        g = _groups(match) + [""]
        position = next((i for i in (3, 2) if g[i]), 1)
        low = _bump(g, position) + "-dev"
        high = _bump(g, position, True) + "-dev"
        if low == "0.0.0.0-dev":
            return [_Single("<", high)]
        return [_Single(">=", low), _Single("<", high)]

    match = _HYPHEN.match(constraint)
    if match:
        g = _groups(match)
        low_suffix = "" if (g[6] or g[8] or g[9]) else "-dev"
        lower = _Single(">=", normalize(match.group("from")) + low_suffix)
        # A partial upper version ("- 2" or "- 2.1") means "below the next one".
        if (g[12] and g[13]) or g[15] or g[17] or g[18]:
            upper = _Single("<=", normalize(match.group("to")))
        else:
            normalize(match.group("to"))
            high = _bump(["", g[11], g[12], g[13], g[14]], 2 if g[12] else 1, True)
            upper = _Single("<", high + "-dev")
        return [lower, upper]

    match = _BASIC.match(constraint)
    op, text = match.group(1) or "=", match.group(2)
    try:
        version = normalize(text)
    except ConstraintError:
        # Composer forgives "foo-dev" for "dev-foo" (never a number-only form).
        if not (text[-4:] == "-dev" and _BRANCH_LIKE.match(text)):
            raise
        version = normalize("dev-" + text[:-4])
    if op not in ("==", "=") and modifier and stability(version) == "stable":
        version += "-" + modifier
    elif (op in ("<", ">=") and not _HAS_MODIFIER.search(php_lower(text))
          and not text.startswith("dev-")):
        version += "-dev"
    return [_Single(op, version)]


def _join_or(groups: list[_Node]) -> _Node:
    """Composer's ``MultiConstraint::create(..., false)``, adjacent ranges merged."""
    if len(groups) == 1:
        return groups[0]
    merged: list[_Node] = []
    left = groups[0]
    for right in groups[1:]:
        if (
            isinstance(left, _Multi) and left.conjunctive and len(left.items) == 2
            and isinstance(right, _Multi) and right.conjunctive and len(right.items) == 2
            and str(left.items[0]).startswith(">=") and str(left.items[1]).startswith("<")
            and str(right.items[0]).startswith(">=") and str(right.items[1]).startswith("<")
            and str(left.items[1])[2:] == str(right.items[0])[3:]
        ):
            left = _Multi([left.items[0], right.items[1]], True)
        else:
            merged.append(left)
            left = right
    merged.append(left)
    return merged[0] if len(merged) == 1 else _Multi(merged, False)


def _stability_flags(parts: list[str]) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """Explicit ``@flags`` and the stabilities of unstable versions named outright."""
    explicit = []
    inferred = []
    for part in parts:
        match = _EXPLICIT_FLAG.match(part)
        if match:
            explicit.append(normalize_stability(match.group(1)))
        plain = _ALIAS_TAIL.sub(r"\1", part)
        if _PLAIN.match(plain) and stability(plain) != "stable":
            inferred.append(stability(plain))
    return tuple(explicit), tuple(inferred)


class VersionConstraint:
    """A parsed Composer constraint.

    Attributes
    ----------
    text : str
        The constraint as given.
    stability_flags : tuple of str
        Explicit ``@flag`` suffixes, in Composer's spelling (``'RC'``, ``'dev'``...).
    """

    __slots__ = ("_inferred", "_root", "stability_flags", "text")

    def __init__(self, text: str, root: _Node, stability_flags: tuple[str, ...],
                 inferred: tuple[str, ...]) -> None:
        self.text = text
        self.stability_flags = stability_flags
        self._root = root
        self._inferred = inferred

    def __str__(self) -> str:
        """Composer's own rendering, e.g. ``[>= 1.2.0.0-dev < 2.0.0.0-dev]``."""
        return str(self._root)

    def __repr__(self) -> str:
        return f"VersionConstraint({self.text!r})"

    def matches(self, normalized_version: str) -> bool:
        """Whether a normalized version (see :func:`normalize`) satisfies the constraint."""
        return self._root.matches(_Single("==", normalized_version))

    def stability_flag(self, minimum_stability: str = "stable") -> str | None:
        """The stability Composer allows for this requirement's package, if it overrides.

        Mirrors ``RootPackageLoader::extractStabilityFlags`` for one requirement:
        the least stable explicit flag (``^2.4@beta``, ``@stable``) wins; without
        one, an unstable version named outright (``2.4.8-beta1``) relaxes the
        package when it is less stable than ``minimum_stability``. Pass the
        result as ``flags`` to :func:`magedl.composer.semver.is_stable_enough`.

        Returns
        -------
        str or None
            None when the project's minimum stability applies unchanged.
        """
        if self.stability_flags:
            return max(self.stability_flags, key=STABILITIES.__getitem__)
        minimum = STABILITIES[normalize_stability(minimum_stability)]
        best: str | None = None
        for name in self._inferred:
            rank = STABILITIES[name]
            if (best is not None and STABILITIES[best] > rank) or minimum > rank:
                continue
            best = name
        return best


@functools.lru_cache(maxsize=4096)
def parse_constraint(text: str) -> VersionConstraint:
    """Parse a Composer constraint such as ``^2.4``, ``~2.4.7``, ``2.4.7-p1 || 2.4.8``.

    Supports exact versions, ``=``, ``==``, ``!=``, ``<>``, ``<``, ``<=``, ``>``,
    ``>=``, ``^``, ``~``, ``*`` and ``1.2.*`` wildcards, hyphen ranges
    (``1.0 - 2.0``), AND by space or comma, OR by ``|`` or ``||``, stability
    flags (``@dev``), ``v`` prefixes, ``dev-`` branches, ``#ref`` suffixes and
    ``as`` aliases, exactly as Composer reads them.

    Raises
    ------
    ConstraintError
        Composer would reject the constraint (the message names it), or it
        is longer than :data:`~magedl.composer.semver.MAX_LENGTH` (1 KiB).
    """
    check_length(text, "version constraint")
    parts: list[str] = []
    groups: list[_Node] = []
    for alternative in _split_or(php_trim(text)):
        nodes: list[_Node] = []
        for part in _AND_SPLIT.split(alternative):
            parts.append(part)
            try:
                nodes.extend(_parse_one(part))
            except ConstraintError as error:
                where = "" if part == php_trim(text) else f" at {quote(part)}"
                raise ConstraintError(
                    f"invalid version constraint {quote(text)}{where}: {error}"
                ) from None
        groups.append(nodes[0] if len(nodes) == 1 else _Multi(nodes, True))
    explicit, inferred = _stability_flags(parts)
    return VersionConstraint(text, _join_or(groups), explicit, inferred)


def _split_or(text: str) -> list[str]:
    """Composer's alternatives (``re.split(r"\\s*\\|\\|?\\s*", text)``) in linear time."""
    pieces = _PIPES.split(text)
    last = len(pieces) - 1
    return [piece.lstrip(_BLANKS if i else "").rstrip(_BLANKS if i < last else "") for i, piece in enumerate(pieces)]


def satisfies(version: str, constraint: str | VersionConstraint) -> bool:
    """Whether a pretty version satisfies a constraint (``Semver::satisfies``).

    Raises
    ------
    ConstraintError
        The version or the constraint cannot be parsed.
    """
    if not isinstance(constraint, VersionConstraint):
        constraint = parse_constraint(constraint)
    return constraint.matches(normalize(version))


def satisfied_by(versions: Iterable[str], constraint: str | VersionConstraint) -> list[str]:
    """The versions that satisfy ``constraint``, in input order (``Semver::satisfiedBy``)."""
    if not isinstance(constraint, VersionConstraint):
        constraint = parse_constraint(constraint)
    return [version for version in versions if constraint.matches(normalize(version))]
