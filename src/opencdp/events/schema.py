"""Typed model and decoder for the mParticle event batch (Events API schema version 2).

One batch is decoded with a single ``msgspec`` call into the Structs below; there is no second
validation pass. That keeps the ingestion hot path in C and still gives callers typed objects.

Tolerance rules (see docs/adr/0003-batch-decoding-and-limits.md for the reasoning):

* unknown keys are ignored at every level, and JSON ``null`` means "absent";
* ``environment`` defaults to ``production``; ``unknown`` is folded into ``production``;
* ``mpid`` may be a JSON integer or a decimal string (the Web SDK sends a string);
* identity values may be any JSON scalar and are normalised to ``str``;
* identity-type aliases used by the Python/Node SDKs and by IDSync (``customerid``, ``other2`` ...)
  are folded into their Events API names (``customer_id``, ``other_id_2`` ...);
* a Python-SDK crash report (sent as ``commerce_event``) is turned back into a ``crash_report``;
* an unknown ``event_type`` rejects the batch, naming the type and where it was found.

A few fields have a *wire* type (what msgspec accepts) wider than their *model* type (what
``__post_init__`` guarantees afterwards). They are declared through ``TYPE_CHECKING`` aliases so
that mypy sees the normalised type while msgspec sees the lenient one.
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, TypeAlias

import msgspec
from msgspec.structs import asdict, astuple

from opencdp.core.errors import BadRequest, PayloadTooLarge

__all__ = [
    "DEVICE_IDENTITY_ORDER",
    "IDENTITY_ALIASES",
    "MAX_BATCH_BYTES",
    "MAX_BULK_BATCHES",
    "MAX_REQUEST_BYTES",
    "USER_IDENTITY_TYPES",
    "ApplicationInfo",
    "ApplicationStateTransitionData",
    "ApplicationStateTransitionEvent",
    "AttributionInfo",
    "Batch",
    "Batching",
    "BreadcrumbData",
    "BreadcrumbEvent",
    "CcpaConsent",
    "CommerceEvent",
    "CommerceEventData",
    "ConsentObject",
    "ConsentState",
    "Context",
    "CrashReportData",
    "CrashReportEvent",
    "CustomEvent",
    "CustomEventData",
    "DataPlan",
    "DeviceCurrentState",
    "DeviceInfo",
    "Event",
    "EventData",
    "EventEnvelope",
    "FirstRunEvent",
    "Int64",
    "Location",
    "MediaInfo",
    "NetworkPerformanceData",
    "NetworkPerformanceEvent",
    "OptOutData",
    "OptOutEvent",
    "PreAttributionEvent",
    "Product",
    "ProductAction",
    "ProductImpression",
    "ProfileData",
    "ProfileEvent",
    "Promotion",
    "PromotionAction",
    "PushMessageData",
    "PushMessageEvent",
    "PushReactionEvent",
    "PushRegistrationData",
    "PushRegistrationEvent",
    "Scalar",
    "ScreenViewData",
    "ScreenViewEvent",
    "SessionEndData",
    "SessionEndEvent",
    "SessionStartEvent",
    "ShoppingCart",
    "SourceInfo",
    "SystemNotificationInfo",
    "UninstallEvent",
    "UnknownEvent",
    "UserAttributeChangeData",
    "UserAttributeChangeEvent",
    "UserAttributeValue",
    "UserIdentities",
    "UserIdentityChange",
    "UserIdentityChangeData",
    "UserIdentityChangeEvent",
    "ValidationResultEvent",
    "decode_batch",
    "decode_bulk",
    "encode_batch",
    "split_bulk",
]

# --- Wire size limits (events-api.md §5.1) ---------------------------------------------------
# Defined here because the bulk decoder enforces them; opencdp.events.limits re-exports them.
# "KB" is read as KiB (1024 bytes): the docs do not say, and the larger reading never rejects
# something real mParticle would accept.

MAX_REQUEST_BYTES = 256 * 1024
"""Largest accepted request body (single batch or bulk array)."""

MAX_BATCH_BYTES = 128 * 1024
"""Largest accepted batch inside a bulk request."""

MAX_BULK_BATCHES = 100
"""Most batches accepted in one bulk request; more rejects the whole request."""

# --- Scalar types -----------------------------------------------------------------------------

Int64 = Annotated[int, msgspec.Meta(ge=-(2**63), le=2**63 - 1)]
"""Signed 64-bit integer; larger JSON integers are rejected instead of overflowing storage."""

UInt64 = Annotated[int, msgspec.Meta(ge=0, le=2**63 - 1)]
"""Unsigned id that in practice fits 63 bits (msgspec bounds must fit an int64)."""

Scalar: TypeAlias = str | Int64 | float | bool | None
"""The schema's lenient "String": any JSON scalar (used for attribute values)."""

