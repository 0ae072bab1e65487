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
from opencdp.ingestion.tables import applied_requests, inbox, partition_leases


@dataclass(frozen=True, slots=True)
class InboxRow:
    id: int
    workspace_id: int
    input_id: int
    partition: int
    kind: str
    received_ms: int
    payload: bytes
    source_request_id: str | None = None

    @property
    def request_key(self) -> tuple[int, str] | None:
        """What makes a client's retry the same request: its input and source_request_id."""
        if self.source_request_id is None:
            return None
        return (self.input_id, self.source_request_id)


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
    pg_copy_types=("int4", "int4", "int4", "text", "int8", "text", "bytea"),
)


def append_batches(db: Database, collect: Callable[[], Sequence[dict[str, Any]]]) -> int:
    """The group committer's write: the rows ``collect()`` returns once the database is ours,
    durably, as few statements as possible (``Database.append``)."""
    return db.append(_INSERT_BATCH, collect)


_ROW_COLUMNS = (
    inbox.c.id,
    inbox.c.workspace_id,
    inbox.c.input_id,
    inbox.c.partition,
    inbox.c.kind,
    inbox.c.received_ms,
    inbox.c.payload,
    inbox.c.source_request_id,
)


def fetch_pending(conn: Connection, partition: int, limit: int) -> list[InboxRow]:
    """A partition's next batches in inbox order."""
    return fetch_pending_in(conn, [partition], limit)


def fetch_pending_in(conn: Connection, partitions: Sequence[int], limit: int) -> list[InboxRow]:
    """The next ``limit`` batches of these partitions; each partition's rows in inbox order.

    SQLite: one pass over the pending index in id order (it is ``(id, partition)`` there);
    PostgreSQL: one index range per partition (``(partition, id)``), which is what its worker
    processes, each holding some partitions, need.
    """
    c = inbox.c
    if not partitions or limit <= 0:
        return []
    if conn.dialect.name == "sqlite":
        stmt = (
            sa.select(*_ROW_COLUMNS)
            .where(c.processed == sa.false(), c.partition.in_(list(partitions)))
            .order_by(c.id)
            .limit(limit)
        )
        return [InboxRow(*r) for r in conn.execute(stmt)]
    out: list[InboxRow] = []
    for partition in partitions:
        if len(out) >= limit:
            break
        stmt = (
            sa.select(*_ROW_COLUMNS)
            .where(c.partition == partition, c.processed == sa.false())
            .order_by(c.id)
            .limit(limit - len(out))
        )
        out.extend(InboxRow(*r) for r in conn.execute(stmt))
    return out


def applied_owners(conn: Connection, keys: Sequence[tuple[int, str]]) -> dict[tuple[int, str], int]:
    """For request keys (input, source_request_id): the inbox row applied for each, if any."""
    by_input: dict[int, list[str]] = {}
    for input_id, request_id in keys:
        by_input.setdefault(input_id, []).append(request_id)
    c = applied_requests.c
    out: dict[tuple[int, str], int] = {}
    for input_id, ids in by_input.items():
        for start in range(0, len(ids), 500):
            stmt = sa.select(c.source_request_id, c.inbox_id).where(
                c.input_id == input_id, c.source_request_id.in_(ids[start : start + 500])
            )
            for request_id, inbox_id in conn.execute(stmt):
                out[(input_id, request_id)] = int(inbox_id)
    return out


def record_applied(conn: Connection, entries: Sequence[tuple[tuple[int, str], int]]) -> None:
    """Remember which inbox row was applied for each request key.

    A plain insert: if another worker applied the same key meanwhile (possible only when a
    client reused an id for a different user, so the copies sit in two partitions), the
    primary key fails this transaction and the retry skips the copy.
    """
    if entries:
        conn.execute(
            sa.insert(applied_requests),
            [
                {"input_id": key[0], "source_request_id": key[1], "inbox_id": inbox_id}
                for key, inbox_id in entries
            ],
        )


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


def count_applied_requests(conn: Connection) -> int:
    stmt = sa.select(sa.func.count()).select_from(applied_requests)
    return int(conn.execute(stmt).scalar_one())


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
