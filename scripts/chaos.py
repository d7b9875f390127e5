"""`make chaos`: kill ``magedl get`` and ``magedl mirror`` with SIGKILL at random moments, then let them finish.

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

``tests/transfer/test_crashloop.py`` runs a short loop of each kind; this
script runs longer ones::

    python scripts/chaos.py [--kills 25] [--rounds 3] [--seed 1] [--size-mib 16]
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
from dataclasses import dataclass
from pathlib import Path

from magedl.emulator import Emulator, demo_catalogue, make_file
from magedl.paths import PART_SUFFIX, STATE_SUFFIX
from magedl.server import MemoryStore

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


def mirror_crash_loop(emulator, root, *, kills, seed, rate, jobs=2, timeout=60):
    """Kill ``magedl mirror`` *kills* times at seeded random moments, then let it finish.

    Synchronised on the bytes the emulator served in all. After every kill the
    index may only describe files that are present and right; at the end every
    file matches the feed's md5, ``magedl verify`` and ``sha256sum -c`` accept
    the mirror, and no partial file is left.
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
    final = subprocess.run(cmd, env=env, capture_output=True, timeout=timeout)
    if final.returncode != 0:
        err = final.stderr.decode(errors="replace")
        raise AssertionError(f"the last mirror run failed ({final.returncode}): {err}")
    for name, md5 in feed.items():
        path = root / "file" / name
        if not path.is_file() or (md5 and hashlib.md5(path.read_bytes()).hexdigest() != md5):
            problems.append(f"{name}: missing or not the feed's md5")
    problems += check_index(root)
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
