import random

import pytest

from magedl.versions import edition_of, sort_versions, version_key, version_matches

# Oldest to newest; every neighbour pair is a strict ordering claim.
CHAIN = [
    "",
    "garbage",
    "latest",
    "1.9.4.4",
    "1.9.4.5",
    "1.10.0.0",
    "1.14.4.5",
    "2.0.0-dev",
    "2.0.0-alpha",
    "2.0.0-beta",
    "2.0.0-beta2",
    "2.0.0-beta10",
    "2.0.0-rc1",
    "2.0.0-weird",
    "2.0.0",
    "2.0.0-p1",
    "2.3.4",
    "2.4.6",
    "2.4.6-p1",
    "2.4.6-p2",
    "2.4.6-p10",
    "2.4.7",
    "2.4.10",
]


def test_chain_is_strictly_increasing():
    keys = [version_key(v) for v in CHAIN]
    for older, newer, k_old, k_new in zip(CHAIN, CHAIN[1:], keys, keys[1:]):
        assert k_old < k_new, (older, newer)


def test_sort_any_shuffle_gives_the_chain():
    shuffled = CHAIN[:]
    random.Random(7).shuffle(shuffled)
    assert sort_versions(shuffled, newest_first=False) == CHAIN
    assert sort_versions(shuffled) == CHAIN[::-1]


def test_sort_dedupes():
    assert sort_versions(["2.4.6", "2.4.7", "2.4.6", "2.4.6-p1"]) == ["2.4.7", "2.4.6-p1", "2.4.6"]


def test_numeric_parts_compare_as_numbers():
    assert version_key("1.10") > version_key("1.9")
    assert version_key("2.4.10") > version_key("2.4.9")


def test_pre_release_case_insensitive_and_before_release():
    assert version_key("2.0.0-RC1") < version_key("2.0.0")
    assert version_key("2.0.0-Beta") < version_key("2.0.0-rc")


def test_garbage_never_raises_and_is_deterministic():
    odd = ["", " ", "v", "-p1", "x.y.z", "2..4", "None", "é", "2.4.6-p1-hotfix"]
    for v in odd:
        assert version_key(v) == version_key(v)
    assert sort_versions(odd) == sort_versions(list(reversed(odd)))
    assert version_key("x.y.z") < version_key("0.0.1")


def test_distinct_strings_never_tie():
    assert version_key("2.4") != version_key("2.4.0")
    assert version_key("2.04") != version_key("2.4")


@pytest.mark.parametrize(
    "version, pattern, expected",
    [
        ("1.9.4.5", "1.9.*", True),
        ("1.9.4.5", "1.9.?.5", True),
        ("1.9.4.5", "1.9.[0-3].5", False),
        ("1.9.4.5", "1.9.[3-5].*", True),
        ("1.10.0.0", "1.9.*", False),
        ("2.4.6", "2.4.6", True),
        ("2.4.6-p1", "2.4.6", False),
        ("2.4.6-p1", "2.4.6*", True),
        ("2.0.0-RC1", "2.0.0-rc*", True),
        ("2.0.0-rc1", "2.0.0-RC1", True),
        ("", "*", True),
        ("", "2.*", False),
    ],
)
def test_version_matches(version, pattern, expected):
    assert version_matches(version, pattern) is expected


@pytest.mark.parametrize(
    "type_, expected",
    [("ce-full", "CE"), ("ce-patch", "CE"), ("ee-full", "EE"), ("EE-Patch", "EE"),
     ("other", ""), ("ce", ""), ("b2b-full", ""), ("", "")],
)
def test_edition_of(type_, expected):
    assert edition_of(type_) == expected


def test_versions_with_thousands_of_digits_sort_without_int_limits():
    """Python refuses int() of 4,300+ digits; a hostile feed's version must still sort, numerically."""
    huge = "9" * 5000
    assert sort_versions([f"2.{huge}", "2.4.6", f"{huge}.1", f"2.4.6-p{huge}", "2.4.6-p2"]) == [
        f"{huge}.1", f"2.{huge}", f"2.4.6-p{huge}", "2.4.6-p2", "2.4.6"]
    assert version_key("2.10")[:5] == version_key("2.010")[:5]  # leading zeros do not change the number


def test_non_ascii_digits_are_not_version_numbers():
    assert version_key("\u0662.\u0664")[0] == 0  # Arabic-Indic digits: garbage, below every real version


@pytest.mark.parametrize("glob, broken", [("2.4.[7", True), ("2.4.[6-7]", False), ("[!a]", False), ("2.4.7", False),
                                          ("[]x", True), ("[]]", False), ("a[b", True), ("2.4.[", True)])
def test_unclosed_bracket(glob, broken):
    from magedl.versions import unclosed_bracket

    assert unclosed_bracket(glob) is broken
