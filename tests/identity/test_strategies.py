"""The documented examples of idsync.md (§1.4, §1.6, §1.7, §4.2, §4.3) replayed as tables, and
the answers to the open questions of §11 (docs/adr/0004-identity-strategies.md) pinned down.

Profiles are named symbolically: "new P2" means the call created a profile we now call P2; "P1"
means it returned the existing P1. After every row the whole graph is compared with the running
expectation, so a row also proves that the profiles it does not mention were left alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import pytest

from opencdp.core.errors import BadRequest, Conflict, Forbidden, NotFound
from opencdp.identity import strategies
from opencdp.identity.model import (
    ChangeResult,
    Decision,
    IdentityChange,
    IdentityRequest,
    ModifyRequest,
    Strategy,
    StrategyConfig,
)
from opencdp.identity.types import IdentityType
from tests.identity.graph_sim import SimGraph, run

T = IdentityType
Pair = tuple[IdentityType, str]

ABC, ED, JEKYLL, POOLE = "ABC123", "ed.hyde@example.com", "h.jekyll.md@example.com", "poole@x.io"
IDFV, ROKU, ANDROID = "9876", "8765", "8765"
EXAMPLE_PRIORITY = (T.CUSTOMER_ID, T.EMAIL, T.IOS_IDFV, T.ROKU_ADVERTISING_ID)
BEST_MATCH_PRIORITY = (T.EMAIL, T.IOS_IDFV, T.ANDROID_UUID)


def cid(v: str) -> Pair:
    return (T.CUSTOMER_ID, v)


def email(v: str) -> Pair:
    return (T.EMAIL, v)


def idfv(v: str) -> Pair:
    return (T.IOS_IDFV, v)


def roku(v: str) -> Pair:
    return (T.ROKU_ADVERTISING_ID, v)


def android(v: str) -> Pair:
    return (T.ANDROID_UUID, v)


def req(*pairs: Pair, previous: int | None = None) -> IdentityRequest:
    return IdentityRequest(dict(pairs), previous)


def config(strategy: Strategy, **overrides: Any) -> StrategyConfig:
    return StrategyConfig.for_strategy(strategy, **overrides)


CONVERSION = config(
    Strategy.PROFILE_CONVERSION,
    login_types={T.CUSTOMER_ID, T.EMAIL},  # the example treats email as login and unique
    priority=EXAMPLE_PRIORITY,
)
DEFAULT = config(Strategy.DEFAULT, priority=EXAMPLE_PRIORITY)
LINK = config(Strategy.PROFILE_LINK, priority=EXAMPLE_PRIORITY)
ISOLATION = config(Strategy.PROFILE_ISOLATION, priority=EXAMPLE_PRIORITY)
BEST_MATCH = config(Strategy.BEST_MATCH, priority=BEST_MATCH_PRIORITY)


# --- a tiny scenario runner -------------------------------------------------------------------


Change = tuple[IdentityType, str | None, str | None]


@dataclass
class Row:
    call: str
    ids: tuple[Pair, ...]
    expect: str  # "new P2", "P1" or "not found"; for modify, the target
    after: Mapping[str, set[Pair]] = field(default_factory=dict)
    logged_in: bool | None = None
    changes: tuple[Change, ...] = ()


def modify_row(target: str, *changes: Change, after: Mapping[str, set[Pair]]) -> Row:
    return Row("modify", (), target, after, changes=changes)


@dataclass
class Scenario:
    config: StrategyConfig
    graph: SimGraph = field(default_factory=SimGraph)
    names: dict[str, int] = field(default_factory=dict)
    expected: dict[str, set[Pair]] = field(default_factory=dict)

    def seed(self, name: str, *pairs: Pair) -> None:
        ids: dict[IdentityType, set[str]] = {}
        for t, v in pairs:
            ids.setdefault(t, set()).add(v)
        self.names[name] = self.graph.seed(ids)
        self.expected[name] = set(pairs)

    def mpid(self, name: str) -> int:
        return self.names[name]

    def name_of(self, mpid: int) -> str:
        return next(n for n, m in self.names.items() if m == mpid)

    def call(self, row: Row) -> Decision | None:
        request: IdentityRequest | ModifyRequest
        if row.call == "modify":
            changes = tuple(IdentityChange(*c) for c in row.changes)
            request = ModifyRequest(self.mpid(row.expect), changes)
        else:
            request = IdentityRequest(dict(row.ids))
        before = len(self.graph.profiles)
        decision, mpid = run(self.graph, self.config, row.call, request)
        if row.expect == "not found":
            assert decision is None
        elif row.expect.startswith("new "):
            assert decision is not None and decision.creates, f"{row} did not create"
            assert mpid is not None
            self.names[row.expect.removeprefix("new ")] = mpid
        else:
            assert decision is not None and not decision.creates, f"{row} created a profile"
            assert mpid == self.mpid(row.expect), f"{row} returned {self.name_of(mpid or 0)}"
        assert len(self.graph.profiles) == before + (1 if row.expect.startswith("new ") else 0)
        if row.logged_in is not None:
            assert decision is not None and decision.is_logged_in is row.logged_in
        self.expected.update(row.after)
        self.check()
        return decision

    def check(self) -> None:
        actual = {self.name_of(m): set(ids) for m, ids in self.graph.snapshot().items()}
        assert actual == self.expected


def replay(cfg: StrategyConfig, rows: Sequence[Row]) -> Scenario:
    s = Scenario(cfg)
    for row in rows:
        s.call(row)
    return s


# --- §4.2 worked examples ----------------------------------------------------------------------

P1_KNOWN = {cid(ABC), email(ED), idfv(IDFV)}
P1_MODIFIED = {cid(ABC), email(JEKYLL), idfv(IDFV)}

# §4.2.1: profile conversion, email configured as login and unique ID.
CONVERSION_ROWS = [
    Row("identify", (idfv(IDFV),), "new P1", {"P1": {idfv(IDFV)}}, logged_in=False),
    Row("login", (cid(ABC), email(ED), idfv(IDFV)), "P1", {"P1": P1_KNOWN}, logged_in=True),
    Row("logout", (idfv(IDFV),), "new P2", {"P2": {idfv(IDFV)}}, logged_in=False),
    Row("identify", (email(JEKYLL),), "new P3", {"P3": {email(JEKYLL)}}),  # feed, no IDSync
    Row("login", (cid(ABC), email(ED), idfv(IDFV)), "P1", logged_in=True),
    modify_row("P1", (T.EMAIL, ED, JEKYLL), after={"P1": P1_MODIFIED, "P3": set()}),
    Row("identify", (roku(ROKU),), "new P4", {"P4": {roku(ROKU)}}),
    Row(
        "login",
        (cid(ABC), email(JEKYLL), roku(ROKU)),
        "P1",
        {"P1": P1_MODIFIED | {roku(ROKU)}},  # P4 keeps its Roku lookup
    ),
]

# §4.2.1 under the default strategy: customer_id is the only login and unique ID, so the feed's
# email profile stays anonymous and modify does not orphan it.
DEFAULT_ROWS = [
    *CONVERSION_ROWS[:3],
    Row("identify", (email(JEKYLL),), "new P3", {"P3": {email(JEKYLL)}}, logged_in=False),
    CONVERSION_ROWS[4],
    modify_row("P1", (T.EMAIL, ED, JEKYLL), after={"P1": P1_MODIFIED}),
    *CONVERSION_ROWS[6:],
]

# §4.2.2: profile link.
LINK_ROWS = [
    Row("identify", (idfv(IDFV),), "new P1", {"P1": {idfv(IDFV)}}),
    Row("login", (cid(ABC), email(ED), idfv(IDFV)), "new P2", {"P2": P1_KNOWN}, logged_in=True),
    Row("logout", (idfv(IDFV),), "new P3", {"P3": {idfv(IDFV)}}, logged_in=False),
    Row("identify", (email(JEKYLL),), "new P4", {"P4": {email(JEKYLL)}}, logged_in=True),
    Row("login", (cid(ABC), email(ED), idfv(IDFV)), "P2"),
    modify_row("P2", (T.EMAIL, ED, JEKYLL), after={"P2": P1_MODIFIED, "P4": set()}),
    Row("identify", (roku(ROKU),), "new P5", {"P5": {roku(ROKU)}}),
    Row("login", (cid(ABC), email(JEKYLL), roku(ROKU)), "P2", {"P2": P1_MODIFIED | {roku(ROKU)}}),
]

# §4.2.3: profile isolation.
ISOLATION_ROWS = [
    Row("identify", (idfv(IDFV),), "new P1", {"P1": {idfv(IDFV)}}),
    Row("login", (cid(ABC), email(ED), idfv(IDFV)), "new P2", {"P2": P1_KNOWN}, logged_in=True),
    Row("logout", (idfv(IDFV),), "P1", logged_in=False),
    Row("identify", (email(JEKYLL),), "new P3", {"P3": {email(JEKYLL)}}, logged_in=True),
    Row("login", (cid(ABC), email(ED), idfv(IDFV)), "P2"),
    modify_row("P2", (T.EMAIL, ED, JEKYLL), after={"P2": P1_MODIFIED, "P3": set()}),
    Row("identify", (roku(ROKU),), "new P4", {"P4": {roku(ROKU)}}),
    Row("login", (cid(ABC), email(JEKYLL), roku(ROKU)), "P2", {"P2": P1_MODIFIED | {roku(ROKU)}}),
]

# §4.2.4: best match, priority email > IDFV > Android ID.
BEST_MATCH_ROWS = [
    Row("identify", (idfv(IDFV),), "new P1", {"P1": {idfv(IDFV)}}),
    Row("identify", (email(ED), idfv(IDFV)), "P1", {"P1": {email(ED), idfv(IDFV)}}),
    modify_row("P1", (T.EMAIL, ED, JEKYLL), after={"P1": {email(JEKYLL), idfv(IDFV)}}),
    Row(
        "identify",
        (email(POOLE), idfv(IDFV)),
        "P1",
        {"P1": {email(JEKYLL), email(POOLE), idfv(IDFV)}},  # two email lookups
    ),
    Row("identify", (android(ANDROID),), "new P2", {"P2": {android(ANDROID)}}),
    Row(
        "identify",
        (android(ANDROID), email(POOLE)),
        "P1",  # the higher-priority email match wins over the Android ID match
        {"P1": {email(JEKYLL), email(POOLE), idfv(IDFV), android(ANDROID)}},
    ),
]


@pytest.mark.parametrize(
    ("cfg", "rows"),
    [
        pytest.param(CONVERSION, CONVERSION_ROWS, id="profile_conversion"),
        pytest.param(DEFAULT, DEFAULT_ROWS, id="default"),
        pytest.param(LINK, LINK_ROWS, id="profile_link"),
        pytest.param(ISOLATION, ISOLATION_ROWS, id="profile_isolation"),
        pytest.param(BEST_MATCH, BEST_MATCH_ROWS, id="best_match"),
    ],
)
def test_worked_example(cfg: StrategyConfig, rows: list[Row]) -> None:
    replay(cfg, rows)


def test_conversion_modify_reports_every_profile_it_changed() -> None:
    s = replay(CONVERSION, CONVERSION_ROWS[:5])
    decision = s.call(CONVERSION_ROWS[5])
    assert decision is not None
    assert decision.change_results == (
        ChangeResult(T.EMAIL, s.mpid("P1")),
        ChangeResult(T.EMAIL, s.mpid("P3")),
    )


# --- §4.3 anonymous -> known, per strategy -----------------------------------------------------


@pytest.mark.parametrize(
    ("cfg", "same_mpid", "linked"),
    [
        (CONVERSION, True, False),
        (DEFAULT, True, False),
        (LINK, False, True),
        (ISOLATION, False, False),
    ],
)
def test_anonymous_to_known_transition(cfg: StrategyConfig, same_mpid: bool, linked: bool) -> None:
    s = Scenario(cfg)
    s.seed("anon", idfv(IDFV))
    d = strategies.login(req(cid(ABC), idfv(IDFV)), config=cfg, graph=s.graph)
    assert d.is_logged_in
    assert (d.mpid == s.mpid("anon")) is same_mpid
    if not same_mpid:
        assert d.new_profile is not None
        source = d.new_profile.linked_source_mpid
        assert source == (s.mpid("anon") if linked else None)
        assert d.new_profile.identities == (cid(ABC), idfv(IDFV))
    else:
        assert [(e.identity_type, e.value) for e in d.add] == [cid(ABC)]
        assert d.matched_identities == (idfv(IDFV),)


def test_link_source_falls_back_to_previous_mpid() -> None:
    s = Scenario(LINK)
    s.seed("anon", idfv("other-device"))
    d = strategies.login(req(cid(ABC), previous=s.mpid("anon")), config=LINK, graph=s.graph)
    assert d.new_profile is not None and d.new_profile.linked_source_mpid == s.mpid("anon")


# --- §1.6 identity priority and tie-break --------------------------------------------------------


def priority_graph(cfg: StrategyConfig) -> Scenario:
    s = Scenario(cfg)
    s.seed("P1", email(JEKYLL), idfv("1234"), (T.OTHER, "AAAA"))
    s.seed("P2", email(JEKYLL), (T.ANDROID_ADVERTISING_ID, "2345"), (T.OTHER, "BBBB"))
    return s


@pytest.mark.parametrize(
    ("priority", "request_pairs", "expect"),
    [
        (
            (T.CUSTOMER_ID, T.EMAIL, T.OTHER, T.IOS_IDFV, T.ANDROID_ADVERTISING_ID),
            (email(JEKYLL), (T.OTHER, "AAAA"), idfv("2345")),
            "P1",
        ),
        (
            (T.CUSTOMER_ID, T.EMAIL, T.IOS_IDFV, T.ANDROID_ADVERTISING_ID),
            (email(JEKYLL), (T.ANDROID_ADVERTISING_ID, "2345")),
            "P2",
        ),
    ],
)
def test_priority_tie_break(
    priority: tuple[IdentityType, ...], request_pairs: tuple[Pair, ...], expect: str
) -> None:
    cfg = config(Strategy.BEST_MATCH, priority=priority)
    s = priority_graph(cfg)
    found = strategies.search(req(*request_pairs), config=cfg, graph=s.graph)
    assert found is not None and found.mpid == s.mpid(expect)
    assert strategies.identify(req(*request_pairs), config=cfg, graph=s.graph).mpid == s.mpid(
        expect
    )


def test_a_lower_type_pointing_elsewhere_does_not_break_a_tie() -> None:
    cfg = config(Strategy.BEST_MATCH, priority=(T.EMAIL, T.OTHER, T.IOS_IDFV))
    s = Scenario(cfg)
    s.seed("P1", email(ED), idfv("1"))
    s.seed("P2", email(ED))
    s.seed("P3", (T.OTHER, "x"))
    # email gives {P1, P2}; other=x points only to P3 and is ignored; idfv narrows to P1
    found = strategies.search(req(email(ED), (T.OTHER, "x"), idfv("1")), config=cfg, graph=s.graph)
    assert found is not None and found.mpid == s.mpid("P1")
    # without idfv the tie stays {P1, P2} and goes to the most recently seen, never to P3
    found = strategies.search(req(email(ED), (T.OTHER, "x")), config=cfg, graph=s.graph)
    assert found is not None and found.mpid == s.mpid("P2")


def test_identity_types_outside_the_priority_are_stored_but_never_matched() -> None:
    cfg = config(Strategy.BEST_MATCH, priority=(T.EMAIL,))
    s = replay(
        cfg, [Row("identify", (email(ED), idfv(IDFV)), "new P1", {"P1": {email(ED), idfv(IDFV)}})]
    )
    s.call(Row("identify", (idfv(IDFV),), "new P2", {"P2": {idfv(IDFV)}}))


# --- §1.7 login-ID protection ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("login_types", "request_pairs", "expect"),
    [
        ({T.EMAIL, T.CUSTOMER_ID}, (email("ed.hyde@example.com"),), "P1"),
        ({T.EMAIL}, (email(JEKYLL), idfv("5678")), "P2"),
        ({T.EMAIL}, (idfv("1234"),), "new P3"),
    ],
)
def test_login_id_protection(
    login_types: set[IdentityType], request_pairs: tuple[Pair, ...], expect: str
) -> None:
    cfg = config(Strategy.PROFILE_CONVERSION, login_types=login_types)
    s = Scenario(cfg)
    s.seed("P1", cid("h.jekyll.85"), email(ED), idfv("1234"))
    s.seed("P2", email(JEKYLL))
    after = {"P3": {idfv("1234")}} if expect == "new P3" else {}
    if expect == "P2":
        after = {"P2": {email(JEKYLL), idfv("5678")}}
    s.call(Row("identify", request_pairs, expect, after))


# --- §1.4 immutable IDs ------------------------------------------------------------------------

IMMUTABLE = config(
    Strategy.PROFILE_CONVERSION,
    login_types={T.CUSTOMER_ID, T.EMAIL},
    immutable_types={T.CUSTOMER_ID},
)


def immutable_graph() -> Scenario:
    s = Scenario(IMMUTABLE)
    s.seed("P1", cid("h.jekyll.85"), email(ED), idfv("1234"))
    s.seed("P2", email(JEKYLL))
    return s


@pytest.mark.parametrize(
    ("request_pairs", "expect"),
    [
        ((cid("h.jekyll.85"),), "P1"),
        ((email(JEKYLL),), "not found"),  # no immutable ID matched, though P2 holds the email
        ((cid("9101"),), "not found"),  # never seen; search never creates
    ],
)
def test_immutable_search(request_pairs: tuple[Pair, ...], expect: str) -> None:
    immutable_graph().call(Row("search", request_pairs, expect))


def test_immutable_profile_is_only_returned_with_its_immutable_id() -> None:
    s = immutable_graph()
    # email ED is P1's login ID, but P1 also holds an immutable ID the request lacks: a new
    # profile, which cannot take the (unique) email from P1 and so starts with only the device.
    s.call(Row("identify", (email(ED), idfv("1234")), "new P3", {"P3": {idfv("1234")}}))
    # identify by a profile without immutable IDs works as usual
    s.call(Row("identify", (email(JEKYLL),), "P2", logged_in=True))
    # the immutable ID itself still resolves
    s.call(Row("login", (cid("h.jekyll.85"), email(ED)), "P1"))


def test_a_different_immutable_value_makes_the_profile_ineligible() -> None:
    s = immutable_graph()
    # email ED proves P1 as a login ID, but P1's immutable customer id is not in the request
    s.call(Row("login", (cid("other"), email(ED)), "new P3", {"P3": {cid("other")}}))
    # a profile without immutable IDs takes its first one on login, and from then on needs it
    s.seed("P4", email(POOLE))
    s.call(Row("login", (email(POOLE), cid("c1")), "P4", {"P4": {email(POOLE), cid("c1")}}))
    s.call(Row("login", (email(POOLE), idfv("d")), "new P5", {"P5": {idfv("d")}}))
    s.call(Row("login", (cid("c1"),), "P4"))


def test_login_never_adds_a_second_value_of_an_immutable_type() -> None:
    both = {T.CUSTOMER_ID, T.EMAIL}
    cfg = config(Strategy.PROFILE_CONVERSION, login_types=both, immutable_types=both)
    s = Scenario(cfg)
    s.seed("P1", cid(ABC), email(ED))
    # proven by the customer id; the different email is neither added nor taken elsewhere
    s.call(
        Row(
            "login",
            (cid(ABC), email(JEKYLL), idfv(IDFV)),
            "P1",
            {"P1": {cid(ABC), email(ED), idfv(IDFV)}},
        )
    )
    s.seed("P2", cid("c2"))
    s.call(Row("login", (cid("c2"), email(POOLE)), "P2", {"P2": {cid("c2"), email(POOLE)}}))


# --- modify ------------------------------------------------------------------------------------


def modify(s: Scenario, target: str, *changes: Change) -> Decision:
    request = ModifyRequest(s.mpid(target), tuple(IdentityChange(*c) for c in changes))
    return strategies.modify(request, config=s.config, graph=s.graph)


def test_modify_unknown_mpid_is_not_found() -> None:
    with pytest.raises(NotFound, match="-42"):
        strategies.modify(ModifyRequest(-42, ()), config=CONVERSION, graph=SimGraph())


def test_modify_immutable_identity_cannot_change() -> None:
    s = immutable_graph()
    for change in [
        (T.CUSTOMER_ID, "h.jekyll.85", "new"),
        (T.CUSTOMER_ID, "h.jekyll.85", None),
        (T.CUSTOMER_ID, None, "second"),
    ]:
        with pytest.raises(BadRequest, match="immutable"):
            modify(s, "P1", change)
    # restating the held value, or a stale old value with the held new value, is fine
    assert modify(s, "P1", (T.CUSTOMER_ID, None, "h.jekyll.85")).add == ()
    assert modify(s, "P1", (T.CUSTOMER_ID, "stale", "h.jekyll.85")).remove == ()
    # setting it for the first time is allowed
    d = modify(s, "P2", (T.CUSTOMER_ID, None, "c2"))
    assert [(e.mpid, e.value) for e in d.add] == [(s.mpid("P2"), "c2")]
    # but never by taking it off another profile
    with pytest.raises(Conflict, match="immutable"):
        modify(s, "P2", (T.CUSTOMER_ID, None, "h.jekyll.85"))


def test_modify_stale_old_value_still_sets_the_new_one() -> None:
    s = Scenario(CONVERSION)
    s.seed("P1", email(ED))
    d = modify(s, "P1", (T.EMAIL, "stale@example.com", JEKYLL))
    assert d.remove == ()
    assert [(e.identity_type, e.value) for e in d.add] == [email(JEKYLL)]


def test_modify_remove_and_no_ops() -> None:
    s = Scenario(CONVERSION)
    s.seed("P1", cid(ABC), idfv(IDFV))
    d = modify(
        s,
        "P1",
        (T.CUSTOMER_ID, ABC, None),
        (T.IOS_IDFV, "not-held", None),
        (T.IOS_IDFV, IDFV, IDFV),
    )
    assert [(e.identity_type, e.value) for e in d.remove] == [cid(ABC)]
    assert d.add == () and not d.is_logged_in
    assert d.change_results == (ChangeResult(T.CUSTOMER_ID, s.mpid("P1")),)
    assert modify(s, "P1").change_results == ()  # an empty change list is accepted


def test_modify_changes_apply_in_order_and_net_out() -> None:
    s = Scenario(CONVERSION)
    s.seed("P1", email(ED))
    s.seed("P2", email(JEKYLL))
    d = modify(s, "P1", (T.EMAIL, ED, JEKYLL), (T.EMAIL, JEKYLL, POOLE))
    s.graph.apply(d)
    assert s.graph.identities(s.mpid("P1")) == {email(POOLE)}
    assert s.graph.identities(s.mpid("P2")) == set()  # orphaned by the first change
    assert {r.modified_mpid for r in d.change_results} == {s.mpid("P1"), s.mpid("P2")}


def test_modify_without_uniqueness_lets_two_profiles_share_a_value() -> None:
    s = Scenario(BEST_MATCH)
    s.seed("P1", email(ED))
    s.seed("P2", email(JEKYLL))
    s.graph.apply(modify(s, "P1", (T.EMAIL, ED, JEKYLL)))
    assert sorted(s.graph.holders(T.EMAIL, JEKYLL)) == [s.mpid("P1"), s.mpid("P2")]


def test_modify_device_identities() -> None:
    s = Scenario(CONVERSION)
    s.seed("P1", cid(ABC), (T.PUSH_TOKEN, "old"))
    d = modify(s, "P1", (T.PUSH_TOKEN, "old", "new"))
    assert d.is_logged_in and d.mpid == s.mpid("P1") and not d.creates
    assert [(e.value) for e in d.remove] == ["old"] and [e.value for e in d.add] == ["new"]


# --- attach (a batch that names its MPID) ------------------------------------------------------


def test_attach_adds_what_the_named_profile_lacks_but_never_takes_a_unique_value() -> None:
    s = Scenario(DEFAULT)
    s.seed("P1", cid("a"), email(ED), idfv(IDFV))
    s.seed("P2", cid("b"))
    request = req(cid("b"), email(POOLE), idfv(IDFV), roku(ROKU))
    d = strategies.attach(s.mpid("P1"), request, config=DEFAULT, graph=s.graph)
    assert d.mpid == s.mpid("P1") and not d.creates and d.remove == ()
    assert {(e.mpid, e.identity_type, e.value) for e in d.add} == {
        (s.mpid("P1"), T.EMAIL, POOLE),  # a second email: email is neither unique nor immutable
        (s.mpid("P1"), T.ROKU_ADVERTISING_ID, ROKU),
    }  # cid b stays on P2
    assert d.matched_identities == (idfv(IDFV),)
    with pytest.raises(NotFound):
        strategies.attach(-42, request, config=DEFAULT, graph=s.graph)


def test_attach_never_adds_a_second_value_of_an_immutable_type() -> None:
    s = immutable_graph()
    d = strategies.attach(
        s.mpid("P1"), req(cid("other"), idfv("5678")), config=IMMUTABLE, graph=s.graph
    )
    assert [(e.identity_type, e.value) for e in d.add] == [idfv("5678")]
    d = strategies.attach(s.mpid("P2"), req(cid("first")), config=IMMUTABLE, graph=s.graph)
    assert [(e.identity_type, e.value) for e in d.add] == [cid("first")]  # the first is fine


# --- §11 open questions ------------------------------------------------------------------------


def test_q1_two_login_ids_matching_two_profiles_highest_priority_wins() -> None:
    s = Scenario(LINK)
    s.seed("P1", cid(ABC))
    s.seed("P2", email(ED))
    # customer_id outranks email; the email stays with P2 (identify never moves unique values)
    d = s.call(Row("login", (cid(ABC), email(ED)), "P1"))
    assert d is not None and d.matched_identities == (cid(ABC),) and d.add == ()


def test_q1_previous_mpid_breaks_a_tie_but_is_never_a_lookup_key() -> None:
    s = Scenario(ISOLATION)
    s.seed("A", idfv(IDFV))
    s.seed("B", idfv(IDFV))  # B is more recent
    d = strategies.identify(req(idfv(IDFV)), config=ISOLATION, graph=s.graph)
    assert d.mpid == s.mpid("B")
    d = strategies.identify(req(idfv(IDFV), previous=s.mpid("A")), config=ISOLATION, graph=s.graph)
    assert d.mpid == s.mpid("A")
    d = strategies.identify(req(idfv("x"), previous=s.mpid("A")), config=ISOLATION, graph=s.graph)
    assert d.creates


def test_q1_tie_goes_to_the_most_recently_seen() -> None:
    s = Scenario(ISOLATION)
    s.seed("A", idfv(IDFV))
    s.seed("B", idfv(IDFV))
    s.graph.profiles[s.mpid("A")].last_seen_ms = 100
    assert strategies.identify(req(idfv(IDFV)), config=ISOLATION, graph=s.graph).mpid == s.mpid("A")


def test_q1_unknown_identity_keys_are_bad_requests() -> None:
    with pytest.raises(BadRequest, match="unknown identity type 'customer_id'"):
        IdentityRequest.from_identity_api({"customer_id": "1"})
    r = IdentityRequest.from_identity_api({"customerid": "1", "email": None}, previous_mpid=0)
    assert dict(r.identities) == {T.CUSTOMER_ID: "1"} and r.previous_mpid is None
    with pytest.raises(BadRequest, match="empty"):
        IdentityRequest.from_identity_api({"email": None})


@pytest.mark.parametrize("cfg", [CONVERSION, DEFAULT, LINK, ISOLATION, BEST_MATCH])
def test_q2_decisions_are_never_ephemeral(cfg: StrategyConfig) -> None:
    s = Scenario(cfg)
    for call in ("identify", "login", "logout", "identify"):
        d, _ = run(
            s.graph, cfg, call, req(cid(ABC), idfv(IDFV)) if call == "login" else req(idfv(IDFV))
        )
        assert d is not None and not d.is_ephemeral


@pytest.mark.parametrize("cfg", [CONVERSION, DEFAULT, LINK, ISOLATION, BEST_MATCH])
def test_q3_identify_with_a_new_login_id_behaves_like_login(cfg: StrategyConfig) -> None:
    s = Scenario(cfg)
    s.seed("anon", idfv(IDFV))
    request = req(cid(ABC), idfv(IDFV))
    by_identify = strategies.identify(request, config=cfg, graph=s.graph)
    by_login = strategies.login(request, config=cfg, graph=s.graph)
    assert (by_identify.mpid, by_identify.new_profile, by_identify.add) == (
        by_login.mpid,
        by_login.new_profile,
        by_login.add,
    )


def test_q4_identify_never_takes_a_unique_value_off_another_profile() -> None:
    cfg = config(
        Strategy.PROFILE_CONVERSION,
        unique_types={T.CUSTOMER_ID, T.EMAIL},
        priority=EXAMPLE_PRIORITY,
    )
    s = Scenario(cfg)
    s.seed("known", cid(ABC), email(ED))
    s.seed("anon", idfv(IDFV))
    # email is unique but not a login ID here: "known" is not eligible; "anon" is returned and
    # does not get the email, which stays where it is
    s.call(Row("identify", (email(ED), idfv(IDFV)), "anon"))
    s.call(Row("identify", (email(ED),), "new P3", {"P3": set()}))


@pytest.mark.parametrize("cfg", [CONVERSION, DEFAULT, LINK])
def test_q8_logout_always_creates_a_new_anonymous_profile(cfg: StrategyConfig) -> None:
    s = Scenario(cfg)
    s.call(Row("login", (cid(ABC), idfv(IDFV)), "new K", {"K": {cid(ABC), idfv(IDFV)}}))
    s.call(Row("logout", (idfv(IDFV),), "new A1", {"A1": {idfv(IDFV)}}, logged_in=False))
    s.call(Row("logout", (idfv(IDFV),), "new A2", {"A2": {idfv(IDFV)}}, logged_in=False))


def test_isolation_logout_without_an_anonymous_profile_creates_one() -> None:
    s = Scenario(ISOLATION)
    s.call(Row("login", (cid(ABC), idfv(IDFV)), "new K", {"K": {cid(ABC), idfv(IDFV)}}))
    s.call(Row("logout", (idfv(IDFV),), "new A", {"A": {idfv(IDFV)}}))
    s.call(Row("logout", (idfv(IDFV), roku(ROKU)), "A", {"A": {idfv(IDFV), roku(ROKU)}}))


@pytest.mark.parametrize("cfg", [CONVERSION, LINK, ISOLATION])
def test_logout_naming_a_login_id_resolves_like_identify(cfg: StrategyConfig) -> None:
    s = Scenario(cfg)
    s.seed("K", cid(ABC))
    s.call(Row("logout", (cid(ABC), idfv(IDFV)), "K", {"K": {cid(ABC), idfv(IDFV)}}))


def test_q9_best_match_login_and_logout_are_identify() -> None:
    s = replay(BEST_MATCH, BEST_MATCH_ROWS[:2])
    s.call(Row("login", (email(ED),), "P1"))
    s.call(Row("logout", (idfv(IDFV),), "P1"))
    s.call(Row("logout", (idfv("new-device"),), "new P2", {"P2": {idfv("new-device")}}))


@pytest.mark.parametrize(
    ("strategy", "allowed"),
    [
        (Strategy.DEFAULT, True),
        (Strategy.PROFILE_CONVERSION, True),
        (Strategy.PROFILE_LINK, True),
        (Strategy.PROFILE_ISOLATION, False),
        (Strategy.BEST_MATCH, False),
    ],
)
def test_q10_alias_allowed_per_strategy(strategy: Strategy, allowed: bool) -> None:
    cfg = StrategyConfig.for_strategy(strategy)
    assert cfg.alias_allowed is allowed
    if allowed:
        strategies.ensure_alias_allowed(cfg)
        cfg = StrategyConfig.for_strategy(strategy, alias_allowed=False)
    with pytest.raises(Forbidden, match="aliasing"):
        strategies.ensure_alias_allowed(cfg)


# --- search ------------------------------------------------------------------------------------


def test_search_returns_what_identify_would_without_writing() -> None:
    s = replay(CONVERSION, CONVERSION_ROWS[:3])
    before = s.graph.snapshot()
    d = strategies.search(req(cid(ABC), roku("new")), config=CONVERSION, graph=s.graph)
    assert d is not None and d.mpid == s.mpid("P1") and d.add == () and d.is_logged_in
    assert d.matched_identities == (cid(ABC),)
    # conversion would attach this unseen login ID to the device's anonymous profile
    d = strategies.search(req(cid("new"), idfv(IDFV)), config=CONVERSION, graph=s.graph)
    assert d is not None and d.mpid == s.mpid("P2") and not d.is_logged_in
    assert strategies.search(req(cid("new")), config=CONVERSION, graph=s.graph) is None
    assert s.graph.snapshot() == before


def test_search_under_link_with_an_unseen_login_id_is_not_found() -> None:
    s = replay(LINK, LINK_ROWS[:1])
    assert strategies.search(req(cid("new"), idfv(IDFV)), config=LINK, graph=s.graph) is None


# --- configuration -----------------------------------------------------------------------------


def test_strategy_defaults() -> None:
    d = StrategyConfig.for_strategy(Strategy.DEFAULT)
    assert d.login_types == d.unique_types == {T.CUSTOMER_ID}
    assert d.immutable_types == set() and d.alias_allowed
    assert d.priority[0] is T.CUSTOMER_ID and d.priority[-1] is T.DEVICE_APPLICATION_STAMP
    assert len(d.priority) == 18
    for strategy in (Strategy.PROFILE_LINK, Strategy.PROFILE_ISOLATION):
        c = StrategyConfig.for_strategy(strategy)
        assert c.login_types == c.unique_types == {T.CUSTOMER_ID, T.EMAIL}
    b = StrategyConfig.for_strategy(Strategy.BEST_MATCH)
    assert not (b.login_types or b.unique_types or b.immutable_types or b.alias_allowed)


@pytest.mark.parametrize(
    ("strategy", "overrides", "message"),
    [
        (Strategy.DEFAULT, {"login_types": {T.EMAIL}}, "fixes"),
        (Strategy.BEST_MATCH, {"unique_types": {T.EMAIL}}, "fixes"),
        (Strategy.PROFILE_CONVERSION, {"login_types": {T.IOS_IDFV}}, "device identities"),
        (Strategy.PROFILE_CONVERSION, {"login_types": {T.OTHER_ID_5}}, "priority"),
        (Strategy.PROFILE_CONVERSION, {"immutable_types": {T.EMAIL}}, "immutable"),
        (Strategy.PROFILE_LINK, {"login_types": set()}, "at least one login"),
        (Strategy.PROFILE_ISOLATION, {"alias_allowed": True}, "aliasing"),
        (Strategy.BEST_MATCH, {"alias_allowed": True}, "aliasing"),
        (Strategy.PROFILE_CONVERSION, {"priority": ()}, "priority"),
        (Strategy.PROFILE_CONVERSION, {"priority": (T.CUSTOMER_ID, T.CUSTOMER_ID)}, "priority"),
    ],
)
def test_invalid_configs(strategy: Strategy, overrides: dict[str, object], message: str) -> None:
    with pytest.raises(BadRequest, match=message):
        config(strategy, **overrides)


def test_identity_request_validation() -> None:
    with pytest.raises(BadRequest, match="empty"):
        IdentityRequest({})
    with pytest.raises(BadRequest, match="non-empty string"):
        IdentityRequest({T.EMAIL: ""})
    with pytest.raises(BadRequest, match="twice"):
        IdentityRequest.from_identity_api(
            {"facebookcustomaudienceid": "a", "facebook_custom_audience_id": "b"}
        )
    with pytest.raises(BadRequest, match="neither"):
        IdentityChange(T.EMAIL, None, None)
    with pytest.raises(BadRequest, match="empty"):
        IdentityChange(T.EMAIL, "", "x")
    source = {T.EMAIL: "a"}
    r = IdentityRequest(source)
    source[T.EMAIL] = "b"
    assert r.identities[T.EMAIL] == "a"  # the request owns a frozen copy
