"""Unit tests for magedl.config: precedence, base URLs, files, redaction.

Every test passes ``env=`` and ``config_file=`` explicitly and points HOME,
XDG_CONFIG_HOME and NETRC at tmp_path, so the real user's files are never read.
"""

import io
import logging
import os
import sys

import pytest

from magedl import config, secrecy
from magedl.config import DEFAULT_BASE_URL, Credentials, Settings, read_config, resolve, split_userinfo
from magedl.errors import ConfigError, UsageError
from magedl.secrecy import RedactingFilter, netrc_credentials, read_token_file, redact, register_secret

HOST = "www.magentocommerce.com"


def write_token(path, text, mode=0o600):
    """A token file as the secret-file rule wants it (mode 600)."""
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    os.chmod(path, mode)
    return path


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
def logged():
    """Every record the ``magedl`` loggers emit during the test, whatever a CLI run before set up.

    ``caplog`` sees nothing once the command line has set ``propagate = False`` on ``magedl``, and
    text other tests registered as secrets would be masked by the console handler's redaction.
    """
    logger = logging.getLogger("magedl")
    records = []

    class Keep(logging.Handler):
        def emit(self, record):
            records.append(record.getMessage())

    handler, level = Keep(level=1), logger.level
    logger.handlers.insert(0, handler)  # before the console handler, whose redaction rewrites the record
    logger.setLevel(1)

    class Text:
        @property
        def text(self):
            return "\n".join(records)

    yield Text()
    logger.removeHandler(handler)
    logger.setLevel(level)


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
    bundles = {}
    for name in ("cli", "env", "cfg", "requests", "curl", "ssl"):
        bundles[name] = tmp_path / f"{name}.pem"
        bundles[name].write_text("not checked here")
    cfg = write_config(tmp_path / "config", f"[magedl]\nca_bundle = {bundles['cfg']}\n")
    env = {"REQUESTS_CA_BUNDLE": str(bundles["requests"]), "CURL_CA_BUNDLE": str(bundles["curl"]),
           "SSL_CERT_FILE": str(bundles["ssl"])}
    assert resolve(env={}, config_file=cfg).ca_bundle == str(bundles["cfg"])
    assert resolve(env={"MAGEDL_CA_BUNDLE": str(bundles["env"])}, config_file=cfg).ca_bundle == str(bundles["env"])
    assert resolve(ca_bundle=str(bundles["cli"]), env={"MAGEDL_CA_BUNDLE": str(bundles["env"])},
                   config_file=cfg).ca_bundle == str(bundles["cli"])
    # The standard variables come after magedl's own sources, in the order requests and curl read them.
    s = resolve(env=env, config_file=tmp_path / "absent")
    assert (s.ca_bundle, s.sources.ca_bundle) == (str(bundles["requests"]), "REQUESTS_CA_BUNDLE")
    del env["REQUESTS_CA_BUNDLE"]
    assert resolve(env=env, config_file=tmp_path / "absent").ca_bundle == str(bundles["curl"])
    del env["CURL_CA_BUNDLE"]
    assert resolve(env=env, config_file=tmp_path / "absent").ca_bundle == str(bundles["ssl"])
    assert resolve(env={"SSL_CERT_DIR": str(tmp_path)}, config_file=tmp_path / "absent").ca_bundle == str(tmp_path)


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
    s = resolve(env={"MAGEDL_BASE_URL": "https://MAG000123456:tok-userinfo-3@h.example/dl/"},
                config_file=tmp_path / "x")
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
        pytest.param("machine h.example login MAG000000004 password tok-netrc-BROKEN-1234\nmacdef x\nline",
                     marks=pytest.mark.skipif(sys.version_info < (3, 11),
                                              reason="netrc before Python 3.11 accepts a macdef without its blank "
                                                     "line, so this file is not malformed there")),
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
    f = write_token(tmp_path / "token", "  tok-file-666\n\n")
    assert read_token_file(f) == "tok-file-666"
    assert redact("x tok-file-666 y") == "x *** y"


