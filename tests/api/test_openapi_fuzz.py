"""Schemathesis over /openapi.json: whatever a client sends, never a 500.

Generated requests for every documented operation, authenticated as a real client would be
(HTTP Basic with the server input for the Events API and IDSync, a bearer token for the
Profile API), through the whole ASGI app on a real SQLite store.
"""

from __future__ import annotations

import base64
from collections.abc import Iterator
from typing import Any

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis.checks import not_a_server_error

from opencdp.app import build_runtime
from opencdp.core.config import Settings
from opencdp.tenancy.tokens import AUDIENCE, GRANT_TYPE, TokenRequest

_state: dict[str, Any] = {}


@pytest.fixture(scope="module")
def api_schema(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    data = tmp_path_factory.mktemp("fuzz")
    runtime = build_runtime(Settings(data_dir=data, partitions=16))
    creds, _ = runtime.tenancy.bootstrap(data_dir=data)
    app = runtime.asgi(run_worker=False)
    basic = base64.b64encode(f"{creds.api_key}:{creds.api_secret}".encode()).decode()
    token = (
        runtime.services["tokens"]
        .issue(
            TokenRequest(
                client_id=creds.client_id,
                client_secret=creds.client_secret,
                audience=AUDIENCE,
                grant_type=GRANT_TYPE,
            )
        )
        .access_token
    )
    _state["basic"] = f"Basic {basic}"
    _state["bearer"] = f"Bearer {token}"
    yield schemathesis.openapi.from_asgi("/openapi.json", app)
    runtime.close()


def test_no_request_gets_a_server_error(api_schema: Any) -> None:
    # Operation by operation with plain hypothesis (schemathesis' pytest plugin does not load
    # under this pytest); every operation in the document is fuzzed.
    operations = [result.ok() for result in api_schema.get_all_operations()]
    assert len(operations) >= 25
    for operation in operations:
        _fuzz(operation)


def _fuzz(operation: Any) -> None:
    auth = _state["bearer"] if operation.path.startswith("/userprofile/") else _state["basic"]

    @given(case=operation.as_strategy())
    @settings(max_examples=25, deadline=None, suppress_health_check=list(HealthCheck))
    def fuzz(case: Any) -> None:
        case.call_and_validate(headers={"Authorization": auth}, checks=[not_a_server_error])

    fuzz()
