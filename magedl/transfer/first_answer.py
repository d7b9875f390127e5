"""The first answer of a download: the whole file asked for, its head sniffed, the transfer planned.

What follows it is :mod:`magedl.transfer.workers`; the orchestration around both is
:mod:`magedl.transfer.one_file`.
"""

from magedl.errors import Interrupted, MagedlError, NotAnArchive, TransientError
from magedl.ranges import Validators, parse_length
from magedl.service import sniff
from magedl.service.catalog import file_suffix
from magedl.service.neterrors import transient_from
from magedl.transfer import segments as seglib
from magedl.transfer.body import READ_ERRORS, encoded, first_bytes
from magedl.transfer.partial import PartialState
from magedl.transfer.pipeline import Buffers
from magedl.transfer.workers import DownloadContext

_EMPTY_MD5 = "d41d8cd98f00b204e9800998ecf8427e"


def open_whole_file(context: DownloadContext, state: PartialState, range_ok: bool, buffers: Buffers, fresh=None):
    """GET the whole file (or take *fresh*, a 200 already open); sniff it; plan *state*.

    Returns ``(response, head, blocks)``: the open response, its first
    bytes and the rest of its body, which the first worker writes in turn.
    """
    pending = [fresh]

    def attempt():
        response = pending.pop() if pending and pending[0] is not None else None
        if response is None:
            response = context.client.open(context.url, context.file_name, headers={"Accept-Encoding": "identity"})
        if response.status_code != 200:
            response.close()
            raise MagedlError(f"{context.file_name}: unexpected answer HTTP {response.status_code}")
        blocks = context.blocks(response, buffers)
        try:
            head = first_bytes(blocks)
        except READ_ERRORS as exc:
            response.close()
            raise transient_from(exc, context.file_name) from None
        if not head and state.md5 and state.md5 != _EMPTY_MD5:
            # Nothing at all where a file is expected: a connection cut inside the headers
            # (http.client takes what came as complete) or a broken proxy. Worth a retry.
            response.close()
            raise TransientError(f"{context.file_name}: the server sent an empty answer")
        return response, head, blocks

    response, head, blocks = context.client.retry.call(attempt, context.file_name, stop=context.cancel.is_set)
    if context.cancel.is_set():
        response.close()
        raise Interrupted(f"{context.file_name}: cancelled")
    headers = response.headers
    coded = encoded(headers)
    state.size = None if coded else parse_length(headers.get("Content-Length"))
    reason = sniff.refuse_reason(file_suffix(context.file_name), bytes(head[:sniff.HEAD_SIZE]),
                                 headers.get("Content-Type", ""), state.size, bool(state.md5))
    if reason:
        response.close()
        raise NotAnArchive(f"{context.file_name}: {reason}; nothing was saved")
    state.validators = Validators.from_headers(headers)
    state.splittable = bool(range_ok and not coded and state.size is not None
                            and headers.get("Accept-Ranges", "").lower() == "bytes" and state.validators.if_range())
    state.segments = seglib.plan(state.size)
    state.segments[0].busy = True  # the first worker continues this response
    return response, head, blocks
