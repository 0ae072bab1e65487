"""Pure types of identity resolution: strategy configuration, requests, graph views, decisions.

Nothing here does I/O. The storage layer builds :class:`ProfileView` snapshots and implements
:class:`GraphView`; the decision functions in :mod:`opencdp.identity.strategies` read them and
return a :class:`Decision`, which the storage layer applies in one transaction.
"""

from __future__ import annotations

import enum
import re
import secrets
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import NoReturn, Protocol

from opencdp.core.errors import BadRequest
from opencdp.identity.types import IdentityType, from_identity_api

# --- MPIDs -------------------------------------------------------------------------------------

MPID_MIN = -(2**63)
MPID_MAX = 2**63 - 1
_MPID_TEXT = re.compile(r"-?[0-9]{1,20}")


def new_mpid() -> int:
    """A fresh random signed 64-bit MPID.

    Random rather than sequential so MPIDs reveal nothing about volume or order and can be
    allocated on any node without coordination; 0 is skipped because every SDK reads it as
    "no user yet".
    """
    while True:
        mpid = secrets.randbits(64) + MPID_MIN
        if mpid != 0:
            return mpid


def format_mpid(mpid: int) -> str:
    """Signed decimal text, as the Identity API sends MPIDs (a JSON string)."""
    if not MPID_MIN <= mpid <= MPID_MAX:
        raise ValueError(f"{mpid} is not a signed 64-bit integer")
    return str(mpid)


def parse_mpid(text: str) -> int:
    """Parse signed decimal MPID text (path segment, ``previous_mpid``).

    Only ASCII digits with an optional minus sign are accepted: Python's ``int`` would also take
    ``" 1"``, ``"1_0"`` or non-ASCII digits, none of which a client means as an MPID. ``"0"``
    parses to 0; callers treat it as "no user", as the SDKs do.
    """
    if not _MPID_TEXT.fullmatch(text):
        raise BadRequest(f"invalid mpid {text[:40]!r}: expected a signed 64-bit decimal integer")
    mpid = int(text)
    if not MPID_MIN <= mpid <= MPID_MAX:
        raise BadRequest(f"invalid mpid {text!r}: outside the signed 64-bit range")
    return mpid


# --- strategy configuration --------------------------------------------------------------------


class Strategy(enum.StrEnum):
    DEFAULT = "default"
    PROFILE_CONVERSION = "profile_conversion"
    PROFILE_LINK = "profile_link"
    PROFILE_ISOLATION = "profile_isolation"
    BEST_MATCH = "best_match"


_T = IdentityType

DEFAULT_PRIORITY: tuple[IdentityType, ...] = (
    _T.CUSTOMER_ID,
    _T.MOBILE_NUMBER,  # the documented "Phone Number"
    _T.EMAIL,
    _T.OTHER,
    _T.FACEBOOK,
    _T.GOOGLE,
    _T.TWITTER,
    _T.MICROSOFT,
    _T.YAHOO,
    _T.IOS_ADVERTISING_ID,
    _T.IOS_IDFV,
    _T.ANDROID_ADVERTISING_ID,
    _T.ANDROID_UUID,
    _T.ROKU_ADVERTISING_ID,
    _T.ROKU_PUBLISHER_ID,
    _T.MICROSOFT_PUBLISHER_ID,
    _T.MICROSOFT_ADVERTISING_ID,
    _T.DEVICE_APPLICATION_STAMP,
)
"""mParticle's documented default hierarchy (18 entries, highest first)."""


@dataclass(frozen=True, slots=True)
class _Defaults:
    login: frozenset[IdentityType]
    alias_allowed: bool
    fixed: bool  # login/unique/immutable cannot be overridden


_CID = frozenset({_T.CUSTOMER_ID})
_CID_EMAIL = frozenset({_T.CUSTOMER_ID, _T.EMAIL})
_NONE: frozenset[IdentityType] = frozenset()
_DEFAULTS = {
    Strategy.DEFAULT: _Defaults(_CID, alias_allowed=True, fixed=True),
    Strategy.PROFILE_CONVERSION: _Defaults(_CID, alias_allowed=True, fixed=False),
    Strategy.PROFILE_LINK: _Defaults(_CID_EMAIL, alias_allowed=True, fixed=False),
    Strategy.PROFILE_ISOLATION: _Defaults(_CID_EMAIL, alias_allowed=False, fixed=False),
    Strategy.BEST_MATCH: _Defaults(_NONE, alias_allowed=False, fixed=True),
}
_NO_ALIAS = frozenset({Strategy.PROFILE_ISOLATION, Strategy.BEST_MATCH})
_NEEDS_LOGIN = frozenset({Strategy.PROFILE_LINK, Strategy.PROFILE_ISOLATION})