UserAttributeValue: TypeAlias = Scalar | list[Scalar]
"""A user attribute is a scalar or a list of scalars; ``null`` is a valueless "tag"."""

if TYPE_CHECKING:
    IdentityValue: TypeAlias = str
    Mpid: TypeAlias = int
    Environment: TypeAlias = Literal["production", "development"]
else:
    IdentityValue = str | Int64 | float | bool
    Mpid = Int64 | str
    Environment = Literal["production", "development", "unknown"] | None

CustomEventType = Literal[
    "navigation",
    "location",
    "search",
    "transaction",
    "user_content",
    "user_preference",
    "social",
    "other",
    "media",
    "attribution",
    "unknown",
]
ProductActionType = Literal[
    "add_to_cart",
    "remove_from_cart",
    "checkout",
    "checkout_option",
    "click",
    "view_detail",
    "purchase",
    "refund",
    "add_to_wishlist",
    "remove_from_wish_list",
    "remove_from_wishlist",
    "unknown",
]
PromotionActionType = Literal["view", "click", "unknown"]
ApplicationTransitionType = Literal[
    "application_initialized",
    "application_exit",
    "application_background",
    "application_foreground",
    "unknown",
]
PushMessageType = Literal["sent", "received", "action", "unknown"]


class _Wire(msgspec.Struct, kw_only=True, omit_defaults=True, gc=False):
    """Base for every wire object: keyword construction, compact encoding.

    ``gc=False`` is safe because decoded batches are plain trees (no reference cycles) and it
    saves the garbage collector from tracking every decoded struct.
    """


# --- Nested objects ---------------------------------------------------------------------------


class Location(_Wire):
    """Event location and ``context.location`` (§6.1)."""

    latitude: float | None = None
    longitude: float | None = None
    accuracy: float | None = None
    country_code: str | None = None
    region_code: str | None = None
    city_name: str | None = None
    postal_code: str | None = None
    dma_code: Int64 | None = None
    location_source: str | None = None


class DataPlan(_Wire):
    plan_id: str | None = None
    plan_version: Int64 | None = None


class Batching(_Wire):
    """Undocumented Go-SDK batching hints; kept so they survive a round trip."""

    bypass: bool | None = None
    partition_key: str | None = None
    request_ids: list[str] | None = None


class Context(_Wire):
    data_plan: DataPlan | None = None
    location: Location | None = None
    batching: Batching | None = None


class DeviceInfo(_Wire):
    """``device_info`` (§6.3). Device identity fields are listed in ``DEVICE_IDENTITY_ORDER``."""

    brand: str | None = None
    product: str | None = None
    device: str | None = None
    android_uuid: str | None = None
    device_manufacturer: str | None = None
    platform: str | None = None
    os_version: str | None = None
    device_model: str | None = None
    screen_height: Int64 | None = None
    screen_width: Int64 | None = None
    screen_dpi: Int64 | None = None
    device_country: str | None = None
    locale_language: str | None = None
    locale_country: str | None = None
    network_country: str | None = None
    network_carrier: str | None = None
    network_code: str | None = None
    network_mobile_country_code: str | None = None
    # Documented as whole hours, but half-hour zones exist, so fractions are accepted.
    timezone_offset: Int64 | float | None = None
    build_identifier: str | None = None
    http_header_user_agent: str | None = None
    ios_advertising_id: str | None = None
    ios_idfv: str | None = None
    android_advertising_id: str | None = None
    att_authorization_status: str | None = None
    att_timestamp_unixtime_ms: Int64 | None = None
    push_token: str | None = None
    cpu_architecture: str | None = None
    is_tablet: bool | None = None
    push_notification_sound_enabled: bool | None = None
    push_notification_vibrate_enabled: bool | None = None
    radio_access_technology: str | None = None
    # The reference sample sends "" here, so a string is tolerated.
    supports_telephony: bool | str | None = None
    has_nfc: bool | None = None
    bluetooth_enabled: bool | None = None
    bluetooth_version: str | None = None
    roku_advertising_id: str | None = None
    roku_publisher_id: str | None = None
    microsoft_advertising_id: str | None = None
    microsoft_publisher_id: str | None = None
    fire_advertising_id: str | None = None
    limit_ad_tracking: bool | None = None
    is_dst: bool | None = None
    build_version_release: str | None = None
    amp_id: str | None = None


class ApplicationInfo(_Wire):
    application_name: str | None = None
    application_version: str | None = None
    application_build_number: str | None = None
    install_referrer: str | None = None
    package: str | None = None
    apple_search_ads_attributes: dict[str, dict[str, Scalar]] | None = None
    os: str | None = None
    sideloaded_kits_count: Int64 | float | None = None


