"""`make chaos`: kill ``magedl get`` and ``magedl mirror`` with SIGKILL at random moments, and feed disagreeing answers.

Each round starts the real command against the emulator on 127.0.0.1, waits
until the emulator has served a seeded random number of bytes of the file
(synchronised on its byte counter, never on sleeps), kills the process with
SIGKILL, and checks what it left: the sidecar must only claim bytes that are
on disk and right. After the kills, one run goes to the end. Then:

- every run after a kill continued from what the sidecar held (no request
  from byte 0 once bytes were kept);
- the file's md5 is the feed's, and nothing of magedl's is left beside it;
- the bytes the emulator served stay within one copy of the file plus half a
  second of transfer per kill (the sidecar is saved at least every 0.5 s).

Then the divergence runs (issue 17): a server whose 206 answers carry other
bytes than its 200 answer under the same ETag, a disk slowed to tens of MB/s
(injected at :class:`magedl.transfer.disk.Disk`), ``--connections N`` or the
default adaptive split, seeded random tunings. Every run must end either in
exit 6 (the md5 refuses the splice) or with the bytes on disk matching the
md5 it reports.

``tests/transfer/test_crashloop.py`` and ``tests/transfer/test_divergence.py``
run short loops of each kind; this script runs longer ones::

    python scripts/chaos.py [--kills 25] [--rounds 3] [--seed 1] [--size-mib 16] [--divergent 60]
"""

import argparse
import hashlib
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests"))  # the loopback server of the tests

from transfer.loopback import Loopback  # noqa: E402

from magedl.config import Settings  # noqa: E402
from magedl.emulator import Emulator, demo_catalogue, make_file  # noqa: E402
from magedl.errors import IntegrityError  # noqa: E402
from magedl.paths import PART_SUFFIX, STATE_SUFFIX  # noqa: E402
from magedl.server import MemoryStore  # noqa: E402
from magedl.service.api import Client  # noqa: E402
from magedl.service.catalog import Release  # noqa: E402
from magedl.service.retry import RetryPolicy  # noqa: E402
from magedl.transfer import disk as disklib  # noqa: E402
from magedl.transfer.fetch import fetch_release  # noqa: E402
from magedl.transfer.options import TransferOptions, Tuning  # noqa: E402

BIG = "Magento-CE-2.4.7.tar.gz"


@dataclass
class Outcome:
    """What one crash loop measured."""

    size: int
    kills: int
    served: int  # body bytes of the file the emulator sent, over every run
    allowance: int  # size + kills x half a second of transfer
    md5_ok: bool
    leftovers: list
    restarts: int  # runs that fetched from byte 0 although the sidecar held bytes

    @property
    def overhead_per_kill(self):
        return (self.served - self.size) / self.kills if self.kills else 0.0

    @property
    def ok(self):
        return self.md5_ok and not self.leftovers and self.served <= self.allowance and not self.restarts


def check_sidecar(folder, data):
    """Every byte the sidecar claims is on disk and right; returns the bytes claimed (0 if none)."""
    sidecar = folder / (BIG + STATE_SUFFIX)
    if not sidecar.exists():
        return 0
    doc = json.loads(sidecar.read_text())
    part = (folder / (BIG + PART_SUFFIX)).read_bytes()
    claimed = 0
    for start, _end, done in doc["segments"]:
        if part[start:start + done] != data[start:start + done]:
            raise AssertionError(f"the sidecar claims bytes {start}-{start + done} that are not the file's")
        claimed += done
    return claimed


