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


class InsertValues:
    """``INSERT ... VALUES (...), (...), ...``: many rows in one statement per chunk.

    ``executemany`` steps the statement once per row, and the sqlite3 module releases and
    re-takes the GIL around every step. On a busy server each re-take waits for the event
    loop's thread to yield (up to the switch interval), so a 15-row group commit spent most of
    its time queueing for the GIL, and every waiting request with it (bench/README.md). One
    statement per chunk takes the GIL a few times per commit instead of twice per row. On
    PostgreSQL it is also one round trip per chunk.
    """

    __slots__ = (
        "_chunk",
        "_columns",
        "_copy",
        "_copy_types",
        "_head",
        "_row_pg",
        "_row_sqlite",
        "_suffix",
        "_texts",
    )

    def __init__(
        self,
        table: str,
        columns: Sequence[str],
        *,
        suffix: str = "",
        chunk: int = 512,
        pg_copy_types: Sequence[str] | None = None,
    ) -> None:
        """``pg_copy_types`` (PostgreSQL type names, one per column): on PostgreSQL the rows
        go in by binary ``COPY`` instead (no ``suffix`` then): for the inbox's 2.4 KB rows a
        commit of 25 took 360 us instead of 570 us (bench/README.md)."""
        if pg_copy_types is not None and (suffix or len(pg_copy_types) != len(columns)):
            raise ValueError("binary COPY needs one type per column and no suffix")
        self._copy_types = list(pg_copy_types) if pg_copy_types is not None else None
        self._copy = f"COPY {table} ({', '.join(columns)}) FROM STDIN (FORMAT BINARY)"
        self._columns = tuple(columns)
        self._head = f"INSERT INTO {table} ({', '.join(columns)}) VALUES "
        self._suffix = f" {suffix}" if suffix else ""
        self._row_sqlite = "(" + ", ".join("?" for _ in columns) + ")"
        self._row_pg = "(" + ", ".join("%s" for _ in columns) + ")"
        # Bound by SQLite's 32,766 host parameters (PostgreSQL allows 65,535).
        self._chunk = max(1, min(chunk, 32_000 // max(1, len(columns))))
        self._texts: dict[tuple[bool, int], str] = {}

    def _text(self, pg: bool, n: int) -> str:
        text = self._texts.get((pg, n))
        if text is None:
            row = self._row_pg if pg else self._row_sqlite
            text = self._head + ", ".join([row] * n) + self._suffix
            self._texts[(pg, n)] = text  # at most 2 x chunk texts
        return text

    def _params(self, rows: Sequence[Mapping[str, Any]]) -> list[Any]:
        columns = self._columns
        return [row[c] for row in rows for c in columns]

    def one_statement(self, n: int, *, pg: bool) -> bool:
        """Whether ``n`` rows go in as a single statement (a binary COPY, or one chunk)."""
        return (pg and self._copy_types is not None) or n <= self._chunk

    def run(self, conn: Connection, rows: Sequence[Mapping[str, Any]]) -> None:
        """Inside the caller's transaction (SQLAlchemy connection)."""
        self.run_dbapi(conn.connection, rows, pg=conn.dialect.name == "postgresql")

    def run_dbapi(self, dbapi_conn: Any, rows: Sequence[Mapping[str, Any]], *, pg: bool) -> None:
        """Inside the transaction open on a DBAPI connection."""
        if not rows:
            return
        cur = dbapi_conn.cursor()
        try:
            if pg and self._copy_types is not None:
                columns = self._columns
                with cur.copy(self._copy) as copy:
                    copy.set_types(self._copy_types)
                    for row in rows:
                        copy.write_row([row[c] for c in columns])
                return
            for start in range(0, len(rows), self._chunk):
                part = rows[start : start + self._chunk]
                cur.execute(self._text(pg, len(part)), self._params(part))
        finally:
            cur.close()

    def run_atomic_sqlite(self, dbapi_conn: Any, rows: Sequence[Mapping[str, Any]]) -> None:
        """All the rows or none, on a sqlite3 connection in autocommit mode.

        Rows that fit one chunk go in as a single statement, which SQLite runs as its own
        transaction: one call into SQLite (and one GIL hand-off) for the whole commit, fsync
        included, instead of BEGIN, INSERT and COMMIT each taking and giving back the GIL.
        """
        if not rows:
            return
        if len(rows) <= self._chunk:
            dbapi_conn.execute(self._text(False, len(rows)), self._params(rows))
            return
        dbapi_conn.execute("BEGIN IMMEDIATE")
        try:
            for start in range(0, len(rows), self._chunk):
                part = rows[start : start + self._chunk]
                dbapi_conn.execute(self._text(False, len(part)), self._params(part))
            dbapi_conn.execute("COMMIT")
        except BaseException:
            dbapi_conn.rollback()
            raise


def copy_rows(
    conn: Connection, table: str, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
) -> None:
    """Bulk-append rows: ``COPY ... FROM STDIN`` on PostgreSQL (one round trip instead of
    one per row), multi-row ``INSERT`` statements on SQLite (see ``InsertValues``)."""
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
    insert = _INSERTS.get((table, tuple(columns)))
    if insert is None:
        insert = _INSERTS[(table, tuple(columns))] = InsertValues(table, columns)
    insert.run(conn, rows)


_INSERTS: dict[tuple[str, tuple[str, ...]], InsertValues] = {}


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

    @property
    def connection(self) -> Any:
        """The DBAPI connection (``Database.append`` writes on it)."""
        return self._conn

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
