"""Benchmark magedl against curl, wget and aria2c, all fetching from one nginx on 127.0.0.1.

`make bench` runs this. nginx (Debian's package) serves the mirror layout
behind Basic auth, twice: unthrottled, and with ``limit_rate 20m`` per
connection. Every tool fetches the same files into the same folder; the
script prints the median wall time over several runs, the peak RSS of each
process, and the ratios that the speed targets are stated in. Nothing here
asserts: it prints figures.

Usage: python scripts/bench.py [--runs N] [--big-mib 1024] [--slow-mib 256] [--small 200] [--quick]
"""

import argparse
import hashlib
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

MAGEID = "MAG000123456"
TOKEN = hashlib.sha1(b"magedl bench token").hexdigest()
TOOLS = {"nginx": "nginx-light", "curl": "curl", "wget": "wget", "aria2c": "aria2", "time": "time"}


def ensure_tools():
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
        first = True
        while written < size:
            chunk = block[: min(len(block), size - written)]
            if first:
                chunk = magic + chunk[len(magic):]
                first = False
            # Vary each block cheaply so the file does not repeat every MiB.
            chunk = written.to_bytes(8, "little") + chunk[8:] if len(chunk) > 8 and written else chunk
            f.write(chunk)
            digest.update(chunk)
            written += len(chunk)
    return digest.hexdigest()


def build_mirror(root, big_mib, slow_mib, small):
    files = root / "file"
    (root / "info").mkdir(parents=True)
    files.mkdir()
    entries = []
    print(f"bench: writing {big_mib} MiB, {slow_mib} MiB and {small} x 64 KiB test files", flush=True)
    md5 = write_random(files / "Magento-CE-9.9.1.tar.gz", big_mib << 20)
    entries.append(("9.9.1", "Magento-CE-9.9.1.tar.gz", md5))
    md5 = write_random(files / "Magento-CE-9.9.2.tar.gz", slow_mib << 20)
    entries.append(("9.9.2", "Magento-CE-9.9.2.tar.gz", md5))
    for i in range(small):
        name = f"PATCH_BENCH-{i:04d}.tar.gz"
        entries.append(("9.9.0", name, write_random(files / name, 64 << 10)))
    feed = {"ce-full": {}, "ce-patch": {}}
    for version, name, md5 in entries:
        category = "ce-patch" if name.startswith("PATCH") else "ce-full"
        feed[category].setdefault(version, []).append({"name": name, "file_name": name, "md5": md5})
    (root / "info" / "json").write_text(json.dumps(feed))
    os.chmod(root, 0o755)
    return [name for _, name, _ in entries if name.startswith("PATCH")]


