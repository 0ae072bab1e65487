"""Request plumbing shared by the families: bounded body reading and credential parsing."""

from __future__ import annotations

import base64
import binascii
import functools
import zlib

from starlette.requests import Request

from opencdp.core.errors import BadRequest, PayloadTooLarge


async def read_body(request: Request, limit: int) -> bytes:
    """Read at most ``limit`` bytes (after gunzip); refuse larger bodies without buffering them."""
    declared = request.headers.get("content-length")
    if declared is not None:
        try:
            if int(declared) > limit:
                raise PayloadTooLarge(f"request body is {declared} bytes; the limit is {limit}")
        except ValueError:
            raise BadRequest("invalid Content-Length header") from None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise PayloadTooLarge(f"request body is over the limit of {limit} bytes")
        chunks.append(chunk)
    body = b"".join(chunks)
    if request.headers.get("content-encoding", "").lower() == "gzip":
        body = gunzip(body, limit)
    return body


def gunzip(body: bytes, limit: int) -> bytes:
    d = zlib.decompressobj(16 + zlib.MAX_WBITS)
    try:
        out = d.decompress(body, limit + 1)
    except zlib.error:
        raise BadRequest("body is not valid gzip") from None
    if len(out) > limit:
        raise PayloadTooLarge(f"decompressed body is over the limit of {limit} bytes")
    return out


def basic_credentials(header: str | None) -> tuple[str | None, str | None]:
    """(key, secret) from ``Authorization: Basic``; (None, None) when absent.

    A present but unreadable header yields empty strings, so it is refused as wrong (403)
    rather than missing (401), as the Events API documents. Servers send the same header on
    every request, so decoded headers are remembered (a few thousand, in process memory).
    """
    if not header:
        return None, None
    return _basic_credentials(header)


@functools.lru_cache(maxsize=4096)
def _basic_credentials(header: str) -> tuple[str | None, str | None]:
    scheme, _, value = header.partition(" ")
    if scheme.lower() != "basic":
        return "", ""
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, UnicodeDecodeError):
        return "", ""
    key, sep, secret = decoded.partition(":")
    if not sep:
        return "", ""
    return key, secret
