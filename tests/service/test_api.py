"""Unit tests for magedl.api: status mapping, retries, feed parsing, host-bound auth.

HTTP is faked with ``responses``; no real network. Retries never sleep for
real: tenacity's sleep is replaced by a recorder.
"""

import base64
import email.utils
import json
import time

import pytest
import requests
import responses
import urllib3
from requests.structures import CaseInsensitiveDict

from magedl.config import Credentials, Settings
from magedl.errors import (
    AuthError,
    EntitlementError,
    FeedError,
    MagedlError,
    NetworkError,
    NotFoundError,
    TransientError,
)
from magedl.secrecy import register_secret
from magedl.service import api
from magedl.service.api import Client, HostBoundAuth, check_status
from magedl.service.neterrors import transient_from
from magedl.service.retry import RetryPolicy

BASE = "https://api.example/products/downloads/"
MAGEID = "MAG000123456"
TOKEN = "0123456789abcdef0123456789abcdef01234567"
BASIC = "Basic " + base64.b64encode(f"{MAGEID}:{TOKEN}".encode()).decode()
register_secret(TOKEN)


@pytest.fixture
def client(sleeps):
    c = Client(Settings(BASE, Credentials(MAGEID, TOKEN)), retry=RetryPolicy(attempts=3, backoff=0))
    yield c
    c.close()


def fake_response(status, reason="", headers=None):
    r = requests.Response()
    r.status_code = status
    r.reason = reason
    r.headers = CaseInsensitiveDict(headers or {})
    return r


FEED = {
    "ce-full": {
        "2.4.7": [{"name": "Magento Open Source 2.4.7", "file_name": "Magento-CE-2.4.7.tar.gz", "md5": "a" * 32}]
    }
}

TABLE = (
    "File Description  File Type  Md5 Hash  Publication Date  Version  File Name\n"
    "--------------------------------------------------------------------------------\n"
    "Magento CE 2.4.6  ce-full  " + "b" * 32 + "  2023-03-14 10:00:00  2.4.6  Magento-CE-2.4.6.tar.gz\n"
)


# -- check_status ------------------------------------------------------------------


@pytest.mark.parametrize("status", [200, 204, 206, 301, 304])
def test_check_status_passes_success(status):
    r = fake_response(status)
    assert check_status(r, "info/json") is r


def test_401_is_auth_error():
    with pytest.raises(AuthError) as info:
        check_status(fake_response(401, "Unauthorized"), "info/json")
    assert type(info.value) is AuthError
    assert info.value.exit_code == 3
    assert "Downloads Access Token" in str(info.value)
    assert "HTTP 401" in str(info.value)
    assert str(info.value).startswith("info/json: ")


def test_403_is_entitlement_error():
    with pytest.raises(EntitlementError) as info:
        check_status(fake_response(403, "Forbidden"), "file/x.zip")
    assert info.value.exit_code == 4
    msg = str(info.value)
    assert "HTTP 403" in msg
    assert "entitlement" in msg
    assert "listed does not mean it may be downloaded" in msg


def test_404_is_not_found():
    with pytest.raises(NotFoundError) as info:
        check_status(fake_response(404, "Not Found"), "file/x.zip")
    assert type(info.value) is NotFoundError
    assert info.value.exit_code == 5
    assert "HTTP 404" in str(info.value)


@pytest.mark.parametrize("status", [408, 429, 500, 502, 503, 504, 599])
def test_transient_statuses(status):
    with pytest.raises(TransientError) as info:
        check_status(fake_response(status, "Busy"), "info/json")
    assert info.value.exit_code == 7
    assert info.value.retry_after is None
    assert f"HTTP {status} Busy" in str(info.value)


def test_retry_after_seconds():
    with pytest.raises(TransientError) as info:
        check_status(fake_response(429, "Too Many Requests", {"Retry-After": "17"}), "info/json")
    assert info.value.retry_after == 17.0


def test_retry_after_http_date():
    when = email.utils.formatdate(time.time() + 120, usegmt=True)
    with pytest.raises(TransientError) as info:
        check_status(fake_response(503, "Service Unavailable", {"Retry-After": when}), "info/json")
    assert 115 <= info.value.retry_after <= 121


def test_retry_after_garbage_is_none():
    with pytest.raises(TransientError) as info:
        check_status(fake_response(503, "", {"Retry-After": "soon"}), "info/json")
    assert info.value.retry_after is None
    assert str(info.value) == "info/json: HTTP 503"


