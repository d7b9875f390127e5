"""Unit tests for magedl.config: precedence, base URLs, files, redaction.

Every test passes ``env=`` and ``config_file=`` explicitly and points HOME,
XDG_CONFIG_HOME and NETRC at tmp_path, so the real user's files are never read.
"""

import io
import logging
import os
import sys

import pytest

from magedl import config
from magedl.config import (
    DEFAULT_BASE_URL,
    Credentials,
    RedactingFilter,
    Settings,
    netrc_credentials,
    read_config,
    read_token_file,
    redact,
    register_secret,
    resolve,
    split_userinfo,
)
from magedl.errors import ConfigError, UsageError

HOST = "www.magentocommerce.com"


def write_config(path, text, mode=0o600):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


def write_netrc(path, host, login, password):
    path.write_text(f"machine {host} login {login} password {password}\n", encoding="utf-8")
    os.chmod(path, 0o600)
    return path


@pytest.fixture
def all_sources(tmp_path):
    """A config file and a netrc that each give every field, distinctly."""
    cfg = write_config(
        tmp_path / "cfg" / "config",
        "[magedl]\nmageid = MAG000000003\ntoken = tok-config-333\nbase_url = https://cfg.example/dl\n",
    )
    rc = tmp_path / "netrc"
    # netrc entries for each host a test might resolve to.
    rc.write_text(
        "".join(
            f"machine {h} login MAG000000004 password tok-netrc-444\n"
            for h in ("cli.example", "env.example", "cfg.example", HOST)
        ),
        encoding="utf-8",
    )
    os.chmod(rc, 0o600)
    env = {
        "MAGEDL_MAGEID": "MAG000000002",
        "MAGEDL_TOKEN": "tok-env-222",
        "MAGEDL_BASE_URL": "https://env.example/dl",
        "NETRC": str(rc),
    }
    return env, cfg, rc


# -- precedence, field by field ------------------------------------------------


def test_cli_beats_everything(all_sources):
    env, cfg, _ = all_sources
    s = resolve(
        base_url="https://cli.example/dl", mageid="MAG000000001", token="tok-cli-111", env=env, config_file=cfg
    )
    assert s.base_url == "https://cli.example/dl/"
    assert s.credentials == Credentials("MAG000000001", "tok-cli-111")


def test_env_beats_config_and_netrc(all_sources):
    env, cfg, _ = all_sources
    s = resolve(env=env, config_file=cfg)
    assert s.base_url == "https://env.example/dl/"
    assert s.credentials == Credentials("MAG000000002", "tok-env-222")


def test_config_beats_netrc(all_sources):
    _, cfg, rc = all_sources
    s = resolve(env={"NETRC": str(rc)}, config_file=cfg)
    assert s.base_url == "https://cfg.example/dl/"
    assert s.credentials == Credentials("MAG000000003", "tok-config-333")


def test_netrc_last_and_default_base_url(all_sources, tmp_path):
    _, _, rc = all_sources
    s = resolve(env={"NETRC": str(rc)}, config_file=tmp_path / "absent")
    assert s.base_url == DEFAULT_BASE_URL
    assert s.credentials == Credentials("MAG000000004", "tok-netrc-444")


def test_no_sources_at_all(tmp_path):
    s = resolve(env={}, config_file=tmp_path / "absent")
    assert s == Settings(DEFAULT_BASE_URL, None)


@pytest.mark.parametrize(
    "kwargs, env_keys, expected",
    [
        # CLI mageid only: token falls through to env.
        ({"mageid": "MAG000000001"}, ("MAGEDL_TOKEN",), ("MAG000000001", "tok-env-222")),
        # CLI token only: mageid from env.
        ({"token": "tok-cli-111"}, ("MAGEDL_MAGEID",), ("MAG000000002", "tok-cli-111")),
        # env mageid only: token from config.
        ({}, ("MAGEDL_MAGEID",), ("MAG000000002", "tok-config-333")),
        # env token only: mageid from config.
        ({}, ("MAGEDL_TOKEN",), ("MAG000000003", "tok-env-222")),
    ],
)
def test_fields_are_resolved_independently(all_sources, kwargs, env_keys, expected):
    env, cfg, _ = all_sources
    env = {k: env[k] for k in env_keys}
    s = resolve(env=env, config_file=cfg, **kwargs)
    assert s.credentials == Credentials(*expected)
    assert s.base_url == "https://cfg.example/dl/"


