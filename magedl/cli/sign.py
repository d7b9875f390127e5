"""``magedl sign``, and the signature options of ``mirror``, ``verify`` and ``serve``: arguments, terminal side.

The work is in :mod:`magedl.mirror.signature`. A key or an allowed signers
file comes from its option, else from the environment (``MAGEDL_SIGN_KEY``,
``MAGEDL_ALLOWED_SIGNERS``), and is checked before any other work is done.
"""

import logging
import os
from pathlib import Path

from magedl.cli.app import add_command
from magedl.errors import NotFoundError, SignatureError, UsageError
from magedl.mirror.layout import INFO_FILES, SUMS, walk_files
from magedl.secrecy import SECURITY
from magedl.text import printable

log = logging.getLogger(__name__)

SIGN_KEY_ENV = "MAGEDL_SIGN_KEY"
ALLOWED_SIGNERS_ENV = "MAGEDL_ALLOWED_SIGNERS"


def add_parser(subparsers) -> None:
    """Register ``sign``."""

    p = add_command(subparsers, "sign", "sign a mirror's SHA256SUMS (SHA256SUMS.sig, an SSH signature) for "
                                        "'verify --allowed-signers' on the far side",
                    credentials=False, tls=False, retry=False, json=False)
    p.add_argument("dir", metavar="DIR", help="the mirror folder")
    add_sign_key(p, "--key", required_here=True)
    p.set_defaults(run=run_sign)


def add_sign_key(p, flag: str = "--sign-key", required_here: bool = False) -> None:
    p.add_argument(flag, metavar="PATH", dest="sign_key",
                   help=f"SSH private key to sign SHA256SUMS with (mode 600), or its .pub when ssh-agent holds it; "
                        f"env {SIGN_KEY_ENV}" + ("" if required_here else "; the index is re-signed when it changes"))


def add_allowed_signers(p, what: str) -> None:
    p.add_argument("--allowed-signers", metavar="FILE",
                   help=f"OpenSSH allowed_signers file: {what}; env {ALLOWED_SIGNERS_ENV}")


def sign_key(args):
    """The :class:`~magedl.mirror.signature.SignKey` of ``--sign-key``/``--key`` or MAGEDL_SIGN_KEY; or None."""

    from magedl.mirror.signature import sign_key as checked  # its file adapter imports requests: only when used

    flag = "--key" if args.command == "sign" else "--sign-key"
    path, where = (args.sign_key, flag) if args.sign_key else (os.environ.get(SIGN_KEY_ENV), SIGN_KEY_ENV)
    return checked(path, where) if path else None


def allowed_signers(args):
    """The :class:`~magedl.mirror.signature.AllowedSigners` of ``--allowed-signers`` or the environment; or None."""
    from magedl.mirror.signature import read_allowed_signers

    if args.allowed_signers:
        return read_allowed_signers(args.allowed_signers, "--allowed-signers")
    if os.environ.get(ALLOWED_SIGNERS_ENV):
        return read_allowed_signers(os.environ[ALLOWED_SIGNERS_ENV], ALLOWED_SIGNERS_ENV)
    return None


def check_signatures(roots, allowed) -> dict:
    """Check each mirror's signature against *allowed* (before anything else is read), or say none was checked.

    Returns {mirror folder: the ``SHA256SUMS`` bytes its signature covers} (empty without *allowed*): what
    files are checked against, so the bytes trusted are the bytes whose signature verified.
    Raises SignatureError (exit 6) at the first mirror whose signature does not verify.
    """
    from magedl.mirror.signature import check, is_signed

    checked = {}
    for root in roots:
        if allowed is not None:
            signer = check(root, allowed)
            checked[Path(os.path.abspath(root))] = signer.sums  # as verify() names mirror folders
            log.info("%s: signed by %s; the checksums it vouches for are trusted", printable(Path(root) / "SHA256SUMS"),
                     signer)
        elif is_signed(root):
            log.warning("%s: the mirror is signed, but the signature was NOT checked: give --allowed-signers FILE "
                        "(or %s) to check it", printable(root), ALLOWED_SIGNERS_ENV, extra=SECURITY)
    return checked


def check_served(root, allowed) -> None:
    """``serve --allowed-signers``: the signature, then every index file served against the signed ``SHA256SUMS``.

    Archives are not re-hashed (that is ``verify``'s work, and would hold up the start): clients check each
    archive against the md5 or SHA-1 of the index files served, which this makes the signed ones.
    Raises SignatureError (exit 6) when the signature or an index file does not match.
    """
    from magedl.mirror.composer.index import P2, PACKAGES  # mirror declares --sign-key from here: no Composer code
    from magedl.mirror.verify import verify  # mirror declares --sign-key from here, and needs no verify

    signed = check_signatures([root], allowed)
    if not signed:
        return
    indexes = [rel for rel in (*INFO_FILES, PACKAGES) if os.path.lexists(Path(root) / rel)]
    indexes += [rel for rel, _ in walk_files(root, P2)]
    bad = [f for f in verify([Path(root) / rel for rel in indexes], signed_sums=signed) if f.failed]
    if bad:
        raise SignatureError(f"{printable(bad[0].path)}: {bad[0].status} ({bad[0].problem}) under a genuine "
                             f"signature: not served; run 'magedl verify {printable(root)} --allowed-signers FILE'")


def report_signed(root, signed) -> None:
    """Say who signed, and the allowed_signers line the far side needs for that key."""
    log.info("%s: signed with %s; the far side checks it with an allowed_signers line 'NAME %s'",
             printable(Path(root) / "SHA256SUMS.sig"), signed, signed.public_key)


def run_sign(args, out) -> int:
    """``magedl sign DIR --key PATH``: (re)sign ``DIR/SHA256SUMS`` under the mirror's lock."""
    from magedl.mirror.core import Mirror  # the engine: for a run of sign, not for mirror's parsing

    root = Path(args.dir)
    if not root.is_dir():
        raise NotFoundError(f"{printable(root)}: no such folder; give a mirror folder (made by 'magedl mirror')")
    key = sign_key(args)
    if key is None:
        raise UsageError(f"sign needs a key: --key PATH (or {SIGN_KEY_ENV}), an SSH private key file or the .pub of "
                         "a key ssh-agent holds")
    if not (root / SUMS).is_file():
        raise NotFoundError(f"{printable(root)}: no {SUMS} to sign (not a mirror, or not indexed yet)")
    with Mirror(root).lock():
        signed = Mirror(root).sign(key)
    report_signed(root, signed)
    return 0
