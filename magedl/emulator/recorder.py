"""A request log for tests: every request a server saw, how it answered, how many bytes went out.

Rule: a record enters the log just before the last bytes of its reply leave, so a client holding a
complete response can already read its record; :meth:`RecordingServer.wait_for` wakes on every body
chunk and finished request, so no test has to sleep and hope.
"""

from __future__ import annotations

import threading
from dataclasses import dataclass, field
from typing import Callable, Dict, List, Optional

from magedl.server import ApiServer, Hooks, Reply, Request

__all__ = ["RequestRecord", "Recorder", "RecordingServer"]


@dataclass
class RequestRecord:
    """One request as the server saw and answered it.

    Attributes
    ----------
    method, path : str
        ``path`` is the raw request target.
    file_name : str or None
        Decoded name for ``file/`` requests.
    range, if_range : str or None
        The request's ``Range`` and ``If-Range`` headers, as sent.
    status : int or None
    bytes_sent : int
        Body bytes actually written (fewer when the client went away or the
        body was cut on purpose).
    had_authorization : bool
    client : tuple
        (address, port) of the client.
    headers : dict
        Request headers, Authorization redacted.
    aborted : bool
        The body was not completely written.
    finished : bool
    """

    method: str
    path: str
    file_name: Optional[str] = None
    range: Optional[str] = None
    if_range: Optional[str] = None
    status: Optional[int] = None
    bytes_sent: int = 0
    had_authorization: bool = False
    client: tuple = ()
    headers: dict = field(default_factory=dict)
    aborted: bool = False
    finished: bool = False


class _Counting:
    """A reply stream that counts the bytes written, and reports the last chunk before it leaves.

    The server asks for the next chunk only once the previous one is written,
    so a chunk is counted when the next is asked for; the last one is counted
    (and its record logged) as it is handed out, and the server's final
    figure (:meth:`Recorder.done`) corrects it if the write then fails.
    """

    def __init__(self, stream, length: int, count: Callable[[int], None], last: Callable[[], None]):
        self._stream, self._left, self._count, self._last = stream, length, count, last
        self._pending = 0

    def seek(self, pos):
        return self._stream.seek(pos)

    def read(self, n=-1):
        if self._pending:
            self._count(self._pending)
            self._pending = 0
        data = self._stream.read(n)
        self._left -= len(data)
        if data and self._left <= 0:
            self._count(len(data))
            self._last()
        else:
            self._pending = len(data)
        return data

    def close(self):
        self._stream.close()


class Recorder(Hooks):
    """Hooks that keep the request log; subclass it to add behaviour (the emulator's faults)."""

    def __init__(self):
        self.log: List[RequestRecord] = []
        self.in_flight: List[RequestRecord] = []
        self.cond = threading.Condition(threading.RLock())
        self._sent_by_file: Dict[str, int] = {}

    def received(self, req: Request) -> None:
        headers = {k: ("<redacted>" if k.lower() == "authorization" else v) for k, v in req.headers.items()}
        record = RequestRecord(method=req.method, path=req.path, file_name=req.file_name,
                               range=req.header("Range"), if_range=req.header("If-Range"),
                               had_authorization="Authorization" in req.headers, client=req.client,
                               headers=headers)
        req.context["record"] = record
        with self.cond:
            self.in_flight.append(record)
            self.cond.notify_all()

    def finish(self, req: Request, reply: Reply) -> Reply:
        record = req.context.get("record")
        if record is None:
            return reply
        record.status = reply.status
        if not reply.send_body or reply.content_length == 0:
            self._commit(record)
        elif reply.stream is None:
            # Counted before it is written, with the headers, in one go (see done for a failure).
            self._count(record, len(reply.body))
            self._commit(record)
        else:
            reply.stream = _Counting(reply.stream, reply.length, lambda n: self._count(record, n),
                                     lambda: self._commit(record))
        return reply

    def done(self, req: Request, reply: Reply, sent: int, aborted: bool) -> None:
        record = req.context.get("record")
        if record is None:
            return
        with self.cond:
            self._count(record, sent - record.bytes_sent)  # what really went out
            record.aborted = aborted
            self._commit(record)
            self.cond.notify_all()

    def _count(self, record: RequestRecord, n: int) -> None:
        with self.cond:
            record.bytes_sent += n
            if record.file_name is not None:
                self._sent_by_file[record.file_name] = self._sent_by_file.get(record.file_name, 0) + n
            self.cond.notify_all()

    def _commit(self, record: RequestRecord) -> None:
        with self.cond:
            if not record.finished:
                record.finished = True
                if record in self.in_flight:
                    self.in_flight.remove(record)
                self.log.append(record)
            self.cond.notify_all()

    def bytes_sent(self, file_name: Optional[str] = None) -> int:
        with self.cond:
            if file_name is None:
                return sum(self._sent_by_file.values())
            return self._sent_by_file.get(file_name, 0)

    def clear(self) -> None:
        with self.cond:
            self.log.clear()
            self._sent_by_file.clear()
            self.cond.notify_all()


class RecordingServer(ApiServer):
    """An :class:`~magedl.server.ApiServer` that keeps a request log.

    Parameters
    ----------
    store : Store
    hooks : Recorder, optional
        A :class:`Recorder` (or subclass); a plain one by default.
    **kwargs
        As for :class:`~magedl.server.ApiServer`.
    """

    def __init__(self, store, *, hooks: Optional[Recorder] = None, **kwargs):
        self.recorder = hooks if hooks is not None else Recorder()
        super().__init__(store, hooks=self.recorder, **kwargs)

    @property
    def log(self) -> List[RequestRecord]:
        """Finished requests, in the order they finished."""
        return self.recorder.log

    @property
    def in_flight(self) -> List[RequestRecord]:
        """Requests being answered."""
        return self.recorder.in_flight

    def wait_for(self, predicate: Callable[["RecordingServer"], bool], timeout: float = 10) -> bool:
        """Block until ``predicate(self)`` is true, or the timeout passes; return its last value.

        Re-evaluated whenever a body chunk is handed out or a request ends.
        """
        with self.recorder.cond:
            return self.recorder.cond.wait_for(lambda: predicate(self), timeout)

    def bytes_sent(self, file_name: Optional[str] = None) -> int:
        """Body bytes sent so far for ``file_name`` (all files if None), requests in flight included."""
        return self.recorder.bytes_sent(file_name)

    def requests_for(self, file_name: str, method: Optional[str] = None) -> List[RequestRecord]:
        """Finished records for one file (optionally one method)."""
        with self.recorder.cond:
            return [r for r in self.log if r.file_name == file_name and (method is None or r.method == method)]

    def clear_log(self) -> None:
        """Forget finished requests and byte counts."""
        self.recorder.clear()
