import copy

import pytest

from magedl.errors import FeedError, IntegrityError
from magedl.service.catalog import Release, find_by_name, parse_feed, releases_to_feed, select, settle_md5, unique_files

MD5_A = "0123456789abcdef0123456789abcdef"
MD5_B = "fedcba9876543210fedcba9876543210"


def feed():
    """A feed with every shape API.md describes."""
    return {
        "ce-full": {
            "2.4.6": [
                {"name": "Magento CE 2.4.6", "file_name": "Magento-CE-2.4.6.tar.gz", "md5": MD5_A},
                {"name": "Magento CE 2.4.6 zip", "file_name": "Magento-CE-2.4.6.zip", "md5": ""},
            ],
            "2.4.6-p1": [
                {"name": "Magento CE 2.4.6-p1 + sample data",
                 "file_name": "Magento-CE-2.4.6-p1_sample_data.tar.bz2", "md5": MD5_B.upper(),
                 "size": 123, "published": "2023-06-13"},
            ],
        },
        "ee-full": {
            "2.3.4": [{"name": "Magento EE 2.3.4",
                       "file_name": "ee/Magento-EE-2.3.4-2020-01-22-11-32-19.zip", "md5": MD5_A}],
        },
        "ce-patch": {
            "1.9.2.1": [{"name": "SUPEE-6788", "file_name": "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh",
                         "md5": MD5_B, "ce_versions": ["1.9.2.1"], "ee_versions": ["1.14.2.1"]}],
            "1.9.2.2": [{"name": "SUPEE-6788", "file_name": "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh",
                         "md5": MD5_B, "ce_versions": ["1.9.2.1"], "ee_versions": ["1.14.2.1"]}],
        },
        "other": [
            {"name": "Sample data", "file_name": "sample-data.zip", "md5": MD5_A, "version": "2.4.6"},
            {"file_name": "README.txt", "md5": MD5_B},
        ],
        "b2b-full": {"1.4.0": [{"name": "B2B", "file_name": "b2b-1.4.0.zip", "md5": MD5_A}]},
    }


def test_parse_feed_records_in_feed_order():
    releases = parse_feed(feed())
    assert [(r.type, r.version, r.file_name) for r in releases] == [
        ("ce-full", "2.4.6", "Magento-CE-2.4.6.tar.gz"),
        ("ce-full", "2.4.6", "Magento-CE-2.4.6.zip"),
        ("ce-full", "2.4.6-p1", "Magento-CE-2.4.6-p1_sample_data.tar.bz2"),
        ("ee-full", "2.3.4", "ee/Magento-EE-2.3.4-2020-01-22-11-32-19.zip"),
        ("ce-patch", "1.9.2.1", "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh"),
        ("ce-patch", "1.9.2.2", "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh"),
        ("other", "2.4.6", "sample-data.zip"),
        ("other", "", "README.txt"),
        ("b2b-full", "1.4.0", "b2b-1.4.0.zip"),
    ]


def test_parse_feed_fields():
    r = {x.file_name: x for x in parse_feed(feed())}
    assert r["Magento-CE-2.4.6.zip"].md5 == ""
    assert r["Magento-CE-2.4.6-p1_sample_data.tar.bz2"].md5 == MD5_B  # lower-cased
    assert r["Magento-CE-2.4.6-p1_sample_data.tar.bz2"].extra == {"size": 123, "published": "2023-06-13"}
    assert r["README.txt"].name == "README.txt"
    assert r["README.txt"].extra == {}
    patch = r["PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh"]
    assert (patch.ce_versions, patch.ee_versions) == (("1.9.2.1",), ("1.14.2.1",))
    assert r["ee/Magento-EE-2.3.4-2020-01-22-11-32-19.zip"].file_name.startswith("ee/")


@pytest.mark.parametrize("data", [[], "No results found.", None, 3, "<html>401</html>"])
def test_parse_feed_rejects_non_object(data):
    with pytest.raises(FeedError, match="not a JSON object"):
        parse_feed(data)


