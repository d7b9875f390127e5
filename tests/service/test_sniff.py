"""Unit tests for magedl.sniff: telling an archive from an error page."""

import gzip
import io
import zipfile

import pytest

from magedl.service import sniff
from magedl.service.sniff import (
    HEAD_SIZE,
    excerpt,
    expected_magic,
    is_html,
    is_text,
    magic_matches,
    mentions_credentials,
    refuse_reason,
)

GZIP = gzip.compress(b"x" * 1000)


def _zip():
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as z:
        z.writestr("a.txt", "hello")
    return buf.getvalue()


ZIP = _zip()
EMPTY_ZIP = b"PK\x05\x06" + b"\x00" * 18
BZIP2 = b"BZh91AY&SY" + b"\x00" * 20
XZ = b"\xfd7zXZ\x00" + b"\x00" * 20
AUTH_TEXT = b"Invalid login or password"  # the 25-byte body users saved as .tar.gz


def test_auth_text_is_25_bytes():
    assert len(AUTH_TEXT) == 25


# -- magic numbers ----------------------------------------------------------------


@pytest.mark.parametrize(
    "suffix, head",
    [(".tar.gz", GZIP), (".tgz", GZIP), (".gz", GZIP), (".zip", ZIP), (".zip", EMPTY_ZIP), (".tar.bz2", BZIP2),
     (".bz2", BZIP2), (".tbz2", BZIP2), (".tar.xz", XZ), (".TAR.GZ", GZIP), (".ZIP", ZIP)],
)
def test_magic_matches(suffix, head):
    assert magic_matches(suffix, head) is True
    assert refuse_reason(suffix, head[:HEAD_SIZE], "application/octet-stream", have_md5=False) is None


@pytest.mark.parametrize(
    "suffix, head", [(".tar.gz", ZIP), (".zip", GZIP), (".tar.bz2", GZIP), (".tar.gz", b""), (".zip", b"PK")]
)
def test_magic_mismatch(suffix, head):
    assert magic_matches(suffix, head) is False


@pytest.mark.parametrize("suffix", [".sh", ".patch", ".txt", "", ".tar", ".composer"])
def test_unknown_suffix_has_no_magic(suffix):
    assert expected_magic(suffix) is None
    assert magic_matches(suffix, GZIP) is None


def test_expected_magic_values():
    assert expected_magic(".tar.gz") == (b"\x1f\x8b",)
    assert expected_magic(".zip") == (b"PK\x03\x04", b"PK\x05\x06")
    assert expected_magic(".tar.bz2") == (b"BZh",)


# -- HTML and text detection --------------------------------------------------------


@pytest.mark.parametrize(
    "ctype", ["text/html", "text/html; charset=UTF-8", "TEXT/HTML", " text/html ;charset=x", "application/xhtml+xml"]
)
def test_html_by_content_type(ctype):
    assert is_html(GZIP, ctype) is True


@pytest.mark.parametrize(
    "body",
    [
        b"<!DOCTYPE html><html><body>Login</body></html>",
        b"  \n<!doctype HTML>",
        b"<html lang=en>",
        b"<HEAD><title>x</title>",
        b"<body>oops",
        b'<?xml version="1.0"?><Error/>',
        b"<!-- a comment -->",
    ],
)
def test_html_by_body(body):
    assert is_html(body, "application/octet-stream") is True
    assert is_html(body) is True


@pytest.mark.parametrize("body", [GZIP, ZIP, b"Invalid login", b"#!/bin/sh\necho <html>", b""])
def test_not_html(body):
    assert is_html(body, "application/x-gzip") is False
    assert is_html(body, None) is False


def test_is_text():
    assert is_text(AUTH_TEXT) is True
    assert is_text(b"line one\r\nline\ttwo\n") is True
    assert is_text("caf\xe9".encode()) is True
    assert is_text(b"") is False
    assert is_text(GZIP) is False
    assert is_text(b"abc\x00def") is False
    assert is_text(b"\xff\xfe") is False


# -- refuse_reason ------------------------------------------------------------------------


