"""SSH keys, allowed_signers files and an ssh-agent for the signature tests, all made by the real OpenSSH tools.

Every private key made here has its body registered as a secret, so the
suite's secret scan (tests/secretscan.py) fails any test after which a line
of it shows up in output, a log, or a file under ``tmp_path`` (the key files
themselves live in a folder named ``keys``, which the scan skips).
"""

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from magedl.secrecy import register_secret

needs_ssh_keygen = pytest.mark.skipif(shutil.which("ssh-keygen") is None,
                                      reason="OpenSSH's ssh-keygen is not installed (.ci/run installs openssh-client)")

# The key types ssh-keygen makes here, as (-t, -b): RSA at 2048 bits keeps key generation quick.
KEY_TYPES = {"ed25519": ("ed25519", None), "ecdsa": ("ecdsa", None), "ecdsa-384": ("ecdsa", "384"),
             "rsa": ("rsa", "2048")}


def make_key(folder: Path, name: str, kind: str = "ed25519", passphrase: str = "") -> Path:
    """A new key pair ``folder/name`` (and ``.pub``) of *kind*, comment ``name``; its private body registered secret."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / name
    key_type, bits = KEY_TYPES[kind]
    argv = ["ssh-keygen", "-q", "-t", key_type, "-N", passphrase, "-C", name, "-f", str(path)]
    if bits:
        argv[4:4] = ["-b", bits]
    subprocess.run(argv, check=True, stdin=subprocess.DEVNULL)
    public = Path(f"{path}.pub").read_text()
    for line in path.read_text().splitlines():
        # The private key file opens with the public key in clear: only lines holding more are secret.
        if not line.startswith("-----") and line not in public:
            register_secret(line)
    return path


def allowed_line(principal: str, key: Path, options: str = "") -> str:
    """An allowed_signers line for *key* (its .pub) under *principal*."""
    key_type, blob = Path(f"{key}.pub").read_text().split()[:2]
    return " ".join(part for part in (principal, options, key_type, blob) if part) + "\n"


def write_allowed(path: Path, *lines: str) -> Path:
    path.write_text("# who may sign our mirrors\n" + "".join(lines))
    return path


class Agent:
    """An ssh-agent of its own (foreground, on a socket in *folder*), stopped by :meth:`stop`."""

    def __init__(self, folder: Path):
        self.socket = folder / "agent.sock"
        self.proc = subprocess.Popen(["ssh-agent", "-D", "-a", str(self.socket)], stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, stdin=subprocess.DEVNULL)
        self.proc.stdout.readline()  # it prints its SSH_AUTH_SOCK line once the socket listens

    def add(self, key: Path) -> None:
        subprocess.run(["ssh-add", "-q", str(key)], check=True, env={**os.environ, "SSH_AUTH_SOCK": str(self.socket)},
                       stdin=subprocess.DEVNULL, capture_output=True)

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)
        self.proc.stdout.close()
