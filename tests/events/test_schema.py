"""Decoding the event batch: every event type, every tolerance rule, every error path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import msgspec
import pytest

from opencdp.core.errors import BadRequest, PayloadTooLarge
from opencdp.events import schema as s
from opencdp.events.schema import (
    IDENTITY_ALIASES,
    MAX_BATCH_BYTES,
    MAX_BULK_BATCHES,
    MAX_REQUEST_BYTES,
    Batch,
    decode_batch,
    decode_bulk,
    encode_batch,
    split_bulk,
)

FIXTURES = Path(__file__).parent / "fixtures"
ALL_FIXTURES = sorted(p.name for p in FIXTURES.glob("*.json"))
MISSING_EVENT_TYPE = 'Required event field "event_type" is missing or empty.'


def load(name: str) -> dict[str, Any]:
    doc: dict[str, Any] = json.loads((FIXTURES / name).read_text())
    return doc


def dec(doc: Any) -> Batch:
    return decode_batch(json.dumps(doc).encode())


def bad(doc: Any) -> str:
    with pytest.raises(BadRequest) as info:
        dec(doc)
    return info.value.message


def one_event(event_type: str, data: dict[str, Any] | None) -> dict[str, Any]:
    return {"events": [{"event_type": event_type, "data": data}]}


# --- Every event type from a realistic fixture ------------------------------------------------

ONE_EVENT_FIXTURES: dict[str, tuple[type[Any], dict[str, Any]]] = {
    "custom_event.json": (
        s.CustomEvent,
        {"event_name": "Trail Saved", "custom_event_type": "navigation"},
    ),
    "commerce_event_purchase.json": (s.CommerceEvent, {"currency_code": "EUR"}),
    "commerce_event_promotion.json": (s.CommerceEvent, {}),
    "commerce_event_impression.json": (s.CommerceEvent, {"screen_name": "Search Results"}),
    "session_start.json": (s.SessionStartEvent, {"session_id": 4400231877}),
    "session_end.json": (s.SessionEndEvent, {"session_duration_ms": 452000}),
    "screen_view.json": (
        s.ScreenViewEvent,
        {"screen_name": "Trail Detail", "activity_type": "activity_started"},
    ),
    "uninstall.json": (s.UninstallEvent, {}),
    "crash_report.json": (
        s.CrashReportEvent,
        {"class_name": "NSInvalidArgumentException", "severity": "fatal", "session_number": 31},
    ),
    "opt_out.json": (s.OptOutEvent, {"is_opted_out": True}),
    "push_registration.json": (s.PushRegistrationEvent, {"register": True}),
    "application_state_transition.json": (
        s.ApplicationStateTransitionEvent,
        {"application_transition_type": "application_initialized", "is_upgrade": True},
    ),
    "push_message.json": (
        s.PushMessageEvent,
        {"push_message_type": "received", "network": "apn", "push_message_behavior": 1},
    ),
    "network_performance.json": (
        s.NetworkPerformanceEvent,
        {"http_verb": "GET", "response_code": 200, "bytes_in": 18233},
    ),
    "breadcrumb.json": (s.BreadcrumbEvent, {"label": "opened map"}),
    "first_run.json": (s.FirstRunEvent, {}),
    "profile.json": (s.ProfileEvent, {"profile_event_type": "login", "previous_mpid": 0}),
    "user_attribute_change.json": (
        s.UserAttributeChangeEvent,
        {"user_attribute_name": "favourite_regions", "new": ["Alps", "Dolomites"], "old": "Alps"},
    ),
    "user_identity_change.json": (s.UserIdentityChangeEvent, {"old": None}),
}


@pytest.mark.parametrize("name", sorted(ONE_EVENT_FIXTURES))
def test_each_event_type_decodes_to_its_typed_struct(name: str) -> None:
    cls, expected = ONE_EVENT_FIXTURES[name]
    raw = load(name)
    batch = decode_batch((FIXTURES / name).read_bytes())
    assert len(batch.events) == 1
    event = batch.events[0]
    assert type(event) is cls
    assert event.event_type == raw["events"][0]["event_type"]
    assert event.data is not None
    assert event.data.timestamp_unixtime_ms == raw["events"][0]["data"]["timestamp_unixtime_ms"]
    for field, value in expected.items():
        assert getattr(event.data, field) == value, field


def test_fixtures_cover_every_modelled_event_type() -> None:
    covered = {cls.event_type for cls, _ in ONE_EVENT_FIXTURES.values()}
    modelled = {
        "custom_event",
        "commerce_event",
        "session_start",
        "session_end",
        "screen_view",
        "uninstall",
        "crash_report",
        "opt_out",
        "push_registration",
        "application_state_transition",
        "push_message",
        "network_performance",
        "breadcrumb",
        "first_run",
        "profile",
        "user_attribute_change",
        "user_identity_change",
    }
    assert covered == modelled


def test_commerce_structures_are_typed() -> None:
    data = decode_batch((FIXTURES / "commerce_event_purchase.json").read_bytes()).events[0].data
    assert isinstance(data, s.CommerceEventData)
    assert data.product_action is not None
    assert data.product_action.action == "purchase"
    assert data.product_action.transaction_id == "TX-2024-0091"
    product = data.product_action.products[0] if data.product_action.products else None
    assert product is not None
    assert (product.id, product.price, product.quantity) == ("SKU-88", 129.99, 2.0)
    assert product.custom_attributes == {"material": "mesh", "waterproof": True}
    assert data.shopping_cart is not None and data.shopping_cart.products

    promo = decode_batch((FIXTURES / "commerce_event_promotion.json").read_bytes()).events[0].data
    assert isinstance(promo, s.CommerceEventData) and promo.promotion_action is not None
    assert promo.promotion_action.action == "click"
    assert promo.promotion_action.promotions
    assert promo.promotion_action.promotions[0].name == "Summer Sale"

    imp = decode_batch((FIXTURES / "commerce_event_impression.json").read_bytes()).events[0].data
    assert isinstance(imp, s.CommerceEventData) and imp.product_impressions
    assert imp.product_impressions[0].product_impression_list == "search"


def test_custom_event_nested_objects() -> None:
    batch = decode_batch((FIXTURES / "custom_event.json").read_bytes())
    data = batch.events[0].data
    assert isinstance(data, s.CustomEventData)
    assert data.custom_attributes == {
        "trail_id": "T-551",
        "distance_km": 12.4,
        "loop": True,
        "difficulty": None,
        "ascent_m": 640,
    }
    assert data.custom_flags == {"Google.Category": "Trails", "Forwarder.Ids": [1, 2]}
    assert data.location is not None and data.location.latitude == 46.55
    assert data.device_current_state is not None
    assert data.device_current_state.gps_state is True
    assert batch.device_info is not None and batch.device_info.platform == "iOS"
    assert batch.application_info is not None
    assert batch.application_info.package == "com.example.trails"
    assert batch.schema_version == 2
    assert batch.environment == "development"
    assert batch.ip == "203.0.113.7"


def test_user_identity_change_identity_object() -> None:
    data = decode_batch((FIXTURES / "user_identity_change.json").read_bytes()).events[0].data
    assert isinstance(data, s.UserIdentityChangeData) and data.new is not None
    assert (data.new.identity_type, data.new.identity) == ("email", "ana@example.com")
    assert data.new.created_this_batch is True


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_fixture_round_trip(name: str) -> None:
    batch = decode_batch((FIXTURES / name).read_bytes())
    encoded = encode_batch(batch)
    assert decode_batch(encoded) == batch
    assert encode_batch(decode_batch(encoded)) == encoded


def test_encode_is_compact_and_tags_events() -> None:
    batch = dec(one_event("custom_event", {"event_name": "x"}))
    assert encode_batch(batch) == (
        b'{"events":[{"event_type":"custom_event","data":{"event_name":"x"}}]}'
    )


# --- SDK-shaped batches -----------------------------------------------------------------------


def test_python_sdk_batch() -> None:
    batch = decode_batch((FIXTURES / "python_sdk_batch.json").read_bytes())
    kinds = [type(e) for e in batch.events]
    assert kinds == [s.SessionStartEvent, s.CustomEvent, s.CrashReportEvent, s.CommerceEvent]
    crash = batch.events[2].data
    assert isinstance(crash, s.CrashReportData)
    assert (crash.message, crash.class_name, crash.exception_handled) == (
        "boom",
        "ValueError",
        True,
    )
    assert batch.identities_dict() == {
        "customer_id": "cust-1042",
        "email": "ana@example.com",
        "other_id_2": "legacy-77",
    }
    assert batch.user_attributes == {
        "$firstname": "Ana",
        "tier": "gold",
        "visits": 12,
        "regions": ["Alps", "Jura"],
    }


def test_web_sdk_batch() -> None:
    batch = decode_batch((FIXTURES / "web_sdk_batch.json").read_bytes())
    assert batch.mpid == -6613477820946542233
    assert len(batch.events) == 10
    assert batch.sdk_version == "2.71.2"
    assert batch.modified is True
    assert batch.mp_deviceid == "c4d2a1e0-8f3b-4a6c-9e7d-5b1a2c3d4e5f"
    assert batch.consent_state is not None and batch.consent_state.gdpr is not None
    assert batch.consent_state.gdpr["analytics"] is not None
    assert batch.consent_state.gdpr["analytics"].consented is True
    assert batch.consent_state.ccpa is None
    assert batch.context is not None and batch.context.data_plan is not None
    assert batch.context.data_plan.plan_version == 3
    assert batch.user_attributes is not None and batch.user_attributes["newsletter"] is None
    assert batch.identities_dict() == {
        "customer_id": "cust-1042",
        "email": "ana@example.com",
        "mobile_number": "+41790000000",
    }
    commerce = batch.events[4].data
    assert isinstance(commerce, s.CommerceEventData)
    assert commerce.product_action is not None and commerce.promotion_action is None
    assert batch.strongest_identity() == ("mpid", "-6613477820946542233")


def test_http_reference_example_batch_is_accepted() -> None:
    body = {
        "events": [{"data": {}, "event_type": "custom_event"}],
        "device_info": {},
        "user_attributes": {},
        "deleted_user_attributes": [],
        "user_identities": {},
        "application_info": {},
        "schema_version": 2,
        "environment": "production",
        "context": {},
        "ip": "172.217.12.142",
    }
    batch = dec(body)
    assert type(batch.events[0]) is s.CustomEvent
    assert dec([body][0]) == batch


def test_smallest_batches() -> None:
    assert dec({"environment": "production"}).events == []
    assert dec({}).environment == "production"


# --- Tolerance rules --------------------------------------------------------------------------

# Fields whose value is a free-form map: adding a key there adds data, so do not inject into them.
MAP_FIELDS = {
    "custom_attributes",
    "custom_flags",
    "user_attributes",
    "gdpr",
    "integration_attributes",
    "partner_identities",
    "apple_search_ads_attributes",
    "breadcrumbs",
}


def inject_unknown_keys(value: Any) -> Any:
    if isinstance(value, dict):
        out = {k: (v if k in MAP_FIELDS else inject_unknown_keys(v)) for k, v in value.items()}
        out["zz_unknown"] = {"nested": [1, {"deep": None}], "s": "x"}
        out["anotherUnknownKey"] = 12.5
        return out
    if isinstance(value, list):
        return [inject_unknown_keys(v) for v in value]
    return value


@pytest.mark.parametrize("name", ALL_FIXTURES)
def test_unknown_keys_are_ignored_at_every_level(name: str) -> None:
    doc = load(name)
    assert dec(inject_unknown_keys(doc)) == dec(doc)


def test_null_means_absent_at_top_level() -> None:
    fields = [f for f in Batch.__struct_fields__]
    assert dec(dict.fromkeys(fields)) == dec({})


@pytest.mark.parametrize(
    "event_type,data",
    [
        ("custom_event", {"event_name": None, "custom_event_type": None, "location": None}),
        (
            "commerce_event",
            {"product_action": None, "promotion_action": None, "shopping_cart": None},
        ),
        ("screen_view", {"screen_name": None, "custom_attributes": None, "custom_flags": None}),
        ("crash_report", {"breadcrumbs": None, "message": None}),
    ],
)
def test_null_means_absent_inside_events(event_type: str, data: dict[str, Any]) -> None:
    assert dec(one_event(event_type, data)) == dec(one_event(event_type, {}))
    assert dec(one_event(event_type, None)).events[0].data is None


def test_null_inside_nested_objects() -> None:
    doc = {
        "device_info": {"platform": None, "ios_idfv": None, "is_tablet": None},
        "consent_state": {"gdpr": None, "ccpa": {"data_sale_opt_out": None}},
        "context": {"data_plan": None, "location": None},
        "user_identities": {"email": None},
    }
    batch = dec(doc)
    assert batch.device_info == s.DeviceInfo()
    assert batch.identities_dict() == {}


@pytest.mark.parametrize(
    "doc,expected",
    [
        ({}, "production"),
        ({"environment": None}, "production"),
        ({"environment": "production"}, "production"),
        ({"environment": "development"}, "development"),
        ({"environment": "unknown"}, "production"),
    ],
)
def test_environment(doc: dict[str, Any], expected: str) -> None:
    assert dec(doc).environment == expected


@pytest.mark.parametrize("value", ["staging", "Production", "", 1, True])
def test_other_environment_values_are_rejected(value: Any) -> None:
    assert "$.environment" in bad({"environment": value})


@pytest.mark.parametrize(
    "value,expected",
    [
        (8011862521418416352, 8011862521418416352),
        ("8011862521418416352", 8011862521418416352),
        ("-6613477820946542233", -6613477820946542233),
        (-1, -1),
        ("9223372036854775807", 2**63 - 1),
        ("-9223372036854775808", -(2**63)),
        (None, None),
    ],
)
def test_mpid_int_or_decimal_string(value: Any, expected: int | None) -> None:
    batch = dec({"mpid": value})
    assert batch.mpid == expected
    assert batch.mpid is None or type(batch.mpid) is int


@pytest.mark.parametrize(
    "value",
    ["", "12a", "1.5", " 12", "+12", "1_000", "9223372036854775808", 2**63, 1.5, True, [1]],
)
def test_bad_mpid_is_rejected(value: Any) -> None:
    assert "mpid" in bad({"mpid": value})


@pytest.mark.parametrize(
    "value,expected",
    [
        ("abc", "abc"),
        (12345, "12345"),
        (-7, "-7"),
        (12.0, "12"),
        (12.5, "12.5"),
        (True, "true"),
        (False, "false"),
    ],
)
def test_identity_values_are_normalised_to_str(value: Any, expected: str) -> None:
    batch = dec({"user_identities": {"customer_id": value, "other_id_5": value}})
    assert batch.user_identities is not None
    assert batch.user_identities.customer_id == expected
    assert type(batch.user_identities.customer_id) is str
    assert batch.identities_dict() == {"customer_id": expected, "other_id_5": expected}


@pytest.mark.parametrize("value", [b"[1]", b'{"a": 1}', b"18446744073709551616", b"1e400"])
def test_non_scalar_identity_values_are_rejected(value: bytes) -> None:
    with pytest.raises(BadRequest, match=r"\$\.user_identities\.email"):
        decode_batch(b'{"user_identities": {"email": ' + value + b"}}")


def test_identity_value_in_identity_change_is_normalised() -> None:
    doc = one_event(
        "user_identity_change",
        {"new": {"identity_type": "customer_id", "identity": 42}},
    )
    data = dec(doc).events[0].data
    assert isinstance(data, s.UserIdentityChangeData) and data.new is not None
    assert data.new.identity == "42"


@pytest.mark.parametrize(
    "canonical",
    [
        "customer_id",
        "email",
        "other",
        *(f"other_id_{n}" for n in range(2, 11)),
        "mobile_number",
        "phone_number_2",
        "phone_number_3",
        "facebook",
        "facebook_custom_audience_id",
        "google",
        "microsoft",
        "twitter",
        "yahoo",
        "alias",
    ],
)
def test_every_canonical_identity_name(canonical: str) -> None:
    assert dec({"user_identities": {canonical: "v"}}).identities_dict() == {canonical: "v"}


@pytest.mark.parametrize("alias,canonical", sorted(IDENTITY_ALIASES.items()))
def test_identity_aliases_map_to_canonical_names(alias: str, canonical: str) -> None:
    batch = dec({"user_identities": {alias: "v1"}})
    assert batch.identities_dict() == {canonical: "v1"}
    assert getattr(batch.user_identities, alias) is None
    # Canonical spelling wins when both are present; the alias is still cleared.
    both = dec({"user_identities": {alias: "v1", canonical: "v2"}})
    assert both.identities_dict() == {canonical: "v2"}
    assert b'"' + alias.encode() + b'"' not in encode_batch(both)


def test_alias_list_matches_the_sdks() -> None:
    assert IDENTITY_ALIASES["customerid"] == "customer_id"
    assert IDENTITY_ALIASES["other2"] == "other_id_2"
    assert IDENTITY_ALIASES["other10"] == "other_id_10"
    assert IDENTITY_ALIASES["facebookcustomaudienceid"] == "facebook_custom_audience_id"
    assert len(IDENTITY_ALIASES) == 11


def test_unknown_identity_types_are_ignored() -> None:
    assert dec({"user_identities": {"myspace": "x", "email": "a@b"}}).identities_dict() == {
        "email": "a@b"
    }


def test_empty_identity_values_are_not_identities() -> None:
    assert dec({"user_identities": {"email": "", "customer_id": None}}).identities_dict() == {}


def test_lenient_attribute_values() -> None:
    attrs = {"s": "x", "i": 3, "f": 1.5, "b": False, "n": None}
    data = dec(one_event("custom_event", {"custom_attributes": attrs})).events[0].data
    assert data is not None and data.custom_attributes == attrs
    ua = dec({"user_attributes": {**attrs, "list": ["a", 1, None, True]}}).user_attributes
    assert ua == {**attrs, "list": ["a", 1, None, True]}


def test_object_valued_event_attribute_is_rejected_with_its_path() -> None:
    message = bad(one_event("custom_event", {"custom_attributes": {"k": {"x": 1}}}))
    assert "$.events[0].data.custom_attributes" in message


@pytest.mark.parametrize(
    "event_type,data",
    [
        ("network_performance", {"response_code": "404"}),
        ("network_performance", {"response_code": 404}),
        ("push_message", {"push_message_type": "action", "push_message_behavior": "DirectOpen"}),
        ("push_message", {"push_message_type": "action", "push_message_behavior": 5}),
        ("crash_report", {"breadcrumbs": ["a", "b"]}),
        ("crash_report", {"breadcrumbs": [{"event_type": "breadcrumb", "data": {"label": "x"}}]}),
        ("custom_event", {"lifetime_value_change": 0}),
        ("custom_event", {"lifetime_value_change": True}),
        ("custom_event", {"device_current_state": {"gps_state": "unknown"}}),
        ("custom_event", {"device_current_state": {"device_orientation": 6}}),
        ("custom_event", {"custom_flags": {"n": 1, "l": [1, "a"], "o": {"x": None}}}),
        ("session_start", {}),
        ("breadcrumb", {"label": "x", "event_id": "123"}),
    ],
)
def test_ambiguous_types_accept_every_documented_form(
    event_type: str, data: dict[str, Any]
) -> None:
    batch = dec(one_event(event_type, data))
    assert decode_batch(encode_batch(batch)) == batch


def test_device_info_tolerates_documented_oddities() -> None:
    info = dec({"device_info": {"supports_telephony": "", "timezone_offset": 5.5}}).device_info
    assert info is not None and info.supports_telephony == "" and info.timezone_offset == 5.5


def test_batch_context_is_an_alias_of_context() -> None:
    plan = {"data_plan": {"plan_id": "p", "plan_version": 2}}
    batch = dec({"batch_context": plan})
    assert batch.context is not None and batch.context.data_plan is not None
    assert batch.context.data_plan.plan_id == "p"
    assert batch.batch_context is None
    both = dec({"context": {"data_plan": {"plan_id": "wins"}}, "batch_context": plan})
    assert both.context is not None and both.context.data_plan is not None
    assert both.context.data_plan.plan_id == "wins"


def test_output_only_fields_are_accepted() -> None:
    batch = dec(
        {
            "batch_id": "123",
            "timestamp_unixtime_ms": 1,
            "source_info": {"channel": "server_to_server", "is_historical": "true"},
            "system_notifications": [{"type": "gdpr_change"}],
            "unique_id": "u",
            "api_keys": ["k"],
            "attribution_info": {"publisher": "p"},
        }
    )
    assert batch.source_info is not None and batch.source_info.channel == "server_to_server"


def test_data_key_may_come_before_event_type() -> None:
    body = b'{"events":[{"data":{"event_name":"x"},"event_type":"custom_event"}]}'
    assert type(decode_batch(body).events[0]) is s.CustomEvent


def test_data_less_types_keep_common_fields() -> None:
    for event_type in ["pre_attribution", "push_reaction", "unknown", "validation_result"]:
        event = dec(one_event(event_type, {"timestamp_unixtime_ms": 5})).events[0]
        assert event.event_type == event_type
        assert event.data is not None and event.data.timestamp_unixtime_ms == 5


# --- Python SDK crash reports sent as commerce_event ------------------------------------------


def test_python_sdk_crash_report_becomes_crash_report() -> None:
    wire = b'{"events":[{"data":{"message":"boom"},"event_type":"commerce_event"}]}'
    event = decode_batch(wire).events[0]
    assert type(event) is s.CrashReportEvent
    assert isinstance(event.data, s.CrashReportData) and event.data.message == "boom"


def test_common_fields_survive_the_crash_conversion() -> None:
    data = {"message": "boom", "timestamp_unixtime_ms": 7, "custom_attributes": {"a": 1}}
    event = dec(one_event("commerce_event", data)).events[0]
    assert isinstance(event.data, s.CrashReportData)
    assert event.data.timestamp_unixtime_ms == 7 and event.data.custom_attributes == {"a": 1}


def test_real_commerce_events_are_not_converted() -> None:
    data = {"message": "hi", "product_action": {"action": "purchase"}}
    assert type(dec(one_event("commerce_event", data)).events[0]) is s.CommerceEvent
    assert type(dec(one_event("commerce_event", {})).events[0]) is s.CommerceEvent


# --- event_type errors ------------------------------------------------------------------------


@pytest.mark.parametrize(
    "event",
    [
        {"data": {}},
        {"event_type": "", "data": {}},
        {"event_type": None, "data": {}},
        {},
    ],
)
def test_missing_or_empty_event_type_has_the_documented_message(event: dict[str, Any]) -> None:
    assert bad({"events": [{"event_type": "custom_event"}, event]}) == MISSING_EVENT_TYPE


def test_non_string_event_type() -> None:
    message = bad({"events": [{"event_type": 7}]})
    assert "event_type" in message and "$.events[0].event_type" in message


def test_unknown_event_type_is_named() -> None:
    message = bad({"events": [{"event_type": "custom_event"}, {"event_type": "page_ping"}]})
    assert "page_ping" in message and "$.events[1].event_type" in message


def test_required_fields_are_enforced_with_path() -> None:
    message = bad(one_event("push_registration", {"register": True}))
    assert "registration_token" in message and "$.events[0].data" in message
    assert "$.events[0].data.product_action" in bad(
        one_event("commerce_event", {"product_action": {"action": "buy"}})
    )


# --- Other decode errors ----------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        b"",
        b"{",
        b"[]",
        b'"batch"',
        b"null",
        b"{} {}",
        b'{"events": {}}',
        b'{"events":[{"event_type":"custom_event","data":{"timestamp_unixtime_ms":"1"}}]}',
        b'{"ip": "\xff\xfe"}',
        b'{"ignored": "\xff"}',
        b'{"events":[{"event_type":"custom_event","data":{"timestamp_unixtime_ms":1e400}}]}',
        b'{"timestamp_unixtime_ms": 99999999999999999999999999}',
        b'{"custom": ' + b"[" * 10_000 + b"]" * 10_000 + b"}",
    ],
)
def test_bad_bodies_raise_bad_request(body: bytes) -> None:
    with pytest.raises(BadRequest) as info:
        decode_batch(body)
    assert info.value.message


def test_type_error_names_the_field_path() -> None:
    body = b'{"events":[{"event_type":"custom_event","data":{"timestamp_unixtime_ms":"1"}}]}'
    with pytest.raises(BadRequest, match=r"\$\.events\[0\]\.data\.timestamp_unixtime_ms"):
        decode_batch(body)


def test_utf8_bom_is_tolerated() -> None:
    assert decode_batch(b'\xef\xbb\xbf{"environment":"development"}').environment == "development"


def test_non_ascii_text_is_fine() -> None:
    body = json.dumps({"ip": "x", "user_attributes": {"名前": "Zoë 🚀"}}, ensure_ascii=False)
    assert decode_batch(body.encode()).user_attributes == {"名前": "Zoë 🚀"}


def test_oversize_body_is_payload_too_large() -> None:
    body = b'{"ip":"' + b"x" * MAX_REQUEST_BYTES + b'"}'
    with pytest.raises(PayloadTooLarge):
        decode_batch(body)


# --- Identity helpers -------------------------------------------------------------------------


def test_device_identities_dict() -> None:
    batch = dec(
        {
            "mp_deviceid": "d-1",
            "device_info": {
                "ios_idfv": "V",
                "ios_advertising_id": "00000000-0000-0000-0000-000000000000",
                "android_advertising_id": "",
                "push_token": "tok",
                "roku_publisher_id": "R",
                "fire_advertising_id": "F",
                "platform": "iOS",
            },
        }
    )
    assert batch.device_identities_dict() == {
        "mp_deviceid": "d-1",
        "ios_idfv": "V",
        "push_token": "tok",
        "roku_publisher_id": "R",
        "fire_advertising_id": "F",
    }


@pytest.mark.parametrize(
    "doc,expected",
    [
        ({"mpid": 5, "user_identities": {"customer_id": "c"}}, ("mpid", "5")),
        ({"mpid": "0", "user_identities": {"customer_id": "c"}}, ("customer_id", "c")),
        ({"user_identities": {"customer_id": "c", "email": "e"}}, ("customer_id", "c")),
        ({"user_identities": {"customerid": "c", "email": "e"}}, ("customer_id", "c")),
        ({"user_identities": {"email": "e"}, "mp_deviceid": "d"}, ("email", "e")),
        (
            {
                "user_identities": {"other": "o"},
                "mp_deviceid": "d",
                "device_info": {"ios_idfv": "v"},
            },
            ("mp_deviceid", "d"),
        ),
        ({"device_info": {"ios_idfv": "v", "android_uuid": "a"}}, ("ios_idfv", "v")),
        ({"device_info": {"push_token": "t", "android_uuid": "a"}}, ("android_uuid", "a")),
        ({"device_info": {"push_token": "t"}}, ("push_token", "t")),
        ({"user_identities": {"other": "o"}}, None),
        ({}, None),
    ],
)
def test_strongest_identity(doc: dict[str, Any], expected: tuple[str, str] | None) -> None:
    assert dec(doc).strongest_identity() == expected


def test_device_identity_order_covers_every_device_id_field() -> None:
    for name in s.DEVICE_IDENTITY_ORDER[1:]:
        assert name in s.DeviceInfo.__struct_fields__
    assert s.UserIdentities.__struct_fields__[: len(s.USER_IDENTITY_TYPES)] == (
        s.USER_IDENTITY_TYPES
    )


# --- Bulk -------------------------------------------------------------------------------------


def test_decode_bulk_keeps_good_batches_and_reports_bad_ones() -> None:
    good = load("custom_event.json")
    body = json.dumps([good, {"events": [{"event_type": 7}]}, good, 5, {"mpid": "x"}]).encode()
    out = decode_bulk(body)
    assert len(out) == 5
    assert isinstance(out[0], Batch) and isinstance(out[2], Batch)
    for index in (1, 3, 4):
        item = out[index]
        assert isinstance(item, BadRequest)
        assert item.message.startswith(f"batch {index}: ")


def test_decode_bulk_missing_event_type_message() -> None:
    out = decode_bulk(b'[{"events":[{"data":{}}]}]')
    assert isinstance(out[0], BadRequest)
    assert out[0].message == "batch 0: " + MISSING_EVENT_TYPE


@pytest.mark.parametrize("body", [b"{}", b'"x"', b"null", b"[", b"", b"[{}] x"])
def test_decode_bulk_requires_a_json_array(body: bytes) -> None:
    with pytest.raises(BadRequest):
        decode_bulk(body)


def test_decode_bulk_over_batch_count_rejects_whole_request() -> None:
    assert len(decode_bulk(json.dumps([{}] * MAX_BULK_BATCHES).encode())) == MAX_BULK_BATCHES
    with pytest.raises(BadRequest, match="100"):
        decode_bulk(json.dumps([{}] * (MAX_BULK_BATCHES + 1)).encode())


def test_oversize_batch_inside_bulk_is_a_bad_batch() -> None:
    big = {"ip": "x" * MAX_BATCH_BYTES}
    out = decode_bulk(json.dumps([{}, big]).encode())
    assert isinstance(out[0], Batch)
    assert isinstance(out[1], PayloadTooLarge) and out[1].message.startswith("batch 1: ")


def test_oversize_bulk_request() -> None:
    body = json.dumps([{"ip": "x" * (MAX_BATCH_BYTES - 20)}] * 3).encode()
    assert len(body) > MAX_REQUEST_BYTES
    with pytest.raises(PayloadTooLarge):
        decode_bulk(body)


def test_split_bulk_gives_per_batch_bytes() -> None:
    raws = split_bulk(b'[ {"ip":"a"} , {} ]')
    assert [bytes(r) for r in raws] == [b'{"ip":"a"}', b"{}"]
    assert [len(r) for r in raws] == [10, 2]
    assert isinstance(raws[0], msgspec.Raw)


def test_bulk_empty_array() -> None:
    assert decode_bulk(b"[]") == []
