"""Event-store use cases other slices call (they never touch events/store.py directly)."""

from __future__ import annotations

import random
from typing import Any

from sqlalchemy.engine import Connection

from opencdp.events import store

_rand = random.Random()


def new_event_id() -> int:
    """A signed 64-bit server event id (never 0), as mParticle's are."""
    while True:
        value = _rand.getrandbits(64) - (1 << 63)
        if value:
            return value


def append(tx: Connection, rows: list[dict[str, Any]]) -> None:
    """Append processed events (the pipeline's store step); joins ``tx``."""
    store.insert_events(tx, rows)


def copy_to_profile(
    tx: Connection,
    *,
    workspace_id: int,
    source_mpid: int,
    destination_mpid: int,
    start_ms: int,
    end_ms: int,
) -> int:
    """Copy the source profile's events in the window to the destination (alias); joins ``tx``."""
    return store.copy_events_to_profile(
        tx,
        workspace_id=workspace_id,
        source_mpid=source_mpid,
        destination_mpid=destination_mpid,
        start_ms=start_ms,
        end_ms=end_ms,
        new_event_id=new_event_id,
    )


def delete_for_profiles(tx: Connection, *, workspace_id: int, mpids: list[int]) -> None:
    store.delete_for_profiles(tx, workspace_id=workspace_id, mpids=mpids)
