"""IdentityService on real stores: calls, uniqueness, concurrency, the pipeline step."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import TypeVar

import msgspec
import pytest
import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opencdp.app import Runtime
from opencdp.core.config import Settings
from opencdp.core.errors import BadRequest, NotFound
from opencdp.identity.model import IdentityChange, IdentityRequest, ModifyRequest
from opencdp.identity.service import IdentityResult, IdentityService, PendingWrite
from opencdp.identity.types import IdentityType as T
from opencdp.ingestion.service import Route
from opencdp.tenancy.model import Credentials
from tests.support.batches import batch

T_ = TypeVar("T_")


@pytest.fixture
def creds(runtime: Runtime, settings: Settings) -> Credentials:
    return runtime.tenancy.bootstrap(data_dir=settings.data_dir)[0]


def _svc(runtime: Runtime) -> IdentityService:
    svc = runtime.services["identity"]
    assert isinstance(svc, IdentityService)
    return svc


def test_identify_creates_once_and_then_finds(runtime: Runtime, creds: Credentials) -> None:
    svc, ws = _svc(runtime), creds.workspace_id
    first = svc.identify(ws, IdentityRequest({T.CUSTOMER_ID: "c1", T.EMAIL: "a@x.io"}))
    assert first.created and first.mpid != 0
    again = svc.identify(ws, IdentityRequest({T.CUSTOMER_ID: "c1"}))
    assert again.mpid == first.mpid and not again.created
    # login-ID protection: a known profile is not returned to a request without its login ID
    by_email = svc.identify(ws, IdentityRequest({T.EMAIL: "a@x.io"}))
    assert by_email.mpid != first.mpid
    found = svc.search(ws, IdentityRequest({T.CUSTOMER_ID: "c1"}))
    assert found.mpid == first.mpid
    profile = svc.profile(ws, first.mpid)
    assert profile is not None
    assert (T.EMAIL, "a@x.io") in profile.identities


def test_search_never_creates(runtime: Runtime, creds: Credentials) -> None:
    svc = _svc(runtime)
    with pytest.raises(NotFound):
        svc.search(creds.workspace_id, IdentityRequest({T.CUSTOMER_ID: "nobody"}))
    with runtime.db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM identity_profiles")).scalar_one() == 0


def test_modify_moves_a_unique_identity(runtime: Runtime, creds: Credentials) -> None:
    svc, ws = _svc(runtime), creds.workspace_id
    a = svc.identify(ws, IdentityRequest({T.CUSTOMER_ID: "a"})).mpid
    b = svc.identify(ws, IdentityRequest({T.CUSTOMER_ID: "b"})).mpid
    assert a != b
    svc.modify(ws, ModifyRequest(b, (IdentityChange(T.CUSTOMER_ID, "b", "a"),)))
    assert svc.search(ws, IdentityRequest({T.CUSTOMER_ID: "a"})).mpid == b
    pa = svc.profile(ws, a)
    assert pa is not None and (T.CUSTOMER_ID, "a") not in pa.identities
    with pytest.raises(NotFound):
        svc.modify(ws, ModifyRequest(12345, (IdentityChange(T.EMAIL, None, "z@x.io"),)))


def test_workspaces_do_not_share_profiles(runtime: Runtime, creds: Credentials) -> None:
    svc = _svc(runtime)
    other = runtime.tenancy.create_workspace(account_id=creds.account_id, name="other")
    a = svc.identify(creds.workspace_id, IdentityRequest({T.CUSTOMER_ID: "same"})).mpid
    b = svc.identify(other, IdentityRequest({T.CUSTOMER_ID: "same"})).mpid
    assert a != b
    assert svc.profile(other, a) is None


def test_concurrent_identify_converges_on_one_mpid(runtime: Runtime, creds: Credentials) -> None:
    """Many threads identify the same new identities at once: one profile, one MPID."""
    svc, ws = _svc(runtime), creds.workspace_id
    for round_ in range(5):
        barrier = threading.Barrier(16)

        def go(i: int, r: int = round_, b: threading.Barrier = barrier) -> int:
            b.wait()
            ids = {T.CUSTOMER_ID: f"hammer-{r}"}
            if i % 2:
                ids[T.EMAIL] = f"h{r}@x.io"
            return svc.identify(ws, IdentityRequest(ids)).mpid

        with ThreadPoolExecutor(16) as pool:
            mpids = set(pool.map(go, range(16)))
        assert len(mpids) == 1, mpids
    with runtime.db.read() as conn:
        dupes = conn.execute(
            sa.text(
                "SELECT identity_type, value, count(*) FROM identity_values "
                "WHERE identity_type = 'customer_id' GROUP BY identity_type, value "
                "HAVING count(*) > 1"
            )
        ).all()
    assert dupes == []


def test_alias_copies_events_in_window(runtime: Runtime, creds: Credentials) -> None:
    svc, ws = _svc(runtime), creds.workspace_id
    principal = runtime.tenancy.authenticate_basic(creds.api_key, creds.api_secret)
    src_batch = batch(customer_id=None, events=3, ts_ms=1_000_000)
    src_batch["device_info"] = {"ios_idfv": "11111111-2222-3333-4444-555555555555"}
    runtime.ingestion.accept_sync(principal, msgspec.json.encode(src_batch), Route.EVENTS)
    runtime.worker.drain()
    src = svc.identify(ws, IdentityRequest({T.IOS_IDFV: "11111111-2222-3333-4444-555555555555"}))
    dst = svc.identify(ws, IdentityRequest({T.CUSTOMER_ID: "known"})).mpid
    assert src.mpid != dst
    svc.alias(ws, source_mpid=src.mpid, destination_mpid=dst, start_ms=1_000_000, end_ms=1_000_001)
    with runtime.db.read() as conn:
        n = conn.execute(
            sa.text("SELECT count(*) FROM events WHERE mpid = :m"), {"m": dst}
        ).scalar_one()
    assert n == 2  # events at 1_000_000 and 1_000_001, not the one at 1_000_002
    with pytest.raises(BadRequest):
        svc.alias(ws, source_mpid=src.mpid, destination_mpid=src.mpid, start_ms=0, end_ms=1)
    with pytest.raises(BadRequest):
        svc.alias(ws, source_mpid=src.mpid, destination_mpid=dst, start_ms=5, end_ms=1)
    with pytest.raises(BadRequest):
        svc.alias(ws, source_mpid=src.mpid, destination_mpid=424242, start_ms=0, end_ms=1)


def test_pipeline_resolves_batches_to_profiles(runtime: Runtime, creds: Credentials) -> None:
    svc, ws = _svc(runtime), creds.workspace_id
    principal = runtime.tenancy.authenticate_basic(creds.api_key, creds.api_secret)
    body = msgspec.json.encode([batch(customer_id="p1", events=2), batch(customer_id="p2")])
    runtime.ingestion.accept_sync(principal, body, Route.BULK)
    named = batch(customer_id=None, events=1)
    named["mpid"] = "777"
    runtime.ingestion.accept_sync(principal, msgspec.json.encode(named), Route.EVENTS)
    runtime.worker.drain()
    p1 = svc.search(ws, IdentityRequest({T.CUSTOMER_ID: "p1"})).mpid
    with runtime.db.read() as conn:
        rows = conn.execute(sa.text("SELECT mpid, count(*) FROM events GROUP BY mpid")).all()
    counts = {r[0]: r[1] for r in rows}
    assert counts[p1] == 2
    assert counts[777] == 1
    assert svc.profile(ws, 777) is not None


def test_a_batch_naming_its_mpid_gives_that_profile_its_identities(
    runtime: Runtime, creds: Credentials, caplog: pytest.LogCaptureFixture
) -> None:
    svc, ws = _svc(runtime), creds.workspace_id
    principal = runtime.tenancy.authenticate_basic(creds.api_key, creds.api_secret)
    runtime.ingestion.accept_sync(
        principal, msgspec.json.encode(batch(customer_id="taken")), Route.EVENTS
    )
    runtime.worker.drain()
    holder = svc.search(ws, IdentityRequest({T.CUSTOMER_ID: "taken"})).mpid
    named = []
    for mpid, customer_id in (("888", "taken"), ("889", "c-889")):
        doc = batch(customer_id=customer_id, email=f"{mpid}@x.io", events=1)
        doc["mpid"] = mpid
        doc["device_info"] = {"ios_idfv": f"IDFV-{mpid}"}
        named.append(doc)
    with caplog.at_level(logging.INFO, logger="opencdp.identity.service"):
        runtime.ingestion.accept_sync(principal, msgspec.json.encode(named), Route.BULK)
        runtime.worker.drain()
    p888, p889 = svc.profile(ws, 888), svc.profile(ws, 889)
    assert p888 is not None and p889 is not None
    # the unique customer id another profile holds is not moved; the rest is attached
    assert set(p888.identities) == {(T.EMAIL, "888@x.io"), (T.IOS_IDFV, "IDFV-888")}
    assert svc.resolve(ws, T.CUSTOMER_ID, "taken") == holder
    assert set(p889.identities) == {
        (T.CUSTOMER_ID, "c-889"),
        (T.EMAIL, "889@x.io"),
        (T.IOS_IDFV, "IDFV-889"),
    }
    refused = [r for r in caplog.records if r.getMessage() == "identity.attach_refused"]
    assert [(r.__dict__["mpid"], r.__dict__["identity_types"]) for r in refused] == [
        (888, ["customer_id"])
    ]


def test_attach_in_respects_immutable_types_and_repeats_are_free(
    runtime: Runtime, creds: Credentials
) -> None:
    svc, ws = _svc(runtime), creds.workspace_id
    svc.configure(
        ws,
        {
            "strategy": "profile_conversion",
            "login_identities": ["customerid", "email"],
            "immutable_identities": ["customerid"],
        },
    )
    mpid = svc.identify(ws, IdentityRequest({T.CUSTOMER_ID: "first"})).mpid
    ids = {T.CUSTOMER_ID: "second", T.EMAIL: "e@x.io"}
    with runtime.db.write() as tx:
        assert svc.attach_in(tx, ws, mpid, ids, now_ms=1) == (T.CUSTOMER_ID,)
    profile = svc.profile(ws, mpid)
    assert profile is not None
    assert set(profile.identities) == {(T.CUSTOMER_ID, "first"), (T.EMAIL, "e@x.io")}
    with runtime.db.write() as tx:  # nothing new: answered from one read, nothing refused
        assert svc.attach_in(tx, ws, mpid, {T.EMAIL: "e@x.io"}, now_ms=2) == ()
    with pytest.raises(NotFound), runtime.db.write() as tx:
        svc.attach_in(tx, ws, 31337, {T.EMAIL: "e@x.io"}, now_ms=3)


def test_user_identity_change_event_applies(runtime: Runtime, creds: Credentials) -> None:
    svc, ws = _svc(runtime), creds.workspace_id
    principal = runtime.tenancy.authenticate_basic(creds.api_key, creds.api_secret)
    b = batch(customer_id="u1", events=0)
    b["events"] = [
        {
            "event_type": "user_identity_change",
            "data": {
                "new": {"identity_type": "email", "identity": "new@x.io"},
                "old": {"identity_type": "email", "identity": None},
            },
        }
    ]
    runtime.ingestion.accept_sync(principal, msgspec.json.encode(b), Route.EVENTS)
    runtime.worker.drain()
    u1 = svc.search(ws, IdentityRequest({T.CUSTOMER_ID: "u1"})).mpid
    profile = svc.profile(ws, u1)
    assert profile is not None and (T.EMAIL, "new@x.io") in profile.identities


def _race_the_sweep(runtime: Runtime, ws: int, mpid: int, worker: Callable[[Connection], T_]) -> T_:
    """Run ``worker`` in its own write transaction while the expiry sweep holds ``mpid``
    deleted but not yet committed (on SQLite the worker's transaction simply queues)."""
    out: list[T_] = []
    with runtime.db.write() as tx:
        assert _svc(runtime).expire_in(tx, ws, before_ms=2_000) == [mpid]

        def run() -> None:
            with runtime.db.write() as wtx:
                out.append(worker(wtx))

        thread = threading.Thread(target=run)
        thread.start()
        time.sleep(0.5)  # the worker reads the profile, then waits on the sweep's row lock
    thread.join(timeout=30)
    assert out, "the worker did not finish"
    return out[0]


def test_a_profile_the_sweep_deletes_under_a_worker_is_started_afresh(
    runtime: Runtime, creds: Credentials
) -> None:
    svc, ws = _svc(runtime), creds.workspace_id
    with runtime.db.write() as tx:
        assert svc.ensure_profile_in(tx, ws, 4242, now_ms=1_000)
    now = 10 * 3_600_000
    ok = _race_the_sweep(runtime, ws, 4242, lambda tx: svc.ensure_profile_in(tx, ws, 4242, now))
    profile = svc.profile(ws, 4242)
    assert ok and profile is not None
    assert (profile.created_ms, profile.last_seen_ms) == (now, now)


def test_resolution_racing_the_sweep_never_returns_a_deleted_profile(
    runtime: Runtime, creds: Credentials
) -> None:
    svc, ws = _svc(runtime), creds.workspace_id
    request = IdentityRequest({T.CUSTOMER_ID: "racer"})
    with runtime.db.write() as tx:
        old = svc.resolve_in(tx, ws, request, now_ms=1_000)
    new = _race_the_sweep(runtime, ws, old, lambda tx: svc.resolve_in(tx, ws, request, 5_000))
    assert new != old and svc.profile(ws, old) is None
    profile = svc.profile(ws, new)
    assert profile is not None and profile.identities == ((T.CUSTOMER_ID, "racer"),)
    with runtime.db.read() as conn:
        q = sa.text("SELECT count(*) FROM identity_values WHERE mpid = :m")
        assert conn.execute(q, {"m": old}).scalar_one() == 0


def _identify_in_process(url: str, data_dir: str, ws: int, key: str, barrier: object) -> int:
    from pathlib import Path

    from opencdp.app import build_runtime

    rt = build_runtime(
        Settings(database_url=url, data_dir=Path(data_dir), partitions=16), migrate_schema=False
    )
    svc = rt.services["identity"]
    barrier.wait()  # type: ignore[attr-defined]
    mpid = svc.identify(ws, IdentityRequest({T.CUSTOMER_ID: key})).mpid
    rt.db.dispose()
    return int(mpid)


@pytest.mark.slow
def test_concurrent_identify_from_processes_converges(
    runtime: Runtime, creds: Credentials, settings: Settings
) -> None:
    import multiprocessing as mp

    ctx = mp.get_context("spawn")
    with ctx.Manager() as manager:
        for round_ in range(3):
            barrier = manager.Barrier(4)
            with ctx.Pool(4) as pool:
                mpids = pool.starmap(
                    _identify_in_process,
                    [
                        (
                            settings.effective_database_url,
                            str(settings.data_dir),
                            creds.workspace_id,
                            f"proc-{round_}",
                            barrier,
                        )
                    ]
                    * 4,
                )
            assert len(set(mpids)) == 1, mpids


def test_identify_survives_a_lost_read_connection(runtime: Runtime, creds: Credentials) -> None:
    """IDSync reads run on a connection kept per thread (``Database.read_raw``); one that died
    (PostgreSQL restarted, say) is replaced and the read runs again, as the pool's pre-ping
    would have done."""
    svc, ws = _svc(runtime), creds.workspace_id
    request = IdentityRequest({T.EMAIL: "lost@example.com"})
    mpid = svc.identify(ws, request).mpid
    db = runtime.db
    # a nested read takes a second connection instead of sharing the first's transaction
    inner = db.read_raw(lambda outer: db.read_raw(lambda inner: inner is not outer))
    assert inner is True
    # an error inside a read leaves the connection usable
    with pytest.raises(NotFound):
        svc.search(ws, IdentityRequest({T.EMAIL: "nobody@example.com"}))
    assert svc.identify(ws, request).mpid == mpid
    for reader in list(db._raw_local.idle):  # simulate connections the server dropped
        reader._conn.close()
    assert svc.identify(ws, request).mpid == mpid
    assert svc.search(ws, request).mpid == mpid


def test_identify_now_answers_reads_at_once_and_writes_through_a_pending_write(
    runtime: Runtime, creds: Credentials
) -> None:
    """On a loop: a known user is answered from the read; a new one gets a PendingWrite whose
    callback receives the durable result, and concurrent ones for the same identity converge."""
    svc, ws = _svc(runtime), creds.workspace_id
    known = svc.identify(ws, IdentityRequest({T.CUSTOMER_ID: "known"}))

    async def go() -> tuple[object, list[object]]:
        loop = asyncio.get_running_loop()
        at_once = svc.identify_now(ws, IdentityRequest({T.CUSTOMER_ID: "known"}))
        pendings = [svc.identify_now(ws, IdentityRequest({T.CUSTOMER_ID: "new"})) for _ in range(4)]
        futures: list[asyncio.Future[object]] = []
        for pending in pendings:
            assert isinstance(pending, PendingWrite)
            fut: asyncio.Future[object] = loop.create_future()
            pending.then(fut.set_result)
            futures.append(fut)
        return at_once, list(await asyncio.wait_for(asyncio.gather(*futures), 10))

    at_once, results = asyncio.run(go())
    assert isinstance(at_once, IdentityResult) and at_once.mpid == known.mpid
    assert all(isinstance(r, IdentityResult) for r in results)
    mpids = {r.mpid for r in results if isinstance(r, IdentityResult)}
    assert len(mpids) == 1 and 0 not in mpids
    assert sum(1 for r in results if isinstance(r, IdentityResult) and r.created) == 1
    assert svc.search(ws, IdentityRequest({T.CUSTOMER_ID: "new"})).mpid in mpids
