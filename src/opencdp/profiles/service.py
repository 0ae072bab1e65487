"""Profile use cases: apply batch updates, expire inactive profiles, serve the Profile API.

``ProfileService`` is the write side (the pipeline step and the expiry sweep call it);
``ProfileApi`` is the read side behind ``/userprofile/v1``. Identities and MPID creation belong
to the identity slice. ``IdentityDirectory`` (implemented over the identity graph by
``GraphIdentityDirectory``) is its read interface in the Profile API's terms; the lookups
themselves read the identity tables read-only in the same statement as the profile data
(``store.lookup``), because one statement on a raw connection is most of what makes a lookup
cheap (bench/IDENTITY_PROFILE.md).
"""

from __future__ import annotations

import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Protocol, TypeVar

from sqlalchemy.engine import Connection

from opencdp.core.clock import Clock
from opencdp.core.db import Database
from opencdp.core.errors import BadRequest, Forbidden, NotFound
from opencdp.core.metrics import Metrics
from opencdp.core.ratelimit import RateLimiter
from opencdp.core.sql import RawRead
from opencdp.identity.model import parse_mpid
from opencdp.identity.service import IdentityService, ProfileIdentities
from opencdp.identity.types import (
    IdentityType,
    from_identity_api,
    to_identity_api,
    to_profile_api,
)
from opencdp.profiles import store
from opencdp.profiles.model import (
    DAY_MS,
    ProfileField,
    ProfileUpdate,
    ProfileView,
    ResolveRequest,
    Section,
    ValueKind,
    ValueWrite,
    lifetime_days,
    newer,
    parse_fields,
    registers_view,
)
from opencdp.tenancy.service import TenancyService
from opencdp.tenancy.tokens import Grant

logger = logging.getLogger(__name__)

RATE_LIMIT_SCOPE = "account"
"""``X-mp-rate-limit-exceeded`` value on a Profile API 429: a client belongs to one account."""

_SWEEP_CHUNK = 1000
_K = TypeVar("_K")


# --- Identity directory -----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileIdentity:
    """What the identity slice knows about an MPID. Identity types use Identity API names."""

    mpid: int
    created_ms: int
    last_seen_ms: int
    user_identities: tuple[tuple[str, str], ...]
    device_identities: tuple[tuple[str, str], ...]


class IdentityDirectory(Protocol):
    """The identity slice's read interface as the Profile API needs it."""

    def profile(self, workspace_id: int, mpid: int) -> ProfileIdentity | None: ...

    def profile_in(self, conn: Connection, workspace_id: int, mpid: int) -> ProfileIdentity | None:
        """:meth:`profile` inside the caller's read transaction."""
        ...

    def resolve(self, workspace_id: int, identity_type: str, value: str) -> int | None:
        """The MPID holding ``value`` for ``identity_type`` (an Identity API name)."""
        ...


_TYPE_ORDER = {t.value: i for i, t in enumerate(IdentityType)}


class GraphIdentityDirectory:
    """The directory over the identity slice's graph (``IdentityService``): the real one."""

    def __init__(self, identity: IdentityService) -> None:
        self._identity = identity

    def profile(self, workspace_id: int, mpid: int) -> ProfileIdentity | None:
        return _profile_identity(self._identity.profile(workspace_id, mpid))

    def profile_in(self, conn: Connection, workspace_id: int, mpid: int) -> ProfileIdentity | None:
        return _profile_identity(self._identity.profile_in(conn, workspace_id, mpid))

    def resolve(self, workspace_id: int, identity_type: str, value: str) -> int | None:
        return self._identity.resolve(workspace_id, from_identity_api(identity_type), value)


def _profile_identity(found: ProfileIdentities | None) -> ProfileIdentity | None:
    """The identity slice's record in the Profile API's terms (types in priority order)."""
    if found is None:
        return None
    ordered = sorted(found.identities, key=lambda p: _TYPE_ORDER.get(p[0].value, 999))
    return ProfileIdentity(
        mpid=found.mpid,
        created_ms=found.created_ms,
        last_seen_ms=found.last_seen_ms,
        user_identities=tuple((to_identity_api(t), v) for t, v in ordered if t.is_user),
        device_identities=tuple((to_identity_api(t), v) for t, v in ordered if not t.is_user),
    )


# --- Write side -------------------------------------------------------------------------------


