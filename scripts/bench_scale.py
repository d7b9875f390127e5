"""The ``scale`` case of ``make bench`` (issue 18): how a mirror's cost grows with its size.

:func:`run` is called by ``scripts/bench.py`` as the case ``scale``. It prints
the issue's table: a release mirror of N tiny files served by the same nginx
on loopback (so the cost measured is magedl's own, not the network's), for a
small and a large N: the cold mirror, an up-to-date re-run, ``verify``, and the
peak RSS of the three; then the Composer closure at two sizes
(``scripts/bench_composer.py``), then ``serve`` against nginx
(:func:`serve_throughput`). Growth ratios come with the linear bound they are
held to (5% over the ratio of the sizes). Each release command runs once: the
large sizes take minutes. The Composer closures run in interleaved rounds, and
their growth is the median of the rounds' ratios, in wall and in magedl's CPU.

Run alone: ``python scripts/bench_scale.py [--quick] [--sizes 1000,20000,100000] [--release-only | --composer-only]``
(100,000 files: the cold mirror takes minutes).
"""

import argparse
import contextlib
import hashlib
import json
import os
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

from benchlib import measured

RELEASE_SIZES = (1000, 20000)
COMPOSER_SIZES = (500, 5000)
QUICK_RELEASE_SIZES = (200, 2000)
QUICK_COMPOSER_SIZES = (100, 500)
COMPOSER_ROUNDS = 3  # the sizes interleaved; each growth ratio is the median of the rounds'


def tiny_mirror_source(root, n):
    """The API layout with *n* files of about 100 bytes each (one ``ce-patch`` version per 100 files)."""
    files = root / "file"
    files.mkdir(parents=True)
    (root / "info").mkdir()
    feed = {"ce-patch": {}}
    for i in range(n):
        name = f"PATCH_SCALE-{i:06d}.tar.gz"
        data = b"\x1f\x8b\x08\x00" + hashlib.sha256(str(i).encode()).digest() * 3
        (files / name).write_bytes(data)
        feed["ce-patch"].setdefault(f"9.{i // 100}.0", []).append(
            {"name": name, "file_name": name, "md5": hashlib.md5(data).hexdigest()})
    (root / "info" / "json").write_text(json.dumps(feed))
    os.chmod(root, 0o755)


def release_scale(work, base, magedl, env, sizes):
    """The release rows: ``{n: {"cold", "rerun", "verify", "rss", ...}}``; *base* serves ``work/scale/n<N>/``.

    Each command's wall time, user+sys CPU time and peak RSS are printed (CPU time and RSS move little
    when the machine is shared; wall time does).
    """
    rows = {}
    for n in sizes:
        dest = work / f"scale-mirror-{n}"
        shutil.rmtree(dest, ignore_errors=True)
        menv = dict(env, MAGEDL_BASE_URL=f"{base}/fast/scale/n{n}/")
        mirror = [*magedl, "-q", "mirror", str(dest), "--type", "ce-patch"]
        row = rows[n] = {}
        for key, cmd in (("cold", mirror), ("rerun", mirror), ("verify", [*magedl, "-q", "verify", str(dest)])):
            row[key], row[f"{key}_cpu"], row[f"{key}_rss"] = measured(cmd, menv, work)
        row["rss"] = max(row["cold_rss"], row["rerun_rss"], row["verify_rss"])
        print(f"  {n:>7,} files", flush=True)
        for key, label in (("cold", "cold"), ("rerun", "re-run"), ("verify", "verify")):
            print(f"      {label:<7} {row[key]:7.2f} s wall  {row[f'{key}_cpu']:7.2f} s CPU (user+sys)  "
                  f"peak RSS {row[f'{key}_rss']:6.1f} MiB", flush=True)
    return rows  # the mirrors stay until the end (bench_composer.timed says why)


