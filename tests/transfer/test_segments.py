"""Segment arithmetic: plans, splits, the completed prefix, the sidecar's segment list."""

import pytest

from magedl.transfer import segments as seglib
from magedl.transfer.options import Tuning
from magedl.transfer.segments import Segment


def test_plan_is_one_segment():
    assert seglib.plan(10) == [Segment(0, 10)]
    assert seglib.plan(None) == [Segment(0, None)]


TINY = Tuning(min_split=10, align=1, piece=20)


def test_split_for_new_connections_cuts_the_rest_into_ordered_pieces():
    first = Segment(0, 100, done=5, busy=True)
    segs = [first]
    new = seglib.split_for_new_connections(segs, TINY)
    assert first.end == 25
    assert [(s.start, s.end) for s in new] == [(25, 45), (45, 65), (65, 85), (85, 100)]
    # Idle workers take the lowest offset first, so the hashed prefix keeps growing.
    assert seglib.next_segment(segs, TINY) is new[0]


def test_next_segment_splits_the_longest_busy_segment_when_nothing_is_idle():
    a, b = Segment(0, 50, done=40, busy=True), Segment(50, 150, done=0, busy=True)
    segs = [a, b]
    new = seglib.next_segment(segs, TINY)
    assert (new.start, new.end) == (100, 150) and b.end == 100
    new.busy = True
    a.done, b.done, new.done = 50, 45, 35
    assert seglib.next_segment(segs, TINY) is None  # what is left is too short to share


def test_a_split_never_cuts_below_what_the_worker_has_received():
    """Bytes read from the network but not yet written stay the worker's: no byte gets two writers (issue 17)."""
    reading = Segment(0, 100, done=5, busy=True, received=60)
    new = seglib.split_for_new_connections([reading], TINY)
    assert reading.end == 80 and new[0].start == 80  # from the received position, not the written one
    busy = Segment(0, 200, done=10, busy=True, received=150)
    segs = [busy]
    new = seglib.next_segment(segs, TINY)
    assert new.start == busy.end == 175  # half of what is still unread, beyond the 150 received
    behind = Segment(0, 100, done=10, busy=True, received=85)
    assert seglib.next_segment([behind], TINY) is None  # what is unread is too short to share


def test_contiguous_end_stops_at_the_first_gap():
    segs = [Segment(0, 10, 10), Segment(10, 20, 4), Segment(20, 30, 10)]
    assert seglib.contiguous_end(segs) == 14
    segs[1].done = 10
    assert seglib.contiguous_end(segs) == 30


@pytest.mark.parametrize("data", [
    [[0, 10, 3], [10, 20, 0]],
    [[0, None, 7]],
])
def test_sidecar_segments_round_trip(data):
    size = None if data[-1][1] is None else data[-1][1]
    segs = seglib.segments_from_json(data, size)
    assert seglib.segments_to_json(segs) == data


@pytest.mark.parametrize("data, size", [
    ([[0, 10, 3], [12, 20, 0]], 20),   # a hole
    ([[0, 10, 11]], 10),               # more done than the segment holds
    ([[0, 10, 0]], 20),                # does not reach the size
    ("nonsense", 10),
    ([], 0),
])
def test_corrupt_sidecar_segments_are_refused(data, size):
    assert seglib.segments_from_json(data, size) is None


@pytest.mark.parametrize("data, size", [
    ([[0, None, 5], [5, 10, 0]], None),  # something after a segment that runs to the end
    ([[0, 10.0, 3]], 10),                # not plain integers
    ([[0, True, 0]], 1),
    ([[0, 10, -1]], 10),
    ([[0, 10]], 10),
    ({"0": [0, 10, 0]}, 10),
    ([["0", "10", "0"]], 10),
])
def test_sidecar_segments_of_the_wrong_shape_are_refused(data, size):
    assert seglib.segments_from_json(data, size) is None
