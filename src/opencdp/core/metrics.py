"""Prometheus metrics, one registry per application instance (tests build many apps).

Names follow ``opencdp_<slice>_<what>_<unit>``. Gauges that describe the store (inbox depth,
processing lag) are computed when scraped, so they are right even when several processes share
one PostgreSQL.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

from prometheus_client import CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector


class _CallbackGauges(Collector):
    def __init__(self) -> None:
        self._gauges: list[tuple[str, str, Callable[[], float]]] = []

    def add(self, name: str, doc: str, fn: Callable[[], float]) -> None:
        self._gauges.append((name, doc, fn))

    def collect(self) -> Iterator[GaugeMetricFamily]:
        for name, doc, fn in self._gauges:
            try:
                value = float(fn())
            except Exception:
                continue
            yield GaugeMetricFamily(name, doc, value=value)


class Metrics:
    def __init__(self) -> None:
        self.registry = CollectorRegistry(auto_describe=True)
        r = self.registry
        self.batches_accepted = Counter(
            "opencdp_ingestion_batches_accepted",
            "Batches accepted (committed to the inbox)",
            ["route"],
            registry=r,
        )
        self.events_accepted = Counter(
            "opencdp_ingestion_events_accepted",
            "Events inside accepted batches",
            ["route"],
            registry=r,
        )
        self.batches_rejected = Counter(
            "opencdp_ingestion_batches_rejected",
            "Batches rejected, by reason",
            ["route", "reason"],
            registry=r,
        )
        self.events_rejected = Counter(
            "opencdp_ingestion_events_rejected",
            "Events inside rejected batches, by reason",
            ["route", "reason"],
            registry=r,
        )
        self.batches_duplicate = Counter(
            "opencdp_ingestion_batches_duplicate",
            "Retried batches: their input and source_request_id were applied before (skipped by the worker)",
            registry=r,
        )
        self.limits_applied = Counter(
            "opencdp_ingestion_limits_applied",
            "Values truncated or dropped by the documented limits, by reason",
            ["reason"],
            registry=r,
        )
        self.rate_limited = Counter(
            "opencdp_api_rate_limited_requests",
            "Requests answered 429, by API family",
            ["family"],
            registry=r,
        )
        self.group_commits = Counter(
            "opencdp_ingestion_group_commits", "Inbox transactions committed", registry=r
        )
        self.group_commit_rows = Counter(
            "opencdp_ingestion_group_commit_rows", "Inbox rows committed", registry=r
        )
        self.batches_processed = Counter(
            "opencdp_worker_batches_processed", "Batches applied by the worker", registry=r
        )
        self.events_processed = Counter(
            "opencdp_worker_events_processed", "Events stored by the worker", registry=r
        )
        self.processing_lag = Histogram(
            "opencdp_worker_processing_lag_seconds",
            "From inbox commit to processed",
            buckets=(0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300),
            registry=r,
        )
        self.http_errors = Counter(
            "opencdp_api_errors",
            "Error responses by family and code",
            ["family", "code"],
            registry=r,
        )
        self._gauges = _CallbackGauges()
        r.register(self._gauges)

    def gauge(self, name: str, doc: str, fn: Callable[[], float]) -> None:
        self._gauges.add(name, doc, fn)

    def render(self) -> bytes:
        return generate_latest(self.registry)
