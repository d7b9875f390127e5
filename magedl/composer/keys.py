"""Marketplace key values: reading them safely, checking their shape, showing them masked.

Rule: keys are read from a stream or a hidden prompt, never from the command line (which would put
them in the process list and shell history), and no message here quotes one.
"""

from __future__ import annotations

import getpass
import re
from collections.abc import Callable
from typing import IO, Any

from magedl.errors import UsageError
from magedl.secrecy import register_secret

__all__ = ["KEY_LENGTH", "key_shape_problems", "mask_public", "read_keys"]

#: Length of a Marketplace public or private key.
KEY_LENGTH = 32

# Public keys shorter than this are not shortened further: four characters would be most of it.
_MASK_MIN = 9
_MAGEID = re.compile(r"MAG\d{9}", re.IGNORECASE)
_HEX40 = re.compile(r"[0-9a-f]{40}")
# Enough for two keys and generous whitespace; more means the wrong thing was piped in.
_MAX_INPUT = 4096


def mask_public(key: str) -> str:
    """Show a public key by its first four characters only: ``'abcd…'``.

    Keys too short to be real Marketplace keys are shown as ``'…'`` alone,
    since four characters would be most of them.
    """
    if not key or len(key) < _MASK_MIN:
        return "…"
    return key[:4] + "…"


def key_shape_problems(public: str, private: str) -> tuple[str, ...]:
    """Reasons a pair does not look like Marketplace keys (empty when it does).

    Marketplace keys are 32 letters and digits each. A swapped pair cannot be
    detected; stray whitespace, quotes, a wrong length, a MAGEID or a downloads
    access token in place of a key can. Messages never quote the keys.

    Parameters
    ----------
    public, private : str
        The public and the private key, as found.

    Returns
    -------
    tuple of str
        One sentence per problem, e.g. ``"the private key is 31 characters long, not 32"``.
    """
    problems: list[str] = []
    for name, value in (("public key", public), ("private key", private)):
        problems.extend(_one_key_problems(name, value))
    if public and public == private:
        problems.append("the public and the private key are the same: one of them was probably "
                        "pasted twice")
    if public and _MAGEID.fullmatch(public.strip()):
        problems.append("the public key looks like a MAGEID; Composer needs the Marketplace "
                        "public key (Marketplace > My Profile > Access Keys)")
    if private and _HEX40.fullmatch(private.strip()):
        problems.append("the private key looks like a downloads access token (40 characters); "
                        "Composer needs the Marketplace private key")
    return tuple(problems)


def _one_key_problems(name: str, value: str) -> list[str]:
    if not value:
        return [f"the {name} is empty"]
    problems = []
    core = value
    if value != value.strip():
        problems.append(f"the {name} has spaces or a line break at its start or end")
        core = core.strip()
    if len(core) >= 2 and core[0] == core[-1] and core[0] in "'\"":
        problems.append(f"the {name} is wrapped in quotes; store it without them")
        core = core[1:-1]
    if any(c.isspace() for c in core):
        problems.append(f"the {name} holds spaces or line breaks inside it")
    elif not (core.isascii() and core.isalnum()):
        problems.append(f"the {name} holds characters other than letters and digits")
    if len(core) != KEY_LENGTH:
        problems.append(f"the {name} is {len(core)} characters long, not {KEY_LENGTH}")
    elif core != value:
        problems.append(f"the {name} would be a valid {KEY_LENGTH}-character key without the "
                        "extra characters around it")
    return problems


def read_keys(stream: IO[Any] | None, prompt: bool, *,
              getpass_fn: Callable[[str], str] | None = None) -> tuple[str, str]:
    """Read a public and a private key, never from the command line.

    Parameters
    ----------
    stream : text or binary file, optional
        Read when *prompt* is false: the two keys on two lines, or on one line
        separated by whitespace (``PUBLIC PRIVATE``). At most 4096 characters.
    prompt : bool
        Ask on the terminal with hidden input instead (two prompts).
    getpass_fn : callable, optional
        The prompt function; :func:`getpass.getpass` by default.

    Returns
    -------
    (str, str)
        ``(public key, private key)``, both registered as secrets.

    Raises
    ------
    UsageError
        Nothing, or not exactly two words, was given.
    """
    if prompt:
        return _prompt_keys(getpass_fn or getpass.getpass)
    if stream is None:
        raise UsageError("no input to read the keys from; pipe them in or use the prompt")
    name = getattr(stream, "name", None)
    where = "standard input" if name in (None, "<stdin>", 0) else str(name)
    data = stream.read(_MAX_INPUT + 1)
    if isinstance(data, bytes):
        try:
            data = data.decode("utf-8")
        except UnicodeDecodeError:
            raise UsageError(f"the keys on {where} are not UTF-8 text") from None
    words = data.lstrip("\ufeff").split()
    for word in words:
        register_secret(word)
    if len(data) > _MAX_INPUT:
        raise UsageError(f"more than {_MAX_INPUT} characters on {where}; give only the public "
                         "and the private key")
    if len(words) != 2:
        raise UsageError(f"expected two keys on {where} (public then private, on two lines or "
                         f"separated by a space), got {len(words)} word(s)")
    return words[0], words[1]


def _prompt_keys(getpass_fn: Callable[[str], str]) -> tuple[str, str]:
    try:
        public = getpass_fn("Marketplace public key (hidden): ").strip()
        register_secret(public)
        private = getpass_fn("Marketplace private key (hidden): ").strip()
        register_secret(private)
    except EOFError:
        raise UsageError("no keys entered (end of input at the prompt)") from None
    if not public or not private:
        raise UsageError(f"no {'public' if not public else 'private'} key entered")
    for name, value in (("public key", public), ("private key", private)):
        if any(c.isspace() for c in value):
            raise UsageError(f"the {name} entered holds spaces; paste one key per prompt")
    return public, private