def test_netrc_fills_only_the_missing_field(tmp_path):
    rc = write_netrc(tmp_path / "netrc", HOST, "MAG000000004", "tok-netrc-444")
    s = resolve(mageid="MAG000000001", env={"NETRC": str(rc)}, config_file=tmp_path / "absent")
    assert s.credentials == Credentials("MAG000000001", "tok-netrc-444")


def test_netrc_is_looked_up_for_the_base_url_host(tmp_path):
    rc = write_netrc(tmp_path / "netrc", "mirror.example", "MAG000000004", "tok-netrc-444")
    s = resolve(env={"NETRC": str(rc)}, config_file=tmp_path / "absent")  # default host: no entry
    assert s.credentials is None
    s = resolve(base_url="https://mirror.example/x", env={"NETRC": str(rc)}, config_file=tmp_path / "absent")
    assert s.credentials == Credentials("MAG000000004", "tok-netrc-444")


def test_use_netrc_false_skips_netrc(tmp_path):
    rc = write_netrc(tmp_path / "netrc", HOST, "MAG000000004", "tok-netrc-444")
    s = resolve(env={"NETRC": str(rc)}, config_file=tmp_path / "absent", use_netrc=False)
    assert s.credentials is None


def test_default_netrc_in_home_is_used(isolated_home, tmp_path):
    write_netrc(isolated_home / ".netrc", HOST, "MAG000000004", "tok-netrc-home")
    s = resolve(env={}, config_file=tmp_path / "absent")
    assert s.credentials == Credentials("MAG000000004", "tok-netrc-home")


def test_default_config_path_uses_xdg(tmp_path):
    xdg = tmp_path / "xdg"
    write_config(xdg / "magedl" / "config", "[magedl]\nmageid = MAG000000003\ntoken = tok-xdg-config\n")
    assert config.config_path({"XDG_CONFIG_HOME": str(xdg)}) == xdg / "magedl" / "config"
    s = resolve(env={"XDG_CONFIG_HOME": str(xdg)})
    assert s.credentials == Credentials("MAG000000003", "tok-xdg-config")


def test_config_path_falls_back_to_home(isolated_home):
    assert config.config_path({}) == isolated_home / ".config" / "magedl" / "config"


def test_values_are_stripped(tmp_path):
    s = resolve(env={"MAGEDL_MAGEID": " MAG000000002 ", "MAGEDL_TOKEN": "tok-env-222\n"}, config_file=tmp_path / "x")
    assert s.credentials == Credentials("MAG000000002", "tok-env-222")


def test_mageid_without_token_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve(mageid="MAG000000001", env={}, config_file=tmp_path / "absent")
    assert info.value.exit_code == 2
    assert "downloads token" in str(info.value)


def test_token_without_mageid_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve(token="tok-only-555", env={}, config_file=tmp_path / "absent")
    assert "MAGEID" in str(info.value)
    assert "tok-only-555" not in str(info.value)


def test_half_credentials_are_fine_for_a_file_mirror(tmp_path):
    s = resolve(base_url="file:///srv/mirror", mageid="MAG000000001", env={}, config_file=tmp_path / "absent")
    assert s.credentials is None
    assert s.base_url == "file:///srv/mirror/"


def test_ca_bundle_precedence(tmp_path):
    cfg = write_config(tmp_path / "config", "[magedl]\nca_bundle = /cfg/ca.pem\n")
    assert resolve(env={}, config_file=cfg).ca_bundle == "/cfg/ca.pem"
    assert resolve(env={"MAGEDL_CA_BUNDLE": "/env/ca.pem"}, config_file=cfg).ca_bundle == "/env/ca.pem"
    assert resolve(ca_bundle="/cli/ca.pem", env={"MAGEDL_CA_BUNDLE": "/env/ca.pem"}, config_file=cfg).ca_bundle == (
        "/cli/ca.pem"
    )


# -- base URLs ----------------------------------------------------------------------


def test_userinfo_is_split_out_and_stripped():
    url, user, token = split_userinfo("https://MAG000123456:tok-userinfo-1@www.example.com/products/downloads/")
    assert (url, user, token) == ("https://www.example.com/products/downloads/", "MAG000123456", "tok-userinfo-1")


def test_userinfo_is_percent_decoded():
    url, user, token = split_userinfo("https://MAG000123456:t%40k%3Aen@h.example/p")
    assert (url, user, token) == ("https://h.example/p/", "MAG000123456", "t@k:en")


