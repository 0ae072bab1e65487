"""All inbox and lease SQL."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opencdp.core.db import Database
from opencdp.core.dialect import lock_for_update_skip_locked
from opencdp.core.sql import InsertValues
from opencdp.ingestion.tables import inbox, partition_leases


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    workspace_id: int
    input_id: int
    partition: int
    kind: str
    received_ms: int
    payload: bytes


_INSERT_BATCH = InsertValues(
    "inbox",
    (
        "workspace_id",
        "input_id",
        "partition",
        "kind",
        "received_ms",
        "source_request_id",
        "payload",
    ),
    suffix="ON CONFLICT DO NOTHING",
)


def append_batches(db: Database, collect: Callable[[], Sequence[dict[str, Any]]]) -> int:
    """The group committer's write: the rows ``collect()`` returns once the database is ours,
    durably, as few statements as possible (``Database.append``)."""
    return db.append(_INSERT_BATCH, collect)


def fetch_pending(conn: Connection, partition: int, limit: int) -> list[InboxRow]:
    c = inbox.c
    stmt = (
        sa.select(c.id, c.workspace_id, c.input_id, c.partition, c.kind, c.received_ms, c.payload)
        .where(c.partition == partition, c.processed == sa.false())
        .order_by(c.id)
        .limit(limit)
    )
    return [InboxRow(*r) for r in conn.execute(stmt)]


def mark_processed(conn: Connection, ids: Sequence[int], now_ms: int) -> None:
    if ids:
        conn.execute(
            sa.update(inbox)
            .where(inbox.c.id.in_(list(ids)))
            .values(processed=True, processed_ms=now_ms)
        )


def partitions_with_work(conn: Connection) -> list[int]:
    stmt = sa.select(inbox.c.partition).where(inbox.c.processed == sa.false()).distinct()
    return sorted(int(r[0]) for r in conn.execute(stmt))


def pending_count(conn: Connection) -> int:
    stmt = sa.select(sa.func.count()).select_from(inbox).where(inbox.c.processed == sa.false())
    return int(conn.execute(stmt).scalar_one())


def oldest_pending_received_ms(conn: Connection) -> int | None:
    stmt = sa.select(sa.func.min(inbox.c.received_ms)).where(inbox.c.processed == sa.false())
    value = conn.execute(stmt).scalar_one()
    return None if value is None else int(value)


def count_batches(conn: Connection, *, processed: bool | None = None) -> int:
    stmt = sa.select(sa.func.count()).select_from(inbox)
    if processed is not None:
        stmt = stmt.where(inbox.c.processed == processed)
    return int(conn.execute(stmt).scalar_one())


def source_request_ids(conn: Connection) -> list[str]:
    stmt = sa.select(inbox.c.source_request_id).where(inbox.c.source_request_id.is_not(None))
    return [str(r[0]) for r in conn.execute(stmt)]


def ensure_partitions(conn: Connection, count: int) -> None:
    """Create the lease rows once; the partition count is fixed for the life of a store."""
    existing = conn.execute(sa.select(sa.func.count()).select_from(partition_leases)).scalar_one()
    if existing == 0:
        conn.execute(
            sa.insert(partition_leases),
            [{"partition": p, "owner": None, "expires_ms": 0} for p in range(count)],
        )


def partition_count(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(partition_leases)).scalar_one())


def claim_lease(conn: Connection, partition: int, owner: str, now_ms: int, ttl_ms: int) -> bool:
    """Take or renew a partition lease inside the caller's transaction.

    On PostgreSQL the lease row is locked first with SKIP LOCKED, so a worker never waits on a
    partition another worker is processing; the conditional UPDATE then fences out a worker
    whose lease has passed to someone else. A crashed worker's transaction rolls back, and its
    lease simply runs out.
    """
    c = partition_leases.c
    locked = conn.execute(
        lock_for_update_skip_locked(conn, sa.select(c.partition).where(c.partition == partition))
    ).first()
    if locked is None:
        return False
    res = conn.execute(
        sa.update(partition_leases)
        .where(
            c.partition == partition,
            sa.or_(c.owner == owner, c.owner.is_(None), c.expires_ms < now_ms),
        )
        .values(owner=owner, expires_ms=now_ms + ttl_ms)
    )
    return res.rowcount == 1


def release_leases(conn: Connection, owner: str) -> None:
    conn.execute(
        sa.update(partition_leases)
        .where(partition_leases.c.owner == owner)
        .values(owner=None, expires_ms=0)
    )


def lease_owners(conn: Connection) -> dict[int, str | None]:
    c = partition_leases.c
    return {int(r[0]): r[1] for r in conn.execute(sa.select(c.partition, c.owner))}
