"""The ASGI front door: hot raw endpoints reached without Starlette's per-request machinery.

Starlette runs every request through two middlewares (server errors, exception handlers) and
then tries each route's regular expression in order: tens of microseconds per request, as much
as decoding a whole batch (bench/README.md). The raw endpoints (``api/raw.py``) need none of it:
they read the scope themselves and turn every failure into their family's error.

So the front keeps, per first path segment, the application's routes in their original order
and, for a request, tries only that bucket: static paths of raw endpoints by one dict lookup,
the rest with Starlette's own ``Route.matches``. Whatever the first route that matches is, the
answer is the one Starlette would have given: a raw endpoint is called directly, anything else
(a non-raw route, a method that is not allowed, no match) goes to Starlette unchanged, as do
lifespan and websocket scopes. Mounts or routes whose first segment is a parameter could match
any path, so when there is one the front steps aside entirely.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute, Match, Route

from opencdp.api.fast_http import FastRoute
from opencdp.api.raw import RawEndpoint, Receive, Scope, Send


def _first_segment(path: str) -> str:
    return path.split("/", 2)[1] if path.startswith("/") else ""


class FrontDoor:
    """An ASGI app: raw endpoints directly, everything else through ``app``."""

    def __init__(
        self, app: Starlette, fast_routes: Mapping[bytes, FastRoute] | None = None
    ) -> None:
        self.app = app
        self.fast_routes: Mapping[bytes, FastRoute] = fast_routes or {}
        """What ``api/fast_http.FastPathProtocol`` answers without ASGI (found on the app)."""
        self._static: dict[str, dict[str, RawEndpoint]] = {}
        self._buckets: dict[str, list[Route]] | None = self._index(app.routes)

    @property
    def routes(self) -> list[BaseRoute]:
        """The Starlette routes (the OpenAPI document and the tests walk them)."""
        return self.app.routes

    def _index(self, routes: Sequence[BaseRoute]) -> dict[str, list[Route]] | None:
        buckets: dict[str, list[Route]] = {}
        for route in routes:
            if not isinstance(route, Route) or "{" in _first_segment(route.path):
                return None  # could match anything: keep Starlette's full scan
            bucket = buckets.setdefault(_first_segment(route.path), [])
            app = route.app
            static = "{" not in route.path and isinstance(app, RawEndpoint)
            # A static raw route may be answered by dict lookup only if no route before it in
            # its bucket could also match its path (order decides in Starlette).
            if static and not any(_could_match(r, route.path) for r in bucket):
                assert isinstance(app, RawEndpoint)
                for method in route.methods or ():
                    self._static.setdefault(route.path, {})[method] = app
            bucket.append(route)
        return buckets

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and self._buckets is not None:
            path = scope["path"]
            methods = self._static.get(path)
            if methods is not None:
                endpoint = methods.get(scope["method"])
                if endpoint is not None:
                    scope["path_params"] = {}
                    await endpoint(scope, receive, send)
                    return
            else:
                for route in self._buckets.get(_first_segment(path), ()):
                    match, child = route.matches(scope)
                    if match is Match.NONE:
                        continue
                    app = route.app
                    if match is Match.FULL and isinstance(app, RawEndpoint):
                        scope.update(child)
                        await app(scope, receive, send)
                        return
                    break  # a non-raw route, or a method it does not allow: Starlette's answer
        await self.app(scope, receive, send)


def _could_match(route: Route, path: str) -> bool:
    """Whether ``route`` matches ``path`` for some method."""
    scope: dict[str, Any] = {"type": "http", "path": path, "method": "GET", "root_path": ""}
    match, _ = route.matches(scope)
    return match is not Match.NONE
