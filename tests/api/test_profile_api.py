"""The Profile API over HTTP: the documented shape, fields, resolve, and every refusal.

Authorization is tested as a matrix: tokens of clients scoped to other workspaces, another
account of the same organization, and another organization, against every path.
"""

from __future__ import annotations

import base64
import dataclasses
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.datastructures import QueryParams

from opencdp.api.errors import PROFILE, status_of
from opencdp.api.profile_routes import query_fields
from opencdp.core import errors as e
from opencdp.core.clock import FrozenClock
from opencdp.core.config import Settings
from opencdp.identity.types import IdentityType
from opencdp.tenancy import store as tenancy_store
from opencdp.tenancy.model import Platform
from tests.conftest import App
from tests.profiles.helpers import ALL_FIELDS, T0, frozen_app, get_profile, profile_url, token

TOP = [
    "mpid",
    "created_timestamp_ms",
    "last_stored_timestamp_ms",
    "is_opted_out",
    "limit_ad_tracking",
]


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def papp(settings: Settings, clock: FrozenClock) -> Iterator[App]:
    with frozen_app(settings, clock) as app:
        r = app.client.post(
            "/v2/events",
            headers=app.basic(),
            json={  # no mpid: the identity step resolves the identities to a new profile
                "timestamp_unixtime_ms": T0 - 1000,
                "user_identities": {"customer_id": "cust-1042", "email": "ana@example.com"},
                "device_info": {
                    "android_uuid": "8789c459016a94b0",
                    "android_advertising_id": "481c8a31-7d5d-4d96-93a0-2de7427167fc",
                    "limit_ad_tracking": False,
                },
                "attribution_info": {"publisher": "pub", "campaign": "spring"},
                "user_attributes": {
                    "ltv": 342.1,
                    "churn_risk_score": 4,
                    "ml_product_recs": ["123849", 294933],
                    "$city": "New York",
                    "platinum": None,
                    "beta": True,
                },
            },
        )
        assert r.status_code == 202
        app.runtime.worker.drain()
        yield app


@pytest.fixture
def mpid(papp: App) -> int:
    identity = papp.runtime.services["identity"]
    found = identity.resolve(papp.creds.workspace_id, IdentityType.CUSTOMER_ID, "cust-1042")
    assert found is not None
    return int(found)


