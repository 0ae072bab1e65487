"""Self-check of the SDK harness against node/wire_recorder.js (a canned loopback stub, not opencdp).

Proves the harness drives each official SDK and pins the wire facts documented in
docs/sdk-clients.md. Skips when node/npm packages/chromium are missing (scripts/setup-browser.sh).
"""

from __future__ import annotations

import base64
import json
import subprocess
import urllib.request
from collections.abc import Iterator
from typing import Any

import node_harness as nh
import pysdk
import pytest

KEY, SECRET = "us1-selfcheck", "selfcheck-secret"


@pytest.fixture(autouse=True)
def _reset_py_sdk_backoff() -> Iterator[None]:
    pysdk.reset_retry_after()
    yield
    pysdk.reset_retry_after()


@pytest.fixture(scope="module")
def recorder() -> Iterator[str]:
    reason = nh.node_ready()
    if reason:
        pytest.skip(reason)
    proc = subprocess.Popen(
        ["node", str(nh.NODE_DIR / "wire_recorder.js"), "--port", "0"],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert proc.stdout is not None
        port = json.loads(proc.stdout.readline())["listening"]
        yield f"http://127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _recorded(base: str, clear: bool = True) -> list[dict[str, Any]]:
    with urllib.request.urlopen(base + "/__recorded") as r:
        data: list[dict[str, Any]] = json.load(r)
    if clear:
        urllib.request.urlopen(
            urllib.request.Request(base + "/__recorded", method="DELETE")
        ).close()
    return data


def _force(base: str, answers: list[dict[str, Any]]) -> None:
    req = urllib.request.Request(base + "/__next", data=json.dumps(answers).encode(), method="POST")
    urllib.request.urlopen(req).close()


@pytest.mark.node
def test_python_sdk_wire(recorder: str) -> None:
    _recorded(recorder)
    res = pysdk.send_batch(recorder, KEY, SECRET, pysdk.sample_batch(mpid=-42))
    assert res.ok and res.status == 202, res
    bulk = pysdk.send_bulk(recorder, KEY, SECRET, [pysdk.sample_batch(), pysdk.sample_batch()])
    assert bulk.ok, bulk
    single, many = _recorded(recorder)
    assert single["path"] == "/v2/events" and many["path"] == "/v2/bulkevents"
    h = single["headers"]
    assert h["authorization"] == "Basic " + base64.b64encode(f"{KEY}:{SECRET}".encode()).decode()
    assert h["content-type"] == "application/json"
    assert h["user-agent"] == "mParticle Python client/0.16.0"
    body = single["body"]
    assert body["mpid"] == -42
    assert body["user_identities"]["customerid"] == "py-sdk-customer-1"
    types = [e["event_type"] for e in body["events"]]
    assert types == [
        "session_start",
        "custom_event",
        "screen_view",
        "commerce_event",
        "commerce_event",  # CrashReportEvent, mislabelled by the SDK
        "session_end",
    ]
    assert body["events"][4]["data"]["class_name"] == "ValueError"
    assert isinstance(many["body"], list) and len(many["body"]) == 2


@pytest.mark.node
def test_python_sdk_retry_after_is_process_wide(recorder: str) -> None:
    _recorded(recorder)
    _force(recorder, [{"status": 429, "headers": {"Retry-After": "30"}, "body": ""}])
    first = pysdk.send_batch(recorder, KEY, SECRET, pysdk.sample_batch())
    assert first.status == 429 and not first.throttled_locally
    second = pysdk.send_batch(recorder, KEY, SECRET, pysdk.sample_batch())
    assert second.status == 429 and second.throttled_locally
    assert len(_recorded(recorder)) == 1  # the second call never left the process
    pysdk.reset_retry_after()
    assert pysdk.send_batch(recorder, KEY, SECRET, pysdk.sample_batch()).ok


@pytest.mark.node
def test_node_sdk_wire(recorder: str) -> None:
    _recorded(recorder)
    lines = nh.send_events({"baseUrl": recorder, "apiKey": KEY, "apiSecret": SECRET})
    assert [(x["call"], x["status"], x["ok"]) for x in lines] == [
        ("uploadEvents", 202, True),
        ("bulkUploadEvents", 202, True),
    ]
    single, bulk = _recorded(recorder)
    assert single["path"] == "/v2/events" and bulk["path"] == "/v2/bulkevents"
    assert single["headers"]["authorization"].startswith("Basic ")
    assert single["headers"]["content-type"] == "application/json"
    assert single["body"]["user_identities"]["customerid"] == "node-sdk-customer-1"
    assert "crash_report" in [e["event_type"] for e in single["body"]["events"]]
    assert isinstance(bulk["body"], list)


@pytest.mark.browser
def test_web_sdk_flow(recorder: str) -> None:
    reason = nh.browser_ready()
    if reason:
        pytest.skip(reason)
    _recorded(recorder)
    page = nh.web_sdk_page(recorder, KEY, request_config=True, alias=True, settle=700)
    assert page["ok"], page["problems"]
    assert page["mpid"] and isinstance(page["mpid"], str)
    kinds = [r["kind"] for r in page["requests"]]
    assert kinds[:2] == ["config", "identity:identify"]
    assert "events" in kinds and "identity:login" in kinds and "alias" in kinds
    assert page["state"]["workspaceToken"] == "WRKSPCE0"  # read from the /config answer
    seen = {(r["method"], r["path"].split("?")[0]) for r in _recorded(recorder)}
    assert ("GET", f"/tags/JS/v2/{KEY}/config") in seen
    assert ("OPTIONS", "/identity/v1/identify") in seen  # CORS preflight (x-mp-key + JSON)
    assert ("POST", f"/webevents/v3/JS/{KEY}/events") in seen
    assert ("OPTIONS", f"/webevents/v1/identity/{KEY}/Alias") in seen
    assert ("POST", f"/webevents/v1/identity/{KEY}/Alias") in seen


@pytest.mark.browser
def test_web_sdk_unreachable_server_reports_failure() -> None:
    reason = nh.browser_ready()
    if reason:
        pytest.skip(reason)
    page = nh.web_sdk_page("http://127.0.0.1:1", KEY, request_config=False, settle=300)
    assert page["_exit_code"] == 1 and not page["ok"]
    assert page["mpid"] is None
    assert page["identify"]["httpCode"] == -1