class ProfileService:
    """Applies profile updates inside the pipeline's transaction and sweeps expired profiles."""

    def __init__(
        self,
        *,
        db: Database,
        clock: Clock,
        tenancy: TenancyService,
        identity: IdentityService,
        metrics: Metrics,
        default_lifetime_days: int,
    ) -> None:
        self._db = db
        self._clock = clock
        self._tenancy = tenancy
        self._identity = identity
        self._metrics = metrics
        self._default_days = default_lifetime_days

    def lifetime_ms(self, workspace_id: int) -> int:
        """How long a profile lives after its last activity in this workspace."""
        try:
            settings = self._tenancy.workspace(workspace_id).settings
        except NotFound:
            settings = {}
        return lifetime_days(settings, self._default_days) * DAY_MS

    def expired_before_ms(self, workspace_id: int) -> int:
        """The one expiry rule, shared by the sweep and the Profile API: a profile whose last
        activity (its identity record's ``last_seen_ms``, ADR 0006) is older than this has
        expired."""
        return self._clock.now_ms() - self.lifetime_ms(workspace_id)

    def apply(self, tx: Connection, updates: Sequence[ProfileUpdate], now_ms: int) -> None:
        """Apply a chunk's updates in the caller's transaction (never commits)."""
        heads: dict[tuple[int, int], store.Head] = {}
        values: dict[tuple[int, int, ValueKind, str], ValueWrite] = {}
        for update in updates:
            ws, mpid = update.workspace_id, update.mpid
            seen = heads.get((ws, mpid))
            created = (
                update.received_ms if seen is None else min(seen.created_ms, update.received_ms)
            )
            heads[(ws, mpid)] = store.Head(ws, mpid, created_ms=created, last_stored_ms=now_ms)
            _reduce(values, [((ws, mpid, w.kind, w.name), w) for w in update.values])
            for reason, count in update.limits.items():
                self._metrics.limits_applied.labels(reason).inc(count)
        # Rows are written in key order so concurrent workers take row locks in the same order.
        store.upsert_heads(tx, [heads[k] for k in sorted(heads)])
        store.upsert_values(tx, [(k[0], k[1], values[k]) for k in sorted(values)])

    def sweep_expired(self) -> int:
        """Delete every profile inactive for longer than its workspace's lifetime, identity
        record and profile data together; returns how many. Their events stay (ADR 0006).

        Idempotent, chunked so no transaction grows large, safe beside running workers: a
        profile a worker is touching is skipped, and one deleted under a worker is started
        afresh by it (``IdentityService.ensure_profile_in``, ``resolve_in``).
        """
        total = 0
        for ws in self._tenancy.workspace_ids():
            before = self.expired_before_ms(ws)
            while True:
                with self._db.write() as tx:
                    mpids = self._identity.expire_in(tx, ws, before, _SWEEP_CHUNK)
                    store.delete_profiles(tx, ws, mpids)
                total += len(mpids)
                if len(mpids) < _SWEEP_CHUNK:
                    break
        if total:
            logger.info("profiles.expired_swept", extra={"count": total})
        return total


def _reduce(into: dict[_K, ValueWrite], pairs: Iterable[tuple[_K, ValueWrite]]) -> None:
    """Keep the newest write per key (PostgreSQL refuses two updates of one row per statement)."""
    for key, write in pairs:
        old = into.get(key)
        if old is None or newer(write, old):
            into[key] = write


# --- Read side: the Profile API ---------------------------------------------------------------


