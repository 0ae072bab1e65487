"""The front door answers exactly as Starlette would, only faster for raw endpoints."""

from __future__ import annotations

import msgspec
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import PlainTextResponse
from starlette.routing import Mount, Route
from starlette.testclient import TestClient

from opencdp.api import raw
from opencdp.api.errors import EVENTS
from opencdp.api.front import FrontDoor


def _raw(name: str) -> raw.RawEndpoint:
    async def handle(scope: raw.Scope, _receive: raw.Receive) -> raw.Reply:
        body = {"by": name, "params": scope.get("path_params"), "starlette": "router" in scope}
        return 200, msgspec.json.encode(body)

    return raw.RawEndpoint(EVENTS, handle)


async def _plain(request: Request) -> PlainTextResponse:
    return PlainTextResponse("plain " + request.url.path)


def _client(routes: list[Route | Mount]) -> TestClient:
    return TestClient(FrontDoor(Starlette(routes=routes)))


def test_static_raw_route_skips_starlette() -> None:
    c = _client([Route("/v2/events", _raw("events"), methods=["POST"])])
    r = c.post("/v2/events")
    assert r.json() == {"by": "events", "params": {}, "starlette": False}


def test_parameter_route_gets_its_params_without_starlette() -> None:
    c = _client([Route("/u/{org}/{mpid}", _raw("profile"), methods=["GET"])])
    r = c.get("/u/7/-42")
    assert r.json() == {"by": "profile", "params": {"org": "7", "mpid": "-42"}, "starlette": False}


def test_an_earlier_route_still_wins() -> None:
    c = _client(
        [
            Route("/v1/{name}", _plain, methods=["POST"]),
            Route("/v1/identify", _raw("identify"), methods=["POST"]),
        ]
    )
    assert c.post("/v1/identify").text == "plain /v1/identify"


def test_an_earlier_raw_parameter_route_wins_over_a_later_static_one() -> None:
    c = _client(
        [
            Route("/v1/{name}", _raw("first"), methods=["POST"]),
            Route("/v1/identify", _raw("second"), methods=["POST"]),
        ]
    )
    assert c.post("/v1/identify").json()["by"] == "first"


def test_wrong_method_and_unknown_paths_get_starlettes_answers() -> None:
    c = _client(
        [
            Route("/v2/events", _raw("events"), methods=["POST"]),
            Route("/u/{mpid}", _raw("profile"), methods=["GET"]),
            Route("/healthz", _plain),
        ]
    )
    assert c.get("/v2/events").status_code == 405
    assert c.post("/u/1").status_code == 405
    assert c.get("/nowhere").status_code == 404
    assert c.get("/healthz").text == "plain /healthz"


def test_a_mount_turns_the_shortcut_off() -> None:
    inner = Starlette(routes=[Route("/events", _plain, methods=["POST"])])
    c = _client([Mount("/v2", inner), Route("/v2/events", _raw("events"), methods=["POST"])])
    assert c.post("/v2/events").text.startswith("plain")
