"""An in-memory identity graph that replays Decisions: a model of the semantics for pure tests.

It implements GraphView for the decision functions and applies their Decisions the way the
storage layer must (removals, then additions, then the creation), checking on the way that every
edit makes sense (no adding what is there, no removing what is not). MPIDs are allocated 1, 2,
3... so tests can name them; a logical clock stamps created/last-seen times.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from opencdp.identity import strategies
from opencdp.identity.model import (
    Decision,
    IdentityRequest,
    ModifyRequest,
    ProfileView,
    RequestKind,
    StrategyConfig,
)
from opencdp.identity.types import IdentityType

Identities = frozenset[tuple[IdentityType, str]]


@dataclass
class _Profile:
    identities: dict[IdentityType, set[str]]
    created_ms: int
    last_seen_ms: int
    linked_source: int | None = None


@dataclass
class SimGraph:
    profiles: dict[int, _Profile] = field(default_factory=dict)
    _clock: int = 0
    _next_mpid: int = 1

    # --- GraphView ---

    def profiles_for(self, identity_type: IdentityType, value: str) -> list[ProfileView]:
        return [
            self._view(mpid)
            for mpid, p in self.profiles.items()
            if value in p.identities.get(identity_type, ())
        ]

    def profile(self, mpid: int) -> ProfileView | None:
        return self._view(mpid) if mpid in self.profiles else None

    def _view(self, mpid: int) -> ProfileView:
        p = self.profiles[mpid]
        ids = {t: frozenset(vs) for t, vs in p.identities.items() if vs}
        return ProfileView(mpid, ids, p.created_ms, p.last_seen_ms)

    # --- building and applying ---

    def _tick(self) -> int:
        self._clock += 1
        return self._clock

    def seed(self, identities: Mapping[IdentityType, str | Iterable[str]]) -> int:
        """Add a profile directly (the state a documented example starts from)."""
        mpid = self._next_mpid
        self._next_mpid += 1
        now = self._tick()
        ids = {t: {v} if isinstance(v, str) else set(v) for t, v in identities.items()}
        self.profiles[mpid] = _Profile(ids, now, now)
        return mpid

    def apply(self, decision: Decision) -> int:
        """Apply a decision; returns the MPID the caller gets back."""
        for e in decision.remove:
            held = self.profiles[e.mpid].identities.get(e.identity_type, set())
            assert e.value in held, f"removing {e} which is not held"
            held.discard(e.value)
        for e in decision.add:
            held = self.profiles[e.mpid].identities.setdefault(e.identity_type, set())
            assert e.value not in held, f"adding {e} which is already held"
            held.add(e.value)
        if decision.new_profile is not None:
            new = decision.new_profile
            mpid = self.seed({t: v for t, v in new.identities})
            assert len(new.identities) == len({t for t, _ in new.identities})
            self.profiles[mpid].linked_source = new.linked_source_mpid
        else:
            assert decision.mpid is not None
            mpid = decision.mpid
        if decision.kind in (RequestKind.IDENTIFY, RequestKind.LOGIN, RequestKind.LOGOUT):
            self.profiles[mpid].last_seen_ms = self._tick()
        return mpid

    # --- reading ---

    def identities(self, mpid: int) -> Identities:
        return frozenset((t, v) for t, vs in self.profiles[mpid].identities.items() for v in vs)

    def snapshot(self) -> dict[int, Identities]:
        return {mpid: self.identities(mpid) for mpid in self.profiles}

    def holders(self, identity_type: IdentityType, value: str) -> list[int]:
        return [p.mpid for p in self.profiles_for(identity_type, value)]


def run(
    graph: SimGraph,
    config: StrategyConfig,
    call: str,
    request: IdentityRequest | ModifyRequest,
) -> tuple[Decision | None, int | None]:
    """Decide one call against the graph and apply it; returns (decision, returned mpid)."""
    decision: Decision | None
    if isinstance(request, ModifyRequest):
        assert call == "modify"
        decision = strategies.modify(request, config=config, graph=graph)
    elif call == "search":
        decision = strategies.search(request, config=config, graph=graph)
    else:
        decide = {
            "identify": strategies.identify,
            "login": strategies.login,
            "logout": strategies.logout,
        }[call]
        decision = decide(request, config=config, graph=graph)
    if decision is None:
        return None, None
    return decision, graph.apply(decision)
