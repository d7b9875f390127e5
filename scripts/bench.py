"""Benchmark magedl against curl, wget, aria2c and md5sum, all fetching from one nginx on 127.0.0.1.

`make bench` runs this. nginx (Debian's package) serves the mirror layout
behind Basic auth over plain HTTP and over HTTPS (a private CA made with
openssl at start), unthrottled and with ``limit_rate 20m`` per connection; a
relay in this script adds 25 ms each way for the long-link case. Every tool
fetches the same files; the script prints the median wall time over several
interleaved runs, each tool's peak RSS, and the ratios the speed targets are
stated in. Nothing here asserts: it prints figures. Before each run of the
large-file cases a scratch file is written and deleted (untimed), so every
tool writes into warm pages (see ``timed``); magedl runs from bytecode.

Usage: python scripts/bench.py [--runs N] [--quick] [--only CASE]... [--json PATH]
"""

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import MAGEID, TOKEN, LatencyRelay, build_mirror, ensure_tools, make_ca, start_nginx  # noqa: E402

CASES = ["big", "https", "latency", "perfile", "slow", "mirror", "composer", "startup", "serve", "scale"]


def timed(cmd, out_dir, env=None, keep=False, warm=0):
    """(wall seconds, peak RSS in MiB) of one command, run in a clean output folder.

    *warm*: bytes written to a scratch file and deleted just before the
    command (untimed). On a VM whose free memory goes back to the host after
    a few idle seconds (virtio-balloon free page reporting), the first write
    to a page costs the host a fault: 1 GiB into such "cold" pages took 2.4 s
    of system time here against 0.26 s into pages just freed (dd). Without
    this, whichever tool runs after a pause pays for it; with it, every tool
    writes into pages just freed, as on a machine that keeps its memory.
    """
    if not keep:
        shutil.rmtree(out_dir, ignore_errors=True)
    out_dir.mkdir(parents=True, exist_ok=True)
    if warm:
        scratch = out_dir / "scratch"
        with open(scratch, "wb") as f:
            block = bytes(1 << 20)
            for _ in range(warm >> 20):
                f.write(block)
        scratch.unlink()
    # GNU time measures the tool's own peak RSS; a fork from this Python would count ours too.
    report = out_dir.parent / "time.out"
    start = time.perf_counter()
    proc = subprocess.run(["/usr/bin/time", "-f", "%M", "-o", str(report), *cmd], cwd=out_dir, env=env,
                          stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    wall = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{cmd[0]} exited {proc.returncode}: {proc.stderr.decode(errors='replace')[-500:]}")
    return wall, int(report.read_text().split()[-1]) / 1024


class Bench:
    """Runs commands interleaved (A B C, A B C, ...) so drift hits every tool alike."""

    def __init__(self, runs, out, figures):
        self.runs, self.out, self.figures = runs, out, figures

    def compare(self, case, commands, keep=False, warm=0):
        """*commands*: ``{label: (cmd, env)}``; prints and returns ``{label: median wall}``.

        *warm*: see :func:`timed` (for the cases whose tools write large files).
        """
        walls = {label: [] for label in commands}
        rss = dict.fromkeys(commands, 0.0)
        for _ in range(self.runs):
            for label, (cmd, env) in commands.items():
                wall, peak = timed(cmd, self.out, env, keep, warm)
                walls[label].append(wall)
                rss[label] = max(rss[label], peak)
        medians = {}
        for label in commands:
            medians[label] = statistics.median(walls[label])
            self.figures.append({"case": case, "tool": label, "wall_s": round(medians[label], 3),
                                 "peak_rss_mib": round(rss[label], 1)})
            print(f"  {label:<44} {medians[label]:8.3f} s   {rss[label]:7.1f} MiB", flush=True)
        return medians


def ratio(what, value, target):
    verdict = "met" if value <= target else "MISSED"
    print(f"  ratio {what}: {value:.2f}  (target <= {target}: {verdict})", flush=True)
    return {"ratio": what, "value": round(value, 3), "target": target, "met": value <= target}

def peak_rss_mib(pid):
    """A running process's peak resident set (VmHWM), in MiB; 0 when it cannot be read."""
    try:
        with open(f"/proc/{pid}/status") as status:
            return next((int(line.split()[1]) / 1024 for line in status if line.startswith("VmHWM:")), 0.0)
    except OSError:
        return 0.0


def serve_case(work, magedl, runs, seconds):
    """``magedl serve`` against nginx on the same folder, under wrk (issue 18's serve targets).

    A 1,000-file mirror of 64 KiB archives and one 64 MiB archive; wrk with 16 keep-alive
    clients on one 64 KiB archive and on ``info/json``, 4 on the 64 MiB archive; then one
    archive from a 2,000-file and a 20,000-file feed (the cost of a request must not grow
    with the mirror). nginx runs one worker with sendfile, as the README's server block.
    Runs alternate (serve, nginx, serve, ...); medians are printed with the targets.
    """
    import re
    import signal
    from urllib.request import urlopen

    from benchlib import build_mirror, free_port, wait_listening

    if not shutil.which("wrk"):
        if os.geteuid() != 0:
            sys.exit("bench: please install wrk (Debian package)")
        print("bench: installing wrk from Debian's packages", flush=True)
        subprocess.run(["apt-get", "install", "-y", "-qq", "wrk"], check=True, stdout=subprocess.DEVNULL,
                       env=dict(os.environ, DEBIAN_FRONTEND="noninteractive"))
    root = work / "serve-mirror"
    names = build_mirror(root, [64], 1000)
    big, small = names["large"][0], names["small"][0]
    port = free_port()
    conf = work / "serve-nginx.conf"
    conf.write_text(f"""
worker_processes 1;
daemon off;
user root;
pid {work}/serve-nginx.pid;
error_log {work}/serve-nginx-error.log;
events {{ worker_connections 1024; }}
http {{
    access_log off;
    sendfile on;
    tcp_nopush on;
    keepalive_requests 1000000;
    default_type application/octet-stream;
    server {{ listen 127.0.0.1:{port}; root {root}; }}
}}
""")
    nginx = subprocess.Popen(["nginx", "-c", str(conf), "-p", str(work)], stderr=subprocess.DEVNULL)
    wait_listening(port, nginx, "nginx")
    serve = subprocess.Popen(magedl + ["serve", str(root), "--port", "0"], stdout=subprocess.PIPE,
                             stderr=subprocess.DEVNULL, text=True)
    serve_url = serve.stdout.readline().strip()
    urls = {"magedl serve": serve_url, "nginx": f"http://127.0.0.1:{port}/"}
    unit = {"B": 1, "KB": 1 << 10, "MB": 1 << 20, "GB": 1 << 30, "TB": 1 << 40}

    def wrk(url, clients):
        out = subprocess.run(["wrk", "-t2", f"-c{clients}", f"-d{seconds}s", url], capture_output=True,
                             text=True, check=True).stdout
        rate = float(re.search(r"Requests/sec:\s*([\d.]+)", out).group(1))
        amount, suffix = re.search(r"Transfer/sec:\s*([\d.]+)(\w+)", out).groups()
        errors = re.search(r"Non-2xx or 3xx responses: (\d+)|Socket errors: (.*)", out)
        if errors:
            print(f"  (wrk reported errors: {errors.group(0)})", flush=True)
        return rate, float(amount) * unit[suffix]

    def compare(label, path, clients):
        rates = {who: [] for who in urls}
        volumes = {who: [] for who in urls}
        for _ in range(runs):
            for who, base in urls.items():
                rate, volume = wrk(base + path, clients)
                rates[who].append(rate)
                volumes[who].append(volume)
        medians = {who: (statistics.median(rates[who]), statistics.median(volumes[who])) for who in urls}
        for who, (rate, volume) in medians.items():
            print(f"  {label:<34} {who:<13} {rate:10.0f} req/s {volume / (1 << 20):9.1f} MiB/s", flush=True)
        return medians

    results = []
    try:
        print(f"\nserve. magedl serve vs nginx (one worker, sendfile) on the same folder, wrk -t2, {seconds} s runs")
        m = compare("64 KiB archive, 16 clients", f"file/{small}", 16)
        results.append(ratio("64 KiB archive req/s: 3500 / magedl serve", 3500 / m["magedl serve"][0], 1.0))
        m = compare("info/json (1,000 files), 16 clients", "info/json", 16)
        m = compare("64 MiB archive, 4 clients", f"file/{big}", 4)
        results.append(ratio("64 MiB throughput: nginx / magedl serve", m["nginx"][1] / m["magedl serve"][1],
                             round(1 / 0.9, 3)))
        feed = json.loads((root / "info" / "json").read_text())
        padding = [{"name": f"PAD-{i}", "file_name": f"PAD-{i:05d}.tar.gz", "md5": "0" * 32} for i in range(20000)]
        feeds = {}
        for size in (2000, 20000):
            listed = sum(len(entries) for versions in feed.values() for entries in versions.values())
            feeds[size] = json.dumps(dict(feed, **{"ce-patch": dict(feed["ce-patch"],
                                                                    **{"0.0.1": padding[:size - listed]})}))
        rates = {size: [] for size in feeds}
        for _ in range(runs):  # interleaved, so drift on a busy machine hits both sizes alike
            for size, text in feeds.items():
                (root / "info" / "json.new").write_text(text)
                os.replace(root / "info" / "json.new", root / "info" / "json")
                urlopen(serve_url + f"file/{small}").read()  # the one parse of this version, untimed
                rates[size].append(wrk(serve_url + f"file/{small}", 16)[0])
        per_size = {size: statistics.median(r) for size, r in rates.items()}
        for size, rate in per_size.items():
            print(f"  {'one archive, ' + format(size, ',') + '-file feed':<34} {'magedl serve':<13} "
                  f"{rate:10.0f} req/s", flush=True)
        results.append(ratio("one archive, 20,000 / 2,000 files (time per request)",
                             per_size[2000] / per_size[20000], 1.2))
        print(f"  peak RSS of magedl serve over the serve case: {peak_rss_mib(serve.pid):.1f} MiB", flush=True)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.communicate(timeout=30)
        nginx.terminate()
        nginx.wait()
    return results


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--quick", action="store_true", help="small sizes and 3 runs, to try the script")
    parser.add_argument("--only", choices=CASES, action="append")
    parser.add_argument("--json", metavar="PATH", help="also write the figures here")
    parser.add_argument("--serve-seconds", type=int,
                        help="seconds per wrk run in the serve case (default 5; 2 with --quick)")
    args = parser.parse_args()
    big, tls, slow, mirror_files = (128, 64, 64, 200) if args.quick else (1024, 512, 256, 1000)
    if args.quick:
        args.runs = 3
    cases = args.only or CASES
    ensure_tools()

    magedl = [sys.executable, "-m", "magedl"]
    work = Path(tempfile.mkdtemp(prefix="magedl-bench-"))
    os.chmod(work, 0o755)
    root = work / "mirror"
    names = build_mirror(root, [big, tls, slow], mirror_files)
    big_name, tls_name, slow_name = names["large"]
    small = names["small"][:200]
    ca, cert, key = make_ca(work)
    nginx, base, tls_port = start_nginx(work, root, cert, key)
    relay = LatencyRelay(tls_port).start()
    out = work / "out"
    # magedl runs from bytecode, as an installed copy does (pip compiles it), whatever this shell's
    # settings: the bytecode goes to the work folder (not the checkout), written by untimed warm-up runs.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGEDL_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(MAGEDL_MAGEID=MAGEID, MAGEDL_TOKEN=TOKEN, HOME=str(work), PYTHONPYCACHEPREFIX=str(work / "pycache"))
    auth = f"{MAGEID}:{TOKEN}"
    figures, ratios = [], []
    bench = Bench(args.runs, out, figures)

    def menv(url):
        return dict(env, MAGEDL_BASE_URL=url)

    try:
        for warm in (["--help"], ["-q", "get", small[0], "-o", str(work / "warm")],
                     ["-q", "--ca-bundle", str(ca), "get", small[1], "-o", str(work / "warm")]):
            subprocess.run(magedl + warm, env=menv(f"{base}/fast/" if "--ca-bundle" not in warm else
                                                   f"https://127.0.0.1:{tls_port}/fast/"),
                           stdout=subprocess.DEVNULL, check=True)
        print(f"bench: nginx at {base} (TLS on {tls_port}, +50 ms round trip on {relay.port}); "
              f"{args.runs} interleaved runs each; median wall time, peak RSS", flush=True)
        if "big" in cases:
            print(f"\n1. {big} MiB over plain HTTP, verified")
            url = f"{base}/fast/file/{big_name}"
            subprocess.run(["cat", str(root / "file" / big_name)], stdout=subprocess.DEVNULL, check=True)
            m = bench.compare("big", {
                "curl": (["curl", "-sSf", "-u", auth, "-o", big_name, url], None),
                "md5sum (page cache)": (["md5sum", str(root / "file" / big_name)], None),
                "magedl get": (magedl + ["-q", "get", big_name, "-o", "."], menv(f"{base}/fast/")),
            }, warm=big << 20)
            ratios.append(ratio("magedl / max(curl, md5sum)",
                                m["magedl get"] / max(m["curl"], m["md5sum (page cache)"]), 1.15))
        if "https" in cases:
            print(f"\n2. {tls} MiB over HTTPS (private CA)")
            url = f"https://127.0.0.1:{tls_port}/fast/file/{tls_name}"
            curl = f"curl -sSf --cacert {ca} -u {auth} -o {tls_name} {url}"
            m = bench.compare("https", {
                "curl": (["sh", "-c", curl], None),
                "curl && md5sum": (["sh", "-c", f"{curl} && md5sum {tls_name}"], None),
                "magedl get --ca-bundle": (magedl + ["-q", "--ca-bundle", str(ca), "get", tls_name, "-o", "."],
                                           menv(f"https://127.0.0.1:{tls_port}/fast/")),
            }, warm=tls << 20)
            ratios.append(ratio("magedl / (curl && md5sum)", m["magedl get --ca-bundle"] / m["curl && md5sum"], 0.80))
        if "latency" in cases:
            print(f"\n3. {len(small)} x 64 KiB over HTTPS through a 50 ms round-trip link")
            lbase = f"https://127.0.0.1:{relay.port}/fast/"
            urls = [f"{lbase}file/{n}" for n in small]
            m = bench.compare("latency", {
                "curl -Z --parallel-max 8": (["curl", "-sSf", "-Z", "--parallel-max", "8", "--cacert", str(ca),
                                              "-u", auth, "--remote-name-all", *urls], None),
                "aria2c -Z -j8": (["aria2c", "-q", "-Z", "-j8", f"--ca-certificate={ca}", f"--http-user={MAGEID}",
                                f"--http-passwd={TOKEN}", *urls], None),
                "magedl get (defaults)": (magedl + ["-q", "--ca-bundle", str(ca), "get", *small, "-o", "."],
                                          menv(lbase)),
            })
            ratios.append(ratio("magedl / curl -Z", m["magedl get (defaults)"] / m["curl -Z --parallel-max 8"], 1.0))
        if "perfile" in cases:
            print("\n4. cost per extra small file on loopback ((200 files - 20 files) / 180)")
            # -Z: each URL is a file of its own (without it aria2c takes them all as mirrors of one file).
            aria = ["aria2c", "-q", "-Z", "-j8", f"--http-user={MAGEID}", f"--http-passwd={TOKEN}"]
            m = bench.compare("perfile", {
                "aria2c -Z -j8, 20": (aria + [f"{base}/fast/file/{n}" for n in small[:20]], None),
                "aria2c -Z -j8, 200": (aria + [f"{base}/fast/file/{n}" for n in small], None),
                "magedl get, 20": (magedl + ["-q", "get", *small[:20], "-o", "."], menv(f"{base}/fast/")),
                "magedl get, 200": (magedl + ["-q", "get", *small, "-o", "."], menv(f"{base}/fast/")),
            })
            mag = (m["magedl get, 200"] - m["magedl get, 20"]) / 180
            ari = (m["aria2c -Z -j8, 200"] - m["aria2c -Z -j8, 20"]) / 180
            print(f"  per extra file: magedl {mag * 1000:.2f} ms, aria2c {ari * 1000:.2f} ms")
            ratios.append(ratio("magedl / aria2c per extra file", mag / ari if ari > 0 else float("inf"), 1.0))
        if "slow" in cases:
            print(f"\n5. {slow} MiB, nginx limit_rate 20m per connection")
            url = f"{base}/slow/file/{slow_name}"
            senv = menv(f"{base}/slow/")
            m = bench.compare("slow", {
                "curl": (["curl", "-sSf", "-u", auth, "-o", slow_name, url], None),
                "aria2c -x16 -s16": (["aria2c", "-q", "-x16", "-s16", "-k1M", f"--http-user={MAGEID}",
                                      f"--http-passwd={TOKEN}", "-o", slow_name, url], None),
                "magedl get (defaults)": (magedl + ["-q", "get", slow_name, "-o", "."], senv),
                "magedl get --connections 16": (magedl + ["-q", "get", slow_name, "-o", ".", "--connections", "16"],
                                                senv),
            })
            ratios.append(ratio("magedl default / curl", m["magedl get (defaults)"] / m["curl"], 0.25))
            ratios.append(ratio("magedl -c16 / aria2c -x16", m["magedl get --connections 16"] / m["aria2c -x16 -s16"],
                                1.1))
        if "mirror" in cases:
            print(f"\n5. an up-to-date mirror of {mirror_files} files, re-run")
            dest = out / "m"
            menv_ = menv(f"{base}/fast/")
            shutil.rmtree(out, ignore_errors=True)
            out.mkdir(parents=True)
            subprocess.run(magedl + ["-q", "mirror", str(dest), "--type", "ce-patch"], env=menv_, check=True)
            m = bench.compare("mirror", {"magedl mirror (up to date)": (
                magedl + ["-q", "mirror", str(dest), "--type", "ce-patch"], menv_)}, keep=True)
            print(f"  (target <= 0.6 s: {'met' if m['magedl mirror (up to date)'] <= 0.6 else 'MISSED'})")
        if "composer" in cases:
            print("\n6. a Composer mirror of a 500-package closure (emulated repo.magento.com and packagist)")
            from bench_composer import run as composer_case

            composer_case(bench, work, magedl, env)
        if "startup" in cases:
            print("\n5. start-up")
            exe = shutil.which("magedl") or ""
            m = bench.compare("startup", {"magedl --help": ([exe, "--help"] if exe else magedl + ["--help"], None)})
            print(f"  (target <= 0.25 s: {'met' if m['magedl --help'] <= 0.25 else 'MISSED'})")
        if "serve" in cases:
            seconds = args.serve_seconds or (2 if args.quick else 5)
            ratios.extend(serve_case(work, magedl, 1 if args.quick else 3, seconds))
        if "scale" in cases:
            print("\n7. scale: how a mirror's cost grows with its size (issue 18)")
            from bench_scale import run as scale_case

            scale_case(bench, work, base, magedl, env, ratios, quick=args.quick)
        peaks = [f["peak_rss_mib"] for f in figures if f["tool"].startswith("magedl")]
        if peaks:  # (the serve case measures its long-running server itself)
            print(f"\npeak RSS of magedl over every case: {max(peaks):.1f} MiB (target <= 64)")
    finally:
        relay.stop()
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(work, ignore_errors=True)
    cpu = next((line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name")), "?")
    print(f"machine: {os.cpu_count()} cores, {cpu}; Python {sys.version.split()[0]}")
    if args.json:
        Path(args.json).write_text(json.dumps({"cpu": cpu, "cores": os.cpu_count(), "figures": figures,
                                               "ratios": ratios}, indent=2))


if __name__ == "__main__":
    main()
