"""Official server SDKs send batches; the Profile API serves the profile they built.

Python SDK (PyPI ``mparticle``) and Node SDK (npm ``mparticle``), each with its own identity
spelling (``customerid``), then the profile is read back by MPID and by resolve.
"""

from __future__ import annotations

import time
from typing import Any

import httpx
import mparticle
import pytest

from tests.sdk import node_harness as nh
from tests.sdk import pysdk
from tests.sdk.conftest import Live


def _token(live: Live) -> str:
    c = live.creds
    r = httpx.post(
        f"{live.url}/oauth/token",
        json={
            "client_id": c.client_id,
            "client_secret": c.client_secret,
            "audience": "https://api.mparticle.com",
            "grant_type": "client_credentials",
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def _wait_processed(live: Live) -> None:
    deadline = time.monotonic() + 15
    while live.runtime.processing.pending() > 0:
        assert time.monotonic() < deadline, "worker did not process"
        time.sleep(0.05)


def _resolve(live: Live, token: str, customer_id: str) -> dict[str, Any]:
    c = live.creds
    r = httpx.post(
        f"{live.url}/userprofile/v1/resolve/{c.org_id}/{c.account_id}/{c.workspace_id}",
        params={"fields": "user_identities,user_attributes"},
        headers={"Authorization": f"Bearer {token}"},
        json={
            "environment_type": "development",
            "identity": {"type": "customer_id", "value": customer_id},
        },
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def _by_mpid(live: Live, token: str, mpid: int) -> dict[str, Any]:
    c = live.creds
    r = httpx.get(
        f"{live.url}/userprofile/v1/{c.org_id}/{c.account_id}/{c.workspace_id}/{mpid}",
        params={"fields": "user_identities,user_attributes,device_identities"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    return dict(r.json())


def test_python_sdk_batch_is_served_by_the_profile_api(live: Live) -> None:
    pysdk.reset_retry_after()
    b = mparticle.Batch()
    b.environment = "development"
    ids = mparticle.UserIdentities()
    ids.customerid = "py-prof-1"  # the SDK's spelling of customer_id
    ids.email = "py-prof@example.com"
    b.user_identities = ids
    b.user_attributes = {"age": 42, "ratio": 19.5, "vip": True, "tags": ["a", "b"], "plan": "pro"}
    b.events = [mparticle.AppEvent(event_name="viewed", custom_event_type="navigation")]
    r = pysdk.send_batch(live.url, live.creds.api_key, live.creds.api_secret, b)
    assert r.ok, r
    _wait_processed(live)
    token = _token(live)
    resolved = _resolve(live, token, "py-prof-1")
    attrs = resolved["user_attributes"]
    assert attrs == {"age": "42", "ratio": "19.5", "vip": "true", "tags": ["a", "b"], "plan": "pro"}
    types = {i["type"]: i["value"] for i in resolved["user_identities"]}
    assert types["customer_id"] == "py-prof-1" and types["email"] == "py-prof@example.com"
    again = _by_mpid(live, token, int(resolved["mpid"]))
    assert again["user_attributes"] == attrs


@pytest.mark.node
def test_node_sdk_batch_is_served_by_the_profile_api(live: Live) -> None:
    nh.require_node()
    lines = nh.send_events(
        {
            "baseUrl": live.url,
            "apiKey": live.creds.api_key,
            "apiSecret": live.creds.api_secret,
            "mode": "single",
            "batches": [
                {
                    "environment": "development",
                    "user_identities": {"customer_id": "node-prof-1", "email": "n@example.com"},
                    "device_info": {"ios_idfv": "AAAAAAAA-1111-2222-3333-444444444444"},
                    "user_attributes": {"plan": "team", "seats": 7},
                    "events": [{"event_type": "custom_event", "data": {"event_name": "x"}}],
                }
            ],
        }
    )
    assert lines and all(line["ok"] for line in lines), lines
    _wait_processed(live)
    token = _token(live)
    resolved = _resolve(live, token, "node-prof-1")
    assert resolved["user_attributes"] == {"plan": "team", "seats": "7"}
    profile = _by_mpid(live, token, int(resolved["mpid"]))
    devices = {i["type"]: i["value"] for i in profile["device_identities"]}
    assert devices.get("ios_vendor_id") == "AAAAAAAA-1111-2222-3333-444444444444", profile
