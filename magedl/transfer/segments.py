"""Byte ranges of one file and the sidecar that lets a later run resume them.

A transfer is a list of :class:`Segment`; a plain download is a single
segment from 0 to the end. The sidecar (``NAME.magedl-part.json``) records
each segment's progress, so after ``kill -9`` every segment resumes where its
last recorded byte ended. Progress is recorded only after the bytes are
written, so the sidecar never claims bytes the partial file lacks.
"""

import json
import os
from dataclasses import dataclass

MIN_SPLIT = 2 << 20  # a split leaves both halves at least this long: less is not worth a request
PIECE = 4 << 20  # what one connection fetches per request once several share a file
ALIGN = 64 << 10


@dataclass
class Segment:
    """Bytes ``[start, end)`` of the file, ``done`` of them written.

    ``end`` is ``None`` while the file's size is unknown (then the segment
    runs to the end of the body).
    """

    start: int
    end: "int | None"
    done: int = 0
    busy: bool = False  # a worker owns it

    @property
    def pos(self):
        return self.start + self.done

    @property
    def remaining(self):
        return None if self.end is None else self.end - self.pos

    @property
    def finished(self):
        return self.end is not None and self.pos >= self.end


def plan(size):
    """The first plan: one segment for the whole file.

    More connections join later by splitting it (:func:`next_segment`), and
    only when one connection turns out to be slow, so a fast link is not
    slowed down by connections it does not need.
    """
    return [Segment(0, size)]


def carve(segments, piece=PIECE):
    """Cut the rest of the longest busy segment into idle pieces, in file order.

    Used when connections join a running transfer. Workers take pieces
    lowest offset first, so the completed prefix of the file, which is all
    the hasher can use, grows steadily instead of only at the very end.
    """
    busy = [s for s in segments if s.busy and s.end is not None and not s.finished]
    if not busy:
        return []
    victim = max(busy, key=lambda s: s.remaining)
    cut = -(-(victim.pos + piece) // ALIGN) * ALIGN
    if cut + MIN_SPLIT > victim.end:
        return []
    new = [Segment(a, min(a + piece, victim.end)) for a in range(cut, victim.end, piece)]
    victim.end = cut
    segments.extend(new)
    return new


def next_segment(segments):
    """The segment an idle worker should take next, or ``None``.

    The unowned unfinished segment with the lowest offset comes first;
    otherwise the back half of the busy segment
    with the most left to do is split off, so no connection sits idle while
    another still has a long way to go. The caller marks the result busy.
    """
    idle = [s for s in segments if not s.busy and not s.finished]
    if idle:
        return min(idle, key=lambda s: s.start)
    busy = [s for s in segments if s.busy and s.end is not None and not s.finished]
    if not busy:
        return None
    victim = max(busy, key=lambda s: s.remaining)
    if victim.remaining < 2 * MIN_SPLIT:
        return None
    cut = -(-(victim.pos + victim.remaining // 2) // ALIGN) * ALIGN
    if cut >= victim.end:
        return None
    new = Segment(cut, victim.end)
    victim.end = cut  # its worker stops there; the bytes are the same either way
    segments.append(new)
    return new


def contiguous_end(segments):
    """End of the prefix ``[0, n)`` that is completely written."""
    end = 0
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.start > end:
            break
        end = max(end, seg.pos)
        if not seg.finished:
            break
    return end


def save_state(path, state):
    """Write the sidecar atomically (a crash leaves the old or the new one)."""
    tmp = path.with_name(path.name + ".tmp")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def load_state(path):
    """The sidecar's dict, or ``None`` when absent or unreadable."""
    try:
        state = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    return state if isinstance(state, dict) else None


def segments_to_json(segments):
    return [[s.start, s.end, s.done] for s in sorted(segments, key=lambda s: s.start)]


def segments_from_json(data, size):
    """Segments from a sidecar; ``None`` if they do not tile ``[0, size)`` sanely."""
    try:
        segments = [Segment(int(a), None if b is None else int(b), int(d)) for a, b, d in data]
    except (TypeError, ValueError):
        return None
    if not segments:
        return None
    expected = 0
    for seg in sorted(segments, key=lambda s: s.start):
        if seg.start != expected or seg.done < 0 or (seg.end is not None and seg.pos > seg.end):
            return None
        expected = seg.end
        if expected is None:
            break
    if expected != size:
        return None
    return segments
