"""IDSync use cases: run a pure strategy decision against the graph and apply it atomically.

Reads are optimistic: most identify calls find an existing profile that already holds every
identity, so the decision is made in a read transaction and nothing is written. Only when the
decision changes the graph is it made again inside a write transaction (on PostgreSQL after
advisory locks on the request's identity values) and applied there; a unique-claim collision
with a concurrent request rolls back and retries against the winner's state.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, NamedTuple, Protocol, TypeVar

from sqlalchemy.engine import Connection
from sqlalchemy.exc import IntegrityError

from opencdp.core.clock import Clock
from opencdp.core.db import Database, WriterBusy
from opencdp.core.errors import BadRequest, NotFound, Unavailable
from opencdp.core.inline_writes import InlineWriter
from opencdp.core.sql import RawRead, savepoint
from opencdp.events import service as events_service
from opencdp.identity import store, strategies
from opencdp.identity.model import (
    ChangeResult,
    Decision,
    GraphView,
    IdentityRequest,
    ModifyRequest,
    Strategy,
    StrategyConfig,
    format_mpid,
    new_mpid,
)
from opencdp.identity.types import IdentityType, from_identity_api
from opencdp.tenancy.service import TenancyService

logger = logging.getLogger(__name__)

_TOUCH_AFTER_MS = 60 * 60 * 1000  # activity is kept to the hour on reads
_RETRIES = 8
_COLLIDING = "identity resolution kept colliding with concurrent requests; retry"
ALIAS_MAX_WINDOW_MS = 90 * 24 * 3600 * 1000

T = TypeVar("T")
Decide = Callable[[GraphView], Decision | None]


class Strategic(Protocol):
    """identify, login or logout from opencdp.identity.strategies."""

    def __call__(
        self, request: IdentityRequest, *, config: StrategyConfig, graph: GraphView
    ) -> Decision: ...


@dataclass(frozen=True)
class IdentityResult:
    mpid: int
    is_ephemeral: bool
    is_logged_in: bool
    matched_identities: tuple[tuple[IdentityType, str], ...]
    change_results: tuple[ChangeResult, ...]
    created: bool = False


@dataclass(frozen=True)
class ProfileIdentities:
    """What the Profile API needs from the graph about one profile."""

    mpid: int
    created_ms: int
    last_seen_ms: int
    identities: tuple[tuple[IdentityType, str], ...]


def strategy_config(settings: dict[str, Any]) -> StrategyConfig:
    """A workspace's strategy from its settings (``settings["identity"]``); default if unset."""
    raw = settings.get("identity") or {}
    strategy = Strategy(raw.get("strategy", Strategy.DEFAULT.value))

    def types(key: str) -> list[IdentityType] | None:
        names = raw.get(key)
        return None if names is None else [from_identity_api(n) for n in names]

    return StrategyConfig.for_strategy(
        strategy,
        login_types=types("login_identities"),
        unique_types=types("unique_identities"),
        immutable_types=types("immutable_identities"),
        priority=types("identity_priority"),
        alias_allowed=raw.get("alias_allowed"),
    )


class _Plan(NamedTuple):
    """What an IDSync write needs: ``_write``'s and ``_decide_and_apply``'s first arguments."""

    workspace_id: int
    config: StrategyConfig
    keys: list[tuple[str, str]]
    decide: Decide


class PendingWrite:
    """An IDSync answer that needs a write: ``then(on_done)`` starts it, and ``on_done`` gets
    the ``IdentityResult`` (or the exception) on the event loop once it is durable, straight
    from the commit's completion (``api/raw.py Later``)."""

    __slots__ = ("then",)

    def __init__(
        self, then: Callable[[Callable[[IdentityResult | BaseException], None]], None]
    ) -> None:
        self.then = then


