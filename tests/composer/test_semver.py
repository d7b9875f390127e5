"""Composer's version and constraint rules (magedl.composer.semver and .constraints).

Every expected value in these tables is what composer/semver answers; the corpus
in test_semver_php.py checks many more against the real PHP code.
"""

import itertools
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from magedl.composer.constraints import VersionConstraint, parse_constraint, satisfied_by, satisfies
from magedl.composer.semver import (
    compare,
    is_stable_enough,
    normalize,
    normalize_branch,
    normalize_stability,
    sort_versions,
    stability,
    version_compare,
    version_key,
)
from magedl.errors import ConstraintError, UsageError

NORMALIZED = [
    ("1.2", "1.2.0.0"),
    ("1.0.0", "1.0.0.0"),
    ("v1.0.0", "1.0.0.0"),
    ("V2.4", "2.4.0.0"),
    (" 2.4.7 ", "2.4.7.0"),
    ("2.4.7-p1", "2.4.7.0-patch1"),
    ("2.4.7-p10", "2.4.7.0-patch10"),
    ("103.0.7-p3", "103.0.7.0-patch3"),
    ("103.0.7.1", "103.0.7.1"),
    ("2.4.7.0-patch1", "2.4.7.0-patch1"),
    ("1.0.0-beta2", "1.0.0.0-beta2"),
    ("1.0.0-beta.2", "1.0.0.0-beta2"),
    ("1.0.0b2", "1.0.0.0-beta2"),
    ("1.0.0-alpha", "1.0.0.0-alpha"),
    ("1.0.0-a1", "1.0.0.0-alpha1"),
    ("1.0.0-RC1", "1.0.0.0-RC1"),
    ("1.0.0-rc1", "1.0.0.0-RC1"),
    ("1.0.0.RC.1", "1.0.0.0-RC1"),
    ("1.0.0-pl3", "1.0.0.0-patch3"),
    ("1.0.0-stable", "1.0.0.0"),
    ("1.0.0-beta2-dev", "1.0.0.0-beta2-dev"),
    ("1.0.0-dev", "1.0.0.0-dev"),
    ("1.0.0+build.5", "1.0.0.0"),
    ("2.4.7@dev", "2.4.7.0"),
    ("dev-main", "dev-main"),
    ("DEV-Feature/x", "dev-Feature/x"),
    ("master", "dev-master"),
    ("trunk", "dev-trunk"),
    ("1.x-dev", "1.9999999.9999999.9999999-dev"),
    ("1.0.x-dev", "1.0.9999999.9999999-dev"),
    ("2.4.*-dev", "2.4.9999999.9999999-dev"),
    ("v2.4.X-dev", "2.4.9999999.9999999-dev"),
    ("2.4-dev", "2.4.0.0-dev"),
    ("1.0.x-dev as 1.0.0", "1.0.9999999.9999999-dev"),
    ("20240101", "20240101"),
    ("2024.01.01", "2024.01.01.0"),
    ("2024-01-01", "2024.01.01"),
    ("2024-01-01-10-30", "2024.01.01.10.30"),
    ("123456", "123456"),
    # Composer keeps an upper-case "STABLE" as a suffix; a second pass drops it.
    ("1.0-STABLE", "1.0.0.0-stable"),
]

BAD_VERSIONS = [
    "",
    "   ",
    "foo",
    "1.0.0.0.0",
    "1.0-foo",
    "x.y",
    "1.0.x",
    "1.0.*",
    "^1.0",
    ">=1.0",
    "1.0 || 2.0",
    "1.0@foo",
    "foo-dev",
    "foo as 1.0",
    "1.0.0 as",
    "2.4.7-p1 2.4.8",
    "\n1.0\n2.0",
]