class ProfileApi:
    """``/userprofile/v1``: authorization against the token's grant, rate limit, lookup.

    Each lookup is one read transaction on the thread's own DBAPI connection
    (``Database.read_raw``) running one statement (``store.lookup``); resolve adds the
    identity's holders to the same transaction.
    """

    def __init__(
        self,
        *,
        db: Database,
        profiles: ProfileService,
        directory: IdentityDirectory,
        rate_limiter: RateLimiter,
    ) -> None:
        self._db = db
        self._profiles = profiles
        self.directory = directory
        self._rate = rate_limiter

    def by_mpid(
        self,
        grant: Grant,
        *,
        org_id: str,
        account_id: str,
        workspace_id: str,
        mpid: str,
        fields: str | None,
    ) -> ProfileView:
        ws = self._authorize(grant, org_id, account_id, workspace_id)
        sections = parse_fields(fields)
        wanted = parse_mpid(mpid)
        return self._view(ws, wanted, self._read(ws, wanted), sections)

    def resolve(
        self,
        grant: Grant,
        *,
        org_id: str,
        account_id: str,
        workspace_id: str,
        request: ResolveRequest,
        fields: str | None,
    ) -> ProfileView:
        """Look a profile up by an identity. Only user identity types are accepted: an
        immutable identity must be a login ID, and device identities never are."""
        ws = self._authorize(grant, org_id, account_id, workspace_id)
        sections = parse_fields(fields)
        identity_type = request.checked_type()
        value = request.identity.value

        def read(r: RawRead) -> tuple[int, store.ProfileRecord | None]:
            mpids = store.holders(r, ws, identity_type.value, value)
            if len(mpids) != 1:  # none, or ambiguous
                raise NotFound("no profile holds this identity in the workspace")
            return mpids[0], store.lookup(r, ws, mpids[0])

        mpid, found = self._db.read_raw(read)
        return self._view(ws, mpid, found, sections)

    # -- helpers ---------------------------------------------------------------------------
    def _authorize(self, grant: Grant, org_id: str, account_id: str, workspace_id: str) -> int:
        self._rate.take(grant.client_id, scope=RATE_LIMIT_SCOPE)
        org, account, ws = (
            _path_id(org_id, "orgId"),
            _path_id(account_id, "accountId"),
            _path_id(workspace_id, "workspaceId"),
        )
        if not grant.may_read_profiles(org, account, ws):
            raise Forbidden("Not authorized to access the specified method or resource")
        return ws

    def _read(self, ws: int, mpid: int) -> store.ProfileRecord | None:
        """The identity record and the profile data in one read transaction (one snapshot)
        on the thread's own DBAPI connection: SQLAlchemy's Connection, pool checkout and
        ``BEGIN``/``COMMIT`` bookkeeping cost more than the statement (bench/IDENTITY_PROFILE.md)."""
        return self._db.read_raw(lambda r: store.lookup(r, ws, mpid))

    def _view(
        self, ws: int, mpid: int, found: store.ProfileRecord | None, sections: frozenset[Section]
    ) -> ProfileView:
        if found is None or found.last_seen_ms < self._profiles.expired_before_ms(ws):
            raise NotFound(f"profile {mpid} does not exist in workspace {ws}, or has expired")
        attributes, fields = registers_view(found.values)
        # a profile known only from IDSync calls has no data yet: it was last "stored" then
        last_stored = found.last_seen_ms if found.last_stored_ms is None else found.last_stored_ms
        lat = fields.get(ProfileField.LIMIT_AD_TRACKING)
        attribution = fields.get(ProfileField.ATTRIBUTION)
        users, devices = _identities(found.identities)
        return ProfileView(
            mpid=mpid,
            created_ms=found.created_ms,
            last_stored_ms=last_stored,
            is_opted_out=fields.get(ProfileField.IS_OPTED_OUT) is True,
            limit_ad_tracking=lat if isinstance(lat, bool) else None,
            user_identities=users,
            device_identities=devices,
            user_attributes=attributes,
            audience_memberships=(),
            attribution=attribution if isinstance(attribution, dict) else None,
            sections=sections,
        )


def _path_id(text: str, name: str) -> int:
    if not (text.isascii() and text.isdigit() and len(text) <= 18):
        raise BadRequest(f"{name} must be a positive integer")
    return int(text)


def _profile_api_name(identity_type: IdentityType) -> str | None:
    try:
        return to_profile_api(from_identity_api(to_identity_api(identity_type)))
    except BadRequest:
        return None


_SHOWN: dict[str, tuple[int, bool, str | None, str]] = {
    t.value: (_TYPE_ORDER[t.value], t.is_user, _profile_api_name(t), to_identity_api(t))
    for t in IdentityType
}
"""Stored identity type name -> (priority, is a user identity, Profile API name or None,
Identity API name): the per-type work of a lookup, done once."""


def _identities(
    pairs: Iterable[tuple[str, str]],
) -> tuple[tuple[tuple[str, str], ...], tuple[tuple[str, str], ...]]:
    """Stored ``(type, value)`` identities -> (user, device) identities with Profile API type
    names, in the identity priority order, values sorted within a type. Types without a
    Profile API name, or unknown to this version, are left out."""
    shown: list[tuple[int, str, bool, str]] = []
    for stored, value in pairs:
        known = _SHOWN.get(stored)
        name = None if known is None else known[2]
        if known is None or name is None:
            api_name = stored if known is None else known[3]
            logger.warning("profiles.unknown_identity_type", extra={"identity_type": api_name})
            continue
        shown.append((known[0], value, known[1], name))
    shown.sort()
    users = tuple((name, value) for _, value, is_user, name in shown if is_user)
    devices = tuple((name, value) for _, value, is_user, name in shown if not is_user)
    return users, devices
