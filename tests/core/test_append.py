"""``InsertValues`` and ``Database.append``: many rows per statement, all or none, both engines."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from opencdp.core.db import Database
from opencdp.core.sql import InsertValues


@pytest.fixture
def db(database_url: str) -> Iterator[Database]:
    database = Database(database_url)
    with database.write() as tx:
        tx.exec_driver_sql("DROP TABLE IF EXISTS scratch")
        tx.exec_driver_sql(
            "CREATE TABLE scratch (id INTEGER PRIMARY KEY, name TEXT NOT NULL, blob_ BYTEA)"
            if not database.is_sqlite
            else "CREATE TABLE scratch (id INTEGER PRIMARY KEY, name TEXT NOT NULL, blob_ BLOB)"
        )
    yield database
    database.dispose()


def _rows(start: int, n: int) -> list[dict[str, Any]]:
    return [
        {"id": i, "name": f"n{i}", "blob_": bytes([i % 256]) * 3} for i in range(start, start + n)
    ]


def _stored(db: Database) -> list[tuple[int, str, bytes]]:
    with db.read() as conn:
        rows = conn.execute(sa.text("SELECT id, name, blob_ FROM scratch ORDER BY id")).all()
    return [(r[0], r[1], bytes(r[2])) for r in rows]


INSERT = InsertValues("scratch", ("id", "name", "blob_"), suffix="ON CONFLICT DO NOTHING", chunk=4)


@pytest.mark.parametrize("n", [1, 4, 5, 13])
def test_append_stores_every_row_in_order_across_chunks(db: Database, n: int) -> None:
    assert db.append(INSERT, lambda: _rows(0, n)) == n
    assert _stored(db) == [(i, f"n{i}", bytes([i]) * 3) for i in range(n)]


def test_a_bad_row_in_a_later_chunk_leaves_nothing_written(db: Database) -> None:
    rows = _rows(0, 9)
    rows[7]["name"] = None  # NOT NULL: fails in the second chunk
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own IntegrityError
        db.append(INSERT, lambda: rows)
    assert _stored(db) == []
    assert db.append(INSERT, lambda: _rows(0, 2)) == 2  # the connection is usable afterwards


def test_a_bad_single_statement_leaves_nothing_written(db: Database) -> None:
    rows = _rows(0, 3)
    rows[2]["name"] = None
    with pytest.raises(Exception):  # noqa: B017
        db.append(INSERT, lambda: rows)
    assert _stored(db) == []


def test_conflicting_rows_are_skipped_by_the_suffix(db: Database) -> None:
    db.append(INSERT, lambda: _rows(0, 3))
    again = _rows(2, 3)  # id 2 exists
    db.append(INSERT, lambda: again)
    assert [r[0] for r in _stored(db)] == [0, 1, 2, 3, 4]


def test_collect_runs_once_the_writer_holds_the_database(db: Database) -> None:
    seen: list[bool] = []

    def collect() -> list[dict[str, Any]]:
        if db.is_sqlite:  # the writer queue is this process's lock: ours now
            seen.append(db._writer_owner == threading.get_ident())
        else:
            seen.append(True)
        return _rows(0, 1)

    db.append(INSERT, collect)
    assert seen == [True]


def test_in_transaction_run_joins_the_callers_transaction(db: Database) -> None:
    with pytest.raises(RuntimeError), db.write() as tx:
        INSERT.run(tx, _rows(0, 6))
        raise RuntimeError("roll back")
    assert _stored(db) == []
    with db.write() as tx:
        INSERT.run(tx, _rows(0, 6))
    assert len(_stored(db)) == 6


COPIED = InsertValues("scratch", ("id", "name", "blob_"), pg_copy_types=("int4", "text", "bytea"))


@pytest.mark.parametrize("n", [1, 13])
def test_binary_copy_stores_the_same_rows(db: Database, n: int) -> None:
    """PostgreSQL takes these rows by binary COPY; SQLite by INSERT. Same rows either way."""
    assert db.append(COPIED, lambda: _rows(0, n)) == n
    assert _stored(db) == [(i, f"n{i}", bytes([i]) * 3) for i in range(n)]


def test_a_bad_row_in_a_copy_leaves_nothing_written(db: Database) -> None:
    rows = _rows(0, 9)
    rows[7]["name"] = None
    with pytest.raises(Exception):  # noqa: B017 - each driver raises its own IntegrityError
        db.append(COPIED, lambda: rows)
    assert _stored(db) == []


def test_binary_copy_needs_a_type_per_column_and_no_suffix() -> None:
    with pytest.raises(ValueError):
        InsertValues("scratch", ("id", "name"), pg_copy_types=("int4",))
    with pytest.raises(ValueError):
        InsertValues("t", ("id",), suffix="ON CONFLICT DO NOTHING", pg_copy_types=("int4",))


def test_postgresql_append_recovers_after_its_connection_is_killed(db: Database) -> None:
    if db.is_sqlite:
        return  # the SQLite writer is a local file handle; nothing to kill
    assert db.append(COPIED, lambda: _rows(0, 2)) == 2
    with db.write() as tx:  # what a server restart does to the committer's connection
        tx.exec_driver_sql(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity"
            " WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(Exception):  # noqa: B017 - psycopg's OperationalError
        db.append(COPIED, lambda: _rows(2, 2))
    assert db.append(COPIED, lambda: _rows(2, 2)) == 2  # a new connection
    assert [r[0] for r in _stored(db)] == [0, 1, 2, 3]