def _bearer(tok: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {tok}"}


def _assert_error(r: Any, status: int, code: str) -> None:
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    err = r.json()["errors"][0]
    assert err["code"] == code and err["message"]


def test_the_documented_shape_with_every_field(papp: App, mpid: int) -> None:
    status, doc = get_profile(papp, mpid)
    assert status == 200
    assert list(doc) == [
        *TOP,
        "device_identities",
        "user_identities",
        "account_user_attributes",
        "user_attributes",
        "audience_memberships",
        "attribution",
    ]
    assert doc["mpid"] == mpid  # a JSON number, exact
    assert doc["created_timestamp_ms"] == T0 and doc["last_stored_timestamp_ms"] == T0
    assert doc["is_opted_out"] is False and doc["limit_ad_tracking"] is False
    assert doc["user_identities"] == [
        {"type": "customer_id", "encoding": "none", "value": "cust-1042"},
        {"type": "email", "encoding": "none", "value": "ana@example.com"},
    ]
    assert sorted(doc["device_identities"], key=lambda d: d["type"]) == [
        {"type": "android_id", "encoding": "none", "value": "8789c459016a94b0"},
        {
            "type": "google_advertising_id",
            "encoding": "none",
            "value": "481c8a31-7d5d-4d96-93a0-2de7427167fc",
        },
    ]
    assert doc["account_user_attributes"] is None
    assert doc["user_attributes"] == {
        "$city": "New York",
        "beta": "true",
        "churn_risk_score": "4",
        "ltv": "342.1",
        "ml_product_recs": ["123849", "294933"],
        "platinum": None,
    }
    assert doc["audience_memberships"] == []
    assert doc["attribution"] == {"publisher": "pub", "campaign": "spring"}


@pytest.mark.parametrize(
    "section",
    [
        "device_identities",
        "user_identities",
        "user_attributes",
        "audience_memberships",
        "attribution",
    ],
)
def test_only_the_requested_sections_are_returned(papp: App, mpid: int, section: str) -> None:
    status, doc = get_profile(papp, mpid, fields=section)
    assert status == 200
    assert set(doc) == {*TOP, "account_user_attributes", section}


def test_without_fields_only_the_top_level_values_are_returned(papp: App, mpid: int) -> None:
    for fields in (None, ""):
        status, doc = get_profile(papp, mpid, fields=fields)
        assert status == 200
        assert set(doc) == {*TOP, "account_user_attributes"}


@pytest.mark.parametrize(
    ("query", "expected"),
    [
        (b"", None),
        (b"other=1", None),
        (b"fields=user_attributes", "user_attributes"),
        (b"fields=user_identities%2Cuser_attributes", "user_identities,user_attributes"),
        (b"fields=user_identities,%20user_attributes", "user_identities, user_attributes"),
        (b"fields=a+b", "a b"),
        (b"fields=device_identities&fields=attribution", "attribution"),  # the last one
        (b"x=1&fields=attribution&y", "attribution"),
        (b"fields", ""),
        (b"fields=", ""),
        (b"fields=%C3%A9", "\u00e9"),
        (b"fields=\xe9", "\u00e9"),  # a raw byte is latin-1
        (b"fie%6Cds=attribution", "attribution"),
    ],
)
def test_fields_are_read_from_the_query_string_as_starlette_reads_them(
    query: bytes, expected: str | None
) -> None:
    assert query_fields(query) == expected
    assert QueryParams(query).get("fields") == expected


def test_percent_encoded_and_repeated_fields(papp: App, mpid: int) -> None:
    bearer = {"Authorization": f"Bearer {token(papp)}"}
    r = papp.client.get(
        profile_url(papp, mpid) + "?fields=user_identities%2Cattribution", headers=bearer
    )
    assert r.status_code == 200
    assert list(r.json()) == [*TOP, "user_identities", "account_user_attributes", "attribution"]
    r = papp.client.get(
        profile_url(papp, mpid) + "?fields=bogus&fields=attribution", headers=bearer
    )
    assert r.status_code == 200
    assert list(r.json()) == [*TOP, "account_user_attributes", "attribution"]


def test_an_unknown_field_is_400(papp: App, mpid: int) -> None:
    r = papp.client.get(
        profile_url(papp, mpid),
        params={"fields": "user_attributes,segments"},
        headers=_bearer(token(papp)),
    )
    _assert_error(r, 400, "BAD_REQUEST")
    assert "segments" in r.json()["errors"][0]["message"]


def test_post_by_mpid_answers_like_get(papp: App, mpid: int) -> None:
    tok = token(papp)
    got = papp.client.get(
        profile_url(papp, mpid), params={"fields": ALL_FIELDS}, headers=_bearer(tok)
    )
    posted = papp.client.post(
        profile_url(papp, mpid),
        params={"fields": ALL_FIELDS},
        headers=_bearer(tok),
        content=b"ignored",
    )
    assert posted.status_code == 200 and posted.json() == got.json()


def _resolve(app: App, body: Any, tok: str | None = None, fields: str = ALL_FIELDS) -> Any:
    c = app.creds
    return app.client.post(
        f"/userprofile/v1/resolve/{c.org_id}/{c.account_id}/{c.workspace_id}",
        params={"fields": fields},
        json=body,
        headers=_bearer(tok or token(app)),
    )


def test_resolve_by_immutable_identity(papp: App, mpid: int) -> None:
    tok = token(papp)
    r = _resolve(
        papp,
        {
            "environment_type": "production",
            "identity": {"type": "customer_id", "value": "cust-1042"},
        },
        tok,
    )
    assert r.status_code == 200
    assert r.json() == get_profile(papp, mpid, bearer=tok)[1]
    r = _resolve(
        papp,
        {
            "environment_type": "production",
            "identity": {"type": "email", "value": "ana@example.com"},
        },
        tok,
    )
    assert r.status_code == 200 and r.json()["mpid"] == mpid
    r = _resolve(
        papp,
        {"environment_type": "production", "identity": {"type": "customer_id", "value": "nobody"}},
        tok,
    )
    _assert_error(r, 404, "NOT_FOUND")


@pytest.mark.parametrize(
    "body",
    [
        {"environment_type": "staging", "identity": {"type": "customer_id", "value": "x"}},
        {"environment_type": "production", "identity": {"type": "customerid", "value": "x"}},
        {"environment_type": "production", "identity": {"type": "android_id", "value": "x"}},
        {"environment_type": "production", "identity": {"type": "customer_id", "value": ""}},
        {"environment_type": "production", "identity": {"type": "customer_id"}},
        {"environment_type": "production"},
        [],
    ],
)
def test_invalid_resolve_requests_are_400(papp: App, body: Any) -> None:
    _assert_error(_resolve(papp, body), 400, "BAD_REQUEST")


def test_unknown_and_malformed_mpids(papp: App) -> None:
    tok = token(papp)
    _assert_error(papp.client.get(profile_url(papp, 12345), headers=_bearer(tok)), 404, "NOT_FOUND")
    for bad in ("abc", "1.5", "99999999999999999999"):
        _assert_error(
            papp.client.get(profile_url(papp, bad), headers=_bearer(tok)), 400, "BAD_REQUEST"
        )
    r = papp.client.get(f"/userprofile/v1/x/{papp.creds.account_id}/1/1", headers=_bearer(tok))
    _assert_error(r, 400, "BAD_REQUEST")


def test_missing_or_invalid_credentials_are_401(papp: App) -> None:
    url = profile_url(papp, 1)
    basic = base64.b64encode(f"{papp.creds.api_key}:{papp.creds.api_secret}".encode()).decode()
    for headers in ({}, {"Authorization": "Bearer nope"}, {"Authorization": f"Basic {basic}"}):
        _assert_error(papp.client.get(url, headers=headers), 401, "UNAUTHORIZED")
    _assert_error(_resolve(papp, {}, tok="garbage"), 401, "UNAUTHORIZED")


def test_a_token_never_reads_another_workspace_account_or_organization(
    papp: App, mpid: int
) -> None:
    rt, c = papp.runtime, papp.creds
    tenancy = rt.tenancy
    # Workspace B: same account as the default workspace A, with its own data and client.
    ws_b = tenancy.create_workspace(account_id=c.account_id, name="B")
    key_b, secret_b = tenancy.create_input(workspace_id=ws_b, platform=Platform.SERVER, name="b")
    r = papp.client.post(
        "/v2/events",
        headers=papp.basic(key_b, secret_b),
        json={"mpid": 77, "user_attributes": {"b": 1}},
    )
    assert r.status_code == 202
    rt.worker.drain()
    id_b, sec_b = tenancy.create_oauth_client(
        org_id=c.org_id,
        account_id=c.account_id,
        workspace_ids=[ws_b],
        name="b",
        platform_access=False,
    )
    # Another account in the same organization, and another organization.
    with rt.db.write() as conn:
        account2 = tenancy_store.insert_account(conn, org_id=c.org_id, name="acct2", now_ms=T0)
    ws_d = tenancy.create_workspace(account_id=account2, name="D")
    id_d, sec_d = tenancy.create_oauth_client(
        org_id=c.org_id, account_id=account2, workspace_ids=[ws_d], name="d", platform_access=True
    )
    org3, account3 = tenancy.create_organization(name="Other org")
    ws_e = tenancy.create_workspace(account_id=account3, name="E")
    id_e, sec_e = tenancy.create_oauth_client(
        org_id=org3, account_id=account3, workspace_ids=[ws_e], name="e", platform_access=True
    )
    # A client of account A with no Profile API workspaces at all.
    id_n, sec_n = tenancy.create_oauth_client(
        org_id=c.org_id, account_id=c.account_id, workspace_ids=[], name="n", platform_access=True
    )
    tokens = {
        "A": token(papp),
        "B": token(papp, id_b, sec_b),
        "D": token(papp, id_d, sec_d),
        "E": token(papp, id_e, sec_e),
        "none": token(papp, id_n, sec_n),
    }
    paths = {  # (org, account, workspace, mpid)
        "A": (c.org_id, c.account_id, c.workspace_id, mpid),
        "B": (c.org_id, c.account_id, ws_b, 77),
        "D": (c.org_id, account2, ws_d, 1),
        "E": (org3, account3, ws_e, 1),
        # A's workspace addressed under other orgs/accounts, and B's under A's neighbours
        "A-under-acct2": (c.org_id, account2, c.workspace_id, mpid),
        "A-under-org3": (org3, account3, c.workspace_id, mpid),
        "B-under-org3": (org3, c.account_id, ws_b, 77),
        "E-under-orgA": (c.org_id, c.account_id, ws_e, 1),
    }
    allowed = {("A", "A"): 200, ("B", "B"): 200, ("D", "D"): 404, ("E", "E"): 404}
    seen: dict[tuple[str, str], int] = {}
    for who, tok in tokens.items():
        for where, (org, acct, ws, target) in paths.items():
            r = papp.client.get(
                f"/userprofile/v1/{org}/{acct}/{ws}/{target}",
                params={"fields": "user_attributes"},
                headers=_bearer(tok),
            )
            seen[(who, where)] = r.status_code
            resolve = papp.client.post(
                f"/userprofile/v1/resolve/{org}/{acct}/{ws}",
                json={
                    "environment_type": "production",
                    "identity": {"type": "customer_id", "value": "cust-1042"},
                },
                headers=_bearer(tok),
            )
            expected = allowed.get((who, where), 403)
            if expected == 403:
                _assert_error(r, 403, "FORBIDDEN")
                _assert_error(resolve, 403, "FORBIDDEN")
    assert {k: v for k, v in seen.items() if v != 403} == allowed
    r = papp.client.get(
        profile_url(papp, 77, ws=ws_b),
        params={"fields": "user_attributes"},
        headers=_bearer(tokens["B"]),
    )
    assert r.json()["user_attributes"] == {"b": "1"}  # B's own data, nothing of A's


def test_the_rate_limit_answers_429_with_retry_after(
    settings: Settings, clock: FrozenClock
) -> None:
    limited = dataclasses.replace(settings, profile_rate_limit_per_s=2.0)
    with frozen_app(limited, clock) as app:
        tok = token(app)
        url = profile_url(app, 1)
        assert [app.client.get(url, headers=_bearer(tok)).status_code for _ in range(2)] == [
            404,
            404,
        ]
        r = app.client.get(url, headers=_bearer(tok))
        _assert_error(r, 429, "TOO_MANY_REQUESTS")
        assert r.headers["retry-after"] == "1"
        assert r.headers["x-mp-rate-limit-exceeded"] == "account"
        other = app.runtime.tenancy.create_oauth_client(
            org_id=app.creds.org_id,
            account_id=app.creds.account_id,
            workspace_ids=[app.creds.workspace_id],
            name="other",
            platform_access=False,
        )
        assert (
            app.client.get(url, headers=_bearer(token(app, *other))).status_code == 404
        )  # per client
        clock.advance(1000)
        assert app.client.get(url, headers=_bearer(tok)).status_code == 404


def test_the_openapi_description_lists_the_endpoints(papp: App) -> None:
    paths = papp.client.get("/openapi.json").json()["paths"]
    assert "/oauth/token" in paths
    assert set(paths["/userprofile/v1/{orgId}/{accountId}/{workspaceId}/{mpid}"]) == {"get", "post"}
    assert "post" in paths["/userprofile/v1/resolve/{orgId}/{accountId}/{workspaceId}"]


def test_every_error_class_renders_in_the_profile_shape() -> None:
    classes = [c for c in vars(e).values() if isinstance(c, type) and issubclass(c, e.OpenCdpError)]
    for cls in classes:
        exc = cls("why", retry_after=3, scope="account") if cls is e.RateLimited else cls("why")
        response = PROFILE.response(exc)
        assert response.media_type == "application/json"
        doc = json.loads(bytes(response.body))
        code = PROFILE.codes.get(response.status_code, "INTERNAL_ERROR")
        assert doc == {"errors": [{"code": code, "message": "why"}]}
        assert response.status_code == (status_of(exc) if cls is not e.OpenCdpError else 500)
