"""The argument parser: the common options, and each command declared by its own module.

Rule: a run declares only the command it names, so it imports one command module, and every default
shown in ``--help`` comes from :mod:`magedl.transfer.options`. See docs/design.md, "Notes: the
command line".
"""

import argparse
import difflib
import importlib
import math
import re
import sys
import textwrap
from typing import Iterable, Optional

from magedl import __version__
from magedl.cli.commands import COMMANDS, command_word
from magedl.errors import UsageError
from magedl.text import printable
from magedl.transfer import options as defaults  # the one home of every default; read when the parser is built
from magedl.transfer.ratelimit import parse_rate

_INVALID_COMMAND = re.compile(r"argument COMMAND: invalid choice: '(.*)' \(choose from (.*)\)$")

# Seconds beyond this are a typo (and overflow the socket layer), not a wish.
MAX_SECONDS = 7 * 24 * 3600

EPILOG = """\
credentials (first found wins):
  --mageid/--token-file, MAGEDL_MAGEID/MAGEDL_TOKEN, the config file
  ($XDG_CONFIG_HOME/magedl/config, mode 600), ~/.netrc for the API host, or a
  curl-style base URL https://MAGEID:TOKEN@host/... . Prefer --token-file or
  MAGEDL_TOKEN over --token: a token on the command line is visible to other
  users in the process list and lands in shell history.

exit codes:
  0 ok, 1 other error, 2 usage, 3 credentials refused (401), 4 no entitlement
  (403), 5 not found, 6 checksum mismatch or not the archive, 7 network or
  server failure after all retries, 130 interrupted (Ctrl-C), 143 stopped
  (SIGTERM)
"""


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Descriptions and epilogs keep their own line breaks and indented lists, wrapped to the terminal.

    argparse's raw formatter would print a long line as it is, and the
    terminal would then break it mid-word; its plain one would run lists
    together.
    """

    def _fill_text(self, text, width, indent):
        lines = []
        for line in text.splitlines():
            if len(indent) + len(line) <= width or not line.strip():
                lines.append(indent + line)
                continue
            lead = indent + line[:len(line) - len(line.lstrip())]
            lines += textwrap.wrap(line.strip(), max(width, 20), initial_indent=lead, subsequent_indent=lead,
                                   break_on_hyphens=False, break_long_words=False)
        return "\n".join(lines)


class Parser(argparse.ArgumentParser):
    """argparse, but a usage error is one line, exit 2, and never repeats what an unknown option was given."""

    def error(self, message):
        wrong = _INVALID_COMMAND.match(message)
        if wrong:
            word, choices = wrong.group(1), re.findall(r"'([^']*)'", wrong.group(2))
            hint = suggest(word, choices)
            message = (f"unknown command {printable(word)!r}" + (f" (did you mean {hint!r}?)" if hint else "")
                       + f"; the commands are {', '.join(choices)}")
        raise UsageError(f"{printable(message)} (see '{self.prog} --help')")

    def parse_args(self, args=None, namespace=None):
        if args is None:
            args = sys.argv[1:]
        _refuse_unknown_options(self, list(args))
        argv = list(args)
        args, extras = self.parse_known_args(argv, namespace)
        if extras:
            # Not argparse's "unrecognized arguments: ...": that echoes values, and a
            # value after a mistyped --tokn is a secret.
            options = [_option_name(e) for e in extras if e.startswith("-") and len(e) > 1]
            if options:
                shown = ", ".join(printable(o) for o in options)
                raise UsageError(f"unknown option {shown} (see '{self.prog} --help')")
            command = _command_path(self, args)
            if not _take_late_names(self, command, args, extras):
                raise UsageError(_unexpected(self.prog, command, argv, extras[0]))
        return args


def _command_path(parser, args):
    """(``"keys check"``, its parser) for the command *args* ran, or (``""``, *parser*)."""
    words, current = [], parser
    for dest in ("command", "keys_action"):
        sub = _commands(current).get(getattr(args, dest, None) or "")
        if sub is None:
            break
        words.append(getattr(args, dest))
        current = sub
    return " ".join(words), current


def _take_late_names(parser, command, args, extras):
    """Words after options (``get A -o DIR B``) join the command's list of names, as a person means them."""
    _, sub = command
    lists = [a for a in sub._actions if not a.option_strings and a.nargs in ("*", "+") and a.dest != "command"]
    # Only words shaped like file names: '--limit-rate 5 MB' leaves 'MB' behind, and that is a mistake to name.
    if len(lists) != 1 or not all("." in word or "/" in word for word in extras):
        return False
    getattr(args, lists[0].dest).extend(extras)
    return True


