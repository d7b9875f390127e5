"""Range, Content-Range and Content-Length parsing, and validator checks (magedl.ranges)."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from magedl.ranges import (
    MAX_DIGITS,
    UNSATISFIABLE,
    Validators,
    changed,
    parse_content_range,
    parse_http_date,
    parse_length,
    parse_range,
)


@pytest.mark.parametrize("value, size, expected", [
    ("bytes=0-9", 100, (0, 9)),
    ("bytes=10-", 100, (10, 99)),
    ("bytes=90-200", 100, (90, 99)),
    ("bytes=-10", 100, (90, 99)),
    ("bytes=-1000", 100, (0, 99)),
    (" Bytes = 5 - 6 ", 100, (5, 6)),
    ("bytes=0-0", 1, (0, 0)),
    ("bytes=00007-", 100, (7, 99)),
    ("bytes=100-", 100, UNSATISFIABLE),
    ("bytes=-0", 100, UNSATISFIABLE),
    ("bytes=-5", 0, UNSATISFIABLE),
    ("bytes=0-", 0, UNSATISFIABLE),
    (None, 100, None),
    ("", 100, None),
    ("items=0-9", 100, None),
    ("bytes=0-9,20-29", 100, None),
    ("bytes=9-0", 100, None),
    ("bytes=5", 100, None),
    ("bytes=-", 100, None),
    ("bytes=a-9", 100, None),
    ("bytes=\u00b2-9", 100, None),  # a digit to str.isdigit, not to int()
    ("bytes=\u0661-9", 100, None),  # Arabic-Indic one
    ("bytes=+5-9", 100, None),
    ("bytes=0x10-", 100, None),
])
def test_parse_range(value, size, expected):
    assert parse_range(value, size) == expected


def test_a_five_thousand_digit_range_is_answered_not_crashed():
    huge = "9" * 5000
    assert parse_range(f"bytes={huge}-", 100) == UNSATISFIABLE
    assert parse_range(f"bytes=0-{huge}", 100) == (0, 99)
    assert parse_range(f"bytes=-{huge}", 100) == (0, 99)
    assert parse_range(f"bytes={'0' * 5000}5-", 100) == (5, 99)  # leading zeros are not significant


@pytest.mark.parametrize("value, expected", [
    ("bytes 0-9/100", (0, 9, 100)),
    ("bytes 90-99/*", (90, 99, None)),
    (" BYTES 1-1/2 ", (1, 1, 2)),
    ("bytes 0-100/100", None),  # ends past the total
    ("bytes 9-0/100", None),
    ("bytes */100", None),  # the 416 form: no range
    ("bytes 0-9", None),
    ("items 0-9/100", None),
    ("bytes \u00b2-9/100", None),
    (f"bytes 0-{'9' * (MAX_DIGITS + 1)}/*", None),  # no file has that byte
    ("", None),
    (None, None),
])
def test_parse_content_range(value, expected):
    assert parse_content_range(value) == expected


@pytest.mark.parametrize("value, expected", [
    ("512", 512), (" 0 ", 0), ("0042", 42), ("", None), (None, None), ("-1", None), ("1e3", None),
    ("\u00b2", None), ("9" * 5000, None),
])
def test_parse_length(value, expected):
    assert parse_length(value) == expected


@given(st.text(max_size=60), st.integers(min_value=0, max_value=10**12))
def test_parse_range_never_raises_and_stays_inside_the_file(value, size):
    got = parse_range(value, size)
    assert got is None or got == UNSATISFIABLE or (0 <= got[0] <= got[1] < size)


@given(st.from_regex(r"\A\s*bytes\s*=\s*[0-9]{0,30}\s*-\s*[0-9]{0,30}\s*\Z"), st.integers(0, 10**12))
def test_parse_range_on_near_valid_headers(value, size):
    got = parse_range(value, size)
    assert got is None or got == UNSATISFIABLE or (0 <= got[0] <= got[1] < size)


@given(st.integers(0, 10**15), st.integers(0, 10**15), st.integers(1, 10**15))
def test_parse_range_round_trip(a, b, size):
    start, end = min(a, b), max(a, b)
    got = parse_range(f"bytes={start}-{end}", size)
    if start >= size:
        assert got == UNSATISFIABLE
    else:
        assert got == (start, min(end, size - 1))


@given(st.integers(0, 10**15), st.integers(0, 10**15), st.one_of(st.none(), st.integers(1, 10**16)))
def test_parse_content_range_round_trip(a, b, total):
    start, end = min(a, b), max(a, b)
    value = f"bytes {start}-{end}/{'*' if total is None else total}"
    expected = None if total is not None and end >= total else (start, end, total)
    assert parse_content_range(value) == expected


@given(st.text(max_size=80))
def test_parse_content_range_never_raises(value):
    got = parse_content_range(value)
    assert got is None or (got[0] <= got[1] and (got[2] is None or got[1] < got[2]))


def test_if_range_prefers_a_strong_etag_and_never_sends_a_weak_one():
    assert Validators('"abc"', "Mon, 01 Jan 2024 00:00:00 GMT").if_range() == '"abc"'
    assert Validators('W/"abc"', "Mon, 01 Jan 2024 00:00:00 GMT").if_range() == "Mon, 01 Jan 2024 00:00:00 GMT"
    assert Validators('W/"abc"').if_range() is None
    assert Validators().if_range() is None and not Validators()


def test_validators_from_headers_ignore_empty_values():
    assert Validators.from_headers({"ETag": "", "Last-Modified": "x"}) == Validators(None, "x")


OLD = Validators('"v1"', "Mon, 01 Jan 2024 00:00:00 GMT")


@pytest.mark.parametrize("headers, size, total, strict, reason", [
    ({"ETag": '"v1"'}, 100, 100, False, None),
    ({}, 100, None, False, None),  # a missing validator is no proof of change
    ({"ETag": '"v2"'}, 100, 100, False, "ETag differs"),
    ({"ETag": '"v1"'}, 100, 99, False, "size differs"),
    ({"Last-Modified": "Tue, 02 Jan 2024 00:00:00 GMT"}, None, None, False, "Last-Modified differs"),
    ({"ETag": '"v1"', "Last-Modified": "Tue, 02 Jan 2024 00:00:00 GMT"}, None, None, False, None),  # ETag rules
    ({}, 100, 100, True, "no matching ETag"),
    ({"Last-Modified": "Mon, 01 Jan 2024 00:00:00 GMT"}, 100, 100, True, None),
])
def test_changed(headers, size, total, strict, reason):
    got = changed(OLD, headers, size, total, strict=strict)
    assert (got is None) if reason is None else (reason in got)


@pytest.mark.parametrize("value", [None, "", "not a date", "Mon, 32 Foo 99999999 25:61:61 GMT",
                                   "Tue, 01 Jan 99999 00:00:00 GMT", "9" * 5000])
def test_a_malformed_http_date_is_none_never_an_exception(value):
    assert parse_http_date(value) is None


def test_an_http_date_is_epoch_seconds():
    assert parse_http_date("Thu, 01 Jan 1970 00:01:40 GMT") == 100.0
