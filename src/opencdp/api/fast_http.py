"""The ingestion fast path: Events API requests answered by the HTTP protocol itself.

Under uvicorn an ASGI request costs, before the application sees it, a scope dict, a
request/response cycle object with its event, a task, the proxy-headers middleware, a
``receive`` round trip and two ``send`` calls. On ``POST /v2/events`` that machinery and our
ASGI layers were ~15 us of the ~35 us the event loop spends per request, and at 32 connections
a request waits behind every other request's share of the loop, so that share sets its latency
as much as the commit does (ADR 0008). Here the protocol hands a registered route the parsed
headers and the whole body, and the route answers through ``respond`` when its rows are
committed. No task is made and no ASGI message is built.

A request takes the fast path only when all of this holds, and otherwise goes to the ASGI
application untouched, so behaviour is uvicorn's own:

- it is a ``POST`` to exactly a registered path (raw URL; a query string goes the slow way),
- it has no ``Expect: 100-continue`` and is not an upgrade,
- no earlier request on the connection is still unanswered. Pipelined requests keep their
  order through uvicorn's queue, because they take the ASGI path behind the pending one.

The protocol subclasses uvicorn's ``HttpToolsProtocol``, the one ``opencdp serve`` already ran
(``http="auto"`` with httptools installed). It uses the attributes that class keeps per
request (``url``, ``headers``, ``cycle``, ``expect_100_continue``) and its response-complete
hook, so keep-alive, flow control and graceful shutdown stay uvicorn's. The routes come from the
application object (``FrontDoor.fast_routes``), so each ``--api-processes`` worker finds its own.
``tests/api/test_fast_path.py`` pins the behaviour on a real socket.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol

RawHeaders = list[tuple[bytes, bytes]]
Respond = Callable[[int, RawHeaders, bytes], None]
"""``respond(status, headers, body)``: once per request; content-length is added."""


@dataclass(frozen=True, slots=True)
class FastRoute:
    """A registered path: ``handle(headers, body, respond)``, called on the event loop once
    the request is complete. ``body`` is None when it grew past ``limit`` bytes (the rest
    was dropped as it arrived); the route answers 413 then. Headers are lower-case."""

    limit: int
    handle: Callable[[RawHeaders, bytes | None, Respond], None]


class _NoEvent:
    """uvicorn sets ``cycle.message_event`` when a connection drops; nobody waits here."""

    @staticmethod
    def set() -> None:
        return None


class _FastCycle:
    """What uvicorn reads of ``self.cycle`` between requests (response complete, keep-alive,
    disconnected), for a request the fast path holds."""

    __slots__ = ("body", "disconnected", "keep_alive", "message_event", "response_complete")

    def __init__(self, keep_alive: bool) -> None:
        self.body: bytearray | None = bytearray()
        self.disconnected = False
        self.keep_alive = keep_alive
        self.message_event = _NoEvent
        self.response_complete = False


def fast_routes_of(app: Any) -> Mapping[bytes, FastRoute]:
    """The routes the application registered, looking through middleware (``.app``)."""
    for _ in range(8):
        routes = getattr(app, "fast_routes", None)
        if routes is not None:
            return routes  # type: ignore[no-any-return]
        app = getattr(app, "app", None)
        if app is None:
            break
    return {}


_RELIED_ON = (
    "on_message_begin",
    "on_url",
    "on_header",
    "on_headers_complete",
    "on_body",
    "on_message_complete",
    "on_response_complete",
)


def _uvicorn_fits() -> bool:
    """Whether this uvicorn's protocol still has what the fast path relies on. If a release
    renamed any of it, every request goes through ASGI as before (and says so once) rather
    than half-working."""
    missing = [name for name in _RELIED_ON if not callable(getattr(HttpToolsProtocol, name, None))]
    source = getattr(HttpToolsProtocol.__init__, "__code__", None)
    names = set(source.co_names) if source is not None else set()
    missing += [n for n in ("cycle", "pipeline", "expect_100_continue") if n not in names]
    if missing:
        logging.getLogger(__name__).warning(
            "api.fast_path_disabled", extra={"uvicorn_missing": missing}
        )
    return not missing


_UVICORN_FITS = _uvicorn_fits()


class FastPathProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol, with registered routes answered without ASGI."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._routes = fast_routes_of(self.app) if _UVICORN_FITS else {}
        self._fast: FastRoute | None = None

    def on_headers_complete(self) -> None:
        route = None
        if self._routes and not self.expect_100_continue:
            previous = self.cycle
            if previous is None or previous.response_complete:
                route = self._routes.get(self.url)
                if route is not None and (
                    self.parser.get_method() != b"POST" or self.parser.should_upgrade()
                ):
                    route = None
        self._fast = route
        if route is None:
            super().on_headers_complete()
            return
        keep_alive = self.parser.get_http_version() != "1.0" and self.parser.should_keep_alive()
        self.cycle = _FastCycle(keep_alive)  # type: ignore[assignment]

    def on_body(self, body: bytes) -> None:
        route = self._fast
        if route is None:
            super().on_body(body)
            return
        cycle: _FastCycle = self.cycle  # type: ignore[assignment]
        if cycle.body is not None:
            if len(cycle.body) + len(body) > route.limit:
                cycle.body = None  # over the limit: keep reading, stop keeping
            else:
                cycle.body += body

    def on_message_complete(self) -> None:
        route = self._fast
        if route is None:
            super().on_message_complete()
            return
        self._fast = None
        cycle: _FastCycle = self.cycle  # type: ignore[assignment]
        body = None if cycle.body is None else bytes(cycle.body)
        cycle.body = None
        respond = self._responder(cycle)
        try:
            route.handle(self.headers, body, respond)
        except Exception:  # routes answer their own errors; this is a bug's safety net
            self.logger.exception("fast path route failed")
            if not cycle.response_complete:
                cycle.keep_alive = False
                respond(500, [], b"")

    def _responder(self, cycle: _FastCycle) -> Respond:
        def respond(status: int, headers: RawHeaders, body: bytes) -> None:
            if cycle.response_complete:
                return
            cycle.response_complete = True
            transport = self.transport
            if cycle.disconnected or transport.is_closing():
                return
            parts = [STATUS_LINE[status]]
            for name, value in self.server_state.default_headers:
                parts += [name, b": ", value, b"\r\n"]
            for name, value in headers:
                parts += [name, b": ", value, b"\r\n"]
            parts += [b"content-length: ", str(len(body)).encode(), b"\r\n"]
            if not cycle.keep_alive:
                parts.append(b"connection: close\r\n")
            parts += [b"\r\n", body]
            transport.write(b"".join(parts))
            if cycle.keep_alive:
                self.on_response_complete()  # keep-alive timer, next pipelined request
            else:
                transport.close()

        return respond
