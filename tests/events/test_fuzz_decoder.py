"""Property tests: whatever arrives, the decoder returns or raises BadRequest, nothing else;
and anything it accepts survives an encode/decode round trip unchanged."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencdp.core.errors import BadRequest
from opencdp.events.schema import (
    IDENTITY_ALIASES,
    USER_IDENTITY_TYPES,
    Batch,
    decode_batch,
    decode_bulk,
    encode_batch,
)

FUZZ = settings(
    max_examples=300,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FIXTURES = Path(__file__).parent / "fixtures"
WEB_BATCH: dict[str, Any] = json.loads((FIXTURES / "web_sdk_batch.json").read_text())

INT64 = st.integers(min_value=-(2**63), max_value=2**63 - 1)
FLOATS = st.floats(allow_nan=False, allow_infinity=False)
SCALARS = st.none() | st.booleans() | INT64 | FLOATS | st.text(max_size=20)

# Arbitrary JSON, including integers far outside int64.
JSON = st.recursive(
    st.none() | st.booleans() | st.integers() | FLOATS | st.text(max_size=10),
    lambda children: (
        st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=8), children, max_size=4)
    ),
    max_leaves=25,
)

FIELD_NAMES = [
    *Batch.__struct_fields__,
    "event_type",
    "data",
    "timestamp_unixtime_ms",
    "custom_attributes",
    "event_name",
    "custom_event_type",
    "product_action",
    "action",
    "products",
    "customer_id",
    "customerid",
]
EVENT_TYPES = [
    "custom_event",
    "commerce_event",
    "session_start",
    "session_end",
    "screen_view",
    "crash_report",
    "user_identity_change",
    "user_attribute_change",
    "push_registration",
    "breadcrumb",
    "bogus",
]


def must_return_or_bad_request(body: bytes) -> None:
    try:
        decode_batch(body)
    except BadRequest as exc:
        assert isinstance(exc.message, str) and exc.message
    try:
        out = decode_bulk(body)
    except BadRequest as exc:
        assert exc.message
    else:
        assert all(isinstance(item, Batch | BadRequest) for item in out)


# --- Arbitrary input --------------------------------------------------------------------------


@FUZZ
@given(JSON)
def test_random_json_values(value: Any) -> None:
    must_return_or_bad_request(json.dumps(value).encode())


@FUZZ
@given(st.dictionaries(st.sampled_from(FIELD_NAMES), JSON, max_size=6))
def test_random_values_under_known_top_level_keys(doc: dict[str, Any]) -> None:
    must_return_or_bad_request(json.dumps(doc).encode())


@FUZZ
@given(
    st.lists(
        st.fixed_dictionaries(
            {"event_type": st.sampled_from(EVENT_TYPES)},
            optional={"data": st.dictionaries(st.sampled_from(FIELD_NAMES), JSON, max_size=5)},
        ),
        max_size=4,
    )
)
def test_random_event_data(events: list[dict[str, Any]]) -> None:
    must_return_or_bad_request(json.dumps({"events": events}).encode())


@FUZZ
@given(st.binary(max_size=200))
def test_random_bytes(body: bytes) -> None:
    must_return_or_bad_request(body)


@FUZZ
@given(st.binary(min_size=1, max_size=20))
def test_random_bytes_inside_a_json_string(junk: bytes) -> None:
    for template in (b'{"ip":"%s"}', b'{"unknown":"%s"}', b'[{"ip":"%s"}]'):
        must_return_or_bad_request(template.replace(b"%s", junk.replace(b'"', b"")))


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> list[tuple[Any, ...]]:
    found = [prefix] if prefix else []
    if isinstance(value, dict):
        for k, v in value.items():
            found += _paths(v, (*prefix, k))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            found += _paths(v, (*prefix, i))
    return found


WEB_PATHS = _paths(WEB_BATCH)


def _replace(doc: Any, path: tuple[Any, ...], new: Any) -> Any:
    if not path:
        return new
    head, rest = path[0], path[1:]
    if isinstance(doc, dict):
        return {**doc, head: _replace(doc[head], rest, new)}
    copy = list(doc)
    copy[head] = _replace(doc[head], rest, new)
    return copy


@FUZZ
@given(st.sampled_from(WEB_PATHS), JSON)
def test_wrong_types_at_known_field_paths(path: tuple[Any, ...], value: Any) -> None:
    must_return_or_bad_request(json.dumps(_replace(WEB_BATCH, path, value)).encode())


# --- Pathological input -----------------------------------------------------------------------

DEEP = 10_000


@pytest.mark.parametrize(
    "body",
    [
        b"[" * DEEP + b"]" * DEEP,
        b"{" + b'"a":{' * DEEP + b"}" * DEEP,
        b'{"unknown":' + b"[" * DEEP + b"]" * DEEP + b"}",
        b'{"events":[{"event_type":"custom_event","data":{"custom_flags":{"f":'
        + b"[" * DEEP
        + b"]" * DEEP
        + b"}}}]}",
        b'{"user_attributes":{"a":' + b"[" * DEEP + b"]" * DEEP + b"}}",
        b"[" + b"[" * DEEP + b"]" * DEEP + b"]",
        b"[" * DEEP,
    ],
)
def test_deep_nesting(body: bytes) -> None:
    must_return_or_bad_request(body)
    with pytest.raises(BadRequest):
        decode_batch(body)


@pytest.mark.parametrize(
    "body",
    [
        b"\xff\xfe{}",
        b'{"ip":"\xc3\x28"}',
        b'{"unknown":"\xed\xa0\x80"}',
        b'[{"ip":"\xf8\x88\x80\x80\x80"}]',
        b'{"ip":"\\ud800"}',
    ],
)
def test_invalid_utf8(body: bytes) -> None:
    must_return_or_bad_request(body)


@pytest.mark.parametrize(
    "body",
    [
        b'{"ip":"\xc3\x28"}',
        b'{"unknown":"\xed\xa0\x80"}',
    ],
)
def test_invalid_utf8_anywhere_is_rejected(body: bytes) -> None:
    with pytest.raises(BadRequest, match="UTF-8"):
        decode_batch(body)


@pytest.mark.parametrize(
    "field",
    [
        b'"mpid"',
        b'"timestamp_unixtime_ms"',
        b'"schema_version"',
        b'"user_attributes":{"a"',
        b'"partner_identities":{"a"',
        b'"user_identities":{"email"',
    ],
)
@pytest.mark.parametrize("number", [b"1" * 40, b"-" + b"9" * 40, b"1e400", b"-1e999"])
def test_huge_numbers_at_typed_fields(field: bytes, number: bytes) -> None:
    closing = b"}" * field.count(b"{")
    with pytest.raises(BadRequest):
        decode_batch(b"{" + field + b":" + number + closing + b"}")


@FUZZ
@given(st.integers(min_value=2**63) | st.integers(max_value=-(2**63) - 1))
def test_integers_beyond_int64_in_event_data(n: int) -> None:
    body = json.dumps({"events": [{"event_type": "custom_event", "data": {"event_num": n}}]})
    with pytest.raises(BadRequest):
        decode_batch(body.encode())


def test_huge_strings() -> None:
    big = "x" * 200_000
    batch = decode_batch(json.dumps({"ip": big}).encode())
    assert batch.ip == big
    must_return_or_bad_request(json.dumps({"ip": "x" * 300_000}).encode())
    must_return_or_bad_request(json.dumps([{"ip": big[:140_000]}]).encode())


# --- Round trip -------------------------------------------------------------------------------

ATTRS = st.dictionaries(st.text(max_size=12), SCALARS, max_size=5)
COMMON = {
    "timestamp_unixtime_ms": INT64,
    "custom_attributes": ATTRS,
    "session_uuid": st.text(max_size=10),
    "location": st.fixed_dictionaries({"latitude": FLOATS, "longitude": FLOATS}),
}


def _data(required: dict[str, Any] | None = None, **extra: Any) -> Any:
    return st.fixed_dictionaries(required or {}, optional={**COMMON, **extra})


EVENTS = st.one_of(
    st.fixed_dictionaries(
        {"event_type": st.just("custom_event")},
        optional={
            "data": _data(
                event_name=st.text(max_size=30),
                custom_event_type=st.sampled_from(["navigation", "other", "unknown", "media"]),
                custom_flags=st.dictionaries(st.text(max_size=5), JSON, max_size=3),
            )
        },
    ),
    st.fixed_dictionaries(
        {
            "event_type": st.just("commerce_event"),
            "data": _data(
                product_action=st.fixed_dictionaries(
                    {"action": st.sampled_from(["purchase", "refund", "add_to_cart"])},
                    optional={
                        "total_amount": FLOATS,
                        "products": st.lists(
                            st.fixed_dictionaries(
                                {}, optional={"id": st.text(max_size=5), "price": FLOATS}
                            ),
                            max_size=3,
                        ),
                    },
                ),
                message=st.text(max_size=10),
            ),
        }
    ),
    st.fixed_dictionaries(
        {"event_type": st.sampled_from(["session_start", "first_run", "uninstall"])},
        optional={"data": _data() | st.none()},
    ),
    st.fixed_dictionaries(
        {"event_type": st.just("screen_view"), "data": _data(screen_name=st.text(max_size=20))}
    ),
    st.fixed_dictionaries(
        {
            "event_type": st.just("user_attribute_change"),
            "data": _data(
                {"user_attribute_name": st.text(max_size=10)},
                new=SCALARS | st.lists(SCALARS, max_size=3),
                old=SCALARS,
            ),
        }
    ),
    st.fixed_dictionaries(
        {
            "event_type": st.just("user_identity_change"),
            "data": _data(
                new=st.fixed_dictionaries(
                    {"identity_type": st.sampled_from(USER_IDENTITY_TYPES)},
                    optional={"identity": SCALARS},
                )
            ),
        }
    ),
)
IDENTITY_NAMES = st.sampled_from([*USER_IDENTITY_TYPES, *IDENTITY_ALIASES, "not_an_identity"])
BATCHES = st.fixed_dictionaries(
    {},
    optional={
        "events": st.lists(EVENTS, max_size=5) | st.none(),
        "environment": st.sampled_from(["production", "development", "unknown", None]),
        "mpid": INT64 | INT64.map(str) | st.none(),
        "user_identities": st.dictionaries(IDENTITY_NAMES, SCALARS, max_size=5),
        "user_attributes": st.dictionaries(
            st.text(max_size=10), SCALARS | st.lists(SCALARS, max_size=3), max_size=5
        ),
        "deleted_user_attributes": st.lists(st.text(max_size=5), max_size=3),
        "device_info": st.fixed_dictionaries(
            {},
            optional={
                "ios_idfv": st.text(max_size=8),
                "screen_width": INT64,
                "timezone_offset": FLOATS,
                "is_tablet": st.booleans() | st.none(),
            },
        ),
        "mp_deviceid": st.text(max_size=8),
        "source_request_id": st.text(max_size=8),
        "batch_context": st.just({"data_plan": {"plan_id": "p"}}),
        "ip": st.text(max_size=8),
    },
)


@FUZZ
@given(BATCHES)
def test_round_trip(doc: dict[str, Any]) -> None:
    batch = decode_batch(json.dumps(doc).encode())
    again = decode_batch(encode_batch(batch))
    assert again == batch
    assert encode_batch(again) == encode_batch(batch)
    assert all(type(v) is str for v in batch.identities_dict().values())
    assert batch.mpid is None or type(batch.mpid) is int


@FUZZ
@given(st.lists(BATCHES, max_size=4))
def test_bulk_decodes_each_like_single(docs: list[dict[str, Any]]) -> None:
    out = decode_bulk(json.dumps(docs).encode())
    assert out == [decode_batch(json.dumps(d).encode()) for d in docs]
