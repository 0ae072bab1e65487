"""The baseline: the least an ASGI service can do with an Events API request.

It reads the body, parses it as JSON (msgspec, like opencdp) and appends it to a file, then
answers 202. It runs under uvicorn with the options ``opencdp serve`` uses (auto loop and HTTP
parser, i.e. uvloop and httptools; no access log; no server header), so the ratio between the
two isolates what opencdp itself adds per request: routing, auth, validation, limits,
partitioning and the durable group commit. The baseline does not fsync; that difference is
part of what the ratio measures.

``python -m bench.bare_app --port P --out FILE``; ``GET /healthz`` answers 200.
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any, BinaryIO

import msgspec
import uvicorn

from bench.bare_json_app import serve_options

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

_HEADERS_202 = [(b"content-length", b"0")]
_HEADERS_JSON = [(b"content-type", b"application/json"), (b"content-length", b"15")]


class BareApp:
    """A raw ASGI callable; no framework, so the baseline is the floor, not a straw man."""

    def __init__(self, out: BinaryIO) -> None:
        self._out = out
        self._decode = msgspec.json.decode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    self._out.flush()
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            await _respond(send, 200, _HEADERS_JSON, b'{"status":"ok"}')
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        body = b"".join(chunks)
        try:
            self._decode(body)
        except msgspec.DecodeError:
            await _respond(send, 400, [(b"content-length", b"0")], b"")
            return
        self._out.write(body)
        self._out.write(b"\n")
        await _respond(send, 202, _HEADERS_202, b"")


async def _respond(
    send: Send, status: int, headers: list[tuple[bytes, bytes]], body: bytes
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


def app_from_env() -> BareApp:
    """The app of one ``--workers`` process (uvicorn imports it by name)."""
    return BareApp(open(os.environ["BENCH_BARE_OUT"], "ab"))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bare_app", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--out", required=True, help="file the bodies are appended to")
    p.add_argument("--workers", type=int, default=1, help="processes, like serve --api-processes")
    args = p.parse_args(argv)
    if args.workers > 1:  # each worker process opens the file itself (O_APPEND: lines stay whole)
        os.environ["BENCH_BARE_OUT"] = args.out
        uvicorn.run(
            "bench.bare_app:app_from_env",
            factory=True,
            workers=args.workers,
            **serve_options(args.host, args.port),
        )
        return 0
    with open(args.out, "ab") as out:
        uvicorn.run(BareApp(out), **serve_options(args.host, args.port))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