class ConsentObject(_Wire, kw_only=True):
    """One consent decision. For CCPA ``consented=True`` means the user opted *out* of sale."""

    consented: bool
    document: str | None = None
    timestamp_unixtime_ms: Int64 | None = None
    location: str | None = None
    hardware_id: str | None = None
    regulation: str | None = None
    purpose: str | None = None


class CcpaConsent(_Wire):
    data_sale_opt_out: ConsentObject | None = None


class ConsentState(_Wire):
    """GDPR consent is a map purpose -> decision (the reference docs' shape, not JSCH's)."""

    gdpr: dict[str, ConsentObject | None] | None = None
    ccpa: CcpaConsent | None = None


class SourceInfo(_Wire):
    """Server-populated provenance; accepted on input only so outbound JSON round-trips."""

    channel: str | None = None
    partner: str | None = None
    replay_request_id: str | None = None
    replay_job_id: str | None = None
    is_historical: bool | str | None = None


class AttributionInfo(_Wire):
    service_provider: str | None = None
    publisher: str | None = None
    campaign: str | None = None


# --- User identities --------------------------------------------------------------------------

USER_IDENTITY_TYPES: tuple[str, ...] = (
    "customer_id",
    "email",
    "other",
    "other_id_2",
    "other_id_3",
    "other_id_4",
    "other_id_5",
    "other_id_6",
    "other_id_7",
    "other_id_8",
    "other_id_9",
    "other_id_10",
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
)
"""Canonical Events API identity-type names, in ``UserIdentities`` field order."""

IDENTITY_ALIASES: dict[str, str] = {
    "customerid": "customer_id",
    "facebookcustomaudienceid": "facebook_custom_audience_id",
    **{f"other{n}": f"other_id_{n}" for n in range(2, 11)},
}
"""Alias -> canonical name. ``customerid`` is what the Python and Node server SDKs send; the
others are the IDSync / Web-SDK spellings, accepted so a client that reuses its IDSync names
still lands on the right identity."""


class UserIdentities(_Wire):
    """``user_identities`` with canonical names; values are always ``str`` after decoding.

    The alias fields exist only so msgspec can read them; ``__post_init__`` moves their values
    to the canonical field (the canonical spelling wins if both are sent) and clears them.
    """

    customer_id: IdentityValue | None = None
    email: IdentityValue | None = None
    other: IdentityValue | None = None
    other_id_2: IdentityValue | None = None
    other_id_3: IdentityValue | None = None
    other_id_4: IdentityValue | None = None
    other_id_5: IdentityValue | None = None
    other_id_6: IdentityValue | None = None
    other_id_7: IdentityValue | None = None
    other_id_8: IdentityValue | None = None
    other_id_9: IdentityValue | None = None
    other_id_10: IdentityValue | None = None
    mobile_number: IdentityValue | None = None
    phone_number_2: IdentityValue | None = None
    phone_number_3: IdentityValue | None = None
    facebook: IdentityValue | None = None
    facebook_custom_audience_id: IdentityValue | None = None
    google: IdentityValue | None = None
    microsoft: IdentityValue | None = None
    twitter: IdentityValue | None = None
    yahoo: IdentityValue | None = None
    alias: IdentityValue | None = None
    # Input-only aliases (always None after decoding).
    customerid: IdentityValue | None = None
    facebookcustomaudienceid: IdentityValue | None = None
    other2: IdentityValue | None = None
    other3: IdentityValue | None = None
    other4: IdentityValue | None = None
    other5: IdentityValue | None = None
    other6: IdentityValue | None = None
    other7: IdentityValue | None = None
    other8: IdentityValue | None = None
    other9: IdentityValue | None = None
    other10: IdentityValue | None = None

    def __post_init__(self) -> None:
        values = astuple(self)
        # Fast path: all strings/None and no alias used -> nothing to do (checked in C).
        if set(map(type, values)) <= _STR_OR_NONE and values[_N_CANONICAL:] == _NO_ALIASES:
            return
        for name, value in zip(self.__struct_fields__, values, strict=True):
            if value is not None and type(value) is not str:
                setattr(self, name, _scalar_to_str(value))
        for alias, canonical in IDENTITY_ALIASES.items():
            value = getattr(self, alias)
            if value is not None:
                if getattr(self, canonical) is None:
                    setattr(self, canonical, value)
                setattr(self, alias, None)

    def as_dict(self) -> dict[str, str]:
        """Canonical name -> value for every identity that is present and non-empty."""
        return {
            name: value
            for name, value in zip(USER_IDENTITY_TYPES, astuple(self), strict=False)
            if value
        }


