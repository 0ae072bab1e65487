"""Database access: one engine per process, SQLite or PostgreSQL, same SQLAlchemy Core code.

Why the SQLite details matter: SQLite allows one writer at a time. Writers open their
transaction with ``BEGIN IMMEDIATE`` so two writers queue on the busy timeout instead of both
reading and then failing to upgrade their lock. Readers use plain deferred transactions and, in
WAL mode, never block the writer. ``synchronous=FULL`` makes every commit durable on disk, which
is what a 202 promises; group commit (``opencdp.ingestion.group_commit``) keeps the fsync count
low.
"""

from __future__ import annotations

import asyncio
import contextlib
import ctypes
import errno
import fcntl
import functools
import os
import threading
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import sqlalchemy as sa
from sqlalchemy import event
from sqlalchemy.engine import Connection, Engine

from opencdp.core.handoff import Handoff
from opencdp.core.sql import InsertValues, RawRead

T = TypeVar("T")

NAMING = {
    "ix": "ix_%(table_name)s_%(column_0_N_name)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "pk": "pk_%(table_name)s",
}

metadata = sa.MetaData(naming_convention=NAMING)
"""Every slice's ``tables.py`` registers its tables here; Alembic migrations create them."""


DEFAULT_SQLITE_MMAP_BYTES = 512 << 20
"""Read the first part of the database file through memory mapping (``Settings.sqlite_mmap_mb``).
Without it every page outside a connection's 64 MB cache is a ``pread`` and a copy. On a
1,000,000-profile store (1 GB) with two API processes (bench/IDENTITY_PROFILE.md): Profile API
4,873 lookups/s unmapped, 5,379 at 512 MB, 5,470 at 2 GB; IDSync with 5% new users 4,140,
3,846 and 3,252 req/s. A mapping that covers the whole file is remapped by every connection
whenever the file grows, which new profiles keep doing; one smaller than the file stays put."""


def _sqlite_pragmas(dbapi_conn: Any, _record: Any, mmap_bytes: int) -> None:
    dbapi_conn.isolation_level = None  # we issue BEGIN ourselves (see _sqlite_begin)
    cur = dbapi_conn.cursor()
    cur.execute("PRAGMA journal_mode=WAL")
    cur.execute("PRAGMA synchronous=FULL")
    cur.execute("PRAGMA busy_timeout=30000")
    cur.execute("PRAGMA temp_store=MEMORY")
    cur.execute("PRAGMA cache_size=-65536")
    cur.execute(f"PRAGMA mmap_size={int(mmap_bytes)}")
    cur.close()


def _sqlite_begin(conn: Connection) -> None:
    # Straight on the driver connection: through exec_driver_sql this BEGIN was a tenth of a
    # Profile API lookup's time (bench/IDENTITY_PROFILE.md).
    mode = conn.get_execution_options().get("sqlite_begin", "DEFERRED")
    conn.connection.driver_connection.execute(  # type: ignore[union-attr]
        "BEGIN IMMEDIATE" if mode == "IMMEDIATE" else "BEGIN"
    )


def _libc_flock() -> Callable[[int, int], int] | None:
    try:
        fn = ctypes.PyDLL(None, use_errno=True).flock
    except (OSError, AttributeError):  # no C library to load: use fcntl.flock
        return None
    fn.argtypes = [ctypes.c_int, ctypes.c_int]
    fn.restype = ctypes.c_int
    return fn  # type: ignore[no-any-return]


_FLOCK_HOLDING_GIL = _libc_flock()


def _flock_now(fd: int, operation: int) -> bool:
    """``flock(2)`` for calls that never wait (a ``LOCK_NB`` try, an unlock); False when the
    lock is held elsewhere.

    ``fcntl.flock`` gives up the GIL around every call. A thread that gives it up while the
    event loop is busy waits up to the switch interval to get it back, and the group
    committer's two lock calls per commit were two such waits, paid by every request in the
    group (bench/README.md). Through ``ctypes.PyDLL`` the call keeps the GIL: it is a
    microsecond's syscall when it cannot block.
    """
    if _FLOCK_HOLDING_GIL is None:
        try:
            fcntl.flock(fd, operation)
        except BlockingIOError:
            return False
        return True
    if _FLOCK_HOLDING_GIL(fd, operation) == 0:
        return True
    err = ctypes.get_errno()
    if err in (errno.EWOULDBLOCK, errno.EAGAIN):
        return False
    raise OSError(err, os.strerror(err))


class WriterBusy(Exception):
    """``Database.write(blocking=False)`` found another writer holding the database."""


