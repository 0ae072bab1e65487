"""The composition root: builds every service with its collaborators, in one place.

``cli`` asks for a Runtime; tests build one directly against a temporary store. Later slices
(identity, profiles, ...) are wired here: their services, their pipeline steps, their routes.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import sys
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from starlette.applications import Starlette

from opencdp.api import oauth_routes, profile_routes
from opencdp.api.app import RouteFactory, build_asgi
from opencdp.api.context import ApiContext
from opencdp.api.front import FrontDoor
from opencdp.core import migrate
from opencdp.core.clock import Clock, SystemClock
from opencdp.core.config import Settings
from opencdp.core.db import Database
from opencdp.core.metrics import Metrics
from opencdp.core.ratelimit import RateLimiter
from opencdp.identity.service import IdentityService
from opencdp.ingestion import store as inbox_store
from opencdp.ingestion.group_commit import GroupCommitter
from opencdp.ingestion.identity_step import ResolveIdentity
from opencdp.ingestion.pipeline import Pipeline, Step
from opencdp.ingestion.processing import ProcessingService
from opencdp.ingestion.service import IngestionService
from opencdp.ingestion.steps import StoreEvents
from opencdp.profiles.service import GraphIdentityDirectory, ProfileApi, ProfileService
from opencdp.profiles.steps import ApplyProfileUpdates
from opencdp.tenancy.service import TenancyService
from opencdp.tenancy.tokens import TokenService, signing_key
from opencdp.worker.runner import PeriodicJob, Worker

logger = logging.getLogger(__name__)

GIL_SWITCH_INTERVAL_S = 0.0001
"""How long a thread waiting for the GIL lets the event loop thread run before asking for it.

Database writes (the inbox's group commit, IDSync writes) run in threads and give the GIL up
around every SQLite or libpq call; under load the event loop thread always holds it, so each
time such a thread wants it back it waits out the whole interval (CPython's default: 5 ms). A
write of a dozen calls then took 50+ ms, the p99 of IDSync at 32 connections (bench/). At
0.5 ms the loop thread still runs uninterrupted unless another thread is actually waiting.
"""


@dataclass
class Runtime:
    settings: Settings
    clock: Clock
    db: Database
    metrics: Metrics
    tenancy: TenancyService
    committer: GroupCommitter
    ingestion: IngestionService
    processing: ProcessingService
    worker: Worker
    services: dict[str, Any] = field(default_factory=dict)
    route_factories: list[RouteFactory] = field(default_factory=list)
    _asgi: FrontDoor | None = None

    def context(self) -> ApiContext:
        return ApiContext(
            settings=self.settings,
            metrics=self.metrics,
            tenancy=self.tenancy,
            ingestion=self.ingestion,
            processing=self.processing,
            services=self.services,
            clock=self.clock,
        )

    def asgi(self, *, run_worker: bool = False) -> FrontDoor:
        """The web application; with ``run_worker`` its lifespan also runs the worker."""

        @contextlib.asynccontextmanager
        async def lifespan(_app: Starlette) -> AsyncIterator[None]:
            sys.setswitchinterval(GIL_SWITCH_INTERVAL_S)
            self.committer.start()
            if run_worker:
                self.worker.start()
            try:
                yield
            finally:
                self.close()

        if self._asgi is None:
            self._asgi = build_asgi(self.context(), extra=self.route_factories, lifespan=lifespan)
        return self._asgi

    def close(self) -> None:
        self.worker.stop()
        self.committer.close()


def build_runtime(
    settings: Settings,
    *,
    clock: Clock | None = None,
    extra_steps: list[Step] | None = None,
    migrate_schema: bool = True,
) -> Runtime:
    clock = clock or SystemClock()
    db = Database(settings.effective_database_url, sqlite_mmap_bytes=settings.sqlite_mmap_mb << 20)
    if migrate_schema:
        migrate.upgrade(db)
    metrics = Metrics()
    tenancy = TenancyService(db=db, clock=clock)

    def on_commit(groups: int, rows: int) -> None:
        metrics.group_commits.inc()
        metrics.group_commit_rows.inc(rows)

    committer = GroupCommitter(
        append=functools.partial(inbox_store.append_batches, db),
        max_rows=settings.group_commit_max_rows,
        on_commit=on_commit,
    )
    identity = IdentityService(db=db, clock=clock, tenancy=tenancy)
    profiles = ProfileService(
        db=db,
        clock=clock,
        tenancy=tenancy,
        identity=identity,
        metrics=metrics,
        default_lifetime_days=settings.profile_lifetime_days,
    )
    steps: list[Step] = [
        ResolveIdentity(identity),
        StoreEvents(),
        ApplyProfileUpdates(profiles),
    ]
    steps.extend(extra_steps or [])
    processing = ProcessingService(
        db=db,
        clock=clock,
        pipeline=Pipeline(steps),
        metrics=metrics,
        chunk_size=settings.worker_batch_size,
        lease_ttl_ms=settings.lease_ttl_ms,
    )
    partitions = processing.ensure_partitions(settings.partitions)
    ingestion = IngestionService(
        clock=clock,
        committer=committer,
        metrics=metrics,
        partitions=partitions,
        rate_limiter=RateLimiter(rate_per_s=settings.rate_limit_batches_per_s, clock=clock),
        tenancy=tenancy,
    )
    tokens = TokenService(
        tenancy=tenancy, clock=clock, key=signing_key(settings.token_secret, tenancy)
    )
    profile_api = ProfileApi(
        db=db,
        profiles=profiles,
        directory=GraphIdentityDirectory(identity),
        rate_limiter=RateLimiter(rate_per_s=settings.profile_rate_limit_per_s, clock=clock),
    )
    jobs: list[PeriodicJob] = [
        PeriodicJob(name="db.optimize", interval_s=3600.0, run=db.optimize),
        PeriodicJob(name="profiles.expire", interval_s=3600.0, run=profiles.sweep_expired),
    ]
    worker = Worker(processing=processing, idle_ms=settings.worker_idle_ms, jobs=jobs)
    metrics.gauge(
        "opencdp_ingestion_inbox_depth_batches", "Batches waiting in the inbox", processing.pending
    )
    metrics.gauge(
        "opencdp_worker_processing_lag_oldest_seconds",
        "Age of the oldest unprocessed batch",
        processing.lag_seconds,
    )
    return Runtime(
        settings=settings,
        clock=clock,
        db=db,
        metrics=metrics,
        tenancy=tenancy,
        committer=committer,
        ingestion=ingestion,
        processing=processing,
        worker=worker,
        services={
            "identity": identity,
            "profiles": profiles,
            "profile_api": profile_api,
            "tokens": tokens,
        },
        route_factories=[oauth_routes.routes, profile_routes.routes],
    )


def asgi_from_env() -> FrontDoor:
    """Application factory for ``serve --api-processes N``: each process builds its own
    runtime from the ``OPENCDP_*`` variables the parent set (the parent already migrated and
    bootstrapped the store)."""
    from opencdp.core.config import from_env
    from opencdp.core.logging import configure

    settings = from_env()
    configure(settings.log_level, settings.log_format)
    runtime = build_runtime(settings, migrate_schema=False)
    return runtime.asgi(run_worker=not settings.no_worker)