@dataclass(frozen=True, slots=True)
class StrategyConfig:
    """A workspace's identity strategy. Build it with :meth:`for_strategy`.

    ``priority`` lists the identity types used for lookup, highest first; identities of other
    types are stored on profiles but never matched on (mParticle's "identity record" holds only
    the types in the hierarchy).
    """

    strategy: Strategy
    login_types: frozenset[IdentityType]
    unique_types: frozenset[IdentityType]
    immutable_types: frozenset[IdentityType]
    priority: tuple[IdentityType, ...]
    alias_allowed: bool

    def __post_init__(self) -> None:
        _validate(self)

    @classmethod
    def for_strategy(
        cls,
        strategy: Strategy,
        *,
        login_types: Iterable[IdentityType] | None = None,
        unique_types: Iterable[IdentityType] | None = None,
        immutable_types: Iterable[IdentityType] | None = None,
        priority: Iterable[IdentityType] | None = None,
        alias_allowed: bool | None = None,
    ) -> StrategyConfig:
        """The strategy's documented defaults, with the overrides it allows."""
        d = _DEFAULTS[strategy]
        if d.fixed and (login_types, unique_types, immutable_types) != (None, None, None):
            raise BadRequest(f"the {strategy} strategy fixes its login, unique and immutable IDs")
        login = d.login if login_types is None else frozenset(login_types)
        return cls(
            strategy=strategy,
            login_types=login,
            # login IDs default to unique: every documented strategy pairs them
            unique_types=login if unique_types is None else frozenset(unique_types),
            immutable_types=_NONE if immutable_types is None else frozenset(immutable_types),
            priority=DEFAULT_PRIORITY if priority is None else tuple(priority),
            alias_allowed=d.alias_allowed if alias_allowed is None else alias_allowed,
        )

    def is_known(self, identities: Mapping[IdentityType, Collection[str]]) -> bool:
        """A profile is known (logged in) when it holds at least one login ID."""
        return any(identities.get(t) for t in self.login_types)


def _validate(c: StrategyConfig) -> None:
    def fail(why: str) -> NoReturn:
        raise BadRequest(f"invalid {c.strategy} identity strategy: {why}")

    if not c.priority or len(set(c.priority)) != len(c.priority):
        fail("the identity priority must be a non-empty list without repeats")
    if device := sorted(t for t in c.login_types if not t.is_user):
        fail(f"device identities cannot be login IDs: {', '.join(device)}")
    if missing := sorted(c.login_types - set(c.priority)):
        fail(f"login IDs must appear in the identity priority: {', '.join(missing)}")
    if loose := sorted(c.immutable_types - (c.login_types & c.unique_types)):
        fail(f"immutable IDs must also be unique and login IDs: {', '.join(loose)}")
    if c.strategy is Strategy.DEFAULT and (c.login_types, c.unique_types) != (_CID, _CID):
        fail("login and unique ID are fixed to customer_id")
    if c.strategy is Strategy.DEFAULT and c.immutable_types:
        fail("no immutable IDs")
    if c.strategy is Strategy.BEST_MATCH and (c.login_types or c.unique_types):
        fail("best match has no login or unique IDs")
    if c.strategy in _NEEDS_LOGIN and not c.login_types:
        fail("at least one login ID is required")
    if c.strategy in _NO_ALIAS and c.alias_allowed:
        fail("aliasing is not available")


# --- requests ----------------------------------------------------------------------------------


class RequestKind(enum.StrEnum):
    IDENTIFY = "identify"
    LOGIN = "login"
    LOGOUT = "logout"
    SEARCH = "search"
    MODIFY = "modify"


