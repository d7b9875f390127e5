"""``magedl serve``: a mirror folder over HTTP in the API's shape, until Ctrl-C or SIGTERM.

The server is :mod:`magedl.server`; this module reads the auth file, says
where the server can be reached (and from where), and stops it cleanly.
"""

import errno
import ipaddress
import logging
import os
import signal
import socket
import threading
from pathlib import Path
from typing import Dict, List

from magedl.cli.app import add_command, port
from magedl.cli.output import write_line
from magedl.cli.sign import add_allowed_signers, allowed_signers, check_served
from magedl.errors import NotFoundError, UsageError
from magedl.fsutil import atomic_write
from magedl.secrecy import SECURITY, read_secret_file, register_secret
from magedl.server import ApiServer, DirStore
from magedl.text import printable
from magedl.urls import check_http_url, folder_url

log = logging.getLogger(__name__)

EVERY_INTERFACE = ("0.0.0.0", "::", "")


def add_parser(subparsers) -> None:
    p = add_command(subparsers, "serve", credentials=False, tls=False, retry=False, json=False)
    p.add_argument("dir", metavar="DIR", help="the mirror folder (made by 'magedl mirror')")
    p.add_argument("--bind", default="127.0.0.1", metavar="ADDR",
                   help="address to listen on (default 127.0.0.1: this host only; 0.0.0.0 for every interface)")
    p.add_argument("--port", type=port, default=8080, metavar="N", help="port (default 8080; 0 picks a free one)")
    p.add_argument("--auth-file", metavar="PATH",
                   help="require HTTP Basic auth: a file of 'user:password' lines, mode 600")
    p.add_argument("--ready-file", metavar="PATH", help="write the base URL here once listening")
    p.add_argument("--public-url", metavar="URL",
                   help="where clients reach this server (behind a proxy: https://mirror.example/); Composer "
                        "metadata points there, whatever Host a request names")
    add_allowed_signers(p, "refuse to start unless SHA256SUMS.sig verifies against it")
    p.set_defaults(run=run)


def public_url(url: str) -> str:
    """The ``--public-url`` value, checked (see :mod:`magedl.urls`); ends with ``/``."""
    return folder_url(check_http_url(
        url, "--public-url", "http(s)://HOST[:PORT]/[PATH/], the address clients reach this server at",
        "it is written into the Composer metadata every client downloads; use --auth-file for credentials",
        query=False))


def cannot_listen(bind: str, port_number: int, exc: OSError) -> UsageError:
    """The error for a failed bind, blaming what failed: the address, the port, or the right to use it."""

    where = f"cannot listen on {printable(bind)} port {port_number}"
    hint = "give one it has, e.g. --bind 127.0.0.1 (this host only) or --bind 0.0.0.0 (every interface)"
    if isinstance(exc, socket.gaierror):
        return UsageError(f"{where}: {printable(bind)} is not an IP address (nor a name this host resolves); {hint}")
    if exc.errno in (errno.EADDRNOTAVAIL, errno.EAFNOSUPPORT):
        return UsageError(f"{where}: {printable(bind)} is not an address of this host ({exc.strerror}); {hint}")
    if exc.errno == errno.EADDRINUSE:
        return UsageError(f"{where}: the port is in use; is another server on that port? "
                          "(--port 0 picks a free one)")
    if exc.errno == errno.EACCES:
        return UsageError(f"{where}: not allowed ({exc.strerror}); ports below 1024 need privileges: "
                          "use a higher --port, e.g. 8080")
    return UsageError(f"{where}: {exc.strerror or exc}")


def read_auth_file(path) -> Dict[str, str]:
    """``{user: password}`` from a file of ``user:password`` lines (``#`` comments allowed).

    The file holds secrets, so it must be private (mode 600), like every
    secret file magedl reads.
    """

    text = read_secret_file(path, "auth file")
    accounts = {}
    for number, line in enumerate(text.splitlines(), 1):
        line = line.rstrip("\r")  # only the line ending: a password may end in a space
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        user, sep, password = line.partition(":")
        register_secret(password)
        if not sep or not user or not password:
            raise UsageError(f"auth file {printable(path)}, line {number}: expected 'user:password'")
        accounts[user] = password
    if not accounts:
        raise UsageError(f"auth file {printable(path)} holds no 'user:password' line")
    return accounts


