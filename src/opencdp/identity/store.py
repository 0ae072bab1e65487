"""All identity-graph SQL, plus the GraphView the pure strategies read through."""

from __future__ import annotations

import zlib
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opencdp.core.dialect import lock_for_update_skip_locked
from opencdp.core.sql import RawRead, Sql
from opencdp.identity.model import ProfileView
from opencdp.identity.tables import aliases, identity_profiles, identity_unique, identity_values
from opencdp.identity.types import IdentityType

_p = identity_profiles.c
_v = identity_values.c
_u = identity_unique.c

# Hot-path statements run on the raw cursor (opencdp.core.sql explains why).
_MPIDS_FOR = Sql(
    "SELECT mpid FROM identity_values WHERE workspace_id = :ws AND identity_type = :t"
    " AND value = :v"
)
_PROFILE_HEAD = Sql(
    "SELECT created_ms, last_seen_ms FROM identity_profiles WHERE mpid = :mpid"
    " AND workspace_id = :ws"
)
_PROFILE_IDS = Sql(
    "SELECT identity_type, value FROM identity_values WHERE workspace_id = :ws AND mpid = :mpid"
)
# A profile's record and identities in one statement: the IDSync read path loads one or two
# profiles per call, and each statement is a call into SQLite (and a round trip on PostgreSQL).
_PROFILE = Sql(
    "SELECT 0, NULL, NULL, created_ms, last_seen_ms FROM identity_profiles WHERE mpid = :mpid"
    " AND workspace_id = :ws"
    " UNION ALL SELECT 1, identity_type, value, NULL, NULL FROM identity_values"
    " WHERE workspace_id = :ws AND mpid = :mpid"
)
_TYPES = {t.value: t for t in IdentityType}
_MPID_TAKEN = Sql("SELECT mpid FROM identity_profiles WHERE mpid = :mpid")
_INSERT_PROFILE = Sql(
    "INSERT INTO identity_profiles (mpid, workspace_id, created_ms, last_seen_ms,"
    " linked_source_mpid) VALUES (:mpid, :workspace_id, :created_ms, :last_seen_ms,"
    " :linked_source_mpid)"
)
_INSERT_VALUE = Sql(
    "INSERT INTO identity_values (workspace_id, identity_type, value, mpid)"
    " VALUES (:workspace_id, :identity_type, :value, :mpid)"
)
_INSERT_UNIQUE = Sql(
    "INSERT INTO identity_unique (workspace_id, identity_type, value, mpid)"
    " VALUES (:workspace_id, :identity_type, :value, :mpid)"
)
_TOUCH = Sql(
    "UPDATE identity_profiles SET last_seen_ms = CASE WHEN last_seen_ms < :now THEN :now"
    " ELSE last_seen_ms END WHERE workspace_id = :ws AND mpid = :mpid"
)


Reader = Connection | RawRead
"""Where graph reads run: a SQLAlchemy transaction (writes, the worker) or a raw read
transaction (``Database.read_raw``: IDSync's optimistic reads)."""


def _rows(conn: Reader, stmt: Sql, params: Mapping[str, Any]) -> list[Any]:
    return conn.rows(stmt, params) if isinstance(conn, RawRead) else stmt.rows(conn, params)


def _first(conn: Reader, stmt: Sql, params: Mapping[str, Any]) -> Any:
    return conn.first(stmt, params) if isinstance(conn, RawRead) else stmt.first(conn, params)


class StoreGraph:
    """A GraphView over one transaction (one consistent snapshot).

    Profiles are memoized for the life of the object, which is one decision.
    """

    def __init__(self, conn: Reader, workspace_id: int) -> None:
        self._conn = conn
        self._ws = workspace_id
        self._profiles: dict[int, ProfileView | None] = {}

    def profiles_for(self, identity_type: IdentityType, value: str) -> Sequence[ProfileView]:
        mpids = mpids_for(self._conn, self._ws, identity_type, value)
        out = []
        for mpid in mpids:
            p = self.profile(mpid)
            if p is not None:
                out.append(p)
        return out

    def profile(self, mpid: int) -> ProfileView | None:
        if mpid not in self._profiles:
            self._profiles[mpid] = load_profile(self._conn, self._ws, mpid)
        return self._profiles[mpid]


