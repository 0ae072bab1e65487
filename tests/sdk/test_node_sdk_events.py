"""The official Node SDK (npm `mparticle` 1.0.8) as a client of the Events API."""

from __future__ import annotations

import time

import pytest
import sqlalchemy as sa

from tests.sdk import node_harness as nh
from tests.sdk.conftest import Live

pytestmark = pytest.mark.node


def test_node_sdk_single_and_bulk(live: Live) -> None:
    nh.require_node()
    job = {
        "baseUrl": live.url,
        "apiKey": live.creds.api_key,
        "apiSecret": live.creds.api_secret,
        "mode": "both",
        "echoPayload": True,
        "batches": [
            {
                "environment": "development",
                "user_identities": {"customer_id": "node-1", "email": "n@example.com"},
                "user_attributes": {"plan": "team"},
                "events": [
                    {
                        "event_type": "custom_event",
                        "data": {"event_name": "clicked", "custom_event_type": "navigation"},
                    },
                    {"event_type": "screen_view", "data": {"screen_name": "home"}},
                ],
            }
        ],
    }
    lines = nh.send_events(job)
    assert lines, "the harness printed nothing"
    for line in lines:
        assert line["ok"], line
        assert line["status"] == 202
    deadline = time.monotonic() + 10
    while live.runtime.processing.pending() > 0:
        assert time.monotonic() < deadline
        time.sleep(0.05)
    with live.runtime.db.read() as conn:
        n = conn.execute(
            sa.text(
                "SELECT count(*) FROM events e JOIN identity_values v ON v.mpid = e.mpid "
                "AND v.identity_type = 'customer_id' AND v.value = 'node-1'"
            )
        ).scalar_one()
    assert n >= 2


def test_node_sdk_wrong_secret(live: Live) -> None:
    nh.require_node()
    lines = nh.send_events(
        {"baseUrl": live.url, "apiKey": live.creds.api_key, "apiSecret": "bad", "mode": "single"}
    )
    assert lines and not lines[0]["ok"]
    assert lines[0]["status"] == 403
