"""Pure rules of the profile read model: value formatting, what a batch changes, and merging.

Nothing here does I/O. The pipeline step turns each batch into a :class:`ProfileUpdate`; the
store applies its writes with the same ordering rule written in SQL, so the database and
:func:`merge` always agree (a property test checks this on both engines).

**Ordering (ADR 0006).** Every stored value (a user attribute, or one of the profile fields
``is_opted_out``, ``limit_ad_tracking``, ``attribution``) is a last-writer-wins register keyed by
``(ts_ms, tiebreak)``:

* ``ts_ms`` is the time the data describes: the event's timestamp for ``user_attribute_change``
  and ``opt_out`` events, the batch's time for ``user_attributes``, ``deleted_user_attributes``
  and ``device_info``. It is never later than when the batch was received, so a device with a
  clock in the future cannot pin a value forever.
* ``tiebreak`` orders writes with the same ``ts_ms`` by a hash of the value, and a deletion (a
  tombstone) beats every value. Any fixed rule would do; this one makes the result independent
  of delivery order, which is the property that matters when SDKs upload out of order.

Because every write is compared with one total order, applying batches in any order, any number
of times, ends in the same state: merging is a maximum. Deletions are tombstones (value ``None``)
kept as long as the profile lives, so an older batch cannot resurrect a deleted attribute.
"""

from __future__ import annotations

import functools
import math
import zlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from enum import StrEnum
from typing import Any, TypeAlias

import msgspec
from msgspec.structs import asdict

from opencdp.core.errors import BadRequest
from opencdp.events.limits import (
    MAX_ATTRIBUTE_NAME_LENGTH,
    MAX_ATTRIBUTE_VALUE_LENGTH,
    MAX_USER_ATTRIBUTE_LIST_ENTRIES,
    MAX_USER_ATTRIBUTE_LIST_ENTRY_LENGTH,
    MAX_USER_ATTRIBUTES,
    LimitReason,
)
from opencdp.events.schema import (
    Batch,
    OptOutEvent,
    UserAttributeChangeEvent,
    UserAttributeValue,
)
from opencdp.identity.types import IdentityType, from_profile_api

FormattedValue: TypeAlias = str | list[str] | None
"""A user attribute as the Profile API returns it: a string, a list of strings, or null (a tag)."""

TOMBSTONE_TIEBREAK = 2**63 - 1
"""A deletion's tiebreak: it wins against any value written with the same timestamp."""

DAY_MS = 86_400_000

_encode = msgspec.json.encode


class ValueKind(StrEnum):
    """The two namespaces of stored registers: user attributes, and profile-level fields."""

    ATTRIBUTE = "attr"
    FIELD = "field"


class ProfileField(StrEnum):
    """Profile-level values kept as registers beside the user attributes."""

    IS_OPTED_OUT = "is_opted_out"
    LIMIT_AD_TRACKING = "limit_ad_tracking"
    ATTRIBUTION = "attribution"


# --- Value formatting -------------------------------------------------------------------------


def format_scalar(value: str | int | float | bool) -> str:
    """Render a scalar the way mParticle stores it: as the string JavaScript would print.

    ``42 -> "42"``, ``19.5 -> "19.5"``, ``5.0 -> "5"``, ``True -> "true"``, ``1e21 -> "1e+21"``.
    The SDKs stringify with JavaScript rules, so we follow them for server-sent numbers too.
    """
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, str):
        return value
    if isinstance(value, int):
        return str(value)
    return _js_number(value)


def _js_number(x: float) -> str:
    """ECMAScript ``Number::toString`` for a finite float (shortest round-trip digits)."""
    if not math.isfinite(x):
        return "NaN" if math.isnan(x) else ("Infinity" if x > 0 else "-Infinity")
    if x == 0:
        return "0"
    if x < 0:
        return "-" + _js_number(-x)
    sign_digits_exp = Decimal(repr(x)).normalize().as_tuple()
    digits = "".join(map(str, sign_digits_exp.digits))
    exponent = int(sign_digits_exp.exponent)
    k = len(digits)
    n = k + exponent  # value = 0.<digits> * 10**n
    if k <= n <= 21:
        return digits + "0" * (n - k)
    if 0 < n <= 21:
        return digits[:n] + "." + digits[n:]
    if -6 < n <= 0:
        return "0." + "0" * (-n) + digits
    e = n - 1
    mantissa = digits[0] + ("." + digits[1:] if k > 1 else "")
    return f"{mantissa}e{'+' if e > 0 else '-'}{abs(e)}"


