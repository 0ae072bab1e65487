"""Properties of every strategy over random call sequences, replayed on the in-memory graph.

After each call: a search never writes or creates; a modify never creates or switches MPID; a
unique value is held by at most one profile; a known profile is only returned to a request that
proves it (login and immutable IDs); decisions neither mutate the graph nor depend on anything but
it; and once a profile holds a set of login identities, a request with exactly that set keeps
resolving to it (until a modify rearranges identities).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from opencdp.core.errors import BadRequest, Conflict
from opencdp.identity import strategies
from opencdp.identity.model import (
    Decision,
    IdentityChange,
    IdentityRequest,
    ModifyRequest,
    RequestKind,
    Strategy,
    StrategyConfig,
)
from opencdp.identity.types import IdentityType
from tests.identity.graph_sim import SimGraph

T = IdentityType
Pairs = frozenset[tuple[IdentityType, str]]

PRIORITY = (T.CUSTOMER_ID, T.EMAIL, T.OTHER, T.IOS_IDFV, T.ANDROID_UUID)
TYPES = (*PRIORITY, T.PUSH_TOKEN)  # push_token: stored, never matched
VALUES = ("a", "b", "c")


def _config(strategy: Strategy, **overrides: Any) -> StrategyConfig:
    return StrategyConfig.for_strategy(strategy, priority=PRIORITY, **overrides)


CID_EMAIL = {T.CUSTOMER_ID, T.EMAIL}
CONFIGS = {
    "default": _config(Strategy.DEFAULT),
    "conversion": _config(Strategy.PROFILE_CONVERSION, login_types=CID_EMAIL),
    "conversion-unique-email": _config(Strategy.PROFILE_CONVERSION, unique_types=CID_EMAIL),
    "conversion-immutable": _config(
        Strategy.PROFILE_CONVERSION, login_types=CID_EMAIL, immutable_types={T.CUSTOMER_ID}
    ),
    "link": _config(Strategy.PROFILE_LINK),
    "isolation": _config(Strategy.PROFILE_ISOLATION),
    "isolation-immutable": _config(
        Strategy.PROFILE_ISOLATION, immutable_types={T.CUSTOMER_ID, T.EMAIL}
    ),
    "best-match": _config(Strategy.BEST_MATCH),
}

identities = st.dictionaries(
    st.sampled_from(TYPES), st.sampled_from(VALUES), min_size=1, max_size=4
)
maybe_value = st.none() | st.sampled_from(VALUES)
change = st.tuples(st.sampled_from(TYPES), maybe_value, maybe_value).filter(
    lambda c: c[1] is not None or c[2] is not None
)
call_op = st.tuples(
    st.sampled_from(["identify", "login", "logout", "search"]),
    identities,
    st.none() | st.integers(0, 7),  # previous_mpid, as an index into existing profiles
)
modify_op = st.tuples(st.just("modify"), st.integers(0, 7), st.lists(change, max_size=3))
operations = st.lists(st.one_of(call_op, modify_op), min_size=1, max_size=25)


@dataclass
class Checker:
    config: StrategyConfig
    graph: SimGraph = field(default_factory=SimGraph)
    owners: dict[Pairs, int] = field(default_factory=dict)  # login-identity set -> its profile

    def existing(self, index: int | None) -> int | None:
        mpids = sorted(self.graph.profiles)
        return None if index is None or not mpids else mpids[index % len(mpids)]

    def decide(self, op: tuple[Any, ...]) -> Decision | None:
        name, arg, extra = op
        if name == "modify":
            target = self.existing(arg)
            if target is None:
                return None
            changes = tuple(IdentityChange(*c) for c in extra)
            return strategies.modify(
                ModifyRequest(target, changes), config=self.config, graph=self.graph
            )
        request = IdentityRequest(arg, self.existing(extra))
        decide = getattr(strategies, name)
        result: Decision | None = decide(request, config=self.config, graph=self.graph)
        return result

    def step(self, op: tuple[Any, ...]) -> None:
        before = self.graph.snapshot()
        try:
            decision = self.decide(op)
        except (BadRequest, Conflict) as exc:
            assert self.config.immutable_types, f"only immutable IDs refuse a modify: {exc}"
            assert op[0] == "modify" and "immutable" in exc.message
            assert self.graph.snapshot() == before
            return
        assert self.graph.snapshot() == before, "deciding must not mutate the graph"
        assert self.decide(op) == decision, "decisions depend on the graph only"
        if op[0] == "modify":
            self.check_modify(op, decision, before)
        elif op[0] == "search":
            self.check_search(op, decision, before)
        else:
            self.check_resolution(op, decision, before)
        self.check_unique()

    def check_modify(
        self, op: tuple[Any, ...], d: Decision | None, before: dict[int, Pairs]
    ) -> None:
        if d is None:
            return
        target = self.existing(op[1])
        assert d.mpid == target and not d.creates
        assert all(e.mpid == target for e in d.add)
        new_values = {(t, new) for t, _, new in op[2]}
        for e in d.remove:
            if e.mpid != target:  # only a unique value set on the target leaves another profile
                assert e.identity_type in self.config.unique_types
                assert (e.identity_type, e.value) in new_values
        assert self.graph.apply(d) == target
        assert set(self.graph.profiles) == set(before)
        self.owners.clear()  # modify may legitimately rearrange who owns which login IDs

    def check_search(
        self, op: tuple[Any, ...], d: Decision | None, before: dict[int, Pairs]
    ) -> None:
        immutable = self.config.immutable_types
        if not immutable or any(t in immutable for t in op[1]):  # else only immutables match
            self.check_stable(op[1], d)
        if d is not None:
            assert not d.creates and not d.add and not d.remove and d.mpid in before
            self.graph.apply(d)
        assert self.graph.snapshot() == before, "search never writes"

    def check_resolution(
        self, op: tuple[Any, ...], d: Decision | None, before: dict[int, Pairs]
    ) -> None:
        assert d is not None
        request: Pairs = frozenset(op[1].items())
        self.check_stable(op[1], d)
        if d.creates:
            assert d.new_profile is not None
            assert set(d.new_profile.identities) <= request and not d.matched_identities
        else:
            assert d.mpid is not None
            held = before[d.mpid]
            assert set(d.matched_identities) == request & held
            for types in (self.config.login_types, self.config.immutable_types):
                if any(t in types for t, _ in held):  # protected: the request must prove it
                    assert any(t in types for t, _ in request & held), "protection violated"
        mpid = self.graph.apply(d)
        assert mpid != 0
        after = self.graph.identities(mpid)
        assert d.is_logged_in == any(t in self.config.login_types for t, _ in after)
        login = self.login_set(op[1])
        if login and login <= after:
            self.owners[login] = mpid

    def login_set(self, ids: dict[IdentityType, str]) -> Pairs:
        return frozenset((t, v) for t, v in ids.items() if t in self.config.login_types)

    def check_stable(self, ids: dict[IdentityType, str], d: Decision | None) -> None:
        login = self.login_set(ids)
        owner = self.owners.get(login)
        if owner is None:
            return
        held = self.graph.identities(owner)
        immutable = {(t, v) for t, v in held if t in self.config.immutable_types}
        if login <= held and (not immutable or immutable & login):
            assert d is not None and d.mpid == owner, "login identities moved to another MPID"

    def check_unique(self) -> None:
        seen: set[tuple[IdentityType, str]] = set()
        for ids in self.graph.snapshot().values():
            for pair in ids:
                if pair[0] in self.config.unique_types:
                    assert pair not in seen, f"unique {pair} held by two profiles"
                    seen.add(pair)


@pytest.mark.parametrize("name", CONFIGS)
@settings(max_examples=150, deadline=None)
@given(ops=operations)
def test_strategy_properties(name: str, ops: list[tuple[Any, ...]]) -> None:
    checker = Checker(CONFIGS[name])
    for op in ops:
        checker.step(op)


@pytest.mark.parametrize("name", ["default", "conversion", "link"])
@settings(max_examples=50, deadline=None)
@given(ops=operations, device=identities)
def test_logout_without_login_ids_always_creates(
    name: str, ops: list[tuple[Any, ...]], device: dict[IdentityType, str]
) -> None:
    checker = Checker(CONFIGS[name])
    for op in ops:
        checker.step(op)
    anonymous = {t: v for t, v in device.items() if t not in checker.config.login_types}
    if anonymous:
        d = strategies.logout(
            IdentityRequest(anonymous), config=checker.config, graph=checker.graph
        )
        assert d.creates and d.kind is RequestKind.LOGOUT and not d.is_logged_in
