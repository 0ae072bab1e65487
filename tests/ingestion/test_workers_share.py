"""Several workers on one store share the partitions and apply every batch exactly once."""

from __future__ import annotations

import threading

import msgspec
import sqlalchemy as sa

from opencdp.app import Runtime
from opencdp.ingestion.service import Route
from opencdp.worker.runner import Worker
from tests.support.batches import batch


def test_two_workers_apply_each_batch_once(runtime: Runtime) -> None:
    creds, _ = runtime.tenancy.bootstrap(data_dir=runtime.settings.data_dir)
    p = runtime.tenancy.authenticate_basic(creds.api_key, creds.api_secret)
    expected = 0
    for i in range(40):
        body = [batch(customer_id=f"user-{i}-{j % 5}", events=1 + j % 3) for j in range(25)]
        expected += sum(len(b["events"]) for b in body)
        runtime.ingestion.accept_sync(p, msgspec.json.encode(body), Route.BULK)
    workers = [
        Worker(processing=runtime.processing, owner=f"w{i}", partitions_per_txn=2) for i in range(3)
    ]
    threads = [threading.Thread(target=w.drain, kwargs={"timeout_s": 120}) for w in workers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    with runtime.db.read() as conn:
        events = conn.execute(sa.text("SELECT count(*) FROM events")).scalar_one()
        per_batch = conn.execute(
            sa.text(
                "SELECT i.id, count(e.id) FROM inbox i LEFT JOIN events e ON e.batch_id = i.id "
                "GROUP BY i.id HAVING count(e.id) = 0"
            )
        ).all()
        owners = (
            conn.execute(
                sa.text("SELECT DISTINCT owner FROM partition_leases WHERE owner IS NOT NULL")
            )
            .scalars()
            .all()
        )
    assert events == expected
    assert per_batch == []
    if not runtime.db.is_sqlite:  # SQLite has one writer: the first worker keeps its leases
        assert len(owners) >= 2, owners  # the work really was shared
