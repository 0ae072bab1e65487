"""The Events API through real HTTP calls into the app, on every configured store."""

from __future__ import annotations

import json
import time

import msgspec

from opencdp.events import store as event_store
from opencdp.ingestion import store as inbox_store
from tests.conftest import App
from tests.support.batches import batch


def _count(app: App, processed: bool | None = None) -> int:
    with app.runtime.db.read() as conn:
        return inbox_store.count_batches(conn, processed=processed)


def test_single_batch_is_accepted_stored_and_processed(app: App) -> None:
    r = app.client.post("/v2/events", json=batch(events=3), headers=app.basic())
    assert r.status_code == 202
    assert r.content == b""
    assert _count(app) == 1  # durably stored before the 202
    app.runtime.worker.drain()
    assert _count(app, processed=True) == 1
    with app.runtime.db.read() as conn:
        assert event_store.count_events(conn) == 3


def test_missing_credentials_is_401_and_wrong_is_403(app: App) -> None:
    r = app.client.post("/v2/events", json=batch())
    assert r.status_code == 401
    assert r.headers["content-type"] == "application/json"
    assert r.json()["errors"][0]["code"] == "UNAUTHORIZED"
    r = app.client.post("/v2/events", json=batch(), headers=app.basic(secret="nope"))
    assert r.status_code == 403
    assert r.json()["errors"][0]["code"] == "FORBIDDEN"
    r = app.client.post("/v2/events", json=batch(), headers={"Authorization": "Basic !!!"})
    assert r.status_code == 403
    # the web input's key with the server input's secret is also wrong
    r = app.client.post("/v2/events", json=batch(), headers=app.basic(key=app.creds.web_api_key))
    assert r.status_code == 403
    assert _count(app) == 0


def test_documented_basic_header_vector_is_parsed() -> None:
    from opencdp.api.http import basic_credentials

    header = "Basic ZXhhbXBsZS1hcGkta2V5OmV4YW1wbGUtYXBpLXNlY3JldA=="
    assert basic_credentials(header) == ("example-api-key", "example-api-secret")


def test_malformed_json_is_400_with_error_body_and_nothing_stored(app: App) -> None:
    for body in (b"{", b"[]", b"42", b'{"events": 5}', b"\xff\xfe", b'{"events":[{"data":{}}]}'):
        r = app.client.post("/v2/events", content=body, headers=app.basic())
        assert r.status_code == 400, body
        doc = r.json()
        assert doc["errors"][0]["code"] == "BAD_REQUEST"
        assert doc["errors"][0]["message"]
    assert _count(app) == 0


def test_missing_event_type_has_the_documented_message(app: App) -> None:
    r = app.client.post(
        "/v2/events", json={"events": [{"data": {"event_name": "x"}}]}, headers=app.basic()
    )
    assert r.status_code == 400
    assert r.json()["errors"][0]["message"] == (
        'Required event field "event_type" is missing or empty.'
    )


def test_bulk_accepts_good_batches_and_reports_bad_ones(app: App) -> None:
    good1, good2 = batch(customer_id="a"), batch(customer_id="b")
    body = [good1, {"events": [{"event_type": 7}]}, good2]
    r = app.client.post("/v2/bulkevents", json=body, headers=app.basic())
    assert r.status_code == 202
    doc = r.json()
    assert doc["accepted_batches"] == 2
    assert [e["index"] for e in doc["errors"]] == [1]
    assert _count(app) == 2
    metrics = app.client.get("/metrics").text
    assert 'opencdp_ingestion_batches_rejected_total{reason="invalid",route="bulkevents"} 1.0' in (
        metrics
    )


def test_bulk_of_only_bad_batches_is_400(app: App) -> None:
    r = app.client.post("/v2/bulkevents", json=[{"events": 1}], headers=app.basic())
    assert r.status_code == 400
    assert _count(app) == 0


