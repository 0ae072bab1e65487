"""Profiles built by the pipeline from real Events API batches, read back over the Profile API.

Every test runs on each configured store (SQLite always, PostgreSQL when configured) with a
frozen clock, so lifetimes and out-of-order deliveries are exact.
"""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencdp.core.clock import FrozenClock
from opencdp.core.config import Settings
from opencdp.events.limits import MAX_ATTRIBUTE_VALUE_LENGTH, MAX_USER_ATTRIBUTES
from opencdp.events.schema import decode_batch
from opencdp.profiles import store
from opencdp.profiles.model import ValueKind, ValueWrite, merge, registers_view, update_from_batch
from tests.conftest import App
from tests.profiles.helpers import DAY, T0, frozen_app, get_profile, send

_mpids = itertools.count(1001)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def papp(settings: Settings, clock: FrozenClock) -> Iterator[App]:
    with frozen_app(settings, clock) as app:
        yield app


def _batch(mpid: int, ts: int, **fields: Any) -> dict[str, Any]:
    return {"mpid": mpid, "timestamp_unixtime_ms": ts, "environment": "production", **fields}


def test_attributes_merge_and_a_smaller_snapshot_removes_nothing(papp: App) -> None:
    send(papp, _batch(1, T0 - 2000, user_attributes={"a": "1", "b": 2, "c": True}))
    send(papp, _batch(1, T0 - 1000, user_attributes={"a": "new"}))
    status, doc = get_profile(papp, 1)
    assert status == 200
    assert doc["user_attributes"] == {"a": "new", "b": "2", "c": "true"}


def test_an_older_batch_never_overwrites_a_newer_value(papp: App) -> None:
    send(papp, _batch(2, T0 - 1000, user_attributes={"plan": "pro"}))
    send(papp, _batch(2, T0 - 5000, user_attributes={"plan": "free", "first": "yes"}))
    assert get_profile(papp, 2)[1]["user_attributes"] == {"first": "yes", "plan": "pro"}


def test_deletions_are_tombstones_that_older_data_cannot_resurrect(papp: App) -> None:
    send(papp, _batch(3, T0 - 3000, user_attributes={"x": 1, "y": 1}))
    send(papp, _batch(3, T0 - 1000, deleted_user_attributes=["x"]))
    send(papp, _batch(3, T0 - 2000, user_attributes={"x": 2}))  # older than the deletion
    assert get_profile(papp, 3)[1]["user_attributes"] == {"y": "1"}
    send(papp, _batch(3, T0 - 500, user_attributes={"x": 3}))  # newer: sets it again
    assert get_profile(papp, 3)[1]["user_attributes"] == {"x": "3", "y": "1"}


def test_attribute_change_and_opt_out_events(papp: App) -> None:
    def uac(name: str, new: Any, ts: int, deleted: bool = False) -> dict[str, Any]:
        return {
            "event_type": "user_attribute_change",
            "data": {
                "timestamp_unixtime_ms": ts,
                "user_attribute_name": name,
                "new": new,
                "old": None,
                "deleted": deleted,
                "is_new_attribute": True,
            },
        }

    def opt(value: bool, ts: int) -> dict[str, Any]:
        return {
            "event_type": "opt_out",
            "data": {"timestamp_unixtime_ms": ts, "is_opted_out": value},
        }

    send(
        papp,
        {
            "mpid": 4,
            "events": [uac("fav", ["Alps", "Jura"], T0 - 900), uac("tag", None, T0 - 900)],
        },
    )
    send(
        papp, {"mpid": 4, "events": [uac("fav", None, T0 - 800, deleted=True), opt(True, T0 - 800)]}
    )
    send(papp, {"mpid": 4, "events": [opt(False, T0 - 850)]})  # late, older opt-in loses
    status, doc = get_profile(papp, 4)
    assert status == 200
    assert doc["user_attributes"] == {"tag": None}
    assert doc["is_opted_out"] is True


def test_profile_times_and_flags(papp: App, clock: FrozenClock) -> None:
    send(papp, _batch(5, T0 - 10, device_info={"limit_ad_tracking": True}))
    _, first = get_profile(papp, 5, fields=None)
    clock.advance(60_000)
    send(papp, _batch(5, T0 + 50_000, user_attributes={"k": "v"}))
    _, second = get_profile(papp, 5, fields=None)
    assert first["last_stored_timestamp_ms"] == T0
    assert second["last_stored_timestamp_ms"] == T0 + 60_000
    assert second["created_timestamp_ms"] == first["created_timestamp_ms"] <= T0
    assert second["limit_ad_tracking"] is True
    assert second["is_opted_out"] is False


