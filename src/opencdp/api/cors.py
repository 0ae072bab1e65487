"""CORS for the browser-facing routes (IDSync, alias, Web SDK events and config).

The Web SDK calls us from the customer's page, i.e. from another origin. Its event uploads and
config GET are "simple" requests, but ``fetch`` still refuses to hand the status to the SDK
unless the response carries ``Access-Control-Allow-Origin``; without it the SDK sees a network
error and re-sends the batch forever. Identity calls and aliases carry JSON and ``x-mp-key``, so
the browser first sends an ``OPTIONS`` preflight (docs/sdk-clients.md §2.1).

So every response of a wrapped route, errors included, carries the allow-origin header, and
``OPTIONS`` on such a route is answered here without authentication. No request carries cookies,
so credentials are never allowed and echoing the caller's origin grants nothing a ``*`` would not.

Two spellings of the same headers: ``with_cors`` for Starlette endpoints, and
:class:`CorsEndpoint` for raw ASGI endpoints (``api/raw.py``, the IDSync hot path).
"""

from __future__ import annotations

import functools
from collections.abc import Callable

from starlette.requests import Request
from starlette.responses import Response

from opencdp.api import raw
from opencdp.api.errors import Endpoint, Family

ALLOW_METHODS = "GET, POST, OPTIONS"
ALLOW_HEADERS = ", ".join(
    [
        "Content-Type",
        "Accept",
        "Content-Encoding",
        "x-mp-key",  # key-only IDSync auth (every Web SDK identity call)
        "x-mp-signature",  # HMAC auth, for browser clients that sign
        "Date",
        "Authorization",
        "x-mp-env",
    ]
)
EXPOSE_HEADERS = ", ".join(
    [
        "x-mp-max-age",  # identity cache lifetime, read with the cacheIdentity flag
        "Retry-After",
        "X-mp-rate-limit-exceeded",
        "X-mp-rate-limit-percentage-used",
    ]
)
MAX_AGE_S = "7200"  # Chromium's cap; preflights are then cached for the page's lifetime


def _origin_headers(request: Request) -> dict[str, str]:
    origin = request.headers.get("origin")
    headers = {"Access-Control-Allow-Origin": origin or "*"}
    if origin:
        headers["Vary"] = "Origin"
    return headers


def preflight(request: Request) -> Response:
    """204 allowing the methods and headers the SDKs send, for the caller's origin."""
    headers = _origin_headers(request)
    headers["Access-Control-Allow-Methods"] = ALLOW_METHODS
    headers["Access-Control-Allow-Headers"] = ALLOW_HEADERS
    headers["Access-Control-Max-Age"] = MAX_AGE_S
    return Response(status_code=204, headers=headers)


def with_cors(endpoint: Endpoint) -> Endpoint:
    """Answer preflights and stamp CORS headers on every response of ``endpoint``.

    Wrap the family endpoint (``with_cors(family_endpoint(...)(handler))``): that one turns every
    failure into a response, so error responses pass through here and get the headers too.
    """

    @functools.wraps(endpoint)
    async def handle(request: Request) -> Response:
        if request.method == "OPTIONS":
            return preflight(request)
        response = await endpoint(request)
        response.headers.update(_origin_headers(request))
        response.headers["Access-Control-Expose-Headers"] = EXPOSE_HEADERS
        return response

    return handle


# -- raw ASGI endpoints --------------------------------------------------------------------------

_EXPOSE = (b"access-control-expose-headers", EXPOSE_HEADERS.encode("latin-1"))
_ANY_ORIGIN = (b"access-control-allow-origin", b"*")
_VARY = (b"vary", b"Origin")
_PREFLIGHT = [
    (b"access-control-allow-methods", ALLOW_METHODS.encode("latin-1")),
    (b"access-control-allow-headers", ALLOW_HEADERS.encode("latin-1")),
    (b"access-control-max-age", MAX_AGE_S.encode("latin-1")),
]


def _raw_origin_headers(scope: raw.Scope) -> raw.RawHeaders:
    origin = raw.header(scope, b"origin")
    if not origin:
        return [_ANY_ORIGIN]
    return [(b"access-control-allow-origin", origin.encode("latin-1")), _VARY]


def raw_cors_headers(scope: raw.Scope) -> raw.RawHeaders:
    """``decorate`` for a raw endpoint: what ``with_cors`` stamps on every response."""
    headers = _raw_origin_headers(scope)
    headers.append(_EXPOSE)
    return headers


class CorsEndpoint(raw.RawEndpoint):
    """A raw endpoint with ``with_cors``'s behaviour: preflights answered here (204, no
    authentication, the same headers as :func:`preflight`), every other response, errors
    included, stamped with the allow-origin and expose headers."""

    __slots__ = ()

    def __init__(
        self,
        family: Family,
        handler: raw.Handler,
        on_error: Callable[[Family, str], None] | None = None,
    ) -> None:
        super().__init__(family, handler, on_error, decorate=raw_cors_headers)

    async def __call__(self, scope: raw.Scope, receive: raw.Receive, send: raw.Send) -> None:
        if scope["method"] == "OPTIONS":
            headers = _raw_origin_headers(scope)
            headers.extend(_PREFLIGHT)
            # 204: no body and, as Starlette sends it, no Content-Length either.
            await send({"type": "http.response.start", "status": 204, "headers": headers})
            await send({"type": "http.response.body", "body": b""})
            return
        await super().__call__(scope, receive, send)
