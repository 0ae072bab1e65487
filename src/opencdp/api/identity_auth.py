"""IDSync authentication: HTTP Basic, HMAC digest, and API key only (idsync.md §6).

Which mode a request uses is read from its headers: ``Authorization`` means Basic,
``x-mp-signature`` means HMAC, and a bare API key (``x-mp-key``, or the key in an alias URL)
means key-only, which only inputs with ``allow_key_only`` accept (web inputs by default: the Web
SDK never signs). Every failure to prove the credentials is 401, as the Identity API documents;
403 is kept for a valid key that may not use key-only access.

HMAC details that real SDKs depend on:

* the signed message is ``METHOD + "\\n" + DATE + "\\n" + PATH + BODY`` with the Date header's
  literal text (SDKs send RFC 1123, the docs show compact ISO 8601; we parse both only to check
  the clock window, never to rebuild the string);
* PATH is the canonical mParticle path (``/v1/identify``, ``/v1/identity/{key}/alias``) even
  when the SDK was pointed at ``/identity/v1/...`` or ``/nativeevents/v1/...``, plus ``?query``;
  the path actually requested is accepted too, for hand-written clients that sign what they call;
* BODY is the uncompressed text: Android gzips after signing (``read_body`` has already
  gunzipped it here).
"""

from __future__ import annotations

import hashlib
import hmac
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime

from starlette.requests import Request

from opencdp.api.context import ApiContext
from opencdp.api.http import basic_credentials
from opencdp.api.raw import Scope
from opencdp.core.errors import Forbidden, Unauthenticated
from opencdp.tenancy.model import Principal


def authenticate(
    ctx: ApiContext, request: Request, body: bytes, *, path_key: str | None = None
) -> Principal:
    """:func:`authenticate_scope` for a Starlette request."""
    return authenticate_scope(ctx, request.scope, body, path_key=path_key)


def authenticate_scope(
    ctx: ApiContext, scope: Scope, body: bytes, *, path_key: str | None = None
) -> Principal:
    """The input that sent the request of ``scope``; ``path_key`` is the API key an alias URL
    carries.

    ``body`` must be the bytes as signed, i.e. after gunzip. Headers are read from the ASGI
    scope in one pass (the raw IDSync endpoints have no Starlette request); for a repeated
    header the first one counts, as with Starlette's ``headers.get``.
    """
    authorization = header_key = presented = date = None
    for name, value in scope["headers"]:
        if name == b"authorization":
            if authorization is None:
                authorization = value.decode("latin-1")
        elif name == b"x-mp-key":
            if header_key is None:
                header_key = value.decode("latin-1")
        elif name == b"x-mp-signature":
            if presented is None:
                presented = value.decode("latin-1")
        elif name == b"date" and date is None:
            date = value.decode("latin-1")
    if path_key is not None and header_key is not None and header_key != path_key:
        raise Unauthenticated("the x-mp-key header does not match the API key in the URL")
    key = path_key if path_key is not None else header_key
    if authorization:
        return _basic(ctx, authorization, path_key)
    if presented is not None:
        return _hmac(ctx, scope, body, key, presented, date)
    return _key_only(ctx, key)


def _lookup(ctx: ApiContext, key: str) -> Principal:
    principal = ctx.tenancy.principal_for_key(key)
    if principal is None:
        raise Unauthenticated("invalid API key")
    return principal


def _basic(ctx: ApiContext, header: str | None, path_key: str | None) -> Principal:
    key, secret = basic_credentials(header)
    if not key or secret is None:
        raise Unauthenticated("unreadable Authorization header: expected Basic key:secret")
    if path_key is not None and key != path_key:
        raise Unauthenticated("the Basic credentials are for another API key than the URL's")
    principal = ctx.tenancy.principal_for_key(key)
    if principal is None or not hmac.compare_digest(principal.api_secret.encode(), secret.encode()):
        raise Unauthenticated("invalid API key or secret")
    return principal


def _key_only(ctx: ApiContext, key: str | None) -> Principal:
    if not key:
        raise Unauthenticated(
            "missing credentials: send HTTP Basic, an HMAC signature "
            "(x-mp-key, Date, x-mp-signature), or x-mp-key for a key-only input"
        )
    principal = _lookup(ctx, key)
    if not principal.allow_key_only:
        raise Forbidden("this input requires a signature or its secret (key-only access is off)")
    return principal


def _hmac(
    ctx: ApiContext, scope: Scope, body: bytes, key: str | None, presented: str, date: str | None
) -> Principal:
    if not key:
        raise Unauthenticated("HMAC authentication needs the x-mp-key header")
    if not date:
        raise Unauthenticated("HMAC authentication needs a Date header")
    date_ms = parse_date(date)
    if date_ms is None:
        raise Unauthenticated("unreadable Date header: expected RFC 1123 or ISO 8601")
    window_s = ctx.settings.hmac_window_s
    if abs(ctx.clock.now_ms() - date_ms) > window_s * 1000:
        raise Unauthenticated(f"the Date header is more than {window_s} s from the server clock")
    principal = _lookup(ctx, key)
    presented = presented.strip().lower()
    method = scope["method"]
    for path in signed_paths(scope):
        expected = signature(principal.api_secret, method, date, path, body)
        if hmac.compare_digest(expected, presented):
            return principal
    raise Unauthenticated("invalid x-mp-signature")


def signature(secret: str, method: str, date: str, path: str, body: bytes) -> str:
    """Lowercase hex HMAC-SHA256 over ``METHOD\\nDATE\\nPATH`` + body, keyed by the secret."""
    message = f"{method}\n{date}\n{path}".encode() + body
    return hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def canonical_path(path: str) -> str:
    """The mParticle path an SDK signs: everything from the first ``/v1/`` segment on.

    ``/identity/v1/login`` → ``/v1/login``; ``/nativeevents/v1/identity/K/alias`` →
    ``/v1/identity/K/alias``; a path without ``/v1/`` is returned unchanged.
    """
    at = path.find("/v1/")
    return path[at:] if at >= 0 else path


def signed_paths(scope: Scope) -> list[str]:
    """Paths (with ``?query``) a valid signature may cover: canonical first, then literal."""
    raw = scope.get("raw_path")
    path = raw.decode("latin-1") if isinstance(raw, bytes) else scope["path"]
    query = scope.get("query_string", b"").decode("latin-1")
    suffix = f"?{query}" if query else ""
    canonical = canonical_path(path) + suffix
    literal = path + suffix
    return [canonical] if canonical == literal else [canonical, literal]


def parse_date(value: str) -> int | None:
    """Milliseconds since the epoch for an RFC 1123 or ISO 8601 date; None if unreadable.

    A date without a zone is taken as UTC (compact ISO 8601 ends in ``Z`` anyway).
    """
    text = value.strip()
    parsed: datetime | None = None
    for fmt in ("%Y%m%dT%H%M%SZ", "%Y%m%dT%H%M%S.%fZ"):
        try:
            parsed = datetime.strptime(text, fmt)
            break
        except ValueError:
            continue
    if parsed is None:
        try:
            parsed = parsedate_to_datetime(text)
        except (TypeError, ValueError, IndexError):
            parsed = None
    if parsed is None:
        try:
            parsed = datetime.fromisoformat(text)
        except ValueError:
            return None
    if parsed.tzinfo is None:
        parsed = parsed.replace(tzinfo=UTC)
    return int(parsed.timestamp() * 1000)
