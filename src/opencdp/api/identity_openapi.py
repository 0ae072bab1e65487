"""OpenAPI operations of the IDSync, alias and Web SDK routes (added to ``EXTRA_PATHS`` by
their routes modules). Written by hand next to the routes, as ADR 0001 explains."""

from __future__ import annotations

from typing import Any

from opencdp.api.openapi import ERRORS_SCHEMA

_IDSYNC_ERROR = {
    "type": "object",
    "description": "The documented errors list, with the first error also flat (iOS reads it).",
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                "required": ["code", "message"],
            },
        },
        "code": {"type": "string"},
        "message": {"type": "string"},
    },
}
_IDENTITIES = {
    "type": "object",
    "description": "Identity API names (customerid, email, other2, ios_idfa, "
    "device_application_stamp, ...) to values; null means not known.",
    "additionalProperties": {"type": ["string", "null"]},
}
_MPID = {"type": "string", "description": "Signed 64-bit integer as a decimal string; never 0."}
_ENVELOPE = {
    "environment": {"type": "string", "enum": ["production", "development"]},
    "request_id": {"type": "string"},
    "request_timestamp_ms": {"type": "integer"},
    "context": {"type": ["string", "null"]},
    "client_sdk": {
        "type": "object",
        "properties": {
            "platform": {"type": "string"},
            "sdk_vendor": {"type": "string"},
            "sdk_version": {"type": "string"},
        },
    },
}
_IDENTITY_REQUEST = {
    "type": "object",
    "required": ["known_identities"],
    "properties": {
        **_ENVELOPE,
        "previous_mpid": {"type": ["string", "integer", "null"]},
        "known_identities": _IDENTITIES,
    },
}
_IDENTITY_FIELDS: dict[str, Any] = {
    "context": {"type": "string"},
    "mpid": _MPID,
    "is_ephemeral": {"type": "boolean"},
    "is_logged_in": {"type": "boolean"},
    "matched_identities": _IDENTITIES,
}
_IDENTITY_RESPONSE = {"type": "object", "properties": _IDENTITY_FIELDS}
_MODIFY_REQUEST = {
    "type": "object",
    "required": ["identity_changes"],
    "properties": {
        **_ENVELOPE,
        "identity_changes": {
            "type": "array",
            "items": {
                "type": "object",
                "required": ["identity_type"],
                "properties": {
                    "identity_type": {"type": "string"},
                    "old_value": {"type": ["string", "null"], "description": "null = add"},
                    "new_value": {"type": ["string", "null"], "description": "null = remove"},
                },
            },
        },
    },
}
_MODIFY_RESPONSE = {
    "type": "object",
    "properties": {
        **_IDENTITY_FIELDS,
        "change_results": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"identity_type": {"type": "string"}, "modified_mpid": _MPID},
            },
        },
    },
}
_ALIAS_REQUEST = {
    "type": "object",
    "required": ["data"],
    "properties": {
        "request_id": {"type": "string"},
        "request_type": {"type": "string", "enum": ["alias"]},
        "environment": {"type": "string", "enum": ["production", "development"]},
        "api_key": {"type": "string"},
        "data": {
            "type": "object",
            "required": ["source_mpid", "destination_mpid"],
            "properties": {
                "source_mpid": {"type": ["string", "integer"]},
                "destination_mpid": {"type": ["string", "integer"]},
                "start_unixtime_ms": {
                    "type": "integer",
                    "description": "omitted or 0: 90 days before the end",
                },
                "end_unixtime_ms": {
                    "type": "integer",
                    "description": "omitted or 0: the time of the request",
                },
                "device_application_stamp": {"type": "string"},
                "scope": {"type": "string"},
            },
        },
    },
}

_AUTH = (
    "Authentication: HTTP Basic (key:secret), HMAC (x-mp-key, Date, x-mp-signature over "
    "METHOD\\nDATE\\n/v1/PATH+body) or, for inputs that allow it, x-mp-key alone."
)


def _json(schema: dict[str, Any]) -> dict[str, Any]:
    return {"content": {"application/json": {"schema": schema}}}


def _errors(schema: dict[str, Any], extra: dict[str, str]) -> dict[str, Any]:
    base = {
        "400": "Malformed body or unknown identity type",
        "401": "Missing or wrong credentials, bad signature, Date outside the window",
        "403": "Key-only access is off for this input",
        "413": "Body over 64 KiB",
        **extra,
    }
    return {status: {"description": text, **_json(schema)} for status, text in base.items()}


def _idsync_op(summary: str, ok: str, extra: dict[str, str] | None = None) -> dict[str, Any]:
    return {
        "post": {
            "summary": summary,
            "description": _AUTH,
            "requestBody": {"required": True, **_json(_IDENTITY_REQUEST)},
            "responses": {
                "200": {"description": ok, **_json(_IDENTITY_RESPONSE)},
                **_errors(_IDSYNC_ERROR, extra or {}),
            },
        }
    }


