"""Property tests over everything that parses what a server sends: a clear error or a warning and a skip,
never a traceback; and no name that would land outside the chosen folder.
"""

import json
import tempfile
from pathlib import Path

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from magedl.errors import FeedError, NotFoundError, UnsafeNameError
from magedl.mirror import index
from magedl.paths import check_name, destination
from magedl.service.catalog import Release, parse_feed, releases_to_feed, select, select_checked
from magedl.service.textformat import _COLUMNS, _cell_text, parse_table, parse_versions, render_table
from magedl.versions import sort_versions, version_key, version_matches

SETTINGS = settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Text with what hostile feeds carry: path separators, dots, drive letters, NUL and control characters.
nasty = st.text(alphabet=st.sampled_from(list("ab.-_/\\:Cc09 \t\n\x00\x1b\u202e\u00e9")) | st.characters(),
                max_size=30)
scalars = st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | nasty
json_values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=4)
                           | st.dictionaries(nasty, inner, max_size=4), max_leaves=20)
entry = st.dictionaries(
    st.sampled_from(["name", "file_name", "md5", "version", "type", "ce_versions", "ee_versions", "size"]) | nasty,
    json_values | nasty, max_size=6)
feeds = st.dictionaries(
    nasty, st.dictionaries(nasty, st.lists(entry | json_values, max_size=3), max_size=3)
    | st.lists(entry | json_values, max_size=3) | json_values, max_size=4)

FOLDER = Path(tempfile.mkdtemp(prefix="magedl-props-"))


def parse_or_feed_error(data):
    warnings = []
    try:
        releases = parse_feed(data, warn=warnings.append)
    except FeedError as exc:
        assert "\n" not in str(exc)
        return [], warnings
    assert all(isinstance(w, str) for w in warnings)
    return releases, warnings


@SETTINGS
@given(json_values | feeds)
def test_parse_feed_never_raises_anything_but_feed_error(data):
    releases, _ = parse_or_feed_error(data)
    for r in releases:
        assert isinstance(r, Release)
        assert all(isinstance(v, str) for v in (r.name, r.file_name, r.version, r.type, r.md5))
        assert r.file_name and (r.md5 == "" or len(r.md5) == 32)
        json.dumps(r.to_dict())  # what --json prints: never a RecursionError or a TypeError


@SETTINGS
@given(feeds)
def test_a_name_from_the_feed_is_refused_or_lands_inside_the_folder(data):
    releases, _ = parse_or_feed_error(data)
    for r in releases:
        try:
            check_name(r.file_name)
        except UnsafeNameError as exc:
            assert "\n" not in str(exc) and "\x1b" not in str(exc)
            continue
        path = destination(FOLDER, r.file_name)
        assert FOLDER.resolve() in path.parents


@SETTINGS
@given(st.lists(nasty, max_size=6))
def test_hostile_names_are_refused_or_stay_inside(names):
    for name in names + ["../" + n for n in names] + ["/" + n for n in names]:
        try:
            check_name(name)
        except UnsafeNameError:
            continue
        assert FOLDER.resolve() in destination(FOLDER, name).parents


@SETTINGS
@given(feeds)
def test_feed_round_trip_keeps_the_records(data):
    releases, _ = parse_or_feed_error(data)
    again = parse_feed(releases_to_feed(releases))
    assert sorted(map(repr, again)) == sorted(map(repr, releases))


table_cell = st.text(alphabet=st.characters(blacklist_categories=("Cs",)), max_size=20)


@SETTINGS
@given(st.text(max_size=400) | st.lists(st.lists(table_cell, max_size=7), max_size=6).map(
    lambda rows: "File Description  File Type  Md5 Hash  Publication Date  Version  File Name\n---\n"
    + "\n".join("  ".join(row) for row in rows)))
def test_parse_table_never_raises_anything_but_feed_error(text):
    warnings = []
    try:
        releases = parse_table(text, warn=warnings.append)
    except FeedError as exc:
        assert "\n" not in str(exc)
        return
    assert all(isinstance(r, Release) and r.file_name for r in releases)