class Database:
    """Owns the engine and hands out read and write transactions."""

    def __init__(
        self, url: str, *, pool_size: int = 48, sqlite_mmap_bytes: int = DEFAULT_SQLITE_MMAP_BYTES
    ) -> None:
        """``pool_size`` covers the request thread pool (40) plus the writer and worker, so
        connections are reused rather than opened per call (opening runs the pragmas)."""
        self.url = url
        self.dialect = sa.engine.make_url(url).get_backend_name()
        self._raw_own = True
        self._lock_path: str | None = None
        if self.dialect == "sqlite":
            db_path = sa.engine.make_url(url).database
            # An in-memory database exists once per connection: read_raw must share the pool's.
            self._raw_own = bool(db_path) and db_path != ":memory:" and "memory" not in url
            if db_path and db_path != ":memory:":
                Path(db_path).parent.mkdir(parents=True, exist_ok=True)
            if self._raw_own:
                self._lock_path = f"{db_path}.writer-lock"

            self.engine: Engine = sa.create_engine(
                url,
                connect_args={"check_same_thread": False, "timeout": 30},
                pool_size=pool_size,
                max_overflow=32,
            )
            event.listen(
                self.engine,
                "connect",
                functools.partial(_sqlite_pragmas, mmap_bytes=sqlite_mmap_bytes),
            )
            event.listen(self.engine, "begin", _sqlite_begin)
        else:
            self.engine = sa.create_engine(
                url, pool_size=pool_size, max_overflow=32, pool_pre_ping=True
            )
        self._raw_local = threading.local()
        self._raw_all: list[RawRead] = []
        self._raw_lock = threading.Lock()
        self._sqlite_writer = threading.Lock()  # not an RLock: write_begin's commit thread
        self._writer_owner: int | None = None  # releases it; nesting is tracked by owner
        self._lock_fd: int | None = None
        self._lock_pid = 0
        self._committing_on: int | None = None  # the thread whose write_begin is committing
        self._commit_pool: ThreadPoolExecutor | None = None
        self.handoff = Handoff()
        """How ``write_begin``'s commit thread hands completions to the loop; ``poll`` it."""

    @property
    def is_sqlite(self) -> bool:
        return self.dialect == "sqlite"

    @contextmanager
    def write(self, *, blocking: bool = True) -> Iterator[Connection]:
        """A transaction that will write: committed on success, rolled back on error.

        On SQLite, writers first queue on a lock of this process, then on an exclusive
        ``flock`` of a file beside the database shared by every opencdp process (``serve
        --api-processes``, ``opencdp worker``). SQLite has one writer at a time, and a writer
        that finds the database locked sleeps in its busy handler (1, 2, 5 ... 100 ms between
        tries) instead of waking when the lock is free: IDSync's occasional writes took up to
        2.5 s at the tail under concurrent load (bench/IDENTITY_PROFILE.md); the kernel wakes
        a lock's next waiter at once.

        ``blocking=False`` raises ``WriterBusy`` instead of waiting, before anything started:
        a caller on an event loop can then write inline when nobody else is (SQLite only).
        """
        if not self.is_sqlite:
            if not blocking:
                raise WriterBusy("only SQLite writes can be tried without waiting")
            with self.engine.connect() as conn, conn.begin():
                yield conn
            return
        with self._writer_queue(blocking), self.engine.connect() as conn:
            conn.execution_options(sqlite_begin="IMMEDIATE")
            with conn.begin():
                yield conn

    def write_begin(
        self,
        fn: Callable[[Connection], T],
        on_done: Callable[[BaseException | None], None],
        on_wake: Callable[[], None] | None = None,
    ) -> T:
        """SQLite, on an event loop's thread: ``fn`` in a write transaction now, its ``COMMIT``
        in a thread; ``on_done(None)`` (or the error) is called on the loop once committed
        and the writer lock released, through ``self.handoff`` (so by the first ``poll`` on
        the loop, or at the loop's wake-up), and ``on_wake()`` at that wake-up. ``WriterBusy``
        (nothing done) when another writer holds the database. Returns what ``fn`` returned,
        which is only durable once ``on_done``.

        A small write (an IDSync new user: a few inserts) takes a fraction of a millisecond of
        statements and then the commit's fsync, which is most of its time. Run whole on the
        loop it stalled every other request for the fsync; run whole in a thread, each of its
        statements waited for the busy loop to hand the GIL back. Here the statements run
        inline and the loop serves other requests while a thread waits for the disk. The
        commit thread calls back into the loop directly (not through a future a task awaits):
        on a loaded loop every hop is one more pass over all ready requests.

        Until the commit is done any other write from this thread gets ``WriterBusy`` instead
        of counting as nested and then waiting on SQLite's own lock.
        """
        if not self.is_sqlite:
            raise WriterBusy("only SQLite writes run inline")
        loop = asyncio.get_running_loop()
        stack = contextlib.ExitStack()
        try:
            stack.enter_context(self._writer_queue(False))
            conn = stack.enter_context(self.engine.connect())
            conn.execution_options(sqlite_begin="IMMEDIATE")
            trans = conn.begin()
            try:
                out = fn(conn)
            except BaseException:
                trans.rollback()
                raise
        except BaseException:
            stack.close()
            raise
        # The commit thread finishes the write: from here on a write from this thread is
        # busy (it must not count as nested), and the locks are released right after the
        # commit, not one pass of the loop later: other writers (the other API processes,
        # the worker) wait for them.
        self._writer_owner = None
        self._committing_on = threading.get_ident()

        def commit() -> None:  # in the commit thread
            exc: BaseException | None = None
            try:
                trans.commit()
            except BaseException as e:
                exc = e
                with contextlib.suppress(Exception):
                    if trans.is_active:
                        trans.rollback()
            finally:
                try:
                    stack.close()  # the connection back to the pool, the writer locks released
                finally:
                    self._committing_on = None
            with contextlib.suppress(RuntimeError):  # a closed loop: nobody is waiting
                self.handoff.post(loop, on_done, exc, after=on_wake)

        try:
            self._commit_thread().submit(commit)
        except BaseException:
            self._committing_on = None
            trans.rollback()
            stack.close()
            raise
        return out

    async def write_async(self, fn: Callable[[Connection], T]) -> T:
        """``write_begin`` as a coroutine: ``fn``'s result once it is committed."""
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def done(exc: BaseException | None) -> None:
            if not fut.done():
                if exc is None:
                    fut.set_result(None)
                else:
                    fut.set_exception(exc)

        out = self.write_begin(fn, done)
        await fut
        return out

    def _commit_thread(self) -> ThreadPoolExecutor:
        """``write_begin``'s own thread. Not the loop's default executor: writes waiting there
        for the writer lock (IDSync's fallback) could fill it while the lock's holder waited
        behind them to commit."""
        if self._commit_pool is None:
            self._commit_pool = ThreadPoolExecutor(1, thread_name_prefix="opencdp-inline-commit")
        return self._commit_pool

    @contextmanager
    def _writer_queue(self, blocking: bool) -> Iterator[None]:
        me = threading.get_ident()
        if self._writer_owner == me:  # nested: the outer write holds everything
            yield
            return
        if self._committing_on == me:
            raise WriterBusy("this thread's inline write is still committing")
        if not self._sqlite_writer.acquire(blocking=blocking):
            raise WriterBusy("another writer of this process holds the database")
        self._writer_owner = me
        try:
            if self._lock_path is None:
                yield
                return
            if self._lock_fd is None or self._lock_pid != os.getpid():
                self._lock_fd = os.open(
                    self._lock_path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600
                )
                self._lock_pid = os.getpid()
            fd = self._lock_fd
            if not _flock_now(fd, fcntl.LOCK_EX | fcntl.LOCK_NB):
                if not blocking:
                    raise WriterBusy("another process is writing to the database")
                fcntl.flock(fd, fcntl.LOCK_EX)  # waits with the GIL released
            try:
                yield
            finally:
                _flock_now(fd, fcntl.LOCK_UN)
        finally:
            if self._writer_owner == me:
                self._writer_owner = None
            self._sqlite_writer.release()

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A read-only transaction (a consistent snapshot on both engines)."""
        with self.engine.connect() as conn, conn.begin():
            yield conn

    def read_raw(self, fn: Callable[[RawRead], T]) -> T:
        """``fn`` in a read transaction on a DBAPI connection kept for this thread.

        For read paths where ``read()``'s SQLAlchemy overhead is most of the cost (IDSync's
        optimistic read: ~100 us of it against ~10 us of SQL on SQLite). Each thread keeps its
        own idle connections, so no pool checkout, no events and no lock; a nested call takes
        a second connection rather than sharing the first's transaction. The connections come
        from the engine (pragmas and dialect setup included) and are detached from its pool;
        ``dispose`` closes them. ``fn`` must only read: when the connection turns out to be
        dead (the PostgreSQL server restarted; the pool would have pinged it), it is thrown
        away and ``fn`` runs once more on a new one.
        """
        if not self._raw_own:
            with self.read() as conn:
                return fn(RawRead(conn.connection.driver_connection, pg=not self.is_sqlite))
        idle: list[RawRead] | None = getattr(self._raw_local, "idle", None)
        if idle is None:
            idle = self._raw_local.idle = []
        for attempt in (0, 1):
            reader = idle.pop() if idle and attempt == 0 else self._raw_connect()
            try:
                reader.begin()
                out = fn(reader)
                reader.commit()
            except BaseException:
                reader.rollback()
                if reader.lost:
                    self._raw_forget(reader)
                    if attempt == 0:
                        continue
                else:
                    idle.append(reader)
                raise
            idle.append(reader)
            return out
        raise AssertionError("unreachable")  # pragma: no cover

    def append(self, insert: InsertValues, collect: Callable[[], Sequence[Any]]) -> int:
        """Durably insert the rows ``collect()`` returns, all or none; returns how many.

        ``collect`` runs once this writer holds the database (on SQLite, after the writer
        queue of ``write()``), so a caller batching submissions (the group committer) can keep
        taking them while it waited. On SQLite the rows go in on a DBAPI connection kept for
        this thread, as one autocommit statement when they fit (``InsertValues``): the inbox's
        group commit then calls into SQLite once per commit, where the SQLAlchemy transaction
        took the GIL back half a dozen times, each a wait for the busy event loop.
        """
        if not self.is_sqlite:
            return self._append_pg(insert, collect)
        if not self._raw_own:
            with self.write() as conn:
                rows = collect()
                insert.run(conn, rows)
            return len(rows)
        with self._writer_queue(True):
            rows = collect()
            if rows:
                writer: RawRead | None = getattr(self._raw_local, "writer", None)
                if writer is None:
                    writer = self._raw_local.writer = self._raw_connect()
                insert.run_atomic_sqlite(writer.connection, rows)
            return len(rows)

    def _append_pg(self, insert: InsertValues, collect: Callable[[], Sequence[Any]]) -> int:
        """``append`` on PostgreSQL: one transaction on a psycopg connection kept for this
        thread. SQLAlchemy's transaction (pool checkout, begin/commit bookkeeping, reset) was
        ~100 us of the committer's Python per commit, beside a ~400 us COPY. A connection that
        failed (server restarted) is dropped, and the next commit opens a new one."""
        writer: RawRead | None = getattr(self._raw_local, "pg_writer", None)
        if writer is None:
            writer = self._raw_local.pg_writer = self._raw_connect()
            writer.connection.autocommit = True
        rows = collect()
        if not rows:
            return 0
        conn = writer.connection
        try:
            if insert.one_statement(len(rows), pg=True):
                # A single statement is its own transaction: all rows or none, and no
                # separate COMMIT round trip.
                insert.run_dbapi(conn, rows, pg=True)
            else:
                with conn.transaction():
                    insert.run_dbapi(conn, rows, pg=True)
        except BaseException:
            writer.rollback()
            if writer.lost:
                self._raw_local.pg_writer = None
                self._raw_forget(writer)
            raise
        return len(rows)

    def _raw_connect(self) -> RawRead:
        fairy = self.engine.raw_connection()
        dbapi_conn = fairy.driver_connection
        fairy.detach()  # ours now: closing it closes the DBAPI connection
        reader = RawRead(dbapi_conn, pg=not self.is_sqlite)
        with self._raw_lock:
            self._raw_all.append(reader)
        return reader

    def _raw_forget(self, reader: RawRead) -> None:
        reader.close()
        with self._raw_lock:
            if reader in self._raw_all:
                self._raw_all.remove(reader)

    def optimize(self) -> None:
        """Refresh the planner's statistics where they are stale (SQLite ``PRAGMA optimize``;
        PostgreSQL's autovacuum does this itself). Without statistics SQLite preferred a
        covering primary key over the right index and read whole workspaces (bench/)."""
        if self.is_sqlite:
            with self.engine.connect() as conn:
                conn.exec_driver_sql("PRAGMA optimize")

    def dispose(self) -> None:
        with self._raw_lock:
            readers, self._raw_all = self._raw_all, []
        for reader in readers:
            reader.close()
        self._raw_local = threading.local()
        if self._lock_fd is not None and self._lock_pid == os.getpid():
            os.close(self._lock_fd)
        self._lock_fd = None
        if self._commit_pool is not None:
            self._commit_pool.shutdown(wait=True)
            self._commit_pool = None
        self.engine.dispose()