def format_value(value: UserAttributeValue) -> FormattedValue:
    """A batch's attribute value as stored and returned: scalars become strings, lists become
    lists of strings (null entries are dropped: a list holds values), ``null`` stays a tag."""
    if value is None:
        return None
    if isinstance(value, list):
        return [format_scalar(v) for v in value if v is not None]
    return format_scalar(value)


def encode_value(value: object) -> str:
    """The stored JSON text of a value."""
    return _encode(value).decode()


def decode_value(text: str) -> Any:
    return msgspec.json.decode(text)


def tiebreak_of(encoded: str | None) -> int:
    """Deterministic order among writes with equal timestamps (see the module docstring).

    A 62-bit checksum of the value (CRC-32 and Adler-32, both in C: this runs for every
    attribute of every batch). It must be the same in every process, so not ``hash()``.
    """
    if encoded is None:
        return TOMBSTONE_TIEBREAK
    data = encoded.encode()
    return (zlib.crc32(data) << 30) | (zlib.adler32(data) & 0x3FFF_FFFF)


def attribute_problem(name: str, value: FormattedValue) -> LimitReason | None:
    """Which documented limit a user attribute breaks, if any (events-api.md §5.3).

    The batch's ``user_attributes`` were already limited when accepted (``events.limits``);
    this applies the same rule to values set by ``user_attribute_change`` events.
    """
    if len(name) > MAX_ATTRIBUTE_NAME_LENGTH:
        return LimitReason.USER_ATTRIBUTE_NAME_TOO_LONG
    if isinstance(value, str):
        if len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
            return LimitReason.USER_ATTRIBUTE_VALUE_TOO_LONG
    elif isinstance(value, list):
        if len(value) > MAX_USER_ATTRIBUTE_LIST_ENTRIES:
            return LimitReason.USER_ATTRIBUTE_LIST_TOO_LONG
        if any(len(v) > MAX_USER_ATTRIBUTE_LIST_ENTRY_LENGTH for v in value):
            return LimitReason.USER_ATTRIBUTE_LIST_ENTRY_TOO_LONG
    return None


# --- Writes and merging -----------------------------------------------------------------------


class ValueWrite(msgspec.Struct, frozen=True, gc=False):
    """One register write: ``encoded`` is the stored JSON text, ``None`` for a deletion.

    A msgspec Struct rather than a dataclass: the step builds one per attribute per batch, and
    Structs are created several times faster than frozen dataclasses.
    """

    kind: ValueKind
    name: str
    encoded: str | None
    ts_ms: int
    tiebreak: int

    @classmethod
    def of(cls, kind: ValueKind, name: str, value: object, ts_ms: int) -> ValueWrite:
        encoded = encode_value(value)
        return cls(kind, name, encoded, ts_ms, tiebreak_of(encoded))

    @classmethod
    def deletion(cls, kind: ValueKind, name: str, ts_ms: int) -> ValueWrite:
        return cls(kind, name, None, ts_ms, TOMBSTONE_TIEBREAK)

    @property
    def order(self) -> tuple[int, int]:
        return (self.ts_ms, self.tiebreak)

    @property
    def deleted(self) -> bool:
        return self.encoded is None


def newer(a: ValueWrite, b: ValueWrite) -> bool:
    """True when ``a`` replaces ``b`` (the rule the store's conditional upserts also apply)."""
    return a.order > b.order


def merge(
    current: Mapping[tuple[ValueKind, str], ValueWrite], writes: Iterable[ValueWrite]
) -> dict[tuple[ValueKind, str], ValueWrite]:
    """The registers after applying ``writes`` to ``current`` (tombstones included)."""
    out = dict(current)
    for w in writes:
        key = (w.kind, w.name)
        old = out.get(key)
        if old is None or newer(w, old):
            out[key] = w
    return out


@dataclass(slots=True)
class ProfileUpdate:
    """Everything one batch changes on one profile."""

    workspace_id: int
    mpid: int
    received_ms: int
    values: list[ValueWrite]
    limits: dict[str, int] = field(default_factory=dict)


