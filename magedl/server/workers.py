"""The threads that answer requests: started when needed, kept while busy, reused when idle.

A thread started per request costs more than answering a small file does, so threads wait for the
next job, and those beyond what the load needs end after ``idle_seconds`` without work.
"""

from __future__ import annotations

import queue
import threading
from typing import Callable

__all__ = ["Workers"]


class Workers:
    """A pool of daemon threads running jobs from a queue.

    Parameters
    ----------
    name : str
        Thread name (shown in a debugger or ``py-spy``).
    idle_seconds : float
        How long a thread with no work waits for some before it ends.
    """

    def __init__(self, name: str, idle_seconds: float = 30.0):
        self.name = name
        self.idle_seconds = idle_seconds
        self._jobs: queue.SimpleQueue = queue.SimpleQueue()
        # One permit per thread waiting for work: a job that takes one is sure to find a taker.
        self._idle = threading.Semaphore(0)
        self._lock = threading.Lock()
        self._ended = threading.Condition(self._lock)  # notified as each thread ends
        self._threads = 0
        self._stopped = False

    def submit(self, job: Callable[[], None]) -> None:
        """Run *job* on a waiting thread, or on a new one when none waits.

        Raises
        ------
        RuntimeError
            A new thread cannot be started (the caller drops the connection).
        """
        if not self._idle.acquire(blocking=False):
            with self._lock:
                self._threads += 1
            try:
                threading.Thread(target=self._run, name=self.name, daemon=True).start()
            except BaseException:
                with self._ended:
                    self._threads -= 1
                    self._ended.notify_all()
                raise
        self._jobs.put(job)

    def stop(self) -> None:
        """Make every waiting thread end (busy ones end after their job)."""
        with self._lock:
            self._stopped = True
            count = self._threads
        for _ in range(count):
            self._jobs.put(None)

    def wait_ended(self, timeout: float) -> bool:
        """After :meth:`stop`: wait until every thread has ended (its job done); False if *timeout* came first.

        So a stopped server has finished what it was answering, its access log
        lines included, and nothing it started still runs.
        """
        with self._ended:
            return self._ended.wait_for(lambda: self._threads == 0, timeout)

    @property
    def threads(self) -> int:
        """Threads alive now (busy or waiting)."""
        with self._lock:
            return self._threads

    def _run(self) -> None:
        try:
            while True:
                try:
                    job = self._jobs.get(timeout=self.idle_seconds)
                except queue.Empty:
                    if self._idle.acquire(blocking=False):
                        return  # no job was promised to this thread: it may end
                    continue  # a submitter took this thread's permit: its job is on the way
                if job is None:
                    return
                job()
                with self._lock:
                    if self._stopped:
                        return
                self._idle.release()
        finally:
            with self._ended:
                self._threads -= 1
                self._ended.notify_all()
