"""``POST /oauth/token``: OAuth 2.0 client credentials for the Profile and Platform APIs.

mParticle documents a JSON body (platform-api.md §1). Standard OAuth client libraries send a
form body and may put the client id and secret in HTTP Basic instead; both are accepted too, so
either kind of client works unchanged.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qs

import msgspec
from msgspec.structs import replace
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencdp.api.context import ApiContext
from opencdp.api.errors import OAUTH, family_endpoint
from opencdp.api.http import basic_credentials, read_body
from opencdp.api.openapi import EXTRA_PATHS
from opencdp.core.errors import BadRequest
from opencdp.tenancy.tokens import IssuedToken, TokenRequest, TokenService

MAX_BODY_BYTES = 16 * 1024
_decode_json = msgspec.json.Decoder(TokenRequest).decode
_NO_STORE = {"Cache-Control": "no-store", "Pragma": "no-cache"}


def decode_token_request(body: bytes, content_type: str, authorization: str | None) -> TokenRequest:
    """The token request from a JSON or form body, with HTTP Basic client credentials as a
    fallback for a body that carries none."""
    if content_type.split(";")[0].strip().lower() == "application/x-www-form-urlencoded":
        try:
            form = parse_qs(body.decode("utf-8"), keep_blank_values=True)
        except UnicodeDecodeError:
            raise BadRequest("form body is not valid UTF-8") from None
        request = TokenRequest(**{k: form[k][0] for k in _FIELDS if k in form})
    else:
        try:
            request = _decode_json(body)
        except msgspec.DecodeError as exc:
            raise BadRequest(f"body must be a JSON object: {exc}") from None
    if request.client_id is None and request.client_secret is None:
        key, secret = basic_credentials(authorization)
        if key is not None:
            request = replace(request, client_id=key, client_secret=secret)
    return request


_FIELDS = ("client_id", "client_secret", "audience", "grant_type")


def encode_token(token: IssuedToken) -> bytes:
    return msgspec.json.encode(
        {
            "access_token": token.access_token,
            "expires_in": token.expires_in,
            "token_type": token.token_type,
        }
    )


def routes(ctx: ApiContext) -> list[Route]:
    tokens: TokenService = ctx.services["tokens"]

    @family_endpoint(OAUTH, ctx.count_error)
    async def token(request: Request) -> Response:
        body = await read_body(request, MAX_BODY_BYTES)
        token_request = decode_token_request(
            body, request.headers.get("content-type", ""), request.headers.get("authorization")
        )
        issued = await run_in_threadpool(tokens.issue, token_request)
        return Response(
            encode_token(issued), status_code=200, media_type="application/json", headers=_NO_STORE
        )

    return [Route("/oauth/token", token, methods=["POST"])]


_OAUTH_ERROR = {
    "type": "object",
    "properties": {"error": {"type": "string"}, "error_description": {"type": "string"}},
}


def _err(text: str) -> dict[str, Any]:
    return {"description": text, "content": {"application/json": {"schema": _OAUTH_ERROR}}}


EXTRA_PATHS["/oauth/token"] = {
    "post": {
        "summary": "Exchange client credentials for an 8-hour bearer token",
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "type": "object",
                        "required": ["client_id", "client_secret", "audience", "grant_type"],
                        "properties": {
                            "client_id": {"type": "string"},
                            "client_secret": {"type": "string"},
                            "audience": {"type": "string", "const": "https://api.mparticle.com"},
                            "grant_type": {"type": "string", "const": "client_credentials"},
                        },
                    }
                }
            },
        },
        "responses": {
            "200": {
                "description": "A token",
                "content": {
                    "application/json": {
                        "schema": {
                            "type": "object",
                            "properties": {
                                "access_token": {"type": "string"},
                                "expires_in": {"type": "integer", "const": 28800},
                                "token_type": {"type": "string", "const": "Bearer"},
                            },
                        }
                    }
                },
            },
            "400": _err("Wrong grant_type or audience, or an unreadable body (invalid_request)"),
            "401": _err("Missing or wrong client credentials (invalid_client)"),
        },
    }
}
