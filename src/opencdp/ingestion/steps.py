"""The pipeline steps that belong to ingestion itself."""

from __future__ import annotations

from typing import Any

import msgspec
from sqlalchemy.engine import Connection

from opencdp.events import service as events_service
from opencdp.events.access import event_name_of, event_timestamp_of, event_type_of
from opencdp.events.service import new_event_id
from opencdp.ingestion.pipeline import WorkItem


class StoreEvents:
    """Assign server event ids and receive times, and append the events to the event store."""

    name = "store_events"

    def apply(self, tx: Connection, items: list[WorkItem], now_ms: int) -> None:
        encode = msgspec.json.encode
        rows: list[dict[str, Any]] = []
        for item in items:
            env = item.batch.environment
            for ev in item.batch.events or ():
                ts = event_timestamp_of(ev)
                rows.append(
                    {
                        "event_id": new_event_id(),
                        "workspace_id": item.workspace_id,
                        "mpid": item.mpid,
                        "batch_id": item.batch_id,
                        "event_type": event_type_of(ev),
                        "event_name": event_name_of(ev),
                        "timestamp_ms": ts if ts is not None else item.received_ms,
                        "received_ms": item.received_ms,
                        "environment": env,
                        "data": encode(ev),
                    }
                )
        events_service.append(tx, rows)