word = st.text(alphabet=st.characters(blacklist_categories=("Cs", "Zs", "Zl", "Zp", "Cc")), min_size=1, max_size=12)
md5 = st.text(alphabet="0123456789abcdef", min_size=32, max_size=32) | st.just("")
releases_st = st.lists(st.builds(
    Release, name=st.lists(word, min_size=1, max_size=3).map(" ".join), file_name=word, version=word | st.just(""),
    type=word, md5=md5), max_size=6)


def _table_with_every_row_held(releases):
    """The table as render_table made it before it streamed: every row, then every line, held at once."""
    rows = [list(_COLUMNS)] + [[_cell_text(v) for v in (r.name or r.file_name, r.type, r.md5,
                                " ".join(str(r.extra.get("date") or "").split()), r.version, r.file_name)]
                               for r in releases]
    widths = [max(len(row[i]) for row in rows) for i in range(len(_COLUMNS))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths)).rstrip() for row in rows]
    return "\n".join([lines[0], "-" * max(len(text) for text in lines)] + lines[1:]) + "\n"


@SETTINGS
@given(st.lists(st.builds(Release, name=st.text(max_size=12), file_name=word, version=st.text(max_size=8),
                          type=st.text(max_size=8), md5=md5,
                          extra=st.dictionaries(st.just("date"), st.text(max_size=8))), min_size=1, max_size=6))
def test_the_table_written_a_line_at_a_time_is_the_table_made_whole(releases):
    assert render_table(releases) == _table_with_every_row_held(releases)
    assert bytes(index._table(releases)) == _table_with_every_row_held(releases).encode("utf-8")


@SETTINGS
@given(releases_st)
def test_render_table_then_parse_table_gives_the_records_back(releases):
    assume(all(r.name != "-" and r.file_name != "-" for r in releases))
    assume(all(not r.file_name.startswith("-") for r in releases))
    back = parse_table(render_table(releases))
    assert [(r.file_name, r.type, r.version, r.md5) for r in back] == [
        (r.file_name, "" if r.type == "-" else r.type, "" if r.version == "-" else r.version, r.md5)
        for r in releases]


@SETTINGS
@given(st.text(max_size=300) | st.lists(st.sampled_from(["CE Versions", "EE Versions", "-----", "", "2.4.6",
                                                          "2.4.7-p1", "garbage", "No results found."]),
                                        max_size=12).map("\n".join))
def test_parse_versions_never_raises_anything_but_feed_error(text):
    try:
        blocks = parse_versions(text)
    except FeedError:
        return
    for edition, versions in blocks.items():
        assert versions == sort_versions(versions)


versions_st = st.text(max_size=20) | st.from_regex(r"v?[0-9]{1,3}(\.[0-9]{1,3}){0,3}([-_.+]?(p|rc|beta|alpha|dev|x)"
                                                   r"[0-9]{0,2})?", fullmatch=True)


@SETTINGS
@given(st.lists(versions_st, max_size=8), st.randoms())
def test_version_order_is_total_and_deterministic(versions, rnd):
    shuffled = list(versions)
    rnd.shuffle(shuffled)
    assert sort_versions(shuffled) == sort_versions(versions)
    for a in versions:
        for b in versions:
            assert (version_key(a) == version_key(b)) == (a == b)
            assert (version_key(a) < version_key(b)) != (version_key(b) <= version_key(a))


@SETTINGS
@given(versions_st, st.text(max_size=12))
def test_version_matches_never_raises(version, pattern):
    assert version_matches(version, pattern) in (True, False)


@SETTINGS
@given(feeds, st.lists(nasty, max_size=2), st.lists(nasty, max_size=2), st.lists(nasty, max_size=2),
       st.booleans())
def test_select_checked_raises_only_not_found(data, types, versions, formats, latest):
    releases, _ = parse_or_feed_error(data)
    try:
        chosen = select_checked(releases, types=types, versions=versions, formats=formats, latest=latest)
    except NotFoundError as exc:
        assert "\n" not in str(exc) and "\x1b" not in str(exc)
        return
    assert chosen == select(releases, types=types, versions=versions, formats=formats, latest=latest)


@pytest.mark.parametrize("digits", [4300, 5000, 20000])
def test_huge_version_numbers_sort(digits):
    assert sort_versions(["1" * digits, "2.4.7"])[0] == "1" * digits