def test_token_file_beats_env_token(tmp_path):
    f = write_token(tmp_path / "token", "tok-file-666\n")
    s = resolve(token_file=str(f), env={"MAGEDL_MAGEID": "MAG000000002", "MAGEDL_TOKEN": "tok-env-222"},
                config_file=tmp_path / "x")
    assert s.credentials == Credentials("MAG000000002", "tok-file-666")


@pytest.mark.parametrize("content, word", [("", "empty"), ("  \n\t\n", "empty"), ("tok one\n", "more than one word"),
                                           ("tok\ntwo\n", "more than one word")])
def test_bad_token_file_is_a_usage_error(tmp_path, content, word):
    f = write_token(tmp_path / "token", content)
    with pytest.raises(UsageError) as info:
        read_token_file(f)
    assert word in str(info.value)
    assert info.value.exit_code == 2


def test_missing_token_file_is_a_usage_error(tmp_path):
    with pytest.raises(UsageError, match="cannot read token file"):
        read_token_file(tmp_path / "absent")


def test_binary_token_file_is_a_usage_error(tmp_path):
    f = write_token(tmp_path / "token", b"\xff\xfe\x00")
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
    f = write_token(tmp_path / "token", "\ufefftok-bom-888\r\n".encode("utf-8"))
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


# -- one rule for every file that holds a secret ------------------------------------------------


@pytest.mark.parametrize("mode", [0o640, 0o604, 0o620, 0o644, 0o601, 0o660])
@pytest.mark.parametrize("kind", ["config file", "token file", "netrc file", "auth file"])
def test_every_secret_file_open_to_others_is_refused(tmp_path, kind, mode):
    """ssh's rule, for each kind: any group or other permission bit refuses the file, naming it and the fix."""
    path = tmp_path / kind.replace(" ", "-")
    path.write_text({"config file": "[magedl]\ntoken = tok-perm-rule-1\n",
                     "netrc file": f"machine {HOST} login MAG000000004 password tok-perm-rule-1\n"}
                    .get(kind, "tok-perm-rule-1\n"))
    os.chmod(path, mode)
    with pytest.raises(ConfigError) as info:
        if kind == "config file":
            resolve(env={}, config_file=path)
        elif kind == "token file":
            resolve(mageid="MAG000000001", token_file=str(path), env={}, config_file=tmp_path / "absent")
        elif kind == "netrc file":
            resolve(env={"NETRC": str(path)}, config_file=tmp_path / "absent")
        else:
            secrecy.read_secret_file(path, "auth file")
    msg = str(info.value)
    assert kind in msg and f"mode {mode:04o}" in msg and f"chmod 600 {path}" in msg
    assert "tok-perm-rule-1" not in msg and info.value.exit_code == 1
    os.chmod(path, 0o600)
    if kind == "auth file":
        assert secrecy.read_secret_file(path, "auth file") == "tok-perm-rule-1\n"


def test_secret_file_pipes_are_not_mode_checked(tmp_path):
    """``--token-file <(pass show magento)``: a pipe's mode says nothing about who saw the token."""
    read_fd, write_fd = os.pipe()
    os.write(write_fd, b"tok-from-a-pipe-1\n")
    os.close(write_fd)
    try:
        assert read_token_file(f"/dev/fd/{read_fd}") == "tok-from-a-pipe-1"
    finally:
        os.close(read_fd)


@pytest.mark.parametrize("what", ["a folder", "too big"])
def test_secret_file_that_is_a_folder_or_huge(tmp_path, what):
    path = tmp_path / "token"
    if what == "a folder":
        path.mkdir()
    else:
        write_token(path, "x" * (secrecy.SECRET_FILE_LIMIT + 1))
    with pytest.raises(UsageError) as info:
        read_token_file(path)
    assert str(path) in str(info.value) and ("folder" in str(info.value) or "larger" in str(info.value))


def test_token_with_a_non_ascii_character_is_refused_without_showing_it(tmp_path):
    token = "0123456789ab\u2019cdef0123456789abcdef012345"
    f = write_token(tmp_path / "token", token + "\n")
    with pytest.raises(UsageError) as info:
        resolve(mageid="MAG000000001", token_file=str(f), env={}, config_file=tmp_path / "absent")
    msg = str(info.value)
    assert f"non-ASCII character (character 13 of {len(token)})" in msg and str(f) in msg
    for piece in ("0123456789ab", "\u2019", "cdef0123"):
        assert piece not in msg


