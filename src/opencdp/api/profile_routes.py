"""Profile API: ``/userprofile/v1/{orgId}/{accountId}/{workspaceId}/{mpid}`` (GET or POST) and
``POST /userprofile/v1/resolve/{orgId}/{accountId}/{workspaceId}``.

The by-MPID endpoint answers both GET and POST because mParticle's own page documents both
(profile-api.md §3.1); a POST body is ignored. Handlers authenticate the bearer token (no
database involved), make one service call in the thread pool and encode the documented shape.
"""

from __future__ import annotations

from typing import Any

import msgspec
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from opencdp.api.context import ApiContext
from opencdp.api.errors import PROFILE, family_endpoint
from opencdp.api.http import read_body
from opencdp.api.openapi import ERRORS_SCHEMA, EXTRA_PATHS
from opencdp.profiles.model import ProfileView, Section, decode_resolve_request
from opencdp.profiles.service import ProfileApi
from opencdp.tenancy.tokens import TokenService

MAX_BODY_BYTES = 16 * 1024
_encode = msgspec.json.encode


def profile_document(view: ProfileView) -> dict[str, Any]:
    """The documented response (profile-api.md §4, seed sample), keys in the sample's order.

    The top-level values are always present; each section only when ``fields`` names it.
    ``account_user_attributes`` is null, as in every published sample.
    """
    doc: dict[str, Any] = {
        "mpid": view.mpid,
        "created_timestamp_ms": view.created_ms,
        "last_stored_timestamp_ms": view.last_stored_ms,
        "is_opted_out": view.is_opted_out,
        "limit_ad_tracking": view.limit_ad_tracking,
    }
    wanted = view.sections
    if Section.DEVICE_IDENTITIES in wanted:
        doc["device_identities"] = _identities(view.device_identities)
    if Section.USER_IDENTITIES in wanted:
        doc["user_identities"] = _identities(view.user_identities)
    doc["account_user_attributes"] = None
    if Section.USER_ATTRIBUTES in wanted:
        doc["user_attributes"] = view.user_attributes
    if Section.AUDIENCE_MEMBERSHIPS in wanted:
        doc["audience_memberships"] = [
            {
                "audience_id": m.audience_id,
                "audience_name": m.audience_name,
                "expiration_timestamp_ms": m.expiration_timestamp_ms,
            }
            for m in view.audience_memberships
        ]
    if Section.ATTRIBUTION in wanted:
        doc["attribution"] = view.attribution
    return doc


def _identities(pairs: tuple[tuple[str, str], ...]) -> list[dict[str, str]]:
    return [{"type": t, "encoding": "none", "value": v} for t, v in pairs]


def _ok(view: ProfileView) -> Response:
    return Response(_encode(profile_document(view)), status_code=200, media_type="application/json")


def routes(ctx: ApiContext) -> list[Route]:
    tokens: TokenService = ctx.services["tokens"]
    api: ProfileApi = ctx.services["profile_api"]

    @family_endpoint(PROFILE, ctx.count_error)
    async def by_mpid(request: Request) -> Response:
        grant = tokens.authenticate(request.headers.get("authorization"))
        p = request.path_params
        # A read of a few indexed rows: cheaper inline than a thread hop (bench/).
        view = api.by_mpid(
            grant,
            org_id=p["orgId"],
            account_id=p["accountId"],
            workspace_id=p["workspaceId"],
            mpid=p["mpid"],
            fields=request.query_params.get("fields"),
        )
        return _ok(view)

    @family_endpoint(PROFILE, ctx.count_error)
    async def resolve(request: Request) -> Response:
        grant = tokens.authenticate(request.headers.get("authorization"))
        body = decode_resolve_request(await read_body(request, MAX_BODY_BYTES))
        p = request.path_params
        view = api.resolve(
            grant,
            org_id=p["orgId"],
            account_id=p["accountId"],
            workspace_id=p["workspaceId"],
            request=body,
            fields=request.query_params.get("fields"),
        )
        return _ok(view)

    return [
        # First: "resolve/1/2/3" would otherwise also match the by-MPID pattern.
        Route(
            "/userprofile/v1/resolve/{orgId}/{accountId}/{workspaceId}",
            resolve,
            methods=["POST"],
        ),
        Route(
            "/userprofile/v1/{orgId}/{accountId}/{workspaceId}/{mpid}",
            by_mpid,
            methods=["GET", "POST"],
        ),
    ]


# --- OpenAPI ----------------------------------------------------------------------------------

_IDENTITY = {
    "type": "object",
    "properties": {
        "type": {"type": "string"},
        "encoding": {"type": "string", "const": "none"},
        "value": {"type": "string"},
    },
}
_PROFILE = {
    "type": "object",
    "properties": {
        "mpid": {"type": "integer"},
        "created_timestamp_ms": {"type": "integer"},
        "last_stored_timestamp_ms": {"type": "integer"},
        "is_opted_out": {"type": "boolean"},
        "limit_ad_tracking": {"type": ["boolean", "null"]},
        "device_identities": {"type": "array", "items": _IDENTITY},
        "user_identities": {"type": "array", "items": _IDENTITY},
        "account_user_attributes": {"type": "null"},
        "user_attributes": {
            "type": "object",
            "additionalProperties": {
                "type": ["string", "array", "null"],
                "items": {"type": "string"},
            },
        },
        "audience_memberships": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {
                    "audience_id": {"type": "integer"},
                    "audience_name": {"type": "string"},
                    "expiration_timestamp_ms": {"type": ["integer", "null"]},
                },
            },
        },
        "attribution": {"type": ["object", "null"]},
    },
}
_FIELDS_PARAM = {
    "name": "fields",
    "in": "query",
    "description": "Comma list of sections: " + ", ".join(s.value for s in Section),
    "schema": {"type": "string"},
}


def _op(summary: str, body: dict[str, Any] | None = None) -> dict[str, Any]:
    err = {"content": {"application/json": {"schema": ERRORS_SCHEMA}}}
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": [_FIELDS_PARAM],
        "responses": {
            "200": {
                "description": "The profile",
                "content": {"application/json": {"schema": _PROFILE}},
            },
            "400": {"description": "Invalid request, path or fields", **err},
            "401": {"description": "Missing, invalid or expired token", **err},
            "403": {"description": "Token not valid for this workspace", **err},
            "404": {"description": "No such profile, or it has expired", **err},
            "429": {"description": "Over the client's rate limit (Retry-After)", **err},
        },
    }
    if body is not None:
        op["requestBody"] = {"required": True, "content": {"application/json": {"schema": body}}}
    return op


_RESOLVE_BODY = {
    "type": "object",
    "required": ["environment_type", "identity"],
    "properties": {
        "environment_type": {"type": "string", "enum": ["development", "production"]},
        "identity": {
            "type": "object",
            "required": ["type", "value"],
            "properties": {"type": {"type": "string"}, "value": {"type": "string"}},
        },
    },
}

EXTRA_PATHS["/userprofile/v1/{orgId}/{accountId}/{workspaceId}/{mpid}"] = {
    "get": _op("A profile by MPID"),
    "post": _op("A profile by MPID (same as GET; the body is ignored)"),
}
EXTRA_PATHS["/userprofile/v1/resolve/{orgId}/{accountId}/{workspaceId}"] = {
    "post": _op("A profile by an immutable user identity", _RESOLVE_BODY),
}