def start_nginx(work, root):
    port = free_port()
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
    default_type application/octet-stream;
    server {{
        listen 127.0.0.1:{port};
        auth_basic "magedl bench";
        auth_basic_user_file {work}/htpasswd;
        location /fast/ {{ alias {root}/; }}
        location /slow/ {{ alias {root}/; limit_rate 20m; }}
    }}
}}
""")
    proc = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
            return proc, f"http://127.0.0.1:{port}"
        except OSError:
            time.sleep(0.05)  # waiting for a server we started to listen, not synchronising tests
    proc.kill()
    sys.exit("bench: nginx did not start; see nginx-error.log")


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def timed(cmd, out_dir, env=None):
    """(wall seconds, peak RSS in MiB) of one command, run in a clean output folder."""
    shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True)
    # GNU time measures the tool's own peak RSS; a fork from this Python would count ours too.
    report = out_dir.parent / "time.out"
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *cmd], cwd=out_dir, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
    return wall, int(report.read_text().split()[-1]) / 1024


def median_of(runs, cmd, out_dir, env=None):
    results = [timed(cmd, out_dir, env) for _ in range(runs)]
    return statistics.median(r[0] for r in results), max(r[1] for r in results)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--big-mib", type=int, default=1024)
    parser.add_argument("--slow-mib", type=int, default=256)
    parser.add_argument("--small", type=int, default=200)
    parser.add_argument("--quick", action="store_true", help="small sizes and 3 runs, to try the script")
    parser.add_argument("--only", choices=["big", "slow", "small", "startup"], action="append")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    args = parser.parse_args()
    if args.quick:
        args.runs, args.big_mib, args.slow_mib, args.small = 3, 128, 64, 40
    scenarios = args.only or ["big", "slow", "small", "startup"]
    ensure_tools()

    magedl = [sys.executable, "-m", "magedl"]
    work = Path(tempfile.mkdtemp(prefix="magedl-bench-"))
    os.chmod(work, 0o755)
    root = work / "mirror"
    small_names = build_mirror(root, args.big_mib, args.slow_mib, args.small)
    nginx, base = start_nginx(work, root)
    out = work / "out"
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGEDL_")}
    env.update(MAGEDL_MAGEID=MAGEID, MAGEDL_TOKEN=TOKEN, HOME=str(work))
    auth = f"{MAGEID}:{TOKEN}"
    figures = []

    def row(scenario, tool, cmd, env_=None):
        wall, rss = median_of(args.runs, cmd, out, env_)
        figures.append({"scenario": scenario, "tool": tool, "wall_s": round(wall, 3), "peak_rss_mib": round(rss, 1)})
        print(f"  {tool:<34} {wall:8.2f} s   {rss:7.1f} MiB", flush=True)
        return wall

    try:
        print(f"bench: nginx at {base}; {args.runs} runs each; median wall time, peak RSS", flush=True)
        if "big" in scenarios:
            name = "Magento-CE-9.9.1.tar.gz"
            url = f"{base}/fast/file/{name}"
            fenv = dict(env, MAGEDL_BASE_URL=f"{base}/fast/")
            print(f"\n{args.big_mib} MiB, unthrottled")
            curl = row("big", "curl", ["curl", "-sSf", "-u", auth, "-o", name, url])
            row("big", "wget", ["wget", "-q", f"--user={MAGEID}", f"--password={TOKEN}", "-O", name, url])
            row("big", "aria2c", ["aria2c", "-q", f"--http-user={MAGEID}", f"--http-passwd={TOKEN}", "-o", name, url])
            mag = row("big", "magedl get (md5 verified)", magedl + ["-q", "get", name, "-o", "."], fenv)
            print(f"  ratio magedl/curl: {mag / curl:.2f}  (target <= 0.85)")
        if "slow" in scenarios:
            name = "Magento-CE-9.9.2.tar.gz"
            url = f"{base}/slow/file/{name}"
            senv = dict(env, MAGEDL_BASE_URL=f"{base}/slow/")
            print(f"\n{args.slow_mib} MiB, nginx limit_rate 20m per connection")
            curl = row("slow", "curl", ["curl", "-sSf", "-u", auth, "-o", name, url])
            aria = row("slow", "aria2c -x16 -s16", ["aria2c", "-q", "-x16", "-s16", "-k1M", f"--http-user={MAGEID}",
                                                     f"--http-passwd={TOKEN}", "-o", name, url])
            mag = row("slow", "magedl get (default)", magedl + ["-q", "get", name, "-o", "."], senv)
            mag16 = row("slow", "magedl get --connections 16",
                        magedl + ["-q", "get", name, "-o", ".", "--connections", "16"], senv)
            print(f"  ratio magedl default/curl: {mag / curl:.2f}  (target <= 0.25)")
            print(f"  ratio magedl -c16/aria2c -x16: {mag16 / aria:.2f}  (target <= 1.1)")
        if "small" in scenarios:
            print(f"\n{len(small_names)} x 64 KiB")
            listing = work / "urls.txt"
            listing.write_text("".join(f"{base}/fast/file/{n}\n" for n in small_names))
            fenv = dict(env, MAGEDL_BASE_URL=f"{base}/fast/")
            row("small", "wget -i", ["wget", "-q", f"--user={MAGEID}", f"--password={TOKEN}", "-i", str(listing)])
            aria = row("small", "aria2c -j8", ["aria2c", "-q", "-j8", f"--http-user={MAGEID}",
                                               f"--http-passwd={TOKEN}", "-i", str(listing)])
            mag = row("small", "magedl get --type ce-patch (4 jobs)",
                      magedl + ["-q", "get", "--type", "ce-patch", "-o", "."], fenv)
            mag8 = row("small", "magedl get --type ce-patch --jobs 8",
                       magedl + ["-q", "get", "--type", "ce-patch", "-o", ".", "--jobs", "8"], fenv)
            print(f"  ratio magedl/aria2c -j8: {mag / aria:.2f} (default jobs), {mag8 / aria:.2f} (--jobs 8)"
                  "  (target <= 1.2)")
        if "startup" in scenarios:
            print("\nstart-up")
            exe = shutil.which("magedl") or ""
            cmd = [exe, "--help"] if exe else magedl + ["--help"]
            walls = [timed(cmd, out)[0] for _ in range(10)]
            figures.append({"scenario": "startup", "tool": "magedl --help", "wall_s": round(statistics.median(walls), 3)})
            print(f"  {'magedl --help':<34} {statistics.median(walls):8.3f} s   (target <= 0.25)")
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(work, ignore_errors=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"\nmachine: {os.cpu_count()} cores, {cpu}; Python {sys.version.split()[0]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu, "cores": os.cpu_count(), "figures": figures}, indent=2))


if __name__ == "__main__":
    main()
