"""repo.magento.com and packagist played beside the downloads API: one emulator, three addresses."""

import hashlib
import io
import json
import os
import signal
import subprocess
import sys
import zipfile

import pytest
import requests
from clirun import printed_lines
from composerkit import COMPOSER, PHP, composer, isolated_env

from magedl.emulator import DEMO_KEYS, Emulator
from magedl.emulator.composer import LAYOUTS, ComposerRepos
from magedl.emulator.composer_apps import INVALID_KEYS_WARNING, NO_KEYS_WARNING
from magedl.emulator.composer_graph import EMPTY_DIR

OPEN_SOURCE = DEMO_KEYS["open-source"]


def test_the_fixture_gives_urls_and_keys_per_entitlement(composer_repos):
    assert set(composer_repos.keys) == {"open-source", "commerce", "disabled", "lapsed"}
    for public, private in composer_repos.keys.values():
        assert len(public) == len(private) == 32 and public != private
    assert composer_repos.magento_url.startswith("http://127.0.0.1:") and composer_repos.magento_url.endswith("/")
    assert composer_repos.packagist_url != composer_repos.magento_url
    assert private not in repr(composer_repos)


def test_repo_magento_com_wants_keys(composer_repos):
    url = composer_repos.magento_url + "packages.json"
    r = requests.get(url)
    assert r.status_code == 401 and r.json()["warning"] == NO_KEYS_WARNING
    r = requests.get(url, auth=composer_repos.keys["disabled"])
    assert r.status_code == 401 and r.json()["warning"] == INVALID_KEYS_WARNING
    r = requests.get(url, auth=composer_repos.keys["open-source"])
    assert r.status_code == 200 and r.json()["provider-includes"]
    assert [rec.status for rec in composer_repos.magento.log] == [401, 401, 200]
    assert all(rec.headers.get("Authorization") in (None, "<redacted>") for rec in composer_repos.magento.log)


def test_an_archive_listed_by_packagist_downloads_byte_for_byte(composer_repos):
    base = composer_repos.packagist_url
    root = requests.get(base + "packages.json").json()
    for name in root["available-packages"]:
        p2 = requests.get(base + root["metadata-url"].lstrip("/").replace("%package%", name)).json()
        assert p2["minified"] == "composer/2.0"
        if "dist" in p2["packages"][name][0]:  # not a metapackage
            break
    dist = p2["packages"][name][0]["dist"]
    assert dist["url"].startswith(base)
    archive = requests.get(dist["url"])
    assert archive.status_code == 200 and zipfile.ZipFile(io.BytesIO(archive.content)).namelist()
    head = requests.head(dist["url"])
    assert head.headers["Content-Length"] == str(len(archive.content)) and head.content == b""
    ranged = requests.get(dist["url"], headers={"Range": "bytes=0-3"})
    assert ranged.status_code == 206 and ranged.content == archive.content[:4]


def test_a_provider_file_matches_its_listed_sha256(composer_repos):
    auth = composer_repos.keys["commerce"]
    root = requests.get(composer_repos.magento_url + "packages.json", auth=auth).json()
    template, listing = root["providers-url"], root["provider-includes"]
    for pattern, info in listing.items():
        body = requests.get(composer_repos.magento_url + pattern.replace("%hash%", info["sha256"]), auth=auth)
        assert body.status_code == 200 and hashlib.sha256(body.content).hexdigest() == info["sha256"]
    assert template.startswith("/p/")


def test_one_emulator_plays_all_three(make_emulator):
    emu = make_emulator(composer=True)
    assert requests.get(emu.base_url + "info/json", auth=(emu.mageid, emu.token)).json()
    assert requests.get(emu.composer.packagist_url + "packages.json").status_code == 200
    auth = emu.composer.keys["open-source"]
    assert requests.get(emu.composer.magento_url + "packages.json", auth=auth).status_code == 200
    urls = {emu.base_url, emu.composer.magento_url, emu.composer.packagist_url}
    assert len({u.rsplit(":", 1)[1] for u in urls}) == 3  # three ports
    emu.stop()
    with pytest.raises(requests.ConnectionError):
        requests.get(emu.composer.packagist_url + "packages.json", timeout=10)


def test_without_composer_there_is_none(emulator):
    assert emulator.composer is None


