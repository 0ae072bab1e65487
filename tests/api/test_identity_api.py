"""IDSync and alias over HTTP against the real identity service, on every configured store.

Requests are shaped like the Web SDK's (key-only ``x-mp-key``, an ``Origin``, the envelope of
docs/sdk-clients.md) unless a test is about something else. Auth itself is covered in
test_identity_auth.py.
"""

from __future__ import annotations

import gzip
import json
import uuid
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from starlette.routing import Route

from opencdp.api.errors import ALIAS, IDSYNC, Family, status_of
from opencdp.core import errors as e
from opencdp.events import store as event_store
from tests.conftest import App
from tests.support.batches import batch

ORIGIN = "http://shop.example:3000"
RESPONSE_KEYS = {"context", "mpid", "is_ephemeral", "is_logged_in", "matched_identities"}


def _web(app: App) -> dict[str, str]:
    return {"x-mp-key": app.creds.web_api_key, "Origin": ORIGIN}


def _envelope(known: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {
        "client_sdk": {"platform": "web", "sdk_vendor": "mparticle", "sdk_version": "2.68.0"},
        "context": None,
        "environment": "production",
        "request_id": str(uuid.uuid4()),
        "request_timestamp_ms": 1_700_000_000_000,
        "previous_mpid": None,
        "known_identities": known,
        **extra,
    }


def _call(
    app: App, call: str, known: dict[str, Any], prefix: str = "/identity/v1", **extra: Any
) -> Any:
    return app.client.post(f"{prefix}/{call}", json=_envelope(known, **extra), headers=_web(app))


def _ok(r: Any) -> dict[str, Any]:
    assert r.status_code == 200, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["access-control-allow-origin"] == ORIGIN
    doc: dict[str, Any] = r.json()
    return doc


def _mpid(doc: dict[str, Any]) -> int:
    assert isinstance(doc["mpid"], str)
    value = int(doc["mpid"])
    assert value != 0 and -(2**63) <= value < 2**63
    return value


def _error(r: Any, status: int, code: str) -> str:
    """Checks the IDSync error shape (list + flat) and CORS; returns the message."""
    assert r.status_code == status, r.text
    assert r.headers["content-type"] == "application/json"
    assert r.headers["access-control-allow-origin"] == ORIGIN
    doc = r.json()
    assert set(doc) == {"errors", "code", "message"}
    assert doc["errors"] == [{"code": code, "message": doc["message"]}]
    assert doc["code"] == code and doc["message"]
    return str(doc["message"])


# -- identify / login / logout / search -------------------------------------------------------


def test_identify_answers_the_documented_body(app: App) -> None:
    known = {"email": "ann@example.com", "customerid": "ann", "device_application_stamp": "das-1"}
    first = _ok(_call(app, "identify", known))
    assert set(first) == RESPONSE_KEYS
    assert first["context"] == ""  # opaque; a string even when the client sent none
    assert first["is_ephemeral"] is False and first["is_logged_in"] is True
    again = _ok(_call(app, "identify", known, previous_mpid=first["mpid"], context="ctx-1"))
    assert _mpid(again) == _mpid(first)
    assert again["context"] == "ctx-1"  # echoed, never used to resolve (ADR 0004 Q1b)
    assert again["matched_identities"] == known  # Identity API names, only what matched


def test_every_call_under_both_prefixes(app: App) -> None:
    das = {"device_application_stamp": "das-2"}
    anon = _mpid(_ok(_call(app, "identify", das)))
    assert _mpid(_ok(_call(app, "identify", das, prefix="/v1"))) == anon
    login = _ok(_call(app, "login", {**das, "customerid": "bob"}, previous_mpid=str(anon)))
    assert login["is_logged_in"] is True
    known = _mpid(login)
    found = _ok(_call(app, "search", {"customerid": "bob"}, prefix="/v1"))
    assert _mpid(found) == known and found["matched_identities"] == {"customerid": "bob"}
    logout = _ok(_call(app, "logout", das, prefix="/v1", previous_mpid=str(known)))
    assert logout["is_logged_in"] is False and _mpid(logout) != known


@pytest.mark.parametrize(
    "previous", [None, "0", 0, "-12345", -12345, 9_223_372_036_854_775_807, ""]
)
def test_previous_mpid_is_a_string_a_number_or_null(app: App, previous: Any) -> None:
    _mpid(_ok(_call(app, "identify", {"customerid": "prev"}, previous_mpid=previous)))


def test_search_without_a_match_is_404_not_found_error(app: App) -> None:
    r = _call(app, "search", {"email": "nobody@example.com"})
    _error(r, 404, "NOT_FOUND_ERROR")
    _error(_call(app, "search", {"email": "nobody@example.com"}), 404, "NOT_FOUND_ERROR")


def test_the_union_of_identity_keys_the_sdks_send(app: App) -> None:
    known = {
        "customerid": "u1",
        "other": "o",
        **{f"other{n}": f"o{n}" for n in range(2, 11)},
        "mobile_number": "+100",
        "phone_number_2": "+200",
        "phone_number_3": "+300",
        "facebookcustomaudienceid": "fca",
        "alias": "legacy",
        "yahoo": "y",
        "ios_idfa": "idfa",
        "ios_idfv": "idfv",
        "android_aaid": "aaid",
        "android_uuid": "auuid",
        "push_token": "push",
        "fire_aid": "fire",
        "roku_aid": "roku",
        "roku_publisher_id": "rokup",
        "microsoft_aid": "msa",
        "microsoft_publisher_id": "msp",
        "amp_id": "amp",
        "device_application_stamp": "das",
    }
    mpid = _mpid(_ok(_call(app, "identify", known)))
    again = _ok(_call(app, "identify", known))
    assert _mpid(again) == mpid and again["matched_identities"] == known
    # the UWP SDK's spelling is accepted and answered in the canonical Identity API name
    uwp = _ok(_call(app, "identify", {"customerid": "u1", "facebook_custom_audience_id": "fca"}))
    assert _mpid(uwp) == mpid
    assert uwp["matched_identities"]["facebookcustomaudienceid"] == "fca"


def test_null_identities_are_not_known_and_gzip_is_accepted(app: App) -> None:
    body = json.dumps(_envelope({"customerid": "gz", "email": None})).encode()
    headers = {**_web(app), "Content-Encoding": "gzip", "Content-Type": "application/json"}
    r = app.client.post("/v1/identify", content=gzip.compress(body), headers=headers)
    assert _ok(r)["is_logged_in"] is True


BAD_BODIES: list[tuple[str, bytes]] = [
    ("invalid JSON", b"{"),
    ("not JSON at all", b"\xff\xfe"),
    ("empty body", b""),
    ("an array", b"[]"),
    ("missing known_identities", json.dumps({"environment": "production"}).encode()),
    ("null known_identities", json.dumps({"known_identities": None}).encode()),
    ("empty known_identities", json.dumps({"known_identities": {}}).encode()),
    ("only null identities", json.dumps({"known_identities": {"email": None}}).encode()),
    ("unknown identity type", json.dumps({"known_identities": {"shoe_size": "44"}}).encode()),
    ("non-string value", json.dumps({"known_identities": {"customerid": 42}}).encode()),
    ("empty value", json.dumps({"known_identities": {"customerid": ""}}).encode()),
    (
        "unknown environment",
        json.dumps({"environment": "staging", "known_identities": {"email": "a"}}).encode(),
    ),
    (
        "bad previous_mpid",
        json.dumps({"previous_mpid": "12ab", "known_identities": {"email": "a"}}).encode(),
    ),
    (
        "previous_mpid beyond 64 bits",
        json.dumps({"previous_mpid": 2**63, "known_identities": {"email": "a"}}).encode(),
    ),
    (
        "previous_mpid of the wrong type",
        json.dumps({"previous_mpid": {"x": 1}, "known_identities": {"email": "a"}}).encode(),
    ),
]


@pytest.mark.parametrize("call", ["identify", "login", "logout", "search"])
@pytest.mark.parametrize(("why", "body"), BAD_BODIES, ids=[w for w, _ in BAD_BODIES])
def test_bad_bodies_are_400_in_the_idsync_shape(app: App, call: str, why: str, body: bytes) -> None:
    r = app.client.post(f"/identity/v1/{call}", content=body, headers=_web(app))
    _error(r, 400, "VALIDATION_ERROR")


def test_oversized_body_is_refused(app: App) -> None:
    known = {f"other{n}": "x" * 20_000 for n in range(2, 7)}
    r = app.client.post("/v1/identify", json=_envelope(known), headers=_web(app))
    assert "limit" in _error(r, 413, "VALIDATION_ERROR")


# -- modify -----------------------------------------------------------------------------------


def _modify(
    app: App, mpid: Any, changes: list[dict[str, Any]], prefix: str = "/identity/v1"
) -> Any:
    body = {"environment": "production", "request_id": "m", "identity_changes": changes}
    return app.client.post(f"{prefix}/{mpid}/modify", json=body, headers=_web(app))


def test_modify_adds_changes_and_removes(app: App) -> None:
    mpid = _ok(_call(app, "identify", {"customerid": "mod", "device_application_stamp": "d"}))[
        "mpid"
    ]
    r = _modify(
        app,
        mpid,
        [
            {"identity_type": "email", "old_value": None, "new_value": "m@example.com"},
            {"identity_type": "other2", "old_value": None, "new_value": "x"},
        ],
    )
    doc = _ok(r)
    assert doc["mpid"] == mpid
    assert doc["is_logged_in"] is True  # the web SDK copies this from every 200
    assert sorted(doc["change_results"], key=lambda c: c["identity_type"]) == [
        {"identity_type": "email", "modified_mpid": mpid},
        {"identity_type": "other2", "modified_mpid": mpid},
    ]
    _ok(
        _modify(
            app,
            mpid,
            [
                {
                    "identity_type": "email",
                    "old_value": "m@example.com",
                    "new_value": "n@example.com",
                },
                {"identity_type": "other2", "old_value": "x", "new_value": None},
            ],
            prefix="/v1",
        )
    )
    found = _ok(
        _call(app, "search", {"customerid": "mod", "email": "n@example.com", "other2": "x"})
    )
    assert found["mpid"] == mpid
    assert found["matched_identities"] == {"customerid": "mod", "email": "n@example.com"}


def test_modify_with_no_changes_is_fine(app: App) -> None:
    mpid = _ok(_call(app, "identify", {"customerid": "still"}))["mpid"]
    doc = _ok(_modify(app, mpid, []))
    assert doc["change_results"] == [] and doc["mpid"] == mpid


def test_modify_errors(app: App) -> None:
    add = [{"identity_type": "email", "old_value": None, "new_value": "z@example.com"}]
    _error(_modify(app, "-4242", add), 404, "NOT_FOUND_ERROR")
    _error(_modify(app, "12ab", add), 400, "VALIDATION_ERROR")
    _error(_modify(app, str(2**64), add), 400, "VALIDATION_ERROR")
    mpid = _ok(_call(app, "identify", {"customerid": "err"}))["mpid"]
    for changes in (
        [{"identity_type": "email", "old_value": None, "new_value": None}],
        [{"identity_type": "shoe_size", "old_value": None, "new_value": "44"}],
        [{"identity_type": "email", "old_value": None, "new_value": 5}],
        [{"old_value": None, "new_value": "a"}],
    ):
        _error(_modify(app, mpid, changes), 400, "VALIDATION_ERROR")
    r = app.client.post(f"/v1/{mpid}/modify", json={"environment": "production"}, headers=_web(app))
    _error(r, 400, "VALIDATION_ERROR")


# -- alias ------------------------------------------------------------------------------------


def _alias(app: App, data: dict[str, Any], path: str | None = None, **extra: Any) -> Any:
    key = app.creds.web_api_key
    body = {
        "request_id": str(uuid.uuid4()),
        "request_type": "alias",
        "environment": "production",
        "api_key": key,
        "data": data,
        **extra,
    }
    url = path or f"/webevents/v1/identity/{key}/Alias"
    # the Web SDK sends no auth header at all: the key in the URL is the credential
    return app.client.post(url, json=body, headers={"Origin": ORIGIN})


def _pair(app: App, tag: str) -> tuple[str, str]:
    """An anonymous profile and a known one (the usual alias source and destination)."""
    src = _ok(_call(app, "identify", {"device_application_stamp": f"das-{tag}"}))["mpid"]
    dst = _ok(
        _call(app, "identify", {"device_application_stamp": f"das2-{tag}", "customerid": tag})
    )
    assert src != dst["mpid"]
    return src, dst["mpid"]


def test_web_alias_is_202_without_a_body(app: App) -> None:
    src, dst = _pair(app, "w")
    data = {
        "source_mpid": src,
        "destination_mpid": dst,
        "start_unixtime_ms": 1_700_000_000_000,
        "end_unixtime_ms": 1_700_000_100_000,
        "device_application_stamp": "das-w",
        "scope": "device",
    }
    r = _alias(app, data)
    assert r.status_code == 202, r.text
    assert r.content == b"" and r.headers["access-control-allow-origin"] == ORIGIN
    key = app.creds.web_api_key
    for path in (f"/v1/identity/{key}/alias", f"/webevents/v1/identity/{key}/alias"):
        assert _alias(app, {**data, "source_mpid": int(src)}, path=path).status_code == 202


def test_alias_with_omitted_times_copies_the_last_90_days(app: App) -> None:
    src, dst = _pair(app, "copy")
    b = {**batch(customer_id=None, events=3), "mpid": src}
    key = app.creds.web_api_key
    r = app.client.post(
        f"/webevents/v3/JS/{key}/events", content=json.dumps(b), headers={"Origin": ORIGIN}
    )
    assert r.status_code == 202
    app.runtime.worker.drain()
    assert _alias(app, {"source_mpid": src, "destination_mpid": dst}).status_code == 202
    ws = app.creds.workspace_id
    with app.runtime.db.read() as conn:
        copied = event_store.events_for_profile(conn, workspace_id=ws, mpid=int(dst))
        kept = event_store.events_for_profile(conn, workspace_id=ws, mpid=int(src))
    assert len(copied) == 3 and len(kept) == 3  # a copy: the source keeps its events


def test_alias_validation_is_400_with_a_flat_code(app: App) -> None:
    src, dst = _pair(app, "v")
    bad: list[dict[str, Any]] = [
        {"source_mpid": src, "destination_mpid": src},
        {"source_mpid": "0", "destination_mpid": dst},
        {"source_mpid": src},
        {"source_mpid": "abc", "destination_mpid": dst},
        {"source_mpid": src, "destination_mpid": "-999"},  # no such profile
        {
            "source_mpid": src,
            "destination_mpid": dst,
            "start_unixtime_ms": 20,
            "end_unixtime_ms": 10,
        },
        {"source_mpid": src, "destination_mpid": dst, "start_unixtime_ms": "yesterday"},
    ]
    for data in bad:
        _error(_alias(app, data), 400, "INVALID_DATA")
    _error(
        _alias(app, {"source_mpid": src, "destination_mpid": dst}, request_type="merge"),
        400,
        "INVALID_DATA",
    )
    key = app.creds.web_api_key
    r = app.client.post(
        f"/webevents/v1/identity/{key}/Alias", content=b"{", headers={"Origin": ORIGIN}
    )
    _error(r, 400, "INVALID_DATA")
    r = app.client.post(
        f"/webevents/v1/identity/{key}/Alias",
        json={"request_type": "alias"},
        headers={"Origin": ORIGIN},
    )
    _error(r, 400, "INVALID_DATA")


def test_alias_follows_the_workspace_strategy(app: App) -> None:
    src, dst = _pair(app, "iso")
    app.runtime.tenancy.update_workspace_settings(
        app.creds.workspace_id, {"identity": {"strategy": "profile_isolation"}}
    )
    r = _alias(app, {"source_mpid": src, "destination_mpid": dst})
    assert "alias" in _error(r, 403, "FORBIDDEN")


def test_alias_with_an_unknown_key_is_401(app: App) -> None:
    r = _alias(
        app, {"source_mpid": "1", "destination_mpid": "2"}, path="/webevents/v1/identity/nope/Alias"
    )
    _error(r, 401, "UNAUTHORIZED")


# -- CORS -------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "path",
    [
        "/identity/v1/identify",
        "/v1/login",
        "/identity/v1/-1/modify",
        "/webevents/v1/identity/K/Alias",
    ],
)
def test_preflight_allows_what_the_web_sdk_sends(app: App, path: str) -> None:
    r = app.client.options(
        path,
        headers={
            "Origin": ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "content-type,x-mp-key",
        },
    )
    assert r.status_code == 204
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "POST" in r.headers["access-control-allow-methods"]
    allowed = {h.strip().lower() for h in r.headers["access-control-allow-headers"].split(",")}
    assert {"content-type", "x-mp-key", "x-mp-signature", "date"} <= allowed
    assert "access-control-allow-credentials" not in r.headers