def test_bulk_over_100_batches_is_rejected_whole(app: App) -> None:
    body = [batch(events=0) for _ in range(101)]
    r = app.client.post("/v2/bulkevents", json=body, headers=app.basic())
    assert r.status_code == 400
    assert "100" in r.json()["errors"][0]["message"]
    assert _count(app) == 0


def test_bulk_must_be_an_array(app: App) -> None:
    r = app.client.post("/v2/bulkevents", json=batch(), headers=app.basic())
    assert r.status_code == 400


def test_request_over_256_kib_is_413(app: App) -> None:
    big = batch(events=1, attributes={"blob": "x" * 4000})
    body = [big] * 80  # each batch ~4.3 KB → ~340 KB
    raw = json.dumps(body).encode()
    assert len(raw) > 256 * 1024
    r = app.client.post("/v2/bulkevents", content=raw, headers=app.basic())
    assert r.status_code == 413
    assert r.json()["errors"][0]["code"] == "BAD_REQUEST"
    assert _count(app) == 0


def test_batch_over_128_kib_is_413_on_single_and_reported_in_bulk(app: App) -> None:
    huge = batch(events=40)
    for ev in huge["events"]:
        ev["data"]["custom_attributes"] = {f"a{i}": "y" * 40 for i in range(90)}
    raw = json.dumps(huge).encode()
    assert 128 * 1024 < len(raw) < 256 * 1024
    r = app.client.post("/v2/events", content=raw, headers=app.basic())
    assert r.status_code == 413
    r = app.client.post("/v2/bulkevents", json=[huge, batch()], headers=app.basic())
    assert r.status_code == 202
    assert r.json()["errors"][0]["index"] == 0
    assert _count(app) == 1


def test_source_request_id_deduplicates_per_input(app: App) -> None:
    b = batch(source_request_id="req-1", events=2)
    for _ in range(3):
        assert app.client.post("/v2/events", json=b, headers=app.basic()).status_code == 202
    app.runtime.worker.drain()
    with app.runtime.db.read() as conn:
        assert event_store.count_events(conn) == 2  # applied once
    assert _duplicates(app) == 2  # the two retries were accepted and skipped
    # another input may use the same id: scope is the API key
    key, secret = app.runtime.tenancy.create_input(
        workspace_id=app.creds.workspace_id,
        platform=__import__("opencdp.tenancy.model", fromlist=["Platform"]).Platform.SERVER,
        name="second",
    )
    r = app.client.post("/v2/events", json=b, headers=app.basic(key, secret))
    assert r.status_code == 202
    app.runtime.worker.drain()
    with app.runtime.db.read() as conn:
        assert event_store.count_events(conn) == 4
    assert _duplicates(app) == 2


def _duplicates(app: App) -> float:
    value = app.runtime.metrics.registry.get_sample_value(
        "opencdp_ingestion_batches_duplicate_total"
    )
    return value or 0.0


def test_historical_rules(app: App) -> None:
    now = int(time.time() * 1000)
    old = batch(ts_ms=now - 5 * 24 * 3600 * 1000)
    recent = batch(ts_ms=now - 3600 * 1000)
    no_events = batch(events=0)
    r = app.client.post(
        "/v2/bulkevents/historical", json=[old, recent, no_events], headers=app.basic()
    )
    assert r.status_code == 202
    assert sorted(e["index"] for e in r.json()["errors"]) == [1, 2]
    with app.runtime.db.read() as conn:
        rows = inbox_store.fetch_pending(conn, 0, 1000) + [
            row for p in range(1, 16) for row in inbox_store.fetch_pending(conn, p, 1000)
        ]
    assert [r.kind for r in rows] == ["historical"]


def test_long_event_names_are_truncated_not_rejected(app: App) -> None:
    b = batch(events=1)
    b["events"][0]["data"]["event_name"] = "n" * 300
    assert app.client.post("/v2/events", json=b, headers=app.basic()).status_code == 202
    app.runtime.worker.drain()
    with app.runtime.db.read() as conn:
        name = conn.exec_driver_sql("SELECT event_name FROM events").scalar_one()
    assert name == "n" * 256


