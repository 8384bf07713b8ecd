"""Token buckets for requests-per-minute and tokens-per-minute limits. Pure: the caller passes the time."""

from __future__ import annotations


class TokenBucket:
    """``rate_per_minute`` units refill continuously up to a full minute's worth (the burst).

    :meth:`reserve` takes units now and returns how long the caller must wait before using them (0: at once).
    Reservations may drive the level negative, so concurrent callers queue up in order instead of all waking at
    once; :meth:`refund` gives back what was over-estimated (tokens estimated before a request, counted after).
    A request larger than the burst is allowed once the bucket is full, so it is never refused forever.
    """

    __slots__ = ("_level", "_updated", "capacity", "rate_per_second")

    def __init__(self, rate_per_minute: float, now: float) -> None:
        if rate_per_minute <= 0:
            raise ValueError("a rate limit must be positive")
        self.rate_per_second = rate_per_minute / 60.0
        self.capacity = float(rate_per_minute)
        self._level = self.capacity
        self._updated = now

    def _refill(self, now: float) -> None:
        if now > self._updated:
            self._level = min(self.capacity, self._level + (now - self._updated) * self.rate_per_second)
            self._updated = now

    def level(self, now: float) -> float:
        self._refill(now)
        return self._level

    def reserve(self, amount: float, now: float) -> float:
        """Take ``amount`` units; the seconds to wait before they may be spent."""
        self._refill(now)
        amount = min(amount, self.capacity)  # larger than a burst: waits for a full bucket, never forever
        self._level -= amount
        if self._level >= 0:
            return 0.0
        return -self._level / self.rate_per_second

    def refund(self, amount: float, now: float) -> None:
        """Give back ``amount`` units (negative: take more, e.g. when a request used more tokens than estimated)."""
        self._refill(now)
        self._level = min(self.capacity, self._level + amount)