def test_userinfo_from_cli_base_url_gives_credentials(tmp_path):
    s = resolve(base_url="https://MAG000123456:tok-userinfo-2@h.example/dl", env={}, config_file=tmp_path / "x")
    assert s.base_url == "https://h.example/dl/"
    assert s.credentials == Credentials("MAG000123456", "tok-userinfo-2")
    assert "tok-userinfo-2" not in s.base_url
    assert "@" not in s.base_url


def test_userinfo_from_env_base_url(tmp_path):
    s = resolve(env={"MAGEDL_BASE_URL": "https://MAG000123456:tok-userinfo-3@h.example/dl/"}, config_file=tmp_path / "x")
    assert s.base_url == "https://h.example/dl/"
    assert s.credentials == Credentials("MAG000123456", "tok-userinfo-3")


def test_userinfo_from_config_base_url(tmp_path):
    cfg = write_config(tmp_path / "config", "[magedl]\nbase_url = https://MAG000123456:tok-userinfo-4@h.example/\n")
    s = resolve(env={}, config_file=cfg)
    assert s.base_url == "https://h.example/"
    assert s.credentials == Credentials("MAG000123456", "tok-userinfo-4")


def test_explicit_options_beat_userinfo_of_the_same_url(tmp_path):
    s = resolve(
        base_url="https://MAG000123456:tok-userinfo-5@h.example/",
        mageid="MAG000000001",
        token="tok-cli-111",
        env={},
        config_file=tmp_path / "x",
    )
    assert s.credentials == Credentials("MAG000000001", "tok-cli-111")


def test_userinfo_token_is_registered_for_redaction():
    split_userinfo("https://MAG000123456:tok-userinfo-6@h.example/")
    assert redact("oops tok-userinfo-6 leaked") == "oops *** leaked"


@pytest.mark.parametrize(
    "given, expected",
    [
        ("https://h.example", "https://h.example/"),
        ("https://h.example/", "https://h.example/"),
        ("https://h.example/products/downloads", "https://h.example/products/downloads/"),
        ("HTTPS://H.Example/p/", "https://h.example/p/"),
        ("http://127.0.0.1:8080/x", "http://127.0.0.1:8080/x/"),
        ("http://[::1]:8080/x", "http://[::1]:8080/x/"),
        ("file:///srv/mirror", "file:///srv/mirror/"),
    ],
)
def test_base_url_normalised_to_end_with_slash(given, expected):
    assert split_userinfo(given)[0] == expected


@pytest.mark.parametrize("bad", ["ftp://h.example/", "javascript:alert(1)", "www.example.com/dl", "/srv/mirror"])
def test_bad_scheme_is_a_usage_error(bad):
    with pytest.raises(UsageError) as info:
        split_userinfo(bad)
    assert info.value.exit_code == 2


def test_bad_scheme_from_env_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError):
        resolve(env={"MAGEDL_BASE_URL": "ftp://h.example/"}, config_file=tmp_path / "x")


@pytest.mark.parametrize("bad", ["MAG000123456:tok-noscheme-7@h.example/dl", "ftp://MAG000123456:tok-noscheme-7@h/"])
def test_scheme_error_message_hides_userinfo(bad):
    with pytest.raises(UsageError) as info:
        split_userinfo(bad)
    assert "tok-noscheme-7" not in str(info.value)


@pytest.mark.parametrize(
    "bad", ["//MAG000123456:tok-noscheme-8@h.example/", "https//MAG000123456:tok-noscheme-8@h.example/"]
)
def test_schemeless_error_message_hides_userinfo(bad):
    with pytest.raises(UsageError) as info:
        split_userinfo(bad)
    assert "tok-noscheme-8" not in str(info.value)


@pytest.mark.parametrize("bad", ["https:/MAG000123456:tok-nohost-9@h.example/", "https:///dl/"])
def test_http_url_without_host_is_a_usage_error(bad):
    with pytest.raises(UsageError) as info:
        split_userinfo(bad)
    assert "tok-nohost-9" not in str(info.value)


@pytest.mark.parametrize("bad", ["https://h.example:abc/", "https://MAG000123456:tok-port-8@h.example:99999/"])
def test_bad_port_is_a_usage_error(bad):
    with pytest.raises(UsageError) as info:
        split_userinfo(bad)
    assert "tok-port-8" not in str(info.value)


def test_userinfo_stays_with_its_own_url(tmp_path):
    s = resolve(
        base_url="https://other.example/dl/",
        env={"MAGEDL_BASE_URL": "https://MAG000123456:tok-mirror-9@mirror.internal/dl/"},
        config_file=tmp_path / "x",
        use_netrc=False,
    )
    assert s.base_url == "https://other.example/dl/"
    assert s.credentials is None