def batch_time(batch: Batch, received_ms: int) -> int:
    """The time a batch's snapshot describes, never after it was received.

    The batch's own ``timestamp_unixtime_ms`` (the Web SDK sets it at upload) if present, else
    its latest event timestamp, else the receive time.
    """
    ts = batch.timestamp_unixtime_ms
    if ts is None:
        event_times = [
            e.data.timestamp_unixtime_ms
            for e in batch.events
            if e.data is not None and e.data.timestamp_unixtime_ms is not None
        ]
        ts = max(event_times) if event_times else received_ms
    return min(ts, received_ms)


def update_from_batch(
    batch: Batch, *, workspace_id: int, mpid: int, received_ms: int
) -> ProfileUpdate:
    """What ``batch`` changes on profile ``mpid``.

    Writes are reduced to one per register inside the batch, later positions winning at equal
    timestamps (events in order, then ``user_attributes``, then ``deleted_user_attributes``).
    A batch's activity, which the profile lifetime runs from, is not part of the update: the
    identity step records it on the identity record (ADR 0006).
    """
    at = batch_time(batch, received_ms)
    limits: dict[str, int] = {}
    ordered: list[ValueWrite] = []
    snapshot = batch.user_attributes or {}
    allowed_names = set(snapshot)

    for event in batch.events:
        data = event.data
        if data is None:
            continue
        ts = (
            at
            if data.timestamp_unixtime_ms is None
            else min(data.timestamp_unixtime_ms, received_ms)
        )
        if isinstance(event, UserAttributeChangeEvent) and event.data is not None:
            change = event.data
            name = change.user_attribute_name
            if change.deleted:
                if len(name) <= MAX_ATTRIBUTE_NAME_LENGTH:
                    ordered.append(ValueWrite.deletion(ValueKind.ATTRIBUTE, name, ts))
                continue
            value = format_value(change.new)
            problem = attribute_problem(name, value)
            if problem is None and name not in allowed_names:
                if len(allowed_names) >= MAX_USER_ATTRIBUTES:
                    problem = LimitReason.USER_ATTRIBUTES_OVER_COUNT
                else:
                    allowed_names.add(name)
            if problem is not None:
                limits[problem.value] = limits.get(problem.value, 0) + 1
                continue
            ordered.append(ValueWrite.of(ValueKind.ATTRIBUTE, name, value, ts))
        elif isinstance(event, OptOutEvent) and event.data is not None:
            opted_out = bool(event.data.is_opted_out)  # JREF: absent means false
            ordered.append(ValueWrite.of(ValueKind.FIELD, ProfileField.IS_OPTED_OUT, opted_out, ts))

    for name, raw in snapshot.items():
        ordered.append(ValueWrite.of(ValueKind.ATTRIBUTE, name, format_value(raw), at))
    for name in batch.deleted_user_attributes or ():
        if len(name) <= MAX_ATTRIBUTE_NAME_LENGTH:
            ordered.append(ValueWrite.deletion(ValueKind.ATTRIBUTE, name, at))

    info = batch.device_info
    if info is not None and info.limit_ad_tracking is not None:
        ordered.append(
            ValueWrite.of(
                ValueKind.FIELD, ProfileField.LIMIT_AD_TRACKING, info.limit_ad_tracking, at
            )
        )
    attribution = batch.attribution_info
    if attribution is not None:
        doc = {k: v for k, v in asdict(attribution).items() if v is not None}
        if doc:
            ordered.append(ValueWrite.of(ValueKind.FIELD, ProfileField.ATTRIBUTION, doc, at))

    reduced: dict[tuple[ValueKind, str], ValueWrite] = {}
    for w in ordered:  # within a batch, position breaks timestamp ties (later wins)
        key = (w.kind, w.name)
        old = reduced.get(key)
        if old is None or w.ts_ms >= old.ts_ms:
            reduced[key] = w

    return ProfileUpdate(
        workspace_id=workspace_id,
        mpid=mpid,
        received_ms=received_ms,
        values=list(reduced.values()),
        limits=limits,
    )


# --- Lifetime ---------------------------------------------------------------------------------

LIFETIME_SETTING = "profile_lifetime_days"
"""Workspace setting that overrides ``Settings.profile_lifetime_days`` for one workspace."""


def lifetime_days(workspace_settings: Mapping[str, Any], default_days: int) -> int:
    """The workspace's profile lifetime; a missing or unusable override means the default."""
    raw = workspace_settings.get(LIFETIME_SETTING)
    if isinstance(raw, bool) or not isinstance(raw, int | float) or raw <= 0:
        return default_days
    return int(raw)


