"""Shared by the profile tests: an app on a frozen clock, and calls into it over HTTP."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from starlette.testclient import TestClient

from opencdp.app import build_runtime
from opencdp.core.clock import FrozenClock
from opencdp.core.config import Settings
from opencdp.profiles.service import ProfileService
from tests.conftest import App

T0 = 1_750_000_000_000
DAY = 86_400_000
ALL_FIELDS = "device_identities,user_identities,user_attributes,audience_memberships,attribution"


@contextmanager
def frozen_app(settings: Settings, clock: FrozenClock) -> Iterator[App]:
    rt = build_runtime(settings, clock=clock)
    try:
        creds, _ = rt.tenancy.bootstrap(data_dir=settings.data_dir)
        with TestClient(rt.asgi(run_worker=False)) as client:
            yield App(runtime=rt, client=client, creds=creds)
    finally:
        rt.close()
        rt.db.dispose()


def send(app: App, doc: dict[str, Any] | list[dict[str, Any]], path: str = "/v2/events") -> None:
    r = app.client.post(path, json=doc, headers=app.basic())
    assert r.status_code == 202, r.text
    app.runtime.worker.drain()


def token(app: App, client_id: str | None = None, secret: str | None = None) -> str:
    r = app.client.post(
        "/oauth/token",
        json={
            "client_id": client_id or app.creds.client_id,
            "client_secret": secret or app.creds.client_secret,
            "audience": "https://api.mparticle.com",
            "grant_type": "client_credentials",
        },
    )
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


def profile_url(app: App, mpid: int | str, *, ws: int | None = None) -> str:
    c = app.creds
    return f"/userprofile/v1/{c.org_id}/{c.account_id}/{ws or c.workspace_id}/{mpid}"


def get_profile(
    app: App, mpid: int, fields: str | None = ALL_FIELDS, bearer: str | None = None
) -> tuple[int, Any]:
    params = {} if fields is None else {"fields": fields}
    r = app.client.get(
        profile_url(app, mpid),
        params=params,
        headers={"Authorization": f"Bearer {bearer or token(app)}"},
    )
    return r.status_code, r.json()


def profiles_service(app: App) -> ProfileService:
    service: ProfileService = app.runtime.services["profiles"]
    return service
