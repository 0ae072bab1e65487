"""The store's conditional upserts implement the model's ordering, on every configured engine."""

from __future__ import annotations

import itertools
import random

import sqlalchemy as sa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencdp.app import Runtime
from opencdp.identity.tables import identity_profiles, identity_values
from opencdp.profiles import store
from opencdp.profiles.model import ValueKind, ValueWrite, merge

A = ValueKind.ATTRIBUTE
_mpids = itertools.count(1)

_write = st.builds(
    lambda name, value, ts, delete: (
        ValueWrite.deletion(A, name, ts) if delete else ValueWrite.of(A, name, value, ts)
    ),
    st.sampled_from(["a", "b", "c"]),
    st.one_of(st.none(), st.text(max_size=3), st.lists(st.text(max_size=2), max_size=2)),
    st.integers(0, 4),  # few timestamps: ties are common
    st.booleans(),
)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(st.lists(_write, min_size=1, max_size=12), st.integers(0, 2**32))
def test_conditional_upserts_equal_the_model_merge_in_any_order(
    runtime: Runtime, writes: list[ValueWrite], seed: int
) -> None:
    mpid = next(_mpids)
    shuffled = list(writes)
    random.Random(seed).shuffle(shuffled)
    for w in shuffled:  # one statement per write: each compares against the stored row
        with runtime.db.write() as tx:
            store.upsert_values(tx, [(1, mpid, w)])
    with runtime.db.read() as conn:
        stored = {(w.kind, w.name): w for w in store.registers(conn, 1, mpid)}
    assert stored == merge({}, writes)


def test_heads_widen_and_profiles_are_deleted_with_their_values(runtime: Runtime) -> None:
    with runtime.db.write() as tx:
        store.upsert_heads(tx, [store.Head(1, 5, created_ms=100, last_stored_ms=100)])
        store.upsert_heads(tx, [store.Head(1, 5, created_ms=50, last_stored_ms=300)])
        store.upsert_heads(tx, [store.Head(1, 5, created_ms=70, last_stored_ms=200)])
        store.upsert_heads(tx, [store.Head(1, 6, 10, 10), store.Head(2, 6, 10, 10)])
        store.upsert_values(tx, [(1, 5, ValueWrite.of(A, "x", "1", 1))])
        store.upsert_values(tx, [(1, 6, ValueWrite.of(A, "x", "1", 1))])
        store.upsert_values(tx, [(2, 6, ValueWrite.of(A, "x", "1", 1))])
    with runtime.db.read() as conn:
        assert store.head(conn, 1, 5) == store.Head(1, 5, 50, 300)
    with runtime.db.write() as tx:
        assert store.delete_profiles(tx, 1, [6, 6, 404]) == 1
    with runtime.db.read() as conn:
        assert store.head(conn, 1, 6) is None
        assert store.registers(conn, 1, 6) == []
        assert len(store.registers(conn, 1, 5)) == 1
        assert store.head(conn, 2, 6) is not None  # other workspace untouched
        assert len(store.registers(conn, 2, 6)) == 1


def test_lookup_reads_identity_record_identities_head_and_live_values_in_one_statement(
    runtime: Runtime,
) -> None:
    with runtime.db.write() as tx:
        for ws in (1, 2):
            tx.execute(
                sa.insert(identity_profiles),
                {"mpid": 10 + ws, "workspace_id": ws, "created_ms": 5, "last_seen_ms": 9},
            )
        tx.execute(
            sa.insert(identity_values),
            [
                {"workspace_id": 1, "identity_type": "email", "value": "a@x", "mpid": 11},
                {"workspace_id": 1, "identity_type": "customer_id", "value": "c1", "mpid": 11},
                {"workspace_id": 2, "identity_type": "email", "value": "b@x", "mpid": 12},
            ],
        )
        store.upsert_heads(tx, [store.Head(1, 11, created_ms=6, last_stored_ms=8)])
        store.upsert_values(
            tx,
            [
                (1, 11, ValueWrite.of(A, "plan", "pro", 1)),
                (1, 11, ValueWrite.deletion(A, "gone", 1)),
                (2, 12, ValueWrite.of(A, "orphan", "1", 1)),  # no head in workspace 2
            ],
        )
    found = runtime.db.read_raw(lambda r: store.lookup(r, 1, 11))
    assert found is not None
    assert (found.mpid, found.created_ms, found.last_seen_ms, found.last_stored_ms) == (
        11,
        5,
        9,
        8,
    )
    assert sorted(found.identities) == [("customer_id", "c1"), ("email", "a@x")]
    assert found.values == [("attr", "plan", '"pro"')]  # tombstones are not read
    other = runtime.db.read_raw(lambda r: store.lookup(r, 2, 12))
    assert other is not None and other.last_stored_ms is None and other.values == []
    assert runtime.db.read_raw(lambda r: store.lookup(r, 2, 11)) is None  # other workspace
    assert runtime.db.read_raw(lambda r: store.lookup(r, 1, 404)) is None
    assert runtime.db.read_raw(lambda r: store.holders(r, 1, "email", "a@x")) == [11]
    assert runtime.db.read_raw(lambda r: store.holders(r, 2, "email", "a@x")) == []
