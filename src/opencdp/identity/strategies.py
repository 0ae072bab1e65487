"""Identity strategies as pure decision functions.

Each function reads a :class:`GraphView` snapshot and returns a :class:`Decision`; none of them
writes anything, so the storage layer can run one inside a transaction, apply the decision, and
simply retry when a unique constraint says a concurrent request got there first.

Resolution (idsync.md §3, §4.4; the choices where mParticle is silent are in
docs/adr/0004-identity-strategies.md):

1. A profile is *eligible* unless it holds a login ID (or an immutable ID) and the request carries
   none of the values it holds for those types (login-ID protection, §1.2, §1.4).
2. The request's identities are walked in priority order; the first type that matches eligible
   profiles gives the candidates, later types only narrow them (tie-break, §1.6). A tie left at
   the end goes to ``previous_mpid`` if it is a candidate, else to the most recently seen.
3. A request with login IDs first looks only at known profiles (those it can prove). Failing
   that, profile link and isolation create a new known profile; conversion, default and best
   match look at anonymous profiles, so the login ID converts the device's anonymous profile.
4. The returned profile gains the request identities it lacks, except a unique value some other
   profile holds (only modify moves unique values) and a second value of an immutable type.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Final

from opencdp.core.errors import BadRequest, Conflict, Forbidden, NotFound
from opencdp.identity.model import (
    ChangeResult,
    Decision,
    GraphView,
    IdentityChange,
    IdentityEdit,
    IdentityRequest,
    ModifyRequest,
    NewProfile,
    ProfileView,
    RequestKind,
    Strategy,
    StrategyConfig,
    format_mpid,
)
from opencdp.identity.types import IdentityType

_ORDER: Final = {t: i for i, t in enumerate(IdentityType)}
# Strategies where a login ID nobody holds starts a new known profile instead of converting.
_NEW_PROFILE_ON_LOGIN: Final = frozenset({Strategy.PROFILE_LINK, Strategy.PROFILE_ISOLATION})

Filter = Callable[[ProfileView], bool]
Pairs = tuple[tuple[IdentityType, str], ...]


# --- public decisions --------------------------------------------------------------------------


def identify(request: IdentityRequest, *, config: StrategyConfig, graph: GraphView) -> Decision:
    """Resolve the request to one profile, creating it when nothing eligible matches.

    Identify and login resolve identically under every strategy: SDKs send identify at start-up
    with whatever login IDs they hold, and answering it differently from login would hand the
    same user two MPIDs depending on which call came first.
    """
    return _resolve_or_create(RequestKind.IDENTIFY, request, config, graph)


def login(request: IdentityRequest, *, config: StrategyConfig, graph: GraphView) -> Decision:
    """Like :func:`identify` (see there); under best match login is plain identify."""
    return _resolve_or_create(RequestKind.LOGIN, request, config, graph)


def logout(request: IdentityRequest, *, config: StrategyConfig, graph: GraphView) -> Decision:
    """Move the device to an anonymous profile.

    A logout normally carries device identities only. Profile isolation returns to the device's
    existing anonymous profile (a new one only if there is none); conversion, default and link
    always create a new anonymous profile. A logout that names login IDs names the profile to
    transition to (HTTP doc), so it resolves like identify, as does every logout under best
    match, which has no logout semantics.
    """
    kind = RequestKind.LOGOUT
    if config.strategy is Strategy.BEST_MATCH or _has_login_id(request, config):
        return _resolve_or_create(kind, request, config, graph)
    if config.strategy is Strategy.PROFILE_ISOLATION:
        found = _walk(request, config, graph, _anonymous(config))
        if found is not None:
            return _existing(kind, found, request, config, graph)
    return _create(kind, request, config, graph, linked_source=None)


def search(
    request: IdentityRequest, *, config: StrategyConfig, graph: GraphView
) -> Decision | None:
    """The existing profile identify would return, or None ("not found"); never writes.

    With immutable IDs configured a search matches through them alone: a search by any other
    identifier is not found, as mParticle's one documented example shows (idsync.md §1.4).
    """
    if config.immutable_types:
        found = _walk(request, config, graph, _eligible(request, config), config.immutable_types)
    else:
        found = _resolve(request, config, graph)
    if found is None:
        return None
    return Decision(
        kind=RequestKind.SEARCH,
        mpid=found.mpid,
        matched_identities=_matched(found, request),
        is_logged_in=config.is_known(found.identities),
    )


def modify(request: ModifyRequest, *, config: StrategyConfig, graph: GraphView) -> Decision:
    """Apply identity changes, in order, to an existing profile; never creates or switches.

    Setting a unique value takes it off every other profile (which may orphan it). An immutable
    type cannot change once set: changing or removing it, or adding a second value, is a
    BadRequest; taking an immutable value off another profile is a Conflict. A stale
    ``old_value`` (one the profile does not hold) removes nothing, and the new value is still
    set: clients compute ``old_value`` from their own possibly outdated copy.
    """
    target = graph.profile(request.mpid)
    if target is None:
        raise NotFound(f"no profile has mpid {format_mpid(request.mpid)}")
    draft = _Draft(graph)
    draft.load(target)
    for change in request.changes:
        _apply_change(change, target.mpid, config, draft)
    add, remove = draft.edits()
    return Decision(
        kind=RequestKind.MODIFY,
        mpid=target.mpid,
        add=add,
        remove=remove,
        is_logged_in=config.is_known(draft.identities(target.mpid)),
        change_results=_change_results(target.mpid, add + remove),
    )


def attach(
    mpid: int, request: IdentityRequest, *, config: StrategyConfig, graph: GraphView
) -> Decision:
    """Give profile ``mpid`` the request identities it lacks, by identify's rule 4.

    For batches that name their MPID: the MPID is the answer, so nothing is resolved, but the
    identities the batch carries are added the way identify adds them to the profile it
    returns. A unique value another profile holds is left where it is (only modify moves
    unique values), and an immutable type never gets a second value.
    """
    profile = graph.profile(mpid)
    if profile is None:
        raise NotFound(f"no profile has mpid {format_mpid(mpid)}")
    return _existing(RequestKind.IDENTIFY, profile, request, config, graph)


def ensure_alias_allowed(config: StrategyConfig) -> None:
    """Refuse aliasing where the strategy (isolation, best match) or the workspace forbids it."""
    if not config.alias_allowed:
        raise Forbidden(f"aliasing is not available for this workspace ({config.strategy})")


# --- resolution --------------------------------------------------------------------------------


def _resolve_or_create(
    kind: RequestKind, request: IdentityRequest, config: StrategyConfig, graph: GraphView
) -> Decision:
    found = _resolve(request, config, graph)
    if found is not None:
        return _existing(kind, found, request, config, graph)
    linked = None
    if config.strategy is Strategy.PROFILE_LINK and _has_login_id(request, config):
        linked = _link_source(request, config, graph)
    return _create(kind, request, config, graph, linked)


def _resolve(
    request: IdentityRequest, config: StrategyConfig, graph: GraphView
) -> ProfileView | None:
    if _has_login_id(request, config):
        eligible = _eligible(request, config)
        known = _walk(
            request, config, graph, lambda p: config.is_known(p.identities) and eligible(p)
        )
        if known is not None or config.strategy in _NEW_PROFILE_ON_LOGIN:
            return known
    return _walk(request, config, graph, _anonymous(config))


def _walk(
    request: IdentityRequest,
    config: StrategyConfig,
    graph: GraphView,
    allowed: Filter,
    only: frozenset[IdentityType] | None = None,
) -> ProfileView | None:
    """Priority walk: the first matching type picks candidates, later ones may narrow them."""
    candidates: dict[int, ProfileView] = {}
    for t in config.priority:
        value = request.identities.get(t)
        if value is None or (only is not None and t not in only):
            continue
        matched = {p.mpid: p for p in graph.profiles_for(t, value) if allowed(p)}
        narrowed = {m: p for m, p in candidates.items() if m in matched} if candidates else matched
        if narrowed:  # a type pointing only elsewhere cannot break the tie
            candidates = narrowed
        if len(candidates) == 1:
            break
    if not candidates:
        return None
    if request.previous_mpid in candidates:
        return candidates[request.previous_mpid]
    return max(candidates.values(), key=lambda p: (p.last_seen_ms, p.created_ms, p.mpid))


def _eligible(request: IdentityRequest, config: StrategyConfig) -> Filter:
    """Login-ID and immutable-ID protection (idsync.md §1.2, §1.4)."""

    def proves(p: ProfileView, types: frozenset[IdentityType]) -> bool:
        held = [t for t in types if p.identities.get(t)]
        ids = request.identities
        return not held or any(t in ids and p.holds(t, ids[t]) for t in held)

    return lambda p: proves(p, config.login_types) and proves(p, config.immutable_types)


def _anonymous(config: StrategyConfig) -> Filter:
    return lambda p: not config.is_known(p.identities)


def _has_login_id(request: IdentityRequest, config: StrategyConfig) -> bool:
    return any(t in request.identities for t in config.login_types)


def _link_source(request: IdentityRequest, config: StrategyConfig, graph: GraphView) -> int | None:
    """The anonymous profile a profile-link login leaves: the device's, else previous_mpid's."""
    source = _walk(request, config, graph, _anonymous(config))
    if source is not None:
        return source.mpid
    if request.previous_mpid is not None:
        previous = graph.profile(request.previous_mpid)
        if previous is not None and not config.is_known(previous.identities):
            return previous.mpid
    return None


# --- building decisions ------------------------------------------------------------------------


def _existing(
    kind: RequestKind,
    profile: ProfileView,
    request: IdentityRequest,
    config: StrategyConfig,
    graph: GraphView,
) -> Decision:
    add = tuple(
        IdentityEdit(profile.mpid, t, v)
        for t, v in _pairs(request)
        if not profile.holds(t, v) and _assignable(t, v, profile, config, graph)
    )
    return Decision(
        kind=kind,
        mpid=profile.mpid,
        add=add,
        matched_identities=_matched(profile, request),
        is_logged_in=config.is_known(profile.identities)
        or any(e.identity_type in config.login_types for e in add),
    )


def _create(
    kind: RequestKind,
    request: IdentityRequest,
    config: StrategyConfig,
    graph: GraphView,
    linked_source: int | None,
) -> Decision:
    """A new profile with every request identity it may take (possibly none of them)."""
    ids = tuple((t, v) for t, v in _pairs(request) if _assignable(t, v, None, config, graph))
    return Decision(
        kind=kind,
        mpid=None,
        new_profile=NewProfile(ids, linked_source),
        is_logged_in=config.is_known({t: (v,) for t, v in ids}),
    )


def _assignable(
    t: IdentityType, v: str, owner: ProfileView | None, config: StrategyConfig, graph: GraphView
) -> bool:
    """May identify/login/logout put value ``v`` of type ``t`` on ``owner`` (None = new)?"""
    if t in config.immutable_types and owner is not None and owner.identities.get(t):
        return False
    if t in config.unique_types:
        owner_mpid = None if owner is None else owner.mpid
        return all(p.mpid == owner_mpid for p in graph.profiles_for(t, v))
    return True


def _pairs(request: IdentityRequest) -> Pairs:
    return tuple(sorted(request.identities.items(), key=lambda tv: _ORDER[tv[0]]))


def _matched(profile: ProfileView, request: IdentityRequest) -> Pairs:
    return tuple((t, v) for t, v in _pairs(request) if profile.holds(t, v))


# --- modify ------------------------------------------------------------------------------------


class _Draft:
    """Working copy of the profiles a modify touches, diffed against the snapshot at the end."""

    def __init__(self, graph: GraphView) -> None:
        self._graph = graph
        self._before: dict[int, Mapping[IdentityType, frozenset[str]]] = {}
        self._now: dict[int, dict[IdentityType, set[str]]] = {}

    def load(self, profile: ProfileView) -> None:
        if profile.mpid not in self._now:
            self._before[profile.mpid] = profile.identities
            self._now[profile.mpid] = {t: set(vs) for t, vs in profile.identities.items()}

    def identities(self, mpid: int) -> Mapping[IdentityType, set[str]]:
        return self._now[mpid]

    def values(self, mpid: int, t: IdentityType) -> set[str]:
        return self._now[mpid].setdefault(t, set())

    def holders(self, t: IdentityType, v: str) -> list[int]:
        for p in self._graph.profiles_for(t, v):
            self.load(p)
        return [mpid for mpid, ids in self._now.items() if v in ids.get(t, ())]

    def edits(self) -> tuple[tuple[IdentityEdit, ...], tuple[IdentityEdit, ...]]:
        add: list[IdentityEdit] = []
        remove: list[IdentityEdit] = []
        for mpid, now in self._now.items():
            before = self._before[mpid]
            for t in sorted(now.keys() | before.keys(), key=_ORDER.__getitem__):
                new, old = now.get(t, set()), before.get(t, frozenset())
                add += (IdentityEdit(mpid, t, v) for v in sorted(new - old))
                remove += (IdentityEdit(mpid, t, v) for v in sorted(old - new))
        return tuple(add), tuple(remove)


def _apply_change(change: IdentityChange, mpid: int, config: StrategyConfig, draft: _Draft) -> None:
    t, old, new = change.identity_type, change.old_value, change.new_value
    held = draft.values(mpid, t)
    drop = old if old is not None and old != new and old in held else None
    if (
        t in config.immutable_types
        and held
        and (drop is not None or (new is not None and new not in held))
    ):
        raise BadRequest(f"{t} is immutable and already set on mpid {format_mpid(mpid)}")
    if drop is not None:
        held.discard(drop)
    if new is None:
        return
    if t in config.unique_types:
        for other in draft.holders(t, new):
            if other == mpid:
                continue
            if t in config.immutable_types:
                raise Conflict(f"{t} {new!r} is the immutable identity of another profile")
            draft.values(other, t).discard(new)
    held.add(new)


def _change_results(target: int, edits: tuple[IdentityEdit, ...]) -> tuple[ChangeResult, ...]:
    """One entry per (profile, type) that changed: the modified profile first, then the others."""
    keys = sorted(
        {(e.mpid, e.identity_type) for e in edits},
        key=lambda k: (k[0] != target, k[0], _ORDER[k[1]]),
    )
    return tuple(ChangeResult(identity_type=t, modified_mpid=m) for m, t in keys)