def test_error_responses_carry_cors_headers_too(app: App) -> None:
    r = app.client.post(
        "/identity/v1/identify", json=_envelope({"email": "a"}), headers={"Origin": ORIGIN}
    )
    _error(r, 401, "UNAUTHORIZED")
    assert "x-mp-max-age" in r.headers["access-control-expose-headers"]
    # without an Origin (server clients) the header is the wildcard
    r = app.client.post("/v1/identify", json=_envelope({"email": "a"}), headers=app.basic())
    assert r.headers["access-control-allow-origin"] == "*"


# -- description ------------------------------------------------------------------------------

_MINE = ("/v1/", "/identity/", "/webevents/", "/nativeevents/", "/tags/", "/v3/JS/", "/JS/v2/")


def test_every_route_is_in_the_openapi_document(app: App) -> None:
    spec = app.client.get("/openapi.json").json()["paths"]
    routes = [r for r in app.client.app.routes if isinstance(r, Route) and r.path.startswith(_MINE)]  # type: ignore[attr-defined]
    assert len(routes) >= 20  # 10 IDSync + 6 alias + 4 Web SDK
    for route in routes:
        assert route.path in spec, route.path
        for method in route.methods or ():
            if method not in ("HEAD", "OPTIONS"):
                assert method.lower() in spec[route.path], (method, route.path)