def crash_loop(emulator, folder, *, connections, kills, seed, rate, timeout=60):
    """Kill ``magedl get`` *kills* times at seeded random byte counts, then let it finish.

    Parameters
    ----------
    emulator : magedl.emulator.Emulator
        Serving ``BIG``; its ``rate`` fault is set to *rate* (bytes/s per connection).
    folder : Path
        The output folder (``-o``).
    connections : int
        ``--connections``: 1 for a single stream, more for a segmented transfer.
    """
    data = emulator.store.data(BIG)
    size = len(data)
    rnd = random.Random(seed)
    emulator.set_faults(rate=rate)
    emulator.clear_log()
    env = dict(os.environ, MAGEDL_BASE_URL=emulator.base_url, MAGEDL_MAGEID=emulator.mageid,
               MAGEDL_TOKEN=emulator.token)
    cmd = [sys.executable, "-m", "magedl", "-q", "get", BIG, "-o", str(folder), "--connections", str(connections)]
    done_kills = restarts = 0

    def settle(mark, kept):
        """Wait until the emulator has logged this run's requests; count a restart from byte 0."""
        emulator.wait_for(lambda s: not [r for r in s.in_flight if r.file_name == BIG], timeout=timeout)
        ran = [r for r in emulator.log[mark:] if r.file_name == BIG and r.method == "GET"]
        return int(kept > 0 and any(r.range is None for r in ran))

    for _ in range(kills):
        kept = check_sidecar(folder, data)
        before = emulator.bytes_sent(BIG)
        mark = len(emulator.log)
        target = before + max(1, int(rnd.uniform(0.1, 0.6) * (size - kept)))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        # Woken by every chunk the emulator serves; the short timeout only notices a process
        # that ended without being killed (finished early, or failed).
        while not emulator.wait_for(lambda s: s.bytes_sent(BIG) >= target, timeout=0.2):
            if proc.poll() is not None:
                break
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")
            if proc.returncode != 0:
                raise AssertionError(f"magedl get failed before the kill ({proc.returncode}): {err}")
            break  # it finished before the kill point: the loop is over
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        done_kills += 1
        # The emulator notices the closed sockets; only then are its counters final for this round.
        restarts += settle(mark, kept)
    kept, mark = check_sidecar(folder, data), len(emulator.log)
    final = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
    if final.returncode != 0:
        raise AssertionError(f"the last run failed ({final.returncode}): {final.stderr.decode(errors='replace')}")
    restarts += settle(mark, kept)
    got = (folder / BIG).read_bytes() if (folder / BIG).exists() else b""
    leftovers = sorted(p.name for p in folder.iterdir() if ".magedl-" in p.name)
    allowance = size + done_kills * int(rate * connections * 0.5)
    return Outcome(size, done_kills, emulator.bytes_sent(BIG), allowance,
                   hashlib.md5(got).hexdigest() == hashlib.md5(data).hexdigest(), leftovers, restarts)


@dataclass
class MirrorOutcome:
    """What one mirror crash loop measured."""

    kills: int
    served: int  # body bytes of every file the emulator sent, over every run
    allowance: int  # the files' total size + kills x half a second of transfer
    problems: list  # what was wrong: index entries not backed by the bytes, md5s, verify, leftovers

    @property
    def ok(self):
        return not self.problems and self.served <= self.allowance


def check_index(root):
    """Problems with ``SHA256SUMS`` as it stands: every line must describe bytes that are there."""
    sums = root / "SHA256SUMS"
    if not sums.exists():
        return []
    problems = []
    for line in sums.read_text().splitlines():
        digest, _, rel = line.partition("  ")
        path = root / rel
        if not path.is_file() or hashlib.sha256(path.read_bytes()).hexdigest() != digest:
            problems.append(f"SHA256SUMS lists {rel} but the bytes there differ or are missing")
    return problems


def check_delta(root, delta):
    """Problems with the delta file of a mirror that started empty: it must list every path ``SHA256SUMS``
    lists, and ``SHA256SUMS`` itself, whatever the kills interrupted (a copy across the gap built from it
    would otherwise lack a file its index names)."""
    listed = {line.partition("  ")[2] for line in (root / "SHA256SUMS").read_text().splitlines()}
    missing = sorted((listed | {"SHA256SUMS"}) - set(delta.read_text().splitlines()))
    return [f"the delta file lacks {len(missing)} changed path(s): {', '.join(missing[:3])}"] if missing else []


