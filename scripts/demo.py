"""`make demo`: magedl doing its real job against the bundled emulator.

Starts the emulator on 127.0.0.1 with a generated catalogue, then runs the
real ``magedl`` command as a user would: versions, list, a verified get with
its progress bar, an interrupted get that resumes, a refused token, a
scripted call, a mirror that is verified offline and used via file://, and
Marketplace keys and the Composer packages of a 2.4.7 project mirrored from
emulated repo.magento.com and packagist, with their security advisories, which
the real ``composer audit`` reads from the mirror inside the simulated gap.
Everything lands in ./demo-out; the emulator stops at the end.
"""

import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
from pathlib import Path

from magedl.cli.output import human_bytes
from magedl.emulator import Emulator, demo_catalogue, make_file
from magedl.paths import PART_SUFFIX, STATE_SUFFIX
from magedl.server import MemoryStore
from magedl.transfer.segments import segments_from_json

OUT = Path("demo-out")
BIG = "Magento-CE-2.4.7.tar.gz"
SECOND = "Magento-CE-2.4.6-p10.tar.gz"
BIG_SIZE = 48 * 2**20
RATE = 12 * 2**20  # bytes/s: slow enough to watch the bar, and to interrupt


def styled(stream=None, environ=None):
    """Bold headings only on a terminal that takes them: not in a file or pipe, not with NO_COLOR or TERM=dumb."""
    stream = sys.stdout if stream is None else stream
    environ = os.environ if environ is None else environ
    try:
        tty = stream.isatty()
    except (AttributeError, ValueError):
        tty = False
    return tty and not environ.get("NO_COLOR") and environ.get("TERM", "") != "dumb"


def banner(text):
    print(f"\n\033[1m== {text}\033[0m" if styled() else f"\n== {text}", flush=True)


def magedl(env, *argv, check=True):
    print(f"$ magedl {' '.join(argv)}", flush=True)
    code = subprocess.call([sys.executable, "-m", "magedl", *argv], env=env)
    print(f"(exit {code})", flush=True)
    if check and code != 0:
        raise SystemExit(f"demo: magedl exited {code}")
    return code


def received(sidecar):
    """Bytes a partial file really holds, from its sidecar (the file itself is reserved at full size)."""
    doc = json.loads(sidecar.read_text())
    segments = segments_from_json(doc.get("segments"), doc.get("size")) or []
    return sum(s.done for s in segments)


def composer_part(env, mirror):
    """Marketplace keys and the Composer half of the mirror, against emulated repo.magento.com and packagist."""
    from magedl.emulator.composer import DEMO_KEYS, ComposerRepos

    with ComposerRepos() as repos:
        public, private = DEMO_KEYS["open-source"]
        host = repos.magento_url.split("://", 1)[1].rstrip("/")
        # As a CI secret would hold them: COMPOSER_AUTH, never on a command line.
        cenv = dict(env, COMPOSER_AUTH=json.dumps({"http-basic": {host: {"username": public, "password": private}}}),
                    COMPOSER_HOME=str(OUT / "composer-home"))
        banner(f"Marketplace keys found as Composer does, checked on repo.magento.com ({repos.magento_url})")
        magedl(cenv, "keys", "check", "--repo-url", repos.magento_url,
               "--package", "magento/product-community-edition")
        banner("the same keys asking for a Commerce package: exit 4, and why")
        magedl(cenv, "keys", "check", "--repo-url", repos.magento_url,
               "--package", "magento/product-enterprise-edition", check=False)
        banner("the Composer packages a 2.4.7 project needs, into the same mirror (no downloads token needed)")
        magedl(cenv, "mirror", str(mirror), "--composer-require", "magento/project-community-edition:2.4.7",
               "--composer-repo", repos.magento_url, "--composer-repo", repos.packagist_url)
        banner("a re-run of an up-to-date mirror: a few requests, no archive read")
        before = len(repos.magento.log) + len(repos.packagist.log)
        magedl(cenv, "mirror", str(mirror), "--composer-require", "magento/project-community-edition:2.4.7",
               "--composer-repo", repos.magento_url, "--composer-repo", repos.packagist_url)
        after = len(repos.magento.log) + len(repos.packagist.log)
        print(f"the repositories saw {after - before} requests for the re-run")
    magedl(env, "verify", str(mirror))
    audit_inside(env, mirror)