@pytest.mark.parametrize("suffix", [".tar.gz", ".zip", ".tar.bz2", ".tgz"])
def test_25_byte_auth_text_refused_for_archives(suffix):
    reason = refuse_reason(suffix, AUTH_TEXT, "text/plain", total_size=25)
    assert reason is not None
    assert "short text page" in reason
    assert "Invalid login or password" in reason
    # also without a Content-Length, and with a lying content type
    assert refuse_reason(suffix, AUTH_TEXT, "application/octet-stream", total_size=None) is not None


@pytest.mark.parametrize("suffix", [".sh", ".patch", ".diff", ".txt", ".SH"])
def test_short_text_accepted_for_text_patches(suffix):
    body = b"#!/bin/bash\necho patched\n"
    assert refuse_reason(suffix, body, "text/plain", total_size=len(body)) is None
    assert refuse_reason(suffix, body, "application/x-sh", total_size=len(body), have_md5=False) is None


def test_html_refused_even_for_text_patches():
    reason = refuse_reason(".sh", b"<html><body>Please log in</body></html>", "text/html")
    assert reason is not None and "HTML page" in reason


def test_html_content_type_refused_for_archive():
    reason = refuse_reason(".tar.gz", GZIP[:HEAD_SIZE], "text/html; charset=utf-8", total_size=10_000)
    assert reason is not None and "HTML" in reason


def test_real_archive_accepted():
    assert refuse_reason(".tar.gz", GZIP[:HEAD_SIZE], "application/x-gzip", total_size=len(GZIP)) is None
    assert refuse_reason(".zip", ZIP[:HEAD_SIZE], "application/zip", total_size=len(ZIP)) is None


def test_long_text_head_of_big_file_not_refused_with_md5():
    head = b"a" * HEAD_SIZE  # a full head of text, body known to be big
    assert refuse_reason(".tar.gz", head, "", total_size=10_000_000, have_md5=True) is None


def test_small_text_refused_even_with_full_head():
    head = b"a" * HEAD_SIZE
    assert refuse_reason(".tar.gz", head, "", total_size=HEAD_SIZE + 10) is not None


def test_no_md5_refuses_mismatched_magic():
    body = b"\x00\x01\x02 not an archive" + bytes(range(256)) * 2
    assert refuse_reason(".tar.gz", body[:HEAD_SIZE], "", total_size=10_000_000, have_md5=True) is None
    reason = refuse_reason(".tar.gz", body[:HEAD_SIZE], "", total_size=10_000_000, have_md5=False)
    assert reason is not None and "does not start like a .tar.gz archive" in reason
    # a zip where a tar.gz was expected
    assert refuse_reason(".tar.gz", ZIP[:HEAD_SIZE], "", total_size=10_000_000, have_md5=False) is not None


def test_no_md5_unknown_suffix_is_not_refused():
    body = bytes(range(256)) * 2
    assert refuse_reason(".tar", body, "", total_size=10_000_000, have_md5=False) is None


# -- excerpt and credentials wording -----------------------------------------------------


def test_excerpt_strips_tags_and_stays_one_line():
    page = b"<html>\n<head><title>Error</title></head>\n<body>\n<p>Invalid   login\nor password</p>\n</body></html>"
    text = excerpt(page)
    assert text == "Error Invalid login or password"
    assert "\n" not in text and "<" not in text


def test_excerpt_is_limited():
    text = excerpt(b"word " * 100, limit=20)
    assert text.endswith("...")
    assert len(text) == 23
    assert excerpt(b"short") == "short"


def test_excerpt_of_binary_is_one_line():
    text = excerpt(GZIP + b"\n\r\n\x0b\x0c")
    assert "\n" not in text and "\r" not in text


def test_excerpt_is_printable():
    text = excerpt(b"\x1b[2J\x1b]0;pwned\x07hello\x00")
    assert text.isprintable()


@pytest.mark.parametrize(
    "text, expected",
    [
        ("Invalid login or password", True),
        ("Please log in", True),
        ("401 Unauthorized", True),
        ("Access denied", True),
        ("Invalid token", True),
        ("Service temporarily unavailable", False),
        ("Maintenance", False),
        ("", False),
    ],
)
def test_mentions_credentials(text, expected):
    assert mentions_credentials(text) is expected


def test_head_size():
    assert sniff.HEAD_SIZE == 512
