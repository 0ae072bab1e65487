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


def test_0004_clusters_the_graph_and_profile_tables_on_sqlite_keeping_rows(tmp_path: Path) -> None:
    db = Database(f"sqlite:///{tmp_path / 'opencdp.db'}")
    migrate.upgrade(db, "0003")
    rows = {
        "identity_profiles": "(7, 1, 10, 20, NULL), (-3, 1, 11, 21, 7)",
        "identity_values": "(1, 'email', 'a@x', 7), (1, 'customer_id', 'c1', -3)",
        "identity_unique": "(1, 'customer_id', 'c1', -3)",
        "user_profiles": "(1, 7, 10, 30)",
        "user_profile_values": "(1, 7, 'attr', 'plan', '\"pro\"', 5, 1), (1, 7, 'attr', 'x', NULL, 6, 2)",
    }
    with db.engine.begin() as conn:
        for table, values in rows.items():
            conn.exec_driver_sql(f"INSERT INTO {table} VALUES {values}")
    with db.engine.connect() as conn:
        before = {t: sorted(conn.exec_driver_sql(f"SELECT * FROM {t}").all()) for t in rows}
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        after = {t: sorted(conn.exec_driver_sql(f"SELECT * FROM {t}").all()) for t in rows}
        ddl = dict(
            conn.exec_driver_sql("SELECT name, sql FROM sqlite_master WHERE type = 'table'").all()
        )
        indexes = {
            r[0]
            for r in conn.exec_driver_sql("SELECT name FROM sqlite_master WHERE type = 'index'")
        }
    assert after == before
    for table in rows:
        assert ddl[table].rstrip().endswith("WITHOUT ROWID"), table
    assert {"ix_identity_profiles_workspace_last_seen", "ix_identity_values_mpid"} <= indexes
    db.dispose()


def test_0005_moves_request_ids_to_applied_requests(database_url: str) -> None:
    db = Database(database_url)
    cfg = migrate.alembic_config()
    migrate.upgrade(db)  # (a PostgreSQL test database starts at the head)
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO inbox (id, workspace_id, input_id, partition, kind, received_ms,"
            " source_request_id, payload, processed) VALUES"
            " (1, 1, 7, 0, 'events', 1, 'a', 'x', true), (2, 1, 7, 1, 'events', 1, 'b', 'x', false),"
            " (3, 1, 7, 1, 'events', 1, NULL, 'x', false), (4, 1, 8, 2, 'events', 1, 'a', 'x', false)"
        )
    migrate.upgrade(db)
    with db.engine.connect() as conn:
        applied = sorted(
            conn.exec_driver_sql(
                "SELECT input_id, source_request_id, inbox_id FROM applied_requests"
            ).all()
        )
        indexes = {ix["name"] for ix in sa.inspect(conn).get_indexes("inbox")}
    assert applied == [(7, "a", 1), (7, "b", 2), (8, "a", 4)]
    assert "uq_inbox_input_source_request" not in indexes
    expected = "ix_inbox_pending_seq" if db.is_sqlite else "ix_inbox_pending"
    assert expected in indexes
    # and back: a copy stored twice while the worker de-duplicated is dropped, the first kept
    with db.engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO inbox (id, workspace_id, input_id, partition, kind, received_ms,"
            " source_request_id, payload, processed) VALUES (5, 1, 7, 0, 'events', 1, 'a', 'x', true)"
        )
    with db.engine.begin() as conn:
        cfg.attributes["connection"] = conn
        command.downgrade(cfg, "0004")
    with db.engine.connect() as conn:
        ids = sorted(conn.exec_driver_sql("SELECT id FROM inbox").scalars().all())
    assert ids == [1, 2, 3, 4]
    migrate.upgrade(db)
    db.dispose()


def test_0006_keeps_inbox_payloads_inline_and_uncompressed_on_postgresql(
    database_url: str,
) -> None:
    db = Database(database_url)
    migrate.upgrade(db)
    if db.is_sqlite:
        db.dispose()
        return  # SQLite stores blobs as they are; nothing to check
    with db.engine.connect() as conn:
        options = conn.exec_driver_sql(
            "SELECT reloptions FROM pg_class WHERE relname = 'inbox'"
        ).scalar_one()
        storage = conn.exec_driver_sql(
            "SELECT attstorage FROM pg_attribute WHERE attrelid = 'inbox'::regclass"
            " AND attname = 'payload'"
        ).scalar_one()
    assert "toast_tuple_target=8160" in options
    assert storage == "e"  # external: out of line when large, never compressed
    db.dispose()
