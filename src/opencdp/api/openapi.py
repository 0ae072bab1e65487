"""The OpenAPI description. Hot paths decode with msgspec, so the description is written here
next to the routes rather than derived from handler signatures (ADR 0001)."""

from __future__ import annotations

from typing import Any

ERRORS_SCHEMA: dict[str, Any] = {
    "type": "object",
    "properties": {
        "errors": {
            "type": "array",
            "items": {
                "type": "object",
                "properties": {"code": {"type": "string"}, "message": {"type": "string"}},
                "required": ["code", "message"],
            },
        }
    },
}

_BATCH = {
    "type": "object",
    "description": "An mParticle event batch (schema version 2). Unknown keys are ignored.",
    "properties": {
        "events": {"type": "array", "items": {"type": "object"}},
        "environment": {"type": "string", "enum": ["production", "development"]},
        "source_request_id": {"type": "string"},
        "user_identities": {"type": "object", "additionalProperties": {"type": "string"}},
        "user_attributes": {"type": "object"},
        "device_info": {"type": "object"},
        "mpid": {"type": ["integer", "string"]},
    },
}


def _events_op(summary: str, body: dict[str, Any]) -> dict[str, Any]:
    err = {"content": {"application/json": {"schema": ERRORS_SCHEMA}}}
    return {
        "summary": summary,
        "security": [{"basic": []}],
        "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
        "responses": {
            "202": {"description": "Accepted: durably stored"},
            "400": {"description": "Malformed batch", **err},
            "401": {"description": "Missing credentials", **err},
            "403": {"description": "Wrong credentials", **err},
            "413": {"description": "Body over 256 KiB or batch over 128 KiB", **err},
            "429": {"description": "Over the workspace rate limit", **err},
        },
    }


EXTRA_PATHS: dict[str, dict[str, Any]] = {}
"""Later API families add their operations here at import time of their routes module."""


def build_openapi() -> dict[str, Any]:
    bulk = {"type": "array", "maxItems": 100, "items": _BATCH}
    paths: dict[str, dict[str, Any]] = {
        "/v2/events": {"post": _events_op("Upload one event batch", _BATCH)},
        "/v2/bulkevents": {"post": _events_op("Upload up to 100 event batches", bulk)},
        "/v2/bulkevents/historical": {
            "post": _events_op("Upload batches older than 72 hours", bulk)
        },
        "/healthz": {"get": {"summary": "Readiness", "responses": {"200": {"description": "ok"}}}},
        "/metrics": {
            "get": {"summary": "Prometheus metrics", "responses": {"200": {"description": "ok"}}}
        },
    }
    paths.update(EXTRA_PATHS)
    return {
        "openapi": "3.1.0",
        "info": {"title": "opencdp", "version": "0.1.0"},
        "paths": paths,
        "components": {"securitySchemes": {"basic": {"type": "http", "scheme": "basic"}}},
    }
