"""Realistic batches for tests and benchmarks."""

from __future__ import annotations

import time
import uuid
from typing import Any


def batch(
    *,
    customer_id: str | None = "c-1",
    email: str | None = None,
    events: int = 3,
    source_request_id: str | None = None,
    attributes: dict[str, Any] | None = None,
    ts_ms: int | None = None,
) -> dict[str, Any]:
    ts = ts_ms if ts_ms is not None else int(time.time() * 1000)
    ids: dict[str, str] = {}
    if customer_id is not None:
        ids["customer_id"] = customer_id
    if email is not None:
        ids["email"] = email
    return {
        "environment": "development",
        "source_request_id": source_request_id or str(uuid.uuid4()),
        "user_identities": ids,
        "user_attributes": attributes if attributes is not None else {"plan": "pro", "age": 42},
        "device_info": {"platform": "web", "ios_idfv": None},
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": f"event {i}",
                    "custom_event_type": "other",
                    "timestamp_unixtime_ms": ts + i,
                    "custom_attributes": {"k": "v", "n": i},
                },
            }
            for i in range(events)
        ],
    }
