"""Web SDK endpoints (events upload, config) over HTTP, on every configured store."""

from __future__ import annotations

import json
import uuid
from typing import Any

import pytest

from opencdp.events import store as event_store
from opencdp.ingestion import store as inbox_store
from opencdp.tenancy.model import Platform
from tests.conftest import App
from tests.support.batches import batch

ORIGIN = "http://shop.example:3000"
# what the SDK sends: one batch as text/plain, so the browser skips the preflight
TEXT = {
    "Content-Type": "text/plain;charset=UTF-8",
    "Accept": "text/plain;charset=UTF-8",
    "Origin": ORIGIN,
}


def _events(
    app: App, body: bytes | str, key: str | None = None, prefix: str = "/webevents/v3/JS"
) -> Any:
    return app.client.post(
        f"{prefix}/{key or app.creds.web_api_key}/events", content=body, headers=TEXT
    )


def _count(app: App, processed: bool | None = None) -> int:
    with app.runtime.db.read() as conn:
        return inbox_store.count_batches(conn, processed=processed)


def _rejected(app: App, reason: str) -> float:
    value = app.runtime.metrics.registry.get_sample_value(
        "opencdp_ingestion_batches_rejected_total", {"route": "web", "reason": reason}
    )
    return value or 0.0


def _events_error(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.json()["errors"][0]["code"] == code


def test_batch_lands_on_the_profile_identify_returned(app: App) -> None:
    known = {"customerid": "web-1", "email": "w@example.com", "device_application_stamp": "das"}
    r = app.client.post(
        "/identity/v1/identify",
        json={"environment": "production", "known_identities": known},
        headers={"x-mp-key": app.creds.web_api_key, "Origin": ORIGIN},
    )
    mpid = r.json()["mpid"]
    b = {**batch(customer_id="web-1", events=4), "mpid": mpid, "mp_deviceid": "das"}
    r = _events(app, json.dumps(b))
    assert r.status_code == 202 and r.content == b""
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert _count(app) == 1  # durable before the 202
    app.runtime.worker.drain()
    with app.runtime.db.read() as conn:
        rows = event_store.events_for_profile(
            conn, workspace_id=app.creds.workspace_id, mpid=int(mpid)
        )
        assert event_store.count_events(conn) == 4
    assert len(rows) == 4 and {row["mpid"] for row in rows} == {int(mpid)}


def test_mparticle_host_layout_and_dedup(app: App) -> None:
    body = json.dumps(batch(source_request_id=str(uuid.uuid4())))
    assert _events(app, body).status_code == 202
    assert _events(app, body, prefix="/v3/JS").status_code == 202  # the SDK retrying
    app.runtime.worker.drain()
    with app.runtime.db.read() as conn:
        assert event_store.count_events(conn) == len(json.loads(body)["events"])  # applied once


@pytest.mark.parametrize(
    "body",
    [b"{", b"[]", b"", b'{"events": 5}', b'{"events":[{"data":{}}]}'],
    ids=["truncated", "array", "empty", "events-not-a-list", "no-event-type"],
)
def test_a_batch_that_will_never_be_accepted_is_202_and_counted(app: App, body: bytes) -> None:
    r = _events(app, body)
    # a 400 would make the Web SDK re-send it forever (client-sdk-endpoints.md §2.2)
    assert r.status_code == 202
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.json()["accepted_batches"] == 0 and r.json()["errors"]
    assert _count(app) == 0
    assert _rejected(app, "invalid") == 1


def test_wrong_keys_are_refused_with_cors(app: App) -> None:
    _events_error(_events(app, json.dumps(batch()), key="no-such-key"), 403, "FORBIDDEN")
    # the server input's key does not allow key-only access
    _events_error(_events(app, json.dumps(batch()), key=app.creds.api_key), 403, "FORBIDDEN")
    assert _count(app) == 0


def test_oversized_upload_is_413_with_cors(app: App) -> None:
    big = batch(attributes={"blob": "x" * 300_000})
    _events_error(_events(app, json.dumps(big)), 413, "BAD_REQUEST")


def test_events_preflight(app: App) -> None:
    r = app.client.options(
        f"/webevents/v3/JS/{app.creds.web_api_key}/events",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "POST"},
    )
    assert r.status_code == 204 and r.headers["access-control-allow-origin"] == ORIGIN


# -- config -----------------------------------------------------------------------------------


def _config(app: App, key: str, path: str = "/tags/JS/v2", env: str = "0") -> Any:
    headers = {"Accept": "text/plain;charset=UTF-8", "Origin": ORIGIN}
    return app.client.get(f"{path}/{key}/config?env={env}", headers=headers)


def test_config_has_what_the_sdk_reads(app: App) -> None:
    r = _config(app, app.creds.web_api_key)
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["access-control-allow-origin"] == ORIGIN
    doc = r.json()
    assert set(doc) == {"workspaceToken", "kitConfigs", "pixelConfigs", "flags"}
    assert doc["kitConfigs"] == [] and doc["pixelConfigs"] == []
    assert len(doc["workspaceToken"]) == 8 and doc["workspaceToken"].isalnum()
    assert all(isinstance(v, str) for v in doc["flags"].values())
    assert doc["flags"]["eventBatchingIntervalMillis"] == "0"
    for never in ("reportBatching", "directURLRouting"):  # would change the SDK's behaviour
        assert never not in doc["flags"]
    same = _config(app, app.creds.web_api_key, path="/JS/v2", env="1").json()
    assert same == doc


def test_workspace_token_is_per_workspace(app: App) -> None:
    other_ws = app.runtime.tenancy.create_workspace(account_id=app.creds.account_id, name="b")
    key, _ = app.runtime.tenancy.create_input(
        workspace_id=other_ws, platform=Platform.WEB, name="w"
    )
    mine = _config(app, app.creds.web_api_key).json()["workspaceToken"]
    theirs = _config(app, key).json()["workspaceToken"]
    assert mine != theirs
    assert _config(app, key).json()["workspaceToken"] == theirs


def test_config_for_unknown_or_server_keys_is_403(app: App) -> None:
    _events_error(_config(app, "no-such-key"), 403, "FORBIDDEN")
    _events_error(_config(app, app.creds.api_key), 403, "FORBIDDEN")