@pytest.mark.parametrize("status", [400, 405, 410, 418, 451])
def test_other_4xx_is_plain_error(status):
    with pytest.raises(MagedlError) as info:
        check_status(fake_response(status, "Nope"), "info/json")
    assert type(info.value) is MagedlError
    assert info.value.exit_code == 1
    assert f"HTTP {status}" in str(info.value)


# -- transient_from -------------------------------------------------------------


@pytest.mark.parametrize(
    "exc, kind",
    [
        (requests.exceptions.ConnectTimeout(), TransientError),
        (requests.exceptions.ReadTimeout(), TransientError),
        (requests.exceptions.ConnectionError(), TransientError),
        (requests.exceptions.ChunkedEncodingError(), TransientError),
        (requests.exceptions.ContentDecodingError(), TransientError),
        (requests.exceptions.SSLError(), NetworkError),
    ],
)
def test_transient_from(exc, kind):
    err = transient_from(exc, "info/json")
    assert type(err) is kind
    assert str(err).startswith("info/json: ")


@pytest.mark.parametrize(
    "exc",
    [requests.exceptions.InvalidURL(), requests.exceptions.MissingSchema(), requests.exceptions.InvalidHeader()],
    ids=["InvalidURL", "MissingSchema", "InvalidHeader"],
)
def test_transient_from_final_request_errors(exc):
    err = transient_from(exc, "info/json")
    assert type(err) is NetworkError
    assert type(exc).__name__ in str(err)


def test_too_many_redirects_is_final_and_says_so_in_words():
    err = transient_from(requests.exceptions.TooManyRedirects(), "info/json", "https://a.example/x/")
    assert type(err) is NetworkError
    assert "too many redirects from a.example" in str(err) and "redirect loop" in str(err)


@pytest.mark.parametrize(
    "exc",
    [urllib3.exceptions.ProtocolError("cut"), urllib3.exceptions.ReadTimeoutError(None, "/", "slow"), OSError("reset")],
)
def test_transient_from_low_level_errors(exc):
    assert type(transient_from(exc, "x")) is TransientError


def test_ssl_error_mentions_ca_bundle():
    assert "--ca-bundle" in str(transient_from(requests.exceptions.SSLError(), "x"))


# -- get_text and retries ---------------------------------------------------------


@responses.activate
def test_get_text_ok(client, sleeps):
    responses.add(responses.GET, BASE + "info/help", body="usage text", content_type="text/plain; charset=utf-8")
    assert client.get_text("info/help") == "usage text"
    assert len(responses.calls) == 1
    assert responses.calls[0].request.headers["Accept-Encoding"] == "identity"
    assert responses.calls[0].request.headers["User-Agent"].startswith("magedl/")
    assert sleeps == []


@responses.activate
def test_get_text_retries_503_then_succeeds(client, sleeps):
    responses.add(responses.GET, BASE + "info/json", status=503)
    responses.add(responses.GET, BASE + "info/json", status=503)
    responses.add(responses.GET, BASE + "info/json", body="{}", content_type="application/json")
    assert client.get_text("info/json") == "{}"
    assert len(responses.calls) == 3
    assert len(sleeps) == 2


@responses.activate
def test_get_text_honours_retry_after(client, sleeps):
    responses.add(responses.GET, BASE + "info/json", status=429, headers={"Retry-After": "3"})
    responses.add(responses.GET, BASE + "info/json", body="{}")
    assert client.get_text("info/json") == "{}"
    assert sleeps == [3.0]


@responses.activate
def test_get_text_retries_connection_errors(client, sleeps):
    responses.add(responses.GET, BASE + "info/json", body=requests.exceptions.ConnectionError("cut"))
    responses.add(responses.GET, BASE + "info/json", body="{}")
    assert client.get_text("info/json") == "{}"
    assert len(responses.calls) == 2


@pytest.mark.parametrize("status, kind", [(401, AuthError), (403, EntitlementError), (404, NotFoundError)])
@responses.activate
def test_get_text_never_retries_final_errors(client, sleeps, status, kind):
    responses.add(responses.GET, BASE + "info/json", status=status)
    with pytest.raises(kind):
        client.get_text("info/json")
    assert len(responses.calls) == 1
    assert sleeps == []


