"""The one table per API family that turns domain errors into wire errors.

Handlers never build error responses themselves: they raise ``opencdp.core.errors`` exceptions
and the family wrapper (``family_endpoint``) renders them here. A test walks every family and
every error class and checks the body shape and Content-Type.
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field

import msgspec
from starlette.requests import Request
from starlette.responses import Response

from opencdp.core import errors as e

logger = logging.getLogger(__name__)

STATUS: dict[type[e.OpenCdpError], int] = {
    e.PayloadTooLarge: 413,
    e.BadRequest: 400,
    e.Unauthenticated: 401,
    e.Forbidden: 403,
    e.NotFound: 404,
    e.Conflict: 409,
    e.RateLimited: 429,
    e.Unavailable: 503,
}

_encode = msgspec.json.encode


def status_of(exc: e.OpenCdpError) -> int:
    for cls in type(exc).__mro__:
        if cls in STATUS:
            return STATUS[cls]  # type: ignore[index]
    return 500


@dataclass(frozen=True)
class Family:
    """An API family: its name (metrics), how it spells error codes and shapes error bodies."""

    name: str
    codes: dict[int, str]
    shape: Callable[[str, str, int], object]
    extra_headers: dict[str, str] = field(default_factory=dict)

    def render(self, exc: e.OpenCdpError) -> tuple[int, dict[str, str], bytes]:
        """(status, headers, JSON body) of the wire error for ``exc``: the one place."""
        status = status_of(exc)
        code = self.codes.get(status, "INTERNAL_ERROR")
        headers = dict(self.extra_headers)
        if isinstance(exc, e.RateLimited):
            headers["Retry-After"] = str(int(exc.retry_after))
            headers["X-mp-rate-limit-exceeded"] = exc.scope
        return status, headers, _encode(self.shape(code, exc.message, status))

    def response(self, exc: e.OpenCdpError) -> Response:
        status, headers, body = self.render(exc)
        return Response(body, status_code=status, media_type="application/json", headers=headers)

    def internal_error(self) -> Response:
        return Response(
            _encode(self.shape(self.codes.get(500, "INTERNAL_ERROR"), "internal error", 500)),
            status_code=500,
            media_type="application/json",
            headers=dict(self.extra_headers),
        )


def _errors_list(code: str, message: str, _status: int) -> object:
    return {"errors": [{"code": code, "message": message}]}


EVENTS = Family(
    name="events",
    codes={
        400: "BAD_REQUEST",
        413: "BAD_REQUEST",
        401: "UNAUTHORIZED",
        403: "FORBIDDEN",
        404: "NOT_FOUND",
        409: "CONFLICT",
        429: "TOO_MANY_REQUESTS",
        503: "SERVICE_UNAVAILABLE",
        500: "INTERNAL_ERROR",
    },
    shape=_errors_list,
)

OPERATIONS = Family(name="operations", codes=EVENTS.codes, shape=_errors_list)


def _idsync_body(code: str, message: str, _status: int) -> object:
    """The documented ``errors`` list, plus the flat ``code``/``message`` some clients read.

    idsync.md §5.6/§7.2: web and Android read ``errors[]``; iOS (and every SDK for alias
    errors) reads top-level ``code``/``message``. Carrying both costs nothing and no SDK reads
    a key that would conflict. ``ErrorCode`` is deliberately absent: the UWP SDK deserializes it
    into a closed enum and would choke on codes outside it.
    """
    return {"errors": [{"code": code, "message": message}], "code": code, "message": message}


IDSYNC = Family(
    name="idsync",
    codes={
        400: "VALIDATION_ERROR",
        413: "VALIDATION_ERROR",
        401: "UNAUTHORIZED",
        403: "FORBIDDEN",
        404: "NOT_FOUND_ERROR",  # what the web SDK expects from /search with no match
        409: "CONFLICT",
        429: "TOO_MANY_REQUESTS",
        503: "SERVICE_UNAVAILABLE",
        500: "INTERNAL_ERROR",
    },
    shape=_idsync_body,
)
"""Identity API (identify, login, logout, search, modify): idsync.md §5.6."""

ALIAS = Family(
    name="alias",
    codes={**IDSYNC.codes, 400: "INVALID_DATA"},
    shape=_idsync_body,
)
"""The SDK alias endpoints: the IDSync body, with the web SDK fixture's ``INVALID_DATA`` code."""

PROFILE = Family(name="profile", codes=EVENTS.codes, shape=_errors_list)
"""Profile API. Its error body is undocumented (profile-api.md §5); it shares the Events API's
``errors`` list, and its statuses are the documented 400/401/403/404/429/503."""


def _oauth_body(code: str, message: str, _status: int) -> object:
    return {"error": code, "error_description": message}


OAUTH = Family(
    name="oauth",
    codes={
        400: "invalid_request",
        413: "invalid_request",
        401: "invalid_client",
        403: "unauthorized_client",
        404: "invalid_request",
        409: "invalid_request",
        429: "temporarily_unavailable",
        503: "temporarily_unavailable",
        500: "server_error",
    },
    shape=_oauth_body,
    extra_headers={"Cache-Control": "no-store", "Pragma": "no-cache"},
)
"""``POST /oauth/token``. mParticle documents no error body for its token endpoint, so errors
take the OAuth 2.0 shape (RFC 6749 §5.2) every OAuth client library reads."""

Endpoint = Callable[[Request], Awaitable[Response]]


def family_endpoint(
    family: Family, on_error: Callable[[Family, str], None] | None = None
) -> Callable[[Endpoint], Endpoint]:
    """Wrap a handler so every error leaves in ``family``'s shape; never a bare 500."""

    def wrap(fn: Endpoint) -> Endpoint:
        @functools.wraps(fn)
        async def endpoint(request: Request) -> Response:
            try:
                return await fn(request)
            except e.OpenCdpError as exc:
                if on_error is not None:
                    on_error(family, exc.code)
                return family.response(exc)
            except Exception:
                logger.exception("api.unhandled_error", extra={"path": request.url.path})
                if on_error is not None:
                    on_error(family, "internal")
                return family.internal_error()

        return endpoint

    return wrap
