"""Pure profile rules: value formatting, what a batch changes, ordering and merging."""

from __future__ import annotations

import itertools
import json
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from opencdp.core.errors import BadRequest
from opencdp.events.limits import (
    MAX_ATTRIBUTE_VALUE_LENGTH,
    MAX_USER_ATTRIBUTE_LIST_ENTRIES,
    MAX_USER_ATTRIBUTES,
)
from opencdp.events.schema import decode_batch
from opencdp.profiles.model import (
    TOMBSTONE_TIEBREAK,
    ProfileField,
    ProfileUpdate,
    Section,
    ValueKind,
    ValueWrite,
    batch_time,
    format_scalar,
    format_value,
    lifetime_days,
    merge,
    parse_fields,
    registers_view,
    update_from_batch,
)

A = ValueKind.ATTRIBUTE
RECEIVED = 1_700_000_000_000


def _update(doc: dict[str, Any], received_ms: int = RECEIVED) -> ProfileUpdate:
    return update_from_batch(
        decode_batch(json.dumps(doc).encode()), workspace_id=1, mpid=7, received_ms=received_ms
    )


def _values(update: ProfileUpdate) -> dict[tuple[ValueKind, str], ValueWrite]:
    return {(w.kind, w.name): w for w in update.values}


def _attrs(update: ProfileUpdate) -> dict[str, Any]:
    rows = [(w.kind, w.name, w.encoded) for w in update.values]
    return registers_view(rows)[0]


# --- formatting -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "text"),
    [
        (42, "42"),
        (-7, "-7"),
        (19.5, "19.5"),
        (5.0, "5"),
        (-0.0, "0"),
        (0.1, "0.1"),
        (1e16, "10000000000000000"),
        (1.2345678901234568e20, "123456789012345680000"),
        (1e21, "1e+21"),
        (1.5e300, "1.5e+300"),
        (0.000001, "0.000001"),
        (1e-7, "1e-7"),
        (-2.5e-8, "-2.5e-8"),
        (True, "true"),
        (False, "false"),
        ("x", "x"),
        (2**63 - 1, "9223372036854775807"),
    ],
)
def test_scalars_are_formatted_as_javascript_prints_them(value: Any, text: str) -> None:
    assert format_scalar(value) == text


def test_values_keep_their_shape_lists_become_string_lists_and_null_is_a_tag() -> None:
    assert format_value(None) is None
    assert format_value([1, 2.5, True, "a", None]) == ["1", "2.5", "true", "a"]
    assert format_value([]) == []
    assert format_value(3) == "3"


# --- what a batch changes ---------------------------------------------------------------------


def test_batch_attributes_of_every_type_are_written_at_the_batch_time() -> None:
    update = _update(
        {
            "timestamp_unixtime_ms": RECEIVED - 500,
            "user_attributes": {
                "s": "v",
                "n": 42,
                "f": 19.5,
                "b": True,
                "l": ["x", 1],
                "tag": None,
            },
        }
    )
    assert _attrs(update) == {
        "b": "true",
        "f": "19.5",
        "l": ["x", "1"],
        "n": "42",
        "s": "v",
        "tag": None,
    }
    assert {w.ts_ms for w in update.values} == {RECEIVED - 500}


def test_batch_time_prefers_the_batch_then_the_latest_event_and_never_passes_receipt() -> None:
    def t(doc: dict[str, Any]) -> int:
        return batch_time(decode_batch(json.dumps(doc).encode()), RECEIVED)

    ev = {"event_type": "custom_event", "data": {"event_name": "e"}}
    timed = [
        {"event_type": "custom_event", "data": {"timestamp_unixtime_ms": RECEIVED - 9}},
        {"event_type": "custom_event", "data": {"timestamp_unixtime_ms": RECEIVED - 3}},
    ]
    assert t({"timestamp_unixtime_ms": RECEIVED - 1, "events": timed}) == RECEIVED - 1
    assert t({"events": timed}) == RECEIVED - 3
    assert t({"events": [ev]}) == RECEIVED
    assert t({"timestamp_unixtime_ms": RECEIVED + 10**9}) == RECEIVED  # clock in the future


