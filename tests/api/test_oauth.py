"""The token endpoint and bearer tokens: issue, verify (no database), expire, refuse."""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator

import pytest

from opencdp.api.errors import OAUTH
from opencdp.app import build_runtime
from opencdp.core import errors as e
from opencdp.core.clock import FrozenClock
from opencdp.core.config import Settings
from opencdp.core.errors import Unauthenticated
from opencdp.tenancy.model import OAuthClient
from opencdp.tenancy.service import TenancyService
from opencdp.tenancy.tokens import (
    TOKEN_LIFETIME_S,
    Grant,
    TokenService,
    bearer_token,
    derive_key,
    issue_token,
    verify_token,
)
from tests.conftest import App
from tests.profiles.helpers import T0, frozen_app, token

BODY = {"audience": "https://api.mparticle.com", "grant_type": "client_credentials"}
KEY = b"k" * 32
CLIENT = OAuthClient(
    id=1,
    client_id="oc_x",
    org_id=3,
    account_id=4,
    name="c",
    secret_hash="",
    workspace_ids=(7, 5),
    platform_access=False,
)


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def papp(settings: Settings, clock: FrozenClock) -> Iterator[App]:
    with frozen_app(settings, clock) as app:
        yield app


# --- pure -------------------------------------------------------------------------------------


def test_a_token_carries_the_clients_scope_until_it_expires() -> None:
    tok = issue_token(CLIENT, key=KEY, now_ms=T0, lifetime_s=TOKEN_LIFETIME_S)
    grant = verify_token(tok, key=KEY, now_ms=T0 + TOKEN_LIFETIME_S * 1000 - 1)
    assert grant == Grant(
        client_id="oc_x",
        org_id=3,
        account_id=4,
        workspace_ids=frozenset({5, 7}),
        platform_access=False,
        expires_ms=T0 + TOKEN_LIFETIME_S * 1000,
    )
    assert grant.may_read_profiles(3, 4, 7)
    assert not grant.may_read_profiles(3, 4, 6)
    assert not grant.may_read_profiles(3, 9, 7)
    assert not grant.may_read_profiles(9, 4, 7)
    assert not grant.may_use_platform(4)
    with pytest.raises(Unauthenticated, match="expired"):
        verify_token(tok, key=KEY, now_ms=T0 + TOKEN_LIFETIME_S * 1000)


def test_authenticate_remembers_verified_tokens_and_still_expires_them() -> None:
    clock = FrozenClock(T0)
    tenancy: TenancyService = None  # type: ignore[assignment]  # only issue() needs it
    svc = TokenService(tenancy=tenancy, clock=clock, key=KEY)
    tok = issue_token(CLIENT, key=KEY, now_ms=T0, lifetime_s=60)
    first = svc.authenticate(f"Bearer {tok}")
    assert svc.authenticate(f"Bearer {tok}") is first  # verified once
    forged = issue_token(CLIENT, key=b"x" * 32, now_ms=T0, lifetime_s=60)
    for _ in range(2):  # a refused token is never remembered
        with pytest.raises(Unauthenticated, match="invalid"):
            svc.authenticate(f"Bearer {forged}")
    clock.advance(60_000)
    with pytest.raises(Unauthenticated, match="expired"):
        svc.authenticate(f"Bearer {tok}")


def test_forged_or_damaged_tokens_are_refused() -> None:
    tok = issue_token(CLIENT, key=KEY, now_ms=T0, lifetime_s=60)
    head, payload, sig = tok.split(".")
    wider = base64.urlsafe_b64decode(payload + "==").replace(b"[5,7]", b"[5,6,7]")
    forged = f"{head}.{base64.urlsafe_b64encode(wider).rstrip(b'=').decode()}.{sig}"
    for bad in (
        forged,
        tok[:-2],
        tok + "x",
        f"{head}.{payload}",
        "oc1..",
        "",
        "not-a-token",
        tok.replace("oc1.", "oc2."),
        tok + "é",
    ):
        with pytest.raises(Unauthenticated):
            verify_token(bad, key=KEY, now_ms=T0)
    with pytest.raises(Unauthenticated):
        verify_token(tok, key=derive_key("another"), now_ms=T0)


def test_bearer_header_parsing() -> None:
    assert bearer_token("Bearer abc") == "abc"
    assert bearer_token("bearer  abc ") == "abc"
    for header in (None, "", "Basic abc", "Bearer", "Bearer   "):
        assert bearer_token(header) is None


# --- the endpoint -----------------------------------------------------------------------------


