"""IDSync authentication (idsync.md §6) through real HTTP calls, on every configured store.

Expected signatures are computed here with hashlib/hmac (and two fixed vectors with the openssl
CLI), never with the code under test. The server clock is frozen so Date windows are exact.
"""

from __future__ import annotations

import gzip
import hashlib
import hmac
import json
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from opencdp.api.identity_auth import canonical_path, parse_date, signature
from opencdp.app import build_runtime
from opencdp.core.clock import FrozenClock
from opencdp.core.config import Settings
from tests.conftest import App

NOW_MS = 1_700_000_000_000
RFC1123_NOW = "Tue, 14 Nov 2023 22:13:20 GMT"
COMPACT_NOW = "20231114T221320Z"

DOC_BODY = (
    '{"client_sdk":{"platform":"android","sdk_vendor":"mparticle","sdk_version":"5.0.0"},'
    '"environment":"development","request_timestamp_ms":1499875715564,'
    '"request_id":"ad58a7c1-cf35-4be5-8c42-a09989f85cc1",'
    '"known_identities":{"android_uuid":"f924f1e5707b34b7"}}'
)


@pytest.fixture
def app(settings: Settings) -> Iterator[App]:
    """The app with its clock frozen at NOW_MS (the conftest one runs on the system clock)."""
    runtime = build_runtime(settings, clock=FrozenClock(NOW_MS))
    creds, _ = runtime.tenancy.bootstrap(data_dir=settings.data_dir)
    try:
        with TestClient(runtime.asgi(run_worker=False)) as client:
            yield App(runtime=runtime, client=client, creds=creds)
    finally:
        runtime.close()
        runtime.db.dispose()


def _sign(secret: str, date: str, path: str, body: bytes, method: str = "POST") -> str:
    return hmac.new(
        secret.encode(), f"{method}\n{date}\n{path}".encode() + body, hashlib.sha256
    ).hexdigest()


def _identify_body(**identities: str) -> bytes:
    ids = identities or {"customerid": "hmac-user", "email": "hmac@example.com"}
    return json.dumps({"environment": "production", "known_identities": ids}).encode()


def _hmac_headers(
    app: App,
    body: bytes,
    signed_path: str,
    *,
    date: str = RFC1123_NOW,
    secret: str | None = None,
    key: str | None = None,
) -> dict[str, str]:
    return {
        "x-mp-key": key if key is not None else app.creds.api_key,
        "Date": date,
        "x-mp-signature": _sign(secret or app.creds.api_secret, date, signed_path, body),
        "Content-Type": "application/json",
    }


def _unauthorized(r: Any) -> None:
    assert r.status_code == 401, r.text
    doc = r.json()
    assert doc["errors"][0]["code"] == "UNAUTHORIZED" == doc["code"]
    assert doc["message"]


# -- the pieces -----------------------------------------------------------------------------


def test_signature_matches_openssl_for_the_documented_example() -> None:
    # printf 'POST\n20170712T224127Z\n/v1/identify<body>' | openssl dgst -sha256 -hmac ...
    got = signature(
        "example-api-secret", "POST", "20170712T224127Z", "/v1/identify", DOC_BODY.encode()
    )
    assert got == "b795bc485a38e1aff3c4897be8120a7c87d27b359005e59b815db817268c9655"


def test_signature_matches_openssl_for_an_rfc1123_alias_message() -> None:
    got = signature(
        "example-api-secret",
        "POST",
        "Wed, 12 Jul 2017 22:41:27 GMT",
        "/v1/identity/example-api-key/alias",
        b'{"a":1}',
    )
    assert got == "b04f5011efa5ca5e4a869facb0866f2c0536128c2027caa2174c6e5bc08eca12"


def test_dates_in_every_form_the_sdks_send() -> None:
    assert parse_date(RFC1123_NOW) == NOW_MS  # Android, iOS, UWP
    assert parse_date(COMPACT_NOW) == NOW_MS  # the HTTP doc
    assert parse_date("2023-11-14T22:13:20Z") == NOW_MS
    assert parse_date("2023-11-14T23:13:20+01:00") == NOW_MS
    assert parse_date("Tue, 14 Nov 2023 14:13:20 PST") == NOW_MS
    for bad in ("", "yesterday", "2023-13-45", "Tue, 99 Nov 2023 22:13:20 GMT"):
        assert parse_date(bad) is None, bad


