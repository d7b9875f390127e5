"""TLS and proxies, for real, on 127.0.0.1.

An HTTPS server with a certificate from a local CA made by ``trustme``, and a
small forward proxy (absolute-form requests for http://, ``CONNECT`` tunnels
for https://) that logs what it was asked and can demand credentials.
"""

import base64
import http.client
import http.server
import json
import os
import select
import socket
import ssl
import threading

import pytest
import trustme
from clirun import run

FEED = {"ce-full": {"2.4.7": [{"name": "CE 2.4.7", "file_name": "Magento-CE-2.4.7.zip", "md5": "a" * 32}]}}
PROXY_USER, PROXY_PASSWORD = "proxyuser", "proxy-secret-Zq81"


def serve(server):
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.01}, daemon=True).start()
    return server


def stop(server):
    server.shutdown()
    server.server_close()


class Feed(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def do_GET(self):  # noqa: N802
        data = json.dumps(FEED).encode() if self.path.endswith("/info/json") else b""
        self.send_response(200 if data else 404)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


class TLSServer(http.server.ThreadingHTTPServer):
    """HTTPS: the handshake happens in the request's thread, so a failing client blocks no one."""

    def finish_request(self, request, client_address):
        try:
            request = self.context.wrap_socket(request, server_side=True)
        except (ssl.SSLError, OSError):
            return
        super().finish_request(request, client_address)


@pytest.fixture(scope="module")
def ca():
    return trustme.CA()


@pytest.fixture
def clean_env(monkeypatch):
    for name in ("SSL_CERT_FILE", "SSL_CERT_DIR", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "MAGEDL_CA_BUNDLE",
                 "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "ALL_PROXY", "http_proxy", "https_proxy", "no_proxy",
                 "all_proxy"):
        monkeypatch.delenv(name, raising=False)


@pytest.fixture
def https(ca, tmp_path, clean_env):
    """``(base URL, CA bundle path)`` of an HTTPS server on 127.0.0.1 whose certificate the local CA signed."""
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    server = TLSServer(("127.0.0.1", 0), Feed)
    server.context = context
    serve(server)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    yield f"https://127.0.0.1:{server.server_port}/dl/", str(bundle)
    stop(server)


class Proxy(http.server.BaseHTTPRequestHandler):
    """A forward proxy: ``GET http://...`` relayed, ``CONNECT host:port`` tunnelled."""

    protocol_version = "HTTP/1.1"

    def _allowed(self):
        self.server.log.append((self.command, self.path, self.headers.get("Proxy-Authorization")))
        if self.server.credentials is None:
            return True
        expected = "Basic " + base64.b64encode(":".join(self.server.credentials).encode()).decode()
        if self.headers.get("Proxy-Authorization") == expected:
            return True
        self.send_response(407)
        self.send_header("Proxy-Authenticate", 'Basic realm="proxy"')
        self.send_header("Content-Length", "0")
        self.end_headers()
        return False

    def do_GET(self):  # noqa: N802
        if not self._allowed():
            return
        target = http.client.urlsplit(self.path)
        upstream = http.client.HTTPConnection(target.hostname, target.port, timeout=10)
        headers = {k: v for k, v in self.headers.items() if not k.lower().startswith("proxy-")}
        upstream.request("GET", target.path, headers=headers)
        reply = upstream.getresponse()
        data = reply.read()
        self.send_response(reply.status)
        for key, value in reply.getheaders():
            if key.lower() not in ("content-length", "transfer-encoding", "connection"):
                self.send_header(key, value)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)
        upstream.close()

    def do_CONNECT(self):  # noqa: N802
        if not self._allowed():
            return
        host, _, port = self.path.rpartition(":")
        upstream = socket.create_connection((host, int(port)), timeout=10)
        self.send_response(200, "Connection established")
        self.end_headers()
        ends = [self.connection, upstream]
        try:
            while True:
                readable, _, _ = select.select(ends, [], [], 10)
                if not readable:
                    break
                for end in readable:
                    data = end.recv(65536)
                    if not data:
                        return
                    (upstream if end is self.connection else self.connection).sendall(data)
        finally:
            upstream.close()
            self.close_connection = True

    def log_message(self, *args):
        pass


@pytest.fixture
def proxy(clean_env):
    """A forward proxy on 127.0.0.1: ``.url``, ``.log`` [(method, target, Proxy-Authorization)], ``.credentials``."""
    server = serve(http.server.ThreadingHTTPServer(("127.0.0.1", 0), Proxy))
    server.log, server.credentials = [], None
    server.url = f"http://127.0.0.1:{server.server_port}"
    yield server
    stop(server)


def error_line(err):
    [line] = [x for x in err.splitlines() if x.startswith("magedl: error:")]
    return line


# -- TLS ------------------------------------------------------------------------------------------------


def test_tls_with_an_unknown_ca_fails_fast_and_says_so(https, capsys, sleeps):
    base, _ = https
    code, _, err = run(capsys, "--base-url", base, "list")
    line = error_line(err)
    assert code == 7 and sleeps == [] and "retrying" not in err
    assert f"TLS verification of {base.split('/')[2]} failed" in line and "--ca-bundle" in line
    assert "does not speak TLS" not in line


def test_ca_bundle_option_is_honoured(https, capsys):
    base, bundle = https
    code, out, _ = run(capsys, "--base-url", base, "--ca-bundle", bundle, "list", "--json")
    assert code == 0 and json.loads(out)[0]["file_name"] == "Magento-CE-2.4.7.zip"


@pytest.mark.parametrize("variable", ["MAGEDL_CA_BUNDLE", "REQUESTS_CA_BUNDLE", "CURL_CA_BUNDLE", "SSL_CERT_FILE"])
def test_ca_bundle_environment_variables_are_honoured(https, capsys, monkeypatch, variable):
    base, bundle = https
    monkeypatch.setenv(variable, bundle)
    code, out, _ = run(capsys, "--base-url", base, "list", "--json")
    assert code == 0 and json.loads(out)


