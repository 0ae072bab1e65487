"""The baseline for the identity and profile benchmarks: the least a JSON API can do.

A POST has its body read and parsed as JSON (msgspec, like opencdp) and is answered with a
fixed 200 JSON body shaped like an IDSync answer; a GET is answered with a fixed 200 JSON body
shaped like a Profile API answer. No routing, auth or database. It runs under uvicorn with the
keyword arguments ``opencdp serve`` passes (auto loop and HTTP parser, i.e. uvloop and
httptools; no access log; no server header), so the ratio opencdp / baseline isolates what
opencdp adds per request on the same server stack and load generator.

(bench/bare_app.py, the ingestion baseline, answers 202 and appends bodies to a file; IDSync
and the Profile API answer 200 with a JSON body, so they get this one.)

``python -m bench.bare_json_app --port P``; ``GET /healthz`` answers 200.
"""

from __future__ import annotations

import argparse
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import msgspec
import uvicorn

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

IDENTITY_BODY = msgspec.json.encode(
    {
        "context": "",
        "mpid": "-4283115129863532093",
        "is_ephemeral": False,
        "is_logged_in": True,
        "matched_identities": {"customerid": "cust-00012345", "email": "user12345@example.com"},
    }
)
PROFILE_BODY = msgspec.json.encode(
    {
        "mpid": -4283115129863532093,
        "created_timestamp_ms": 1717000000000,
        "last_stored_timestamp_ms": 1717000004215,
        "is_opted_out": False,
        "limit_ad_tracking": None,
        "user_identities": [
            {"type": "customer_id", "encoding": "none", "value": "cust-00012345"},
            {"type": "email", "encoding": "none", "value": "user12345@example.com"},
        ],
        "account_user_attributes": None,
        "user_attributes": {
            "$city": "Quito",
            "$firstname": "First381",
            "lifetime_orders": "25",
            "tier": "free",
        },
    }
)


def _headers(body: bytes) -> list[tuple[bytes, bytes]]:
    return [(b"content-type", b"application/json"), (b"content-length", b"%d" % len(body))]


class BareJsonApp:
    """A raw ASGI callable; no framework, so the baseline is the floor, not a straw man."""

    def __init__(self) -> None:
        self._decode = msgspec.json.decode

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        if scope["method"] == "GET":
            body = b'{"status":"ok"}' if scope["path"] == "/healthz" else PROFILE_BODY
            await _respond(send, 200, body)
            return
        chunks: list[bytes] = []
        more = True
        while more:
            message = await receive()
            chunks.append(message.get("body", b""))
            more = message.get("more_body", False)
        try:
            self._decode(b"".join(chunks))
        except msgspec.DecodeError:
            await _respond(send, 400, b'{"errors":[]}')
            return
        await _respond(send, 200, IDENTITY_BODY)


async def _respond(send: Send, status: int, body: bytes) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _headers(body)})
    await send({"type": "http.response.body", "body": body})


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.bare_json_app", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--workers", type=int, default=1, help="processes, like serve --api-processes")
    args = p.parse_args(argv)
    uvicorn.run(
        "bench.bare_json_app:BareJsonApp" if args.workers > 1 else BareJsonApp(),
        factory=args.workers > 1,
        workers=args.workers if args.workers > 1 else None,
        **serve_options(args.host, args.port),
    )
    return 0


def serve_options(host: str, port: int) -> dict[str, Any]:
    """The keyword arguments ``opencdp.cli.uvicorn_options`` gives uvicorn, but for ``http``:
    the baselines are ASGI apps on uvicorn's own httptools protocol, which opencdp's protocol
    extends only for the Events API paths (ADR 0008); every other path is the same stack."""
    return {
        "host": host,
        "port": port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
    }


if __name__ == "__main__":
    raise SystemExit(main())
