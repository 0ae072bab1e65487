"""Per-batch service limits (events-api.md §5.3) and the historical-endpoint rules (§2.1).

mParticle documents what its *server* does for only two cases (event names and event attribute
names are truncated); for the rest it documents what its *SDKs* do. We follow the server rule
where there is one and the SDK rule otherwise, always at the smallest granularity (one attribute
or one identity), and count every intervention in a ``LimitReport`` for metrics. The full table
and its reasoning are in docs/adr/0003-batch-decoding-and-limits.md.

Most batches are within every limit, so the checks are written to touch each value once and
to rebuild nothing unless something actually changed.
"""

from __future__ import annotations

from collections.abc import ItemsView
from dataclasses import dataclass, field
from enum import StrEnum

from msgspec.structs import astuple, replace

from opencdp.events.schema import (
    MAX_BATCH_BYTES,
    MAX_BULK_BATCHES,
    MAX_REQUEST_BYTES,
    Batch,
    CommerceEventData,
    CustomEventData,
    Event,
    EventData,
    Scalar,
    ScreenViewData,
    UserAttributeValue,
    UserIdentities,
)

__all__ = [
    "HISTORICAL_MIN_AGE_MS",
    "MAX_ATTRIBUTES_PER_EVENT",
    "MAX_ATTRIBUTE_NAME_LENGTH",
    "MAX_ATTRIBUTE_VALUE_LENGTH",
    "MAX_BATCH_BYTES",
    "MAX_BULK_BATCHES",
    "MAX_EVENT_NAME_LENGTH",
    "MAX_IDENTITY_VALUE_LENGTH",
    "MAX_REQUEST_BYTES",
    "MAX_USER_ATTRIBUTES",
    "MAX_USER_ATTRIBUTE_LIST_ENTRIES",
    "MAX_USER_ATTRIBUTE_LIST_ENTRY_LENGTH",
    "LimitReason",
    "LimitReport",
    "apply_limits",
    "check_historical",
]

# Lengths are counted in Unicode code points (Python ``len``); the docs say "characters".
MAX_EVENT_NAME_LENGTH = 256
MAX_ATTRIBUTES_PER_EVENT = 100
MAX_ATTRIBUTE_NAME_LENGTH = 256
MAX_ATTRIBUTE_VALUE_LENGTH = 4096
MAX_USER_ATTRIBUTES = 100
MAX_USER_ATTRIBUTE_LIST_ENTRIES = 1000
MAX_USER_ATTRIBUTE_LIST_ENTRY_LENGTH = 512
MAX_IDENTITY_VALUE_LENGTH = 256
HISTORICAL_MIN_AGE_MS = 72 * 3600 * 1000


class LimitReason(StrEnum):
    """Why something was changed; the value is the metric label."""

    EVENT_NAME_TRUNCATED = "event_name_truncated"
    EVENT_DROPPED_NAME_TOO_LONG = "event_dropped_name_too_long"
    EVENT_ATTRIBUTE_NAME_TRUNCATED = "event_attribute_name_truncated"
    EVENT_ATTRIBUTE_NAME_TOO_LONG = "event_attribute_name_too_long"
    EVENT_ATTRIBUTE_VALUE_TOO_LONG = "event_attribute_value_too_long"
    EVENT_ATTRIBUTES_OVER_COUNT = "event_attributes_over_count"
    USER_ATTRIBUTES_OVER_COUNT = "user_attributes_over_count"
    USER_ATTRIBUTE_NAME_TOO_LONG = "user_attribute_name_too_long"
    USER_ATTRIBUTE_VALUE_TOO_LONG = "user_attribute_value_too_long"
    USER_ATTRIBUTE_LIST_TOO_LONG = "user_attribute_list_too_long"
    USER_ATTRIBUTE_LIST_ENTRY_TOO_LONG = "user_attribute_list_entry_too_long"
    IDENTITY_VALUE_TOO_LONG = "identity_value_too_long"


