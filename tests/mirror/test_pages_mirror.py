"""The pages as a mirror run writes them: listed in SHA256SUMS, checked by verify, gone with --no-html."""

import json
import os
import subprocess

import pytest
from clirun import run
from sshkit import allowed_line, make_key, needs_ssh_keygen, write_allowed

from magedl.mirror.index import read_sums
from magedl.mirror.signature import SignKey
from magedl.mirror.signing_key import public_key


def mirror(capsys, mdir, *argv):
    return run(capsys, "mirror", str(mdir), "--type", "ce-patch", *argv)


def test_pages_are_listed_in_sha256sums_and_checked_by_verify(env, capsys, tmp_path):
    mdir = tmp_path / "m"
    code, _, err = mirror(capsys, mdir)
    assert code == 0, err
    page = (mdir / "index.html").read_text()
    assert "PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh" in page and "Magento Open Source patches" in page
    assert "index.html" in read_sums(mdir / "SHA256SUMS")[0]
    code, out, err = run(capsys, "--json", "verify", str(mdir))
    statuses = {r["path"]: r["status"] for r in json.loads(out)}
    assert code == 0 and statuses[str(mdir / "index.html")] == "ok"
    # A page changed on the carried disk is named, as any other file would be.
    (mdir / "index.html").write_text(page.replace("patches", "p<script>atches"))
    code, out, err = run(capsys, "--json", "verify", str(mdir))
    assert code == 6 and [r["path"] for r in json.loads(out) if r["status"] != "ok"] == [str(mdir / "index.html")]
    # The next run puts it right.
    code, _, err = mirror(capsys, mdir)
    assert code == 0 and (mdir / "index.html").read_text() == page


def test_no_html_removes_the_pages_and_a_later_run_brings_them_back(env, capsys, tmp_path):
    mdir, diff = tmp_path / "m", tmp_path / "delta"
    assert mirror(capsys, mdir, "--diff-file", str(diff))[0] == 0
    code, _, err = mirror(capsys, mdir, "--no-html", "--diff-file", str(diff))
    assert code == 0, err
    assert not (mdir / "index.html").exists()
    assert "index.html" not in read_sums(mdir / "SHA256SUMS")[0]
    assert diff.read_text().splitlines() == ["SHA256SUMS"]  # nothing else changed
    assert run(capsys, "verify", str(mdir))[0] == 0
    assert mirror(capsys, mdir)[0] == 0 and (mdir / "index.html").is_file()


def fingerprint(key):
    out = subprocess.run(["ssh-keygen", "-l", "-f", f"{key}.pub"], capture_output=True, text=True, check=True)
    return out.stdout.split()[1]


@needs_ssh_keygen
def test_the_front_page_names_the_key_the_index_is_signed_with(env, capsys, tmp_path):
    key = make_key(tmp_path / "keys", "ops@example.com")
    allowed = write_allowed(tmp_path / "keys" / "allowed", allowed_line("ops@example.com", key))
    mdir = tmp_path / "m"
    code, _, err = mirror(capsys, mdir, "--sign-key", str(key))
    assert code == 0, err
    page = (mdir / "index.html").read_text()
    assert f"made with the ED25519 key {fingerprint(key)}" in page and 'href="SHA256SUMS.sig"' in page
    assert run(capsys, "verify", str(mdir), "--allowed-signers", str(allowed))[0] == 0  # the page is signed too
    # Changed without the key: the signature goes, and the page stops naming it.
    env.store.replace("PATCH_SUPEE-6788_CE_1.9.2.1_v1.sh", b"#!/bin/sh\necho new\n")
    code, _, err = mirror(capsys, mdir)
    assert code == 0 and not (mdir / "SHA256SUMS.sig").exists()
    page = (mdir / "index.html").read_text()
    assert "none when this page was written" in page and "SHA256SUMS.sig" not in page
    assert run(capsys, "verify", str(mdir))[0] == 0


@needs_ssh_keygen
@pytest.mark.parametrize("form", ["private with a passphrase", "public in an agent", "private PEM and its .pub"])
def test_the_public_half_of_a_signing_key_is_read_without_its_passphrase(form, tmp_path):
    key = make_key(tmp_path, "k", kind="ed25519" if form != "private PEM and its .pub" else "rsa",
                   passphrase="s3cret phrase" if form != "public in an agent" else "")
    expected = fingerprint(key)
    if form == "private with a passphrase":
        os.unlink(f"{key}.pub")  # the private file alone tells it
        got = public_key(SignKey(str(key), "--sign-key", in_agent=False))
    elif form == "public in an agent":
        got = public_key(SignKey(f"{key}.pub", "--sign-key", in_agent=True))
    else:
        subprocess.run(["ssh-keygen", "-p", "-m", "PEM", "-P", "s3cret phrase", "-N", "s3cret phrase", "-f", str(key)],
                       capture_output=True, check=True)
        got = public_key(SignKey(str(key), "--sign-key", in_agent=False))
    assert got is not None and got.fingerprint == expected
    assert public_key(SignKey(str(tmp_path / "missing"), "--sign-key", in_agent=False)) is None