# --- The Profile API view ---------------------------------------------------------------------


class Section(StrEnum):
    """Values of the Profile API's ``fields`` query parameter (profile-api.md §3.3)."""

    DEVICE_IDENTITIES = "device_identities"
    USER_IDENTITIES = "user_identities"
    USER_ATTRIBUTES = "user_attributes"
    AUDIENCE_MEMBERSHIPS = "audience_memberships"
    ATTRIBUTION = "attribution"


@functools.lru_cache(maxsize=256)
def parse_fields(raw: str | None) -> frozenset[Section]:
    """Sections named in ``fields``. Absent or empty names none: each section must be asked
    for (PAPI), and the top-level values are always returned. Unknown names are a 400.

    Cached: clients send the same few ``fields`` strings on every lookup (a refusal raises,
    so it is never cached)."""
    if not raw:
        return frozenset()
    out: set[Section] = set()
    for part in raw.split(","):
        name = part.strip()
        if not name:
            continue
        try:
            out.add(Section(name))
        except ValueError:
            allowed = ", ".join(s.value for s in Section)
            raise BadRequest(f"unknown field {name[:64]!r}; allowed: {allowed}") from None
    return frozenset(out)


@dataclass(frozen=True, slots=True)
class AudienceMembership:
    audience_id: int
    audience_name: str
    expiration_timestamp_ms: int | None = None


class ProfileView(msgspec.Struct, frozen=True, gc=False):
    """One profile as the Profile API shows it; identity types use Profile API names.

    A Struct rather than a frozen dataclass: one is built per lookup, and a frozen
    dataclass's ``__init__`` (a ``object.__setattr__`` per field) cost ~8 us of it."""

    mpid: int
    created_ms: int
    last_stored_ms: int
    is_opted_out: bool
    limit_ad_tracking: bool | None
    user_identities: tuple[tuple[str, str], ...]
    device_identities: tuple[tuple[str, str], ...]
    user_attributes: dict[str, FormattedValue]
    audience_memberships: tuple[AudienceMembership, ...]
    attribution: dict[str, str] | None
    sections: frozenset[Section]


def registers_view(
    rows: Sequence[tuple[str, str, str | None]],
) -> tuple[dict[str, FormattedValue], dict[ProfileField, Any]]:
    """Split stored ``(kind, name, encoded)`` rows into live attributes and profile fields
    (``kind`` is a ``ValueKind`` or its string value)."""
    attributes: dict[str, FormattedValue] = {}
    fields: dict[ProfileField, Any] = {}
    for kind, name, encoded in rows:
        if encoded is None:
            continue
        if kind == ValueKind.ATTRIBUTE:
            attributes[name] = decode_value(encoded)
        else:
            try:
                fields[ProfileField(name)] = decode_value(encoded)
            except ValueError:
                continue
    return dict(sorted(attributes.items())), fields


# --- The resolve endpoint's body --------------------------------------------------------------

ENVIRONMENTS = ("development", "production")


class ResolveIdentity(msgspec.Struct, kw_only=True):
    type: str
    value: str


class ResolveRequest(msgspec.Struct, kw_only=True):
    """``POST /userprofile/v1/resolve/...`` body (profile-api.md §3.2)."""

    environment_type: str
    identity: ResolveIdentity

    def checked_type(self) -> IdentityType:
        """The identity type, after checking the documented rules (all failures are 400).

        ``environment_type`` is validated but does not filter: profiles are not split by
        environment here (ADR 0006).
        """
        if self.environment_type not in ENVIRONMENTS:
            raise BadRequest("environment_type must be 'development' or 'production'")
        identity_type = from_profile_api(self.identity.type)
        if not identity_type.is_user:
            raise BadRequest(
                f"identity.type {self.identity.type!r} is a device identity; "
                "resolve needs an immutable user identity such as customer_id"
            )
        if not self.identity.value:
            raise BadRequest("identity.value must not be empty")
        return identity_type


_RESOLVE_DECODER = msgspec.json.Decoder(ResolveRequest)


def decode_resolve_request(body: bytes) -> ResolveRequest:
    try:
        return _RESOLVE_DECODER.decode(body)
    except msgspec.DecodeError as exc:  # ValidationError included
        raise BadRequest(f"invalid resolve request: {exc}") from None