@dataclass(slots=True)
class LimitReport:
    """Counts of limit interventions for one batch, keyed by ``LimitReason`` value."""

    counts: dict[str, int] = field(default_factory=dict)

    def add(self, reason: LimitReason, n: int = 1) -> None:
        self.counts[reason.value] = self.counts.get(reason.value, 0) + n

    def items(self) -> ItemsView[str, int]:
        """``(reason, count)`` pairs, for feeding metrics."""
        return self.counts.items()

    def __bool__(self) -> bool:
        return bool(self.counts)

    @property
    def total(self) -> int:
        return sum(self.counts.values())

    def merge(self, other: LimitReport) -> None:
        """Add another report's counts into this one (e.g. across a bulk request)."""
        for reason, n in other.counts.items():
            self.counts[reason] = self.counts.get(reason, 0) + n


def apply_limits(batch: Batch, *, server_to_server: bool) -> tuple[Batch, LimitReport]:
    """Return the batch brought within limits, and what was changed.

    ``server_to_server`` selects the Events API reaction where it differs from the SDK one:
    an over-long event name or attribute name is truncated for S2S callers; from a client SDK
    (which would never have sent it) the event, or that attribute, is dropped instead.
    The input batch is never mutated; when nothing is over a limit it is returned as is.
    """
    report = LimitReport()
    changes: dict[str, object] = {}

    events = batch.events
    new_events: list[Event] | None = None
    for index, event in enumerate(events):
        limited = _limit_event(event, server_to_server, report)
        if limited is not event and new_events is None:
            new_events = list(events[:index])
        if new_events is not None and limited is not None:
            new_events.append(limited)
    if new_events is not None:
        changes["events"] = new_events

    if batch.user_attributes:
        attrs = _limit_user_attributes(batch.user_attributes, report)
        if attrs is not batch.user_attributes:
            changes["user_attributes"] = attrs

    if batch.user_identities is not None:
        ids = _limit_identities(batch.user_identities, report)
        if ids is not batch.user_identities:
            changes["user_identities"] = ids

    if not changes:
        return batch, report
    return replace(batch, **changes), report


# --- Events -----------------------------------------------------------------------------------


def _limit_event(event: Event, s2s: bool, report: LimitReport) -> Event | None:
    """The event unchanged, a limited copy, or None when the event must be dropped."""
    data = event.data
    if data is None:
        return event
    name_field = _NAME_FIELDS.get(type(data))
    name: str | None = getattr(data, name_field) if name_field is not None else None
    attrs = data.custom_attributes
    name_over = name is not None and len(name) > MAX_EVENT_NAME_LENGTH
    attrs_over = attrs is not None and _attributes_over(attrs)
    if not name_over and not attrs_over:
        return event  # the common case: nothing to do, nothing allocated

    changes: dict[str, object] = {}
    if name_over and name_field is not None and name is not None:
        if not s2s:
            report.add(LimitReason.EVENT_DROPPED_NAME_TOO_LONG)
            return None
        report.add(LimitReason.EVENT_NAME_TRUNCATED)
        changes[name_field] = name[:MAX_EVENT_NAME_LENGTH]
    if attrs_over and attrs:
        changes["custom_attributes"] = _limit_event_attributes(attrs, s2s, report)
    return replace(event, data=replace(data, **changes))


_NAME_FIELDS: dict[type[EventData], str] = {
    CustomEventData: "event_name",
    CommerceEventData: "event_name",
    ScreenViewData: "screen_name",
}


def _attributes_over(attrs: dict[str, Scalar]) -> bool:
    """Cheap yes/no: is any event-attribute limit exceeded? (A plain loop: no generator.)"""
    if len(attrs) > MAX_ATTRIBUTES_PER_EVENT:
        return True
    for key, value in attrs.items():
        if len(key) > MAX_ATTRIBUTE_NAME_LENGTH:
            return True
        if type(value) is str and len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
            return True
    return False