STABILITY = [
    ("2.4.7", "stable"),
    ("2.4.7-p1", "stable"),
    ("2.4.7.0-patch1", "stable"),
    ("1.0.0-stable", "stable"),
    ("1.0.0-RC1", "RC"),
    ("1.0.0.0-RC1", "RC"),
    ("1.0.0-rc", "RC"),
    ("1.0.0-beta2", "beta"),
    ("1.0.0b2", "beta"),
    ("1.0.0-alpha", "alpha"),
    ("1.0.0-a3", "alpha"),
    ("1.0.0-dev", "dev"),
    ("1.0.0-beta2-dev", "dev"),
    ("dev-main", "dev"),
    ("1.x-dev", "dev"),
    ("dev-main#abc123", "dev"),
    ("1.0.0-beta1+build", "beta"),
    ("master", "stable"),
    ("whatever text", "stable"),
    ("", "stable"),
]

# (constraint, Composer's own rendering of the parsed constraint)
PARSED = [
    ("2.4.7", "== 2.4.7.0"),
    ("=2.4.7", "== 2.4.7.0"),
    ("==2.4.7-p1", "== 2.4.7.0-patch1"),
    ("v2.4.7", "== 2.4.7.0"),
    ("!=2.4.7", "!= 2.4.7.0"),
    ("<>2.4.7", "!= 2.4.7.0"),
    (">=1.0", ">= 1.0.0.0-dev"),
    (">= 1.0", ">= 1.0.0.0-dev"),
    (">1.0", "> 1.0.0.0"),
    ("<2.0", "< 2.0.0.0-dev"),
    ("<=2.0", "<= 2.0.0.0"),
    (">=1.0-beta1", ">= 1.0.0.0-beta1"),
    ("<2.4.7-p1", "< 2.4.7.0-patch1"),
    # Composer does not see "-rc1" as a modifier there (a case-sensitive test).
    (">=1.0-rc1", ">= 1.0.0.0-RC1-dev"),
    ("^1.2", "[>= 1.2.0.0-dev < 2.0.0.0-dev]"),
    ("^2.4", "[>= 2.4.0.0-dev < 3.0.0.0-dev]"),
    ("^2.4.7", "[>= 2.4.7.0-dev < 3.0.0.0-dev]"),
    ("^0.3", "[>= 0.3.0.0-dev < 0.4.0.0-dev]"),
    ("^0.0.3", "[>= 0.0.3.0-dev < 0.0.4.0-dev]"),
    ("^0", "[>= 0.0.0.0-dev < 1.0.0.0-dev]"),
    ("^1.2.3-beta2", "[>= 1.2.3.0-beta2 < 2.0.0.0-dev]"),
    ("~2.4.7", "[>= 2.4.7.0-dev < 2.5.0.0-dev]"),
    ("~2.4", "[>= 2.4.0.0-dev < 3.0.0.0-dev]"),
    ("~2", "[>= 2.0.0.0-dev < 3.0.0.0-dev]"),
    ("~1.2.3.4", "[>= 1.2.3.4-dev < 1.2.4.0-dev]"),
    ("~2.4.x-dev", "[>= 2.4.9999999.9999999-dev < 2.5.0.0-dev]"),
    ("2.4.*", "[>= 2.4.0.0-dev < 2.5.0.0-dev]"),
    ("2.*", "[>= 2.0.0.0-dev < 3.0.0.0-dev]"),
    ("2.4.x", "[>= 2.4.0.0-dev < 2.5.0.0-dev]"),
    ("0.*", "< 1.0.0.0-dev"),
    ("*", "*"),
    ("x", "*"),
    ("v*", ">= 0.0.0.0-dev"),
    ("*.*", ">= 0.0.0.0-dev"),
    ("1.0 - 2.0", "[>= 1.0.0.0-dev < 2.1.0.0-dev]"),
    ("1.0.0 - 2.0.0", "[>= 1.0.0.0-dev <= 2.0.0.0]"),
    ("1.0.0 - 2", "[>= 1.0.0.0-dev < 3.0.0.0-dev]"),
    ("2.4.0 - 2.4.7-p1", "[>= 2.4.0.0-dev <= 2.4.7.0-patch1]"),
    (">=7.4 <8.4", "[>= 7.4.0.0-dev < 8.4.0.0-dev]"),
    (">=7.4,<8.4", "[>= 7.4.0.0-dev < 8.4.0.0-dev]"),
    (">=7.4, <8.4", "[>= 7.4.0.0-dev < 8.4.0.0-dev]"),
    ("2.4.7-p1 || 2.4.8", "[== 2.4.7.0-patch1 || == 2.4.8.0]"),
    ("2.4.7-p1 | 2.4.8", "[== 2.4.7.0-patch1 || == 2.4.8.0]"),
    ("^7.4||~8.1.0", "[[>= 7.4.0.0-dev < 8.0.0.0-dev] || [>= 8.1.0.0-dev < 8.2.0.0-dev]]"),
    # Adjacent OR ranges merge into one, as Composer's MultiConstraint::create does.
    ("^1.0 || ^2.0", "[>= 1.0.0.0-dev < 3.0.0.0-dev]"),
    ("@dev", "*"),
    ("^2.4@dev", "[>= 2.4.0.0-dev < 3.0.0.0-dev]"),
    (">=2.4.7@beta", ">= 2.4.7.0-beta"),
    ("2.4.7@beta", "== 2.4.7.0"),
    ("dev-main", "== dev-main"),
    ("dev-main#abc123", "== dev-main"),
    ("2.4.x-dev#abc123", "== 2.4.9999999.9999999-dev"),
    ("main-dev", "== dev-main"),
    ("2.4.7 as 2.4.6", "== 2.4.7.0"),
    ("dev-main as 2.4.x-dev", "== dev-main"),
]