def test_malformed_entries_skipped_with_warnings():
    warnings = []
    data = {
        "ce-full": {
            "2.4.6": [
                "not an entry",
                {"name": "no file name"},
                {"file_name": ""},
                {"file_name": 42},
                {"file_name": "ok.zip", "md5": "abc"},
                {"file_name": "ok.zip", "md5": MD5_A},
                {"file_name": "named.zip", "name": 7, "ce_versions": "2.4.6"},
            ],
            "2.4.7": "not a list",
        },
        "ee-full": 17,
        "other": [{"file_name": "x.zip", "version": 2.4}],
    }
    releases = parse_feed(data, warn=warnings.append)
    assert [(r.file_name, r.version, r.md5, r.name, r.ce_versions) for r in releases] == [
        ("ok.zip", "2.4.6", MD5_A, "ok.zip", ()),  # the repeat's md5 is kept, not dropped with the repeat
        ("named.zip", "2.4.6", "", "named.zip", ()),
        ("x.zip", "", "", "x.zip", ()),
    ]
    assert len(warnings) == 11
    assert all(isinstance(w, str) and "\n" not in w for w in warnings)
    assert any("ce-full/2.4.6[0]" in w and "not an object" in w for w in warnings)
    assert any("ce-full/2.4.7" in w for w in warnings)
    assert any(w.startswith("feed ee-full:") for w in warnings)
    assert any("md5 of ok.zip" in w for w in warnings)
    assert any("repeats ok.zip" in w for w in warnings)


def test_malformed_entries_without_warn_callable():
    assert parse_feed({"x": [1, {"file_name": "a"}], "y": None})[0].file_name == "a"


def test_type_and_version_inside_entry_do_not_override_position():
    data = {"ce-full": {"2.4.6": [{"file_name": "a.zip", "type": "ee-full", "version": "9"}]}}
    (r,) = parse_feed(data)
    assert (r.type, r.version, r.extra) == ("ce-full", "2.4.6", {})


def test_suffix():
    def suffix(name):
        return Release(name, name, "", "", "").suffix
    assert suffix("Magento-CE-2.4.2.tar.gz") == ".tar.gz"
    assert suffix("Magento-CE-2.4.2.TAR.BZ2") == ".tar.bz2"
    assert suffix("magento-1.9.4.5.tgz") == ".tgz"
    assert suffix("Magento-CE-2.0.2+sample_data.zip") == ".zip"
    assert suffix("PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh") == ".sh"
    assert suffix("fix.patch") == ".patch"
    assert suffix("fix.Diff") == ".diff"
    assert suffix("notes.txt") == ".txt"
    assert suffix("dir.d/README") == ""
    assert suffix("magento-1.9.4.5") == ""
    assert suffix(".hidden") == ""


def test_to_dict():
    r = Release("N", "f.zip", "2.4.6", "ce-full", MD5_A, ce_versions=("2.4.6",),
                extra={"size": 1, "name": "ignored", "type": "ignored"})
    assert r.to_dict() == {"name": "N", "file_name": "f.zip", "version": "2.4.6",
                           "type": "ce-full", "md5": MD5_A, "ce_versions": ["2.4.6"], "size": 1}
    assert "ee_versions" not in r.to_dict()


def test_extra_ignored_by_equality_and_hash():
    a = Release("N", "f.zip", "1", "ce-full", "", extra={"x": 1})
    b = Release("N", "f.zip", "1", "ce-full", "", extra={"x": 2})
    assert a == b and hash(a) == hash(b)


def test_round_trip():
    original = feed()
    releases = parse_feed(copy.deepcopy(original))
    rebuilt = releases_to_feed(releases)
    again = parse_feed(rebuilt)
    assert again == releases
    assert [r.to_dict() for r in again] == [r.to_dict() for r in releases]
    assert rebuilt["ce-full"] == {
        "2.4.6": [
            {"name": "Magento CE 2.4.6", "file_name": "Magento-CE-2.4.6.tar.gz", "md5": MD5_A},
            {"name": "Magento CE 2.4.6 zip", "file_name": "Magento-CE-2.4.6.zip", "md5": ""},
        ],
        "2.4.6-p1": [
            {"name": "Magento CE 2.4.6-p1 + sample data",
             "file_name": "Magento-CE-2.4.6-p1_sample_data.tar.bz2", "md5": MD5_B,
             "size": 123, "published": "2023-06-13"},
        ],
    }
    assert rebuilt["other"] == [
        {"name": "Sample data", "file_name": "sample-data.zip", "version": "2.4.6", "md5": MD5_A},
        {"name": "README.txt", "file_name": "README.txt", "md5": MD5_B},
    ]
    assert list(rebuilt) == ["ce-full", "ee-full", "ce-patch", "other", "b2b-full"]


def test_round_trip_category_with_unversioned_record_becomes_list():
    releases = [Release("a", "a.zip", "2.4.6", "ce-full", ""), Release("b", "b.zip", "", "ce-full", "")]
    rebuilt = releases_to_feed(releases)
    assert rebuilt == {"ce-full": [
        {"name": "a", "file_name": "a.zip", "version": "2.4.6", "md5": ""},
        {"name": "b", "file_name": "b.zip", "md5": ""},
    ]}
    assert parse_feed(rebuilt) == releases


