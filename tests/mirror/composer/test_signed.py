"""A signed mirror's Composer part: a p2 file changed on the way is caught, the signature still naming its signer."""

import json

from clirun import run
from sshkit import allowed_line, make_key, needs_ssh_keygen, write_allowed

pytestmark = needs_ssh_keygen


def test_a_changed_p2_file_in_a_signed_mirror_exits_6_and_names_the_file(repos, capsys, tmp_path):
    key = make_key(tmp_path / "keys", "ops@example.com", "ecdsa")
    allowed = write_allowed(tmp_path / "keys" / "allowed", allowed_line("ops@example.com", key))
    mdir = tmp_path / "m"
    code, _, err = run(capsys, "mirror", str(mdir), "--composer-repo", repos.magento_url, "--composer-repo",
                       repos.packagist_url, "--composer-require", "psr/log", "--sign-key", str(key))
    assert code == 0, err
    code, _, err = run(capsys, "verify", str(mdir), "--allowed-signers", str(allowed))
    assert code == 0 and "signed by ops@example.com (ECDSA key" in err
    p2 = mdir / "composer" / "p2" / "psr" / "log.json"
    doc = json.loads(p2.read_text())
    doc["packages"]["psr/log"][0]["dist"]["shasum"] = "0" * 40
    p2.write_text(json.dumps(doc))
    code, out, err = run(capsys, "verify", str(mdir), "--allowed-signers", str(allowed))
    assert code == 6 and "signed by ops@example.com" in err
    assert "composer/p2/psr/log.json: BAD (sha256 differs from SHA256SUMS)" in out
