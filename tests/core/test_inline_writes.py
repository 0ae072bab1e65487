"""InlineWriter: writes made on an event loop are grouped into one commit, each in a savepoint."""

from __future__ import annotations

import asyncio
import threading
from pathlib import Path
from typing import Any

import pytest

from opencdp.core.db import Database, WriterBusy
from opencdp.core.inline_writes import InlineWriter


@pytest.fixture
def db(tmp_path: Path) -> Database:
    database = Database(f"sqlite:///{tmp_path / 'opencdp.db'}")
    with database.write() as tx:
        tx.exec_driver_sql("CREATE TABLE t (x INTEGER PRIMARY KEY)")
    return database


def _rows(db: Database) -> list[int]:
    with db.read() as conn:
        return [r[0] for r in conn.exec_driver_sql("SELECT x FROM t ORDER BY x")]


def _insert(x: int) -> Any:
    def fn(tx: Any) -> int:
        tx.exec_driver_sql(f"INSERT INTO t VALUES ({x})")
        return x

    return fn


def test_writes_queued_during_a_commit_share_the_next_one(db: Database) -> None:
    writer = InlineWriter(db)
    commits: list[int] = []
    real = db.write_begin

    def counting(fn: Any, on_done: Any, on_wake: Any = None) -> Any:
        commits.append(1)
        return real(fn, on_done, on_wake)

    db.write_begin = counting  # type: ignore[method-assign]

    async def go() -> list[int]:
        return await asyncio.gather(*(writer.write(_insert(x)) for x in range(1, 6)))

    assert asyncio.run(go()) == [1, 2, 3, 4, 5]
    assert _rows(db) == [1, 2, 3, 4, 5]
    # the first write commits alone (nothing else was queued yet); the other four, queued
    # while it committed, share one commit
    assert len(commits) == 2


def test_a_failing_write_is_rolled_back_alone(db: Database) -> None:
    writer = InlineWriter(db)

    def bad(tx: Any) -> None:
        tx.exec_driver_sql("INSERT INTO t VALUES (7)")
        tx.exec_driver_sql("INSERT INTO t VALUES (7)")  # primary key violation

    async def go() -> list[Any]:
        return await asyncio.gather(
            writer.write(_insert(1)),
            writer.write(_insert(2)),
            writer.write(bad),
            writer.write(_insert(3)),
            return_exceptions=True,
        )

    out = asyncio.run(go())
    assert out[:2] == [1, 2] and out[3] == 3
    assert isinstance(out[2], Exception) and "UNIQUE" in str(out[2])
    assert _rows(db) == [1, 2, 3]  # nothing of the failed write, everything of the others


def test_a_busy_database_is_retried_then_written(db: Database) -> None:
    writer = InlineWriter(db)
    other = Database(db.url)  # another process, as far as the file lock is concerned
    holding, release = threading.Event(), threading.Event()

    def hold() -> None:
        with other.write():
            holding.set()
            release.wait(5)

    t = threading.Thread(target=hold)
    t.start()
    assert holding.wait(5)

    async def go() -> int:
        asyncio.get_running_loop().call_later(0.002, release.set)  # free it during the retries
        return await writer.write(_insert(9))

    assert asyncio.run(go()) == 9
    t.join(5)
    other.dispose()
    assert _rows(db) == [9]


def test_a_database_that_stays_busy_gives_writer_busy(db: Database) -> None:
    writer = InlineWriter(db)
    other = Database(db.url)
    with other.write(), pytest.raises(WriterBusy):
        asyncio.run(writer.write(_insert(1)))
    other.dispose()
    assert _rows(db) == []


def test_write_then_answers_from_the_commit_completion(db: Database) -> None:
    writer = InlineWriter(db)

    async def go() -> list[tuple[bool, Any]]:
        loop = asyncio.get_running_loop()
        outcomes: list[tuple[bool, Any]] = []
        done = loop.create_future()

        def record(ok: bool, value: Any) -> None:
            outcomes.append((ok, value))
            if len(outcomes) == 3:
                done.set_result(None)

        def broken(_ok: bool, _value: Any) -> None:
            raise RuntimeError("caller bug")  # must not keep the others waiting

        writer.write_then(_insert(1), record)
        writer.write_then(_insert(2), broken)
        writer.write_then(_insert(1), record)  # duplicate key: fails alone
        writer.write_then(_insert(3), record)
        await asyncio.wait_for(done, 10)
        return outcomes

    outcomes = asyncio.run(go())
    assert outcomes[0] == (True, 1)
    assert outcomes[1][0] is False and "UNIQUE" in str(outcomes[1][1])
    assert outcomes[2] == (True, 3)
    assert _rows(db) == [1, 2, 3]