def names(releases):
    return [(r.version, r.type, r.file_name) for r in releases]


def test_select_everything_is_ordered_newest_first_then_type_then_name():
    assert names(select(parse_feed(feed()))) == [
        ("2.4.6-p1", "ce-full", "Magento-CE-2.4.6-p1_sample_data.tar.bz2"),
        ("2.4.6", "ce-full", "Magento-CE-2.4.6.tar.gz"),
        ("2.4.6", "ce-full", "Magento-CE-2.4.6.zip"),
        ("2.4.6", "other", "sample-data.zip"),
        ("2.3.4", "ee-full", "ee/Magento-EE-2.3.4-2020-01-22-11-32-19.zip"),
        ("1.9.2.2", "ce-patch", "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh"),
        ("1.9.2.1", "ce-patch", "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh"),
        ("1.4.0", "b2b-full", "b2b-1.4.0.zip"),
        ("", "other", "README.txt"),
    ]


def test_select_filters():
    releases = parse_feed(feed())
    assert names(select(releases, types=["ee-full", "b2b-full"])) == [
        ("2.3.4", "ee-full", "ee/Magento-EE-2.3.4-2020-01-22-11-32-19.zip"),
        ("1.4.0", "b2b-full", "b2b-1.4.0.zip"),
    ]
    assert [r.file_name for r in select(releases, versions=["2.4.6"])] == [
        "Magento-CE-2.4.6.tar.gz", "Magento-CE-2.4.6.zip", "sample-data.zip"]
    assert [r.version for r in select(releases, versions=["1.9.*", "2.3.?"])] == [
        "2.3.4", "1.9.2.2", "1.9.2.1"]
    assert [r.version for r in select(releases, names=["PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh"])] == [
        "1.9.2.2", "1.9.2.1"]
    assert select(releases, names=["nope"]) == []


@pytest.mark.parametrize("fmt", ["zip", ".zip", "ZIP", " .Zip "])
def test_select_formats_spellings(fmt):
    assert [r.file_name for r in select(parse_feed(feed()), formats=[fmt], types=["ce-full"])] == [
        "Magento-CE-2.4.6.zip"]


def test_select_formats_multi_part():
    releases = parse_feed(feed())
    assert [r.file_name for r in select(releases, formats=["tar.gz", "TAR.BZ2"])] == [
        "Magento-CE-2.4.6-p1_sample_data.tar.bz2", "Magento-CE-2.4.6.tar.gz"]
    assert select(releases, formats=["gz"]) == []


def test_select_latest_is_per_type_and_after_other_filters():
    releases = parse_feed(feed())
    assert names(select(releases, latest=True)) == [
        ("2.4.6-p1", "ce-full", "Magento-CE-2.4.6-p1_sample_data.tar.bz2"),
        ("2.4.6", "other", "sample-data.zip"),
        ("2.3.4", "ee-full", "ee/Magento-EE-2.3.4-2020-01-22-11-32-19.zip"),
        ("1.9.2.2", "ce-patch", "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh"),
        ("1.4.0", "b2b-full", "b2b-1.4.0.zip"),
    ]
    assert names(select(releases, types=["ce-full"], formats=["zip"], latest=True)) == [
        ("2.4.6", "ce-full", "Magento-CE-2.4.6.zip")]
    assert names(select(releases, versions=["2.4.6"], latest=True, types=["ce-full"])) == [
        ("2.4.6", "ce-full", "Magento-CE-2.4.6.tar.gz"), ("2.4.6", "ce-full", "Magento-CE-2.4.6.zip")]


def test_unique_files_first_seen_wins():
    releases = parse_feed(feed())
    unique = unique_files(releases)
    assert len(unique) == len(releases) - 1
    patch = [r for r in unique if r.file_name.startswith("PATCH")]
    assert [r.version for r in patch] == ["1.9.2.1"]


def test_find_by_name():
    releases = parse_feed(feed())
    assert find_by_name(releases, "Magento-CE-2.4.6.zip").name == "Magento CE 2.4.6 zip"
    assert find_by_name(releases, "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh").version == "1.9.2.1"
    assert find_by_name(releases, "ee/Magento-EE-2.3.4-2020-01-22-11-32-19.zip").type == "ee-full"
    assert find_by_name(releases, "magento-ce-2.4.6.zip") is None


