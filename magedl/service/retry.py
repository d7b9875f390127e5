"""Retry policy: exponential backoff with jitter, honouring Retry-After.

Rule: only :class:`~magedl.errors.TransientError` is retried, and the attempt budget counts
consecutive attempts that made no progress, so a flaky link that keeps moving still finishes.
"""

import logging
import time
from dataclasses import dataclass
from typing import Callable, Optional, TypeVar

from magedl.errors import NetworkError, TransientError
from magedl.ranges import parse_http_date
from magedl.text import plural

log = logging.getLogger(__name__)
T = TypeVar("T")


def parse_retry_after(value: Optional[str], now: Optional[float] = None) -> Optional[float]:
    """Seconds to wait from a ``Retry-After`` header, or ``None``."""
    if not value:
        return None
    value = value.strip()
    if value.isascii() and value.isdigit():
        return float(value)
    when = parse_http_date(value)
    if when is None:
        return None
    now = time.time() if now is None else now
    return max(0.0, when - now)


@dataclass(frozen=True)
class RetryPolicy:
    """How hard to try.

    Attributes
    ----------
    attempts : int
        Attempts in a row without progress before giving up.
    backoff : float
        First wait in seconds; doubles each time, with jitter.
    max_backoff : float
        Ceiling of a single computed wait.
    max_retry_after : float
        Ceiling on a server's ``Retry-After`` (a server asking for an hour
        should not hang a build for an hour).
    """

    attempts: int = 5
    backoff: float = 1.0
    max_backoff: float = 60.0
    max_retry_after: float = 300.0

    def longest_wait(self) -> float:
        """Seconds of backoff before giving up, at most, when no attempt makes progress (Retry-After aside)."""
        return sum(min(self.backoff * 2 ** n, self.max_backoff) + self.backoff
                   for n in range(max(0, self.attempts - 1)))

    def call(self, fn: Callable[[], T], what: str, progress: Optional[Callable[[], object]] = None,
             stop: Optional[Callable[[], bool]] = None) -> T:
        """Run ``fn()`` until it succeeds, retrying transient failures.

        Parameters
        ----------
        fn : callable
            One attempt. Raises :class:`TransientError` to ask for a retry.
        what : str
            Names the operation in messages.
        progress : callable, optional
            Returns a number that grows while work gets done; an attempt
            that moved it does not count against the budget.
        stop : callable, optional
            Returns True when the caller is shutting down: waits end early
            (the next attempt is expected to notice and return).

        Raises
        ------
        NetworkError
            When the budget is spent; the message carries the last reason.
        """
        stop_after = _StopWithoutProgress(self.attempts, progress)  # before the first attempt: it may progress
        # The first attempt runs here, outside tenacity: most calls succeed at once, and building
        # and driving a Retrying costs more than a small file's request. A failure hands that first
        # outcome to tenacity, which then goes on exactly as if it had run the attempt itself.
        try:
            return fn()
        except TransientError as exc:
            first = [exc]

        def attempt():
            if first:
                raise first.pop()
            return fn()

        import tenacity  # only once something failed: most runs never need it

        jittered = tenacity.wait_exponential(multiplier=self.backoff) + tenacity.wait_random(0, self.backoff)

        def expo(state):
            return min(jittered(state), self.max_backoff)

        def wait(state):
            retry_after = getattr(state.outcome.exception(), "retry_after", None)
            if retry_after is not None:
                return min(retry_after, self.max_retry_after)
            return expo(state)

        def before_sleep(state):
            if not _told:  # once a run, so a person knows how long a dead server will be waited for
                _told.append(True)
                log.warning("retrying failed requests: up to %s in a row without progress, about %s of waiting "
                            "at most (--retries, --retry-wait)", plural(self.attempts, "attempt"),
                            _duration(self.longest_wait()))
            log.warning(
                "%s; retrying in %.1fs", state.outcome.exception(), state.next_action.sleep
            )

        retrying = tenacity.Retrying(
            stop=stop_after,
            wait=wait,
            retry=tenacity.retry_if_exception_type(TransientError),
            before_sleep=before_sleep,
            sleep=_sleeper(stop),
            reraise=True,
        )
        try:
            return retrying(attempt)
        except TransientError as exc:
            raise NetworkError(f"{exc}; gave up after {plural(self.attempts, 'attempt')} without progress") from None


_told = []  # non-empty once the first retry of this process said how long retries go on


def _duration(seconds: float) -> str:
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.0f} min"


def _sleeper(stop):
    """``time.sleep``, or a sleep that ends early once ``stop()`` is true."""
    if stop is None:
        return time.sleep

    def sleep(seconds):
        deadline = time.monotonic() + seconds
        while not stop():
            left = deadline - time.monotonic()
            if left <= 0:
                return
            time.sleep(min(left, 0.1))

    return sleep


class _StopWithoutProgress:
    """tenacity stop condition: N consecutive attempts that moved nothing."""

    def __init__(self, attempts, progress):
        self.attempts = max(1, attempts)
        self.progress = progress or (lambda: 0)
        self.last = self.progress()
        self.stalled = 0

    def __call__(self, state):
        now = self.progress()
        if now != self.last:
            self.last = now
            self.stalled = 0
            return False
        self.stalled += 1
        return self.stalled >= self.attempts
