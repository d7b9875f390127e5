"""The README's nginx server block, run by Debian's real nginx over a real mirror (issue 18 item 3).

The mirror is made from the emulated service and repositories with ``--composer-url`` set to
nginx's address; then the upstreams stop and nginx, configured with nothing but the README's
block (its ``listen`` and ``root`` moved here), serves the folder: ``magedl list`` and ``get``
(with a resumed Range) as against the service, the side files refused, and the real Composer's
``create-project`` + ``install`` from it. Skipped, with the reason, only where nginx (or php
and composer, for the install) is not installed; ``.ci/run`` installs them.
"""

import hashlib
import json
import os
import re
import shutil
import socket
import subprocess
import time
from pathlib import Path

import pytest
import requests
from clirun import run
from composerkit import COMPOSER, PHP, composer, isolated_env

README = Path(__file__).resolve().parents[2] / "README.md"
BLOCK = re.compile(r"<!-- nginx server block: tests/server/test_nginx\.py runs it -->\s*\n```nginx\n(.*?)^```",
                   re.DOTALL | re.MULTILINE)
NGINX = shutil.which("nginx") or next((p for p in ("/usr/sbin/nginx",) if os.access(p, os.X_OK)), None)
PROJECT = "magento/project-community-edition"

pytestmark = pytest.mark.skipif(NGINX is None, reason="needs nginx (Debian: nginx; .ci/run installs it)")


def readme_block() -> str:
    found = BLOCK.search(README.read_text(encoding="utf-8"))
    assert found, "README.md lost its nginx server block (marked for tests/server/test_nginx.py)"
    return found.group(1)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@pytest.fixture
def nginx(tmp_path):
    """``start(root, port)``: nginx serving *root* with the README's block on 127.0.0.1:*port*; stopped after."""
    procs = []

    def start(root: Path, port: int) -> str:
        block = readme_block()
        assert "listen 8080;" in block and "root /srv/magento-mirror;" in block
        block = block.replace("listen 8080;", f"listen 127.0.0.1:{port};")
        block = block.replace("root /srv/magento-mirror;", f"root {root};")
        work = tmp_path / "nginx"
        work.mkdir()
        temps = "\n".join(f"    {kind}_temp_path {work}/{kind};" for kind in
                          ("client_body", "proxy", "fastcgi", "uwsgi", "scgi"))
        conf = work / "nginx.conf"
        conf.write_text(f"daemon off;\nworker_processes 1;\npid {work}/nginx.pid;\n"
                        f"error_log {work}/error.log;\nevents {{ worker_connections 256; }}\n"
                        f"http {{\n    access_log off;\n{temps}\n{block}}}\n")
        if os.geteuid() == 0:  # as root nginx would switch its worker to 'nobody', who cannot read tmp_path
            conf.write_text("user root;\n" + conf.read_text())
        check = subprocess.run([NGINX, "-t", "-c", str(conf), "-p", str(work)], capture_output=True, text=True)
        assert check.returncode == 0, check.stderr
        proc = subprocess.Popen([NGINX, "-c", str(conf), "-p", str(work)], stderr=subprocess.PIPE, text=True)
        procs.append(proc)
        deadline = time.monotonic() + 30
        while True:  # wait for the condition (nginx listening), not for a time
            try:
                socket.create_connection(("127.0.0.1", port), timeout=1).close()
                break
            except OSError:
                assert proc.poll() is None, proc.stderr.read()
                assert time.monotonic() < deadline, "nginx did not start listening"
                time.sleep(0.05)
        return f"http://127.0.0.1:{port}/"

    yield start
    for proc in procs:
        proc.terminate()
        proc.communicate(timeout=30)


