"""Identity types and how each one is spelled on every wire.

mParticle names the same identifier differently per API: the Identity API says ``customerid`` and
``ios_idfa``, the Events API says ``customer_id`` and ``ios_advertising_id``, the Profile API says
``customer_id`` and ``ios_advertising_id`` but ``ios_vendor_id`` for the IDFV. Everything inside
opencdp speaks one vocabulary, :class:`IdentityType`, and translates exactly at the edge, through
the functions here, so a name mix-up can only happen in this one table.

The canonical (internal, stored) name of each type is its Events API name, because batches are the
bulk of what we ingest; the device application stamp, which batches carry as ``mp_deviceid``, is
stored as ``device_application_stamp``.

Where mParticle documents no name for a type on a wire (Profile API names for ``other2..10``, the
phone numbers, Roku/Fire/Microsoft device IDs and the device application stamp) we chose one; see
docs/adr/0004-identity-strategies.md.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from opencdp.core.errors import BadRequest


class IdentityKind(enum.StrEnum):
    """User identities can be login IDs; device identities never can."""

    USER = "user"
    DEVICE = "device"


class IdentityType(enum.StrEnum):
    """One member per identity type; the value is the canonical stored name."""

    # user identities
    CUSTOMER_ID = "customer_id"
    EMAIL = "email"
    FACEBOOK = "facebook"
    TWITTER = "twitter"
    GOOGLE = "google"
    MICROSOFT = "microsoft"
    YAHOO = "yahoo"
    OTHER = "other"
    OTHER_ID_2 = "other_id_2"
    OTHER_ID_3 = "other_id_3"
    OTHER_ID_4 = "other_id_4"
    OTHER_ID_5 = "other_id_5"
    OTHER_ID_6 = "other_id_6"
    OTHER_ID_7 = "other_id_7"
    OTHER_ID_8 = "other_id_8"
    OTHER_ID_9 = "other_id_9"
    OTHER_ID_10 = "other_id_10"
    MOBILE_NUMBER = "mobile_number"
    PHONE_NUMBER_2 = "phone_number_2"
    PHONE_NUMBER_3 = "phone_number_3"
    FACEBOOK_CUSTOM_AUDIENCE_ID = "facebook_custom_audience_id"
    ALIAS = "alias"
    # device identities
    IOS_ADVERTISING_ID = "ios_advertising_id"
    IOS_IDFV = "ios_idfv"
    ANDROID_ADVERTISING_ID = "android_advertising_id"
    ANDROID_UUID = "android_uuid"
    PUSH_TOKEN = "push_token"
    ROKU_ADVERTISING_ID = "roku_advertising_id"
    ROKU_PUBLISHER_ID = "roku_publisher_id"
    FIRE_ADVERTISING_ID = "fire_advertising_id"
    MICROSOFT_ADVERTISING_ID = "microsoft_advertising_id"
    MICROSOFT_PUBLISHER_ID = "microsoft_publisher_id"
    AMP_ID = "amp_id"
    DEVICE_APPLICATION_STAMP = "device_application_stamp"

    @property
    def kind(self) -> IdentityKind:
        return _NAMES[self].kind

    @property
    def is_user(self) -> bool:
        """True for user identities: the only ones a strategy may make login IDs."""
        return _NAMES[self].kind is IdentityKind.USER


@dataclass(frozen=True, slots=True)
class _Names:
    kind: IdentityKind
    identity_api: str
    events: str  # user_identities key, device_info field, or the batch's mp_deviceid
    profile_api: str


def _user(identity_api: str, events: str, profile_api: str) -> _Names:
    return _Names(IdentityKind.USER, identity_api, events, profile_api)


def _device(identity_api: str, events: str, profile_api: str) -> _Names:
    return _Names(IdentityKind.DEVICE, identity_api, events, profile_api)


T = IdentityType
_NAMES: dict[IdentityType, _Names] = {
    T.CUSTOMER_ID: _user("customerid", "customer_id", "customer_id"),
    T.EMAIL: _user("email", "email", "email"),
    T.FACEBOOK: _user("facebook", "facebook", "facebook_id"),
    T.TWITTER: _user("twitter", "twitter", "twitter_id"),
    T.GOOGLE: _user("google", "google", "google_id"),
    T.MICROSOFT: _user("microsoft", "microsoft", "microsoft_id"),
    T.YAHOO: _user("yahoo", "yahoo", "yahoo_id"),
    T.OTHER: _user("other", "other", "other"),
    **{
        T(f"other_id_{n}"): _user(f"other{n}", f"other_id_{n}", f"other_id_{n}")
        for n in range(2, 11)
    },
    T.MOBILE_NUMBER: _user("mobile_number", "mobile_number", "mobile_number"),
    T.PHONE_NUMBER_2: _user("phone_number_2", "phone_number_2", "phone_number_2"),
    T.PHONE_NUMBER_3: _user("phone_number_3", "phone_number_3", "phone_number_3"),
    T.FACEBOOK_CUSTOM_AUDIENCE_ID: _user(
        "facebookcustomaudienceid", "facebook_custom_audience_id", "facebook_custom_audience_id"
    ),
    T.ALIAS: _user("alias", "alias", "alias"),
    T.IOS_ADVERTISING_ID: _device("ios_idfa", "ios_advertising_id", "ios_advertising_id"),
    T.IOS_IDFV: _device("ios_idfv", "ios_idfv", "ios_vendor_id"),
    T.ANDROID_ADVERTISING_ID: _device(
        "android_aaid", "android_advertising_id", "google_advertising_id"
    ),
    T.ANDROID_UUID: _device("android_uuid", "android_uuid", "android_id"),
    T.PUSH_TOKEN: _device("push_token", "push_token", "push_notification_token"),
    T.ROKU_ADVERTISING_ID: _device("roku_aid", "roku_advertising_id", "roku_advertising_id"),
    T.ROKU_PUBLISHER_ID: _device("roku_publisher_id", "roku_publisher_id", "roku_publisher_id"),
    T.FIRE_ADVERTISING_ID: _device("fire_aid", "fire_advertising_id", "fire_advertising_id"),
    T.MICROSOFT_ADVERTISING_ID: _device(
        "microsoft_aid", "microsoft_advertising_id", "microsoft_advertising_id"
    ),
    T.MICROSOFT_PUBLISHER_ID: _device(
        "microsoft_publisher_id", "microsoft_publisher_id", "microsoft_publisher_id"
    ),
    T.AMP_ID: _device("amp_id", "amp_id", "amp_id"),
    T.DEVICE_APPLICATION_STAMP: _device(
        "device_application_stamp", "mp_deviceid", "device_application_stamp"
    ),
}
del T

# Inbound spellings that real clients send besides the canonical one (never emitted):
# the UWP SDK's Identity API key, and the official Python/Node SDKs' Events API customer id.
_IDENTITY_API_EXTRA = {"facebook_custom_audience_id": IdentityType.FACEBOOK_CUSTOM_AUDIENCE_ID}
_EVENTS_USER_EXTRA = {"customerid": IdentityType.CUSTOMER_ID}

_FROM_IDENTITY_API = {n.identity_api: t for t, n in _NAMES.items()} | _IDENTITY_API_EXTRA
_FROM_EVENTS_USER = {
    n.events: t for t, n in _NAMES.items() if n.kind is IdentityKind.USER
} | _EVENTS_USER_EXTRA
_FROM_EVENTS_DEVICE = {n.events: t for t, n in _NAMES.items() if n.kind is IdentityKind.DEVICE}
_FROM_PROFILE_API = {n.profile_api: t for t, n in _NAMES.items()}

USER_TYPES: frozenset[IdentityType] = frozenset(t for t in IdentityType if t.is_user)
DEVICE_TYPES: frozenset[IdentityType] = frozenset(IdentityType) - USER_TYPES


def _unknown(name: str, api: str, known: dict[str, IdentityType]) -> BadRequest:
    return BadRequest(
        f"unknown identity type {name!r} for the {api}; known types: {', '.join(sorted(known))}"
    )


def from_identity_api(name: str) -> IdentityType:
    """Type for an Identity API key (``known_identities`` key or modify ``identity_type``)."""
    try:
        return _FROM_IDENTITY_API[name]
    except KeyError:
        raise _unknown(name, "Identity API", _FROM_IDENTITY_API) from None


def to_identity_api(identity_type: IdentityType) -> str:
    """Identity API key for a type, as responses (``matched_identities``) spell it."""
    return _NAMES[identity_type].identity_api


def from_events_user_identity(name: str) -> IdentityType:
    """Type for a key of a batch's ``user_identities`` object; device names are rejected."""
    try:
        return _FROM_EVENTS_USER[name]
    except KeyError:
        raise _unknown(name, "Events API user_identities", _FROM_EVENTS_USER) from None