BAD_CONSTRAINTS = [
    "",
    "foo",
    "~>1.2",
    ">=",
    ">=foo",
    "^",
    "^1.x",
    "~",
    "1.0 -",
    "1.0 - foo",
    "1.0 ||",
    "|| 1.0",
    "1.0 || foo",
    "^1.0 foo",
    ">=1.0 <foo",
    "1.0.0.0.0",
    "@foo",
    "1.0@foo",
    "2.4.7-p1 +",
]

# (version, constraint, Composer's answer)
SATISFIES = [
    ("2.4.7", "2.4.7", True),
    ("2.4.7-p1", "2.4.7", False),
    ("2.4.7-p1", "2.4.7-p1", True),
    ("2.4.7.0-patch1", "2.4.7-p1", True),
    ("2.4.7-p1", "~2.4.7", True),
    ("2.4.8-p2", "~2.4.7", True),
    ("2.5.0", "~2.4.7", False),
    ("2.4.6-p3", "~2.4.7", False),
    ("2.4.7-beta1", "~2.4.7", True),
    ("2.5.0", "^2.4", True),
    ("3.0.0", "^2.4", False),
    ("3.0.0-alpha1", "^2.4", False),
    ("2.4.0-beta1", "^2.4", True),
    ("2.4.7-p1", "2.4.7-p1 || 2.4.8", True),
    ("2.4.8", "2.4.7-p1 || 2.4.8", True),
    ("2.4.7", "2.4.7-p1 || 2.4.8", False),
    ("7.4.0", ">=7.4 <8.4", True),
    ("8.3.99", ">=7.4 <8.4", True),
    ("8.4.0", ">=7.4 <8.4", False),
    ("8.4.0-RC1", ">=7.4 <8.4", False),
    ("7.3.33", ">=7.4 <8.4", False),
    ("103.0.7-p3", "^103.0", True),
    ("103.0.7-p3", "103.0.7-p3", True),
    ("103.0.7-p3", ">103.0.7", True),
    ("103.0.7", "<103.0.7-p1", True),
    ("2.4.7-p1", ">2.4.7", True),
    ("1.0.0", ">=1.0", True),
    ("1.0.0-beta1", ">=1.0", True),
    ("1.0.0-dev", ">=1.0", True),
    ("1.0.0-RC1", ">1.0", False),
    ("2.0.0-beta1", "<2.0", False),
    ("1.99.0", "<2.0", True),
    ("2.0.0", "<=2.0", True),
    ("1.5.0", "1.0 - 2.0", True),
    ("2.0.5", "1.0 - 2.0", True),
    ("2.1.0", "1.0 - 2.0", False),
    ("2.0.1", "1.0.0 - 2.0.0", False),
    ("2.4.3", "2.4.*", True),
    ("2.5.0", "2.4.*", False),
    ("9.9.9", "*", True),
    ("dev-main", "*", True),
    ("dev-main", "dev-main", True),
    ("dev-main", "dev-other", False),
    ("dev-main", ">=1.0", False),
    ("dev-main", "!=1.0", True),
    ("dev-main", "<1.0", False),
    ("dev-main", "!=dev-other", True),
    ("2.4.x-dev", "^2.4", True),
    ("2.4.x-dev", "2.4.x-dev", True),
    ("2.4.9999999.9999999-dev", "~2.4.7", True),
    ("v2.4.7", "2.4.7", True),
    ("2.4.7", "!=2.4.7", False),
    ("2.4.8", "<>2.4.7", True),
    ("0.3.5", "^0.3", True),
    ("0.4.0", "^0.3", False),
    ("0.0.4", "^0.0.3", False),
]


