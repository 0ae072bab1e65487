"""Every identity name in idsync.md §2 and profile-api.md §4, on every wire, both directions."""

from __future__ import annotations

import pytest

from opencdp.core.errors import BadRequest
from opencdp.identity.types import (
    DEVICE_TYPES,
    USER_TYPES,
    IdentityKind,
    IdentityType,
    from_events_device_field,
    from_events_user_identity,
    from_identity_api,
    from_profile_api,
    to_events_device_field,
    to_events_user_identity,
    to_identity_api,
    to_profile_api,
)

T = IdentityType

# (type, Identity API key, Events API user_identities key, Profile API type)
USER_NAMES = [
    (T.CUSTOMER_ID, "customerid", "customer_id", "customer_id"),
    (T.EMAIL, "email", "email", "email"),
    (T.FACEBOOK, "facebook", "facebook", "facebook_id"),
    (T.TWITTER, "twitter", "twitter", "twitter_id"),
    (T.GOOGLE, "google", "google", "google_id"),
    (T.MICROSOFT, "microsoft", "microsoft", "microsoft_id"),
    (T.YAHOO, "yahoo", "yahoo", "yahoo_id"),
    (T.OTHER, "other", "other", "other"),
    *[(T(f"other_id_{n}"), f"other{n}", f"other_id_{n}", f"other_id_{n}") for n in range(2, 11)],
    (T.MOBILE_NUMBER, "mobile_number", "mobile_number", "mobile_number"),
    (T.PHONE_NUMBER_2, "phone_number_2", "phone_number_2", "phone_number_2"),
    (T.PHONE_NUMBER_3, "phone_number_3", "phone_number_3", "phone_number_3"),
    (
        T.FACEBOOK_CUSTOM_AUDIENCE_ID,
        "facebookcustomaudienceid",
        "facebook_custom_audience_id",
        "facebook_custom_audience_id",
    ),
    (T.ALIAS, "alias", "alias", "alias"),
]

# (type, Identity API key, Events API device_info field / batch field, Profile API type)
DEVICE_NAMES = [
    (T.IOS_ADVERTISING_ID, "ios_idfa", "ios_advertising_id", "ios_advertising_id"),
    (T.IOS_IDFV, "ios_idfv", "ios_idfv", "ios_vendor_id"),
    (T.ANDROID_ADVERTISING_ID, "android_aaid", "android_advertising_id", "google_advertising_id"),
    (T.ANDROID_UUID, "android_uuid", "android_uuid", "android_id"),
    (T.PUSH_TOKEN, "push_token", "push_token", "push_notification_token"),
    (T.ROKU_ADVERTISING_ID, "roku_aid", "roku_advertising_id", "roku_advertising_id"),
    (T.ROKU_PUBLISHER_ID, "roku_publisher_id", "roku_publisher_id", "roku_publisher_id"),
    (T.FIRE_ADVERTISING_ID, "fire_aid", "fire_advertising_id", "fire_advertising_id"),
    (
        T.MICROSOFT_ADVERTISING_ID,
        "microsoft_aid",
        "microsoft_advertising_id",
        "microsoft_advertising_id",
    ),
    (
        T.MICROSOFT_PUBLISHER_ID,
        "microsoft_publisher_id",
        "microsoft_publisher_id",
        "microsoft_publisher_id",
    ),
    (T.AMP_ID, "amp_id", "amp_id", "amp_id"),
    (
        T.DEVICE_APPLICATION_STAMP,
        "device_application_stamp",
        "mp_deviceid",
        "device_application_stamp",
    ),
]

# SWAGGER Identities object + fire_aid (HTTP doc) + what real SDKs add (idsync.md §2.2).
SWAGGER_KEYS = [
    "ios_idfa",
    "android_aaid",
    "amp_id",
    "android_uuid",
    "ios_idfv",
    "push_token",
    "roku_publisher_id",
    "roku_aid",
    "customerid",
    "email",
    "facebook",
    "facebookcustomaudienceid",
    "google",
    "microsoft",
    "other",
    "twitter",
    "yahoo",
    "device_application_stamp",
    "fire_aid",
]
SDK_EXTRA_KEYS = [f"other{n}" for n in range(2, 11)] + [
    "mobile_number",
    "phone_number_2",
    "phone_number_3",
    "microsoft_aid",
    "microsoft_publisher_id",
    "facebook_custom_audience_id",
    "alias",
]
# Events API user_identities accepts exactly these keys (JSONREF OAS, additionalProperties false).
EVENTS_USER_KEYS = [
    "other",
    "customer_id",
    "facebook",
    "twitter",
    "google",
    "microsoft",
    "yahoo",
    "email",
    "alias",
    "facebook_custom_audience_id",
    "mobile_number",
    "phone_number_2",
    "phone_number_3",
] + [f"other_id_{n}" for n in range(2, 11)]
# device_info identity fields (event-batch-schema.md §6.3) and the batch-level device id.
EVENTS_DEVICE_KEYS = [
    "ios_advertising_id",
    "ios_idfv",
    "android_advertising_id",
    "android_uuid",
    "push_token",
    "roku_advertising_id",
    "roku_publisher_id",
    "fire_advertising_id",
    "microsoft_advertising_id",
    "microsoft_publisher_id",
    "amp_id",
    "mp_deviceid",
]