def from_events_device_field(name: str) -> IdentityType | None:
    """Type for a ``device_info`` field (or the batch-level ``mp_deviceid``).

    Returns None for every other name: most ``device_info`` fields (``brand``, ``os_version``...)
    describe the device without identifying it, and validating them is the batch schema's job.
    """
    return _FROM_EVENTS_DEVICE.get(name)


def to_events_user_identity(identity_type: IdentityType) -> str:
    """``user_identities`` key for a user identity type."""
    names = _NAMES[identity_type]
    if names.kind is not IdentityKind.USER:
        raise ValueError(f"{identity_type} is a device identity, not a user identity")
    return names.events


def to_events_device_field(identity_type: IdentityType) -> str:
    """``device_info`` field (``mp_deviceid`` for the stamp) for a device identity type."""
    names = _NAMES[identity_type]
    if names.kind is not IdentityKind.DEVICE:
        raise ValueError(f"{identity_type} is a user identity, not a device identity")
    return names.events


def to_profile_api(identity_type: IdentityType) -> str:
    """Profile API ``type`` for a type (``user_identities`` / ``device_identities`` entries)."""
    return _NAMES[identity_type].profile_api


def from_profile_api(name: str) -> IdentityType:
    """Type for a Profile API ``type`` (the resolve endpoint's ``identity.type``)."""
    try:
        return _FROM_PROFILE_API[name]
    except KeyError:
        raise _unknown(name, "Profile API", _FROM_PROFILE_API) from None
