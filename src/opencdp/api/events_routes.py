"""Events API (server to server): /v2/events, /v2/bulkevents, /v2/bulkevents/historical.

Hot path. ``opencdp serve`` answers these on the HTTP protocol's fast path
(``fast_routes``, api/fast_http.py, ADR 0008); the same endpoints are also raw ASGI apps
(``routes``, api/raw.py) for requests the fast path leaves to ASGI (a query string, ``Expect:
100-continue``, pipelining) and for in-process clients. Both are decode, one service call,
encode, and both answer errors through ``raw.error_reply``.
"""

from __future__ import annotations

import msgspec
from starlette.routing import Route

from opencdp.api import raw
from opencdp.api.context import ApiContext
from opencdp.api.errors import EVENTS
from opencdp.api.fast_http import FastRoute, RawHeaders, Respond
from opencdp.api.http import basic_credentials
from opencdp.events.limits import MAX_REQUEST_BYTES
from opencdp.ingestion.service import AcceptResult
from opencdp.ingestion.service import Route as IngestRoute

_PATHS = {
    "/v2/events": IngestRoute.EVENTS,
    "/v2/bulkevents": IngestRoute.BULK,
    "/v2/bulkevents/historical": IngestRoute.HISTORICAL,
}


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

    return [mount(path, route) for path, route in _PATHS.items()]


def fast_routes(ctx: ApiContext) -> dict[bytes, FastRoute]:
    """The same three endpoints for the HTTP fast path: the same checks in the same order
    (credentials, then size, then the batches), the same answers."""

    def route_for(path: str, route: IngestRoute) -> FastRoute:
        def fail(exc: BaseException, respond: Respond) -> None:
            status, headers, payload = raw.error_reply(EVENTS, ctx.count_error, exc, path)
            respond(status, [*raw.encode_headers(headers), raw.JSON_CONTENT_TYPE], payload)

        def handle(headers: RawHeaders, body: bytes | None, respond: Respond) -> None:
            def done(outcome: AcceptResult | BaseException) -> None:
                if isinstance(outcome, BaseException):
                    fail(outcome, respond)
                    return
                status, payload = accepted(outcome)
                respond(status, [raw.JSON_CONTENT_TYPE] if payload else [], payload)

            try:
                auth = raw.header_in(headers, b"authorization")
                principal = ctx.tenancy.authenticate_basic(*basic_credentials(auth))
                declared, encoding = raw.body_headers(headers)
                raw.check_declared_length(declared, MAX_REQUEST_BYTES)
                if body is None:
                    raise raw.over_limit(MAX_REQUEST_BYTES)
                body = raw.unpacked(body, encoding, MAX_REQUEST_BYTES)
                ctx.ingestion.accept_then(principal, body, route, done)
            except Exception as exc:
                fail(exc, respond)

        return FastRoute(limit=MAX_REQUEST_BYTES, handle=handle)

    return {path.encode(): route_for(path, route) for path, route in _PATHS.items()}