@pytest.mark.parametrize("source", ["env", "config"])
def test_token_with_a_control_character_names_its_source(tmp_path, source):
    token = "tok-ctrl-\x07-1234"
    cfg = write_config(tmp_path / "config", f"[magedl]\nmageid = MAG000000003\ntoken = {token}\n")
    env = {"MAGEDL_MAGEID": "MAG000000002", "MAGEDL_TOKEN": token} if source == "env" else {}
    with pytest.raises(UsageError) as info:
        resolve(env=env, config_file=cfg)
    assert "control character" in str(info.value)
    assert ("MAGEDL_TOKEN" if source == "env" else str(cfg)) in str(info.value)
    assert "tok-ctrl" not in str(info.value)


# -- netrc: only the entry for the host ---------------------------------------------------------


def test_netrc_default_entry_is_never_used(tmp_path, logged):
    rc = tmp_path / "netrc"
    rc.write_text("default login MAG000000009 password tok-netrc-default-1\n")
    os.chmod(rc, 0o600)
    s = resolve(base_url="https://any.example/", env={"NETRC": str(rc)}, config_file=tmp_path / "absent")
    assert s.credentials is None
    assert netrc_credentials("any.example", {"NETRC": str(rc)}) == (None, None)
    assert "'default' entry is never used" in logged.text and "tok-netrc-default-1" not in logged.text
    assert "no 'machine any.example' entry" in s.sources.netrc


def test_netrc_machine_entry_wins_over_default_and_is_named(tmp_path, logged):
    rc = tmp_path / "netrc"
    rc.write_text("default login MAG000000009 password tok-netrc-default-2\n"
                  "machine h.example login MAG000000004 password tok-netrc-machine-2\n")
    os.chmod(rc, 0o600)
    s = resolve(base_url="https://h.example/", env={"NETRC": str(rc)}, config_file=tmp_path / "absent")
    assert s.credentials == Credentials("MAG000000004", "tok-netrc-machine-2")
    assert s.sources.mageid == s.sources.token == f"{rc} (machine h.example)"
    assert f"{rc}, 'machine h.example' entry" in logged.text
    assert redact("tok-netrc-default-2") == "***"  # every password in the file is a secret


# -- config file mistakes -------------------------------------------------------------------------


@pytest.mark.parametrize("text, line, words", [
    ("token = tok-broken-line-1\n", 1, "before any section"),
    ("[magedl]\nmageid = MAG000000003\ntok-broken-line-1\n", 3, "not a 'name = value' line"),
    ("[magedl]\ntoken = tok-broken-line-1\nmageid = x\ntoken = tok-broken-line-1\n", 4, "token is set twice"),
    ("[magedl]\nmageid = x\n[magedl]\n", 3, "appears twice"),
])
def test_config_parse_error_names_file_and_line(tmp_path, text, line, words):
    cfg = write_config(tmp_path / "config", text)
    with pytest.raises(ConfigError) as info:
        resolve(env={}, config_file=cfg)
    msg = str(info.value)
    assert f"config file {cfg}, line {line}:" in msg and words in msg
    assert "Error" not in msg and "tok-broken-line-1" not in msg


def test_config_not_utf8_names_the_line(tmp_path):
    cfg = tmp_path / "config"
    cfg.write_bytes(b"[magedl]\nmageid = MAG000000003\ntoken = \xff\xfe-tok\n")
    os.chmod(cfg, 0o600)
    with pytest.raises(ConfigError, match=r"not text \(not UTF-8 at line 3\)"):
        read_config(cfg)


@pytest.mark.parametrize("section", ["default", "DEFAULT", "Magedl", "magedl.com"])
def test_config_with_the_wrong_section_is_named(tmp_path, section, logged):
    cfg = write_config(tmp_path / "config", f"[{section}]\nmageid = MAG000000003\ntoken = tok-section-1\n")
    s = resolve(env={}, config_file=cfg, use_netrc=False)
    assert s.credentials is None
    note = f"config file {cfg} has no [magedl] section, so the settings under [{section}] are ignored"
    assert note in logged.text and any(note in n for n in s.sources.notes)
    assert "tok-section-1" not in logged.text