@pytest.mark.parametrize("version, expected", NORMALIZED)
def test_normalize(version, expected):
    assert normalize(version) == expected


@pytest.mark.parametrize("version", BAD_VERSIONS)
def test_bad_version_names_the_input(version):
    with pytest.raises(ConstraintError) as caught:
        normalize(version)
    message = str(caught.value)
    assert repr(version.strip(" \n")) in message or repr(version) in message
    assert "\n" not in message
    assert isinstance(caught.value, UsageError)


def test_alias_errors_explain_which_side_is_wrong():
    with pytest.raises(ConstraintError, match="alias source must be an exact version"):
        normalize("foo", "foo as 1.0")
    with pytest.raises(ConstraintError, match="alias must be an exact version"):
        normalize("foo", "1.0 as foo")


def test_normalize_keeps_composer_quirks_that_are_not_idempotent():
    # Composer's own answers: a second pass differs for these, and ours must too.
    assert normalize(normalize("2024-01-01")) == "2024.01.01.0"
    assert normalize(normalize("1.0-STABLE")) == "1.0.0.0"
    assert normalize("dev-x@dev@dev") == "dev-x@dev"


@pytest.mark.parametrize(
    "name, expected",
    [("1.x", "1.9999999.9999999.9999999-dev"), ("v2.3", "2.3.9999999.9999999-dev"),
     ("2.*.X", "2.9999999.9999999.9999999-dev"), ("main", "dev-main"), (" 2.4 ", "2.4.9999999.9999999-dev")],
)
def test_normalize_branch(name, expected):
    assert normalize_branch(name) == expected


@pytest.mark.parametrize("version, expected", STABILITY)
def test_stability(version, expected):
    assert stability(version) == expected


@pytest.mark.parametrize("constraint, expected", PARSED)
def test_parse_constraint(constraint, expected):
    parsed = parse_constraint(constraint)
    assert isinstance(parsed, VersionConstraint)
    assert str(parsed) == expected
    assert parsed.text == constraint


@pytest.mark.parametrize("constraint", BAD_CONSTRAINTS)
def test_bad_constraint_names_the_input(constraint):
    with pytest.raises(ConstraintError) as caught:
        parse_constraint(constraint)
    message = str(caught.value)
    assert repr(constraint) in message
    assert "\n" not in message


def test_tilde_arrow_gets_a_hint():
    with pytest.raises(ConstraintError, match="did you mean '~'"):
        parse_constraint("~>2.4")