_STR_OR_NONE = frozenset({str, type(None)})
_N_CANONICAL = len(USER_IDENTITY_TYPES)
_NO_ALIASES = (None,) * len(IDENTITY_ALIASES)


def _scalar_to_str(value: object) -> str:
    """Render a non-string JSON scalar the way JavaScript would (``true``, ``5`` not ``5.0``)."""
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, float) and value.is_integer() and abs(value) < 2**53:
        return str(int(value))
    return str(value)


# --- Commerce structures ----------------------------------------------------------------------


class Product(_Wire):
    id: str | None = None
    name: str | None = None
    brand: str | None = None
    category: str | None = None
    variant: str | None = None
    position: Int64 | None = None
    price: float | None = None
    quantity: float | None = None
    coupon_code: str | None = None
    added_to_cart_time_ms: Int64 | None = None
    total_product_amount: float | None = None
    custom_attributes: dict[str, Scalar] | None = None


class ProductAction(_Wire, kw_only=True):
    action: ProductActionType
    checkout_step: Int64 | None = None
    checkout_options: str | None = None
    product_action_list: str | None = None
    product_list_source: str | None = None
    transaction_id: str | None = None
    affiliation: str | None = None
    total_amount: float | None = None
    tax_amount: float | None = None
    shipping_amount: float | None = None
    coupon_code: str | None = None
    products: list[Product] | None = None


class Promotion(_Wire):
    id: str | None = None
    name: str | None = None
    creative: str | None = None
    position: str | None = None


class PromotionAction(_Wire, kw_only=True):
    action: PromotionActionType
    promotions: list[Promotion] | None = None


class ProductImpression(_Wire):
    product_impression_list: str | None = None
    products: list[Product] | None = None


class ShoppingCart(_Wire):
    products: list[Product] | None = None


class MediaInfo(_Wire):
    """Media details the Python/Node SDK models can attach to a custom event."""

    action: str | None = None
    channel: str | None = None
    metadata: str | None = None
    timed_metadata: str | None = None
    playback_position: float | None = None
    format: str | None = None
    quality: str | None = None
    playback_rate: float | None = None


class DeviceCurrentState(_Wire):
    """Device state at event time (§6.9); ambiguous fields accept every documented type."""

    cpu: str | float | None = None
    system_memory_available_bytes: float | None = None
    system_memory_low: bool | None = None
    system_memory_threshold_bytes: float | None = None
    application_memory_available_bytes: float | None = None
    application_memory_max_bytes: float | None = None
    application_memory_total_bytes: float | None = None
    device_orientation: str | Int64 | None = None
    status_bar_orientation: str | Int64 | None = None
    time_since_start_ms: Int64 | None = None
    battery_level: float | None = None
    data_connection_type: str | None = None
    data_connection_type_detail: str | None = None
    gps_state: bool | str | None = None
    total_system_memory_usage_bytes: Int64 | None = None
    disk_space_free_bytes: Int64 | None = None
    external_disk_space_free_bytes: Int64 | None = None


class SystemNotificationInfo(_Wire):
    type: str | None = None


# --- Event data -------------------------------------------------------------------------------


class EventData(_Wire):
    """Fields common to every event type (§4); also the data of types with no own fields."""

    timestamp_unixtime_ms: Int64 | None = None
    # The reference shows a string event_id once; it is server-assigned, so both are kept.
    event_id: Int64 | str | None = None
    event_num: Int64 | None = None
    source_message_id: str | None = None
    session_id: Int64 | None = None
    session_uuid: str | None = None
    session_start_unixtime_ms: Int64 | None = None
    event_start_unixtime_ms: Int64 | None = None
    location: Location | None = None
    device_current_state: DeviceCurrentState | None = None
    custom_attributes: dict[str, Scalar] | None = None
    custom_flags: dict[str, Any] | None = None
    is_goal_defined: bool | None = None
    lifetime_value_change: bool | float | None = None
    lifetime_value_attribute_name: str | None = None
    data_connection_type: str | None = None
    view_controller: str | None = None
    is_main_thread: bool | None = None
    canonical_name: str | None = None
    event_system_notification_info: SystemNotificationInfo | None = None
    page_url: str | None = None
    active_time_on_site_ms: Int64 | float | None = None


class CustomEventData(EventData):
    """``custom_event``. Name and category are documented as required but the HTTP reference's
    own example omits them, so absence is tolerated (``None`` category means ``other``)."""

    event_name: str | None = None
    custom_event_type: CustomEventType | None = None
    media_info: MediaInfo | None = None


class _CrashFields(EventData):
    """Crash-report fields, shared by ``CrashReportData`` and (see there) ``CommerceEventData``."""

    class_name: str | None = None
    breadcrumbs: list[str | dict[str, Any]] | None = None
    severity: str | None = None
    message: str | None = None
    stack_trace: str | None = None
    exception_handled: bool | None = None
    topmost_context: str | None = None
    pl_crash_report_file_base64: str | None = None
    ios_image_base_address: UInt64 | None = None
    ios_image_size: UInt64 | None = None
    session_number: Int64 | None = None


