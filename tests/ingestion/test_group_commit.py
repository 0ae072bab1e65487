"""Group commit groups concurrent submissions and isolates a poisoned one."""

from __future__ import annotations

import threading
from functools import partial
from typing import Any

import pytest
import sqlalchemy as sa

from opencdp.app import Runtime
from opencdp.core.errors import Unavailable
from opencdp.ingestion import store
from opencdp.ingestion.group_commit import GroupCommitter


def _row(i: int, **over: Any) -> dict[str, Any]:
    row = {
        "workspace_id": 1,
        "input_id": 1,
        "partition": i % 4,
        "kind": "events",
        "received_ms": 1,
        "source_request_id": f"s{i}",
        "payload": b"{}",
    }
    row.update(over)
    return row


def test_concurrent_submissions_commit_in_fewer_transactions(runtime: Runtime) -> None:
    commits: list[int] = []
    gc = GroupCommitter(
        append=partial(store.append_batches, runtime.db), on_commit=lambda g, n: commits.append(g)
    )
    barrier = threading.Barrier(20)
    futures = []
    lock = threading.Lock()

    def go(i: int) -> None:
        barrier.wait()
        f = gc.submit([_row(i)])
        with lock:
            futures.append(f)

    threads = [threading.Thread(target=go, args=(i,)) for i in range(20)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    for f in futures:
        f.result(10)
    gc.close()
    with runtime.db.read() as conn:
        assert store.count_batches(conn) == 20
    assert sum(commits) == 20


def test_a_poisoned_submission_fails_alone(runtime: Runtime) -> None:
    gc = GroupCommitter(append=partial(store.append_batches, runtime.db))
    bad = gc.submit([_row(1, payload=None)])  # NOT NULL violation
    good = gc.submit([_row(2)])
    with pytest.raises(Unavailable):
        bad.result(10)
    good.result(10)
    gc.close()
    with runtime.db.read() as conn:
        ids = conn.execute(sa.text("SELECT source_request_id FROM inbox")).scalars().all()
    assert ids == ["s2"]


def test_closed_committer_refuses(runtime: Runtime) -> None:
    gc = GroupCommitter(append=partial(store.append_batches, runtime.db))
    gc.start()
    gc.close()
    with pytest.raises(Unavailable):
        gc.submit([_row(1)]).result(1)
