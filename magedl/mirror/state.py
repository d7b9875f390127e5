"""A mirror's bookkeeping in ``DIR/.magedl/``: the lock and the verified-digest cache.

``state.json`` maps each file name to the digests the file had when it was
verified, the feed records it was verified against, and the fingerprint of
the file on disk at that moment (size, mtime, ctime, inode). A file whose
fingerprint still matches is known good without reading it; any other file
is re-hashed before it is trusted. The state is a cache, never the truth:
losing it costs re-hashing, not correctness.
"""

import json
import logging
import os
from pathlib import Path

from magedl.fsutil import atomic_write, make_dirs
from magedl.locks import FileLock
from magedl.paths import BOOKKEEPING

log = logging.getLogger("magedl")


def mirror_lock(root):
    """The lock every run that writes *root* holds (``DIR/.magedl/lock``)."""
    make_dirs(Path(root) / BOOKKEEPING)
    return FileLock(Path(root) / BOOKKEEPING / "lock",
                    f"another magedl mirror run ({{holder}}) is writing {root}", keep=True)


class State:
    """``DIR/.magedl/state.json``: file_name -> digests, fingerprint and feed records.

    Saving re-reads the file and applies only this run's changes, so two runs
    that both ignore the lock lose at most some cached digests (the files are
    then re-hashed), never a file.
    """

    def __init__(self, root):
        self.path = Path(root) / BOOKKEEPING / "state.json"
        self.files, self.delta = self._read()
        self._changes = {}
        self._delta_added = set()
        self._delta_cleared = False

    def _read(self):
        """(files, delta): the cached digests, and the paths changed since a delta was last written."""
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
            files = data["files"]
        except (OSError, ValueError, KeyError, TypeError):
            return {}, set()
        delta = data.get("delta")
        delta = {p for p in delta if isinstance(p, str)} if isinstance(delta, list) else set()
        return ({k: v for k, v in files.items() if isinstance(v, dict)} if isinstance(files, dict) else {}), delta

    def add_delta(self, paths):
        """Remember paths changed in the mirror until a ``--diff-file`` has listed them.

        Kept in the state file, so a run killed after replacing a file still
        hands that file to the next run's delta.
        """
        paths = set(paths) - self.delta
        self.delta |= paths
        self._delta_added |= paths

    def clear_delta(self):
        """A delta file now lists everything changed: start afresh."""
        self.delta, self._delta_added, self._delta_cleared = set(), set(), True

    def get(self, name):
        return self.files.get(name)

    def set(self, name, entry):
        self.files[name] = self._changes[name] = entry

    def drop(self, name):
        self.files.pop(name, None)
        self._changes[name] = None

    def save(self):
        if not self._changes and not self._delta_added and not self._delta_cleared:
            return
        merged, delta = self._read()
        for name, entry in self._changes.items():
            if entry is None:
                merged.pop(name, None)
            else:
                merged[name] = entry
        delta = self._delta_added if self._delta_cleared else delta | self._delta_added
        data = json.dumps({"version": 1, "files": merged, "delta": sorted(delta)}, indent=1, sort_keys=True) + "\n"
        atomic_write(self.path, data.encode("utf-8"))
        self.files, self.delta, self._changes = merged, delta, {}
        self._delta_added, self._delta_cleared = set(), False


def fingerprint(path):
    """What must not change for a verified file to stay verified without re-reading it.

    ctime cannot be set back by ``touch``, so even a byte flipped with the
    mtime restored is caught. Bit rot on the medium changes nothing here:
    that is what ``verify`` is for.
    """
    st = os.stat(path)
    return {"size": st.st_size, "mtime_ns": st.st_mtime_ns, "ctime_ns": st.st_ctime_ns, "ino": st.st_ino}


def same_fingerprint(entry, fp):
    return all(entry.get(k) == v for k, v in fp.items())