def audit_inside(env, mirror):
    """Inside the simulated gap (upstream stopped): the real ``composer audit`` against the mirror's advisories."""
    composer = shutil.which("composer")
    banner("inside the gap: composer audit of a 2.4.7 project, answered by the mirror alone (magedl serve)")
    if composer is None:
        print("skipped: composer is not installed (Debian: apt-get install php-cli composer)")
        return
    server = subprocess.Popen([sys.executable, "-m", "magedl", "serve", str(mirror), "--port", "0"], env=env,
                              stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        url = server.stdout.readline().strip() + "composer/"
        shop = OUT / "shop"
        shop.mkdir(exist_ok=True)
        (shop / "composer.json").write_text(json.dumps({"require": {"magento/product-community-edition": "2.4.7"},
                                                        "repositories": [{"type": "composer", "url": url}]}))
        cenv = dict(env, COMPOSER_HOME=str((OUT / "composer-far").resolve()), COMPOSER_NO_AUDIT="1")
        for argv in (["config", "-g", "repo.packagist", "false"], ["config", "-g", "secure-http", "false"],
                     ["update", "--no-install", "--ignore-platform-reqs", "-q"]):
            subprocess.run([composer, *argv], cwd=shop, env=cenv, check=True)
        print(f"$ composer audit --locked      # in {shop}, repository {url}", flush=True)
        print(f"(exit {subprocess.call([composer, 'audit', '--locked'], cwd=shop, env=cenv)}: advisories found)")
    finally:
        server.terminate()
        server.wait()


def main():
    shutil.rmtree(OUT, ignore_errors=True)
    OUT.mkdir()
    store = MemoryStore(*demo_catalogue(big_size=BIG_SIZE))
    store.replace(SECOND, make_file(SECOND, BIG_SIZE // 2, seed=1))  # a second large archive
    emulator = Emulator(store).start()
    secrets = tempfile.mkdtemp(prefix="magedl-demo-")
    token_file = Path(secrets) / "token"
    token_file.write_text(emulator.token + "\n")
    os.chmod(token_file, 0o600)
    env = {k: v for k, v in os.environ.items() if not k.startswith("MAGEDL_")}
    env.update(MAGEDL_BASE_URL=emulator.base_url, MAGEDL_MAGEID=emulator.mageid)
    cred = ["--token-file", str(token_file)]
    try:
        banner(f"emulator of the downloads API listening at {emulator.base_url}")
        print("credentials: MAGEDL_MAGEID in the environment, the token in a mode-600 file (--token-file)")

        banner("versions per category, newest first")
        magedl(env, *cred, "versions", "--type", "ce-full", "--type", "ee-full")

        banner("the newest Open Source release, every format")
        magedl(env, *cred, "list", "--type", "ce-full", "--latest")

        banner("get: progress bar, md5 checked against the feed before the file appears")
        emulator.set_faults(rate=RATE)
        magedl(env, *cred, "get", SECOND, "-o", str(OUT))

        banner("an interrupted get (Ctrl-C part-way) ...")
        print(f"$ magedl get {BIG} -o {OUT}    # interrupted after a third of the file", flush=True)
        proc = subprocess.Popen([sys.executable, "-m", "magedl", *cred, "get", BIG, "-o", str(OUT)], env=env)
        emulator.wait_for(lambda s: s.bytes_sent(BIG) >= BIG_SIZE // 3, timeout=60)
        proc.send_signal(signal.SIGINT)
        print(f"(exit {proc.wait()})")
        part = OUT / (BIG + PART_SUFFIX)
        got = received(OUT / (BIG + STATE_SUFFIX))
        print(f"kept: {part}: {human_bytes(got)} of {human_bytes(BIG_SIZE)} received")

        banner("... resumes where it stopped")
        emulator.clear_log()
        magedl(env, *cred, "get", BIG, "-o", str(OUT))
        sent = emulator.bytes_sent(BIG)
        print(f"the server sent {human_bytes(sent)} for the resume, of {human_bytes(BIG_SIZE)}: only what was missing")

        banner("a refused token: exit 3 and what to do about it")
        bad = Path(secrets) / "old-token"
        bad.write_text("0" * 40)
        os.chmod(bad, 0o600)
        magedl(env, "--token-file", str(bad), "list", check=False)

        banner("and a scripted build: quiet, JSON, exit code")
        magedl(env, *cred, "-q", "--json", "get", "Magento-CE-2.4.7.zip", "-o", str(OUT))

        banner("an air-gapped mirror: seed it, check it offline, use it as the service")
        mirror = OUT / "mirror"
        magedl(env, *cred, "mirror", str(mirror), "--type", "ce-patch", "--type", "ee-patch")
        magedl(env, "verify", str(mirror))
        inside = dict(env, MAGEDL_BASE_URL=mirror.resolve().as_uri())
        magedl(inside, "get", "--type", "ce-patch", "--latest", "-o", str(OUT / "inside"))

        composer_part(env, mirror)
    finally:
        emulator.stop()
        shutil.rmtree(secrets, ignore_errors=True)
    banner(f"done; files are in {OUT}/, the emulator is stopped")
    print("to try every command by hand, start your own emulator in the background and load its URLs and demo "
          "credentials into this shell:\n  eval \"$(.venv/bin/python -m magedl.emulator --background --composer)\"\n"
          "(the README's 'Practise with the emulator' walks through it)")


if __name__ == "__main__":
    main()