@pytest.mark.parametrize("quote", ['"', "'"])
def test_quoted_config_values_lose_their_quotes_with_a_warning(tmp_path, quote, logged):
    cfg = write_config(tmp_path / "config",
                       f"[magedl]\nmageid = {quote}MAG000000003{quote}\ntoken = {quote}tok-quoted-1{quote}\n")
    s = resolve(env={}, config_file=cfg)
    assert s.credentials == Credentials("MAG000000003", "tok-quoted-1")
    assert f"config file {cfg}, line 3: the token is in quotes" in logged.text
    assert f"config file {cfg}, line 2: the mageid is in quotes" in logged.text
    assert "tok-quoted-1" not in logged.text
    assert "tok-quoted-1" not in redact(f"{quote}tok-quoted-1{quote}")


def test_unknown_config_key_gets_a_suggestion(tmp_path, logged):
    cfg = write_config(tmp_path / "config", "[magedl]\nbase_url = https://m.example/\ntokn = tok-typo-1\n")
    resolve(env={}, config_file=cfg, use_netrc=False)
    assert "line 3: unknown setting 'tokn' in [magedl] is ignored (did you mean 'token'?)" in logged.text


# -- MAGEID shape, half-set credentials ---------------------------------------------------------------


@pytest.mark.parametrize("mageid", ["MAG12345678", "mag000000001", "MAG0000000010", "000000001", "MAGE000000001"])
def test_mageid_of_the_wrong_shape_is_noted_for_the_service(tmp_path, mageid, logged):
    s = resolve(mageid=mageid, token="tok-shape-1", env={}, config_file=tmp_path / "absent")
    assert s.credentials == Credentials(mageid, "tok-shape-1")
    assert f"the MAGEID '{mageid}' (from --mageid) does not look like one" in logged.text
    assert any("MAG followed by 9 digits" in n for n in s.sources.notes)


def test_any_user_name_is_fine_for_a_mirror(tmp_path, logged):
    s = resolve(base_url="https://mirror.example/", mageid="ops", token="tok-mirror-1", env={},
                config_file=tmp_path / "absent")
    assert s.credentials == Credentials("ops", "tok-mirror-1") and not s.sources.notes and not logged.text


@pytest.mark.parametrize("mageid", ["MAG:000000001", "MAG 000000001", "MAG00000000\u0661"])
def test_a_mageid_http_cannot_carry_is_refused(tmp_path, mageid):
    with pytest.raises(UsageError, match="cannot be sent"):
        resolve(mageid=mageid, token="tok-bad-id-1", env={}, config_file=tmp_path / "absent")