def test_constraint_errors_point_at_the_failing_part():
    with pytest.raises(ConstraintError, match=r"'\^2\.4 \|\| 2\.x\.y' at '2\.x\.y'"):
        parse_constraint("^2.4 || 2.x.y")


def test_long_input_is_shortened_in_messages():
    text = "9" * 50 + "x" * 1000
    with pytest.raises(ConstraintError) as caught:
        parse_constraint(text)
    assert len(str(caught.value)) < 400
    assert "'99999" in str(caught.value)


@pytest.mark.parametrize("version, constraint, expected", SATISFIES)
def test_satisfies(version, constraint, expected):
    assert satisfies(version, constraint) is expected
    assert parse_constraint(constraint).matches(normalize(version)) is expected


def test_satisfies_raises_for_a_bad_version_or_constraint():
    with pytest.raises(ConstraintError, match="'2.x.y'"):
        satisfies("2.x.y", "^2.4")
    with pytest.raises(ConstraintError, match="'\\^foo'"):
        satisfies("2.4.7", "^foo")


def test_satisfied_by_keeps_input_order():
    versions = ["2.4.8", "2.4.6-p3", "2.4.7-p1", "2.5.0", "2.4.7"]
    assert satisfied_by(versions, "~2.4.7") == ["2.4.8", "2.4.7-p1", "2.4.7"]
    assert satisfied_by(versions, parse_constraint("2.4.7-p1 || 2.5.0")) == ["2.4.7-p1", "2.5.0"]


# Each neighbour pair is a strict "older than" claim under version_compare.
ORDERED = [
    "1.0.0.0-dev",
    "1.0.0.0-alpha1",
    "1.0.0.0-alpha2",
    "1.0.0.0-beta1",
    "1.0.0.0-beta10",
    "1.0.0.0-RC1",
    "1.0.0.0",
    "1.0.0.0-patch1",
    "1.0.0.0-patch2",
    "1.0.0.1",
    "1.0.1.0",
    "1.2.0.0",
    "1.10.0.0",
    "2.4.7.0",
    "2.4.7.0-patch1",
    "2.4.7.0-patch10",
    "2.4.8.0-beta1",
    "2.4.8.0",
    "2.4.9999999.9999999-dev",
    "103.0.7.0-patch3",
]


def _neighbours(items):
    """Successive pairs (itertools.pairwise needs Python 3.10)."""
    return [(items[i - 1], items[i]) for i in range(1, len(items))]


def test_compare_orders_stabilities_like_composer():
    for older, newer in _neighbours(ORDERED):
        assert compare(older, newer) == -1, (older, newer)
        assert compare(newer, older) == 1, (older, newer)
        assert version_compare(older, newer, "<")
        assert not version_compare(older, newer, ">=")
    for version in ORDERED:
        assert compare(version, version) == 0
        assert version_compare(version, version, "==")
    assert sorted(random.Random(7).sample(ORDERED, len(ORDERED)), key=version_key) == ORDERED


@pytest.mark.parametrize(
    "a, b, expected",
    [
        ("1.0", "1.0.0", -1),   # PHP: more parts is newer
        ("1.0.0", "1.0", 1),
        ("1.0-dev", "1.0", -1),
        ("1.0", "1.0-p1", -1),
        ("1.0-patch1", "1.0-pl1", 0),
        ("01.2", "1.2", 0),
        ("dev-main", "0.0.1", -1),
        ("", "1.0", -1),
        ("", "", 0),
        ("1.", "1.", -1),   # PHP's own answer
        ("1.0-foo", "1.0-dev", -1),
        ("9223372036854775807", "99999999999999999999", 0),   # clamped like strtol
    ],
)
def test_compare_matches_php_version_compare(a, b, expected):
    assert compare(a, b) == expected


def test_version_compare_rejects_unknown_operators():
    with pytest.raises(ValueError):
        version_compare("1.0", "1.0", "~")


