"""All profile SQL. Plain functions taking the connection first; they never commit.

Writes are conditional upserts: a register row is replaced only when the incoming write is newer
by ``(ts_ms, tiebreak)``, the same rule as ``model.newer``. The comparison happens inside the
database, atomically per row, so two workers updating one profile (possible on PostgreSQL when
batches for one MPID land in different partitions) cannot lose the newer value.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

import msgspec
import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from opencdp.core.sql import RawRead, Sql
from opencdp.profiles.model import ValueKind, ValueWrite
from opencdp.profiles.tables import user_profile_values, user_profiles

_heads = user_profiles.c
_values = user_profile_values.c


@dataclass(frozen=True, slots=True)
class Head:
    """A profile's row in ``user_profiles``."""

    workspace_id: int
    mpid: int
    created_ms: int
    last_stored_ms: int


def _insert(conn: Connection, table: sa.Table) -> Any:
    return postgresql.insert(table) if conn.dialect.name == "postgresql" else sqlite.insert(table)


# --- heads ------------------------------------------------------------------------------------


_HEAD = Sql(
    "SELECT created_ms, last_stored_ms FROM user_profiles WHERE workspace_id = :ws AND mpid = :mpid"
)


def head(conn: Connection, workspace_id: int, mpid: int) -> Head | None:
    """One profile's head (a hand-written statement: this is the Profile API's hot path)."""
    row = _HEAD.first(conn, {"ws": workspace_id, "mpid": mpid})
    return None if row is None else Head(workspace_id, mpid, row[0], row[1])


def upsert_heads(conn: Connection, heads: Iterable[Head]) -> None:
    """Insert heads, or widen existing ones: earliest creation, latest store."""
    rows = [
        {
            "workspace_id": h.workspace_id,
            "mpid": h.mpid,
            "created_ms": h.created_ms,
            "last_stored_ms": h.last_stored_ms,
        }
        for h in heads
    ]
    if not rows:
        return
    stmt = _insert(conn, user_profiles)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["workspace_id", "mpid"],
        set_={
            "created_ms": sa.case(
                (ex.created_ms < _heads.created_ms, ex.created_ms), else_=_heads.created_ms
            ),
            "last_stored_ms": sa.case(
                (ex.last_stored_ms > _heads.last_stored_ms, ex.last_stored_ms),
                else_=_heads.last_stored_ms,
            ),
        },
    )
    conn.execute(stmt, rows)


def delete_profiles(conn: Connection, workspace_id: int, mpids: Sequence[int]) -> int:
    """Remove profiles with all their values; returns heads deleted."""
    if not mpids:
        return 0
    ids = sorted(set(mpids))
    conn.execute(
        sa.delete(user_profile_values).where(
            _values.workspace_id == workspace_id, _values.mpid.in_(ids)
        )
    )
    res = conn.execute(
        sa.delete(user_profiles).where(_heads.workspace_id == workspace_id, _heads.mpid.in_(ids))
    )
    return int(res.rowcount or 0)


def count_profiles(conn: Connection, workspace_id: int | None = None) -> int:
    stmt = sa.select(sa.func.count()).select_from(user_profiles)
    if workspace_id is not None:
        stmt = stmt.where(_heads.workspace_id == workspace_id)
    return int(conn.execute(stmt).scalar_one())


# --- values -----------------------------------------------------------------------------------


def upsert_values(conn: Connection, writes: Iterable[tuple[int, int, ValueWrite]]) -> None:
    """Apply ``(workspace_id, mpid, write)`` triples; each row keeps the newest write.

    At most one write per register may be passed (PostgreSQL refuses to update one row twice in
    a statement); callers reduce with ``model.newer`` first.
    """
    rows = [
        {
            "workspace_id": ws,
            "mpid": mpid,
            "kind": w.kind.value,
            "name": str(w.name),
            "value": w.encoded,
            "ts_ms": w.ts_ms,
            "tiebreak": w.tiebreak,
        }
        for ws, mpid, w in writes
    ]
    if not rows:
        return
    stmt = _insert(conn, user_profile_values)
    ex = stmt.excluded
    stmt = stmt.on_conflict_do_update(
        index_elements=["workspace_id", "mpid", "kind", "name"],
        set_={"value": ex.value, "ts_ms": ex.ts_ms, "tiebreak": ex.tiebreak},
        where=sa.or_(
            ex.ts_ms > _values.ts_ms,
            sa.and_(ex.ts_ms == _values.ts_ms, ex.tiebreak > _values.tiebreak),
        ),
    )
    conn.execute(stmt, rows)