def test_half_credentials_pair_the_right_flags_for_the_service(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve(env={"MAGEDL_MAGEID": "MAG000000002"}, config_file=tmp_path / "absent")
    assert "a MAGEID was found (MAGEDL_MAGEID) but no downloads token" in str(info.value)
    assert "--token-file PATH or MAGEDL_TOKEN" in str(info.value) and "--token-file/--mageid" not in str(info.value)
    f = write_token(tmp_path / "token", "tok-half-1")
    with pytest.raises(UsageError) as info:
        resolve(token_file=str(f), env={}, config_file=tmp_path / "absent")
    assert f"a downloads token was found (--token-file {f}) but no MAGEID: give it with --mageid" in str(info.value)


def test_half_credentials_send_nothing_to_a_mirror(tmp_path, logged):
    s = resolve(base_url="http://127.0.0.1:9/m/", env={"MAGEDL_MAGEID": "MAG000000002"},
                config_file=tmp_path / "absent")
    assert s.credentials is None
    assert "a MAGEID was found (MAGEDL_MAGEID) but no downloads token" in logged.text
    assert "no credentials are sent to 127.0.0.1:9" in logged.text


def test_sources_say_where_each_value_came_from(tmp_path, all_sources):
    env, cfg, rc = all_sources
    f = write_token(tmp_path / "token", "tok-file-src-1")
    s = resolve(token_file=str(f), env={"MAGEDL_MAGEID": "MAG000000002"}, config_file=cfg)
    assert (s.sources.base_url, s.sources.mageid, s.sources.token) == (
        f"the config file {cfg}", "MAGEDL_MAGEID", f"--token-file {f}")
    assert s.sources.token_length == len("tok-file-src-1") and s.sources.config_file == str(cfg)
    s = resolve(base_url="https://MAG000000007:tok-userinfo-src@h.example/", env={}, config_file=tmp_path / "x")
    assert (s.sources.mageid, s.sources.token) == ("the user name in --base-url", "the password in --base-url")
    assert "tok-userinfo-src" not in repr(s)


# -- base URLs and CA bundles that lead nowhere -----------------------------------------------------


@pytest.mark.parametrize("bad", ["http://[::1/x", "http://[zz]/", "https://MAG000000001:tok-ipv6-1@[::1/",
                                 "http://::1/"])
def test_broken_ipv6_base_url_is_a_usage_error(bad):
    with pytest.raises(UsageError) as info:
        split_userinfo(bad, "--base-url")
    assert str(info.value).startswith("--base-url '") and "tok-ipv6-1" not in str(info.value)
    assert "IPv6" in str(info.value) or "port" in str(info.value)


def test_missing_ca_bundle_names_its_source(tmp_path):
    with pytest.raises(UsageError) as info:
        resolve(ca_bundle=str(tmp_path / "nowhere.pem"), env={}, config_file=tmp_path / "absent")
    assert f"CA bundle {tmp_path / 'nowhere.pem'} (from --ca-bundle): no such file" in str(info.value)
    for name in ("MAGEDL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "SSL_CERT_FILE"):
        with pytest.raises(ConfigError, match=f"from {name}"):
            resolve(env={name: str(tmp_path / "nowhere.pem")}, config_file=tmp_path / "absent")
    # With TLS verification off the bundle is not used, so not checked.
    assert resolve(ca_bundle="/nowhere", insecure=True, env={}, config_file=tmp_path / "absent").insecure


# -- sizes --------------------------------------------------------------------------------------------


@pytest.mark.parametrize("text, rate, value", [
    ("100000", False, 100000), ("512k", False, 512 * 1024), ("2M", False, 2 * 2**20), ("1.5GiB", False, 3 * 2**29),
    ("2mb", False, 2 * 2**20), ("0", False, 0), (" 20M/s ", True, 20 * 2**20), ("1t", False, 2**40),
])
def test_parse_size(text, rate, value):
    assert config.parse_size(text, rate=rate) == value


@pytest.mark.parametrize("text, rate", [("", False), ("fast", False), ("-1k", False), ("1e400", False),
                                        ("9" * 5000, False), ("nan", False), ("20M/s", False), ("2X", True)])
def test_parse_size_refuses_with_a_message(text, rate):
    with pytest.raises(ValueError) as info:
        config.parse_size(text, rate=rate)
    assert str(info.value).startswith("not a ") and len(str(info.value)) < 200


@pytest.mark.parametrize("written", ['"tok-quoted-secret-77"', "'tok-quoted-secret-77'"])
def test_a_quoted_config_token_is_redacted_as_it_is_sent(tmp_path, written):
    from magedl.secrecy import redact

    cfg = tmp_path / "config"
    cfg.write_text(f"[magedl]\nmageid = MAG000000077\ntoken = {written}\n")
    cfg.chmod(0o600)
    resolve(base_url="https://h.example/", env={}, config_file=cfg)
    assert redact("sent tok-quoted-secret-77") == "sent ***"


def test_a_token_with_surrounding_blanks_is_redacted_as_sent(tmp_path):
    from magedl.secrecy import redact

    resolve(base_url="https://h.example/", mageid="MAG000000078", token="  tok-blank-secret-78 \n", env={},
            config_file=tmp_path / "none")
    assert redact("sent tok-blank-secret-78") == "sent ***"
