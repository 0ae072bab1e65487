"""Token buckets keyed by scope (workspace, OAuth client, ...), kept in process memory.

Limits are per process; with several API processes each enforces its share. A later issue can
move the counters to Redis (they are rebuildable state) without changing callers.
"""

from __future__ import annotations

import math
import threading

from opencdp.core.clock import Clock
from opencdp.core.errors import RateLimited


class RateLimiter:
    def __init__(self, *, rate_per_s: float, clock: Clock, burst_s: float = 1.0) -> None:
        self.rate = rate_per_s
        self._capacity = max(1.0, rate_per_s * burst_s)
        self._clock = clock
        self._buckets: dict[object, tuple[float, int]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(self, key: object, cost: float = 1.0, *, scope: str) -> None:
        """Spend ``cost`` tokens or raise RateLimited with a whole-second Retry-After."""
        if self.rate <= 0:
            return
        now = self._clock.now_ms()
        with self._lock:
            tokens, at = self._buckets.get(key, (self._capacity, now))
            tokens = min(self._capacity, tokens + (now - at) / 1000.0 * self.rate)
            if tokens >= cost:
                self._buckets[key] = (tokens - cost, now)
                return
            self._buckets[key] = (tokens, now)
            wait = (cost - tokens) / self.rate
        raise RateLimited(
            f"rate limit of {self.rate:g}/s exceeded",
            retry_after=max(1, math.ceil(wait)),
            scope=scope,
        )
