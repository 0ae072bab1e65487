"""Hand-written statements for hot paths, run on the transaction's own DBAPI cursor.

SQLAlchemy Core costs tens of microseconds per execution before the database sees anything;
on the worker's and IDSync's hot paths that overhead was most of the time (profiled in
bench/README.md). A ``Sql`` is written once with ``:name`` placeholders, translated per dialect
once, and executed on the connection the caller's transaction already holds, so it joins that
transaction exactly like a Core statement would. Statements stay in the slices' store modules.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from typing import Any

from sqlalchemy.engine import Connection

_NAMED = re.compile(r"(?<!:):([A-Za-z_][A-Za-z0-9_]*)")


class Sql:
    __slots__ = ("pg", "sqlite", "text")

    def __init__(self, text: str) -> None:
        self.text = text
        self.sqlite = text  # sqlite3 takes :name natively
        self.pg = _NAMED.sub(r"%(\1)s", text.replace("%", "%%"))

    def _cursor(self, conn: Connection) -> tuple[Any, str]:
        sql = self.pg if conn.dialect.name == "postgresql" else self.sqlite
        return conn.connection.cursor(), sql

    def rows(self, conn: Connection, params: Mapping[str, Any] | None = None) -> list[Any]:
        cur, sql = self._cursor(conn)
        try:
            cur.execute(sql, params or {})
            return list(cur.fetchall())
        finally:
            cur.close()

    def first(self, conn: Connection, params: Mapping[str, Any] | None = None) -> Any:
        cur, sql = self._cursor(conn)
        try:
            cur.execute(sql, params or {})
            return cur.fetchone()
        finally:
            cur.close()

    def run(self, conn: Connection, params: Mapping[str, Any] | None = None) -> int:
        cur, sql = self._cursor(conn)
        try:
            cur.execute(sql, params or {})
            return int(cur.rowcount)
        finally:
            cur.close()

    def run_many(self, conn: Connection, params: Sequence[Mapping[str, Any]]) -> None:
        if not params:
            return
        cur, sql = self._cursor(conn)
        try:
            cur.executemany(sql, params)
        finally:
            cur.close()


class savepoint:
    """A SAVEPOINT on the raw connection: rolled back to on error, released on success.

    Cheaper than ``Connection.begin_nested()`` on the hot path, and equally part of the
    caller's transaction.
    """

    __slots__ = ("_conn",)

    def __init__(self, conn: Connection) -> None:
        self._conn = conn

    def __enter__(self) -> None:
        cur = self._conn.connection.cursor()
        cur.execute("SAVEPOINT opencdp_sp")
        cur.close()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        cur = self._conn.connection.cursor()
        try:
            if exc_type is not None:
                cur.execute("ROLLBACK TO SAVEPOINT opencdp_sp")
            cur.execute("RELEASE SAVEPOINT opencdp_sp")
        finally:
            cur.close()


def copy_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Bulk-append rows: ``COPY ... FROM STDIN`` on PostgreSQL (one round trip instead of
    one per row), a plain executemany on SQLite (in-process, already cheap)."""
    if not rows:
        return
    if conn.dialect.name == "postgresql":
        cur = conn.connection.cursor()
        try:
            with cur.copy(f"COPY {table} ({', '.join(columns)}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row([row[c] for c in columns])
        finally:
            cur.close()
        return
    placeholders = ", ".join(f":{c}" for c in columns)
    Sql(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})").run_many(conn, rows)


class RawRead:
    """A read transaction on a DBAPI connection of its own (``Database.read_raw``).

    ``Database.read()`` costs about 100 us on SQLite before the first statement (pool
    checkout, SQLAlchemy's begin/commit bookkeeping and events, reset on return), ten times
    the few index lookups an IDSync read makes. This is the same transaction on a connection
    kept per thread: ``BEGIN``, the ``Sql`` statements on one cursor, ``COMMIT``.
    """

    __slots__ = ("_conn", "_cur", "_pg", "lost")

    def __init__(self, dbapi_conn: Any, *, pg: bool) -> None:
        self._conn = dbapi_conn
        self._pg = pg
        self._cur = dbapi_conn.cursor()
        self.lost = False
        """Set when the connection failed under us (server gone): it is then thrown away."""

    def rows(self, stmt: Sql, params: Mapping[str, Any]) -> list[Any]:
        cur = self._cur
        cur.execute(stmt.pg if self._pg else stmt.sqlite, params)
        return list(cur.fetchall())

    def first(self, stmt: Sql, params: Mapping[str, Any]) -> Any:
        cur = self._cur
        cur.execute(stmt.pg if self._pg else stmt.sqlite, params)
        return cur.fetchone()

    def begin(self) -> None:
        if not self._pg:  # sqlite3 runs in autocommit mode (core/db.py); psycopg begins itself
            self._cur.execute("BEGIN")

    def commit(self) -> None:
        if self._pg:
            self._conn.commit()
        else:
            self._cur.execute("COMMIT")

    def rollback(self) -> None:
        """End the transaction after an error; a connection that cannot is marked lost."""
        try:
            self._conn.rollback()
        except Exception:
            self.lost = True
        if getattr(self._conn, "closed", False) or getattr(self._conn, "broken", False):
            self.lost = True

    def close(self) -> None:
        try:
            self._cur.close()
            self._conn.close()
        except Exception:  # already gone: nothing left to release
            pass
