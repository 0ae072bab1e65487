"""Uniform read access to any event envelope (the pipeline stores every type the same way)."""

from __future__ import annotations

from opencdp.events.schema import EventEnvelope


def event_type_of(event: EventEnvelope) -> str:
    return event.event_type


def event_name_of(event: EventEnvelope) -> str | None:
    """The name a person would search for: the custom event name or the screen name."""
    data = event.data
    if data is None:
        return None
    name = getattr(data, "event_name", None) or getattr(data, "screen_name", None)
    return name if isinstance(name, str) else None


def event_timestamp_of(event: EventEnvelope) -> int | None:
    data = event.data
    return None if data is None else data.timestamp_unixtime_ms
