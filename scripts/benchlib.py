"""What scripts/bench.py sets up around the tools it times: files, nginx, a private CA, a slow link.

Everything listens on 127.0.0.1 and is torn down by the caller.
"""

import asyncio
import hashlib
import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

MAGEID = "MAG000123456"
TOKEN = hashlib.sha1(b"magedl bench token").hexdigest()
TOOLS = {"nginx": "nginx-light", "curl": "curl", "wget": "wget", "aria2c": "aria2", "time": "time",
         "openssl": "openssl"}


def measured(cmd, env, cwd):
    """(wall seconds, user+sys CPU seconds, peak RSS MiB) of one command (GNU time measures the command itself)."""
    report = Path(cwd) / "time.out"
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%U %S %M", "-o", str(report), *cmd], cwd=cwd, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{' '.join(cmd[:4])}... exited {proc.returncode}: "
                           f"{proc.stderr.decode(errors='replace')[-400:]}")
    user, system, rss = report.read_text().split()[-3:]
    return wall, float(user) + float(system), int(rss) / 1024


def ensure_tools():
    """Install the Debian packages of the tools compared against, when missing (needs root)."""
    missing = [pkg for tool, pkg in TOOLS.items() if not shutil.which(tool) and not Path(f"/usr/sbin/{tool}").exists()]
    if not missing:
        return
    if os.geteuid() != 0:
        sys.exit(f"bench: please install {' '.join(missing)} (Debian packages)")
    print(f"bench: installing {' '.join(missing)} from Debian's packages", flush=True)
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    subprocess.run(["apt-get", "update", "-qq"], check=True, env=env)
    subprocess.run(["apt-get", "install", "-y", "-qq", *missing], check=True, env=env, stdout=subprocess.DEVNULL)
    subprocess.run(["sh", "-c", "service nginx stop || true; pkill -x nginx || true"], env=env)


def write_random(path, size, magic=b"\x1f\x8b\x08\x00"):
    """A file of *size* pseudo-random bytes with an archive's magic number; returns its md5."""
    digest = hashlib.md5()
    block = os.urandom(1 << 20)
    with open(path, "wb") as f:
        written = 0
        while written < size:
            chunk = block[: min(len(block), size - written)]
            if written == 0:
                chunk = magic + chunk[len(magic):]
            elif len(chunk) > 8:  # vary each block cheaply so the file does not repeat every MiB
                chunk = written.to_bytes(8, "little") + chunk[8:]
            f.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def build_mirror(root, sizes_mib, small):
    """The mirror layout: one large file per entry of *sizes_mib* and *small* 64 KiB patches.

    Returns ``{"large": [names], "small": [names]}``.
    """
    files = root / "file"
    (root / "info").mkdir(parents=True)
    files.mkdir()
    entries, large = [], []
    for i, mib in enumerate(sizes_mib):
        name = f"Magento-CE-9.9.{i + 1}.tar.gz"
        print(f"bench: writing {name} ({mib} MiB)", flush=True)
        entries.append(("ce-full", f"9.9.{i + 1}", name, write_random(files / name, mib << 20)))
        large.append(name)
    print(f"bench: writing {small} x 64 KiB patches", flush=True)
    names = [f"PATCH_BENCH-{i:04d}.tar.gz" for i in range(small)]
    for name in names:
        entries.append(("ce-patch", "9.9.0", name, write_random(files / name, 64 << 10)))
    feed = {"ce-full": {}, "ce-patch": {}}
    for category, version, name, md5 in entries:
        feed[category].setdefault(version, []).append({"name": name, "file_name": name, "md5": md5})
    (root / "info" / "json").write_text(json.dumps(feed))
    os.chmod(root, 0o755)
    return {"large": large, "small": names}