@pytest.fixture
def mirror_for_nginx(tmp_path, emulator, composer_repos, capsys, monkeypatch):
    """A mirror of two releases and a Composer closure, its metadata written for nginx's address; (root, port)."""
    port = free_port()
    public, private = composer_repos.keys["commerce"]
    host = composer_repos.magento_url.split("//", 1)[1].rstrip("/")
    monkeypatch.delenv("COMPOSER_HOME", raising=False)
    monkeypatch.setenv("COMPOSER_AUTH", json.dumps({"http-basic": {host: {"username": public, "password": private}}}))
    root = tmp_path / "srv" / "magento-mirror"
    code, _, err = run(capsys, "-q", "--base-url", emulator.base_url, "--mageid", emulator.mageid, "--token",
                       emulator.token, "mirror", str(root), "--type", "ce-full", "--version", "2.4.6",
                       "--version", "2.4.6-p1", "--composer-repo", composer_repos.magento_url, "--composer-repo",
                       composer_repos.packagist_url, "--composer-require", f"{PROJECT}:2.4.7",
                       "--composer-url", f"http://127.0.0.1:{port}/composer/")
    assert code == 0, err
    emulator.stop()
    composer_repos.stop()  # the far side has no network but the mirror
    return root, port


def test_the_readme_block_serves_a_mirror_to_magedl_and_composer(mirror_for_nginx, nginx, capsys, tmp_path):
    root, port = mirror_for_nginx
    base = nginx(root, port)
    feed = json.loads((root / "info" / "json").read_text())
    names = sorted({e["file_name"] for versions in feed.values() for entries in versions.values() for e in entries})
    assert names

    # The release half, as against the service.
    code, out, err = run(capsys, "--base-url", base, "--json", "list")
    assert code == 0, err
    assert sorted(r["file_name"] for r in json.loads(out)) == names
    dest = tmp_path / "dl"
    code, out, err = run(capsys, "--base-url", base, "--json", "get", names[0], "-o", str(dest))
    assert code == 0 and all(r["verified"] for r in json.loads(out)), err
    assert (dest / names[0]).read_bytes() == (root / "file" / names[0]).read_bytes()
    r = requests.get(base + "file/" + names[0], headers={"Range": "bytes=10-19"})
    assert r.status_code == 206 and r.content == (root / "file" / names[0]).read_bytes()[10:20]
    assert requests.get(base + "info/json").headers["Content-Type"] == "application/json"

    # Never published: bookkeeping, unfinished downloads, locks, temporary files, links out of the folder.
    (root / "file" / "x.zip.magedl-part").write_bytes(b"partial")
    (root / "file" / "x.zip.magedl-lock").write_bytes(b"")
    (root / "file" / ".x.zip.magedl-tmp-0a1b").write_bytes(b"temp")
    (tmp_path / "outside.txt").write_text("outside the mirror")
    os.symlink(tmp_path / "outside.txt", root / "file" / "link.zip")
    assert any((root / ".magedl").iterdir())
    for path in (".magedl/", *(f".magedl/{p.name}" for p in (root / ".magedl").iterdir()), "file/x.zip.magedl-part",
                 "file/x.zip.magedl-lock", "file/x.zip.magedl-part.json", "file/.x.zip.magedl-tmp-0a1b",
                 "file/link.zip", "file/"):
        assert requests.get(base + path).status_code in (403, 404), path

    # The Composer half: metadata written for nginx's address, archives as they are.
    p2 = requests.get(base + "composer/p2/psr/log.json")
    assert p2.status_code == 200 and p2.headers["Content-Type"] == "application/json"
    dist = p2.json()["packages"]["psr/log"][0]["dist"]
    assert dist["url"].startswith(f"http://127.0.0.1:{port}/composer/dist/")
    archive = requests.get(dist["url"])
    assert archive.headers["Content-Type"] == "application/zip"
    assert hashlib.sha1(archive.content).hexdigest() == dist["shasum"]
    if not (COMPOSER and PHP):
        pytest.skip("the Composer install needs php and composer (Debian: php-cli composer; .ci/run installs them)")
    install_with_composer(base + "composer/", tmp_path)


def install_with_composer(url, tmp_path):
    env = isolated_env(tmp_path / "composer-home")
    project = tmp_path / "project"
    composer(env, tmp_path, "create-project", "--repository", json.dumps({"type": "composer", "url": url}),
             "--no-install", PROJECT, str(project), "2.4.7")
    composer(env, project, "config", "repositories.0", "composer", url)
    composer(env, project, "install")
    lock = json.loads((project / "composer.lock").read_text())
    installed = {p["name"]: p for p in lock["packages"]}
    assert installed["magento/magento2-base"]["version"] == "2.4.7" and "psr/log" in installed
    assert all(p["dist"]["url"].startswith(url) for p in installed.values() if "dist" in p)
    assert (project / "vendor" / "psr" / "log").is_dir()
