"""Events API (server to server): /v2/events, /v2/bulkevents, /v2/bulkevents/historical.

Hot path: these are raw ASGI endpoints (see api/raw.py); the handler is still decode, one
service call, encode.
"""

from __future__ import annotations

import msgspec
from starlette.routing import Route

from opencdp.api import raw
from opencdp.api.context import ApiContext
from opencdp.api.errors import EVENTS
from opencdp.api.http import basic_credentials
from opencdp.events.limits import MAX_REQUEST_BYTES
from opencdp.ingestion.service import AcceptResult
from opencdp.ingestion.service import Route as IngestRoute


def accepted(result: AcceptResult) -> tuple[int, bytes]:
    """202 with no body, or with the rejected batches of a partly good bulk request."""
    if not result.rejected:
        return 202, b""
    body = {
        "accepted_batches": result.accepted,
        "errors": [
            {"code": "BAD_REQUEST", "message": r.message, "index": r.index} for r in result.rejected
        ],
    }
    return 202, msgspec.json.encode(body)


def routes(ctx: ApiContext) -> list[Route]:
    def endpoint(route: IngestRoute) -> raw.Handler:
        async def handle(scope: raw.Scope, receive: raw.Receive) -> raw.Reply:
            key, secret = basic_credentials(raw.header(scope, b"authorization"))
            principal = ctx.tenancy.authenticate_basic(key, secret)
            body = await raw.read_body(scope, receive, MAX_REQUEST_BYTES)
            return accepted(await ctx.ingestion.accept(principal, body, route))

        return handle

    def mount(path: str, route: IngestRoute) -> Route:
        return Route(
            path, raw.RawEndpoint(EVENTS, endpoint(route), ctx.count_error), methods=["POST"]
        )

    return [
        mount("/v2/events", IngestRoute.EVENTS),
        mount("/v2/bulkevents", IngestRoute.BULK),
        mount("/v2/bulkevents/historical", IngestRoute.HISTORICAL),
    ]