def test_ca_bundle_from_the_config_file(https, capsys, isolated_home):
    base, bundle = https
    cfg = isolated_home / ".config" / "magedl" / "config"
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f"[magedl]\nca_bundle = {bundle}\n")
    os.chmod(cfg, 0o600)
    code, out, _ = run(capsys, "--base-url", base, "list", "--json")
    assert code == 0 and json.loads(out)


def test_a_certificate_for_another_name_is_refused(ca, tmp_path, capsys, clean_env, sleeps):
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("mirror.example").configure_cert(context)
    server = TLSServer(("127.0.0.1", 0), Feed)
    server.context = context
    serve(server)
    bundle = tmp_path / "ca.pem"
    ca.cert_pem.write_to_path(str(bundle))
    try:
        code, _, err = run(capsys, "--base-url", f"https://127.0.0.1:{server.server_port}/", "--ca-bundle",
                           str(bundle), "list")
    finally:
        stop(server)
    assert code == 7 and "TLS verification" in error_line(err) and "mismatch" in error_line(err) and sleeps == []


def test_insecure_warns_on_every_run(https, capsys):
    base, _ = https
    for _ in range(2):
        code, out, err = run(capsys, "--insecure", "--base-url", base, "list", "--json")
        assert code == 0 and json.loads(out)
        assert "TLS verification is OFF (--insecure)" in err


# -- proxies ---------------------------------------------------------------------------------------------


def test_http_proxy_is_used_for_http(env, proxy, capsys, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    code, out, _ = run(capsys, "list", "--json")
    assert code == 0 and json.loads(out)
    assert ("GET", env.base_url + "info/json", None) in proxy.log


def test_no_proxy_bypasses_the_proxy(env, proxy, capsys, monkeypatch):
    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    code, _, _ = run(capsys, "list", "--json")
    assert code == 0 and proxy.log == []


def test_https_proxy_tunnels_with_connect(https, proxy, capsys, monkeypatch):
    base, bundle = https
    monkeypatch.setenv("HTTPS_PROXY", proxy.url)
    code, out, _ = run(capsys, "--base-url", base, "--ca-bundle", bundle, "list", "--json")
    assert code == 0 and json.loads(out)
    assert [(m, t) for m, t, _ in proxy.log] == [("CONNECT", base.split("/")[2])]


def test_proxy_credentials_are_sent_and_never_shown(https, proxy, capsys, monkeypatch):
    base, bundle = https
    proxy.credentials = (PROXY_USER, PROXY_PASSWORD)
    monkeypatch.setenv("HTTPS_PROXY", proxy.url.replace("://", f"://{PROXY_USER}:{PROXY_PASSWORD}@"))
    code, out, err = run(capsys, "-vv", "--base-url", base, "--ca-bundle", bundle, "list", "--json")
    assert code == 0 and json.loads(out) and proxy.log[-1][2].startswith("Basic ")
    assert PROXY_PASSWORD not in out + err and "through proxy http://***@127.0.0.1:" in err


@pytest.mark.parametrize("scheme", ["http", "https"])
def test_a_proxy_that_refuses_says_how_to_give_credentials(env, https, proxy, capsys, monkeypatch, scheme, sleeps):
    proxy.credentials = (PROXY_USER, PROXY_PASSWORD)
    wrong = "wrong-proxy-pass-77"
    monkeypatch.setenv(f"{scheme.upper()}_PROXY", proxy.url.replace("://", f"://{PROXY_USER}:{wrong}@"))
    base, bundle = (env.base_url, None) if scheme == "http" else https
    code, _, err = run(capsys, "-vv", "--base-url", base, *(["--ca-bundle", bundle] if bundle else []), "list")
    line = error_line(err)
    assert code == 7 and "the proxy refused the request (HTTP 407" in line and "HTTPS_PROXY" in line
    assert wrong not in err and sleeps == []


def test_https_to_a_server_that_never_answers_the_handshake_fails_fast(capsys, sleeps, clean_env):
    """A plain HTTP server waiting for a request head never answers a TLS hello: one try, and why."""
    listener = socket.create_server(("127.0.0.1", 0))
    accepted = []
    threading.Thread(target=lambda: accepted.append(listener.accept()), daemon=True).start()
    try:
        code, _, err = run(capsys, "--timeout", "0.3", "--base-url",
                           f"https://127.0.0.1:{listener.getsockname()[1]}/", "list")
    finally:
        listener.close()
        for conn, _ in accepted:
            conn.close()
    line = error_line(err)
    assert code == 7 and "did not answer the TLS handshake" in line and "use http://" in line
    assert sleeps == [] and len(accepted) == 1


def test_no_proxy_is_decided_per_host_not_once_for_the_base_url(proxy, monkeypatch, emulator):
    """One client reaches several hosts (Composer repositories, redirect targets): NO_PROXY applies to each."""
    from magedl.config import Settings
    from magedl.service.api import Client

    monkeypatch.setenv("HTTP_PROXY", proxy.url)
    monkeypatch.setenv("NO_PROXY", "127.0.0.1")
    client = Client(Settings(base_url="http://mirror.example/", credentials=None))  # a base URL the proxy serves
    assert client.proxies_for("http://mirror.example/info/json") == {"http": proxy.url}
    assert client.proxies_for(emulator.base_url + "info/json") == {}
    with client.open(emulator.base_url + "info/help", "info/help", allow=(401,)) as response:
        assert response.status_code in (200, 401)
    assert proxy.log == []  # the loopback host went direct, though the base URL's host would use the proxy
