"""Accepting batches: decode, validate, partition, and commit to the inbox.

The handler awaits the commit; only then does the client get its 202. Everything here is plain
CPU work plus one hand-off to the group committer, so it stays on the hot path's budget. What
does not change the answer stays off it: the service limits (truncations and drops) are applied
by the worker when it takes a batch from the inbox (``ingestion/processing.py``, ADR 0003).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from opencdp.core.clock import Clock
from opencdp.core.errors import BadRequest, PayloadTooLarge
from opencdp.core.metrics import Metrics
from opencdp.core.ratelimit import RateLimiter
from opencdp.events import limits
from opencdp.events.schema import Batch, decode_batch, decode_split, split_bulk
from opencdp.ingestion.group_commit import GroupCommitter
from opencdp.ingestion.partition import partition_for
from opencdp.tenancy.model import Principal
from opencdp.tenancy.service import TenancyService

logger = logging.getLogger(__name__)


class Route(StrEnum):
    """Where a batch came in; decides the acceptance rules and the inbox ``kind``."""

    EVENTS = "events"
    BULK = "bulkevents"
    HISTORICAL = "historical"
    WEB = "web"


# ``Route.X.value`` goes through the enum's descriptor machinery: a dict is cheaper per request.
_LABEL = {r: r.value for r in Route}


@dataclass
class Rejection:
    index: int
    reason: str
    message: str


@dataclass
class AcceptResult:
    accepted: int = 0
    events: int = 0
    rejected: list[Rejection] = field(default_factory=list)


class IngestionService:
    def __init__(
        self,
        *,
        clock: Clock,
        committer: GroupCommitter,
        metrics: Metrics,
        partitions: int,
        rate_limiter: RateLimiter,
        tenancy: TenancyService | None = None,
    ) -> None:
        self._clock = clock
        self._committer = committer
        self._metrics = metrics
        self._partitions = partitions
        self._rate = rate_limiter
        # Labelled children bound once: ``labels()`` per request was a measurable cost.
        self._accepted_counters = {
            r: (metrics.batches_accepted.labels(r.value), metrics.events_accepted.labels(r.value))
            for r in Route
        }
        self._tenancy = tenancy

    # -- the hot path ----------------------------------------------------------------------
    async def accept(self, principal: Principal, body: bytes, route: Route) -> AcceptResult:
        """Validate and durably store; raises BadRequest when nothing in the body is usable."""
        fut: asyncio.Future[AcceptResult] = asyncio.get_running_loop().create_future()

        def done(outcome: AcceptResult | BaseException) -> None:
            if not fut.done():  # not cancelled meanwhile (the client went away)
                if isinstance(outcome, BaseException):
                    fut.set_exception(outcome)
                else:
                    fut.set_result(outcome)

        self.accept_then(principal, body, route, done)
        return await fut

    def accept_then(
        self,
        principal: Principal,
        body: bytes,
        route: Route,
        done: Callable[[AcceptResult | BaseException], None],
    ) -> None:
        """``accept`` in callback form, for a caller that is not a task (``api/fast_http.py``):
        bad input raises here, at once; ``done`` gets the result once the rows are committed,
        or the error if they could not be."""
        result, rows = self.prepare(principal, body, route)
        if not rows:
            done(result)
            return

        def committed(exc: BaseException | None) -> None:
            if exc is not None:
                done(exc)
                return
            self._count_accepted(route, result)
            done(result)

        self._committer.submit_then(rows, committed)

    def accept_sync(self, principal: Principal, body: bytes, route: Route) -> AcceptResult:
        """The same for callers outside an event loop (tests, importers)."""
        result, rows = self.prepare(principal, body, route)
        if rows:
            self._committer.submit(rows).result()
        self._count_accepted(route, result)
        return result

    def prepare(
        self, principal: Principal, body: bytes, route: Route
    ) -> tuple[AcceptResult, list[dict[str, Any]]]:
        """Validate and build the inbox rows; the caller commits them (sync or async)."""
        now = self._clock.now_ms()
        if len(body) > limits.MAX_REQUEST_BYTES:
            self._reject_all(route, "request_too_large")
            raise PayloadTooLarge(
                f"request body is {len(body)} bytes; the limit is {limits.MAX_REQUEST_BYTES}"
            )
        if route is Route.EVENTS and len(body) <= limits.MAX_BATCH_BYTES:
            return self._prepare_one(principal, body, now)
        batches: list[Batch | BadRequest]
        if route in (Route.EVENTS, Route.WEB):
            batches = [self._decode_single(body, route)]
            raws: list[Any] = [body]
        else:
            raws = split_bulk(body)
            if len(raws) > limits.MAX_BULK_BATCHES:
                self._reject_all(route, "too_many_batches", n=len(raws))
                raise BadRequest(
                    f"a bulk request may carry at most {limits.MAX_BULK_BATCHES} batches; "
                    f"got {len(raws)}"
                )
            batches = decode_split(raws)
        result = AcceptResult()
        rows: list[dict[str, Any]] = []
        kind = _LABEL[route]  # the inbox kind is the route's label
        good: list[Batch] = []
        for index, (raw, decoded) in enumerate(zip(raws, batches, strict=True)):
            reason, message = self._check(decoded, len(raw), route, now, index)
            if reason is not None or not isinstance(decoded, Batch):
                result.rejected.append(Rejection(index, reason or "invalid", message or ""))
                self._metrics.batches_rejected.labels(_LABEL[route], reason or "invalid").inc()
                continue
            rows.append(self._row(principal, decoded, bytes(raw), kind, now, index))
            good.append(decoded)
        if not rows and route is Route.WEB:
            # The Web SDK retries a 400 forever; a batch we will never take is answered 202
            # and counted as rejected instead (docs/adr/0002).
            return result, []
        if not rows:
            if all(r.reason == "batch_too_large" for r in result.rejected):
                raise PayloadTooLarge(_summary(result.rejected))
            raise BadRequest(_summary(result.rejected))
        self._take_rate(principal.workspace_id, len(rows))
        result.accepted = len(rows)
        result.events = sum(len(b.events or ()) for b in good)
        return result, rows

    def _prepare_one(
        self, principal: Principal, body: bytes, now: int
    ) -> tuple[AcceptResult, list[dict[str, Any]]]:
        """``prepare`` for ``/v2/events`` within the batch size limit, the API's most frequent
        request: the same checks and row without the bulk bookkeeping (a fifth of this
        method's time went to it). Anything else takes the general path."""
        batch = self._decode_single(body, Route.EVENTS)
        assert isinstance(batch, Batch)  # EVENTS raises instead of returning the error
        row = self._row(principal, batch, body, "events", now, 0)
        self._take_rate(principal.workspace_id, 1)
        return AcceptResult(accepted=1, events=len(batch.events or ())), [row]

    # -- helpers ---------------------------------------------------------------------------
    def _row(
        self, principal: Principal, batch: Batch, payload: bytes, kind: str, now: int, index: int
    ) -> dict[str, Any]:
        """The inbox row of one accepted batch (``index``: its place in the request)."""
        return {
            "workspace_id": principal.workspace_id,
            "input_id": principal.input_id,
            "partition": partition_for(
                principal.workspace_id,
                batch.strongest_identity(),
                self._partitions,
                batch.source_request_id or str(now + index),
            ),
            "kind": kind,
            "received_ms": now,
            "source_request_id": batch.source_request_id,
            "payload": payload,
        }

    def _take_rate(self, workspace_id: int, batches: int) -> None:
        self._rate.take(
            workspace_id, batches, scope="workspace", rate=self._workspace_rate(workspace_id)
        )

    def _workspace_rate(self, workspace_id: int) -> float | None:
        """A workspace's own ``rate_limit_batches_per_s`` setting, if it has one."""
        if self._tenancy is None:
            return None
        value = self._tenancy.workspace(workspace_id).settings.get("rate_limit_batches_per_s")
        return None if value is None else float(value)

    def _decode_single(self, body: bytes, route: Route) -> Batch | BadRequest:
        try:
            return decode_batch(body)
        except BadRequest as exc:
            if route is Route.WEB:
                return exc  # reported, counted and answered 202 below
            self._metrics.batches_rejected.labels(route.value, "invalid").inc()
            raise

    def _check(
        self, decoded: Batch | BadRequest, size: int, route: Route, now_ms: int, index: int
    ) -> tuple[str | None, str | None]:
        """(reason, message) for a batch we will not take; messages name bulk indexes."""
        where = f"batch {index}: " if route in (Route.BULK, Route.HISTORICAL) else ""
        if isinstance(decoded, PayloadTooLarge):
            return "batch_too_large", decoded.message
        if isinstance(decoded, BadRequest):
            return "invalid", decoded.message
        if size > limits.MAX_BATCH_BYTES:
            return "batch_too_large", (
                f"{where}batch is {size} bytes; the limit is {limits.MAX_BATCH_BYTES}"
            )
        if route is Route.HISTORICAL:
            why = limits.check_historical(decoded, now_ms)
            if why is not None:
                return "historical_rule", f"{where}{why}"
        return None, None

    def _reject_all(self, route: Route, reason: str, n: int = 1) -> None:
        self._metrics.batches_rejected.labels(route.value, reason).inc(n)

    def _count_accepted(self, route: Route, result: AcceptResult) -> None:
        batches, events = self._accepted_counters[route]
        batches.inc(result.accepted)
        events.inc(result.events)


def _summary(rejected: list[Rejection]) -> str:
    if len(rejected) == 1:
        return rejected[0].message
    return "; ".join(r.message for r in rejected[:5])