class IdentityService:
    def __init__(self, *, db: Database, clock: Clock, tenancy: TenancyService) -> None:
        self._db = db
        self._clock = clock
        self._tenancy = tenancy
        self._configs: dict[int, tuple[object, StrategyConfig]] = {}
        self._inline = InlineWriter(db)

    def config_for(self, workspace_id: int) -> StrategyConfig:
        """The workspace's strategy, rebuilt only when the (cached) workspace changes."""
        ws = self._tenancy.workspace(workspace_id)
        hit = self._configs.get(workspace_id)
        if hit is not None and hit[0] is ws:
            return hit[1]
        config = strategy_config(ws.settings)
        self._configs[workspace_id] = (ws, config)
        return config

    def configure(self, workspace_id: int, raw: dict[str, Any]) -> StrategyConfig:
        """Validate and store a workspace's identity strategy (``settings["identity"]``)."""
        config = strategy_config({"identity": raw})
        self._tenancy.update_workspace_settings(workspace_id, {"identity": raw})
        return config

    # -- the IDSync calls ------------------------------------------------------------------
    def _decider(self, strategy: Strategic, workspace_id: int, request: IdentityRequest) -> Decide:
        config = self.config_for(workspace_id)
        return lambda g: strategy(request, config=config, graph=g)

    def identify(self, workspace_id: int, request: IdentityRequest) -> IdentityResult:
        return self._run(workspace_id, request, strategies.identify)

    def login(self, workspace_id: int, request: IdentityRequest) -> IdentityResult:
        return self._run(workspace_id, request, strategies.login)

    def logout(self, workspace_id: int, request: IdentityRequest) -> IdentityResult:
        return self._run(workspace_id, request, strategies.logout)

    # -- the same, for an event loop (the IDSync HTTP handlers) ------------------------------
    async def identify_async(self, workspace_id: int, request: IdentityRequest) -> IdentityResult:
        return await self._run_async(workspace_id, request, strategies.identify)

    async def login_async(self, workspace_id: int, request: IdentityRequest) -> IdentityResult:
        return await self._run_async(workspace_id, request, strategies.login)

    async def logout_async(self, workspace_id: int, request: IdentityRequest) -> IdentityResult:
        return await self._run_async(workspace_id, request, strategies.logout)

    def identify_now(
        self, workspace_id: int, request: IdentityRequest
    ) -> IdentityResult | PendingWrite:
        """For an event loop: the answer, or the write that will give it (``PendingWrite``)."""
        return self._now(workspace_id, request, strategies.identify)

    def login_now(
        self, workspace_id: int, request: IdentityRequest
    ) -> IdentityResult | PendingWrite:
        return self._now(workspace_id, request, strategies.login)

    def logout_now(
        self, workspace_id: int, request: IdentityRequest
    ) -> IdentityResult | PendingWrite:
        return self._now(workspace_id, request, strategies.logout)

    async def search_async(self, workspace_id: int, request: IdentityRequest) -> IdentityResult:
        """Read-only, so it runs inline."""
        return self.search(workspace_id, request)

    def search(self, workspace_id: int, request: IdentityRequest) -> IdentityResult:
        """Never creates or changes anything."""
        config = self.config_for(workspace_id)
        decision = self._db.read_raw(
            lambda r: strategies.search(
                request, config=config, graph=store.StoreGraph(r, workspace_id)
            )
        )
        if decision is None or decision.mpid is None:
            raise NotFound("no profile matches the given identities")
        return _result(decision, decision.mpid)

    def modify(self, workspace_id: int, request: ModifyRequest) -> IdentityResult:
        config = self.config_for(workspace_id)
        return self._write(
            workspace_id,
            config,
            _change_keys(request),
            lambda g: strategies.modify(request, config=config, graph=g),
        )

    def alias(
        self,
        workspace_id: int,
        *,
        source_mpid: int,
        destination_mpid: int,
        start_ms: int,
        end_ms: int,
    ) -> None:
        """Copy the source's events in the window to the destination (idsync.md §7.1).

        Malformed requests are refused at once (400); the three "previous alias" rules are, as
        documented, applied silently: such a request is accepted and recorded, nothing copied.
        """
        config = self.config_for(workspace_id)
        strategies.ensure_alias_allowed(config)
        if source_mpid == 0 or destination_mpid == 0:
            raise BadRequest("source_mpid and destination_mpid are required and must not be 0")
        if source_mpid == destination_mpid:
            raise BadRequest("source_mpid and destination_mpid must differ")
        if start_ms > end_ms:
            raise BadRequest("invalid time range: start_unixtime_ms is after end_unixtime_ms")
        now = self._clock.now_ms()
        start_ms = max(start_ms, end_ms - ALIAS_MAX_WINDOW_MS)
        with self._db.write() as tx:
            source = store.load_profile(tx, workspace_id, source_mpid)
            dest = store.load_profile(tx, workspace_id, destination_mpid)
            if source is None or dest is None:
                raise BadRequest("source or destination MPID does not exist")
            allowed = store.alias_allowed(
                tx, workspace_id, source_mpid, destination_mpid, start_ms, end_ms
            )
            store.insert_alias(
                tx,
                workspace_id=workspace_id,
                source_mpid=source_mpid,
                destination_mpid=destination_mpid,
                start_ms=start_ms,
                end_ms=end_ms,
                now_ms=now,
                applied=allowed,
            )
            if not allowed:
                logger.info("identity.alias_skipped", extra={"workspace_id": workspace_id})
                return
            events_service.copy_to_profile(
                tx,
                workspace_id=workspace_id,
                source_mpid=source_mpid,
                destination_mpid=destination_mpid,
                start_ms=start_ms,
                end_ms=end_ms,
            )
            if source.created_ms < dest.created_ms:
                store.set_created(tx, workspace_id, destination_mpid, source.created_ms)

    # -- reads for other slices ------------------------------------------------------------
    def profile(self, workspace_id: int, mpid: int) -> ProfileIdentities | None:
        with self._db.read() as conn:
            return self.profile_in(conn, workspace_id, mpid)

    def profile_in(
        self, conn: Connection, workspace_id: int, mpid: int
    ) -> ProfileIdentities | None:
        """:meth:`profile` inside the caller's read transaction (one snapshot, one checkout)."""
        view = store.load_profile(conn, workspace_id, mpid)
        if view is None:
            return None
        pairs = tuple(sorted((t, v) for t, vs in view.identities.items() for v in vs))
        return ProfileIdentities(mpid, view.created_ms, view.last_seen_ms, pairs)

    def resolve(self, workspace_id: int, identity_type: IdentityType, value: str) -> int | None:
        """The one profile holding an identity value, or None (none, or ambiguous)."""
        with self._db.read() as conn:
            mpids = store.mpids_for(conn, workspace_id, identity_type.value, value)
        return mpids[0] if len(mpids) == 1 else None

    # -- the pipeline ----------------------------------------------------------------------
    def resolve_in(
        self, tx: Connection, workspace_id: int, request: IdentityRequest, now_ms: int
    ) -> int:
        """Identify inside the worker's transaction (one savepoint, retried on a collision)."""
        config = self.config_for(workspace_id)

        def step(graph: store.StoreGraph) -> int:
            decision = strategies.identify(request, config=config, graph=graph)
            return self._apply(tx, workspace_id, config, decision, now_ms)

        return self._locked_in(tx, workspace_id, _keys(request), step, "identity resolution")

    def _locked_in(
        self,
        tx: Connection,
        workspace_id: int,
        keys: list[tuple[str, str]],
        step: Callable[[store.StoreGraph], T],
        what: str,
    ) -> T:
        """``step`` on the graph inside the worker's transaction, in a savepoint holding the
        identities' locks; run again when a concurrent worker or the expiry sweep got there
        first (a unique claim taken, a profile gone), Unavailable after ``_RETRIES``."""
        for _ in range(_RETRIES):
            try:
                with savepoint(tx):
                    store.lock_identities(tx, workspace_id, keys)
                    return step(store.StoreGraph(tx, workspace_id))
            except (IntegrityError, _ProfileGone):
                continue
        raise Unavailable(f"{what} kept colliding; will retry")

    def modify_in(
        self, tx: Connection, workspace_id: int, request: ModifyRequest, now_ms: int
    ) -> None:
        """Apply ``user_identity_change`` events inside the worker's transaction."""
        config = self.config_for(workspace_id)

        def step(graph: store.StoreGraph) -> None:
            decision = strategies.modify(request, config=config, graph=graph)
            self._apply(tx, workspace_id, config, decision, now_ms)

        self._locked_in(tx, workspace_id, _change_keys(request), step, "identity change")

    def ensure_profile_in(self, tx: Connection, workspace_id: int, mpid: int, now_ms: int) -> bool:
        """A batch that names its MPID goes to that profile; create it if it is new to us.

        Returns False when the MPID belongs to another workspace (the batch is then not
        attached to any profile). Activity is recorded to the hour, as on reads. A profile the
        expiry sweep deletes while we look (the touch finds no row) is created afresh: the
        batch is new activity, and the sweep removed the old profile's data with it.
        """
        seen = store.last_seen(tx, workspace_id, mpid)
        if seen is not None:
            if now_ms - seen < _TOUCH_AFTER_MS or store.touch(tx, workspace_id, [mpid], now_ms):
                return True
        elif store.mpid_taken(tx, mpid):
            return False
        store.insert_profile(tx, workspace_id=workspace_id, mpid=mpid, now_ms=now_ms)
        return True

    def attach_in(
        self,
        tx: Connection,
        workspace_id: int,
        mpid: int,
        identities: Mapping[IdentityType, str],
        now_ms: int,
    ) -> tuple[IdentityType, ...]:
        """Add the identities a batch carries to the existing profile it names, inside the
        worker's transaction; returns the types refused (logged, never an error).

        A batch naming its MPID is not resolved, but its ``user_identities`` and device ids
        still describe that user, so the profile gains every value it lacks. Refused: a unique
        value another profile holds (taking it is modify's job, not a side effect of a batch),
        and a second value of an immutable type. Most batches repeat what the profile already
        holds; that case is answered from one read, without locks or a savepoint. The profile
        must exist (``ensure_profile_in`` first): NotFound otherwise.
        """
        keys = [(t.value, v) for t, v in identities.items()]
        if store.holds_all(tx, workspace_id, mpid, keys):
            return ()
        config = self.config_for(workspace_id)
        request = IdentityRequest(identities)

        def step(graph: store.StoreGraph) -> Decision:
            decision = strategies.attach(mpid, request, config=config, graph=graph)
            if decision.add:
                self._apply(tx, workspace_id, config, decision, now_ms)
            return decision

        decision = self._locked_in(tx, workspace_id, keys, step, "attaching identities")
        kept = set(decision.matched_identities) | {(e.identity_type, e.value) for e in decision.add}
        refused = tuple(t for t, v in identities.items() if (t, v) not in kept)
        if refused:
            logger.info(
                "identity.attach_refused",
                extra={
                    "workspace_id": workspace_id,
                    "mpid": mpid,
                    "identity_types": sorted(t.value for t in refused),
                    "count": len(refused),
                },
            )
        return refused

    def expire_in(
        self, tx: Connection, workspace_id: int, before_ms: int, limit: int = 1000
    ) -> list[int]:
        """Delete up to ``limit`` profiles last seen before ``before_ms`` from the graph, in the
        caller's transaction; returns their MPIDs so the caller deletes what it keeps for them
        in the same transaction (``ProfileService.sweep_expired``). Profiles another
        transaction is touching right now are skipped: they are being reactivated.
        """
        mpids = store.expired_profiles(tx, workspace_id, before_ms, limit)
        store.delete_profiles(tx, workspace_id, mpids)
        return mpids

    # -- machinery -------------------------------------------------------------------------
    def _run(
        self, workspace_id: int, request: IdentityRequest, strategy: Strategic
    ) -> IdentityResult:
        out = self._read_or_plan(workspace_id, request, strategy)
        return out if isinstance(out, IdentityResult) else self._write(*out)

    async def _run_async(
        self, workspace_id: int, request: IdentityRequest, strategy: Strategic
    ) -> IdentityResult:
        out = self._now(workspace_id, request, strategy)
        if isinstance(out, IdentityResult):
            return out
        fut: asyncio.Future[IdentityResult] = asyncio.get_running_loop().create_future()

        def done(outcome: IdentityResult | BaseException) -> None:
            if not fut.done():
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)

        out.then(done)
        return await fut

    def _now(
        self, workspace_id: int, request: IdentityRequest, strategy: Strategic
    ) -> IdentityResult | PendingWrite:
        """The answer now, when a read decides it; else the write that will decide it.

        The optimistic read runs on the caller's event loop: a few index lookups, never
        blocked by a writer (SQLite WAL, PostgreSQL MVCC). A thread hop per request cost more
        than the whole read (bench/IDENTITY_PROFILE.md).

        On SQLite a write runs on the loop too, except its commit: the statements take a
        fraction of a millisecond, grouped with this loop's other IDSync writes, and the fsync
        waits in a thread (``Database.write_begin``, ``core/inline_writes.py``). A write done
        whole in a thread paid a GIL hand-off around every SQLite call (p99 ~35 ms at 32
        connections); done whole on the loop, it stalled every other request for the fsync.
        When another writer holds the database (another API process, the inbox, the worker),
        the group is tried again after short pauses, then the write waits in a thread, as it
        always does on PostgreSQL.
        """
        self._db.handoff.poll()  # answer earlier calls whose write is committed
        out = self._read_or_plan(workspace_id, request, strategy)
        if isinstance(out, IdentityResult):
            return out
        return PendingWrite(functools.partial(self._begin_write, out))

    def _read_or_plan(
        self, workspace_id: int, request: IdentityRequest, strategy: Strategic
    ) -> IdentityResult | _Plan:
        """The answer from the read snapshot, or what the write that decides it needs."""
        decide = self._decider(strategy, workspace_id, request)
        hit = self._try_read(workspace_id, decide)
        if hit is not None:
            return hit
        return _Plan(workspace_id, self.config_for(workspace_id), _keys(request), decide)

    def _begin_write(
        self,
        plan: _Plan,
        on_done: Callable[[IdentityResult | BaseException], None],
        attempt: int = 0,
    ) -> None:
        if not self._db.is_sqlite:
            self._write_in_thread(plan, on_done)
            return
        apply = functools.partial(self._decide_and_apply, *plan, self._clock.now_ms())

        def done(ok: bool, value: Any) -> None:
            if ok:
                on_done(_result(*value))
            elif isinstance(value, (IntegrityError, _ProfileGone)):
                logger.info("identity.collision_retry", extra={"workspace_id": plan.workspace_id})
                if attempt + 1 < _RETRIES:
                    self._begin_write(plan, on_done, attempt + 1)
                else:
                    on_done(Unavailable(_COLLIDING))
            elif isinstance(value, WriterBusy):  # the writer already tried a few times
                self._write_in_thread(plan, on_done)
            else:
                on_done(value)

        self._inline.write_then(apply, done)

    def _write_in_thread(
        self, plan: _Plan, on_done: Callable[[IdentityResult | BaseException], None]
    ) -> None:
        fut = asyncio.get_running_loop().run_in_executor(None, self._write, *plan)

        def finished(f: asyncio.Future[IdentityResult]) -> None:
            if f.cancelled():
                on_done(Unavailable("the server is shutting down"))
            elif (exc := f.exception()) is not None:
                on_done(exc)
            else:
                on_done(f.result())

        fut.add_done_callback(finished)

    def _try_read(self, workspace_id: int, decide: Decide) -> IdentityResult | None:
        """The answer, if the decision changes nothing and the activity mark is fresh.

        On a raw read transaction (``Database.read_raw``): SQLAlchemy's connection and
        transaction bookkeeping cost more than the three index lookups of a typical identify.
        """
        now = self._clock.now_ms()

        def read(reader: RawRead) -> IdentityResult | None:
            graph = store.StoreGraph(reader, workspace_id)
            decision = decide(graph)
            if decision is not None and _read_only(decision):
                assert decision.mpid is not None
                view = graph.profile(decision.mpid)
                if view is not None and now - view.last_seen_ms < _TOUCH_AFTER_MS:
                    return _result(decision, decision.mpid)
            return None

        return self._db.read_raw(read)

    def _write(
        self,
        workspace_id: int,
        config: StrategyConfig,
        keys: list[tuple[str, str]],
        decide: Decide,
    ) -> IdentityResult:
        """Decide again under the write lock and apply, in a write transaction of this thread."""
        for _ in range(_RETRIES):
            now = self._clock.now_ms()
            try:
                with self._db.write() as tx:
                    result = self._decide_and_apply(workspace_id, config, keys, decide, now, tx)
                return _result(*result)
            except (IntegrityError, _ProfileGone):
                logger.info("identity.collision_retry", extra={"workspace_id": workspace_id})
        raise Unavailable(_COLLIDING)

    def _decide_and_apply(
        self,
        workspace_id: int,
        config: StrategyConfig,
        keys: list[tuple[str, str]],
        decide: Decide,
        now_ms: int,
        tx: Connection,
    ) -> tuple[Decision, int]:
        """The write path's one body (``_write``, ``_begin_write``): lock the request's
        identities, decide on the locked graph, apply; (decision, mpid answered)."""
        store.lock_identities(tx, workspace_id, keys)
        decision = decide(store.StoreGraph(tx, workspace_id))
        assert decision is not None
        return decision, self._apply(tx, workspace_id, config, decision, now_ms)

    def _apply(
        self,
        tx: Connection,
        workspace_id: int,
        config: StrategyConfig,
        decision: Decision,
        now_ms: int,
    ) -> int:
        for edit in decision.remove:
            store.remove_identity(
                tx,
                workspace_id=workspace_id,
                mpid=edit.mpid,
                identity_type=edit.identity_type.value,
                value=edit.value,
            )
        touched = {e.mpid for e in decision.add}
        if decision.new_profile is not None:
            # A random 64-bit MPID collides with odds of ~n/2^64; the primary key catches it
            # and the retry loop draws another.
            mpid = new_mpid()
            store.insert_profile(
                tx,
                workspace_id=workspace_id,
                mpid=mpid,
                now_ms=now_ms,
                linked_source_mpid=decision.new_profile.linked_source_mpid,
            )
            for t, v in decision.new_profile.identities:
                store.add_identity(
                    tx,
                    workspace_id=workspace_id,
                    mpid=mpid,
                    identity_type=t.value,
                    value=v,
                    unique=t in config.unique_types,
                )
        else:
            assert decision.mpid is not None
            mpid = decision.mpid
        for edit in decision.add:
            store.add_identity(
                tx,
                workspace_id=workspace_id,
                mpid=edit.mpid,
                identity_type=edit.identity_type.value,
                value=edit.value,
                unique=edit.identity_type in config.unique_types,
            )
        if decision.new_profile is None:
            touched.add(mpid)
        if store.touch(tx, workspace_id, touched, now_ms) < len(touched):
            raise _ProfileGone  # the expiry sweep deleted a profile the decision used
        return mpid


class _ProfileGone(Exception):
    """A profile a decision used was deleted meanwhile; decide again, like on a collision."""


def _keys(request: IdentityRequest) -> list[tuple[str, str]]:
    return [(t.value, v) for t, v in request.identities.items()]


def _change_keys(request: ModifyRequest) -> list[tuple[str, str]]:
    """Every identity value a modify touches (old and new), for the write locks."""
    return [
        (c.identity_type.value, v) for c in request.changes for v in (c.old_value, c.new_value) if v
    ]


def _read_only(decision: Decision) -> bool:
    return not decision.creates and not decision.add and not decision.remove


def _result(decision: Decision, mpid: int) -> IdentityResult:
    return IdentityResult(
        mpid=mpid,
        is_ephemeral=decision.is_ephemeral,
        is_logged_in=decision.is_logged_in,
        matched_identities=decision.matched_identities,
        change_results=decision.change_results,
        created=decision.creates,
    )


__all__ = ["IdentityResult", "IdentityService", "ProfileIdentities", "format_mpid"]
