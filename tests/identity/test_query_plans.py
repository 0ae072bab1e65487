"""SQLite plans of the IDSync and Profile API hot statements: every step is a keyed search.

The app never runs ANALYZE, so SQLite plans without statistics; a join it orders badly walks a
whole workspace per call. Tiny test stores would never show that in timings, so the plans are
checked instead (a join of identity_values with itself, tried for IDSync, did exactly that).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from opencdp.core import migrate
from opencdp.core.db import Database
from opencdp.core.sql import Sql
from opencdp.identity import store as identity_store
from opencdp.profiles import store as profile_store

HOT: dict[str, tuple[Sql, dict[str, object]]] = {
    "mpids_for": (identity_store._MPIDS_FOR, {"ws": 1, "t": "email", "v": "a@x"}),
    "profile": (identity_store._PROFILE, {"ws": 1, "mpid": 5}),
    "profile_api_lookup": (profile_store._LOOKUP, {"ws": 1, "mpid": 5}),
}


@pytest.mark.parametrize("name", sorted(HOT))
def test_hot_statements_search_by_key(name: str, tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'opencdp.db'}")
    migrate.upgrade(db)
    stmt, params = HOT[name]
    with db.read() as conn:
        plan = [
            str(r[-1])
            for r in conn.connection.driver_connection.execute(  # type: ignore[union-attr]
                "EXPLAIN QUERY PLAN " + stmt.sqlite, params
            )
        ]
    db.dispose()
    steps = [p for p in plan if p.startswith(("SEARCH", "SCAN"))]
    assert steps, plan
    for step in steps:
        assert step.startswith("SEARCH"), plan
        assert not step.endswith("(workspace_id=?)"), plan  # a whole workspace is no key