class CrashReportData(_CrashFields):
    pass


_CRASH_ONLY_FIELDS = tuple(
    f for f in CrashReportData.__struct_fields__ if f not in EventData.__struct_fields__
)


class CommerceEventData(_CrashFields):
    """``commerce_event``: exactly one of product/promotion action or impressions is expected,
    but this is not enforced (the Web SDK sends all three keys with nulls).

    It inherits the crash-report fields only because the Python SDK sends crash reports with
    ``event_type: commerce_event``; ``Batch.__post_init__`` converts those back.
    """

    product_action: ProductAction | None = None
    promotion_action: PromotionAction | None = None
    product_impressions: list[ProductImpression] | None = None
    shopping_cart: ShoppingCart | None = None
    currency_code: str | None = None
    screen_name: str | None = None
    is_non_interactive: bool | None = None
    event_name: str | None = None
    # Server-derived sub-type on outbound JSON; free text here because sources disagree.
    custom_event_type: str | None = None

    def looks_like_crash_report(self) -> bool:
        """True for the Python SDK's mislabelled crash report: no commerce payload at all, but
        at least one crash-report field."""
        if (
            self.product_action is not None
            or self.promotion_action is not None
            or self.product_impressions is not None
            or self.shopping_cart is not None
        ):
            return False
        return any(getattr(self, f) is not None for f in _CRASH_ONLY_FIELDS)


class SessionEndData(EventData):
    session_duration_ms: Int64 | None = None


class ScreenViewData(EventData):
    screen_name: str | None = None
    activity_type: str | None = None


class OptOutData(EventData):
    is_opted_out: bool | None = None


class PushRegistrationData(EventData, kw_only=True):
    register: bool
    registration_token: str


class ApplicationStateTransitionData(EventData, kw_only=True):
    application_transition_type: ApplicationTransitionType
    is_first_run: bool | None = None
    is_upgrade: bool | None = None
    successfully_closed: bool | None = None
    push_notification_payload: str | None = None
    launch_referral: str | None = None


class PushMessageData(EventData, kw_only=True):
    push_message_type: PushMessageType
    push_message_token: str | None = None
    push_notification_payload: str | None = None
    message: str | None = None
    network: str | None = None
    application_state: str | None = None
    action_identifier: str | None = None
    push_message_behavior: Int64 | str | None = None


class NetworkPerformanceData(EventData):
    http_verb: str | None = None
    url: str | None = None
    time_elapsed: Int64 | None = None
    bytes_in: Int64 | None = None
    bytes_out: Int64 | None = None
    response_code: Int64 | str | None = None
    data: str | None = None


class BreadcrumbData(EventData, kw_only=True):
    label: str
    session_number: Int64 | None = None


class ProfileData(EventData):
    """``profile``: sources disagree on the fields, so all of both shapes are optional."""

    previous_mpid: Int64 | None = None
    current_mpid: Int64 | None = None
    profile_event_type: str | None = None
    profile_name: str | None = None
    previous_profile_name: str | None = None


class UserAttributeChangeData(EventData, kw_only=True):
    user_attribute_name: str
    new: UserAttributeValue = None
    old: UserAttributeValue = None
    deleted: bool | None = None
    is_new_attribute: bool | None = None


class UserIdentityChange(_Wire, kw_only=True):
    identity_type: str
    identity: IdentityValue | None = None
    timestamp_unixtime_ms: Int64 | None = None
    created_this_batch: bool | None = None

    def __post_init__(self) -> None:
        if self.identity is not None and type(self.identity) is not str:
            self.identity = _scalar_to_str(self.identity)


class UserIdentityChangeData(EventData):
    new: UserIdentityChange | None = None
    old: UserIdentityChange | None = None


# --- Event envelopes (tagged union on "event_type") -------------------------------------------


class EventEnvelope(_Wire, tag_field="event_type"):
    """``{"event_type": ..., "data": {...}}``. ``event_type`` is readable as a class attribute."""

    event_type: ClassVar[str]
    data: EventData | None = None


class CustomEvent(EventEnvelope, tag="custom_event"):
    event_type: ClassVar[str] = "custom_event"
    data: CustomEventData | None = None


class CommerceEvent(EventEnvelope, tag="commerce_event"):
    event_type: ClassVar[str] = "commerce_event"
    data: CommerceEventData | None = None


class SessionStartEvent(EventEnvelope, tag="session_start"):
    event_type: ClassVar[str] = "session_start"