# -- select_checked: what a person typed -----------------------------------------------------------------


def checked_error(**filters):
    from magedl.errors import NotFoundError
    from magedl.service.catalog import select_checked

    with pytest.raises(NotFoundError) as info:
        select_checked(parse_feed(feed()), **filters)
    assert info.value.exit_code == 5 and "\n" not in str(info.value)
    return str(info.value)


def test_select_checked_passes_what_select_passes():
    from magedl.service.catalog import select_checked

    releases = parse_feed(feed())
    for filters in ({}, {"types": ["ce-full"]}, {"versions": ["2.4.*"], "formats": ["zip"]}, {"latest": True},
                    {"names": ["sample-data.zip"]}, {"types": ["ce-patch"], "versions": ["1.9.2.?"]}):
        assert select_checked(releases, **filters) == select(releases, **filters)
    assert select_checked([]) == []  # an empty catalogue is not a typo


def test_unknown_type_names_the_closest_and_lists_the_known():
    msg = checked_error(types=["ce-ful"])
    assert "unknown --type 'ce-ful' (did you mean 'ce-full'?)" in msg
    assert "the catalogue has: b2b-full, ce-full, ce-patch, ee-full, other" in msg
    assert "did you mean" not in checked_error(types=["zzz"])
    # One unknown type among known ones is still a typo worth stopping for.
    assert "unknown --type 'ee-ful'" in checked_error(types=["ce-full", "ee-ful"])


def test_version_glob_that_matches_nothing_lists_the_versions_of_the_chosen_types():
    msg = checked_error(versions=["2.4.66"])
    assert "--version '2.4.66' matches no version (did you mean '2.4.6'?)" in msg
    assert "versions: 2.4.6-p1, 2.4.6, 2.3.4" in msg
    msg = checked_error(types=["ee-full"], versions=["2.4.6"])
    assert "matches no version of ee-full" in msg and "versions of ee-full: 2.3.4" in msg


def test_broken_glob_is_called_out():
    msg = checked_error(versions=["2.4.[6"])
    assert "--version '2.4.[6' (its '[' is never closed, so it is taken literally) matches no version" in msg


def test_unknown_name_and_format_and_empty_combination():
    assert "'Magento-CE-2.4.6.tgz' is not in the catalogue (did you mean 'Magento-CE-2.4.6.tar.gz'?)" in (
        checked_error(names=["Magento-CE-2.4.6.tgz"]))
    msg = checked_error(types=["ee-full"], formats=["tar.gz"])
    assert "no file of that selection has the format tar.gz; formats there: zip" in msg
    # Each filter matches something, but not together.
    assert "as a whole" in checked_error(names=["sample-data.zip"], versions=["1.9.*"])


def test_typo_in_a_hostile_feed_is_printed_escaped():
    from magedl.errors import NotFoundError
    from magedl.service.catalog import select_checked

    releases = parse_feed({"ce-full\x1b[2J": {"2.4.6": [{"file_name": "a.zip"}]}})
    with pytest.raises(NotFoundError) as info:
        select_checked(releases, types=["ce-full"])
    assert "\x1b" not in str(info.value) and "ce-full\\x1b[2J" in str(info.value)


def test_deeply_nested_extra_fields_are_dropped_with_a_warning():
    deep = []
    for _ in range(200):
        deep = [deep]
    warnings = []
    [r] = parse_feed({"ce-full": {"2.4.6": [{"file_name": "a.zip", "deep": deep, "ok": [[1]]}]}},
                     warn=warnings.append)
    assert "deep" not in r.extra and r.extra["ok"] == [[1]]
    assert warnings == ["feed ce-full/2.4.6[0]: field 'deep' of a.zip is nested too deeply; dropped"]


def test_a_repeated_listing_never_loses_the_md5_whatever_its_order():
    md5 = "a" * 32
    for first, second in ((None, md5), (md5, None)):
        entries = [{"name": "x", "file_name": "x.zip", **({"md5": first} if first else {})},
                   {"name": "x", "file_name": "x.zip", **({"md5": second} if second else {})}]
        [release] = parse_feed({"ce-full": {"2.4.7": entries}})
        assert release.md5 == md5


def test_repeated_listings_with_different_md5s_are_refused_not_guessed():
    entries = [{"name": "x", "file_name": "x.zip", "md5": "a" * 32},
               {"name": "x", "file_name": "x.zip", "md5": "b" * 32}]
    releases = parse_feed({"ce-full": {"2.4.7": entries}})
    with pytest.raises(IntegrityError):
        settle_md5(releases[0], releases)
