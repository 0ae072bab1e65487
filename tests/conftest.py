"""Shared fixtures: every storage test runs on SQLite and, when configured, on PostgreSQL."""

from __future__ import annotations

import base64
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from starlette.testclient import TestClient

from opencdp.app import Runtime, build_runtime
from opencdp.core.clock import SystemClock
from opencdp.core.config import Settings
from opencdp.tenancy.model import Credentials
from tests.support import stores


def pytest_sessionstart(session: pytest.Session) -> None:
    base = stores.pg_base_url()
    if base:  # fail loudly, never skip, when CI asked for PostgreSQL and it is not there
        import sqlalchemy as sa

        eng = sa.create_engine(base)
        with eng.connect() as conn:
            conn.exec_driver_sql("SELECT 1")
        eng.dispose()


def pytest_sessionfinish(session: pytest.Session, exitstatus: int) -> None:
    stores.drop_template()


@pytest.fixture(params=stores.backends())
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'opencdp.db'}"
        return
    url = stores.new_pg_database()
    try:
        yield url
    finally:
        stores.drop_pg_database(url)


@pytest.fixture
def settings(database_url: str, tmp_path: Path) -> Settings:
    return Settings(data_dir=tmp_path / "data", database_url=database_url, partitions=16)


@dataclass
class App:
    runtime: Runtime
    client: TestClient
    creds: Credentials

    def basic(self, key: str | None = None, secret: str | None = None) -> dict[str, str]:
        k = key if key is not None else self.creds.api_key
        s = secret if secret is not None else self.creds.api_secret
        return {"Authorization": "Basic " + base64.b64encode(f"{k}:{s}".encode()).decode()}


@pytest.fixture
def runtime(settings: Settings) -> Iterator[Runtime]:
    rt = build_runtime(settings, clock=SystemClock())
    try:
        yield rt
    finally:
        rt.close()
        rt.db.dispose()


@pytest.fixture
def app(runtime: Runtime, settings: Settings) -> Iterator[App]:
    creds, _ = runtime.tenancy.bootstrap(data_dir=settings.data_dir)
    with TestClient(runtime.asgi(run_worker=False)) as client:
        yield App(runtime=runtime, client=client, creds=creds)
