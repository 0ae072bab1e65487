"""IDSync (identify, login, logout, search, modify) and the SDKs' alias endpoints.

Paths: the Identity API's own ``/v1/...`` and the ``/identity/v1/...`` prefix the SDKs use when
pointed at a custom host (idsync.md §5.1); alias under the web SDK's
``/webevents/v1/identity/{apiKey}/Alias``, the native SDKs' ``/nativeevents/v1/identity/{apiKey}/
alias`` and mParticle's ``/v1/identity/{apiKey}/alias`` (either spelling of "alias" everywhere).
Every route answers CORS, since the Web SDK calls all of them from the customer's page.

Handlers read the body (bounded, gunzipped), authenticate, decode, make one identity-service
call in the thread pool (it blocks on the database) and encode.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencdp.api.context import ApiContext
from opencdp.api.cors import with_cors
from opencdp.api.errors import ALIAS, IDSYNC, Endpoint, family_endpoint
from opencdp.api.http import read_body
from opencdp.api.identity_auth import authenticate
from opencdp.api.identity_openapi import IDENTITY_PATHS
from opencdp.api.identity_wire import (
    decode_alias_request,
    decode_identity_request,
    decode_modify_request,
    encode_identity_response,
    encode_modify_response,
)
from opencdp.api.openapi import EXTRA_PATHS
from opencdp.identity.model import IdentityRequest
from opencdp.identity.service import IdentityResult, IdentityService

MAX_BODY_BYTES = 64 * 1024
"""IDSync bodies are a handful of identities; anything near this is not a real client."""

PREFIXES = ("/identity/v1", "/v1")
ALIAS_PREFIXES = ("/webevents/v1/identity", "/nativeevents/v1/identity", "/v1/identity")
METHODS = ["POST", "OPTIONS"]

EXTRA_PATHS.update(IDENTITY_PATHS)

Call = Callable[[int, IdentityRequest], Awaitable[IdentityResult]]


def _json(body: bytes) -> Response:
    return Response(body, status_code=200, media_type="application/json")


def routes(ctx: ApiContext) -> list[Route]:
    service: IdentityService = ctx.services["identity"]

    def idsync(call: Call) -> Endpoint:
        @family_endpoint(IDSYNC, ctx.count_error)
        async def handle(request: Request) -> Response:
            body = await read_body(request, MAX_BODY_BYTES)
            principal = authenticate(ctx, request, body)
            identity_request, context = decode_identity_request(body)
            result = await call(principal.workspace_id, identity_request)
            return _json(encode_identity_response(result, context))

        return with_cors(handle)

    @family_endpoint(IDSYNC, ctx.count_error)
    async def modify(request: Request) -> Response:
        body = await read_body(request, MAX_BODY_BYTES)
        principal = authenticate(ctx, request, body)
        modify_request, context = decode_modify_request(request.path_params["mpid"], body)
        result = await run_in_threadpool(service.modify, principal.workspace_id, modify_request)
        return _json(encode_modify_response(result, context))

    @family_endpoint(ALIAS, ctx.count_error)
    async def alias(request: Request) -> Response:
        body = await read_body(request, MAX_BODY_BYTES)
        principal = authenticate(ctx, request, body, path_key=request.path_params["apiKey"])
        alias_request = decode_alias_request(body, now_ms=ctx.clock.now_ms())
        await run_in_threadpool(
            service.alias,
            principal.workspace_id,
            source_mpid=alias_request.source_mpid,
            destination_mpid=alias_request.destination_mpid,
            start_ms=alias_request.start_ms,
            end_ms=alias_request.end_ms,
        )
        return Response(status_code=202)

    calls: dict[str, Call] = {
        "identify": service.identify_async,
        "login": service.login_async,
        "logout": service.logout_async,
        "search": service.search_async,
    }
    out: list[Route] = []
    for prefix in PREFIXES:
        out += [
            Route(f"{prefix}/{name}", idsync(call), methods=METHODS) for name, call in calls.items()
        ]
        out.append(Route(prefix + "/{mpid}/modify", with_cors(modify), methods=METHODS))
    for prefix in ALIAS_PREFIXES:
        for name in ("Alias", "alias"):
            out.append(Route(f"{prefix}/{{apiKey}}/{name}", with_cors(alias), methods=METHODS))
    return out
