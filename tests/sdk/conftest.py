"""A live opencdp (real uvicorn on a loopback port, real store, worker running) for SDK tests."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import pytest

from opencdp.app import Runtime
from opencdp.core.config import Settings
from opencdp.tenancy.model import Credentials
from tests.support.server import LiveServer


@dataclass
class Live:
    url: str
    runtime: Runtime
    creds: Credentials


@pytest.fixture
def live(runtime: Runtime, settings: Settings) -> Iterator[Live]:
    creds, _ = runtime.tenancy.bootstrap(data_dir=settings.data_dir)
    with LiveServer(runtime.asgi(run_worker=True)) as server:
        yield Live(url=server.url, runtime=runtime, creds=creds)
