"""SQLite writers queue on a process lock and a file lock, and can be tried without waiting."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from opencdp.core import migrate
from opencdp.core.db import Database, WriterBusy


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'opencdp.db'}")
    migrate.upgrade(database)
    return database


def test_a_free_database_is_written_without_waiting(db: Database) -> None:
    with db.write(blocking=False) as tx:
        tx.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    with db.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 0


def test_a_writer_in_another_thread_makes_a_try_fail_fast(db: Database) -> None:
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with db.write():
            holding.set()
            release.wait(10)

    t = threading.Thread(target=hold)
    t.start()
    try:
        assert holding.wait(10)
        with pytest.raises(WriterBusy), db.write(blocking=False):
            pass
    finally:
        release.set()
        t.join()
    with db.write(blocking=False):  # free again
        pass


def test_a_writer_of_another_process_makes_a_try_fail_fast(db: Database, tmp_path: Path) -> None:
    # A second Database on the same file has its own process lock but shares the file lock,
    # exactly like another opencdp process.
    other = Database(db.url)
    with other.write(), pytest.raises(WriterBusy), db.write(blocking=False):
        pass
    with db.write(blocking=False):
        pass
    other.dispose()


def test_nested_writes_in_one_thread_do_not_deadlock_on_the_locks(db: Database) -> None:
    with db.write(), db._writer_queue(blocking=False):  # what a nested write takes first
        pass


def test_blocked_writers_are_woken_when_the_lock_is_released(db: Database) -> None:
    other = Database(db.url)
    entered = threading.Event()

    def write() -> None:
        with db.write():
            entered.set()

    with other.write():
        t = threading.Thread(target=write)
        t.start()
        assert not entered.wait(0.3)  # waiting on the file lock
    assert entered.wait(5)
    t.join(5)
    other.dispose()


def test_memory_mapping_follows_the_setting(tmp_path: Path) -> None:
    on = Database(f"sqlite:///{tmp_path / 'a.db'}", sqlite_mmap_bytes=64 << 20)
    off = Database(f"sqlite:///{tmp_path / 'b.db'}", sqlite_mmap_bytes=0)
    with on.read() as conn:
        assert conn.exec_driver_sql("PRAGMA mmap_size").scalar_one() == 64 << 20
    with off.read() as conn:
        assert conn.exec_driver_sql("PRAGMA mmap_size").scalar_one() == 0
    on.dispose()
    off.dispose()


def _count(db: Database) -> int:
    with db.read() as conn:
        return int(conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one())


def test_write_async_commits_in_a_thread_and_returns_once_durable(db: Database) -> None:
    with db.write() as tx:
        tx.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    loop_thread = threading.get_ident()
    ran_on: list[int] = []

    def insert(tx: Any) -> str:
        ran_on.append(threading.get_ident())
        tx.exec_driver_sql("INSERT INTO t VALUES (1)")
        return "done"

    async def go() -> str:
        return await db.write_async(insert)

    assert asyncio.run(go()) == "done"
    assert ran_on == [loop_thread]  # the statements ran inline
    assert _count(db) == 1
    other = Database(db.url)  # another connection sees it: committed
    with other.read() as conn:
        assert conn.exec_driver_sql("SELECT count(*) FROM t").scalar_one() == 1
    other.dispose()


def test_write_async_rolls_back_when_the_statements_fail(db: Database) -> None:
    with db.write() as tx:
        tx.exec_driver_sql("CREATE TABLE t (x INTEGER)")

    def half(tx: Any) -> None:
        tx.exec_driver_sql("INSERT INTO t VALUES (1)")
        raise RuntimeError("boom")

    with pytest.raises(RuntimeError):
        asyncio.run(db.write_async(half))
    assert _count(db) == 0
    with db.write(blocking=False):  # the locks were released
        pass


def test_write_async_is_busy_while_another_writer_holds_the_database(db: Database) -> None:
    with db.write() as tx:
        tx.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    other = Database(db.url)
    with other.write(), pytest.raises(WriterBusy):
        asyncio.run(db.write_async(lambda tx: tx.exec_driver_sql("INSERT INTO t VALUES (1)")))
    other.dispose()
    assert _count(db) == 0


def test_a_second_write_on_the_loop_during_the_commit_is_busy_not_stuck(db: Database) -> None:
    with db.write() as tx:
        tx.exec_driver_sql("CREATE TABLE t (x INTEGER)")
    outcomes: list[str] = []

    async def second() -> None:
        # gather runs this task's first step right after the first task suspends on its
        # commit, in the same loop iteration: the commit cannot have been seen complete yet.
        try:
            await db.write_async(lambda tx: tx.exec_driver_sql("INSERT INTO t VALUES (2)"))
            outcomes.append("wrote")
        except WriterBusy:
            outcomes.append("busy")

    async def go() -> None:
        first = db.write_async(lambda tx: tx.exec_driver_sql("INSERT INTO t VALUES (1)"))
        await asyncio.gather(first, second())

    asyncio.run(go())
    assert outcomes == ["busy"]
    assert _count(db) == 1