class SessionEndEvent(EventEnvelope, tag="session_end"):
    event_type: ClassVar[str] = "session_end"
    data: SessionEndData | None = None


class ScreenViewEvent(EventEnvelope, tag="screen_view"):
    event_type: ClassVar[str] = "screen_view"
    data: ScreenViewData | None = None


class UninstallEvent(EventEnvelope, tag="uninstall"):
    event_type: ClassVar[str] = "uninstall"


class CrashReportEvent(EventEnvelope, tag="crash_report"):
    event_type: ClassVar[str] = "crash_report"
    data: CrashReportData | None = None


class OptOutEvent(EventEnvelope, tag="opt_out"):
    event_type: ClassVar[str] = "opt_out"
    data: OptOutData | None = None


class PushRegistrationEvent(EventEnvelope, tag="push_registration"):
    event_type: ClassVar[str] = "push_registration"
    data: PushRegistrationData | None = None


class ApplicationStateTransitionEvent(EventEnvelope, tag="application_state_transition"):
    event_type: ClassVar[str] = "application_state_transition"
    data: ApplicationStateTransitionData | None = None


class PushMessageEvent(EventEnvelope, tag="push_message"):
    event_type: ClassVar[str] = "push_message"
    data: PushMessageData | None = None


class NetworkPerformanceEvent(EventEnvelope, tag="network_performance"):
    event_type: ClassVar[str] = "network_performance"
    data: NetworkPerformanceData | None = None


class BreadcrumbEvent(EventEnvelope, tag="breadcrumb"):
    event_type: ClassVar[str] = "breadcrumb"
    data: BreadcrumbData | None = None


class FirstRunEvent(EventEnvelope, tag="first_run"):
    event_type: ClassVar[str] = "first_run"


class ProfileEvent(EventEnvelope, tag="profile"):
    event_type: ClassVar[str] = "profile"
    data: ProfileData | None = None


class UserAttributeChangeEvent(EventEnvelope, tag="user_attribute_change"):
    event_type: ClassVar[str] = "user_attribute_change"
    data: UserAttributeChangeData | None = None


class UserIdentityChangeEvent(EventEnvelope, tag="user_identity_change"):
    event_type: ClassVar[str] = "user_identity_change"
    data: UserIdentityChangeData | None = None


# Types listed by some source but with no data model anywhere: common fields only.
class PreAttributionEvent(EventEnvelope, tag="pre_attribution"):
    event_type: ClassVar[str] = "pre_attribution"


class PushReactionEvent(EventEnvelope, tag="push_reaction"):
    event_type: ClassVar[str] = "push_reaction"


class UnknownEvent(EventEnvelope, tag="unknown"):
    event_type: ClassVar[str] = "unknown"


class ValidationResultEvent(EventEnvelope, tag="validation_result"):
    event_type: ClassVar[str] = "validation_result"


Event: TypeAlias = (
    CustomEvent
    | CommerceEvent
    | SessionStartEvent
    | SessionEndEvent
    | ScreenViewEvent
    | UninstallEvent
    | CrashReportEvent
    | OptOutEvent
    | PushRegistrationEvent
    | ApplicationStateTransitionEvent
    | PushMessageEvent
    | NetworkPerformanceEvent
    | BreadcrumbEvent
    | FirstRunEvent
    | ProfileEvent
    | UserAttributeChangeEvent
    | UserIdentityChangeEvent
    | PreAttributionEvent
    | PushReactionEvent
    | UnknownEvent
    | ValidationResultEvent
)

if TYPE_CHECKING:
    EventList: TypeAlias = list[Event]
else:
    EventList = list[Event] | None

DEVICE_IDENTITY_ORDER: tuple[str, ...] = (
    "mp_deviceid",
    "ios_idfv",
    "android_uuid",
    "ios_advertising_id",
    "android_advertising_id",
    "fire_advertising_id",
    "roku_publisher_id",
    "roku_advertising_id",
    "microsoft_publisher_id",
    "microsoft_advertising_id",
    "amp_id",
    "push_token",
)
"""Device identities, most stable first: the SDK's own install id, then vendor-scoped ids,
then resettable advertising ids, then push tokens (which rotate)."""

_DEVICE_INFO_ID_FIELDS = DEVICE_IDENTITY_ORDER[1:]
_MPID_STRING = re.compile(r"-?[0-9]{1,19}")


def _is_placeholder_id(value: str) -> bool:
    """Empty or all-zero GUIDs (IDFA with tracking limited) identify nobody."""
    return not value.strip("0-")


# --- Batch ------------------------------------------------------------------------------------