# A stray word is echoed only when it is one of these shapes: anything else may be a password or a
# token typed in the wrong place, and is named by its position instead.
_FEED_TYPES = ("ce-full", "ee-full", "ce-patch", "ee-patch", "other")
_SHOWN_WORD = re.compile(r"(?i)(?:[kmgt]i?b?|b|bytes|/s|ce-full|ee-full|ce-patch|ee-patch|other"
                         r"|[\w.+-]+\.(?:zip|tar\.gz|tgz|tar\.bz2|sh|patch|json|lock))")


def _unexpected(prog, command, argv, word):
    """One line naming the stray word (or its position), why it may be there, and the command's --help."""
    path, sub = command
    where = f"{prog} {path}".strip()
    at = len(argv) - 1 - argv[::-1].index(word) if word in argv else -1
    shown = f"argument '{printable(word)}'" if _SHOWN_WORD.fullmatch(word) else \
        f"argument (word {at + 1} of the command line; not shown, in case it is a secret)"
    hint = ""
    if word.lower() in _FEED_TYPES and "--type" in sub._option_string_actions:
        hint = f" (did you mean --type {word.lower()}?)"
    elif at >= 2 and argv[at - 2].startswith("-") and "=" not in argv[at - 2] and _SHOWN_WORD.fullmatch(word):
        option, value = argv[at - 2], argv[at - 1]
        hint = f" ({option} takes one word: did you mean {option} {printable(value + word)}?)"
    return f"unexpected {shown} for '{where}'{hint}; see '{where} --help'"


def _refuse_unknown_options(parser, argv):
    """A mistyped or misplaced option, named without its value, before argparse can take the value for a command."""
    current, where = parser, []
    takes_value = False
    for word in argv:
        if takes_value:
            takes_value = False
            continue
        if word == "--":
            return
        if not word.startswith("-") or word == "-" or _is_number(word):
            sub = _commands(current).get(word)
            if sub is not None:
                current = sub
                where.append(word)
            continue
        name = _option_name(word)
        actions = current._option_string_actions
        matches = [a for o, a in actions.items() if o == name or (name.startswith("--") and o.startswith(name))]
        if not matches:
            raise UsageError(_misplaced(parser, name, " ".join(where)))
        takes_value = "=" not in word and len(word) == len(name) and all(a.nargs != 0 for a in matches)


def _misplaced(parser, name, where):
    everything, owners = set(), []
    for path, sub in _all_commands(build_parser()):  # every command, to name the one the option belongs to
        everything |= set(sub._option_string_actions)
        if name in sub._option_string_actions:
            owners.append(path)
    if owners:
        place = f"not of '{where}'" if where else "so it goes after the command name"
        return f"{name} is an option of {', '.join(owners)}, {place}; see '{parser.prog} {owners[0]} --help'"
    hint = suggest(name, everything | set(parser._option_string_actions))
    return (f"unknown option {printable(name)}" + (f" (did you mean {hint}?)" if hint else "")
            + f"; see '{parser.prog} {where + ' ' if where else ''}--help'")


def _all_commands(parser, prefix=""):
    """(``"keys check"``, sub-parser) for every command and sub-command, depth first."""
    for name, sub in _commands(parser).items():
        path = f"{prefix}{name}"
        yield path, sub
        yield from _all_commands(sub, path + " ")


def _is_number(word):
    try:
        float(word)
        return True
    except ValueError:
        return False


