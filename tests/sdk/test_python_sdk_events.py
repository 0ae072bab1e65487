"""The official Python SDK (PyPI `mparticle` 0.16.1) as a client of the Events API."""

from __future__ import annotations

import time
from collections.abc import Iterator

import mparticle
import pytest
import sqlalchemy as sa

from opencdp.core.ratelimit import RateLimiter
from tests.sdk import pysdk
from tests.sdk.conftest import Live


@pytest.fixture(autouse=True)
def _fresh_backoff() -> Iterator[None]:
    pysdk.reset_retry_after()
    yield
    pysdk.reset_retry_after()


def _sdk_batch(customer_id: str, n: int = 2) -> mparticle.Batch:
    b = mparticle.Batch()
    b.environment = "development"
    ids = mparticle.UserIdentities()
    ids.customerid = customer_id
    ids.email = f"{customer_id}@example.com"
    b.user_identities = ids
    b.user_attributes = {"plan": "pro", "seats": 3}
    events: list[object] = [
        mparticle.AppEvent(event_name=f"e{i}", custom_event_type="navigation") for i in range(n)
    ]
    events.append(mparticle.ScreenViewEvent(screen_name="home"))
    crash = mparticle.CrashReportEvent()  # serialised by the SDK as a commerce_event
    crash.exception_name = "Boom"
    crash.message = "it broke"
    events.append(crash)
    b.events = events  # the setter wraps each model in its envelope
    return b


def _wait_processed(live: Live, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while live.runtime.processing.pending() > 0:
        assert time.monotonic() < deadline, "worker did not process"
        time.sleep(0.05)


def test_single_upload_lands_on_the_customer_profile(live: Live) -> None:
    r = pysdk.send_batch(live.url, live.creds.api_key, live.creds.api_secret, _sdk_batch("py-1"))
    assert r.ok, r
    assert r.status == 202
    assert r.payload["user_identities"]["customerid"] == "py-1"  # the SDK's own spelling
    _wait_processed(live)
    with live.runtime.db.read() as conn:
        rows = (
            conn.execute(
                sa.text(
                    "SELECT e.event_type FROM events e JOIN identity_values v "
                    "ON v.mpid = e.mpid AND v.identity_type = 'customer_id' AND v.value = 'py-1'"
                )
            )
            .scalars()
            .all()
        )
    assert sorted(rows) == ["crash_report", "custom_event", "custom_event", "screen_view"]


def test_bulk_upload(live: Live) -> None:
    batches = [_sdk_batch(f"py-bulk-{i}", n=1) for i in range(20)]
    r = pysdk.send_bulk(live.url, live.creds.api_key, live.creds.api_secret, batches)
    assert r.ok and r.status == 202, r
    _wait_processed(live)
    with live.runtime.db.read() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM inbox")).scalar_one() == 20


def test_wrong_secret_raises_with_403(live: Live) -> None:
    r = pysdk.send_batch(live.url, live.creds.api_key, "wrong", _sdk_batch("x"))
    assert not r.ok
    assert r.status == 403
    assert '"FORBIDDEN"' in (r.body or "")


def test_rate_limit_makes_the_sdk_back_off(live: Live) -> None:
    live.runtime.ingestion._rate = RateLimiter(rate_per_s=1, clock=live.runtime.clock)
    results = [
        pysdk.send_batch(live.url, live.creds.api_key, live.creds.api_secret, _sdk_batch("rl"))
        for _ in range(4)
    ]
    assert results[0].ok
    limited = [r for r in results if r.status == 429]
    assert limited, [str(r) for r in results]
    first = limited[0]
    assert not first.throttled_locally
    headers = {k.lower(): v for k, v in first.headers.items()}
    assert int(headers["retry-after"]) >= 1
    assert headers["x-mp-rate-limit-exceeded"] == "workspace"
    # after a 429 with Retry-After the SDK refuses to send until the time has passed
    assert pysdk.retry_after_remaining() >= 1
