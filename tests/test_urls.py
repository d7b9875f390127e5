"""The one rule for URLs magedl is told to reach (magedl/urls.py)."""

import pytest

from magedl.errors import UsageError
from magedl.secrecy import register_secret
from magedl.urls import check_http_url, folder_url


def check(url, **kwargs):
    return check_http_url(url, "--x", "an http(s) URL", "use auth.json", **kwargs)


@pytest.mark.parametrize("url", ["ftp://h/", "https://", "http://h:99999/", "http://h:x/", "http://h /", "", None,
                                 "http://[::1/"])
def test_what_is_no_http_url_is_refused_naming_where_it_came_from(url):
    with pytest.raises(UsageError, match=r"^--x .*expected an http\(s\) URL"):
        check(url)


def test_credentials_are_refused_without_showing_them():
    register_secret("S3cretPw")
    with pytest.raises(UsageError) as info:
        check("https://ops:S3cretPw@h/p/?token=S3cretPw")
    assert "no user or password" in str(info.value) and "S3cretPw" not in str(info.value)


def test_a_query_is_refused_only_where_it_would_be_written_into_files():
    assert check("https://h/api/?a=1").query == "a=1"
    with pytest.raises(UsageError, match="no query or fragment"):
        check("https://h/p/#x", query=False)


def test_a_folder_url_ends_with_a_slash():
    assert folder_url(check("https://h:8443/composer")) == "https://h:8443/composer/"
    assert folder_url(check("http://h")) == "http://h/"
