"""Composer's local JSON files as text: read as strictly as Composer, edit one entry in place.

Rule: a parse error names the file and the position, never the text around it, which may hold a key.
:func:`set_entry` edits the text, not the data; a shape it does not handle raises :class:`EditError`
and the caller re-serialises.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from typing import Any

from magedl.errors import ConfigError

__all__ = [
    "INDENT",
    "EditError",
    "Node",
    "json_type_name",
    "last_member",
    "parse_json_text",
    "parse_spans",
    "set_entry",
    "strict_loads",
]

#: Composer's JsonFile indent, used when the text shows none.
INDENT = "    "


# --------------------------------------------------------------------------- strict reading


def json_type_name(value: Any) -> str:
    """The JSON name of a parsed value's type, for messages that must not quote it.

    One of ``null``, ``boolean``, ``number``, ``string``, ``list`` and ``object``.
    """
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "list"
    return "object"


def _reject_constant(name: str) -> None:
    # Python accepts NaN and Infinity; Composer's JSON parser does not.
    raise ValueError(f"{name} is not valid JSON")


def strict_loads(text: str) -> Any:
    """:func:`json.loads` refusing NaN and Infinity, as Composer's parser does.

    Raises
    ------
    json.JSONDecodeError
        Bad syntax; ``msg``, ``lineno`` and ``colno`` tell where.
    ValueError
        NaN or Infinity (or a number Python will not convert).
    RecursionError
        Nesting too deep for the parser.
    """
    return json.loads(text, parse_constant=_reject_constant)


def parse_json_text(text: str, where: str) -> Any:
    """Parse a local file's JSON as strictly as Composer does, or raise ConfigError naming *where*.

    The error tells the position of the fault, never the text around it (which
    may hold a key). Nesting too deep for the parser is an error too: no
    RecursionError escapes.

    Parameters
    ----------
    text : str
        The file's text.
    where : str
        What to call it in messages, usually its path.

    Raises
    ------
    ConfigError
        A byte-order mark, bad syntax, NaN or Infinity, or nesting too deep.
    """
    if text.startswith("\ufeff"):
        raise ConfigError(f"{where} starts with a byte-order mark, which Composer rejects: "
                          "save it as UTF-8 without BOM")
    try:
        return strict_loads(text)
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{where} is not valid JSON ({exc.msg} at line {exc.lineno} column "
                          f"{exc.colno}); Composer refuses it too: fix or remove it") from None
    except ValueError:
        raise ConfigError(f"{where} is not valid JSON (NaN or Infinity); Composer refuses it "
                          "too: fix or remove it") from None
    except RecursionError:
        raise ConfigError(f"{where} is nested too deeply to read; fix or remove it") from None


# --------------------------------------------------------------------------- positions


class EditError(Exception):
    """The text has a shape :func:`set_entry` does not handle; the caller re-serialises."""


@dataclass
class Node:
    """Where one JSON value lies in the text.

    Attributes
    ----------
    start, end : int
        Offsets of its first character and one past its last.
    kind : str
        ``"object"``, ``"array"`` or ``"scalar"``.
    members : list of (str, int, Node)
        For an object: each member's decoded name, the offset of the name's
        opening quote, and its value, in text order (duplicates kept).
    """

    start: int
    end: int
    kind: str
    members: list[tuple[str, int, Node]]


def parse_spans(text: str) -> Node:
    """Parse strict JSON *text*, recording where every value lies.

    Raises
    ------
    EditError
        The text is not JSON this parser reads (only strict JSON is).
    RecursionError
        Nesting too deep.
    """
    return _SpanParser(text).parse()


def last_member(node: Node, name: str) -> Node | None:
    """The value of the member *name* of an object node, or None.

    With duplicate names, JSON parsers (PHP's and Python's) keep the last one.
    """
    value = None
    for key, _, member in node.members:
        if key == name:
            value = member
    return value


class _SpanParser:
    _WS = " \t\n\r"
    _SCALAR = re.compile(r"-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?|true|false|null")
    _STRING = re.compile(r'"(?:[^"\\\x00-\x1f]|\\(?:["\\/bfnrt]|u[0-9a-fA-F]{4}))*"')

    def __init__(self, text: str):
        self.text = text
        self.pos = 0

    def parse(self) -> Node:
        self._ws()
        node = self._value()
        self._ws()
        if self.pos != len(self.text):
            raise EditError("trailing data")
        return node

    def _ws(self) -> None:
        while self.pos < len(self.text) and self.text[self.pos] in self._WS:
            self.pos += 1

    def _string(self) -> str:
        match = self._STRING.match(self.text, self.pos)
        if not match:
            raise EditError("bad string")
        self.pos = match.end()
        return json.loads(match.group())

    def _value(self) -> Node:
        start = self.pos
        char = self.text[self.pos: self.pos + 1]
        if char == "{":
            self.pos += 1
            members: list[tuple[str, int, Node]] = []
            self._ws()
            if self.text[self.pos: self.pos + 1] == "}":
                self.pos += 1
                return Node(start, self.pos, "object", members)
            while True:
                self._ws()
                key_start = self.pos
                key = self._string()
                self._ws()
                self._expect(":")
                self._ws()
                members.append((key, key_start, self._value()))
                self._ws()
                if self._take("}"):
                    return Node(start, self.pos, "object", members)
                self._expect(",")
        if char == "[":
            self.pos += 1
            self._ws()
            if not self._take("]"):
                while True:
                    self._ws()
                    self._value()
                    self._ws()
                    if self._take("]"):
                        break
                    self._expect(",")
            return Node(start, self.pos, "array", [])
        if char == '"':
            self._string()
            return Node(start, self.pos, "scalar", [])
        match = self._SCALAR.match(self.text, self.pos)
        if not match:
            raise EditError("bad value")
        self.pos = match.end()
        return Node(start, self.pos, "scalar", [])

    def _take(self, char: str) -> bool:
        if self.text[self.pos: self.pos + 1] == char:
            self.pos += 1
            return True
        return False

    def _expect(self, char: str) -> None:
        if not self._take(char):
            raise EditError(f"expected {char!r}")


# --------------------------------------------------------------------------- editing


def set_entry(text: str, section: str, key: str, value: Any) -> str:
    """*text* with ``section`` -> *key* set to *value*, everything else untouched.

    The new value follows the text's own style: its line ending, its indent
    unit (Composer's detection: the first indented line that starts a string),
    and one line or many as the surrounding object has. A missing *section*
    is added as the top level's last member; an empty one written by PHP as
    ``[]`` (and a top level that is ``[]``) becomes an object. With duplicate
    names the last one, which parsers keep, is replaced.

    Parameters
    ----------
    text : str
        Strict JSON whose top level is an object (or PHP's ``[]``).
    section : str
        A member of the top-level object, e.g. ``"http-basic"``.
    key : str
        The member of *section* to set.
    value : JSON-serialisable
        Its new value.

    Raises
    ------
    EditError
        The text has a shape the editor does not handle (not an object, or
        *section* not an object).
    RecursionError
        Nesting too deep.
    """
    root = parse_spans(text)
    nl = "\r\n" if "\r\n" in text else "\n"
    found = re.search(r'^([ \t]+)"', text, re.MULTILINE)  # Composer's detectIndenting
    unit = found.group(1) if found else INDENT
    multiline = "\n" in text[root.start: root.end]

    if root.kind == "array":  # an empty top level written by PHP as []
        return text[: root.start] + _render({section: {key: value}}, "", unit, nl, True) \
            + text[root.end:]
    if root.kind != "object":
        raise EditError("top level is not an object")

    inner = last_member(root, section)
    if inner is None:
        return _insert_member(text, root, section, {key: value}, unit, nl, multiline)
    if inner.kind == "array":  # PHP's empty object
        lead, _ = _line_lead(text, inner.start)
        return text[: inner.start] + _render({key: value}, lead, unit, nl, multiline) \
            + text[inner.end:]
    if inner.kind != "object":
        raise EditError(f"{section} is not an object")
    multiline = "\n" in text[inner.start: inner.end] or (multiline and not inner.members)
    current = last_member(inner, key)
    if current is None:
        return _insert_member(text, inner, key, value, unit, nl, multiline)
    key_start = next(k for name, k, member in inner.members if member is current)
    lead, own_line = _line_lead(text, key_start)
    return text[: current.start] + _render(value, lead, unit, nl, multiline and own_line) \
        + text[current.end:]


def _render(value: Any, lead: str, unit: str, nl: str, multiline: bool) -> str:
    """JSON text for *value* whose first line sits at indent *lead*."""
    if isinstance(value, dict) and value:
        if not multiline:
            items = (f"{_dump(k)}: {_render(v, lead, unit, nl, False)}" for k, v in value.items())
            return "{" + ", ".join(items) + "}"
        inner = lead + unit
        items = (f"{inner}{_dump(k)}: {_render(v, inner, unit, nl, True)}"
                 for k, v in value.items())
        return "{" + nl + ("," + nl).join(items) + nl + lead + "}"
    return _dump(value)


def _dump(value: Any) -> str:
    # Composer writes unescaped slashes and unicode; so does json.dumps with ensure_ascii off.
    return json.dumps(value, ensure_ascii=False)


def _line_lead(text: str, offset: int) -> tuple[str, bool]:
    """(leading whitespace of the line holding *offset*, whether only whitespace precedes it)."""
    line_start = text.rfind("\n", 0, offset) + 1
    before = text[line_start:offset]
    lead = before[: len(before) - len(before.lstrip(" \t"))]
    return lead, before.strip(" \t") == ""


def _insert_member(text: str, obj: Node, key: str, value: Any, unit: str, nl: str,
                   multiline: bool) -> str:
    if obj.members:
        _, last_key_start, last = obj.members[-1]
        lead, own_line = _line_lead(text, last_key_start)
        if multiline and own_line:
            addition = f",{nl}{lead}{_dump(key)}: {_render(value, lead, unit, nl, True)}"
        else:
            addition = f", {_dump(key)}: {_render(value, lead, unit, nl, False)}"
        return text[: last.end] + addition + text[last.end:]
    lead, _ = _line_lead(text, obj.start)
    if multiline:
        inner = lead + unit
        body = f"{nl}{inner}{_dump(key)}: {_render(value, inner, unit, nl, True)}{nl}{lead}"
    else:
        body = f"{_dump(key)}: {_render(value, lead, unit, nl, False)}"
    return text[: obj.start] + "{" + body + "}" + text[obj.end:]