def mirror_crash_loop(emulator, root, *, kills, seed, rate, jobs=2, timeout=60):
    """Kill ``magedl mirror`` *kills* times at seeded random moments, then let it finish.

    Synchronised on the bytes the emulator served in all. After every kill the
    index may only describe files that are present and right; at the end every
    file matches the feed's md5, ``magedl verify`` and ``sha256sum -c`` accept
    the mirror, the delta file lists every path of its index, and no partial file is left.
    """
    rnd = random.Random(seed)
    emulator.set_faults(rate=rate)
    emulator.clear_log()
    feed = {r.file_name: r.md5 for r in emulator.store.releases() if r.type == "ce-full"}
    total = sum(len(emulator.store.data(name)) for name in feed)
    env = dict(os.environ, MAGEDL_BASE_URL=emulator.base_url, MAGEDL_MAGEID=emulator.mageid,
               MAGEDL_TOKEN=emulator.token)
    cmd = [sys.executable, "-m", "magedl", "-q", "mirror", str(root), "--type", "ce-full", "--jobs", str(jobs),
           "--connections", "1"]
    done_kills, problems = 0, []
    for _ in range(kills):
        before = emulator.bytes_sent()
        target = before + max(1, int(rnd.uniform(0.05, 0.4) * total))
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        while not emulator.wait_for(lambda s: s.bytes_sent() >= target, timeout=0.2):
            if proc.poll() is not None:
                break
        if proc.poll() is not None:
            err = proc.stderr.read().decode(errors="replace")
            if proc.returncode != 0:
                raise AssertionError(f"magedl mirror failed before the kill ({proc.returncode}): {err}")
            break
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stderr.close()
        done_kills += 1
        emulator.wait_for(lambda s: not s.in_flight, timeout=timeout)
        problems += check_index(root)
    delta = root.parent / f"{root.name}.delta"  # the first delta file: every change since the mirror was empty
    final = subprocess.run([*cmd, "--diff-file", str(delta)], env=env, capture_output=True, timeout=timeout)
    if final.returncode != 0:
        err = final.stderr.decode(errors="replace")
        raise AssertionError(f"the last mirror run failed ({final.returncode}): {err}")
    for name, md5 in feed.items():
        path = root / "file" / name
        if not path.is_file() or (md5 and hashlib.md5(path.read_bytes()).hexdigest() != md5):
            problems.append(f"{name}: missing or not the feed's md5")
    problems += check_index(root)
    problems += check_delta(root, delta)
    verify = subprocess.run([sys.executable, "-m", "magedl", "-q", "verify", str(root)], capture_output=True)
    if verify.returncode != 0:
        problems.append(f"magedl verify exited {verify.returncode}: {verify.stdout.decode(errors='replace')[-300:]}")
    sha = subprocess.run(["sha256sum", "--quiet", "-c", "SHA256SUMS"], cwd=root, capture_output=True)
    if sha.returncode != 0:
        problems.append(f"sha256sum -c failed: {sha.stdout.decode(errors='replace')[-300:]}")
    problems += [f"left over: {p.relative_to(root)}" for p in root.rglob("*") if ".magedl-" in p.name]
    allowance = total + done_kills * int(rate * jobs * 0.5)
    return MirrorOutcome(done_kills, emulator.bytes_sent(), allowance, problems)


def emulator_with_files(count):
    """An emulator whose ``ce-full`` category holds *count* tiny files (the scale crash loop, issue 18)."""
    feed, files = {"ce-full": {}}, {}
    for i in range(count):
        name = f"Magento-CE-SCALE-{i:06d}.zip"
        data = b"PK\x03\x04" + hashlib.sha256(str(i).encode()).digest() * 2
        files[name] = data
        feed["ce-full"].setdefault(f"9.{i // 100}.{i % 100}", []).append(
            {"name": name, "file_name": name, "md5": hashlib.md5(data).hexdigest()})
    return Emulator(store=MemoryStore(feed, files)).start()


@contextmanager
def slow_disk(rate):
    """Every write through :class:`magedl.transfer.disk.Disk` takes as long as *rate* bytes/s allows.

    The sleep is the slow disk itself (a NAS, a busy VM disk), not a way of
    waiting for something: nothing is synchronised on it.
    """
    original = disklib.Disk.write

    def write(self, block, at, *args, **kwargs):
        original(self, block, at, *args, **kwargs)
        time.sleep(len(block) / rate)  # the page lands at once, the writer is busy a while

    disklib.Disk.write = write
    try:
        yield
    finally:
        disklib.Disk.write = original