def growth(label, small, large, factor, figures, detail=""):
    """Print one growth ratio against the linear bound (*factor*: how many times larger the input is)."""
    value = large / small if small else float("inf")
    bound = 1.05 * factor
    verdict = "linear" if value <= bound else "MORE THAN LINEAR"
    print(f"  growth {label}: {value:.2f} x for {factor:.3g} x the size{detail} (linear bound {bound:.1f}: {verdict})",
          flush=True)
    figures.append({"ratio": f"scale {label}", "value": round(value, 3), "target": round(bound, 2),
                    "met": value <= bound})


def composer_scale(work, magedl, env, sizes, runs):
    """The Composer rows: ``{size: {"cold": [(wall, cpu, rss), ...], "rerun": [...], "archives": n}}``.

    Both closures are served at once and their runs interleaved (small cold, small up to date, large
    cold, large up to date; then large first; *runs* rounds), so a slower stretch of the shared machine
    lands on both sizes and each growth ratio is taken within one round.
    """
    from bench_composer import serving, timed

    rows = {}
    with contextlib.ExitStack() as stack:
        served = {size: stack.enter_context(serving(work, magedl, env, size)) for size in sizes}
        for size, closure in served.items():
            rows[size] = {"cold": [], "rerun": [], "archives": closure.archives}
        for round_ in range(runs):
            for size in (sizes if round_ % 2 == 0 else sizes[::-1]):  # each size goes first in turn
                closure = served[size]
                rows[size]["cold"].append(timed(closure.cold, work / "out", closure.env))
                rows[size]["rerun"].append(timed(closure.up_to_date, work / "out", closure.env))
    return rows


def composer_growth(rows, sizes, figures):
    """Print the Composer rows and their growth: per round, large / small, wall and CPU; the median is judged."""
    small, large = sizes
    print(f"\nComposer closure, {len(rows[small]['cold'])} interleaved rounds (medians; wall includes the "
          "emulator's work on the same cores, CPU is magedl's own user+sys)", flush=True)
    for size, row in rows.items():
        cells = []
        for key, label in (("cold", "cold"), ("rerun", "up to date")):
            wall = statistics.median(f[0] for f in row[key])
            cpu = statistics.median(f[1] for f in row[key])
            cells.append(f"{label} {wall:6.2f} s wall {cpu:6.2f} s CPU {max(f[2] for f in row[key]):5.1f} MiB")
        print(f"  {size:>6,} packages ({row['archives']:,} archives): {'; '.join(cells)}", flush=True)
    archives = rows[large]["archives"] / rows[small]["archives"]
    for key in ("cold", "rerun"):
        for what, i in (("wall", 0), ("CPU", 1)):
            ratios = [b[i] / a[i] for a, b in zip(rows[small][key], rows[large][key]) if a[i]]
            shown = ", ".join(f"{r:.1f}" for r in ratios)
            growth(f"composer {key} {what}, {large:,} / {small:,} packages", 1.0, statistics.median(ratios),
                   large / small, figures, detail=f" ({archives:.3g} x the archives; the median of rounds {shown})")


def serve_throughput(work, root, base, magedl, env, figures):
    """``serve`` against nginx over the same mirror: one archive and info/json at two sizes.

    The place for issue 18 item 3's per-size figures; the keep-alive load against nginx is
    ``scripts/bench.py``'s own case ``serve``.
    """
    print("  serve against nginx: see the case 'serve' of scripts/bench.py (issue 18 item 3)", flush=True)


TARGETS = {20000: (1.0, 80), 100000: (4.0, 128)}  # re-run seconds, its peak RSS MiB (issue 18)


