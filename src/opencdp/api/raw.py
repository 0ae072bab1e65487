"""Raw ASGI endpoints for the ingestion hot paths.

Starlette's Request and Response objects cost more per request than decoding a whole batch
(profiled in bench/README.md), so the Events API endpoints speak ASGI directly: headers are read
from the scope, the body from ``receive`` with a hard limit, and the answer is two ``send``
calls. They are still mounted as Starlette routes (routing, 405s, OpenAPI stay the same), and
errors still leave through the family table in ``api/errors.py``.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Coroutine, MutableMapping
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


Answer = Callable[[Reply | BaseException], None]


def reply_of(make: Callable[[], Reply]) -> Reply | BaseException:
    """``make()``, or the exception it raised: for building a reply inside a ``Later``'s
    completion, where a raise would escape into whoever completed it and leave the request
    unanswered."""
    try:
        return make()
    except Exception as exc:
        return exc


class Later:
    """A reply that arrives in an event-loop callback, not at the end of the handler.

    ``begin(answer)`` starts the work; whatever completes it calls ``answer`` on the loop,
    once, with the ``Reply`` or the exception. The endpoint sends the response from inside
    that call. Awaited in the handler instead, the same completion would only schedule the
    handler's task, and the response would wait one more pass of the loop; on a loaded loop
    a pass is every ready request's turn (bench/README.md).
    """

    __slots__ = ("begin",)

    def __init__(self, begin: Callable[[Answer], None]) -> None:
        self.begin = begin


Handler = Callable[[Scope, Receive], Awaitable["Reply | Later"]]
Decorate = Callable[[Scope], RawHeaders]
"""Headers for every response of an endpoint, errors included (CORS, for instance)."""


def header(scope: Scope, name: bytes) -> str | None:
    """A request header by lower-case name (latin-1, as HTTP/1.1 headers are)."""
    return header_in(scope["headers"], name)


def header_in(headers: RawHeaders, name: bytes) -> str | None:
    """``header`` for a header list (the ingestion fast path has no scope); the first wins."""
    for key, value in headers:
        if key == name:
            return str(value.decode("latin-1"))
    return None


def body_headers(headers: RawHeaders) -> tuple[bytes | None, str | None]:
    """(Content-Length, Content-Encoding), in one pass; the first of each counts."""
    declared = encoding = None
    for key, value in headers:
        if key == b"content-length":
            if declared is None:
                declared = value
        elif key == b"content-encoding" and encoding is None:
            encoding = value.decode("latin-1")
    return declared, encoding


def over_limit(limit: int) -> e.PayloadTooLarge:
    """The 413 for a body that grew past ``limit`` while it was read."""
    return e.PayloadTooLarge(f"request body is over the limit of {limit} bytes")


def unpacked(body: bytes, encoding: str | None, limit: int) -> bytes:
    """The body as sent before its Content-Encoding (gzip is the one the SDKs use)."""
    if encoding is not None and encoding.lower() == "gzip":
        return gunzip(body, limit)
    return body


async def read_body(scope: Scope, receive: Receive, limit: int) -> bytes:
    """The request body, refused with 413 past ``limit`` bytes (after gunzip)."""
    declared, encoding = body_headers(scope["headers"])
    check_declared_length(declared, limit)
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
                raise over_limit(limit)
            chunks.append(chunk)
        body = b"".join(chunks)
    elif len(body) > limit:
        raise over_limit(limit)
    return bytes(unpacked(body, encoding, limit))


JSON_CONTENT_TYPE = (b"content-type", b"application/json")


_EMPTY = ((b"content-length", b"0"),)  # a tuple: shared by every response, never mutated


async def _send(
    send: Send, status: int, body: bytes, headers: dict[str, str], extra: RawHeaders | None = None
) -> None:
    if not body and not headers and not extra:  # a bare 202: the Events API's every answer
        await send({"type": "http.response.start", "status": status, "headers": _EMPTY})
        await send({"type": "http.response.body", "body": b""})
        return
    raw = encode_headers(headers)
    if extra:
        raw.extend(extra)
    if body:
        raw.append(JSON_CONTENT_TYPE)
    raw.append((b"content-length", str(len(body)).encode()))
    await send({"type": "http.response.start", "status": status, "headers": raw})
    await send({"type": "http.response.body", "body": body})


def encode_headers(headers: dict[str, str]) -> RawHeaders:
    """Response headers as the server writes them: lower-case latin-1 bytes."""
    return [(k.lower().encode("latin-1"), v.encode("latin-1")) for k, v in headers.items()]


def error_reply(
    family: Family,
    on_error: Callable[[Family, str], None] | None,
    exc: BaseException,
    path: str | None,
) -> tuple[int, dict[str, str], bytes]:
    """(status, headers, body) of ``exc`` in ``family``'s error shape, counted by code.

    Anything that is not one of our errors is a 500 whose message says nothing of the cause
    (the cause goes to the log). The raw endpoints and the ingestion fast path both answer
    through here, so an error looks the same whichever path a request took.
    """
    if isinstance(exc, e.OpenCdpError):
        error, code, forced = exc, exc.code, None
    else:
        logger.error("api.unhandled_error", extra={"path": path}, exc_info=exc)
        error, code, forced = e.OpenCdpError("internal error"), "internal", 500
    if on_error is not None:
        on_error(family, code)
    status, headers, payload = family.render(error)
    return forced or status, headers, payload


def check_declared_length(declared: bytes | str | None, limit: int) -> None:
    """Refuse a request by its Content-Length header before reading its body."""
    if declared is None:
        return
    try:
        size = int(declared)
    except ValueError:
        raise e.BadRequest("invalid Content-Length header") from None
    if size > limit:
        raise e.PayloadTooLarge(f"request body is {size} bytes; the limit is {limit}")


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
        extra: RawHeaders = [] if self._decorate is None else self._decorate(scope)
        try:
            reply = await self._handler(scope, receive)
        except Exception as exc:
            await self._answer(exc, scope, send, extra)
            return
        if isinstance(reply, Later):
            await self._answer_later(reply, scope, send, extra)
            return
        if len(reply) == 3:
            extra.extend(reply[2])  # type: ignore[misc]
        await _send(send, reply[0], reply[1], {}, extra)

    async def _answer(
        self, outcome: Reply | BaseException, scope: Scope, send: Send, extra: RawHeaders
    ) -> None:
        """Send the reply, or the error in the family's shape."""
        if isinstance(outcome, BaseException):
            status, headers, payload = error_reply(
                self._family, self._on_error, outcome, scope.get("path")
            )
            await _send(send, status, payload, headers, extra)
            return
        if len(outcome) == 3:
            extra.extend(outcome[2])  # type: ignore[misc]
        await _send(send, outcome[0], outcome[1], {}, extra)

    async def _answer_later(
        self, later: Later, scope: Scope, send: Send, extra: RawHeaders
    ) -> None:
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        def answer(outcome: Reply | BaseException) -> None:
            _drive(self._answer(outcome, scope, send, extra), done)

        try:
            later.begin(answer)
        except Exception as exc:  # refused before anything started (bad input, limits)
            await self._answer(exc, scope, send, extra)
            return
        await done


def _drive(coro: Coroutine[Any, Any, None], done: asyncio.Future[None]) -> None:
    """Run ``coro`` now, from a plain callback, as far as it goes; ``done`` completes with it.

    Sending a response normally finishes without suspending (the transport takes the bytes).
    When it must wait (the client's socket buffer is full), the coroutine is resumed once
    what it waits for is done, as a task would.
    """
    try:
        waited = coro.send(None)
    except StopIteration:
        if not done.done():
            done.set_result(None)
        return
    except BaseException as exc:
        if not done.done():
            done.set_exception(exc)
        return
    if waited is None:  # a bare yield (asyncio.sleep(0)): try again on the next pass
        asyncio.get_running_loop().call_soon(_drive, coro, done)
    else:
        waited.add_done_callback(lambda _f: _drive(coro, done))