def test_ingestion_limits_apply_and_are_not_applied_twice(papp: App) -> None:
    attrs: dict[str, Any] = {f"a{i:03d}": i for i in range(MAX_USER_ATTRIBUTES + 5)}
    attrs["a000"] = "v" * (MAX_ATTRIBUTE_VALUE_LENGTH + 1)  # dropped, the next ones move up
    send(papp, _batch(6, T0, user_attributes=attrs))
    stored = get_profile(papp, 6)[1]["user_attributes"]
    assert len(stored) == MAX_USER_ATTRIBUTES
    assert "a000" not in stored and "a100" in stored and "a101" not in stored


def test_identities_a_batch_naming_its_mpid_carries_are_shown(papp: App) -> None:
    send(
        papp,
        _batch(
            13,
            T0,
            user_identities={"customerid": "c-13", "email": "ana@example.com"},
            device_info={"ios_idfv": "IDFV-13"},
        ),
    )
    doc = get_profile(papp, 13, fields="user_identities,device_identities")[1]
    assert doc["user_identities"] == [
        {"type": "customer_id", "encoding": "none", "value": "c-13"},
        {"type": "email", "encoding": "none", "value": "ana@example.com"},
    ]
    assert doc["device_identities"] == [
        {"type": "ios_vendor_id", "encoding": "none", "value": "IDFV-13"}
    ]


def test_batches_without_a_profile_are_skipped(papp: App) -> None:
    send(papp, {"events": [], "user_attributes": {"a": 1}})  # no mpid, no identities
    with papp.runtime.db.read() as conn:
        assert store.count_profiles(conn) == 0


def test_historical_backfill_merges_under_the_same_ordering(papp: App) -> None:
    old = T0 - 100 * DAY
    event = {
        "event_type": "custom_event",
        "data": {"event_name": "e", "timestamp_unixtime_ms": old},
    }
    send(papp, _batch(11, T0 - 10, user_attributes={"plan": "pro"}))
    backfill = [
        _batch(11, old, user_attributes={"plan": "free", "since": "2020"}, events=[event]),
        _batch(12, old, user_attributes={"plan": "free"}, events=[event]),
    ]
    send(papp, backfill, path="/v2/bulkevents/historical")
    assert get_profile(papp, 11)[1]["user_attributes"] == {"plan": "pro", "since": "2020"}
    assert get_profile(papp, 12)[1]["user_attributes"] == {"plan": "free"}


# --- shuffled deliveries through the whole pipeline --------------------------------------------

_names = st.sampled_from(["a", "b", "c"])
_value = st.one_of(st.none(), st.integers(0, 3), st.booleans(), st.lists(st.sampled_from("xy")))


@st.composite
def _history(draw: st.DrawFn) -> list[dict[str, Any]]:
    docs = []
    for _ in range(draw(st.integers(2, 5))):
        doc: dict[str, Any] = {
            "timestamp_unixtime_ms": T0 - draw(st.integers(1, 4)) * 1000,
            "user_attributes": draw(st.dictionaries(_names, _value, max_size=3)),
        }
        deleted = draw(st.lists(_names, max_size=1))
        if deleted:
            doc["deleted_user_attributes"] = deleted
        docs.append(doc)
    return docs


@settings(
    max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(_history(), st.integers(0, 2**32))
def test_shuffled_deliveries_end_in_the_newest_state(
    papp: App, docs: list[dict[str, Any]], seed: int
) -> None:
    mpid = next(_mpids)
    expected: dict[tuple[ValueKind, str], ValueWrite] = {}
    for doc in docs:
        batch = decode_batch(json.dumps(doc).encode())
        update = update_from_batch(batch, workspace_id=1, mpid=mpid, received_ms=T0)
        expected = merge(expected, update.values)
    delivery = [dict(doc, mpid=mpid) for doc in docs]
    random.Random(seed).shuffle(delivery)
    for doc in delivery:
        send(papp, doc)
    rows = [(w.kind, w.name, w.encoded) for w in expected.values()]
    status, doc = get_profile(papp, mpid)
    assert status == 200
    assert doc["user_attributes"] == registers_view(rows)[0]