@dataclass(frozen=True, slots=True)
class IdentityRequest:
    """Body of identify, login, logout and search: one value per identity type.

    ``previous_mpid`` of 0 is normalized to None: SDKs use 0 for "no user yet".
    """

    identities: Mapping[IdentityType, str]
    previous_mpid: int | None = None

    def __post_init__(self) -> None:
        if not self.identities:
            raise BadRequest("known_identities is empty: supply at least one identity")
        for t, v in self.identities.items():
            if not isinstance(v, str) or not v:
                raise BadRequest(f"identity {t} must be a non-empty string")
        object.__setattr__(self, "identities", MappingProxyType(dict(self.identities)))
        if self.previous_mpid == 0:
            object.__setattr__(self, "previous_mpid", None)

    @classmethod
    def from_identity_api(
        cls, known_identities: Mapping[str, str | None], previous_mpid: int | None = None
    ) -> IdentityRequest:
        """Translate wire ``known_identities``; null values mean "not known" and are dropped."""
        identities: dict[IdentityType, str] = {}
        for name, value in known_identities.items():
            t = from_identity_api(name)
            if value is None:
                continue
            if t in identities and identities[t] != value:
                raise BadRequest(f"identity {name!r} given twice with different values")
            identities[t] = value
        return cls(identities, previous_mpid)


@dataclass(frozen=True, slots=True)
class IdentityChange:
    """One modify item. ``old_value`` None = add, ``new_value`` None = remove, both = change."""

    identity_type: IdentityType
    old_value: str | None
    new_value: str | None

    def __post_init__(self) -> None:
        if self.old_value is None and self.new_value is None:
            raise BadRequest(f"identity change for {self.identity_type} has neither value")
        if self.old_value == "" or self.new_value == "":
            raise BadRequest(f"identity change for {self.identity_type} has an empty value")


@dataclass(frozen=True, slots=True)
class ModifyRequest:
    """Body of ``/{mpid}/modify``; changes are applied in order."""

    mpid: int
    changes: tuple[IdentityChange, ...]


# --- the graph as the decision functions see it -----------------------------------------------


@dataclass(frozen=True, slots=True)
class ProfileView:
    """Read-only snapshot of one profile's identity record.

    ``identities`` maps each type to every value the profile holds (a profile can hold several
    values of a type: two devices, or two emails under best match).
    """

    mpid: int
    identities: Mapping[IdentityType, frozenset[str]]
    created_ms: int
    last_seen_ms: int

    def holds(self, identity_type: IdentityType, value: str) -> bool:
        return value in self.identities.get(identity_type, ())


class GraphView(Protocol):
    """What a decision may read. Implementations must answer from one consistent snapshot."""

    def profiles_for(self, identity_type: IdentityType, value: str) -> Sequence[ProfileView]:
        """Every profile holding this value of this type (any order)."""
        ...

    def profile(self, mpid: int) -> ProfileView | None:
        """The profile with this MPID, or None."""
        ...


# --- decisions ---------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IdentityEdit:
    """Add or remove one identity value on one existing profile."""

    mpid: int
    identity_type: IdentityType
    value: str


@dataclass(frozen=True, slots=True)
class NewProfile:
    """A profile to create; the storage layer allocates its MPID (see :func:`new_mpid`).

    ``linked_source_mpid`` is the anonymous profile a profile-link login came from ("Source").
    """

    identities: tuple[tuple[IdentityType, str], ...]
    linked_source_mpid: int | None = None


@dataclass(frozen=True, slots=True)
class ChangeResult:
    """For the modify response: profile ``modified_mpid`` had ``identity_type`` changed."""

    identity_type: IdentityType
    modified_mpid: int


@dataclass(frozen=True, slots=True)
class Decision:
    """What one request resolves to, and what must change for that.

    Exactly one of ``mpid`` (an existing profile is returned/modified) and ``new_profile`` (the
    returned profile is created) is set. Apply ``remove`` before ``add`` (a unique value moves
    off one profile before it lands on another) and the creation, in one transaction.
    ``matched_identities`` are the request identities the returned profile already held.
    """

    kind: RequestKind
    mpid: int | None
    new_profile: NewProfile | None = None
    add: tuple[IdentityEdit, ...] = ()
    remove: tuple[IdentityEdit, ...] = ()
    matched_identities: tuple[tuple[IdentityType, str], ...] = ()
    is_logged_in: bool = False
    is_ephemeral: bool = False
    change_results: tuple[ChangeResult, ...] = ()

    def __post_init__(self) -> None:
        if (self.mpid is None) == (self.new_profile is None):
            raise ValueError("a decision returns either an existing mpid or a new profile")

    @property
    def creates(self) -> bool:
        return self.new_profile is not None