class Batch(_Wire):
    """One event batch (§2): the body of ``/v2/events`` and ``/v3/JS/{key}/events``."""

    events: EventList = []
    environment: Environment = "production"
    source_request_id: str | None = None
    schema_version: Int64 | None = None
    device_info: DeviceInfo | None = None
    application_info: ApplicationInfo | None = None
    user_attributes: dict[str, UserAttributeValue] | None = None
    deleted_user_attributes: list[str] | None = None
    user_identities: UserIdentities | None = None
    partner_identities: dict[str, Scalar] | None = None
    partner_identity: str | None = None
    integration_attributes: dict[str, dict[str, Scalar]] | None = None
    context: Context | None = None
    # The OpenAPI file's name for ``context``; folded into ``context`` after decoding.
    batch_context: Context | None = None
    consent_state: ConsentState | None = None
    mpid: Mpid | None = None
    mp_deviceid: str | None = None
    ip: str | None = None
    timestamp_unixtime_ms: Int64 | None = None
    batch_id: Int64 | str | None = None
    sdk_version: str | None = None
    source_info: SourceInfo | None = None
    attribution_info: AttributionInfo | None = None
    api_key: str | None = None
    api_keys: list[str] | None = None
    job_id: str | None = None
    origin_mpid: Int64 | None = None
    modified: bool | None = None
    system_notifications: list[Any] | None = None
    unique_id: str | None = None

    def __post_init__(self) -> None:
        if self.events is None:
            self.events = []
        if self.environment != "production" and self.environment != "development":
            # None (explicit null) and "unknown" both mean the documented default.
            self.environment = "production"
        mpid: object = self.mpid
        if type(mpid) is str:
            self.mpid = _parse_mpid(mpid)
        if self.batch_context is not None:
            if self.context is None:
                self.context = self.batch_context
            self.batch_context = None
        events = self.events
        if CommerceEvent not in set(map(type, events)):  # the usual case, checked in C
            return
        for i, event in enumerate(events):
            if (
                type(event) is CommerceEvent
                and event.data is not None
                and event.data.looks_like_crash_report()
            ):
                events[i] = _commerce_to_crash(event.data)

    def identities_dict(self) -> dict[str, str]:
        """Canonical Events API identity name -> value, for identities present and non-empty."""
        return self.user_identities.as_dict() if self.user_identities is not None else {}

    def device_identities_dict(self) -> dict[str, str]:
        """Device identities (``device_info`` ids plus ``mp_deviceid``), placeholders skipped."""
        out: dict[str, str] = {}
        if self.mp_deviceid and not _is_placeholder_id(self.mp_deviceid):
            out["mp_deviceid"] = self.mp_deviceid
        info = self.device_info
        if info is not None:
            for name in _DEVICE_INFO_ID_FIELDS:
                value = getattr(info, name)
                if value and not _is_placeholder_id(value):
                    out[name] = value
        return out

    def strongest_identity(self) -> tuple[str, str] | None:
        """The single best key for the batch's user: mpid, customer_id, email, then the first
        device identity in ``DEVICE_IDENTITY_ORDER``. ``mpid`` 0 is treated as "no user"."""
        if self.mpid:
            return ("mpid", str(self.mpid))
        ids = self.user_identities
        if ids is not None:
            if ids.customer_id:
                return ("customer_id", ids.customer_id)
            if ids.email:
                return ("email", ids.email)
        devices = self.device_identities_dict()
        for name in DEVICE_IDENTITY_ORDER:
            value = devices.get(name)
            if value is not None:
                return (name, value)
        return None


def _parse_mpid(text: str) -> int:
    if not _MPID_STRING.fullmatch(text):
        raise ValueError("`mpid` must be an integer or a decimal integer string - at `$.mpid`")
    value = int(text)
    if not -(2**63) <= value < 2**63:
        raise ValueError("`mpid` is outside the signed 64-bit range - at `$.mpid`")
    return value


def _commerce_to_crash(data: CommerceEventData) -> CrashReportEvent:
    fields = CrashReportData.__struct_fields__
    kwargs = {k: v for k, v in asdict(data).items() if k in fields and v is not None}
    return CrashReportEvent(data=CrashReportData(**kwargs))


# --- Decoding ---------------------------------------------------------------------------------

_BATCH_DECODER = msgspec.json.Decoder(Batch)
_BULK_DECODER = msgspec.json.Decoder(list[msgspec.Raw])
_ENCODER = msgspec.json.Encoder()
_UTF8_BOM = b"\xef\xbb\xbf"
_EVENT_TYPE_MISSING = 'Required event field "event_type" is missing or empty.'
_EVENT_TYPE_PATH = re.compile(r" - at `\$\.events\[(\d+)\](\.event_type)?`$")


