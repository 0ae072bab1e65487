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
        self._burst_s = burst_s
        self._clock = clock
        self._buckets: dict[object, tuple[float, int]] = {}
        self._lock = threading.Lock()

    @property
    def enabled(self) -> bool:
        return self.rate > 0

    def take(
        self, key: object, cost: float = 1.0, *, scope: str, rate: float | None = None
    ) -> None:
        """Spend ``cost`` tokens or raise RateLimited with a whole-second Retry-After.

        ``rate`` overrides the default for this key (a workspace's own limit); 0 turns it off.
        """
        rate = self.rate if rate is None else rate
        if rate <= 0:
            return
        capacity = max(1.0, rate * self._burst_s)
        now = self._clock.now_ms()
        with self._lock:
            tokens, at = self._buckets.get(key, (capacity, now))
            tokens = min(capacity, tokens + (now - at) / 1000.0 * rate)
            # A request bigger than the bucket passes when the bucket is full and leaves a
            # debt, so a 100-batch bulk request is possible under a 50 batches/s limit.
            need = min(cost, capacity)
            if tokens >= need:
                self._buckets[key] = (tokens - cost, now)
                return
            self._buckets[key] = (tokens, now)
            wait = (need - tokens) / rate
        raise RateLimited(
            f"rate limit of {rate:g}/s exceeded",
            retry_after=max(1, math.ceil(wait)),
            scope=scope,
        )