@responses.activate
def test_get_text_gives_network_error_after_budget(client, sleeps):
    responses.add(responses.GET, BASE + "info/json", status=503)
    with pytest.raises(NetworkError) as info:
        client.get_text("info/json")
    assert type(info.value) is NetworkError
    assert info.value.exit_code == 7
    assert len(responses.calls) == 3
    assert len(sleeps) == 2
    assert "HTTP 503" in str(info.value)
    assert "gave up after 3 attempts" in str(info.value)


@responses.activate
def test_connection_errors_give_network_error_after_budget(client, sleeps):
    responses.add(responses.GET, BASE + "info/json", body=requests.exceptions.ConnectionError("cut"))
    with pytest.raises(NetworkError):
        client.get_text("info/json")
    assert len(responses.calls) == 3


@responses.activate
def test_get_text_decodes_declared_charset(client):
    responses.add(
        responses.GET, BASE + "info/help", body="caf\xe9".encode("latin-1"), content_type="text/plain; charset=latin-1"
    )
    assert client.get_text("info/help") == "caf\xe9"


@responses.activate
def test_get_text_defaults_to_utf8(client):
    responses.add(responses.GET, BASE + "info/json", body="Magento \u2013 2.4.7".encode(), content_type="text/plain")
    assert client.get_text("info/json") == "Magento \u2013 2.4.7"


# -- feed, catalog, versions ----------------------------------------------------------


@responses.activate
def test_feed_decodes_json(client):
    responses.add(responses.GET, BASE + "info/json", json=FEED)
    assert client.feed() == FEED


@responses.activate
def test_the_catalogue_decodes_each_plain_entry_compact_not_as_a_dict(client, monkeypatch):
    """Client.catalog decodes info/json with feedjson.feed_decoder: a plain entry never becomes a dict (a feed of
    100,000 held a dict per entry until its records were made; docs/scale.md)."""
    from magedl.service import feedjson

    made = []
    real = feedjson.feed_decoder

    def counting():
        hook = real()
        return lambda pairs: made.append(hook(pairs)) or made[-1]

    monkeypatch.setattr(feedjson, "feed_decoder", counting)
    plain = [{"name": f"n{i}", "file_name": f"f{i}.zip", "md5": "0" * 32} for i in range(20)]
    responses.add(responses.GET, BASE + "info/json", json={"ce-full": {"2.4.7": plain + [{**plain[0], "date": "x"}]}})
    records = client.catalog()
    assert [r.file_name for r in records] == [e["file_name"] for e in plain]
    assert sum(type(v) is feedjson.CompactEntry for v in made) == 20
    assert [v for v in made if type(v) is dict] == [{**plain[0], "date": "x"}, {"2.4.7": [None] * 21},
                                                    {"ce-full": {"2.4.7": [None] * 21}}]  # consumed as read


@pytest.mark.parametrize("body", ["Invalid login or password", "Invalid login or password.\n",
                                  "<html><body>Please log in</body></html>"])
@responses.activate
def test_feed_credentials_text_with_200_is_auth_error(sleeps, body):
    """The real service answers bad credentials with a login text and status 200: the token advice applies."""
    from magedl.config import DEFAULT_BASE_URL

    responses.add(responses.GET, DEFAULT_BASE_URL + "info/json", body=body, status=200, content_type="text/html")
    with Client(Settings(DEFAULT_BASE_URL, Credentials(MAGEID, TOKEN)), retry=RetryPolicy(attempts=1)) as c:
        with pytest.raises(AuthError) as info:
            c.feed()
    assert info.value.exit_code == 3
    assert "Downloads Access Token" in str(info.value)
    assert "a login page instead of data" in str(info.value) and "HTTP 401" not in str(info.value)


@responses.activate
def test_feed_credentials_text_from_a_mirror_points_at_its_auth_file(client):
    responses.add(responses.GET, BASE + "info/json", body="Invalid login or password", status=200)
    with pytest.raises(AuthError) as info:
        client.feed()
    assert "--auth-file" in str(info.value) and "generate a new one" not in str(info.value)


@pytest.mark.parametrize("body", ["<html><body><h1>Maintenance</h1></body></html>", "", "{truncated", "\x00\x01binary"])
@responses.activate
def test_feed_other_non_json_is_feed_error(client, body):
    responses.add(responses.GET, BASE + "info/json", body=body, status=200)
    with pytest.raises(FeedError) as info:
        client.feed()
    assert type(info.value) is FeedError
    assert info.value.exit_code == 1
    assert "\n" not in str(info.value)


@responses.activate
def test_feed_tolerates_bom(client):
    responses.add(responses.GET, BASE + "info/json", body=b"\xef\xbb\xbf" + json.dumps(FEED).encode(),
                  content_type="application/json")
    assert client.feed() == FEED


