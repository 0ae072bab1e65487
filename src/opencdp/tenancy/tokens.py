"""OAuth access tokens: issued for client credentials, verified without touching the database.

A token is ``oc1.<payload>.<signature>``: the payload (base64url JSON) names the client and what
it may do — Profile API reads on a list of workspaces, Platform API access for its account — and
when it expires; the signature is HMAC-SHA256 over ``oc1.<payload>`` with a key every API
process holds in memory. That is why a Profile API request costs no credential lookup, and also
why, as mParticle documents, tokens cannot be revoked: disabling a client stops new tokens, and
the ones already issued run out within ``expires_in`` (8 hours).

The key is ``Settings.token_secret`` (derived, so the raw setting is never the HMAC key) or,
when that is empty, a random key created once per store (``TenancyService.signing_key``), which
every process sharing the store reads at start-up.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
from dataclasses import dataclass

import msgspec

from opencdp.core.clock import Clock
from opencdp.core.errors import BadRequest, Forbidden, Unauthenticated
from opencdp.tenancy.model import OAuthClient
from opencdp.tenancy.service import TenancyService

TOKEN_LIFETIME_S = 28_800
"""``expires_in`` of every token: 8 hours, as mParticle issues them."""

AUDIENCE = "https://api.mparticle.com"
"""The only ``audience`` the token endpoint accepts (platform-api.md §1)."""

GRANT_TYPE = "client_credentials"
TOKEN_TYPE = "Bearer"
_PREFIX = "oc1."
_KEY_LABEL = b"opencdp oauth token signing v1"
_VERIFIED_MAX = 4096
"""Verified tokens remembered per process (``TokenService.authenticate``); more are forgotten."""


class TokenRequest(msgspec.Struct, kw_only=True):
    """The token endpoint's body (JSON, or a form, or client id/secret via HTTP Basic)."""

    client_id: str | None = None
    client_secret: str | None = None
    audience: str | None = None
    grant_type: str | None = None


@dataclass(frozen=True, slots=True)
class IssuedToken:
    access_token: str
    expires_in: int
    token_type: str = TOKEN_TYPE


@dataclass(frozen=True, slots=True)
class Grant:
    """What a verified token allows."""

    client_id: str
    org_id: int
    account_id: int
    workspace_ids: frozenset[int]
    platform_access: bool
    expires_ms: int

    def may_read_profiles(self, org_id: int, account_id: int, workspace_id: int) -> bool:
        """Profile API scope: one of the client's workspaces, addressed under its own org and
        account (a path naming another org or account is refused even for a known workspace)."""
        return (
            org_id == self.org_id
            and account_id == self.account_id
            and workspace_id in self.workspace_ids
        )

    def may_use_platform(self, account_id: int) -> bool:
        """Platform API scope: the client's account, if it was given Platform access."""
        return self.platform_access and account_id == self.account_id


class _Claims(msgspec.Struct, array_like=True, frozen=True):
    client_id: str
    org_id: int
    account_id: int
    workspace_ids: list[int]
    platform_access: bool
    issued_ms: int
    expires_ms: int


_encode_claims = msgspec.json.Encoder().encode
_decode_claims = msgspec.json.Decoder(_Claims).decode


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def derive_key(secret: str) -> bytes:
    """The HMAC key for a configured ``token_secret``."""
    return hmac.new(secret.encode(), _KEY_LABEL, hashlib.sha256).digest()


def signing_key(token_secret: str, tenancy: TenancyService) -> bytes:
    """The key this process signs and verifies with (see the module docstring)."""
    return derive_key(token_secret) if token_secret else tenancy.signing_key()


def issue_token(client: OAuthClient, *, key: bytes, now_ms: int, lifetime_s: int) -> str:
    claims = _Claims(
        client_id=client.client_id,
        org_id=client.org_id,
        account_id=client.account_id,
        workspace_ids=sorted(client.workspace_ids),
        platform_access=client.platform_access,
        issued_ms=now_ms,
        expires_ms=now_ms + lifetime_s * 1000,
    )
    signed = _PREFIX + _b64(_encode_claims(claims))
    return signed + "." + _b64(hmac.new(key, signed.encode(), hashlib.sha256).digest())