def test_deletions_attribute_change_events_and_opt_out() -> None:
    update = _update(
        {
            "timestamp_unixtime_ms": RECEIVED - 100,
            "user_attributes": {"keep": 1},
            "deleted_user_attributes": ["gone"],
            "events": [
                {
                    "event_type": "user_attribute_change",
                    "data": {
                        "timestamp_unixtime_ms": RECEIVED - 300,
                        "user_attribute_name": "fav",
                        "new": ["Alps", "Jura"],
                        "old": None,
                        "deleted": False,
                    },
                },
                {
                    "event_type": "user_attribute_change",
                    "data": {
                        "timestamp_unixtime_ms": RECEIVED - 200,
                        "user_attribute_name": "old",
                        "new": None,
                        "old": "x",
                        "deleted": True,
                    },
                },
                {
                    "event_type": "opt_out",
                    "data": {"timestamp_unixtime_ms": RECEIVED - 250, "is_opted_out": True},
                },
            ],
        }
    )
    v = _values(update)
    assert v[(A, "fav")].encoded == '["Alps","Jura"]' and v[(A, "fav")].ts_ms == RECEIVED - 300
    assert v[(A, "old")].deleted and v[(A, "old")].ts_ms == RECEIVED - 200
    assert v[(A, "gone")].deleted and v[(A, "gone")].tiebreak == TOMBSTONE_TIEBREAK
    assert v[(A, "keep")].encoded == '"1"'
    opt = v[(ValueKind.FIELD, ProfileField.IS_OPTED_OUT)]
    assert opt.encoded == "true" and opt.ts_ms == RECEIVED - 250


def test_within_one_batch_later_positions_win_ties() -> None:
    same = RECEIVED - 10
    update = _update(
        {
            "timestamp_unixtime_ms": same,
            "user_attributes": {"x": "snapshot", "y": "set"},
            "deleted_user_attributes": ["y"],
            "events": [
                {
                    "event_type": "user_attribute_change",
                    "data": {
                        "timestamp_unixtime_ms": same,
                        "user_attribute_name": "x",
                        "new": "ev",
                    },
                }
            ],
        }
    )
    v = _values(update)
    assert v[(A, "x")].encoded == '"snapshot"'
    assert v[(A, "y")].deleted


def test_device_flags_and_attribution_are_taken_from_the_batch() -> None:
    update = _update(
        {
            "user_identities": {"customerid": "c-1", "email": "a@example.com"},
            "device_info": {"ios_idfv": "IDFV", "limit_ad_tracking": True},
            "mp_deviceid": "das-1",
            "attribution_info": {"publisher": "pub", "campaign": None},
        }
    )
    v = _values(update)
    assert v[(ValueKind.FIELD, ProfileField.LIMIT_AD_TRACKING)].encoded == "true"
    assert v[(ValueKind.FIELD, ProfileField.ATTRIBUTION)].encoded == '{"publisher":"pub"}'
    assert set(v) == {
        (ValueKind.FIELD, ProfileField.LIMIT_AD_TRACKING),
        (ValueKind.FIELD, ProfileField.ATTRIBUTION),
    }  # identities belong to the identity graph, not to the profile's registers


def test_attribute_change_events_over_a_limit_are_dropped_and_counted() -> None:
    def change(name: str, new: Any) -> dict[str, Any]:
        return {
            "event_type": "user_attribute_change",
            "data": {"user_attribute_name": name, "new": new},
        }

    update = _update(
        {
            "events": [
                change("n" * 257, "v"),
                change("long", "v" * (MAX_ATTRIBUTE_VALUE_LENGTH + 1)),
                change("list", ["a"] * (MAX_USER_ATTRIBUTE_LIST_ENTRIES + 1)),
                change("entry", ["e" * 513]),
                change("ok", "fine"),
            ]
        }
    )
    assert _attrs(update) == {"ok": "fine"}
    assert update.limits == {
        "user_attribute_name_too_long": 1,
        "user_attribute_value_too_long": 1,
        "user_attribute_list_too_long": 1,
        "user_attribute_list_entry_too_long": 1,
    }


