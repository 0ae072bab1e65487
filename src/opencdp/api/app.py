"""Builds the Starlette application from the services the composition root made."""

from __future__ import annotations

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from starlette.applications import Starlette
from starlette.routing import BaseRoute

from opencdp.api import events_routes, identity_routes, ops_routes, web_routes
from opencdp.api.context import ApiContext
from opencdp.api.front import FrontDoor

RouteFactory = Callable[[ApiContext], list[Any]]

ROUTE_FACTORIES: list[RouteFactory] = [
    events_routes.routes,
    ops_routes.routes,
    identity_routes.routes,
    web_routes.routes,
]
"""Each API family contributes its routes; later slices append their factory here."""

FAST_ROUTE_FACTORIES: list[Callable[[ApiContext], dict[bytes, Any]]] = [events_routes.fast_routes]
"""Paths the HTTP protocol answers itself (api/fast_http.py, ADR 0008); each also has an
ordinary route above, for the requests the fast path leaves to ASGI."""


def build_asgi(
    ctx: ApiContext,
    *,
    extra: list[RouteFactory] | None = None,
    lifespan: Callable[[Starlette], AbstractAsyncContextManager[None]] | None = None,
) -> FrontDoor:
    all_routes: list[BaseRoute] = []
    for factory in [*ROUTE_FACTORIES, *(extra or [])]:
        all_routes.extend(factory(ctx))
    fast: dict[bytes, Any] = {}
    for fast_factory in FAST_ROUTE_FACTORIES:
        fast.update(fast_factory(ctx))
    return FrontDoor(Starlette(routes=all_routes, lifespan=lifespan), fast_routes=fast)