def run(bench, work, base, magedl, env, figures, quick=False, sizes=None, release_only=False,
        composer_only=False):
    """Print the scale table. *base*: nginx's plain-HTTP URL, serving ``work/mirror`` under ``/fast/``.

    *sizes*: the release mirror sizes (default: two, small then large); *release_only* leaves out the
    Composer closures and serve, *composer_only* the release mirrors.
    """
    sizes = tuple(sizes or (QUICK_RELEASE_SIZES if quick else RELEASE_SIZES))
    source = Path(work) / "mirror" / "scale"
    try:
        return _run(work, base, magedl, env, figures, quick, sizes, release_only, composer_only, source)
    finally:  # every output is removed at the end only (bench_composer.timed says why)
        for folder in (source, *(Path(work) / f"scale-mirror-{n}" for n in sizes), Path(work) / "out"):
            shutil.rmtree(folder, ignore_errors=True)


def _run(work, base, magedl, env, figures, quick, sizes, release_only, composer_only, source):
    rows = {}
    if not composer_only:
        rows = _release(work, base, magedl, env, figures, sizes, source)
    if release_only:
        return rows, {}
    csizes = QUICK_COMPOSER_SIZES if quick else COMPOSER_SIZES
    crows = composer_scale(Path(work), magedl, env, csizes, COMPOSER_ROUNDS)
    composer_growth(crows, csizes, figures)
    print("  targets (10,244 archives): up to date <= 1.5 s and <= 96 MiB, cold <= 96 MiB", flush=True)
    serve_throughput(Path(work), source, base, magedl, env, figures)
    return rows, crows


def _release(work, base, magedl, env, figures, sizes, source):
    for n in sizes:
        print(f"scale: writing {n:,} tiny files", flush=True)
        tiny_mirror_source(source / f"n{n}", n)
    print(f"\nA release mirror of N tiny files from nginx on loopback (each command once; figures from a "
          f"{os.cpu_count()}-core machine, shared)", flush=True)
    rows = release_scale(Path(work), base, magedl, env, sizes)
    small = sizes[0]
    for large in sizes[1:]:
        factor = large / small
        for key in ("cold", "rerun", "verify"):
            growth(f"release {key}, {large:,} / {small:,} files", rows[small][key], rows[large][key], factor,
                   figures)
    for n, (seconds, mib) in TARGETS.items():
        if n in rows:
            row = rows[n]
            print(f"  targets at {n:,} files: re-run <= {seconds} s and <= {mib} MiB; here {row['rerun']:.2f} s "
                  f"({row['rerun_cpu']:.2f} s CPU) and {row['rerun_rss']:.1f} MiB "
                  f"(the cold run: {row['cold_rss']:.1f} MiB)", flush=True)
    return rows


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help=f"sizes {QUICK_RELEASE_SIZES} and {QUICK_COMPOSER_SIZES}")
    parser.add_argument("--sizes", type=lambda v: tuple(int(n) for n in v.split(",")),
                        help="release mirror sizes, comma-separated, smallest first (e.g. 1000,20000,100000)")
    parser.add_argument("--release-only", action="store_true", help="leave out the Composer closures and serve")
    parser.add_argument("--composer-only", action="store_true", help="leave out the release mirrors")
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench import Bench
    from benchlib import MAGEID, TOKEN, ensure_tools, make_ca, start_nginx

    ensure_tools()
    work = Path(tempfile.mkdtemp(prefix="magedl-bench-scale-"))
    os.chmod(work, 0o755)
    (work / "mirror").mkdir()
    _, cert, key = make_ca(work)
    nginx, base, _ = start_nginx(work, work / "mirror", cert, key)
    # Bytecode cached as an installed magedl has it (bench.py does the same): compiling is not the cost measured.
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGEDL_") and k != "PYTHONDONTWRITEBYTECODE"}
    env.update(MAGEDL_MAGEID=MAGEID, MAGEDL_TOKEN=TOKEN, HOME=str(work), PYTHONPYCACHEPREFIX=str(work / "pycache"))
    try:
        figures = []
        run(Bench(1, work / "out", figures), work, base, [sys.executable, "-m", "magedl"], env, figures,
            quick=args.quick, sizes=args.sizes, release_only=args.release_only,
            composer_only=args.composer_only)
    finally:
        nginx.terminate()
        nginx.wait()
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