def is_loopback(host: str) -> bool:
    """True for ``localhost`` and loopback addresses (only this machine can connect)."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.split("%", 1)[0]).is_loopback
    except ValueError:
        return False


def reachable_urls(bind: str, port_number: int) -> List[str]:
    """Base URLs other hosts may use for a server bound to every interface: never ``localhost``.

    This host's name when it resolves beyond loopback, and its non-loopback
    addresses; empty when none is known.
    """
    family = socket.AF_INET if bind == "0.0.0.0" else 0
    urls, seen = [], set()
    name = socket.getfqdn()
    try:
        addresses = {info[4][0] for info in socket.getaddrinfo(socket.gethostname(), None, family)}
    except OSError:
        addresses = set()
    if name and not is_loopback(name) and _resolves_beyond_loopback(name):
        urls.append(f"http://{name}:{port_number}/")
    for address in sorted(addresses):
        if is_loopback(address) or address in seen:
            continue
        seen.add(address)
        host = f"[{address}]" if ":" in address else address
        urls.append(f"http://{host}:{port_number}/")
    return urls


def _resolves_beyond_loopback(name):
    try:
        return any(not is_loopback(info[4][0]) for info in socket.getaddrinfo(name, None))
    except OSError:
        return False


def run(args, out) -> int:

    root = Path(args.dir)
    if root.exists() and not root.is_dir():
        raise NotFoundError(f"{printable(root)} is a file, not a mirror folder; give the folder 'magedl mirror' made")
    if not (root / "info" / "json").is_file():
        raise NotFoundError(f"{printable(root)}: not a mirror (no info/json); make one with "
                            f"'magedl mirror {printable(root)}'")
    check_served(root, allowed_signers(args))  # a mirror whose signature or index files fail is not served
    public = public_url(args.public_url) if args.public_url else None
    auth = read_auth_file(args.auth_file) if args.auth_file else None
    access = (lambda line: log.info("%s", line)) if args.verbose else None
    try:
        server = ApiServer(DirStore(root), host=args.bind, port=args.port, prefix="/", auth=auth, access_log=access,
                           public_url=public)
    except (OSError, ValueError, UnicodeError) as exc:
        if not isinstance(exc, OSError):  # a name the resolver cannot even take (e.g. an empty label)
            exc = socket.gaierror(socket.EAI_NONAME, str(exc))
        raise cannot_listen(args.bind, args.port, exc) from None
    if not is_loopback(args.bind):
        if auth is None:
            log.warning("SERVING %s TO THE NETWORK (%s) WITHOUT A PASSWORD: anyone who can reach this host can "
                        "download every archive; give --auth-file to require one", root, args.bind, extra=SECURITY)
        else:
            log.warning("credentials travel in clear over plain HTTP; put a TLS proxy in front for untrusted networks",
                        extra=SECURITY)
    done = threading.Event()
    handlers = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            handlers[sig] = signal.signal(sig, lambda signum, frame: done.set())
    server.start()
    try:
        write_line(out, server.base_url)
        if args.ready_file:
            atomic_write(os.path.abspath(args.ready_file), (server.base_url + "\n").encode())
        log.info("serving %s at %s%s (Ctrl-C stops)", root, server.base_url, " with Basic auth" if auth else "")
        if public:
            log.info("clients reach it as %s (Composer metadata points there)", public)
        if args.bind in EVERY_INTERFACE:
            urls = reachable_urls(args.bind, server.port)
            if urls:
                log.info("other hosts reach it as %s", " or ".join(urls))
            else:
                log.info("other hosts reach it at this host's network address, port %d", server.port)
        while not done.wait(0.5):
            pass
        log.info("stopped")
    finally:
        server.stop()
        for sig, handler in handlers.items():
            signal.signal(sig, handler)
    return 0
