"""Applying the inbox: take a partition's next batches in order and run the pipeline.

One transaction per chunk holds the lease check, every step's writes and the processed marks,
so work is applied exactly once even when a worker dies half-way.
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Connection

from opencdp.core.clock import Clock
from opencdp.core.db import Database
from opencdp.core.errors import BadRequest
from opencdp.core.metrics import Metrics
from opencdp.events.limits import apply_limits
from opencdp.events.schema import decode_batch
from opencdp.ingestion import store
from opencdp.ingestion.pipeline import Pipeline, WorkItem

logger = logging.getLogger(__name__)


class ProcessingService:
    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        pipeline: Pipeline,
        metrics: Metrics,
        chunk_size: int = 500,
        lease_ttl_ms: int = 15_000,
    ) -> None:
        self._db = db
        self._clock = clock
        self.pipeline = pipeline
        self._metrics = metrics
        self._chunk = chunk_size
        self._ttl = lease_ttl_ms

    def partitions_with_work(self) -> list[int]:
        with self._db.read() as conn:
            return store.partitions_with_work(conn)

    def process_partition(self, partition: int, owner: str) -> int:
        return self.process_partitions([partition], owner)

    def process_partitions(self, partitions: list[int], owner: str) -> int:
        """Apply the next batches of these partitions in one transaction, if we hold (or can
        take) their leases. Returns the number of batches applied.

        Several partitions share a transaction so that the commit (an fsync) is paid per
        chunk of ``chunk_size`` batches, not per partition; order within each partition is
        kept, and batches of one user are always in one partition.
        """
        now = self._clock.now_ms()
        with self._db.write() as tx:
            held = [p for p in partitions if store.claim_lease(tx, p, owner, now, self._ttl)]
            rows = store.fetch_pending_in(tx, held, self._chunk)
            if not rows:
                return 0
            fresh = self._first_applications(tx, rows)
            items: list[WorkItem] = []
            for row in fresh:
                try:
                    batch = decode_batch(row.payload)
                except BadRequest:  # accepted bytes always decode; never wedge a partition
                    logger.error("inbox.undecodable_batch", extra={"batch_id": row.id})
                    continue
                # The service limits (ADR 0003) are applied here, not on the accept path: they
                # never change the API's answer, and the inbox keeps the bytes the client sent.
                batch, report = apply_limits(batch, server_to_server=row.kind != "web")
                for why, count in report.items():
                    self._metrics.limits_applied.labels(why).inc(count)
                items.append(
                    WorkItem(
                        batch_id=row.id,
                        workspace_id=row.workspace_id,
                        input_id=row.input_id,
                        kind=row.kind,
                        received_ms=row.received_ms,
                        batch=batch,
                    )
                )
            self.pipeline.run(tx, items, now)
            store.mark_processed(tx, [r.id for r in rows], now)
        done = self._clock.now_ms()
        self._metrics.batches_processed.inc(len(rows))
        self._metrics.events_processed.inc(sum(len(i.batch.events or ()) for i in items))
        for row in rows:
            self._metrics.processing_lag.observe(max(0, done - row.received_ms) / 1000.0)
        return len(rows)

    def _first_applications(
        self, tx: Connection, rows: list[store.InboxRow]
    ) -> list[store.InboxRow]:
        """The rows to apply: all but the retries of a request already applied (or applied
        earlier in this chunk). Retries are marked processed with the rest, unapplied.

        De-duplication happens here, not when the request is accepted (ADR 0007): a unique
        index on the inbox cost every request's commit a random page write.
        """
        keys = [key for key in (row.request_key for row in rows) if key is not None]
        if not keys:
            return rows
        owners = store.applied_owners(tx, keys)
        fresh: list[store.InboxRow] = []
        new: list[tuple[tuple[int, str], int]] = []
        for row in rows:
            key = row.request_key
            if key is not None:
                owner = owners.get(key)
                if owner is None:
                    owners[key] = row.id
                    new.append((key, row.id))
                elif owner != row.id:  # a retry; the first copy was (or is being) applied
                    continue
            fresh.append(row)
        store.record_applied(tx, new)
        skipped = len(rows) - len(fresh)
        if skipped:
            self._metrics.batches_duplicate.inc(skipped)
        return fresh

    def release(self, owner: str) -> None:
        with self._db.write() as tx:
            store.release_leases(tx, owner)

    def ensure_partitions(self, count: int) -> int:
        """Create lease rows on first start; return the store's (fixed) partition count."""
        with self._db.write() as tx:
            store.ensure_partitions(tx, count)
            return store.partition_count(tx)

    def pending(self) -> int:
        with self._db.read() as conn:
            return store.pending_count(conn)

    def lag_seconds(self) -> float:
        with self._db.read() as conn:
            oldest = store.oldest_pending_received_ms(conn)
        return 0.0 if oldest is None else max(0, self._clock.now_ms() - oldest) / 1000.0
