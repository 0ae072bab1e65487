"""Raw ASGI endpoints for the ingestion hot paths.

Starlette's Request and Response objects cost more per request than decoding a whole batch
(profiled in bench/README.md), so the Events API endpoints speak ASGI directly: headers are read
from the scope, the body from ``receive`` with a hard limit, and the answer is two ``send``
calls. They are still mounted as Starlette routes (routing, 405s, OpenAPI stay the same), and
errors still leave through the family table in ``api/errors.py``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

from opencdp.api.errors import Family
from opencdp.api.http import gunzip
from opencdp.core import errors as e

logger = logging.getLogger(__name__)

Scope = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[MutableMapping[str, Any]]]
Send = Callable[[MutableMapping[str, Any]], Awaitable[None]]
RawHeaders = list[tuple[bytes, bytes]]
Reply = tuple[int, bytes] | tuple[int, bytes, RawHeaders]
"""status, JSON body (empty: no body), optionally extra headers (lower-case latin-1 bytes)."""
Handler = Callable[[Scope, Receive], Awaitable[Reply]]
Decorate = Callable[[Scope], RawHeaders]
"""Headers for every response of an endpoint, errors included (CORS, for instance)."""


def header(scope: Scope, name: bytes) -> str | None:
    """A request header by lower-case name (latin-1, as HTTP/1.1 headers are)."""
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return None


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (after gunzip)."""
    declared = header(scope, b"content-length")
    if declared is not None:
        try:
            size = int(declared)
        except ValueError:
            raise e.BadRequest("invalid Content-Length header") from None
        if size > limit:
            raise e.PayloadTooLarge(f"request body is {size} bytes; the limit is {limit}")
    message = await receive()
    body = message.get("body", b"")
    if message.get("more_body", False):
        chunks = [body]
        size = len(body)
        while message.get("more_body", False):
            message = await receive()
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > limit:
                raise e.PayloadTooLarge(f"request body is over the limit of {limit} bytes")
            chunks.append(chunk)
        body = b"".join(chunks)
    elif len(body) > limit:
        raise e.PayloadTooLarge(f"request body is over the limit of {limit} bytes")
    encoding = header(scope, b"content-encoding")
    if encoding is not None and encoding.lower() == "gzip":
        body = gunzip(body, limit)
    return bytes(body)


_JSON = (b"content-type", b"application/json")


_EMPTY = ((b"content-length", b"0"),)  # a tuple: shared by every response, never mutated


async def _send(
    send: Send, status: int, body: bytes, headers: dict[str, str], extra: RawHeaders | None = None
) -> None:
    if not body and not headers and not extra:  # a bare 202: the Events API's every answer
        await send({"type": "http.response.start", "status": status, "headers": _EMPTY})
        await send({"type": "http.response.body", "body": b""})
        return
    raw = [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]
    if extra:
        raw.extend(extra)
    if body:
        raw.append(_JSON)
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


class RawEndpoint:
    """An ASGI app running ``handler``; every error leaves in ``family``'s shape.

    A class, not a closure: Starlette mounts a non-function endpoint as a plain ASGI app
    instead of wrapping it in its Request/Response machinery.
    """

    __slots__ = ("_decorate", "_family", "_handler", "_on_error")

    def __init__(
        self,
        family: Family,
        handler: Handler,
        on_error: Callable[[Family, str], None] | None = None,
        *,
        decorate: Decorate | None = None,
    ) -> None:
        self._family = family
        self._handler = handler
        self._on_error = on_error
        self._decorate = decorate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        family, on_error = self._family, self._on_error
        extra: RawHeaders = [] if self._decorate is None else self._decorate(scope)
        try:
            reply = await self._handler(scope, receive)
        except e.OpenCdpError as exc:
            if on_error is not None:
                on_error(family, exc.code)
            status, headers, payload = family.render(exc)
            await _send(send, status, payload, headers, extra)
            return
        except Exception:
            logger.exception("api.unhandled_error", extra={"path": scope.get("path")})
            if on_error is not None:
                on_error(family, "internal")
            status, headers, payload = family.render(e.OpenCdpError("internal error"))
            await _send(send, 500, payload, headers, extra)
            return
        if len(reply) == 3:
            extra.extend(reply[2])  # type: ignore[misc]
        await _send(send, reply[0], reply[1], {}, extra)