def test_canonical_path_is_the_mparticle_path() -> None:
    assert canonical_path("/identity/v1/identify") == "/v1/identify"
    assert canonical_path("/v1/login") == "/v1/login"
    assert canonical_path("/identity/v1/-42/modify") == "/v1/-42/modify"
    assert canonical_path("/nativeevents/v1/identity/K/alias") == "/v1/identity/K/alias"
    assert canonical_path("/proxy/prefix/identity/v1/logout") == "/v1/logout"


# -- HMAC over HTTP --------------------------------------------------------------------------


def test_hmac_signs_the_canonical_path_under_either_prefix(app: App) -> None:
    body = _identify_body()
    mpids = set()
    for path in ("/v1/identify", "/identity/v1/identify"):
        r = app.client.post(path, content=body, headers=_hmac_headers(app, body, "/v1/identify"))
        assert r.status_code == 200, r.text
        mpids.add(r.json()["mpid"])
    # a hand-written client that signs the path it actually calls is accepted as well
    headers = _hmac_headers(app, body, "/identity/v1/identify")
    r = app.client.post("/identity/v1/identify", content=body, headers=headers)
    assert r.status_code == 200, r.text
    mpids.add(r.json()["mpid"])
    assert len(mpids) == 1


def test_hmac_refuses_wrong_secret_body_path_and_missing_parts(app: App) -> None:
    body = _identify_body()
    post = app.client.post
    _unauthorized(
        post(
            "/v1/identify",
            content=body,
            headers=_hmac_headers(app, body, "/v1/identify", secret="nope"),
        )
    )
    tampered = _identify_body(customerid="someone-else")
    _unauthorized(
        post("/v1/identify", content=tampered, headers=_hmac_headers(app, body, "/v1/identify"))
    )
    _unauthorized(post("/v1/identify", content=body, headers=_hmac_headers(app, body, "/v1/login")))
    _unauthorized(
        post(
            "/v1/identify",
            content=body,
            headers=_hmac_headers(app, body, "/v1/identify", key="unknown-key"),
        )
    )
    good = _hmac_headers(app, body, "/v1/identify")
    for drop in ("Date", "x-mp-key"):
        headers = {k: v for k, v in good.items() if k != drop}
        _unauthorized(post("/v1/identify", content=body, headers=headers))
    _unauthorized(post("/v1/identify", content=body, headers={**good, "Date": "not a date"}))
    _unauthorized(post("/v1/identify", content=body, headers={**good, "x-mp-signature": "00ff"}))


def test_hmac_accepts_uppercase_hex(app: App) -> None:
    body = _identify_body()
    headers = _hmac_headers(app, body, "/v1/identify")
    headers["x-mp-signature"] = headers["x-mp-signature"].upper()
    assert app.client.post("/v1/identify", content=body, headers=headers).status_code == 200


@pytest.mark.parametrize(
    ("date", "ok"),
    [
        (RFC1123_NOW, True),
        (COMPACT_NOW, True),
        ("2023-11-14T22:13:20Z", True),
        ("Tue, 14 Nov 2023 22:08:21 GMT", True),  # 299 s old
        ("Tue, 14 Nov 2023 22:18:19 GMT", True),  # 299 s ahead
        ("Tue, 14 Nov 2023 22:08:19 GMT", False),  # 301 s old: replayed or a wrong clock
        ("20231114T221821Z", False),  # 301 s in the future
        ("Tue, 14 Nov 2023 21:13:20 GMT", False),
    ],
)
def test_hmac_date_must_be_within_the_window(app: App, date: str, ok: bool) -> None:
    body = _identify_body()
    headers = _hmac_headers(app, body, "/v1/identify", date=date)
    r = app.client.post("/identity/v1/identify", content=body, headers=headers)
    if ok:
        assert r.status_code == 200, r.text
    else:
        _unauthorized(r)
        assert "Date" in r.json()["message"]


def test_hmac_gzip_body_is_signed_uncompressed(app: App) -> None:
    body = _identify_body()
    packed = gzip.compress(body)
    headers = {**_hmac_headers(app, body, "/v1/identify"), "Content-Encoding": "gzip"}
    r = app.client.post("/identity/v1/identify", content=packed, headers=headers)
    assert r.status_code == 200, r.text
    wrong = {**_hmac_headers(app, packed, "/v1/identify"), "Content-Encoding": "gzip"}
    _unauthorized(app.client.post("/identity/v1/identify", content=packed, headers=wrong))


def test_hmac_covers_the_query_string(app: App) -> None:
    body = _identify_body()
    ok = _hmac_headers(app, body, "/v1/identify?cb=1")
    assert (
        app.client.post("/identity/v1/identify?cb=1", content=body, headers=ok).status_code == 200
    )
    bare = _hmac_headers(app, body, "/v1/identify")
    _unauthorized(app.client.post("/identity/v1/identify?cb=1", content=body, headers=bare))


