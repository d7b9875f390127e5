"""The Composer mirror case of ``make bench``: a closure of about 500 packages from emulated repositories.

:func:`run` is called by ``scripts/bench.py`` as the case ``composer``. It
grows the fixture graph (:func:`magedl.emulator.composer_graph.build_graph` with
``size``) to a release-sized closure, serves it as repo.magento.com
(providers layout, Marketplace keys) and packagist (p2, minified, changes
feed) on loopback, in this process, and times, interleaved, a cold
``magedl mirror DIR --composer-require magento/project-community-edition:2.4.7``
and the same run on an up-to-date mirror. It prints both, and what the
up-to-date run asked the repositories.

Run alone: ``python scripts/bench_composer.py [--runs N] [--size N]``.
"""

import argparse
import contextlib
import dataclasses
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

from benchlib import measured

PROJECT = "magento/project-community-edition:2.4.7"


@contextlib.contextmanager
def serving(work, magedl_cmd, env, size):
    """Serve a *size*-package closure on loopback and make one mirror of it (untimed); yield a :class:`Served`.

    The emulated repositories answer from this process, on threads: their work shares the cores
    with magedl's (the reason ``scripts/bench_scale.py`` prints magedl's own CPU beside its wall).
    """
    from magedl.emulator.composer import ComposerRepos
    from magedl.emulator.composer_graph import build_graph

    graph = build_graph(0, size=size)
    with ComposerRepos(graph=graph) as repos:
        public, private = repos.keys["commerce"]
        host = repos.magento_url.split("//", 1)[1].rstrip("/")
        home = Path(work) / f"composer-home-{size}"
        home.mkdir(parents=True, exist_ok=True)
        cenv = {k: v for k, v in env.items() if not k.startswith("COMPOSER")}
        cenv.update(COMPOSER_HOME=str(home),
                    COMPOSER_AUTH=json.dumps({"http-basic": {host: {"username": public, "password": private}}}))
        upstream = ["--composer-repo", repos.magento_url, "--composer-repo", repos.packagist_url,
                    "--composer-require", PROJECT]
        warm = Path(work) / f"composer-mirror-{size}"
        shutil.rmtree(warm, ignore_errors=True)
        subprocess.run([*magedl_cmd, "-q", "mirror", str(warm), *upstream], env=cenv, check=True)
        held = sum(1 for _ in (warm / "composer" / "dist").rglob("*.zip"))
        packages = len(json.loads((warm / "composer" / "packages.json").read_text())["available-packages"])
        try:
            yield Served(repos, cenv, [*magedl_cmd, "-q", "mirror", "m", *upstream],
                         [*magedl_cmd, "-q", "mirror", str(warm), *upstream], packages, held)
        finally:
            shutil.rmtree(warm, ignore_errors=True)


@dataclasses.dataclass(frozen=True)
class Served:
    """A served closure: the commands of a cold mirror (into the current folder) and of an up-to-date one."""

    repos: object
    env: dict
    cold: list
    up_to_date: list
    packages: int
    archives: int

    def asked(self):
        """What an up-to-date re-run asks the repositories (one more run, untimed): a list of paths."""
        apps = (self.repos.magento_app, self.repos.packagist_app)
        before = [len(app.requests) for app in apps]
        subprocess.run(self.up_to_date, env=self.env, check=True)
        return [path for app, n in zip(apps, before) for _, path in app.requests[n:]]


def run(bench, work, magedl_cmd, env, size=500):
    """Time a cold Composer mirror of a *size*-package closure and its up-to-date re-run.

    Parameters
    ----------
    bench : scripts.bench.Bench
        ``bench.compare(case, {label: (cmd, env)})`` runs the commands interleaved, each in a new
        folder under ``bench.out``, and prints their medians.
    work : Path
        A scratch folder of the benchmark.
    magedl_cmd : list of str
        How to run magedl (``[sys.executable, "-m", "magedl"]``).
    env : dict
        The environment for magedl; COMPOSER_* are replaced.

    Returns
    -------
    dict
        ``{label: median wall seconds}``.
    """
    with serving(work, magedl_cmd, env, size) as served:
        print(f"\nComposer mirror of a {served.packages}-package closure ({served.archives} archives) from emulated "
              "repo.magento.com (providers) and packagist (p2, minified) on loopback", flush=True)
        medians = compare(bench, {
            "magedl mirror --composer-require (cold)": (served.cold, served.env),
            "magedl mirror --composer-require (up to date)": (served.up_to_date, served.env),
        })
        asked = served.asked()
        print(f"  an up-to-date re-run asked the repositories {len(asked)} time(s): "
              f"{', '.join(sorted(p.split('?')[0] for p in asked)[:6])}{' ...' if len(asked) > 6 else ''}",
              flush=True)
    return medians


def timed(cmd, out_dir, env):
    """:func:`benchlib.measured` of one command, run in a new folder under *out_dir*.

    Nothing is deleted between runs; the caller removes *out_dir* at the end. On ext4 without a journal
    (this machine's), a file made within minutes of many deletions nearby costs a scan past each deleted
    inode, so a cold run right after removing the last run's output would measure that removal too, and
    more so the larger it was (docs/scale.md, "Deleted files nearby").
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    return measured(cmd, env, tempfile.mkdtemp(prefix="run-", dir=out_dir))


def compare(bench, commands):
    """Run *commands* (``{label: (cmd, env)}``) interleaved, ``bench.runs`` times; print and return median walls.

    Beside the wall time it prints user+sys CPU seconds, which move little with the machine's load,
    and the peak RSS; each goes into ``bench.figures`` as the ``composer`` case.
    """
    runs = {label: [] for label in commands}
    for _ in range(bench.runs):
        for label, (cmd, env) in commands.items():
            runs[label].append(timed(cmd, bench.out, env))
    medians = {}
    for label, figures in runs.items():
        wall = statistics.median(f[0] for f in figures)
        cpu = statistics.median(f[1] for f in figures)
        rss = max(f[2] for f in figures)
        medians[label] = wall
        bench.figures.append({"case": "composer", "tool": label, "wall_s": round(wall, 3), "cpu_s": round(cpu, 3),
                              "peak_rss_mib": round(rss, 1)})
        print(f"  {label:<48} {wall:8.3f} s wall {cpu:8.3f} s CPU {rss:7.1f} MiB", flush=True)
    return medians


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--size", type=int, default=500)
    args = parser.parse_args()
    sys.path.insert(0, str(Path(__file__).resolve().parent))
    from bench import Bench

    work = Path(tempfile.mkdtemp(prefix="magedl-bench-composer-"))
    try:
        figures = []
        run(Bench(args.runs, work / "out", figures), work, [sys.executable, "-m", "magedl"],
            {k: v for k, v in os.environ.items() if not k.startswith("MAGEDL_")} | {"HOME": str(work)},
            size=args.size)
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
