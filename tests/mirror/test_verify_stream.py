"""verify at scale: each finding is given (and printed) as its file is hashed, not after every file is."""

import hashlib
import json

from clirun import run

from magedl.cli import progress
from magedl.mirror import verify as engine

FILES = 5


def small_mirror(root):
    """A mirror whose SHA256SUMS lists FILES archives and info/json (no Composer part)."""
    (root / "file").mkdir(parents=True)
    (root / "info").mkdir()
    feed, lines = {"ce-patch": {"9.0.0": []}}, []
    for i in range(FILES):
        name = f"PATCH_{i}.tar.gz"
        data = b"\x1f\x8b" + bytes([i]) * 64
        (root / "file" / name).write_bytes(data)
        feed["ce-patch"]["9.0.0"].append({"name": name, "file_name": name, "md5": hashlib.md5(data).hexdigest()})
        lines.append(f"{hashlib.sha256(data).hexdigest()}  file/{name}")
    for rel in ("info/json", "info/files", "info/versions"):
        data = json.dumps(feed).encode() if rel == "info/json" else b"-\n"
        (root / rel).write_bytes(data)
        lines.append(f"{hashlib.sha256(data).hexdigest()}  {rel}")
    (root / "SHA256SUMS").write_text("\n".join(sorted(lines, key=lambda line: line[66:])) + "\n")
    return root


def events_of_a_run(tmp_path, capsys, monkeypatch, *options):
    """What a verify run did, in order: ("hash", path) as each archive is opened, ("line", text) as stdout gets it."""
    root = small_mirror(tmp_path / "mirror")
    events = []
    opened, printed = engine.open_published, progress.Terminal.data

    def open_published(folder, rel):
        if rel.startswith("file/"):
            events.append(("hash", rel))
        return opened(folder, rel)

    def data(self, out, text):
        events.append(("line", text))
        return printed(self, out, text)

    monkeypatch.setattr(engine, "open_published", open_published)
    monkeypatch.setattr(progress.Terminal, "data", data)
    code, out, err = run(capsys, *options, "verify", str(root))
    assert code == 0, err
    return events, out


def test_each_line_is_printed_before_the_next_file_is_hashed(tmp_path, capsys, monkeypatch):
    events, _ = events_of_a_run(tmp_path, capsys, monkeypatch, "-q")
    hashed = [rel for what, rel in events if what == "hash"]
    assert hashed == [f"file/PATCH_{i}.tar.gz" for i in range(FILES)]
    for i, rel in enumerate(hashed[:-1]):  # the line of one archive comes between its hashing and the next one's
        between = events[events.index(("hash", rel)) + 1:events.index(("hash", hashed[i + 1]))]
        assert ("line", f"{rel}: OK") in between, events


def test_json_rows_are_written_as_each_file_is_hashed(tmp_path, monkeypatch):
    from magedl.cli import main

    root = small_mirror(tmp_path / "mirror")
    out, rows_when_opened = [], []
    opened = engine.open_published

    def open_published(folder, rel):
        if rel.startswith("file/"):
            rows_when_opened.append("".join(out).count('"status"'))
        return opened(folder, rel)

    class Stdout:
        write, flush = out.append, staticmethod(lambda: None)

    monkeypatch.setattr(engine, "open_published", open_published)
    monkeypatch.setattr("sys.stdout", Stdout())
    assert main(["-q", "--json", "verify", str(root)]) == 0
    rows = json.loads("".join(out))
    assert len(rows) == FILES + 3 and {r["status"] for r in rows} == {"ok"}  # the archives, then info/*
    assert rows_when_opened == list(range(FILES))  # each archive's row is out before the next one is opened