def test_hmac_modify_signs_the_negative_mpid_path(app: App) -> None:
    body = _identify_body()
    r = app.client.post(
        "/v1/identify", content=body, headers=_hmac_headers(app, body, "/v1/identify")
    )
    mpid = r.json()["mpid"]
    change = json.dumps(
        {"identity_changes": [{"identity_type": "other", "old_value": None, "new_value": "o1"}]}
    ).encode()
    path = f"/v1/{mpid}/modify"
    r = app.client.post(
        f"/identity{path}", content=change, headers=_hmac_headers(app, change, path)
    )
    assert r.status_code == 200, r.text
    assert r.json()["change_results"] == [{"identity_type": "other", "modified_mpid": mpid}]


# -- Basic and key-only ----------------------------------------------------------------------


def test_basic_auth(app: App) -> None:
    body = _identify_body()
    assert app.client.post("/v1/identify", content=body, headers=app.basic()).status_code == 200
    _unauthorized(app.client.post("/v1/identify", content=body, headers=app.basic(secret="x")))
    _unauthorized(app.client.post("/v1/identify", content=body, headers=app.basic(key="x")))
    garbage = {"Authorization": "Basic !!!"}
    _unauthorized(app.client.post("/v1/identify", content=body, headers=garbage))
    _unauthorized(app.client.post("/v1/identify", content=body))  # nothing at all


def test_key_only_needs_an_input_that_allows_it(app: App) -> None:
    body = _identify_body()
    web = {"x-mp-key": app.creds.web_api_key}
    assert app.client.post("/identity/v1/identify", content=body, headers=web).status_code == 200
    server = {"x-mp-key": app.creds.api_key}  # the server input requires its secret
    r = app.client.post("/identity/v1/identify", content=body, headers=server)
    assert r.status_code == 403
    assert r.json()["errors"][0]["code"] == "FORBIDDEN"
    _unauthorized(
        app.client.post("/identity/v1/identify", content=body, headers={"x-mp-key": "nope"})
    )


# -- alias: the key is in the URL -------------------------------------------------------------


def _two_profiles(app: App) -> tuple[str, str]:
    mpids = []
    for cid in ("alias-src", "alias-dst"):
        body = _identify_body(customerid=cid)
        mpids.append(
            app.client.post("/v1/identify", content=body, headers=app.basic()).json()["mpid"]
        )
    return mpids[0], mpids[1]


def _alias_body(app: App, source: str | int, dest: str | int, **data: Any) -> bytes:
    doc = {
        "request_id": "r-1",
        "request_type": "alias",
        "environment": "production",
        "api_key": app.creds.api_key,
        "data": {"source_mpid": source, "destination_mpid": dest, **data},
    }
    return json.dumps(doc).encode()


def test_native_alias_is_signed_with_the_key_from_the_path(app: App) -> None:
    src, dst = _two_profiles(app)
    key = app.creds.api_key
    # Android: numbers, no times (0 is omitted), gzip, Date + signature but no x-mp-key
    body = _alias_body(app, int(src), int(dst))
    path = f"/nativeevents/v1/identity/{key}/alias"
    headers = {
        "Date": RFC1123_NOW,
        "x-mp-signature": _sign(
            app.creds.api_secret, RFC1123_NOW, f"/v1/identity/{key}/alias", body
        ),
        "Content-Encoding": "gzip",
        "Content-Type": "application/json",
    }
    r = app.client.post(path, content=gzip.compress(body), headers=headers)
    assert r.status_code == 202, r.text
    assert r.content == b""
    # an x-mp-key naming another input than the path is refused
    r = app.client.post(
        path, content=gzip.compress(body), headers={**headers, "x-mp-key": app.creds.web_api_key}
    )
    _unauthorized(r)
    # the server input does not allow key-only, so an unsigned alias is forbidden
    r = app.client.post(path, content=body, headers={"Content-Type": "application/json"})
    assert r.status_code == 403
    assert r.json() == {
        "errors": [{"code": "FORBIDDEN", "message": r.json()["message"]}],
        "code": "FORBIDDEN",
        "message": r.json()["message"],
    }
    # a signature made with another input's secret
    bad = {
        **headers,
        "x-mp-signature": _sign("other", RFC1123_NOW, f"/v1/identity/{key}/alias", body),
    }
    _unauthorized(app.client.post(path, content=gzip.compress(body), headers=bad))