@dataclass
class DivergentRun:
    """One download from a server whose ranged answers disagree with its whole-file answer."""

    setting: str  # what was drawn, to replay it
    outcome: str  # "verified" (bytes on disk match the md5), "refused" (exit 6), or what went wrong

    @property
    def ok(self):
        return self.outcome in ("verified", "refused")


def divergent_tuning(rnd):
    """A random small tuning: blocks larger or smaller than the smallest split, pieces of any size."""
    return Tuning(block=rnd.choice([16, 64, 256, 1024]) << 10,
                  piece=rnd.choice([32, 128, 1024]) << 10, min_split=rnd.choice([16, 64, 256]) << 10,
                  align=rnd.choice([4, 64]) << 10, expand_after=rnd.choice([0.01, 0.05]),
                  progress_interval=0)


def divergent_run(data, folder, rnd, mode, rate=None):
    """Fetch *data* once from a server whose 206 answers are garbled at their start; judge the outcome.

    *mode*: ``"connections"`` (``--connections N``, all open at once, blocks
    larger than the smallest split), ``"adaptive"`` (the default options: one connection,
    split once it proves slow) or ``"random"`` (adaptive with a random small tuning).
    """
    md5 = hashlib.md5(data).hexdigest()
    garble = rnd.choice([4, 64, 256]) << 10
    garble_count = rnd.choice([1, None])
    when = None
    rate = rate or rnd.choice([20, 40, 80]) << 20
    if mode == "adaptive":
        options = TransferOptions()
    elif mode == "connections":
        # Blocks larger than the smallest split: a split may then cut into a block its worker holds.
        tuning = Tuning(block=256 << 10, piece=1 << 20, min_split=16 << 10, align=4 << 10,
                        progress_interval=0)
        options = TransferOptions(connections=rnd.choice([2, 4, 8]), adaptive=False, tuning=tuning)
        when = lambda start, end: start % tuning.piece != 0  # noqa: E731 - answers to splits, not whole pieces
    else:
        options = TransferOptions(tuning=divergent_tuning(rnd))
    setting = (f"{mode}: {options.connections} connections, {rate >> 20} MB/s disk, garble {garble >> 10} KiB "
               f"of {'every' if garble_count is None else 'the first'} 206, {options.tuning}")
    release = Release(name="Magento Open Source 2.4.7", file_name=BIG, version="2.4.7", type="ce-full", md5=md5)
    with Loopback(data) as server, slow_disk(rate):
        server.garble, server.garble_count, server.garble_when = garble, garble_count, when
        client = Client(Settings(server.base_url, None), retry=RetryPolicy(attempts=4, backoff=0.01),
                        timeout=(5.0, 10.0))
        try:
            result = fetch_release(client, release, folder, options)
        except IntegrityError as exc:
            return DivergentRun(setting, "refused" if exc.exit_code == 6 and not (folder / BIG).exists()
                                else f"exit {exc.exit_code} with a file in place: {exc}")
        except Exception as exc:  # noqa: BLE001 - reported as the run's outcome
            return DivergentRun(setting, f"{type(exc).__name__}: {exc}")
    on_disk = hashlib.md5((folder / BIG).read_bytes()).hexdigest()
    if on_disk != result.md5 or result.md5 != md5:
        return DivergentRun(setting, f"reported md5 {result.md5}, the bytes on disk have {on_disk}")
    return DivergentRun(setting, "verified")


def divergent_runs(count, seed, size=16 << 20, modes=("connections", "adaptive", "random"), rate=None, report=None):
    """*count* seeded :func:`divergent_run` s, cycling through *modes*; returns them all."""
    data = make_file(BIG, size, seed=seed)
    runs = []
    for i in range(count):
        rnd = random.Random(seed * 100_003 + i)
        with tempfile.TemporaryDirectory(prefix="magedl-chaos-") as folder:
            run = divergent_run(data, Path(folder), rnd, modes[i % len(modes)], rate)
        runs.append(run)
        if report is not None:
            report(i, run)
    return runs