def test_sort_versions_newest_first_like_semver_rsort():
    versions = ["2.4.6-p3", "2.4.7", "dev-main", "2.4.8-beta1", "2.4.7-p1", "2.4.x-dev", "v2.4.5",
                "2.4.7-RC1", "dev-master"]
    assert sort_versions(versions) == [
        "dev-master", "2.4.x-dev", "2.4.8-beta1", "2.4.7-p1", "2.4.7", "2.4.7-RC1", "2.4.6-p3",
        "v2.4.5", "dev-main",
    ]
    assert sort_versions(versions, newest_first=False) == list(reversed(sort_versions(versions)))


def test_sort_versions_keeps_branches_and_ties_in_input_order():
    assert sort_versions(["dev-b", "1.0", "dev-a", "1.0.0"]) == ["1.0", "1.0.0", "dev-b", "dev-a"]
    assert sort_versions(["dev-b", "1.0", "dev-a"], newest_first=False) == ["dev-b", "dev-a", "1.0"]


def test_sort_versions_raises_for_a_bad_version():
    with pytest.raises(ConstraintError, match="'nope'"):
        sort_versions(["1.0", "nope"])


@pytest.mark.parametrize(
    "version, minimum, flags, expected",
    [
        ("2.4.7", "stable", None, True),
        ("2.4.7-p1", "stable", None, True),
        ("2.4.8-beta1", "stable", None, False),
        ("2.4.8-beta1", "beta", None, True),
        ("2.4.8-beta1", "RC", None, False),
        ("2.4.8-RC1", "rc", None, True),
        ("2.4.8-alpha1", "beta", None, False),
        ("dev-main", "dev", None, True),
        ("2.4.x-dev", "alpha", None, False),
        ("2.4.8-beta1", "stable", "beta", True),
        ("2.4.8-beta1", "stable", ["RC", "dev"], True),
        ("2.4.8-beta1", "dev", "stable", False),   # a flag replaces minimum-stability
        ("2.4.8-beta1", "dev", [], True),
        ("dev-main", "stable", ("dev",), True),
    ],
)
def test_is_stable_enough(version, minimum, flags, expected):
    assert is_stable_enough(version, minimum, flags) is expected


def test_unknown_stability_names_are_usage_errors():
    assert normalize_stability("rc") == "RC"
    assert normalize_stability("Beta") == "beta"
    with pytest.raises(ConstraintError, match="'gamma'"):
        is_stable_enough("1.0", "gamma")
    with pytest.raises(ConstraintError, match="'nightly'"):
        is_stable_enough("1.0", "stable", "nightly")


@pytest.mark.parametrize(
    "constraint, minimum, flags, flag",
    [
        ("^2.4", "stable", (), None),
        ("^2.4@dev", "stable", ("dev",), "dev"),
        ("^2.4@BETA", "stable", ("beta",), "beta"),
        ("@rc", "stable", ("RC",), "RC"),
        ("^2.4@beta || ^3.0@dev", "stable", ("beta", "dev"), "dev"),
        ("2.4.7@stable", "dev", ("stable",), "stable"),
        ("~2.4.7 @dev", "stable", ("dev",), "dev"),
        # Without a flag, an unstable version named outright relaxes the package...
        ("2.4.8-beta1", "stable", (), "beta"),
        ("2.4.x-dev as 2.4.7", "stable", (), "dev"),
        ("2.4.8-beta1 || 2.4.9-alpha1", "stable", (), "alpha"),
        # ...but only when it is less stable than minimum-stability.
        ("2.4.8-beta1", "dev", (), None),
        (">=2.4.8-beta1", "stable", (), "beta"),
        (">= 2.4.8-beta1", "stable", (), None),
    ],
)
def test_stability_flags(constraint, minimum, flags, flag):
    parsed = parse_constraint(constraint)
    assert parsed.stability_flags == flags
    assert parsed.stability_flag(minimum) == flag


