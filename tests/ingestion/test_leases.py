"""Partition leases: one owner at a time, taken over after expiry, released on stop."""

from __future__ import annotations

from opencdp.app import Runtime
from opencdp.ingestion import store


def _claim(runtime: Runtime, partition: int, owner: str, now: int, ttl: int = 1000) -> bool:
    with runtime.db.write() as tx:
        return store.claim_lease(tx, partition, owner, now, ttl)


def test_lease_is_exclusive_until_it_expires(runtime: Runtime) -> None:
    assert _claim(runtime, 3, "a", now=10_000)
    assert not _claim(runtime, 3, "b", now=10_500)
    assert _claim(runtime, 3, "a", now=10_600)  # renewal by the owner
    assert not _claim(runtime, 3, "b", now=11_500)
    assert _claim(runtime, 3, "b", now=11_700)  # a's lease (to 11_600) ran out: b takes over
    assert not _claim(runtime, 3, "a", now=11_800)
    with runtime.db.read() as conn:
        assert store.lease_owners(conn)[3] == "b"


def test_release_frees_every_lease_of_the_owner(runtime: Runtime) -> None:
    assert _claim(runtime, 1, "a", now=1)
    assert _claim(runtime, 2, "a", now=1)
    runtime.processing.release("a")
    assert _claim(runtime, 1, "b", now=2)
    assert _claim(runtime, 2, "b", now=2)


def test_a_worker_skips_a_partition_held_by_another(runtime: Runtime) -> None:
    import time

    from tests.support.batches import batch

    creds_dir = runtime.settings.data_dir
    creds, _ = runtime.tenancy.bootstrap(data_dir=creds_dir)
    p = runtime.tenancy.authenticate_basic(creds.api_key, creds.api_secret)
    import msgspec

    from opencdp.ingestion.service import Route

    runtime.ingestion.accept_sync(p, msgspec.json.encode(batch()), Route.EVENTS)
    with runtime.db.read() as conn:
        (partition,) = store.partitions_with_work(conn)
    now = int(time.time() * 1000)
    assert _claim(runtime, partition, "other-worker", now=now, ttl=60_000)
    assert runtime.processing.process_partition(partition, "me") == 0
    with runtime.db.write() as tx:
        store.release_leases(tx, "other-worker")
    assert runtime.processing.process_partition(partition, "me") == 1