def _commands(parser):
    """Command name -> its sub-parser."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _option_name(word):
    """``--tokn=SECRET`` -> ``--tokn``; ``-xSECRET`` -> ``-x``: the name, never the value."""
    if word.startswith("--"):
        return word.split("=", 1)[0]
    return word[:2]


# -- value types: each failure is one line naming the value's problem ------------------


def positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a whole number: {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"must be at least 1: {text!r}")
    return value


def seconds(text: str) -> float:
    """A finite, non-negative number of seconds up to a week (``nan``, ``inf``, ``1e400`` refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number of seconds: {text!r}") from None
    if not math.isfinite(value):
        raise argparse.ArgumentTypeError(f"not a finite number of seconds: {text!r}")
    if value < 0:
        raise argparse.ArgumentTypeError(f"must not be negative: {text!r}")
    if value > MAX_SECONDS:
        raise argparse.ArgumentTypeError(f"at most {MAX_SECONDS} seconds (a week): {text!r}")
    return value


def port(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a port number: {text!r}") from None
    if not 0 <= value <= 65535:
        raise argparse.ArgumentTypeError(f"not a port number (0-65535): {text!r}")
    return value


def connections(text: str) -> int:
    value = positive_int(text)
    if value > defaults.MAX_CONNECTIONS:
        raise argparse.ArgumentTypeError(f"at most {defaults.MAX_CONNECTIONS} connections: {text!r}")
    return value


def rate(text: str) -> int:
    try:
        return parse_rate(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


# -- option groups -----------------------------------------------------------------------


def _default(suppress, value):
    return argparse.SUPPRESS if suppress else value


def _output_options(parser, suppress, json=True):
    g = parser.add_argument_group("output")
    g.add_argument("-v", "--verbose", action="count", default=_default(suppress, 0),
                   help="more detail on stderr (twice for debug)")
    g.add_argument("-q", "--quiet", action="store_true", default=_default(suppress, False),
                   help="no progress, only errors on stderr")
    if json:
        g.add_argument("--json", action="store_true", default=_default(suppress, False),
                       help="machine-readable JSON array on stdout")


def _credential_options(parser, suppress):
    g = parser.add_argument_group("the downloads service")
    g.add_argument("--base-url", metavar="URL", default=_default(suppress, None),
                   help="the API, a mirror (http/https) or a mirror folder (file://); env MAGEDL_BASE_URL")
    g.add_argument("--mageid", metavar="ID", default=_default(suppress, None),
                   help="your MAGEID (MAG + 9 digits); env MAGEDL_MAGEID")
    g.add_argument("--token-file", metavar="PATH", default=_default(suppress, None),
                   help="file holding the downloads access token ('-' reads stdin); env MAGEDL_TOKEN")
    g.add_argument("--token", metavar="TOKEN", default=_default(suppress, None),
                   help="the token itself; discouraged: visible in the process list, use --token-file")


def _tls_options(parser, suppress):
    g = parser.add_argument_group("TLS")
    g.add_argument("--ca-bundle", metavar="PATH", default=_default(suppress, None),
                   help="CA bundle to verify TLS with; env MAGEDL_CA_BUNDLE")
    g.add_argument("--insecure", action="store_true", default=_default(suppress, False),
                   help="do NOT verify TLS (loudly discouraged)")


def _retry_options(parser, suppress):
    g = parser.add_argument_group("retries")
    retries, wait, timeout = defaults.DEFAULT_RETRIES, defaults.DEFAULT_RETRY_WAIT, defaults.DEFAULT_TIMEOUT
    g.add_argument("--retries", type=positive_int, metavar="N", default=_default(suppress, retries),
                   help=f"attempts without progress before giving up (default {retries})")
    g.add_argument("--retry-wait", type=seconds, metavar="S", default=_default(suppress, wait),
                   help=f"first backoff wait in seconds, doubled each retry (default {wait:g})")
    g.add_argument("--timeout", type=seconds, metavar="S", default=_default(suppress, timeout),
                   help=f"seconds without data before a connection counts as stalled; 0 waits for ever "
                        f"(default {timeout:g})")


def add_command(subparsers, name: str, help_text: Optional[str] = None, *, credentials: bool = True,
                tls: bool = True, retry: bool = True, json: bool = True, description: Optional[str] = None) -> Parser:
    """A sub-command parser with the common option groups it uses (and only those, so its --help is true).

    Options given before the command name are valid for every command; after
    it, only those of the groups asked for here. *help_text* defaults to the
    command's summary in :data:`~magedl.cli.commands.COMMANDS`.
    """
    help_text = help_text or COMMANDS[name].summary
    p = subparsers.add_parser(name, help=help_text, description=description or help_text,
                              formatter_class=HelpFormatter)
    _output_options(p, suppress=True, json=json)
    if credentials:
        _credential_options(p, suppress=True)
    if tls:
        _tls_options(p, suppress=True)
    if retry:
        _retry_options(p, suppress=True)
    return p


def add_selection(p, *, versions: bool = True) -> None:
    """``--type``, and unless *versions* is false ``--version``, ``--format``, ``--latest``."""
    p.add_argument("--type", action="append", default=[], metavar="T",
                   help="feed category such as ce-full, ee-full, ce-patch (repeatable)")
    if not versions:
        return
    p.add_argument("--version", action="append", default=[], metavar="GLOB", dest="versions",
                   help="version or glob such as '2.4.*' (repeatable)")
    p.add_argument("--format", action="append", default=[], metavar="EXT", dest="formats",
                   help="archive suffix: tar.gz, zip, tar.bz2 (repeatable)")
    p.add_argument("--latest", action="store_true", help="only the newest version of each type")


def add_transfer_options(p) -> None:
    """``--connections``, ``--jobs``, ``--limit-rate``, ``--require-checksum`` (see common.transfer_options)."""
    most, usual, jobs = defaults.MAX_CONNECTIONS, defaults.DEFAULT_CONNECTIONS, defaults.DEFAULT_JOBS
    p.add_argument("--connections", type=connections, default=None, metavar="N",
                   help=f"connections per large file when the server allows ranges (1-{most}). Default: "
                        f"start with one and go up to {usual} if it is slow; N opens N at once")
    p.add_argument("--jobs", type=positive_int, default=jobs, metavar="N",
                   help=f"at most N files at once (default {jobs}): 4 while the server answers quickly, "
                        "all N when each small file costs a round trip")
    p.add_argument("--limit-rate", type=rate, default=None, metavar="RATE",
                   help="total bandwidth for the run, e.g. 500k, 20M (binary units, per second)")
    p.add_argument("--require-checksum", action="store_true", help="refuse files the feed gives no md5 for")


# -- the parser ----------------------------------------------------------------------------


def build_parser(only: Optional[str] = None) -> Parser:
    """The command line: the common options, then the commands.

    With *only* None every command is declared (for tests and for naming
    the command a misplaced option belongs to); with a command's name, that
    command's module alone is imported and the others are listed by their
    summary; with ``""`` (or a word that is no command) none is imported.
    """
    return _add_commands(_top_parser(), only)


def parser_for(argv: list) -> Parser:
    """The parser that can parse *argv*: its command declared, no other command module imported."""
    parser = _top_parser()  # its options tell which words of argv are their values, not the command

    def takes_value(word):
        name = _option_name(word)
        return any((o == name or (name.startswith("--") and o.startswith(name))) and a.nargs != 0
                   for o, a in parser._option_string_actions.items())

    return _add_commands(parser, command_word(argv, takes_value) or "")


def _add_commands(parser: Parser, only: Optional[str]) -> Parser:
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    chosen = COMMANDS[only].module if only in COMMANDS else None
    declared = set()
    for name, command in COMMANDS.items():
        if command.module in declared:
            continue
        if only is None or command.module == chosen:
            importlib.import_module(command.module).add_parser(sub)
            declared.add(command.module)
        else:
            sub.add_parser(name, help=command.summary, add_help=False)  # declared once it is the one chosen
    return parser


def _top_parser() -> Parser:
    parser = Parser(
        prog="magedl",
        description="List and fetch Adobe Commerce / Magento Open Source releases and patches,\n"
        "resumably and verified against the feed's md5.",
        epilog=EPILOG,
        formatter_class=HelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"magedl {__version__}")
    _output_options(parser, suppress=False)
    _credential_options(parser, suppress=False)
    _tls_options(parser, suppress=False)
    _retry_options(parser, suppress=False)
    return parser


def suggest(word: str, choices: Iterable[str]) -> Optional[str]:
    """The closest of *choices* to *word*, if one is close."""
    close = difflib.get_close_matches(word, list(choices), n=1, cutoff=0.6)
    return close[0] if close else None