def test_parse_constraint_is_cached_and_reprs():
    assert parse_constraint("^2.4") is parse_constraint("^2.4")
    assert repr(parse_constraint("^2.4")) == "VersionConstraint('^2.4')"


# -- properties ---------------------------------------------------------------------------------

TOKENS = ["0", "1", "2", "4", "7", "10", "103", "99999999999999999999", ".", "-", "_", "v", "x", "*",
          " ", ",", "|", "||", "^", "~", ">=", ">", "<", "<=", "=", "!=", "<>", "@dev", "@beta",
          "@stable", "dev", "dev-", "alpha", "beta", "RC", "rc", "p", "pl", "patch", "stable", "as",
          " as ", " - ", "#", "+", "\n", "main", "-dev", ".x-dev", "-p1", "é"]
composer_ish = st.lists(st.sampled_from(TOKENS), max_size=10).map("".join)
any_text = st.one_of(st.text(max_size=40), composer_ish)

numbers = st.integers(min_value=0, max_value=120).map(str)
modifiers = st.tuples(
    st.sampled_from(["-", ".", "_", ""]),
    st.sampled_from(["alpha", "a", "beta", "b", "RC", "rc", "p", "pl", "patch"]),
    st.sampled_from(["", "1", "2", "10", ".3"]),
).map("".join)
numbered = st.builds(
    lambda v, parts, modifier, dev: v + ".".join(parts) + modifier + dev,
    st.sampled_from(["", "v"]),
    st.lists(numbers, min_size=1, max_size=4),
    st.one_of(st.just(""), modifiers),
    st.sampled_from(["", "", "-dev"]),
)
branches = st.one_of(
    st.from_regex(r"dev-[a-z0-9][a-z0-9/._-]{0,12}", fullmatch=True),
    st.builds(lambda parts: ".".join(parts) + ".x-dev", st.lists(numbers, min_size=1, max_size=3)),
)
versions = st.one_of(numbered, numbered, numbered, branches)


@settings(max_examples=300, deadline=None)
@given(any_text)
def test_parsing_any_text_raises_only_constraint_error(text):
    for parse in (normalize, parse_constraint):
        try:
            parse(text)
        except ConstraintError as error:
            assert "\n" not in str(error)
    try:
        satisfies(text, text)
    except ConstraintError:
        pass
    assert stability(text) in ("stable", "RC", "beta", "alpha", "dev")
    assert compare(text, "1.0") in (-1, 0, 1)


@settings(max_examples=200, deadline=None)
@given(versions)
def test_normalize_is_idempotent_on_its_output(version):
    normalized = normalize(version)
    assert normalize(normalized) == normalized
    assert stability(normalized) == stability(version)


@settings(max_examples=100, deadline=None)
@given(st.lists(versions, max_size=12))
def test_sort_is_consistent_with_compare(items):
    normalized = [normalize(version) for version in items]
    ordered = sorted(normalized, key=version_key)
    for older, newer in _neighbours(ordered):
        assert compare(older, newer) <= 0
    for a, b in itertools.combinations(normalized, 2):
        if a.startswith("dev-") or b.startswith("dev-"):
            continue  # PHP's version_compare is not antisymmetric on branch names ('dev-0_' vs itself: -1)
        assert compare(a, b) == -compare(b, a)
    newest = [normalize(version) for version in sort_versions(items)]
    for newer, older in _neighbours(newest):
        if not (newer.startswith("dev-") and older.startswith("dev-")):
            assert compare(newer, older) >= 0


@settings(max_examples=200, deadline=None)
@given(st.lists(numbers, min_size=1, max_size=3).map(".".join), versions)
def test_caret_range_is_inside_its_lower_bound(base, version):
    if satisfies(version, "^" + base):
        assert satisfies(version, ">=" + base)
    if satisfies(version, "~" + base):
        assert satisfies(version, ">=" + base)