def verify_token(token: str, *, key: bytes, now_ms: int) -> Grant:
    """The grant a token carries; any forged, damaged or expired token is Unauthenticated."""
    signed, dot, signature = token.rpartition(".")
    if not dot or not signed.startswith(_PREFIX) or not token.isascii():
        raise Unauthenticated("invalid access token")
    expected = hmac.new(key, signed.encode(), hashlib.sha256).digest()
    try:
        given = _unb64(signature)
        if not hmac.compare_digest(given, expected):
            raise Unauthenticated("invalid access token")
        claims = _decode_claims(_unb64(signed[len(_PREFIX) :]))
    except (binascii.Error, ValueError, msgspec.DecodeError):
        raise Unauthenticated("invalid access token") from None
    if now_ms >= claims.expires_ms:
        raise Unauthenticated("access token expired")
    return Grant(
        client_id=claims.client_id,
        org_id=claims.org_id,
        account_id=claims.account_id,
        workspace_ids=frozenset(claims.workspace_ids),
        platform_access=claims.platform_access,
        expires_ms=claims.expires_ms,
    )


def bearer_token(authorization: str | None) -> str | None:
    """The token of an ``Authorization: Bearer`` header; None when absent or another scheme."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "bearer" or not value.strip():
        return None
    return value.strip()


class TokenService:
    """The token endpoint and bearer authentication for the Profile and Platform APIs."""

    def __init__(
        self,
        *,
        tenancy: TenancyService,
        clock: Clock,
        key: bytes,
        lifetime_s: int = TOKEN_LIFETIME_S,
    ) -> None:
        self._tenancy = tenancy
        self._clock = clock
        self._key = key
        self.lifetime_s = lifetime_s
        self._verified: dict[str, Grant] = {}
        """Tokens whose signature checked out, with their grants. A Profile API client sends
        the same token for hours, and verifying it (HMAC, base64, decode) was a tenth of a
        lookup's CPU. A hit still checks expiry; the key never changes in a process, so a
        signature that verified once always would."""

    def issue(self, request: TokenRequest) -> IssuedToken:
        """Exchange client credentials for a token.

        Missing or wrong credentials are Unauthenticated (401, ``invalid_client``); a wrong
        ``grant_type`` or ``audience`` is a BadRequest (400). The shape is checked before the
        secret, so malformed requests never cost a (deliberately slow) secret verification.
        """
        if not request.client_id or not request.client_secret:
            raise Unauthenticated("client_id and client_secret are required")
        if request.grant_type != GRANT_TYPE:
            raise BadRequest(f"grant_type must be {GRANT_TYPE!r}")
        if (request.audience or "").rstrip("/") != AUDIENCE:
            raise BadRequest(f"audience must be {AUDIENCE!r}")
        try:
            client = self._tenancy.verify_oauth_client(request.client_id, request.client_secret)
        except Forbidden:
            raise Unauthenticated("invalid client credentials") from None
        token = issue_token(
            client, key=self._key, now_ms=self._clock.now_ms(), lifetime_s=self.lifetime_s
        )
        return IssuedToken(access_token=token, expires_in=self.lifetime_s)

    def authenticate(self, authorization: str | None) -> Grant:
        """The grant of a request's ``Authorization: Bearer`` header (401 when missing/bad)."""
        token = bearer_token(authorization)
        if token is None:
            raise Unauthenticated("missing bearer token (Authorization: Bearer <access_token>)")
        now_ms = self._clock.now_ms()
        grant = self._verified.get(token)
        if grant is None:
            grant = verify_token(token, key=self._key, now_ms=now_ms)
            if len(self._verified) >= _VERIFIED_MAX:
                self._verified.clear()  # only signed tokens get here, so this is rare
            self._verified[token] = grant
        elif now_ms >= grant.expires_ms:
            raise Unauthenticated("access token expired")
        return grant
