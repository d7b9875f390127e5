"""Byte ranges of one file: how a transfer is cut into segments and shared by connections.

Rule: a split cuts at or beyond what the segment's worker has received, never at what is merely
written (invariant 1 of :mod:`magedl.transfer`). The sizes come from :class:`magedl.transfer.options.Tuning`.
"""

from dataclasses import dataclass

from magedl.transfer.options import Tuning


@dataclass
class Segment:
    """Bytes ``[start, end)`` of the file, ``done`` of them written, ``received`` of them read by its worker.

    ``end`` is ``None`` while the file's size is unknown (then the segment
    runs to the end of the body). ``received`` runs ahead of ``done`` by the
    blocks on their way to the disk; a split never cuts below it, so no byte
    has two writers (see :mod:`magedl.transfer`).
    """

    start: int
    end: "int | None"
    done: int = 0
    busy: bool = False  # a worker owns it
    received: int = 0  # not in the sidecar: only what is written survives a run

    @property
    def pos(self):
        """The first byte not yet written."""
        return self.start + self.done

    @property
    def read_pos(self):
        """The first byte its worker has not yet taken from the network: where a split may cut."""
        return self.start + max(self.done, self.received)

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


def split_for_new_connections(segments, tuning: Tuning):
    """Cut the rest of the longest busy segment into idle pieces, in file order.

    Used when connections join a running transfer. Workers take pieces
    lowest offset first, so the completed prefix of the file, which is all
    the hasher can use, grows steadily instead of only at the very end.
    """
    busy = [s for s in segments if s.busy and s.end is not None and not s.finished]
    if not busy:
        return []
    longest = max(busy, key=_unread)
    piece = tuning.piece
    cut = _align_up(longest.read_pos + piece, tuning.align)
    if cut + tuning.min_split > longest.end:
        return []
    new = [Segment(a, min(a + piece, longest.end)) for a in range(cut, longest.end, piece)]
    longest.end = cut
    segments.extend(new)
    return new


def next_segment(segments, tuning: Tuning):
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
    longest = max(busy, key=_unread)
    unread = _unread(longest)
    if unread < 2 * tuning.min_split:
        return None
    cut = _align_up(longest.read_pos + unread // 2, tuning.align)
    if cut >= longest.end:
        return None
    new = Segment(cut, longest.end)
    longest.end = cut  # its worker has read nothing beyond the cut: the new segment's bytes have one writer
    segments.append(new)
    return new


def _unread(seg):
    """Bytes of a busy segment its worker has not yet taken from the network."""
    return seg.end - seg.read_pos


def _align_up(n, align):
    return -(-n // align) * align


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


def segments_to_json(segments):
    """``[[start, end, done], ...]`` in file order, as the sidecar holds them."""
    return [[s.start, s.end, s.done] for s in sorted(segments, key=lambda s: s.start)]


def segments_from_json(data, size):
    """Segments from a sidecar; ``None`` unless they tile ``[0, size)`` exactly.

    The sidecar is a file on disk that anyone may have edited: every entry
    must be three plain integers (the end may be ``None`` for the last one
    while the size is unknown), in order, without gap or overlap, each with
    no more done than it holds.
    """
    if not isinstance(data, list) or not data:
        return None
    segments = []
    expected = 0
    for entry in data:
        if expected is None or not isinstance(entry, list) or len(entry) != 3:
            return None  # nothing may follow a segment that runs to the end of the file
        start, end, done = entry
        if not (_plain_int(start) and _plain_int(done) and (end is None or _plain_int(end))):
            return None
        if start != expected or (end is not None and start + done > end):
            return None
        segments.append(Segment(start, end, done))
        expected = end
    if expected != size:
        return None
    return segments


def _plain_int(value):
    return type(value) is int and value >= 0
