"""``source_request_id``: a retried request is accepted every time and applied once (ADR 0007).

The worker decides, when it applies a batch, whether its input already had that request id
applied; these run on SQLite and, with ``OPENCDP_TEST_DATABASE_URL``, on PostgreSQL.
"""

from __future__ import annotations

import msgspec
import sqlalchemy as sa

from opencdp.app import Runtime
from opencdp.events import store as event_store
from opencdp.ingestion import store
from opencdp.ingestion.service import Route
from opencdp.tenancy.model import Principal
from tests.support.batches import batch


def _principal(runtime: Runtime) -> Principal:
    creds, _ = runtime.tenancy.bootstrap(data_dir=runtime.settings.data_dir)
    return runtime.tenancy.authenticate_basic(creds.api_key, creds.api_secret)


def _events(runtime: Runtime) -> int:
    with runtime.db.read() as conn:
        return event_store.count_events(conn)


def _duplicates(runtime: Runtime) -> float:
    value = runtime.metrics.registry.get_sample_value("opencdp_ingestion_batches_duplicate_total")
    return value or 0.0


def test_copies_in_one_chunk_and_in_later_passes_are_applied_once(runtime: Runtime) -> None:
    p = _principal(runtime)
    same = batch(source_request_id="r-1", events=2)
    other = batch(source_request_id="r-2", events=3)
    body = msgspec.json.encode([same, other, same])  # one bulk request holding a retry
    runtime.ingestion.accept_sync(p, body, Route.BULK)
    runtime.worker.drain()
    assert _events(runtime) == 5
    assert _duplicates(runtime) == 1
    runtime.ingestion.accept_sync(p, msgspec.json.encode(same), Route.EVENTS)  # a later retry
    runtime.worker.drain()
    assert _events(runtime) == 5
    assert _duplicates(runtime) == 2
    with runtime.db.read() as conn:
        assert store.count_batches(conn) == 4  # every copy was stored ...
        assert store.pending_count(conn) == 0  # ... and every copy is done with


def test_batches_without_an_id_are_never_taken_for_retries(runtime: Runtime) -> None:
    p = _principal(runtime)
    anonymous = batch(events=1)
    del anonymous["source_request_id"]
    body = msgspec.json.encode(anonymous)
    for _ in range(3):
        runtime.ingestion.accept_sync(p, body, Route.EVENTS)
    runtime.worker.drain()
    assert _events(runtime) == 3
    assert _duplicates(runtime) == 0


def test_a_row_recorded_as_applied_for_itself_is_still_applied(runtime: Runtime) -> None:
    """Migration 0005 records the ids the old unique index held, including rows the worker
    had not reached yet: those are applied as their own, not skipped."""
    p = _principal(runtime)
    runtime.ingestion.accept_sync(
        p, msgspec.json.encode(batch(source_request_id="before", events=4)), Route.EVENTS
    )
    with runtime.db.write() as tx:
        (row_id,) = tx.execute(sa.text("SELECT id FROM inbox")).scalars().all()
        store.record_applied(tx, [((p.input_id, "before"), int(row_id))])
    runtime.worker.drain()
    assert _events(runtime) == 4
    assert _duplicates(runtime) == 0


def test_pending_rows_of_several_partitions_keep_each_partitions_order(runtime: Runtime) -> None:
    p = _principal(runtime)
    for i in range(40):
        user = batch(customer_id=f"user-{i % 5}", events=1)
        runtime.ingestion.accept_sync(p, msgspec.json.encode(user), Route.EVENTS)
    with runtime.db.read() as conn:
        partitions = store.partitions_with_work(conn)
        everything = store.fetch_pending_in(conn, partitions, 1000)
        first = store.fetch_pending_in(conn, partitions, 7)
    assert len(everything) == 40
    for partition in partitions:
        ids = [r.id for r in everything if r.partition == partition]
        assert ids == sorted(ids)
        # a limited fetch takes a prefix of each partition's queue, never skipping ahead
        taken = [r.id for r in first if r.partition == partition]
        assert taken == ids[: len(taken)]