def _modify_op() -> dict[str, Any]:
    return {
        "post": {
            "summary": "Add, change or remove identities of an existing profile",
            "description": _AUTH,
            "parameters": [
                {"name": "mpid", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": {"required": True, **_json(_MODIFY_REQUEST)},
            "responses": {
                "200": {"description": "Changes applied", **_json(_MODIFY_RESPONSE)},
                **_errors(_IDSYNC_ERROR, {"404": "No profile has this MPID"}),
            },
        }
    }


def _alias_op() -> dict[str, Any]:
    return {
        "post": {
            "summary": "Copy a source profile's events in a time window to a destination",
            "description": "The API key is the one in the URL. " + _AUTH,
            "parameters": [
                {"name": "apiKey", "in": "path", "required": True, "schema": {"type": "string"}}
            ],
            "requestBody": {"required": True, **_json(_ALIAS_REQUEST)},
            "responses": {
                "202": {"description": "Accepted (rules on earlier aliases apply silently)"},
                **_errors(
                    _IDSYNC_ERROR,
                    {
                        "400": "Malformed body, same or unknown MPIDs, start after end",
                        "403": "Aliasing is off for this workspace's strategy, or key-only "
                        "access is off",
                    },
                ),
            },
        }
    }


def _identity_paths() -> dict[str, dict[str, Any]]:
    paths: dict[str, dict[str, Any]] = {}
    for prefix in ("/v1", "/identity/v1"):
        paths[f"{prefix}/identify"] = _idsync_op(
            "Resolve identities to a profile, creating it if needed", "The profile"
        )
        paths[f"{prefix}/login"] = _idsync_op("Transition to a known user", "The profile")
        paths[f"{prefix}/logout"] = _idsync_op("Transition to an anonymous user", "The profile")
        paths[f"{prefix}/search"] = _idsync_op(
            "Find the profile identify would return; never creates one",
            "The profile",
            {"404": "No profile matches (code NOT_FOUND_ERROR)"},
        )
        paths[prefix + "/{mpid}/modify"] = _modify_op()
    for prefix in ("/webevents/v1/identity", "/nativeevents/v1/identity", "/v1/identity"):
        for name in ("Alias", "alias"):
            paths[f"{prefix}/{{apiKey}}/{name}"] = _alias_op()
    return paths


def _web_paths() -> dict[str, dict[str, Any]]:
    key = [{"name": "apiKey", "in": "path", "required": True, "schema": {"type": "string"}}]
    events = {
        "post": {
            "summary": "Web SDK event batch upload (one batch, sent as text/plain)",
            "description": "Key-only: the API key in the URL. A batch that can never be "
            "accepted is still answered 202 and counted as rejected, because the Web SDK "
            "retries a 400 forever.",
            "parameters": key,
            "requestBody": {
                "required": True,
                "content": {"text/plain": {"schema": {"type": "string"}}},
            },
            "responses": {
                "202": {"description": "Stored (or rejected and counted)"},
                "403": {
                    "description": "Unknown key, or key-only access off",
                    **_json(ERRORS_SCHEMA),
                },
                "413": {"description": "Body over 256 KiB", **_json(ERRORS_SCHEMA)},
                "429": {"description": "Over the workspace rate limit", **_json(ERRORS_SCHEMA)},
            },
        }
    }
    config = {
        "get": {
            "summary": "Web SDK configuration (workspaceToken, kitConfigs, pixelConfigs, flags)",
            "parameters": [
                *key,
                {"name": "env", "in": "query", "schema": {"type": "string", "enum": ["0", "1"]}},
            ],
            "responses": {
                "200": {
                    "description": "Merged by the SDK over its init config",
                    **_json(
                        {
                            "type": "object",
                            "properties": {
                                "workspaceToken": {"type": "string"},
                                "kitConfigs": {"type": "array"},
                                "pixelConfigs": {"type": "array"},
                                "flags": {
                                    "type": "object",
                                    "additionalProperties": {"type": "string"},
                                },
                            },
                        }
                    ),
                },
                "403": {
                    "description": "Unknown key, or key-only access off",
                    **_json(ERRORS_SCHEMA),
                },
            },
        }
    }
    return {
        "/webevents/v3/JS/{apiKey}/events": events,
        "/v3/JS/{apiKey}/events": events,
        "/tags/JS/v2/{apiKey}/config": config,
        "/JS/v2/{apiKey}/config": config,
    }


IDENTITY_PATHS = _identity_paths()
WEB_PATHS = _web_paths()
