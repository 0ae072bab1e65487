"""The few statements whose spelling differs between SQLite and PostgreSQL."""

from __future__ import annotations

from typing import Any

from sqlalchemy.engine import Connection


def lock_for_update_skip_locked(conn: Connection, select: Any) -> Any:
    """Row lock that skips rows another worker holds (PostgreSQL); SQLite has one writer."""
    if conn.dialect.name == "postgresql":
        return select.with_for_update(skip_locked=True)
    return select
