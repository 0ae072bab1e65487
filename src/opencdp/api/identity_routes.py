"""IDSync (identify, login, logout, search, modify) and the SDKs' alias endpoints.

Paths: the Identity API's own ``/v1/...`` and the ``/identity/v1/...`` prefix the SDKs use when
pointed at a custom host (idsync.md §5.1); alias under the web SDK's
``/webevents/v1/identity/{apiKey}/Alias``, the native SDKs' ``/nativeevents/v1/identity/{apiKey}/
alias`` and mParticle's ``/v1/identity/{apiKey}/alias`` (either spelling of "alias" everywhere).
Every route answers CORS, since the Web SDK calls all of them from the customer's page.

Hot path: these are raw ASGI endpoints (``api/raw.py``) with CORS (``cors.CorsEndpoint``):
Starlette's Request/Response objects, ``family_endpoint`` and ``with_cors`` cost more per
request than the identity decision (bench/IDENTITY_PROFILE.md). A handler reads the body
(bounded, gunzipped), authenticates from the scope's headers, decodes, makes one
identity-service call and encodes. Identify, login and logout decide on a read snapshot on the
event loop; a call that must write gets a ``PendingWrite`` and answers with ``raw.Later``, so
the response leaves from the commit's completion itself. Search reads inline; modify and alias
write in the thread pool (they block on the database's write lock).
"""

from __future__ import annotations

from collections.abc import Callable

from starlette.concurrency import run_in_threadpool
from starlette.routing import Route

from opencdp.api import raw
from opencdp.api.context import ApiContext
from opencdp.api.cors import CorsEndpoint
from opencdp.api.errors import ALIAS, IDSYNC
from opencdp.api.identity_auth import authenticate_scope
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
from opencdp.identity.service import IdentityResult, IdentityService, PendingWrite

MAX_BODY_BYTES = 64 * 1024
"""IDSync bodies are a handful of identities; anything near this is not a real client."""

PREFIXES = ("/identity/v1", "/v1")
ALIAS_PREFIXES = ("/webevents/v1/identity", "/nativeevents/v1/identity", "/v1/identity")
METHODS = ["POST", "OPTIONS"]

EXTRA_PATHS.update(IDENTITY_PATHS)

Call = Callable[[int, IdentityRequest], "IdentityResult | PendingWrite"]


def routes(ctx: ApiContext) -> list[Route]:
    service: IdentityService = ctx.services["identity"]

    def idsync(call: Call) -> CorsEndpoint:
        async def handle(scope: raw.Scope, receive: raw.Receive) -> raw.Reply | raw.Later:
            body = await raw.read_body(scope, receive, MAX_BODY_BYTES)
            principal = authenticate_scope(ctx, scope, body)
            identity_request, context = decode_identity_request(body)
            out = call(principal.workspace_id, identity_request)
            if isinstance(out, IdentityResult):
                return 200, encode_identity_response(out, context)
            pending = out

            def begin(answer: raw.Answer) -> None:
                def done(outcome: IdentityResult | BaseException) -> None:
                    if isinstance(outcome, BaseException):
                        answer(outcome)
                    else:
                        answer(
                            raw.reply_of(lambda: (200, encode_identity_response(outcome, context)))
                        )

                pending.then(done)

            return raw.Later(begin)

        return CorsEndpoint(IDSYNC, handle, ctx.count_error)

    async def modify(scope: raw.Scope, receive: raw.Receive) -> raw.Reply:
        body = await raw.read_body(scope, receive, MAX_BODY_BYTES)
        principal = authenticate_scope(ctx, scope, body)
        modify_request, context = decode_modify_request(scope["path_params"]["mpid"], body)
        result = await run_in_threadpool(service.modify, principal.workspace_id, modify_request)
        return 200, encode_modify_response(result, context)

    async def alias(scope: raw.Scope, receive: raw.Receive) -> raw.Reply:
        body = await raw.read_body(scope, receive, MAX_BODY_BYTES)
        path_key = scope["path_params"]["apiKey"]
        principal = authenticate_scope(ctx, scope, body, path_key=path_key)
        alias_request = decode_alias_request(body, now_ms=ctx.clock.now_ms())
        await run_in_threadpool(
            service.alias,
            principal.workspace_id,
            source_mpid=alias_request.source_mpid,
            destination_mpid=alias_request.destination_mpid,
            start_ms=alias_request.start_ms,
            end_ms=alias_request.end_ms,
        )
        return 202, b""

    calls: dict[str, Call] = {
        "identify": service.identify_now,
        "login": service.login_now,
        "logout": service.logout_now,
        "search": service.search,
    }
    modify_endpoint = CorsEndpoint(IDSYNC, modify, ctx.count_error)
    alias_endpoint = CorsEndpoint(ALIAS, alias, ctx.count_error)
    out: list[Route] = []
    for prefix in PREFIXES:
        out += [
            Route(f"{prefix}/{name}", idsync(call), methods=METHODS) for name, call in calls.items()
        ]
        out.append(Route(prefix + "/{mpid}/modify", modify_endpoint, methods=METHODS))
    for prefix in ALIAS_PREFIXES:
        for name in ("Alias", "alias"):
            out.append(Route(f"{prefix}/{{apiKey}}/{name}", alias_endpoint, methods=METHODS))
    return out
