"""One bandwidth budget shared by every connection of a run (``--limit-rate``)."""

import re
import threading
import time

_RATE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([kmg]?)(?:i?b)?(?:/s)?\s*$", re.I)
_UNITS = {"": 1, "k": 1024, "m": 1024**2, "g": 1024**3}


def parse_rate(text):
    """``"20M"`` -> bytes per second. Units k, M, G are binary, as in curl and wget.

    Raises
    ------
    ValueError
        For anything else, or a rate of zero.
    """
    match = _RATE.match(str(text))
    if not match:
        raise ValueError(f"not a rate: {text!r} (try 500k, 20M or 1G)")
    rate = float(match.group(1)) * _UNITS[match.group(2).lower()]
    if rate < 1:
        raise ValueError(f"rate must be at least 1 byte/s: {text!r}")
    return int(rate)


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
