"""The official Web SDK, in headless Chromium, against a live opencdp on every configured store.

The page is served from another origin than the server (CORS is really exercised, preflights
included), identifies with email + customer id, logs events, and (with config) logs in a second
user and aliases the first to it. The SDK's identify must yield an MPID, every upload must be
accepted, and after processing every uploaded event must sit in the event store on the profile
the batch named, which for the first batches is the MPID identify returned.

Needs node, the npm packages and chromium (scripts/setup-browser.sh). Skips without them, except
under ``CI=true``, where a missing browser fails the run instead of hiding the gap.
"""

from __future__ import annotations

import os
from collections import Counter
from collections.abc import Iterator
from typing import Any

import node_harness as nh
import pytest

from opencdp.api.web_routes import workspace_token
from opencdp.app import Runtime
from opencdp.core.config import Settings
from opencdp.events import store as event_store
from opencdp.identity.model import IdentityRequest
from opencdp.identity.types import IdentityType
from opencdp.tenancy.model import Credentials
from tests.support.server import LiveServer

pytestmark = pytest.mark.browser


def _require_browser() -> None:
    reason = nh.browser_ready()
    if reason is None:
        return
    if os.environ.get("CI", "").strip().lower() == "true":
        pytest.fail(f"CI=true but the Web SDK cannot run: {reason}")
    pytest.skip(reason)


@pytest.fixture
def live(runtime: Runtime, settings: Settings) -> Iterator[tuple[str, Credentials]]:
    _require_browser()
    creds, _ = runtime.tenancy.bootstrap(data_dir=settings.data_dir)
    with LiveServer(runtime.asgi(run_worker=False)) as server:
        yield server.url, creds


def _uploaded_events(page: dict[str, Any]) -> Counter[int]:
    """Events per MPID in the batches the SDK uploaded (retries of a batch counted once)."""
    seen: dict[str, tuple[int, int]] = {}
    for r in page["requests"]:
        if r["kind"] == "events":
            assert r["status"] == 202, r
            assert r["responseHeaders"]["access-control-allow-origin"] == page["pageOrigin"]
            body = r["body"]
            seen[body["source_request_id"]] = (int(body["mpid"]), len(body["event_types"]))
    totals: Counter[int] = Counter()
    for mpid, n in seen.values():
        totals[mpid] += n
    return totals


def _stored_events(runtime: Runtime, workspace_id: int, mpid: int) -> int:
    with runtime.db.read() as conn:
        return len(event_store.events_for_profile(conn, workspace_id=workspace_id, mpid=mpid))


@pytest.mark.parametrize("request_config", [True, False], ids=["config", "no-config"])
def test_web_sdk_identifies_uploads_and_lands_on_the_profile(
    live: tuple[str, Credentials], runtime: Runtime, request_config: bool
) -> None:
    base, creds = live
    email, customerid = "e2e@example.com", "e2e-customer"
    page = nh.web_sdk_page(
        base,
        creds.web_api_key,
        request_config=request_config,
        alias=request_config,  # alias needs TLS like config; the harness proxies both
        email=email,
        customerid=customerid,
        settle=700,
    )
    assert page["ok"], (page["problems"], page.get("harnessError"), page.get("pageErrors"))
    assert page["pageOrigin"] != base  # cross-origin for real

    identify = page["identify"]
    assert identify["httpCode"] == 200
    first_mpid = identify["body"]["mpid"]
    assert isinstance(first_mpid, str) and int(first_mpid) != 0
    assert identify["body"]["is_logged_in"] is True
    assert identify["user"]["mpid"] == first_mpid

    # identify resolved the SDK's identities to the profile a server-side search finds
    ident = runtime.services["identity"]
    found = ident.search(
        creds.workspace_id, IdentityRequest({IdentityType.CUSTOMER_ID: customerid})
    )
    assert str(found.mpid) == first_mpid

    if request_config:
        assert page["config"]["loadedFromServer"], page["config"]
        assert page["state"]["workspaceToken"] == workspace_token(creds.workspace_id)
        login, alias = page["login"], page["alias"]
        assert login["httpCode"] == 200 and login["user"]["mpid"] != first_mpid
        assert alias["httpCode"] in (200, 202), alias
        assert alias["request"]["sourceMpid"] == first_mpid
        preflights = [e for e in page["tlsProxyLog"] if e["method"] == "OPTIONS"]
        assert any(e["path"].endswith("/Alias") and e["status"] == 204 for e in preflights)
    else:
        assert page["config"] == {"requested": False}

    uploaded = _uploaded_events(page)
    assert uploaded[int(first_mpid)] > 0, uploaded
    runtime.worker.drain()
    for mpid, n in uploaded.items():
        assert _stored_events(runtime, creds.workspace_id, mpid) >= n, mpid
    # before the login nothing else was uploaded, so the first profile holds exactly its events
    if not request_config:
        assert (
            _stored_events(runtime, creds.workspace_id, int(first_mpid))
            == uploaded[int(first_mpid)]
        )
    # the attributes the browser set are on the profile the Profile API serves
    _assert_profile_attributes(base, creds, int(first_mpid))


def _assert_profile_attributes(base: str, creds: Credentials, mpid: int) -> None:
    import httpx

    token = httpx.post(
        f"{base}/oauth/token",
        json={
            "client_id": creds.client_id,
            "client_secret": creds.client_secret,
            "audience": "https://api.mparticle.com",
            "grant_type": "client_credentials",
        },
    ).json()["access_token"]
    r = httpx.get(
        f"{base}/userprofile/v1/{creds.org_id}/{creds.account_id}/{creds.workspace_id}/{mpid}",
        params={"fields": "user_attributes,user_identities"},
        headers={"Authorization": f"Bearer {token}"},
    )
    assert r.status_code == 200, r.text
    profile = r.json()
    assert profile["user_attributes"]["harness_attr"] == "value-1", profile
    assert profile["user_attributes"]["harness_list"] == ["a", "b"], profile
    assert {"type": "customer_id", "encoding": "none", "value": "e2e-customer"} in profile[
        "user_identities"
    ], profile
