"""Service limits (events-api.md §5.3) and historical acceptance rules (§2.1)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from opencdp.events import limits
from opencdp.events.limits import (
    HISTORICAL_MIN_AGE_MS,
    LimitReport,
    apply_limits,
    check_historical,
)
from opencdp.events.schema import (
    Batch,
    CustomEventData,
    ScreenViewData,
    decode_batch,
    encode_batch,
)

FIXTURES = Path(__file__).parent / "fixtures"
NOW = 1_800_000_000_000


def dec(doc: Any) -> Batch:
    return decode_batch(json.dumps(doc).encode())


def custom(name: str = "e", attrs: dict[str, Any] | None = None) -> dict[str, Any]:
    data: dict[str, Any] = {"event_name": name, "custom_event_type": "other"}
    if attrs is not None:
        data["custom_attributes"] = attrs
    return {"event_type": "custom_event", "data": data}


def event_data(batch: Batch, index: int = 0) -> CustomEventData:
    data = batch.events[index].data
    assert isinstance(data, CustomEventData)
    return data


def test_constants() -> None:
    assert limits.MAX_REQUEST_BYTES == 256 * 1024
    assert limits.MAX_BATCH_BYTES == 128 * 1024
    assert limits.MAX_BULK_BATCHES == 100


@pytest.mark.parametrize("name", sorted(p.name for p in FIXTURES.glob("*.json")))
@pytest.mark.parametrize("s2s", [True, False])
def test_within_limits_returns_the_same_object(name: str, s2s: bool) -> None:
    batch = decode_batch((FIXTURES / name).read_bytes())
    limited, report = apply_limits(batch, server_to_server=s2s)
    assert limited is batch
    assert not report and report.total == 0 and dict(report.items()) == {}


def test_values_exactly_at_the_limits_are_untouched() -> None:
    attrs = {f"{i:03d}" + "k" * 253: "v" * 4096 for i in range(100)}
    doc = {
        "events": [custom("n" * 256, attrs)],
        "user_attributes": {
            **{f"a{i}": "v" * 4096 for i in range(98)},
            "l" * 256: ["x" * 512] * 1000,
            "empty": [],
        },
        "user_identities": {"email": "e" * 256},
    }
    batch = msgspec.convert(doc, Batch)  # bigger than a request body may be; skip the size gate
    limited, report = apply_limits(batch, server_to_server=True)
    assert limited is batch and not report


# --- Event names ------------------------------------------------------------------------------


def test_long_event_name_is_truncated_for_s2s() -> None:
    batch = dec({"events": [custom("n" * 300), custom("ok")]})
    limited, report = apply_limits(batch, server_to_server=True)
    assert event_data(limited).event_name == "n" * 256
    assert event_data(limited, 1).event_name == "ok"
    assert limited.events[1] is batch.events[1]
    assert report.counts == {"event_name_truncated": 1}
    assert event_data(batch).event_name == "n" * 300  # input untouched


def test_long_event_name_drops_the_event_from_a_client_sdk() -> None:
    batch = dec({"events": [custom("a"), custom("n" * 257), custom("b")]})
    limited, report = apply_limits(batch, server_to_server=False)
    assert [event_data(limited, i).event_name for i in range(2)] == ["a", "b"]
    assert report.counts == {"event_dropped_name_too_long": 1}


def test_long_screen_name_is_truncated() -> None:
    batch = dec({"events": [{"event_type": "screen_view", "data": {"screen_name": "s" * 999}}]})
    limited, report = apply_limits(batch, server_to_server=True)
    data = limited.events[0].data
    assert isinstance(data, ScreenViewData) and data.screen_name == "s" * 256
    assert report.counts == {"event_name_truncated": 1}


# --- Event attributes -------------------------------------------------------------------------


def test_long_attribute_name_is_truncated_for_s2s_first_wins_on_collision() -> None:
    long_a = "k" * 256 + "A"
    long_b = "k" * 256 + "B"
    batch = dec({"events": [custom(attrs={"short": 1, long_a: "first", long_b: "second"})]})
    limited, report = apply_limits(batch, server_to_server=True)
    assert event_data(limited).custom_attributes == {"short": 1, "k" * 256: "first"}
    assert report.counts == {"event_attribute_name_truncated": 2}


def test_long_attribute_name_is_dropped_from_a_client_sdk() -> None:
    batch = dec({"events": [custom(attrs={"short": 1, "k" * 257: "x"})]})
    limited, report = apply_limits(batch, server_to_server=False)
    assert event_data(limited).custom_attributes == {"short": 1}
    assert report.counts == {"event_attribute_name_too_long": 1}


@pytest.mark.parametrize("s2s", [True, False])
def test_long_attribute_value_drops_that_attribute(s2s: bool) -> None:
    batch = dec({"events": [custom(attrs={"big": "v" * 4097, "n": 12345, "ok": "v"})]})
    limited, report = apply_limits(batch, server_to_server=s2s)
    assert event_data(limited).custom_attributes == {"n": 12345, "ok": "v"}
    assert report.counts == {"event_attribute_value_too_long": 1}


@pytest.mark.parametrize("s2s", [True, False])
def test_more_than_100_attributes_keeps_the_first_100(s2s: bool) -> None:
    attrs = {f"a{i}": i for i in range(130)}
    batch = dec({"events": [custom(attrs=attrs)]})
    limited, report = apply_limits(batch, server_to_server=s2s)
    kept = event_data(limited).custom_attributes
    assert kept is not None and list(kept) == [f"a{i}" for i in range(100)]
    assert report.counts == {"event_attributes_over_count": 30}


def test_dropped_attributes_do_not_count_towards_the_100() -> None:
    attrs = {"big": "v" * 5000, **{f"a{i}": i for i in range(100)}}
    limited, report = apply_limits(dec({"events": [custom(attrs=attrs)]}), server_to_server=True)
    kept = event_data(limited).custom_attributes
    assert kept is not None and len(kept) == 100 and "big" not in kept
    assert report.counts == {"event_attribute_value_too_long": 1}


def test_attributes_of_non_custom_events_are_limited_too() -> None:
    doc = {
        "events": [{"event_type": "session_end", "data": {"custom_attributes": {"x": "v" * 5000}}}]
    }
    limited, report = apply_limits(dec(doc), server_to_server=True)
    data = limited.events[0].data
    assert data is not None and data.custom_attributes == {}
    assert report.counts == {"event_attribute_value_too_long": 1}


# --- User attributes --------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name,value,reason",
    [
        ("n" * 257, "v", "user_attribute_name_too_long"),
        ("scalar", "v" * 4097, "user_attribute_value_too_long"),
        ("list", ["x"] * 1001, "user_attribute_list_too_long"),
        ("entry", ["ok", "x" * 513], "user_attribute_list_entry_too_long"),
    ],
)
@pytest.mark.parametrize("s2s", [True, False])
def test_over_limit_user_attribute_is_dropped(
    name: str, value: Any, reason: str, s2s: bool
) -> None:
    batch = dec({"user_attributes": {"keep": 1, name: value, "tag": None}})
    limited, report = apply_limits(batch, server_to_server=s2s)
    assert limited.user_attributes == {"keep": 1, "tag": None}
    assert report.counts == {reason: 1}
    assert batch.user_attributes is not None and name in batch.user_attributes


def test_more_than_100_user_attributes_keeps_the_first_100() -> None:
    batch = dec({"user_attributes": {f"u{i}": i for i in range(150)}})
    limited, report = apply_limits(batch, server_to_server=True)
    assert limited.user_attributes is not None
    assert list(limited.user_attributes) == [f"u{i}" for i in range(100)]
    assert report.counts == {"user_attributes_over_count": 50}


def test_non_string_list_entries_and_numbers_are_not_measured() -> None:
    batch = dec({"user_attributes": {"n": 10**18, "l": [1.5, True, None, 10**18]}})
    limited, report = apply_limits(batch, server_to_server=True)
    assert limited is batch and not report


# --- Identities -------------------------------------------------------------------------------


def test_long_identity_value_is_dropped() -> None:
    batch = dec({"user_identities": {"email": "e" * 257, "customer_id": "c" * 256}})
    limited, report = apply_limits(batch, server_to_server=True)
    assert limited.identities_dict() == {"customer_id": "c" * 256}
    assert report.counts == {"identity_value_too_long": 1}
    assert batch.identities_dict()["email"] == "e" * 257


# --- Combined ---------------------------------------------------------------------------------


def test_everything_at_once_and_report_helpers() -> None:
    doc = {
        "events": [custom("n" * 300, {"k" * 300: 1, "v": "x" * 5000})],
        "user_attributes": {"a": "x" * 5000},
        "user_identities": {"other": "o" * 300},
    }
    limited, report = apply_limits(dec(doc), server_to_server=True)
    assert report.counts == {
        "event_name_truncated": 1,
        "event_attribute_name_truncated": 1,
        "event_attribute_value_too_long": 1,
        "user_attribute_value_too_long": 1,
        "identity_value_too_long": 1,
    }
    assert report.total == 5 and bool(report)
    assert decode_batch(encode_batch(limited)) == limited
    again, second = apply_limits(limited, server_to_server=True)
    assert again is limited and not second
    merged = LimitReport()
    merged.merge(report)
    merged.merge(report)
    assert merged.counts["event_name_truncated"] == 2


# --- Historical endpoint ----------------------------------------------------------------------


def hist(*timestamps: int | None) -> Batch:
    events = []
    for ts in timestamps:
        data: dict[str, Any] = {"event_name": "e"}
        if ts is not None:
            data["timestamp_unixtime_ms"] = ts
        events.append({"event_type": "custom_event", "data": data})
    return dec({"events": events})


def test_historical_accepts_old_events() -> None:
    old = NOW - HISTORICAL_MIN_AGE_MS
    assert check_historical(hist(old, old - 10**9), NOW) is None


@pytest.mark.parametrize(
    "batch,fragment",
    [
        (hist(), "no events"),
        (dec({}), "no events"),
        (dec({"events": None}), "no events"),
        (hist(NOW - 10**10, None), "event 1 has no timestamp_unixtime_ms"),
        (dec({"events": [{"event_type": "session_start"}]}), "event 0 has no timestamp"),
        (hist(NOW - HISTORICAL_MIN_AGE_MS + 1), "event 0 is less than 72 hours old"),
        (hist(NOW - 10**10, NOW), "event 1 is less than 72 hours old"),
        (hist(NOW + 10**6), "less than 72 hours old"),
    ],
)
def test_historical_rejections(batch: Batch, fragment: str) -> None:
    reason = check_historical(batch, NOW)
    assert reason is not None and fragment in reason