# -- robustness -------------------------------------------------------------------------------

_json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=8),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=8,
)
_known_names = st.sampled_from(["customerid", "email", "other3", "ios_idfa", "bogus", ""])


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    known=st.dictionaries(_known_names, st.none() | st.text(max_size=6) | _json_values, max_size=3)
    | _json_values,
    previous=_json_values,
    extra=st.dictionaries(st.sampled_from(["environment", "context", "client_sdk"]), _json_values),
)
def test_no_body_makes_identify_or_modify_fail_with_a_500(
    app: App, known: Any, previous: Any, extra: dict[str, Any]
) -> None:
    body = {"known_identities": known, "previous_mpid": previous, **extra}
    r = app.client.post("/identity/v1/identify", json=body, headers=_web(app))
    assert r.status_code in (200, 400), r.text
    changes = {
        "identity_changes": [{"identity_type": "email", "old_value": previous, "new_value": known}]
    }
    r = app.client.post("/v1/-1/modify", json={**changes, **extra}, headers=_web(app))
    assert r.status_code in (400, 404), r.text


@pytest.mark.parametrize("family", [IDSYNC, ALIAS], ids=["idsync", "alias"])
def test_every_error_class_renders_in_the_family_shape(family: Family) -> None:
    classes = [c for c in vars(e).values() if isinstance(c, type) and issubclass(c, e.OpenCdpError)]
    for cls in classes:
        exc = cls("why", retry_after=3, scope="workspace") if cls is e.RateLimited else cls("why")
        response = family.response(exc)
        assert response.media_type == "application/json"
        doc = json.loads(bytes(response.body))
        code = doc["code"]
        assert doc == {"errors": [{"code": code, "message": "why"}], "code": code, "message": "why"}
        assert code == family.codes.get(response.status_code, "INTERNAL_ERROR")
        assert response.status_code == (status_of(exc) if cls is not e.OpenCdpError else 500)
    assert json.loads(bytes(family.internal_error().body))["code"] == "INTERNAL_ERROR"
