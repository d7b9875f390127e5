"""Decoding ``info/json`` compact: a plain entry becomes a tuple as it is decoded, not a dict.

``json.loads`` builds a dict and three strings per feed entry; a catalogue of 100,000 entries held them
all until :func:`magedl.service.catalog.parse_feed` made its records, and the freed dicts' memory stayed
scattered among the records' (docs/scale.md). The rule a reader must not break: a :class:`CompactEntry`
is read as the very dict ``json.loads`` would have made (:meth:`CompactEntry.as_dict`), wherever it sits,
so the records, their extra fields and the warnings are those of the feed decoded as dicts.
"""

import re
from typing import Optional

MD5 = re.compile(r"[0-9a-f]{32}")  # an md5 as the feed gives it and a record keeps it
PLAIN_KEYS = frozenset(("name", "file_name", "md5", "version"))  # the keys of a plain entry (each at most once)
_FIELDS = ("name", "file_name", "md5", "version")


class CompactEntry(tuple):
    """A plain feed entry as :func:`feed_decoder` decodes it: ``(name, file_name, md5, version, keys)``.

    *name* is the file name's own string when equal (or absent), *md5* and *version* as given (None:
    absent), *keys* the entry's keys in their order (one tuple shared by every entry of that order).
    """

    __slots__ = ()

    def as_dict(self) -> dict:
        """The dict ``json.loads`` makes of the entry."""
        name, file_name, md5, version, keys = self
        values = {"name": name, "file_name": file_name, "md5": md5, "version": version}
        return {key: values[key] for key in keys}


def feed_decoder():
    """An ``object_pairs_hook`` for ``json.loads`` of ``info/json``: each plain entry a :class:`CompactEntry`.

    A plain entry: keys among name, file_name, md5 and version, each once; a non-empty file name, a
    non-empty name or none, an md5 of 32 lower-case hex digits, empty or null, and a text version or
    none. Any other object is the dict ``json.loads`` makes. One hook per decode: it keeps the key
    orders seen (at most 64 plain ones).
    """
    shapes = {}  # an entry's keys in order -> (that tuple, where each of _FIELDS is among them or -1)

    def hook(pairs):
        if len(pairs) > 4:
            return dict(pairs)
        keys = tuple(key for key, _ in pairs)
        shape = shapes.get(keys)
        if shape is None:
            if len(set(keys)) != len(keys) or not PLAIN_KEYS.issuperset(keys):
                return dict(pairs)
            shape = shapes[keys] = (keys, tuple(keys.index(k) if k in keys else -1 for k in _FIELDS))
        keys, (at_name, at_file, at_md5, at_version) = shape
        file_name = pairs[at_file][1] if at_file >= 0 else None
        name = pairs[at_name][1] if at_name >= 0 else file_name
        md5 = pairs[at_md5][1] if at_md5 >= 0 else None
        version = pairs[at_version][1] if at_version >= 0 else None
        if not _plain_values(name, file_name, md5) or (at_version >= 0 and type(version) is not str):
            return dict(pairs)  # (a null version is not an absent one)
        return CompactEntry((file_name if name == file_name else name, file_name, md5, version, keys))

    return hook


def _plain_values(name, file_name, md5) -> bool:
    """The one rule of a plain entry's values (None: absent; an absent name is the file name): a non-empty
    file name and name, and an md5 of 32 lower-case hex digits, empty or none."""
    return (type(file_name) is str and file_name != "" and type(name) is str and name != ""
            and (md5 is None or (type(md5) is str and (md5 == "" or MD5.fullmatch(md5) is not None))))


def plain_fields(entry) -> Optional[tuple]:
    """``(name, file name, md5)`` of an entry decoded as a dict (by a caller that did not use
    :func:`feed_decoder`) when it is plain, the md5 "" when none; None otherwise."""
    if type(entry) is not dict or not entry.keys() <= PLAIN_KEYS:
        return None
    file_name, md5 = entry.get("file_name"), entry.get("md5")
    name = entry.get("name", file_name)
    return (name, file_name, md5 or "") if _plain_values(name, file_name, md5) else None


def deeper_than(value, limit: int) -> bool:
    """Whether a decoded feed value nests more than *limit* levels (without recursion); a
    :class:`CompactEntry` counts as the dict it stands for."""
    level = [value]
    for _ in range(limit + 1):
        level = [child for item in level if isinstance(item, (list, dict, CompactEntry))  # a dict of texts
                 for child in (item.values() if isinstance(item, dict) else item)]
        if not level:
            return False
    return True


def restored(value):
    """*value* (an entry's extra field, nested no deeper than parse_feed keeps) with each :class:`CompactEntry`
    a dict again."""
    if type(value) is CompactEntry:
        return value.as_dict()
    if isinstance(value, list):
        return [restored(v) for v in value]
    if isinstance(value, dict):
        return {k: restored(v) for k, v in value.items()}
    return value