def _limit_event_attributes(
    attrs: dict[str, Scalar], s2s: bool, report: LimitReport
) -> dict[str, Scalar]:
    out: dict[str, Scalar] = {}
    for key, value in attrs.items():
        if type(value) is str and len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
            report.add(LimitReason.EVENT_ATTRIBUTE_VALUE_TOO_LONG)
            continue
        if len(key) > MAX_ATTRIBUTE_NAME_LENGTH:
            if not s2s:
                report.add(LimitReason.EVENT_ATTRIBUTE_NAME_TOO_LONG)
                continue
            report.add(LimitReason.EVENT_ATTRIBUTE_NAME_TRUNCATED)
            key = key[:MAX_ATTRIBUTE_NAME_LENGTH]
            if key in out:  # truncation collided with an earlier key: the first one wins
                continue
        out[key] = value
    if len(out) > MAX_ATTRIBUTES_PER_EVENT:
        report.add(LimitReason.EVENT_ATTRIBUTES_OVER_COUNT, len(out) - MAX_ATTRIBUTES_PER_EVENT)
        out = dict(list(out.items())[:MAX_ATTRIBUTES_PER_EVENT])
    return out


# --- User attributes and identities -----------------------------------------------------------


def _user_attribute_problem(name: str, value: UserAttributeValue) -> LimitReason | None:
    if len(name) > MAX_ATTRIBUTE_NAME_LENGTH:
        return LimitReason.USER_ATTRIBUTE_NAME_TOO_LONG
    if type(value) is str:
        if len(value) > MAX_ATTRIBUTE_VALUE_LENGTH:
            return LimitReason.USER_ATTRIBUTE_VALUE_TOO_LONG
    elif type(value) is list:
        if len(value) > MAX_USER_ATTRIBUTE_LIST_ENTRIES:
            return LimitReason.USER_ATTRIBUTE_LIST_TOO_LONG
        for entry in value:
            if type(entry) is str and len(entry) > MAX_USER_ATTRIBUTE_LIST_ENTRY_LENGTH:
                return LimitReason.USER_ATTRIBUTE_LIST_ENTRY_TOO_LONG
    return None


def _limit_user_attributes(
    attrs: dict[str, UserAttributeValue], report: LimitReport
) -> dict[str, UserAttributeValue]:
    """Drop each offending attribute, then keep the first ``MAX_USER_ATTRIBUTES`` (SDK rule)."""
    out: dict[str, UserAttributeValue] | None = None
    for index, (name, value) in enumerate(attrs.items()):
        problem = _user_attribute_problem(name, value)
        if problem is not None:
            report.add(problem)
            if out is None:
                out = dict(list(attrs.items())[:index])
        elif out is not None:
            out[name] = value
    result = attrs if out is None else out
    if len(result) > MAX_USER_ATTRIBUTES:
        report.add(LimitReason.USER_ATTRIBUTES_OVER_COUNT, len(result) - MAX_USER_ATTRIBUTES)
        result = dict(list(result.items())[:MAX_USER_ATTRIBUTES])
    return result


def _limit_identities(ids: UserIdentities, report: LimitReport) -> UserIdentities:
    """Drop identities over the length limit; truncating one could match a different user."""
    # Values are str or None after decoding; the longest present one decides (checked in C).
    if max(map(len, filter(None, astuple(ids))), default=0) <= MAX_IDENTITY_VALUE_LENGTH:
        return ids
    too_long = {
        name: None
        for name, value in ids.as_dict().items()
        if len(value) > MAX_IDENTITY_VALUE_LENGTH
    }
    report.add(LimitReason.IDENTITY_VALUE_TOO_LONG, len(too_long))
    return replace(ids, **too_long)


# --- Historical endpoint ----------------------------------------------------------------------


def check_historical(batch: Batch, now_ms: int) -> str | None:
    """Why ``/v2/bulkevents/historical`` must not process this batch, or None if it may.

    A batch is refused if it has no events, if any event lacks ``timestamp_unixtime_ms``, or if
    any event is less than 72 hours old (future timestamps included).
    """
    if not batch.events:
        return "Historical batch has no events"
    cutoff = now_ms - HISTORICAL_MIN_AGE_MS
    for index, event in enumerate(batch.events):
        ts = event.data.timestamp_unixtime_ms if event.data is not None else None
        if ts is None:
            return f"Historical batch event {index} has no timestamp_unixtime_ms"
        if ts > cutoff:
            return f"Historical batch event {index} is less than 72 hours old"
    return None