def test_limits_are_applied_by_the_worker_and_the_inbox_keeps_the_sent_bytes(app: App) -> None:
    b = batch(events=2)
    b["events"][0]["data"]["event_name"] = "n" * 300
    b["events"][1]["data"]["custom_attributes"] = {"k": "v" * 5000, "ok": "1"}
    body = json.dumps(b).encode()
    r = app.client.post(
        "/v2/events", content=body, headers={**app.basic(), "Content-Type": "application/json"}
    )
    assert r.status_code == 202
    with app.runtime.db.read() as conn:
        stored = conn.exec_driver_sql("SELECT payload FROM inbox").scalar_one()
    assert bytes(stored) == body
    limited = app.runtime.metrics.limits_applied
    assert limited.labels("event_name_truncated")._value.get() == 0
    app.runtime.worker.drain()
    assert limited.labels("event_name_truncated")._value.get() == 1
    assert limited.labels("event_attribute_value_too_long")._value.get() == 1
    with app.runtime.db.read() as conn:
        rows = conn.exec_driver_sql(
            "SELECT event_name, data FROM events ORDER BY timestamp_ms"
        ).all()
    names = sorted(len(r[0] or "") for r in rows)
    assert 256 in names
    attrs = [msgspec.json.decode(r[1])["data"].get("custom_attributes") for r in rows]
    assert {"ok": "1"} in attrs


def test_stored_event_has_server_id_and_receive_time(app: App) -> None:
    assert (
        app.client.post("/v2/events", json=batch(events=1), headers=app.basic()).status_code == 202
    )
    app.runtime.worker.drain()
    with app.runtime.db.read() as conn:
        row = conn.exec_driver_sql("SELECT event_id, received_ms, data FROM events").one()
    assert row[0] != 0
    assert row[1] > 0
    assert msgspec.json.decode(row[2])["event_type"] == "custom_event"


def test_rate_limit_answers_429_with_integer_retry_after(runtime, settings) -> None:  # type: ignore[no-untyped-def]
    from starlette.testclient import TestClient

    from opencdp.core.ratelimit import RateLimiter

    runtime.ingestion._rate = RateLimiter(rate_per_s=2, clock=runtime.clock)
    creds, _ = runtime.tenancy.bootstrap(data_dir=settings.data_dir)
    app = App(runtime=runtime, client=TestClient(runtime.asgi()), creds=creds)
    with app.client:
        statuses = [
            app.client.post("/v2/events", json=batch(), headers=app.basic()).status_code
            for _ in range(5)
        ]
        assert statuses[:2] == [202, 202]
        assert 429 in statuses
        r = app.client.post("/v2/events", json=batch(), headers=app.basic())
        assert r.status_code == 429
        assert int(r.headers["Retry-After"]) >= 1
        assert r.headers["X-mp-rate-limit-exceeded"] == "workspace"
        assert r.json()["errors"][0]["code"] == "TOO_MANY_REQUESTS"


def test_healthz_metrics_docs(app: App) -> None:
    assert app.client.get("/healthz").json() == {"status": "ok"}
    assert "opencdp_ingestion_inbox_depth_batches" in app.client.get("/metrics").text
    spec = app.client.get("/openapi.json").json()
    assert "/v2/bulkevents" in spec["paths"]
    assert "/v2/events" in app.client.get("/docs").text


def test_gzip_body_is_accepted(app: App) -> None:
    import gzip

    raw = gzip.compress(json.dumps(batch()).encode())
    headers = {**app.basic(), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    assert app.client.post("/v2/events", content=raw, headers=headers).status_code == 202


def test_workspace_rate_limit_setting_overrides_the_default(app: App) -> None:
    app.runtime.tenancy.update_workspace_settings(
        app.creds.workspace_id, {"rate_limit_batches_per_s": 1}
    )
    statuses = [
        app.client.post("/v2/events", json=batch(), headers=app.basic()).status_code
        for _ in range(3)
    ]
    assert statuses[0] == 202
    assert 429 in statuses
