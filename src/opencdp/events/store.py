"""All event-store SQL."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opencdp.core.sql import copy_rows
from opencdp.events.tables import events

_COLUMNS = (
    "event_id",
    "workspace_id",
    "mpid",
    "batch_id",
    "event_type",
    "event_name",
    "timestamp_ms",
    "received_ms",
    "environment",
    "data",
)


def insert_events(conn: Connection, rows: Sequence[dict[str, Any]]) -> None:
    """Append events: the worker's hot path (COPY on PostgreSQL; see opencdp.core.sql)."""
    copy_rows(conn, "events", _COLUMNS, rows)


def events_for_profile(
    conn: Connection,
    *,
    workspace_id: int,
    mpid: int,
    start_ms: int | None = None,
    end_ms: int | None = None,
    limit: int = 1000,
) -> list[dict[str, Any]]:
    stmt = sa.select(events).where(events.c.workspace_id == workspace_id, events.c.mpid == mpid)
    if start_ms is not None:
        stmt = stmt.where(events.c.timestamp_ms >= start_ms)
    if end_ms is not None:
        stmt = stmt.where(events.c.timestamp_ms <= end_ms)
    stmt = stmt.order_by(events.c.timestamp_ms, events.c.id).limit(limit)
    return [dict(r._mapping) for r in conn.execute(stmt)]


def count_events(conn: Connection, *, workspace_id: int | None = None) -> int:
    stmt = sa.select(sa.func.count()).select_from(events)
    if workspace_id is not None:
        stmt = stmt.where(events.c.workspace_id == workspace_id)
    return int(conn.execute(stmt).scalar_one())


def copy_events_to_profile(
    conn: Connection,
    *,
    workspace_id: int,
    source_mpid: int,
    destination_mpid: int,
    start_ms: int,
    end_ms: int,
    new_event_id: Any,
) -> int:
    """Copy the source profile's events in [start_ms, end_ms] to the destination (alias)."""
    rows = events_for_profile(
        conn,
        workspace_id=workspace_id,
        mpid=source_mpid,
        start_ms=start_ms,
        end_ms=end_ms,
        limit=1_000_000,
    )
    copies = []
    for r in rows:
        r.pop("id")
        r["mpid"] = destination_mpid
        r["event_id"] = new_event_id()
        copies.append(r)
    insert_events(conn, copies)
    return len(copies)


def delete_for_profiles(conn: Connection, *, workspace_id: int, mpids: list[int]) -> None:
    if mpids:
        conn.execute(
            sa.delete(events).where(events.c.workspace_id == workspace_id, events.c.mpid.in_(mpids))
        )
