"""Web SDK endpoints: event batch upload and the SDK configuration.

Paths are the SDK's CNAME layout (``/webevents/v3/JS/{apiKey}/events``,
``/tags/JS/v2/{apiKey}/config``, what ``domain:`` produces) and mParticle's own hosts' layout
(``/v3/JS/...``, ``/JS/v2/...``). The key in the path is the only credential (key-only auth).
Errors use the Events API body; every response carries CORS headers, since the SDK reads the
status cross-origin (docs/sdk-clients.md §2.1).
"""

from __future__ import annotations

import hashlib

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencdp.api.context import ApiContext
from opencdp.api.cors import with_cors
from opencdp.api.errors import EVENTS, family_endpoint
from opencdp.api.events_routes import accepted
from opencdp.api.http import read_body
from opencdp.api.identity_openapi import WEB_PATHS
from opencdp.api.openapi import EXTRA_PATHS
from opencdp.events.limits import MAX_REQUEST_BYTES
from opencdp.ingestion.service import Route as IngestRoute
from opencdp.tenancy.model import Principal

EXTRA_PATHS.update(WEB_PATHS)

SDK_FLAGS = {"eventBatchingIntervalMillis": "0", "offlineStorage": "0"}
"""Flags the SDK reads as strings (docs/sdk-clients.md §2.1). ``"0"`` uploads each event at
once, so nothing waits in the page to be lost; ``reportBatching`` and ``directURLRouting`` are
left out on purpose (any value of the first turns it on; the second would reroute the SDK)."""


def workspace_token(workspace_id: int) -> str:
    """Eight stable hex characters per workspace: the SDK names its localStorage keys after it.

    Derived rather than stored so that every server process answers the same token, and hashed
    so the page does not learn the workspace's row id.
    """
    return hashlib.sha256(f"opencdp-workspace:{workspace_id}".encode()).hexdigest()[:8].upper()


def sdk_config(principal: Principal) -> bytes:
    """The /config body: only keys with an effect, none that would move the SDK's URLs."""
    return msgspec.json.encode(
        {
            "workspaceToken": workspace_token(principal.workspace_id),
            "kitConfigs": [],
            "pixelConfigs": [],
            "flags": SDK_FLAGS,
        }
    )


def routes(ctx: ApiContext) -> list[Route]:
    @family_endpoint(EVENTS, ctx.count_error)
    async def events(request: Request) -> Response:
        principal = ctx.tenancy.authenticate_key_only(request.path_params["apiKey"])
        body = await read_body(request, MAX_REQUEST_BYTES)
        # Route.WEB answers a batch it will never take with 202 and counts it as rejected:
        # the Web SDK would re-send it forever after a 400 (docs/adr/0002).
        status, payload = accepted(await ctx.ingestion.accept(principal, body, IngestRoute.WEB))
        return Response(
            payload, status_code=status, media_type="application/json" if payload else None
        )

    @family_endpoint(EVENTS, ctx.count_error)
    async def config(request: Request) -> Response:
        principal = ctx.tenancy.authenticate_key_only(request.path_params["apiKey"])
        return Response(sdk_config(principal), media_type="application/json")

    events_endpoint, config_endpoint = with_cors(events), with_cors(config)
    return [
        Route(p, events_endpoint, methods=["POST", "OPTIONS"])
        for p in ("/webevents/v3/JS/{apiKey}/events", "/v3/JS/{apiKey}/events")
    ] + [
        Route(p, config_endpoint, methods=["GET", "OPTIONS"])
        for p in ("/tags/JS/v2/{apiKey}/config", "/JS/v2/{apiKey}/config")
    ]