@responses.activate
def test_catalog_from_json(client):
    responses.add(responses.GET, BASE + "info/json", json=FEED)
    releases = client.catalog()
    assert [(r.file_name, r.version, r.type) for r in releases] == [("Magento-CE-2.4.7.tar.gz", "2.4.7", "ce-full")]
    assert [c.request.url for c in responses.calls] == [BASE + "info/json"]


@responses.activate
def test_catalog_falls_back_to_text_table_on_404(client):
    responses.add(responses.GET, BASE + "info/json", status=404)
    responses.add(responses.GET, BASE + "info/files", body=TABLE, content_type="text/plain")
    releases = client.catalog()
    assert [(r.file_name, r.version, r.type, r.md5) for r in releases] == [
        ("Magento-CE-2.4.6.tar.gz", "2.4.6", "ce-full", "b" * 32)
    ]
    assert [c.request.url for c in responses.calls] == [BASE + "info/json", BASE + "info/files"]


@responses.activate
def test_catalog_falls_back_on_unparsable_json(client):
    responses.add(responses.GET, BASE + "info/json", body="<html>oops</html>")
    responses.add(responses.GET, BASE + "info/files", body=TABLE)
    assert [r.file_name for r in client.catalog()] == ["Magento-CE-2.4.6.tar.gz"]


@responses.activate
def test_catalog_reraises_json_error_when_both_fail(client):
    responses.add(responses.GET, BASE + "info/json", status=404)
    responses.add(responses.GET, BASE + "info/files", status=404)
    with pytest.raises(NotFoundError) as info:
        client.catalog()
    assert "info/json" in str(info.value)


@pytest.mark.parametrize("status, kind", [(401, AuthError), (403, EntitlementError)])
@responses.activate
def test_catalog_does_not_fall_back_on_auth_errors(client, status, kind):
    responses.add(responses.GET, BASE + "info/json", status=status)
    responses.add(responses.GET, BASE + "info/files", body=TABLE)
    with pytest.raises(kind):
        client.catalog()
    assert [c.request.url for c in responses.calls] == [BASE + "info/json"]


@responses.activate
def test_versions(client):
    body = "CE Versions\n-----------\n2.4.6\n2.4.7\n\nEE Versions\n-----------\n2.4.7\n"
    responses.add(responses.GET, BASE + "info/versions", body=body)
    got = client.versions()
    assert set(got) >= {"CE", "EE"}
    assert "2.4.7" in got["CE"] and "2.4.6" in got["CE"]


@responses.activate
def test_versions_auth_text_is_auth_error(client):
    responses.add(responses.GET, BASE + "info/versions", body="Invalid login or password")
    with pytest.raises(AuthError):
        client.versions()


# -- URLs ---------------------------------------------------------------------------


def test_url_and_file_url(client):
    assert client.url("info/json") == BASE + "info/json"
    assert client.file_url("Magento-CE-2.4.7.tar.gz") == BASE + "file/Magento-CE-2.4.7.tar.gz"
    assert client.file_url("Magento CE 2.4.7.tar.gz") == BASE + "file/Magento%20CE%202.4.7.tar.gz"
    assert client.file_url("sub/dir/a b.zip") == BASE + "file/sub/dir/a%20b.zip"
    assert client.file_url("a#b?c.zip") == BASE + "file/a%23b%3Fc.zip"


# -- host-bound credentials -------------------------------------------------------------


def test_host_bound_auth_repr_hides_token():
    auth = HostBoundAuth(Credentials(MAGEID, TOKEN), BASE)
    assert TOKEN not in repr(auth)


@responses.activate
def test_auth_sent_to_base_host(client):
    responses.add(responses.GET, BASE + "info/help", body="ok")
    client.get_text("info/help")
    assert responses.calls[0].request.headers["Authorization"] == BASIC


@pytest.mark.parametrize(
    "url",
    [
        "https://other.example/products/downloads/info/json",
        "https://api.example.evil.test/products/downloads/info/json",
        "https://api.example:8443/products/downloads/info/json",
        "http://api.example/products/downloads/info/json",
    ],
)
@responses.activate
def test_auth_not_sent_to_other_origin(client, url):
    responses.add(responses.GET, url, body="ok")
    client.session.get(url)
    assert "Authorization" not in responses.calls[0].request.headers


