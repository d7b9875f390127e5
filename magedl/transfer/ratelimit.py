"""One bandwidth budget shared by every connection of a run (``--limit-rate``)."""

import threading
import time

from magedl.config import parse_size


def parse_rate(text):
    """``"20M"`` -> bytes per second. Units k, M, G are binary, as in curl and wget.

    The one size syntax is :func:`magedl.config.parse_size`; a rate may end
    in ``/s`` and must be at least one byte per second.

    Raises
    ------
    ValueError
        For anything else, or a rate of zero.
    """
    rate = parse_size(text, rate=True)
    if rate < 1:
        raise ValueError(f"rate must be at least 1 byte/s: {text!r}")
    return rate


class RateLimiter:
    """A token bucket: :meth:`take` blocks until *n* bytes may pass.

    Parameters
    ----------
    rate : int
        Bytes per second for all callers together.
    burst : float
        Seconds of traffic that may pass at once after an idle spell.
    """

    def __init__(self, rate, burst=0.25):
        self.rate = rate
        self.capacity = max(rate * burst, 64 * 1024)
        self._tokens = 0.0
        self._stamp = time.monotonic()
        self._lock = threading.Lock()

    def take(self, n, stop=None):
        """Account for *n* bytes, sleeping as long as the budget requires.

        A set *stop* event (``threading.Event``) cuts the sleep short.
        """
        with self._lock:
            now = time.monotonic()
            self._tokens = min(self.capacity, self._tokens + (now - self._stamp) * self.rate)
            self._stamp = now
            self._tokens -= n
            debt = -self._tokens
        # Sleep outside the lock: other connections can book their share meanwhile,
        # and each waits for the debt it sees, which keeps the total at the rate.
        if debt > 0:
            if stop is not None:
                stop.wait(debt / self.rate)
            else:
                time.sleep(debt / self.rate)