def test_tables_cover_every_type_once() -> None:
    listed = [row[0] for row in USER_NAMES + DEVICE_NAMES]
    assert sorted(listed) == sorted(IdentityType)
    assert len(set(listed)) == len(listed)


@pytest.mark.parametrize(("t", "idapi", "events", "profile"), USER_NAMES)
def test_user_identity_names(t: IdentityType, idapi: str, events: str, profile: str) -> None:
    assert t.kind is IdentityKind.USER and t.is_user and t in USER_TYPES
    assert from_identity_api(idapi) is t
    assert to_identity_api(t) == idapi
    assert from_events_user_identity(events) is t
    assert to_events_user_identity(t) == events
    assert to_profile_api(t) == profile
    assert from_profile_api(profile) is t
    assert from_events_device_field(events) is None
    with pytest.raises(ValueError):
        to_events_device_field(t)


@pytest.mark.parametrize(("t", "idapi", "events", "profile"), DEVICE_NAMES)
def test_device_identity_names(t: IdentityType, idapi: str, events: str, profile: str) -> None:
    assert t.kind is IdentityKind.DEVICE and not t.is_user and t in DEVICE_TYPES
    assert from_identity_api(idapi) is t
    assert to_identity_api(t) == idapi
    assert from_events_device_field(events) is t
    assert to_events_device_field(t) == events
    assert to_profile_api(t) == profile
    assert from_profile_api(profile) is t
    with pytest.raises(BadRequest):
        from_events_user_identity(events)
    with pytest.raises(ValueError):
        to_events_user_identity(t)


@pytest.mark.parametrize("key", SWAGGER_KEYS + SDK_EXTRA_KEYS)
def test_identity_api_accepts_the_union_of_swagger_and_sdk_keys(key: str) -> None:
    assert isinstance(from_identity_api(key), IdentityType)


@pytest.mark.parametrize("key", EVENTS_USER_KEYS)
def test_events_user_identities_keys(key: str) -> None:
    assert from_events_user_identity(key).is_user


@pytest.mark.parametrize("key", EVENTS_DEVICE_KEYS)
def test_events_device_identity_fields(key: str) -> None:
    t = from_events_device_field(key)
    assert t is not None and not t.is_user


def test_inbound_only_spellings() -> None:
    # UWP sends the Events-style key to the Identity API; we answer with the canonical one.
    t = from_identity_api("facebook_custom_audience_id")
    assert t is T.FACEBOOK_CUSTOM_AUDIENCE_ID
    assert to_identity_api(t) == "facebookcustomaudienceid"
    # The official Python and Node SDKs send customerid in batches.
    assert from_events_user_identity("customerid") is T.CUSTOMER_ID
    assert to_events_user_identity(T.CUSTOMER_ID) == "customer_id"


@pytest.mark.parametrize("field", ["brand", "os_version", "platform", "limit_ad_tracking", ""])
def test_device_info_fields_that_are_not_identities(field: str) -> None:
    assert from_events_device_field(field) is None


@pytest.mark.parametrize("name", ["customer_id", "CustomerId", "other_id_2", "idfa", "", "unknown"])
def test_unknown_identity_api_names_are_bad_requests(name: str) -> None:
    with pytest.raises(BadRequest, match="unknown identity type") as info:
        from_identity_api(name)
    assert repr(name) in info.value.message and "customerid" in info.value.message


@pytest.mark.parametrize("name", ["customer-id", "other2", "ios_idfv", "CUSTOMER_ID"])
def test_unknown_events_user_identity_names(name: str) -> None:
    with pytest.raises(BadRequest, match="user_identities"):
        from_events_user_identity(name)


@pytest.mark.parametrize("name", ["customerid", "ios_idfv", "unknown", "other2"])
def test_unknown_profile_api_names(name: str) -> None:
    with pytest.raises(BadRequest, match="Profile API"):
        from_profile_api(name)


def test_canonical_names_are_the_events_names_except_the_stamp() -> None:
    for t in IdentityType:
        wire = to_events_user_identity(t) if t.is_user else to_events_device_field(t)
        if t is T.DEVICE_APPLICATION_STAMP:
            assert (t.value, wire) == ("device_application_stamp", "mp_deviceid")
        else:
            assert t.value == wire
