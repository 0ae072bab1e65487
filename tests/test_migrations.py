"""The migration chain applies, reverses and re-applies on every store."""

from __future__ import annotations

from pathlib import Path

import sqlalchemy as sa
from alembic import command
from alembic.script import ScriptDirectory

from opencdp.core import migrate
from opencdp.core.db import Database, metadata


def test_one_head_and_a_full_round_trip(database_url: str, tmp_path: Path) -> None:
    cfg = migrate.alembic_config()
    assert len(ScriptDirectory.from_config(cfg).get_heads()) == 1
    db = Database(database_url)
    migrate.upgrade(db)  # idempotent on an already migrated store
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "base")
    tables = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
    assert tables == set()
    migrate.upgrade(db)
    tables = set(sa.inspect(db.engine).get_table_names()) - {"alembic_version"}
    import opencdp.app  # noqa: F401  (registers every slice's tables on the metadata)

    assert tables == set(metadata.tables)
    db.dispose()
