"""SQLite writers queue on a process lock and a file lock, and can be tried without waiting."""

from __future__ import annotations

import threading
from pathlib import Path

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