def registers(conn: Connection, workspace_id: int, mpid: int) -> list[ValueWrite]:
    """Every register of a profile, tombstones included."""
    rows = conn.execute(
        sa.select(_values.kind, _values.name, _values.value, _values.ts_ms, _values.tiebreak)
        .where(_values.workspace_id == workspace_id, _values.mpid == mpid)
        .order_by(_values.kind, _values.name)
    )
    return [ValueWrite(ValueKind(r[0]), r[1], r[2], r[3], r[4]) for r in rows]


_LIVE_VALUES = Sql(
    "SELECT kind, name, value FROM user_profile_values"
    " WHERE workspace_id = :ws AND mpid = :mpid AND value IS NOT NULL"
)


def live_values(conn: Connection, workspace_id: int, mpid: int) -> list[tuple[str, str, str]]:
    """``(kind, name, encoded)`` of a profile's registers that hold a value (no tombstones);
    ``kind`` is a ``ValueKind`` value. Hand-written: the Profile API's hot path."""
    return [tuple(r) for r in _LIVE_VALUES.rows(conn, {"ws": workspace_id, "mpid": mpid})]  # type: ignore[misc]


# --- the Profile API's lookup -----------------------------------------------------------------

# Everything a lookup shows, in one statement: the identity record and its identities (the
# identity slice's tables, read-only; their shape is identity/tables.py), the head and the live
# registers. One statement is one execute from Python and one round trip on PostgreSQL instead
# of four; each branch is an index lookup (bench/seed_graph.py prints the plans). Columns:
# (tag, text1, text2, text3, int1, int2), where tag says which table the row came from.
_LOOKUP = Sql(
    "SELECT 0, NULL, NULL, NULL, created_ms, last_seen_ms FROM identity_profiles"
    " WHERE mpid = :mpid AND workspace_id = :ws"
    " UNION ALL SELECT 1, identity_type, value, NULL, NULL, NULL FROM identity_values"
    " WHERE workspace_id = :ws AND mpid = :mpid"
    " UNION ALL SELECT 2, NULL, NULL, NULL, created_ms, last_stored_ms FROM user_profiles"
    " WHERE workspace_id = :ws AND mpid = :mpid"
    " UNION ALL SELECT 3, kind, name, value, NULL, NULL FROM user_profile_values"
    " WHERE workspace_id = :ws AND mpid = :mpid AND value IS NOT NULL"
)
_HOLDERS = Sql(
    "SELECT mpid FROM identity_values WHERE workspace_id = :ws AND identity_type = :t"
    " AND value = :v"
)


class ProfileRecord(msgspec.Struct, frozen=True, gc=False):
    """One profile as stored: its identity record (``created_ms``, ``last_seen_ms``, the
    ``(stored type name, value)`` identities), its head if batches wrote any data, and the
    ``(kind, name, encoded)`` registers holding a value. (A Struct: built per lookup, and
    several times cheaper to build than a frozen dataclass.)"""

    mpid: int
    created_ms: int
    last_seen_ms: int
    identities: list[tuple[str, str]]
    last_stored_ms: int | None
    values: list[tuple[str, str, str]]


def lookup(read: RawRead, workspace_id: int, mpid: int) -> ProfileRecord | None:
    """The profile ``mpid`` of the workspace, None when it has no identity record."""
    ident: tuple[int, int] | None = None
    last_stored: int | None = None
    identities: list[tuple[str, str]] = []
    values: list[tuple[str, str, str]] = []
    for tag, t1, t2, t3, n1, n2 in read.rows(_LOOKUP, {"ws": workspace_id, "mpid": mpid}):
        if tag == 3:
            values.append((t1, t2, t3))
        elif tag == 1:
            identities.append((t1, t2))
        elif tag == 0:
            ident = (int(n1), int(n2))
        else:
            last_stored = int(n2)
    if ident is None:
        return None
    return ProfileRecord(
        mpid=mpid,
        created_ms=ident[0],
        last_seen_ms=ident[1],
        identities=identities,
        last_stored_ms=last_stored,
        values=values if last_stored is not None else [],  # data without a head is not shown
    )


def holders(read: RawRead, workspace_id: int, identity_type: str, value: str) -> list[int]:
    """MPIDs holding ``value`` for ``identity_type`` (a stored identity type name)."""
    rows = read.rows(_HOLDERS, {"ws": workspace_id, "t": identity_type, "v": value})
    return [int(r[0]) for r in rows]