def test_cli_prints_the_urls_and_keys_to_eval(tmp_path):
    import shlex

    ready = tmp_path / "ready"
    proc = subprocess.Popen([sys.executable, "-m", "magedl.emulator", "--port", "0", "--composer",
                             "--composer-layout", "metadata-url", "--big-size", "1K", "--ready-file", str(ready)],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = printed_lines(proc, lambda line: line.startswith("# stop it"))
        values = dict(word.split("=", 1) for line in lines if line.startswith("export ")
                      for word in shlex.split(line)[1:])
        assert ready.read_text() == values["MAGEDL_BASE_URL"] + "\n"
        assert values["MAGEDL_BASE_URL"].endswith("/products/downloads/")
        root = requests.get(values["MAGEDL_EMULATOR_MAGENTO"] + "packages.json", auth=OPEN_SOURCE).json()
        assert root["metadata-url"] == "/p2/%package%.json"  # the layout asked for
        assert requests.get(values["MAGEDL_EMULATOR_PACKAGIST"] + "packages.json").ok
        assert values["MAGEDL_EMULATOR_KEYS_OPEN_SOURCE"] == " ".join(OPEN_SOURCE)
        assert values["MAGEDL_EMULATOR_KEYS_COMMERCE"] == " ".join(DEMO_KEYS["commerce"])
    finally:
        proc.terminate()
        out, err = proc.communicate(timeout=10)
    assert proc.returncode == 0 and OPEN_SOURCE[1] not in err


def test_cli_in_the_background_returns_once_listening_and_stops_on_kill(tmp_path):
    import shlex

    done = subprocess.run([sys.executable, "-m", "magedl.emulator", "--background", "--port", "0", "--composer"],
                          capture_output=True, text=True, timeout=60)  # returns: the child holds no pipe of ours
    assert done.returncode == 0, done.stderr
    values = dict(word.split("=", 1) for line in done.stdout.splitlines() if line.startswith("export ")
                  for word in shlex.split(line)[1:])
    pid = int(values["MAGEDL_EMULATOR_PID"])
    try:
        auth = (values["MAGEDL_MAGEID"], values["MAGEDL_TOKEN"])
        assert requests.get(values["MAGEDL_BASE_URL"] + "info/json", auth=auth).ok
        assert requests.get(values["MAGEDL_EMULATOR_PACKAGIST"] + "packages.json").ok
    finally:
        os.kill(pid, signal.SIGTERM)


def test_cli_in_the_background_reports_a_port_in_use(tmp_path):
    import socket

    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "magedl.emulator", "--background", "--port", str(port)],
                              capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and done.stdout == ""
    assert f"port {port}" in done.stderr and "--port" in done.stderr


def test_the_same_emulator_class_still_runs_without_arguments():
    with Emulator(composer=False) as emu:
        assert emu.composer is None and emu.base_url.endswith("/products/downloads/")




@pytest.mark.skipif(not (COMPOSER and PHP), reason="needs php and composer (Debian: php-cli composer)")
@pytest.mark.parametrize("layout", LAYOUTS)
def test_the_real_composer_installs_from_every_layout(tmp_path, layout):
    """Every repo.magento.com layout is one the real client reads (providers: a ``uid`` per version, as Composer 1)."""
    with ComposerRepos(layout=layout) as repos:
        public, private = repos.keys["commerce"]
        host = repos.magento_url.split("//", 1)[1].rstrip("/")
        env = isolated_env(tmp_path / "home",
                           COMPOSER_AUTH=json.dumps({"http-basic": {host: {"username": public, "password": private}}}))
        project = tmp_path / "project"
        project.mkdir()
        (project / "composer.json").write_text(json.dumps({
            "name": "acme/shop", "require": {"magento/product-enterprise-edition": "2.4.7"},
            "repositories": [{"type": "composer", "url": repos.magento_url},
                             {"type": "composer", "url": repos.packagist_url}]}))
        composer(env, project, "update")
        locked = {p["name"]: p["version"] for p in json.loads((project / "composer.lock").read_text())["packages"]}
        assert locked["magento/module-staging"] == "101.1.7" and locked["psr/log"] == "3.0.0"
        assert (project / "vendor" / "magento" / "magento2-base" / EMPTY_DIR).is_dir()
        archives = [r for r in repos.magento.log if "/archives/" in r.path]
        assert archives and all(r.status == 200 and r.had_authorization for r in archives)
        assert not any(r.had_authorization for r in repos.packagist.log)  # the keys stay with their host
