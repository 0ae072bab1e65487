"""IDSync and alias bodies on the wire: msgspec structs in, JSON bytes out.

Decoding turns every malformed body into a ``BadRequest`` (400 in the IDSync shape), and hands
the domain its own types (:class:`IdentityRequest`, :class:`ModifyRequest`); identity names are
translated only through ``opencdp.identity.types``. The structs are lenient where real SDKs
differ (idsync.md §5.2, §7.2): ``previous_mpid`` and alias MPIDs come as strings or numbers,
optional envelope fields may be missing or null, and unknown keys are ignored.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, TypeVar

import msgspec

from opencdp.core.errors import BadRequest
from opencdp.identity.model import (
    MPID_MAX,
    MPID_MIN,
    IdentityChange,
    IdentityRequest,
    ModifyRequest,
    format_mpid,
    parse_mpid,
)
from opencdp.identity.service import ALIAS_MAX_WINDOW_MS, IdentityResult
from opencdp.identity.types import from_identity_api, to_identity_api

Environment = Literal["production", "development"]
Mpid = str | int


class ClientSdk(msgspec.Struct):
    platform: str | None = None
    sdk_vendor: str | None = None
    sdk_version: str | None = None


class IdentityBody(msgspec.Struct):
    """identify / login / logout / search (idsync.md §5.2)."""

    known_identities: dict[str, str | None]
    environment: Environment | None = None
    previous_mpid: Mpid | None = None
    context: str | None = None
    request_id: str | None = None
    request_timestamp_ms: float | None = None
    client_sdk: ClientSdk | None = None


class IdentityChangeBody(msgspec.Struct):
    identity_type: str
    old_value: str | None = None
    new_value: str | None = None


class ModifyBody(msgspec.Struct):
    """``/{mpid}/modify`` (idsync.md §5.5); an empty ``identity_changes`` is valid."""

    identity_changes: list[IdentityChangeBody]
    environment: Environment | None = None
    context: str | None = None
    request_id: str | None = None
    request_timestamp_ms: float | None = None
    client_sdk: ClientSdk | None = None


class AliasData(msgspec.Struct):
    source_mpid: Mpid
    destination_mpid: Mpid
    start_unixtime_ms: int | None = None
    end_unixtime_ms: int | None = None
    device_application_stamp: str | None = None
    scope: str | None = None


class AliasBody(msgspec.Struct):
    """The SDKs' alias request (idsync.md §7.2)."""

    data: AliasData
    request_type: Literal["alias"] | None = None
    environment: Environment | None = None
    api_key: str | None = None
    request_id: str | None = None


@dataclass(frozen=True)
class AliasRequest:
    source_mpid: int
    destination_mpid: int
    start_ms: int
    end_ms: int


T = TypeVar("T")

_identity_decoder = msgspec.json.Decoder(IdentityBody)
_modify_decoder = msgspec.json.Decoder(ModifyBody)
_alias_decoder = msgspec.json.Decoder(AliasBody)


def _decode(decoder: msgspec.json.Decoder[T], body: bytes) -> T:
    try:
        return decoder.decode(body)
    except msgspec.ValidationError as exc:
        raise BadRequest(f"invalid request body: {exc}") from None
    except msgspec.DecodeError as exc:
        raise BadRequest(f"the body is not valid JSON: {exc}") from None


def _mpid(value: Mpid | None, field: str) -> int | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return parse_mpid(value)
    if not MPID_MIN <= value <= MPID_MAX:
        raise BadRequest(f"{field} {value} is outside the signed 64-bit range")
    return value


def decode_identity_request(body: bytes) -> tuple[IdentityRequest, str]:
    """identify/login/logout/search body → the domain request (null identities dropped) and
    the ``context`` to echo."""
    doc = _decode(_identity_decoder, body)
    request = IdentityRequest.from_identity_api(
        doc.known_identities, _mpid(doc.previous_mpid, "previous_mpid")
    )
    return request, doc.context or ""


def decode_modify_request(mpid_text: str, body: bytes) -> tuple[ModifyRequest, str]:
    """Path MPID + modify body → the domain request (changes keep their order) and the
    ``context`` to echo."""
    mpid = parse_mpid(mpid_text)
    doc = _decode(_modify_decoder, body)
    changes = tuple(
        IdentityChange(from_identity_api(c.identity_type), c.old_value, c.new_value)
        for c in doc.identity_changes
    )
    return ModifyRequest(mpid=mpid, changes=changes), doc.context or ""


def decode_alias_request(body: bytes, *, now_ms: int) -> AliasRequest:
    """Alias body → MPIDs and window; omitted (or 0) times get the documented defaults.

    idsync.md §7.1: an omitted end is the time of the request, an omitted start the longest
    window before the end. Android leaves both out when they are 0. Whether the window is
    valid (start after end, same MPID, unknown MPIDs) is the identity service's call.
    """
    data = _decode(_alias_decoder, body).data
    source = _mpid(data.source_mpid, "source_mpid")
    destination = _mpid(data.destination_mpid, "destination_mpid")
    if source is None or destination is None:
        raise BadRequest("source_mpid and destination_mpid are required")
    end = data.end_unixtime_ms or now_ms
    start = data.start_unixtime_ms or end - ALIAS_MAX_WINDOW_MS
    return AliasRequest(source, destination, start, end)


def _identity_doc(result: IdentityResult, context: str) -> dict[str, object]:
    # ``context`` is opaque and we resolve without it (ADR 0004 Q1b): the client's own value
    # goes back, and "" when it sent none, since SDKs expect a string.
    return {
        "context": context,
        "mpid": format_mpid(result.mpid),
        "is_ephemeral": result.is_ephemeral,
        "is_logged_in": result.is_logged_in,
        "matched_identities": {to_identity_api(t): v for t, v in result.matched_identities},
    }


def encode_identity_response(result: IdentityResult, context: str) -> bytes:
    """The 200 body of identify/login/logout/search (idsync.md §5.3): ``mpid`` as a string."""
    return msgspec.json.encode(_identity_doc(result, context))


def encode_modify_response(result: IdentityResult, context: str) -> bytes:
    """``change_results`` (what iOS and web read), plus the identity fields of the profile.

    The web SDK copies ``is_logged_in`` from every 200 identity body, modify included, and
    would mark the user logged out if it were missing; ``mpid`` is the unchanged profile.
    """
    doc = _identity_doc(result, context)
    doc["change_results"] = [
        {
            "identity_type": to_identity_api(c.identity_type),
            "modified_mpid": format_mpid(c.modified_mpid),
        }
        for c in result.change_results
    ]
    return msgspec.json.encode(doc)