def _prepare(body: bytes) -> bytes | memoryview:
    """Check encoding and strip a UTF-8 BOM before msgspec sees the bytes.

    msgspec validates UTF-8 only inside strings it decodes; bytes inside ignored keys would slip
    through, so non-ASCII bodies are validated as a whole (ASCII bodies skip this in C).
    """
    if not body.isascii():
        try:
            body.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise BadRequest(f"Body is not valid UTF-8 (byte {exc.start})") from None
    if body.startswith(_UTF8_BOM):
        return memoryview(body)[3:]
    return body


def _decode_one(buf: bytes | memoryview | msgspec.Raw) -> Batch:
    try:
        return _BATCH_DECODER.decode(buf)
    except msgspec.ValidationError as exc:
        raise BadRequest(_explain(str(exc), buf)) from None
    except msgspec.DecodeError as exc:
        raise BadRequest(str(exc)) from None
    except UnicodeDecodeError:
        raise BadRequest("Body is not valid UTF-8") from None
    except RecursionError:
        raise BadRequest("JSON is nested too deeply") from None


def _explain(message: str, buf: bytes | memoryview | msgspec.Raw) -> str:
    """Reword msgspec's errors about ``event_type`` into the documented message."""
    match = _EVENT_TYPE_PATH.search(message)
    if match is None:
        return message
    if match.group(2) is None:
        if message.startswith("Object missing required field `event_type`"):
            return _EVENT_TYPE_MISSING
        return message
    if message.startswith("Invalid value ''"):
        return _EVENT_TYPE_MISSING
    if message.startswith("Invalid value "):
        value = message[len("Invalid value ") : match.start()]
        return f"Unknown event_type {value} - at `$.events[{match.group(1)}].event_type`"
    if message.startswith("Expected `str`"):
        if _event_type_is_null(buf, int(match.group(1))):
            return _EVENT_TYPE_MISSING
        return f"`event_type` must be a string - at `$.events[{match.group(1)}].event_type`"
    return message


def _event_type_is_null(buf: bytes | memoryview | msgspec.Raw, index: int) -> bool:
    """Error path only: tell an explicit ``"event_type": null`` from a non-string value."""
    try:
        doc = msgspec.json.decode(buf)
        return doc["events"][index].get("event_type", 0) is None
    except Exception:
        return False


def decode_batch(body: bytes) -> Batch:
    """Decode one batch; any problem raises ``BadRequest`` naming the offending field path.

    An over-size body raises ``PayloadTooLarge`` (a ``BadRequest``) so the API can answer 413.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(
            f"Request body is {len(body)} bytes; the limit is {MAX_REQUEST_BYTES}"
        )
    return _decode_one(_prepare(body))


def split_bulk(body: bytes) -> list[msgspec.Raw]:
    """Split a bulk body (a JSON array) into the raw bytes of each element, unvalidated.

    Syntax errors anywhere in the array reject the whole request: without valid JSON the
    element boundaries are unknown.
    """
    if len(body) > MAX_REQUEST_BYTES:
        raise PayloadTooLarge(
            f"Request body is {len(body)} bytes; the limit is {MAX_REQUEST_BYTES}"
        )
    buf = _prepare(body)
    try:
        return _BULK_DECODER.decode(buf)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"Bulk body must be a JSON array of batches: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(str(exc)) from None
    except RecursionError:
        raise BadRequest("JSON is nested too deeply") from None


def decode_bulk(body: bytes) -> list[Batch | BadRequest]:
    """Decode a bulk body; each batch succeeds or fails on its own.

    The whole request is rejected (raised) if it is not a JSON array, is too large, or holds
    more than ``MAX_BULK_BATCHES`` batches. Otherwise the result has one entry per batch: the
    ``Batch``, or a ``BadRequest`` whose message starts with ``batch <index>:``.
    """
    return decode_split(split_bulk(body))


def decode_split(raws: list[msgspec.Raw]) -> list[Batch | BadRequest]:
    """:func:`decode_bulk` for a body the caller already split with :func:`split_bulk`."""
    if len(raws) > MAX_BULK_BATCHES:
        raise BadRequest(
            f"Bulk request holds {len(raws)} batches; at most {MAX_BULK_BATCHES} are allowed"
        )
    out: list[Batch | BadRequest] = []
    for index, raw in enumerate(raws):
        if len(raw) > MAX_BATCH_BYTES:
            out.append(
                PayloadTooLarge(
                    f"batch {index}: {len(raw)} bytes; the per-batch limit is {MAX_BATCH_BYTES}"
                )
            )
            continue
        try:
            out.append(_decode_one(raw))
        except BadRequest as exc:
            out.append(type(exc)(f"batch {index}: {exc.message}"))
    return out


def encode_batch(batch: Batch) -> bytes:
    """Compact JSON for a batch; ``decode_batch(encode_batch(b)) == b``."""
    return _ENCODER.encode(batch)