# -- config file ----------------------------------------------------------------------


def test_read_config_absent_is_empty(tmp_path):
    assert read_config(tmp_path / "nope") == {}


def test_read_config_without_section_is_empty(tmp_path):
    cfg = write_config(tmp_path / "config", "[other]\ntoken = x-other-token\n")
    assert read_config(cfg) == {}


def test_read_config_reads_section(tmp_path):
    cfg = write_config(tmp_path / "config", "[magedl]\nmageid = MAG000000003\ntoken = tok-config-333\n")
    assert read_config(cfg) == {"mageid": "MAG000000003", "token": "tok-config-333"}


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o660, 0o644, 0o601])
def test_config_readable_by_others_is_refused(tmp_path, mode):
    cfg = write_config(tmp_path / "config", "[magedl]\ntoken = tok-perm-000\n", mode=mode)
    with pytest.raises(ConfigError) as info:
        read_config(cfg)
    msg = str(info.value)
    assert f"chmod 600 {cfg}" in msg
    assert "tok-perm-000" not in msg
    assert info.value.exit_code == 1


def test_config_permissions_checked_by_resolve(tmp_path):
    cfg = write_config(tmp_path / "config", "[magedl]\nmageid = MAG000000003\n", mode=0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        resolve(env={}, config_file=cfg)


@pytest.mark.parametrize(
    "text",
    [
        "token = tok-broken-AAAA1111\n",  # no section header
        "[magedl]\ntoken = ok\n  \x00\n[magedl\ntoken tok-broken-AAAA1111\n",
        "[magedl]\ntok-broken-AAAA1111\n",  # a bare line: ParsingError quotes it
        "[magedl]\ntoken = tok-broken-AAAA1111\ntoken = tok-broken-AAAA1111\n",  # duplicate option
    ],
)
def test_malformed_config_error_hides_token(tmp_path, text):
    cfg = write_config(tmp_path / "config", text)
    with pytest.raises(ConfigError) as info:
        read_config(cfg)
    assert "tok-broken-AAAA1111" not in str(info.value)
    assert "tok-broken-AAAA1111" not in repr(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_config_not_utf8_is_a_config_error(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_bytes(b"[magedl]\ntoken = \xff\xfe-tok-broken\n")
    os.chmod(cfg, 0o600)
    with pytest.raises(ConfigError):
        read_config(cfg)


# -- netrc ------------------------------------------------------------------------------


def test_netrc_credentials(tmp_path):
    rc = write_netrc(tmp_path / "netrc", "h.example", "MAG000000004", "tok-netrc-444")
    assert netrc_credentials("h.example", {"NETRC": str(rc)}) == ("MAG000000004", "tok-netrc-444")
    assert netrc_credentials("other.example", {"NETRC": str(rc)}) == (None, None)
    assert netrc_credentials(None, {"NETRC": str(rc)}) == (None, None)
    assert netrc_credentials("h.example", {"NETRC": str(tmp_path / "absent")}) == (None, None)


@pytest.mark.parametrize(
    "text",
    [
        "tok-netrc-BROKEN-1234 machine h.example\n",
        "machine h.example login MAG000000004 password tok-netrc-BROKEN-1234 tok-netrc-BROKEN-1234\n",
        "machine h.example login MAG000000004 password tok-netrc-BROKEN-1234\nmacdef x\nline",
    ],
)
def test_malformed_netrc_error_hides_token(tmp_path, text):
    rc = tmp_path / "netrc"
    rc.write_text(text, encoding="utf-8")
    os.chmod(rc, 0o600)
    with pytest.raises(ConfigError) as info:
        netrc_credentials("h.example", {"NETRC": str(rc)})
    assert "tok-netrc-BROKEN-1234" not in str(info.value)
    with pytest.raises(ConfigError) as info:
        resolve(base_url="https://h.example/", env={"NETRC": str(rc)}, config_file=tmp_path / "x")
    assert "tok-netrc-BROKEN-1234" not in str(info.value)


def test_netrc_not_read_when_credentials_complete(tmp_path):
    rc = tmp_path / "netrc"
    rc.write_text("garbage tok-netrc-unread\n", encoding="utf-8")  # would raise if parsed
    s = resolve(mageid="MAG000000001", token="tok-cli-111", env={"NETRC": str(rc)}, config_file=tmp_path / "x")
    assert s.credentials == Credentials("MAG000000001", "tok-cli-111")


# -- token file -------------------------------------------------------------------------


def test_token_file_read_and_stripped(tmp_path):
    f = tmp_path / "token"
    f.write_text("  tok-file-666\n\n", encoding="utf-8")
    assert read_token_file(f) == "tok-file-666"
    assert redact("x tok-file-666 y") == "x *** y"


def test_token_file_beats_env_token(tmp_path):
    f = tmp_path / "token"
    f.write_text("tok-file-666\n", encoding="utf-8")
    s = resolve(token_file=str(f), env={"MAGEDL_MAGEID": "MAG000000002", "MAGEDL_TOKEN": "tok-env-222"},
                config_file=tmp_path / "x")
    assert s.credentials == Credentials("MAG000000002", "tok-file-666")


@pytest.mark.parametrize("content, word", [("", "empty"), ("  \n\t\n", "empty"), ("tok one\n", "more than one word"),
                                           ("tok\ntwo\n", "more than one word")])
def test_bad_token_file_is_a_usage_error(tmp_path, content, word):
    f = tmp_path / "token"
    f.write_text(content, encoding="utf-8")
    with pytest.raises(UsageError) as info:
        read_token_file(f)
    assert word in str(info.value)
    assert info.value.exit_code == 2


def test_missing_token_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read token file"):
        read_token_file(tmp_path / "absent")


def test_binary_token_file_is_a_usage_error(tmp_path):
    f = tmp_path / "token"
    f.write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UsageError, match="not text"):
        read_token_file(f)


def test_token_file_dash_reads_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO("tok-stdin-777\nignored second line\n"))
    assert read_token_file("-") == "tok-stdin-777"


def test_token_file_dash_empty_stdin(monkeypatch):
    monkeypatch.setattr(sys, "stdin", io.StringIO(""))
    with pytest.raises(UsageError, match="empty"):
        read_token_file("-")


def test_token_file_with_bom(tmp_path):
    f = tmp_path / "token"
    f.write_bytes("\ufefftok-bom-888\r\n".encode("utf-8"))
    assert read_token_file(f) == "tok-bom-888"


# -- Credentials, redact, logging ---------------------------------------------------------


def test_credentials_repr_hides_token():
    c = Credentials("MAG000123456", "tok-repr-999")
    for text in (repr(c), str(c), f"{c}", repr(Settings("https://h/", c)), str([c])):
        assert "tok-repr-999" not in text
        assert "MAG000123456" in text
    assert c.token == "tok-repr-999"


def test_redact_masks_registered_secrets():
    register_secret("tok-redact-aaaa")
    register_secret("tok-redact-aaaa-longer")
    assert redact("a tok-redact-aaaa b") == "a *** b"
    # the longer secret is replaced whole, not leaving its tail
    assert redact("tok-redact-aaaa-longer!") == "***!"
    assert redact(ValueError("tok-redact-aaaa")) == "***"


def test_redact_ignores_tiny_and_empty_secrets():
    register_secret("")
    register_secret(None)
    register_secret("ab")
    assert redact("ab cd") == "ab cd"


@pytest.mark.parametrize(
    "text, expected",
    [
        ("GET https://MAG000123456:tok-x@h.example/p failed", "GET https://***@h.example/p failed"),
        ("see http://user@h/", "see http://***@h/"),
        ("no userinfo https://h.example/a@b", "no userinfo https://h.example/a@b"),
        ("mail me@example.com", "mail me@example.com"),
    ],
)
def test_redact_masks_url_userinfo(text, expected):
    assert redact(text) == expected


def test_redacting_filter_on_a_logger():
    register_secret("tok-log-bbbb")
    logger = logging.getLogger("magedl-test.redact")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record)

    handler = Keep()
    logger.addHandler(handler)
    logger.addFilter(RedactingFilter())
    logger.propagate = False
    logger.setLevel(logging.DEBUG)
    try:
        logger.warning("token %s at %s", "tok-log-bbbb", "https://MAG000123456:other@h.example/")
    finally:
        logger.removeHandler(handler)
    assert len(records) == 1
    assert records[0].getMessage() == "token *** at https://***@h.example/"
    assert records[0].args == ()


def test_redacting_filter_never_raises():
    logger = logging.getLogger("magedl-test.redact-bad")
    logger.addFilter(RedactingFilter())
    logger.addHandler(logging.NullHandler())
    logger.propagate = False
    logger.warning("%d files", "many")  # must not raise