@responses.activate
def test_auth_sent_to_base_host_with_explicit_default_port(client):
    url = "https://API.example:443/products/downloads/info/json"
    responses.add(responses.GET, url, body="ok")
    client.session.get(url)
    assert responses.calls[0].request.headers["Authorization"] == BASIC


@responses.activate
def test_auth_not_sent_after_redirect_to_other_host(client):
    responses.add(
        responses.GET, BASE + "file/x.tar.gz", status=302, headers={"Location": "https://cdn.example/x.tar.gz?sig=1"}
    )
    responses.add(responses.GET, "https://cdn.example/x.tar.gz", body=b"\x1f\x8b data")
    r = client.open(client.file_url("x.tar.gz"), "x.tar.gz")
    try:
        assert r.content == b"\x1f\x8b data"
    finally:
        r.close()
    assert len(responses.calls) == 2
    assert responses.calls[0].request.headers["Authorization"] == BASIC
    assert responses.calls[1].request.url.startswith("https://cdn.example/")
    assert "Authorization" not in responses.calls[1].request.headers


@responses.activate
def test_auth_kept_on_same_host_redirect(client):
    responses.add(responses.GET, BASE + "file/a.zip", status=302, headers={"Location": BASE + "file/b.zip"})
    responses.add(responses.GET, BASE + "file/b.zip", body=b"PK\x03\x04")
    r = client.open(client.file_url("a.zip"), "a.zip")
    r.close()
    assert responses.calls[1].request.headers["Authorization"] == BASIC


@responses.activate
def test_no_credentials_no_auth(sleeps):
    with Client(Settings(BASE, None), retry=RetryPolicy(attempts=1, backoff=0)) as c:
        responses.add(responses.GET, BASE + "info/help", body="ok")
        c.get_text("info/help")
    assert "Authorization" not in responses.calls[0].request.headers


# -- file:// base URLs --------------------------------------------------------------------


def test_file_base_url_reads_a_mirror_folder(tmp_path):
    (tmp_path / "info").mkdir()
    (tmp_path / "info" / "json").write_text(json.dumps(FEED), encoding="utf-8")
    with Client(Settings(tmp_path.as_uri() + "/", None), retry=RetryPolicy(attempts=1, backoff=0)) as c:
        assert c.feed() == FEED
        with pytest.raises(NotFoundError):
            c.get_text("info/files")


# -- the token never appears in an exception ------------------------------------------------


def _error_paths():
    for status in (400, 401, 403, 404, 408, 410, 429, 500, 503):
        yield f"status {status}", dict(status=status, headers={"Retry-After": "0"}), "get_text"
    yield "auth text", dict(body="Invalid login or password"), "feed"
    yield "html", dict(body="<html><body>down</body></html>"), "feed"
    yield "versions garbage", dict(body="<html>nope</html>"), "versions"
    cut = requests.exceptions.ConnectionError(f"https://{MAGEID}:{TOKEN}@api.example/ cut")
    yield "conn", dict(body=cut), "get_text"
    yield "ssl", dict(body=requests.exceptions.SSLError(f"bad cert for {TOKEN}")), "get_text"
    yield "timeout", dict(body=requests.exceptions.ReadTimeout(TOKEN)), "get_text"
    yield "other", dict(body=requests.exceptions.InvalidHeader(TOKEN)), "get_text"
    yield "redirects", dict(body=requests.exceptions.TooManyRedirects(TOKEN)), "get_text"


@pytest.mark.parametrize("label, kwargs, method", list(_error_paths()), ids=[p[0] for p in _error_paths()])
@responses.activate
def test_token_never_in_exception_messages(client, label, kwargs, method):
    path = {"get_text": "info/json", "feed": "info/json", "versions": "info/versions"}[method]
    responses.add(responses.GET, BASE + path, **kwargs)
    with pytest.raises(MagedlError) as info:
        if method == "get_text":
            client.get_text(path)
        else:
            getattr(client, method)()
    for text in (str(info.value), repr(info.value), str(info.value.args)):
        assert TOKEN not in text
        assert BASIC.split()[1] not in text
    assert info.value.__cause__ is None


@responses.activate
def test_token_echoed_in_body_is_not_in_exception(client):
    responses.add(responses.GET, BASE + "info/json", body=f"Bad token {TOKEN}")
    with pytest.raises(AuthError) as info:
        client.feed()
    assert TOKEN not in str(info.value)


def test_module_exports():
    assert api.TOKEN_HELP and "Downloads Access Token" in api.TOKEN_HELP
