"""The commands: each name, the module that declares and runs it, and its one-line summary.

Rule: ``magedl --help`` needs only this table; nothing here imports a command module. Adding a
command: see docs/design.md, "Notes: the command line".
"""

from typing import NamedTuple, Optional


class Command(NamedTuple):
    """Where a command lives and what ``magedl --help`` says of it."""

    module: str
    summary: str


COMMANDS = {
    "versions": Command("magedl.cli.versions", "versions per feed category, newest first"),
    "list": Command("magedl.cli.listing", "files in the catalogue: type, version, file name, md5"),
    "get": Command("magedl.cli.get", "download files, resuming and verifying each"),
    "mirror": Command("magedl.cli.mirror", "copy a selection of the catalogue (and Composer packages) into a "
                                           "mirror folder, incrementally"),
    "verify": Command("magedl.cli.verify", "re-hash a mirror, or files in one, against SHA256SUMS, info/json and "
                                           "the Composer metadata (offline)"),
    "sign": Command("magedl.cli.sign", "sign a mirror's SHA256SUMS (SHA256SUMS.sig, an SSH signature) for "
                                       "'verify --allowed-signers' on the far side"),
    "serve": Command("magedl.cli.serve", "serve a mirror folder over HTTP in the API's shape (Range, HEAD, info/*)"),
    "keys": Command("magedl.cli.keys", "Marketplace keys for Composer: find and check them, or store them"),
    "doctor": Command("magedl.cli.doctor", "check what a build host needs: credentials, the feed, Marketplace keys, "
                                           "TLS, proxies, clock, free space, leftovers"),
}


def command_word(argv, takes_value) -> Optional[str]:
    """The command *argv* names: its first word that is neither an option nor an option's value.

    *takes_value(option)* says whether a global option takes a value (``--base-url URL``).
    """
    skip = False
    for word in argv:
        if skip:
            skip = False
        elif word == "--":
            return None
        elif word.startswith("-") and word != "-":
            skip = "=" not in word and takes_value(word)
        else:
            return word
    return None
