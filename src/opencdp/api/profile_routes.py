"""Profile API: ``/userprofile/v1/{orgId}/{accountId}/{workspaceId}/{mpid}`` (GET or POST) and
``POST /userprofile/v1/resolve/{orgId}/{accountId}/{workspaceId}``.

The by-MPID endpoint answers both GET and POST because mParticle's own page documents both
(profile-api.md §3.1); a POST body is ignored. Handlers authenticate the bearer token (no
database involved), make one service call inline (a read of a few indexed rows: cheaper than a
thread hop) and encode the documented shape.

Hot path: these are raw ASGI endpoints (``api/raw.py``), like the Events API. Starlette's
Request, Response, middleware and the ``family_endpoint`` wrapper cost more per lookup than
the lookup itself (bench/IDENTITY_PROFILE.md); the path parameters still come from routing
(``scope["path_params"]``) and errors still leave in the PROFILE family's shape.
"""

from __future__ import annotations

from typing import Any
from urllib.parse import parse_qsl

import msgspec
from starlette.routing import Route

from opencdp.api import raw
from opencdp.api.context import ApiContext
from opencdp.api.errors import PROFILE
from opencdp.api.openapi import ERRORS_SCHEMA, EXTRA_PATHS
from opencdp.profiles.model import (
    AudienceMembership,
    FormattedValue,
    ProfileView,
    Section,
    decode_resolve_request,
)
from opencdp.profiles.service import ProfileApi
from opencdp.tenancy.tokens import TokenService

MAX_BODY_BYTES = 16 * 1024


class _Identity(msgspec.Struct, gc=False):
    type: str
    encoding: str
    value: str


class _Membership(msgspec.Struct, gc=False):
    audience_id: int
    audience_name: str
    expiration_timestamp_ms: int | None


class _Document(msgspec.Struct, gc=False):
    """The documented response (profile-api.md §4, seed sample), keys in the sample's order.

    The top-level values are always present; each section only when ``fields`` names it
    (``UNSET`` fields are left out of the JSON). ``account_user_attributes`` is null, as in
    every published sample. A Struct rather than a dict: encoded straight from its fields.
    """

    mpid: int
    created_timestamp_ms: int
    last_stored_timestamp_ms: int
    is_opted_out: bool
    limit_ad_tracking: bool | None
    device_identities: list[_Identity] | msgspec.UnsetType = msgspec.UNSET
    user_identities: list[_Identity] | msgspec.UnsetType = msgspec.UNSET
    account_user_attributes: None = None
    user_attributes: dict[str, FormattedValue] | msgspec.UnsetType = msgspec.UNSET
    audience_memberships: list[_Membership] | msgspec.UnsetType = msgspec.UNSET
    attribution: dict[str, str] | msgspec.UnsetType | None = msgspec.UNSET


_encode = msgspec.json.Encoder().encode
_UNSET = msgspec.UNSET


def encode_profile(view: ProfileView) -> bytes:
    """The JSON body for ``view`` (see ``_Document``)."""
    wanted = view.sections
    return _encode(
        _Document(
            view.mpid,
            view.created_ms,
            view.last_stored_ms,
            view.is_opted_out,
            view.limit_ad_tracking,
            _identities(view.device_identities) if Section.DEVICE_IDENTITIES in wanted else _UNSET,
            _identities(view.user_identities) if Section.USER_IDENTITIES in wanted else _UNSET,
            None,
            view.user_attributes if Section.USER_ATTRIBUTES in wanted else _UNSET,
            _memberships(view.audience_memberships)
            if Section.AUDIENCE_MEMBERSHIPS in wanted
            else _UNSET,
            view.attribution if Section.ATTRIBUTION in wanted else _UNSET,
        )
    )


def _identities(pairs: tuple[tuple[str, str], ...]) -> list[_Identity]:
    return [_Identity(t, "none", v) for t, v in pairs]


def _memberships(memberships: tuple[AudienceMembership, ...]) -> list[_Membership]:
    return [
        _Membership(m.audience_id, m.audience_name, m.expiration_timestamp_ms) for m in memberships
    ]


def query_fields(query_string: bytes) -> str | None:
    """The ``fields`` query parameter as Starlette's ``request.query_params.get`` reads it:
    percent-decoded (UTF-8), ``+`` as a space, the last one when repeated, None when absent."""
    if not query_string:
        return None
    if (
        query_string.startswith(b"fields=")
        and b"&" not in query_string
        and b"%" not in query_string
        and b"+" not in query_string
    ):  # the common single plain parameter: nothing to decode
        return query_string[7:].decode("latin-1")
    found = None
    for name, value in parse_qsl(query_string.decode("latin-1"), keep_blank_values=True):
        if name == "fields":
            found = value
    return found


def routes(ctx: ApiContext) -> list[Route]:
    tokens: TokenService = ctx.services["tokens"]
    api: ProfileApi = ctx.services["profile_api"]

    async def by_mpid(scope: raw.Scope, receive: raw.Receive) -> raw.Reply:
        grant = tokens.authenticate(raw.header(scope, b"authorization"))
        p = scope["path_params"]
        view = api.by_mpid(
            grant,
            org_id=p["orgId"],
            account_id=p["accountId"],
            workspace_id=p["workspaceId"],
            mpid=p["mpid"],
            fields=query_fields(scope["query_string"]),
        )
        return 200, encode_profile(view)

    async def resolve(scope: raw.Scope, receive: raw.Receive) -> raw.Reply:
        grant = tokens.authenticate(raw.header(scope, b"authorization"))
        body = decode_resolve_request(await raw.read_body(scope, receive, MAX_BODY_BYTES))
        p = scope["path_params"]
        view = api.resolve(
            grant,
            org_id=p["orgId"],
            account_id=p["accountId"],
            workspace_id=p["workspaceId"],
            request=body,
            fields=query_fields(scope["query_string"]),
        )
        return 200, encode_profile(view)

    return [
        # First: "resolve/1/2/3" would otherwise also match the by-MPID pattern.
        Route(
            "/userprofile/v1/resolve/{orgId}/{accountId}/{workspaceId}",
            raw.RawEndpoint(PROFILE, resolve, ctx.count_error),
            methods=["POST"],
        ),
        Route(
            "/userprofile/v1/{orgId}/{accountId}/{workspaceId}/{mpid}",
            raw.RawEndpoint(PROFILE, by_mpid, ctx.count_error),
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


def _path_params(*names: str) -> list[dict[str, Any]]:
    return [
        {
            "name": n,
            "in": "path",
            "required": True,
            "schema": {"type": "string", "pattern": "^-?[0-9]+$"},
        }
        for n in names
    ]


_BY_MPID_PARAMS = _path_params("orgId", "accountId", "workspaceId", "mpid")
_RESOLVE_PARAMS = _path_params("orgId", "accountId", "workspaceId")


def _op(
    summary: str, params: list[dict[str, Any]], body: dict[str, Any] | None = None
) -> dict[str, Any]:
    err = {"content": {"application/json": {"schema": ERRORS_SCHEMA}}}
    op: dict[str, Any] = {
        "summary": summary,
        "security": [{"bearer": []}],
        "parameters": [*params, _FIELDS_PARAM],
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
    "get": _op("A profile by MPID", _BY_MPID_PARAMS),
    "post": _op("A profile by MPID (same as GET; the body is ignored)", _BY_MPID_PARAMS),
}
EXTRA_PATHS["/userprofile/v1/resolve/{orgId}/{accountId}/{workspaceId}"] = {
    "post": _op("A profile by an immutable user identity", _RESOLVE_PARAMS, _RESOLVE_BODY),
}