def test_token_endpoint_returns_the_documented_body(papp: App) -> None:
    c = papp.creds
    r = papp.client.post(
        "/oauth/token", json={"client_id": c.client_id, "client_secret": c.client_secret, **BODY}
    )
    assert r.status_code == 200
    assert r.headers["content-type"] == "application/json"
    assert r.headers["cache-control"] == "no-store"
    doc = r.json()
    assert set(doc) == {"access_token", "expires_in", "token_type"}
    assert doc["expires_in"] == 28800 and doc["token_type"] == "Bearer"
    assert isinstance(doc["access_token"], str) and len(doc["access_token"]) > 40


def test_form_bodies_and_basic_client_credentials_are_accepted(papp: App) -> None:
    c = papp.creds
    form = {"client_id": c.client_id, "client_secret": c.client_secret, **BODY}
    assert papp.client.post("/oauth/token", data=form).status_code == 200
    basic = base64.b64encode(f"{c.client_id}:{c.client_secret}".encode()).decode()
    r = papp.client.post("/oauth/token", json=BODY, headers={"Authorization": f"Basic {basic}"})
    assert r.status_code == 200


@pytest.mark.parametrize(
    ("body", "status", "code"),
    [
        ({**BODY}, 401, "invalid_client"),
        ({**BODY, "client_id": "oc_nobody", "client_secret": "x"}, 401, "invalid_client"),
        ({**BODY, "client_id": "<id>", "client_secret": "wrong"}, 401, "invalid_client"),
        (
            {**BODY, "client_id": "<id>", "client_secret": "<secret>", "grant_type": "password"},
            400,
            "invalid_request",
        ),
        (
            {**BODY, "client_id": "<id>", "client_secret": "<secret>", "audience": "x"},
            400,
            "invalid_request",
        ),
        ({"client_id": "<id>", "client_secret": "<secret>"}, 400, "invalid_request"),
        ({**BODY, "client_id": 5, "client_secret": "<secret>"}, 400, "invalid_request"),
    ],
)
def test_bad_token_requests_get_oauth_errors(
    papp: App, body: dict[str, object], status: int, code: str
) -> None:
    fill = {"<id>": papp.creds.client_id, "<secret>": papp.creds.client_secret}
    sent = {k: fill.get(v, v) if isinstance(v, str) else v for k, v in body.items()}
    r = papp.client.post("/oauth/token", json=sent)
    assert r.status_code == status
    assert r.headers["content-type"] == "application/json"
    doc = r.json()
    assert doc["error"] == code and doc["error_description"]
    assert set(doc) == {"error", "error_description"}


def test_malformed_body_is_invalid_request(papp: App) -> None:
    r = papp.client.post("/oauth/token", content=b"{", headers={"content-type": "application/json"})
    assert r.status_code == 400 and r.json()["error"] == "invalid_request"


def test_tokens_expire_after_eight_hours(papp: App, clock: FrozenClock) -> None:
    bearer = {"Authorization": f"Bearer {token(papp)}"}
    url = f"/userprofile/v1/{papp.creds.org_id}/{papp.creds.account_id}/{papp.creds.workspace_id}/1"
    assert papp.client.get(url, headers=bearer).status_code == 404  # accepted, no such profile
    clock.advance(TOKEN_LIFETIME_S * 1000)
    r = papp.client.get(url, headers=bearer)
    assert r.status_code == 401
    assert "expired" in r.json()["errors"][0]["message"]


def test_every_process_on_a_store_accepts_the_same_tokens(
    papp: App, settings: Settings, clock: FrozenClock
) -> None:
    other = build_runtime(settings, clock=clock)  # a second API process on the same store
    try:
        tokens = other.services["tokens"]
        grant = tokens.authenticate(f"Bearer {token(papp)}")
        assert grant.workspace_ids == frozenset({papp.creds.workspace_id})
    finally:
        other.close()
        other.db.dispose()


def test_a_configured_token_secret_is_the_key(settings: Settings, clock: FrozenClock) -> None:
    with_secret = dataclasses.replace(settings, token_secret="s3cret")
    with frozen_app(with_secret, clock) as app:
        tok = token(app)
    verify_token(tok, key=derive_key("s3cret"), now_ms=T0)
    with pytest.raises(Unauthenticated):
        verify_token(tok, key=derive_key("other"), now_ms=T0)


def test_every_error_class_renders_as_an_oauth_error() -> None:
    classes = [c for c in vars(e).values() if isinstance(c, type) and issubclass(c, e.OpenCdpError)]
    for cls in classes:
        exc = cls("why", retry_after=3, scope="account") if cls is e.RateLimited else cls("why")
        response = OAUTH.response(exc)
        assert response.media_type == "application/json"
        assert response.headers["cache-control"] == "no-store"
        doc = json.loads(bytes(response.body))
        assert set(doc) == {"error", "error_description"} and doc["error_description"] == "why"
        assert doc["error"] in {
            "invalid_request",
            "invalid_client",
            "unauthorized_client",
            "temporarily_unavailable",
            "server_error",
        }
    assert json.loads(bytes(OAUTH.internal_error().body))["error"] == "server_error"