def test_a_batch_sets_at_most_the_documented_number_of_attributes() -> None:
    snapshot = {f"s{i}": i for i in range(MAX_USER_ATTRIBUTES - 1)}
    events = [
        {"event_type": "user_attribute_change", "data": {"user_attribute_name": n, "new": 1}}
        for n in ("s0", "extra1", "extra2")  # s0 is already counted; extra1 fits; extra2 not
    ]
    update = _update({"user_attributes": snapshot, "events": events})
    names = set(_attrs(update))
    assert len(names) == MAX_USER_ATTRIBUTES
    assert "extra1" in names and "extra2" not in names
    assert update.limits == {"user_attributes_over_count": 1}


# --- ordering and merging ---------------------------------------------------------------------


def test_newer_timestamp_wins_and_a_tombstone_wins_a_tie() -> None:
    w1 = ValueWrite.of(A, "x", "one", 100)
    w2 = ValueWrite.of(A, "x", "two", 200)
    gone = ValueWrite.deletion(A, "x", 200)
    assert merge({}, [w2, w1])[(A, "x")] == w2
    assert merge({}, [w1, w2])[(A, "x")] == w2
    assert merge({}, [w2, gone])[(A, "x")] == gone
    assert merge({}, [gone, w2])[(A, "x")] == gone
    assert merge({}, [gone, ValueWrite.of(A, "x", "late", 150)])[(A, "x")] == gone


_names = st.sampled_from(["a", "b", "c", "$city"])
_values_st = st.one_of(
    st.none(),
    st.text(max_size=3),
    st.integers(-5, 5),
    st.booleans(),
    st.lists(st.text(max_size=2), max_size=3),
)


@st.composite
def _batches(draw: st.DrawFn) -> list[dict[str, Any]]:
    out = []
    for _ in range(draw(st.integers(1, 6))):
        doc: dict[str, Any] = {
            "timestamp_unixtime_ms": RECEIVED - draw(st.integers(0, 5)) * 1000,
            "user_attributes": draw(st.dictionaries(_names, _values_st, max_size=4)),
        }
        deleted = draw(st.lists(_names, max_size=2))
        if deleted:
            doc["deleted_user_attributes"] = deleted
        out.append(doc)
    return out


@given(_batches(), st.randoms(use_true_random=False))
def test_any_delivery_order_ends_in_the_same_state(batches: list[dict[str, Any]], rnd: Any) -> None:
    updates = [_update(doc) for doc in batches]
    reference: dict[tuple[ValueKind, str], ValueWrite] = {}
    for u in updates:
        reference = merge(reference, u.values)
    shuffled = list(updates)
    rnd.shuffle(shuffled)
    state: dict[tuple[ValueKind, str], ValueWrite] = {}
    for u in shuffled:
        state = merge(state, u.values)
        state = merge(state, u.values)  # replays change nothing
    assert state == reference
    # every register holds the newest write for it, and older batches never overwrite it
    for key, winner in state.items():
        writes = [w for u in updates for w in u.values if (w.kind, w.name) == key]
        assert winner.order == max(w.order for w in writes)


def test_a_snapshot_with_fewer_attributes_removes_nothing() -> None:
    full = _update({"timestamp_unixtime_ms": RECEIVED - 2000, "user_attributes": {"a": 1, "b": 2}})
    partial = _update({"timestamp_unixtime_ms": RECEIVED - 1000, "user_attributes": {"a": 3}})
    for order in itertools.permutations([full, partial]):
        state: dict[tuple[ValueKind, str], ValueWrite] = {}
        for u in order:
            state = merge(state, u.values)
        rows = [(w.kind, w.name, w.encoded) for w in state.values()]
        assert registers_view(rows)[0] == {"a": "3", "b": "2"}


# --- fields and lifetime ----------------------------------------------------------------------


def test_fields_parameter() -> None:
    assert parse_fields(None) == frozenset()
    assert parse_fields("") == frozenset()
    assert parse_fields(" user_attributes , device_identities,") == {
        Section.USER_ATTRIBUTES,
        Section.DEVICE_IDENTITIES,
    }
    with pytest.raises(BadRequest, match="unknown field 'bogus'"):
        parse_fields("user_attributes,bogus")


def test_workspace_lifetime_override() -> None:
    assert lifetime_days({}, 30) == 30
    assert lifetime_days({"profile_lifetime_days": 90}, 30) == 90
    for bad in (0, -1, "90", True, None):
        assert lifetime_days({"profile_lifetime_days": bad}, 30) == 30