def mpids_for(conn: Reader, workspace_id: int, identity_type: str, value: str) -> list[int]:
    rows = _rows(conn, _MPIDS_FOR, {"ws": workspace_id, "t": identity_type, "v": value})
    return [int(r[0]) for r in rows]


def load_profile(conn: Reader, workspace_id: int, mpid: int) -> ProfileView | None:
    head: tuple[int, int] | None = None
    ids: dict[IdentityType, set[str]] = {}
    for tag, t, value, created_ms, last_seen_ms in _rows(
        conn, _PROFILE, {"ws": workspace_id, "mpid": mpid}
    ):
        if tag:
            kind = _TYPES.get(t) or IdentityType(t)
            ids.setdefault(kind, set()).add(value)
        else:
            head = (int(created_ms), int(last_seen_ms))
    if head is None:
        return None
    return ProfileView(
        mpid=mpid,
        identities={t: frozenset(vs) for t, vs in ids.items()},
        created_ms=head[0],
        last_seen_ms=head[1],
    )


def holds_all(
    conn: Connection, workspace_id: int, mpid: int, identities: Iterable[tuple[str, str]]
) -> bool:
    """Whether the profile holds every ``(type, value)`` already (one read: the common case of
    a batch repeating what its profile holds)."""
    held = {(t, v) for t, v in _PROFILE_IDS.rows(conn, {"ws": workspace_id, "mpid": mpid})}
    return all(pair in held for pair in identities)


def insert_profile(
    conn: Connection,
    *,
    workspace_id: int,
    mpid: int,
    now_ms: int,
    linked_source_mpid: int | None = None,
) -> None:
    _INSERT_PROFILE.run(
        conn,
        {
            "mpid": mpid,
            "workspace_id": workspace_id,
            "created_ms": now_ms,
            "last_seen_ms": now_ms,
            "linked_source_mpid": linked_source_mpid,
        },
    )


def mpid_taken(conn: Connection, mpid: int) -> bool:
    return _MPID_TAKEN.first(conn, {"mpid": mpid}) is not None


def add_identity(
    conn: Connection,
    *,
    workspace_id: int,
    mpid: int,
    identity_type: str,
    value: str,
    unique: bool,
) -> None:
    """Attach a value; for a unique type also claim it (IntegrityError if someone holds it)."""
    row = {
        "workspace_id": workspace_id,
        "identity_type": identity_type,
        "value": value,
        "mpid": mpid,
    }
    if unique:
        _INSERT_UNIQUE.run(conn, row)
    _INSERT_VALUE.run(conn, row)


def remove_identity(
    conn: Connection, *, workspace_id: int, mpid: int, identity_type: str, value: str
) -> None:
    for table, cols in ((identity_values, _v), (identity_unique, _u)):
        conn.execute(
            sa.delete(table).where(
                cols.workspace_id == workspace_id,
                cols.identity_type == identity_type,
                cols.value == value,
                cols.mpid == mpid,
            )
        )


def touch(conn: Connection, workspace_id: int, mpids: Iterable[int], now_ms: int) -> int:
    """Record activity (``last_seen_ms`` never moves back); returns how many of the profiles
    exist. Every row matched is counted, so a shortfall means a profile was deleted by a
    transaction that committed meanwhile: the expiry sweep (PostgreSQL; SQLite writers queue).
    """
    return sum(_TOUCH.run(conn, {"now": now_ms, "ws": workspace_id, "mpid": m}) for m in mpids)


def last_seen(conn: Connection, workspace_id: int, mpid: int) -> int | None:
    """A profile's last activity, or None when the workspace has no such profile."""
    head = _PROFILE_HEAD.first(conn, {"mpid": mpid, "ws": workspace_id})
    return None if head is None else int(head[1])


def set_created(conn: Connection, workspace_id: int, mpid: int, created_ms: int) -> None:
    conn.execute(
        sa.update(identity_profiles)
        .where(_p.workspace_id == workspace_id, _p.mpid == mpid)
        .values(created_ms=created_ms)
    )