def make_ca(work):
    """A private CA and a certificate for 127.0.0.1 signed by it: (ca.pem, cert.pem, key.pem)."""
    ca_key, ca, key, csr, cert = (work / n for n in ("ca.key", "ca.pem", "srv.key", "srv.csr", "srv.pem"))
    ext = work / "srv.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1\nbasicConstraints=CA:FALSE\n")
    quiet = {"stdout": subprocess.DEVNULL, "stderr": subprocess.DEVNULL, "check": True}
    subprocess.run(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", ca_key, "-out", ca, "-days", "2", "-subj", "/CN=magedl bench CA"], **quiet)
    subprocess.run(["openssl", "req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                    "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"], **quiet)
    subprocess.run(["openssl", "x509", "-req", "-in", csr, "-CA", ca, "-CAkey", ca_key, "-CAcreateserial",
                    "-out", cert, "-days", "2", "-extfile", ext], **quiet)
    return ca, cert, key


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_listening(port, proc, what):
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return
        except OSError:
            time.sleep(0.05)  # waiting for a server we started to listen, not synchronising tests
    proc.kill()
    sys.exit(f"bench: {what} did not start")


def start_nginx(work, root, cert, key):
    """nginx on two ports (plain, TLS), Basic auth, /fast/ and /slow/ (20 MB/s a connection)."""
    port, tls_port = free_port(), free_port()
    (work / "htpasswd").write_text(f"{MAGEID}:{{PLAIN}}{TOKEN}\n")
    conf = work / "nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
user root;
pid {work}/nginx.pid;
error_log {work}/nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 10000;
    keepalive_timeout 60s;
    default_type application/octet-stream;
    ssl_certificate {cert};
    ssl_certificate_key {key};
    ssl_session_cache shared:SSL:1m;
    ssl_session_tickets on;
    server {{
        listen 127.0.0.1:{port};
        listen 127.0.0.1:{tls_port} ssl;
        auth_basic "magedl bench";
        auth_basic_user_file {work}/htpasswd;
        location /fast/ {{ alias {root}/; }}
        location /slow/ {{ alias {root}/; limit_rate 20m; }}
    }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)
    wait_listening(port, proc, "nginx")
    return proc, f"http://127.0.0.1:{port}", tls_port


class LatencyRelay:
    """A TCP relay on 127.0.0.1 that delays every byte by *delay* seconds each way.

    It keeps each connection open as long as both ends do, so connection and
    TLS-session reuse behave as over a real long link; it adds latency, not a
    bandwidth cap. Runs its own event loop in a thread.
    """

    def __init__(self, target_port, delay=0.025):
        self.target_port = target_port
        self.delay = delay
        self.port = None
        self._loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        self._ready.wait(10)
        return self

    def stop(self):
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _run(self):
        asyncio.set_event_loop(self._loop)
        server = self._loop.run_until_complete(asyncio.start_server(self._client, "127.0.0.1", 0))
        self.port = server.sockets[0].getsockname()[1]
        self._ready.set()
        self._loop.run_forever()

    async def _client(self, reader, writer):
        try:
            up_reader, up_writer = await asyncio.open_connection("127.0.0.1", self.target_port)
        except OSError:
            writer.close()
            return
        await asyncio.gather(self._pipe(reader, up_writer), self._pipe(up_reader, writer))

    async def _pipe(self, reader, writer):
        queue = asyncio.Queue()

        async def deliver():
            while True:
                due, data = await queue.get()
                wait = due - self._loop.time()
                if wait > 0:
                    await asyncio.sleep(wait)
                if data is None:
                    writer.close()
                    return
                writer.write(data)
                await writer.drain()

        sender = asyncio.ensure_future(deliver())
        try:
            while True:
                data = await reader.read(1 << 16)
                queue.put_nowait((self._loop.time() + self.delay, data or None))
                if not data:
                    break
        except (ConnectionError, OSError):
            queue.put_nowait((self._loop.time(), None))
        try:
            await sender
        except (ConnectionError, OSError):
            pass