def emulator_with(size, seed=7):
    store = MemoryStore(*demo_catalogue(big_size=64 << 10))
    store.replace(BIG, make_file(BIG, size, seed=seed))
    return Emulator(store=store).start()


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--kills", type=int, default=25, help="SIGKILLs per loop (default 25)")
    parser.add_argument("--rounds", type=int, default=3, help="loops per kind, each with its own seed (default 3)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--size-mib", type=int, default=16, help="file size (default 16 MiB)")
    parser.add_argument("--rate-mib", type=float, default=4, help="MiB/s per connection (default 4)")
    parser.add_argument("--divergent", type=int, default=60,
                        help="downloads from a server whose ranged answers disagree (default 60)")
    parser.add_argument("--scale-files", type=int, default=20000,
                        help="files in the large mirror's crash loop (default 20000; 0 skips it)")
    parser.add_argument("--scale-kills", type=int, default=5, help="SIGKILLs in the large mirror's loop (default 5)")
    args = parser.parse_args(argv)
    size, rate = args.size_mib << 20, int(args.rate_mib * (1 << 20))
    failed = 0
    emulator = emulator_with(size)
    try:
        for kind, connections in (("single", 1), ("segmented", 4)):
            for round_ in range(args.rounds):
                seed = args.seed * 1000 + round_
                with tempfile.TemporaryDirectory(prefix="magedl-chaos-") as folder:
                    out = crash_loop(emulator, Path(folder), connections=connections, kills=args.kills, seed=seed,
                                     rate=rate)
                verdict = "ok" if out.ok else "FAILED"
                failed += not out.ok
                print(f"{kind:9} seed {seed}: {out.kills} kills, served {out.served / (1 << 20):.1f} MiB for "
                      f"{out.size / (1 << 20):.1f} MiB (+{out.overhead_per_kill / (1 << 10):.0f} KiB per kill, "
                      f"allowed +{rate * connections * 0.5 / (1 << 10):.0f}), md5 {'ok' if out.md5_ok else 'WRONG'}, "
                      f"restarts {out.restarts}, leftovers {out.leftovers or 'none'}: {verdict}", flush=True)
        for round_ in range(args.rounds):
            seed = args.seed * 1000 + 500 + round_
            with tempfile.TemporaryDirectory(prefix="magedl-chaos-") as folder:
                out = mirror_crash_loop(emulator, Path(folder) / "mirror", kills=args.kills, seed=seed, rate=rate)
            failed += not out.ok
            print(f"mirror    seed {seed}: {out.kills} kills, served {out.served / (1 << 20):.1f} MiB "
                  f"(allowed {out.allowance / (1 << 20):.1f}), problems: {out.problems or 'none'}: "
                  f"{'ok' if out.ok else 'FAILED'}", flush=True)
    finally:
        emulator.stop()

    def report(i, run):
        if not run.ok:
            print(f"divergent run {i}: {run.outcome} ({run.setting}): FAILED", flush=True)

    runs = divergent_runs(args.divergent, args.seed, size, report=report)
    bad = sum(not r.ok for r in runs)
    failed += bad
    print(f"divergent seed {args.seed}: {len(runs)} runs, {sum(r.outcome == 'verified' for r in runs)} verified, "
          f"{sum(r.outcome == 'refused' for r in runs)} refused (exit 6), {bad} wrong: {'ok' if not bad else 'FAILED'}",
          flush=True)
    if args.scale_files:
        failed += not scale_crash_loop(args.scale_files, args.scale_kills, args.seed * 1000 + 900)
    return 1 if failed else 0


def scale_crash_loop(files, kills, seed):
    """The mirror crash loop over a mirror of *files* tiny files: the index stays true at every size."""
    emulator = emulator_with_files(files)
    try:
        with tempfile.TemporaryDirectory(prefix="magedl-chaos-") as folder:
            out = mirror_crash_loop(emulator, Path(folder) / "mirror", kills=kills, seed=seed, rate=64 << 20,
                                    timeout=1800)
    finally:
        emulator.stop()
    print(f"mirror of {files:,} files seed {seed}: {out.kills} kills, served {out.served / (1 << 20):.1f} MiB "
          f"(allowed {out.allowance / (1 << 20):.1f}), problems: {out.problems[:5] or 'none'}: "
          f"{'ok' if out.ok else 'FAILED'}", flush=True)
    return out.ok


if __name__ == "__main__":
    sys.exit(main())