def lock_identities(conn: Connection, workspace_id: int, keys: Iterable[tuple[str, str]]) -> None:
    """Serialize concurrent resolutions touching the same identity values (PostgreSQL).

    Transaction-scoped advisory locks, taken in sorted order so two requests cannot deadlock.
    SQLite needs none: its writers are already serialized.
    """
    if conn.dialect.name != "postgresql":
        return
    for key in sorted({zlib.crc32(f"{workspace_id}\x00{t}\x00{v}".encode()) for t, v in keys}):
        conn.execute(sa.text("SELECT pg_advisory_xact_lock(:k)"), {"k": key})


def insert_alias(
    conn: Connection,
    *,
    workspace_id: int,
    source_mpid: int,
    destination_mpid: int,
    start_ms: int,
    end_ms: int,
    now_ms: int,
    applied: bool,
) -> None:
    conn.execute(
        sa.insert(aliases).values(
            workspace_id=workspace_id,
            source_mpid=source_mpid,
            destination_mpid=destination_mpid,
            start_ms=start_ms,
            end_ms=end_ms,
            created_ms=now_ms,
            applied=applied,
        )
    )


def alias_allowed(
    conn: Connection,
    workspace_id: int,
    source_mpid: int,
    destination_mpid: int,
    start_ms: int,
    end_ms: int,
) -> bool:
    """The three documented "previous alias" rules, over applied aliases."""
    a = aliases.c
    applied = sa.and_(a.workspace_id == workspace_id, a.applied == sa.true())
    overlapping_source = sa.and_(
        a.source_mpid == source_mpid, a.start_ms <= end_ms, a.end_ms >= start_ms
    )
    stmt = sa.select(a.id).where(
        applied,
        sa.or_(
            overlapping_source,
            a.destination_mpid == source_mpid,
            a.source_mpid == destination_mpid,
        ),
    )
    return conn.execute(stmt.limit(1)).first() is None


def count_holders(conn: Connection, workspace_id: int, identity_type: str, value: str) -> int:
    return len(mpids_for(conn, workspace_id, identity_type, value))


def expired_profiles(
    conn: Connection, workspace_id: int, before_ms: int, limit: int = 1000
) -> list[int]:
    """Up to ``limit`` profiles last seen before ``before_ms``, oldest first, row-locked on
    PostgreSQL. Rows another transaction holds are skipped: a worker touching a profile is
    reactivating it, and the next sweep looks again."""
    stmt = (
        sa.select(_p.mpid)
        .where(_p.workspace_id == workspace_id, _p.last_seen_ms < before_ms)
        .order_by(_p.last_seen_ms, _p.mpid)
        .limit(limit)
    )
    return [int(r[0]) for r in conn.execute(lock_for_update_skip_locked(conn, stmt))]


def delete_profiles(conn: Connection, workspace_id: int, mpids: Sequence[int]) -> None:
    """Remove profiles with their identity values and unique claims.

    Claims are deleted by their key, found through the profiles' values (every claim has a
    value row): ``identity_unique`` has no index on ``mpid``, and the sweep must not scan it.
    """
    if not mpids:
        return
    ids = sorted(set(mpids))
    held = conn.execute(
        sa.select(_v.identity_type, _v.value, _v.mpid).where(
            _v.workspace_id == workspace_id, _v.mpid.in_(ids)
        )
    ).all()
    if held:
        conn.execute(
            sa.delete(identity_unique).where(
                _u.workspace_id == workspace_id,
                _u.identity_type == sa.bindparam("t"),
                _u.value == sa.bindparam("v"),
                _u.mpid == sa.bindparam("m"),
            ),
            [{"t": t, "v": v, "m": m} for t, v, m in held],
        )
    conn.execute(
        sa.delete(identity_values).where(_v.workspace_id == workspace_id, _v.mpid.in_(ids))
    )
    conn.execute(
        sa.delete(identity_profiles).where(_p.workspace_id == workspace_id, _p.mpid.in_(ids))
    )
