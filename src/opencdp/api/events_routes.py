"""Events API (server to server): /v2/events, /v2/bulkevents, /v2/bulkevents/historical."""

from __future__ import annotations

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencdp.api.context import ApiContext
from opencdp.api.errors import EVENTS, Endpoint, family_endpoint
from opencdp.api.http import basic_credentials, read_body
from opencdp.events.limits import MAX_REQUEST_BYTES
from opencdp.ingestion.service import AcceptResult
from opencdp.ingestion.service import Route as IngestRoute


def accepted(result: AcceptResult) -> Response:
    """202 with no body, or with the rejected batches of a partly good bulk request."""
    if not result.rejected:
        return Response(status_code=202)
    body = {
        "accepted_batches": result.accepted,
        "errors": [
            {"code": "BAD_REQUEST", "message": r.message, "index": r.index} for r in result.rejected
        ],
    }
    return Response(msgspec.json.encode(body), status_code=202, media_type="application/json")


def routes(ctx: ApiContext) -> list[Route]:
    def endpoint(route: IngestRoute) -> Endpoint:
        @family_endpoint(EVENTS, ctx.count_error)
        async def handle(request: Request) -> Response:
            key, secret = basic_credentials(request.headers.get("authorization"))
            principal = ctx.tenancy.authenticate_basic(key, secret)
            body = await read_body(request, MAX_REQUEST_BYTES)
            return accepted(await ctx.ingestion.accept(principal, body, route))

        return handle

    return [
        Route("/v2/events", endpoint(IngestRoute.EVENTS), methods=["POST"]),
        Route("/v2/bulkevents", endpoint(IngestRoute.BULK), methods=["POST"]),
        Route("/v2/bulkevents/historical", endpoint(IngestRoute.HISTORICAL), methods=["POST"]),
    ]
