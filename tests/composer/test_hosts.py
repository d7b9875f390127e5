"""How a repository URL maps to the http-basic entry Composer looks up, and to ours."""

import pytest

from magedl.composer.hosts import EXACT, LENIENT, URL_NAME, composer_origin, host_key, match_entry, parse_target
from magedl.errors import UsageError
from magedl.secrecy import redact


@pytest.mark.parametrize("url, origin, canonical", [
    ("https://repo.magento.com/", "repo.magento.com", "repo.magento.com"),
    ("https://repo.magento.com", "repo.magento.com", "repo.magento.com"),
    ("repo.magento.com", "repo.magento.com", "repo.magento.com"),
    ("https://REPO.magento.com:443/", "REPO.magento.com:443", "repo.magento.com"),
    ("http://127.0.0.1:8080/", "127.0.0.1:8080", "127.0.0.1:8080"),
    ("http://127.0.0.1:80/", "127.0.0.1:80", "127.0.0.1"),
    ("https://repo.magento.com:8443/p/", "repo.magento.com:8443", "repo.magento.com:8443"),
    ("http://[::1]:8080/", "[::1]:8080", "[::1]:8080"),
    ("https://user:pw@repo.magento.com/", "repo.magento.com", "repo.magento.com"),
])
def test_origin_and_canonical_host(url, origin, canonical):
    assert composer_origin(url) == origin
    assert host_key(url) == canonical


@pytest.mark.parametrize("url", ["ftp://repo.magento.com/", "https:///x", "https://h:99999/"])
def test_bad_repository_url_is_a_usage_error(url):
    with pytest.raises(UsageError):
        composer_origin(url)


@pytest.mark.parametrize("url, key, kind", [
    ("https://repo.magento.com/", "repo.magento.com", EXACT),
    ("https://repo.magento.com/", "REPO.Magento.com", LENIENT),
    ("https://repo.magento.com/", "repo.magento.com:443", LENIENT),
    ("https://repo.magento.com/", "repo.magento.com/", LENIENT),
    ("https://repo.magento.com/", "https://repo.magento.com/", URL_NAME),
    ("https://repo.magento.com/", "https://repo.magento.com:443/x", URL_NAME),
    ("https://repo.magento.com/", "http://repo.magento.com/", None),
    ("https://repo.magento.com/", "https://", None),
    ("https://repo.magento.com/", "https://repo.magento.com:99999/", None),
    ("http://[::1]:8080/", "[::1]:8080", EXACT),
    ("http://[::1]/", "[::1]:80", LENIENT),
    ("http://[::1]:8080/", "[::1]x8080", None),
    ("http://[::1]:8080/", "::1:8080", None),
    ("http://127.0.0.1:8080/", "127.0.0.1:8080", EXACT),
    ("http://127.0.0.1:8080/", "127.0.0.1:８０８０", None),
    ("https://repo.magento.com/", "magento.com", None),
])
def test_match_entry(url, key, kind):
    assert match_entry(key, parse_target(url)) == kind


def test_target_leaves_userinfo_out_and_registers_it():
    target = parse_target("  https://ann:hunter2-pw@Repo.Magento.com:8443  ")
    assert (target.scheme, target.host, target.port) == ("https", "repo.magento.com", 8443)
    assert target.origin == "Repo.Magento.com:8443" and target.had_userinfo
    assert target.url == "https://Repo.Magento.com:8443/" and "hunter2" not in repr(target)
    assert redact("x hunter2-pw") == "x ***"
    assert not parse_target("http://127.0.0.1/").had_userinfo
    assert parse_target("http://127.0.0.1/").port == 80


def test_bad_url_message_holds_no_password():
    with pytest.raises(UsageError) as info:
        parse_target("https://ann:s3cret-zz@/x")
    assert "s3cret-zz" not in str(info.value) and "no host name" in str(info.value)
