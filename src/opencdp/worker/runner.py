"""The worker: leases partitions and drains them; runs periodic jobs.

In ``opencdp serve`` it is a thread beside the API (the embedded default); ``opencdp worker``
runs it alone, and several of them share a PostgreSQL store through partition leases.
"""

from __future__ import annotations

import logging
import os
import socket
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass

from opencdp.ingestion.processing import ProcessingService

logger = logging.getLogger(__name__)


@dataclass
class PeriodicJob:
    """A job the scheduler runs every ``interval_s``; it must be idempotent."""

    name: str
    interval_s: float
    run: Callable[[], object]
    next_at: float = 0.0


class Worker:
    def __init__(
        self,
        *,
        processing: ProcessingService,
        idle_ms: int = 20,
        jobs: list[PeriodicJob] | None = None,
        owner: str | None = None,
        partitions_per_txn: int = 16,
    ) -> None:
        self._processing = processing
        self._partitions_per_txn = partitions_per_txn
        self._idle = idle_ms / 1000.0
        self.jobs = list(jobs or [])
        self.owner = owner or f"{socket.gethostname()}:{os.getpid()}:{uuid.uuid4().hex[:8]}"
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    def run_once(self) -> int:
        """One pass over every partition with pending work; returns batches applied."""
        done = 0
        pending = self._processing.partitions_with_work()
        step = self._partitions_per_txn
        for i in range(0, len(pending), step):
            if self._stop.is_set():
                break
            done += self._processing.process_partitions(pending[i : i + step], self.owner)
        self._run_due_jobs()
        return done

    def drain(self, timeout_s: float = 30.0) -> None:
        """Process until the inbox is empty (tests and the bench use it)."""
        deadline = time.monotonic() + timeout_s
        while self._processing.pending() > 0:
            if time.monotonic() > deadline:
                raise TimeoutError("inbox did not drain in time")
            if self.run_once() == 0:
                time.sleep(0.01)

    def run_forever(self) -> None:
        logger.info("worker.started", extra={"owner": self.owner})
        while not self._stop.is_set():
            try:
                if self.run_once() == 0:
                    self._stop.wait(self._idle)
            except Exception:
                logger.exception("worker.pass_failed")
                self._stop.wait(1.0)
        try:
            self._processing.release(self.owner)
        except Exception:
            logger.exception("worker.release_failed")
        logger.info("worker.stopped", extra={"owner": self.owner})

    def start(self) -> None:
        self._thread = threading.Thread(target=self.run_forever, name="opencdp-worker", daemon=True)
        self._thread.start()

    def stop(self, timeout: float = 10.0) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout)

    def _run_due_jobs(self) -> None:
        now = time.monotonic()
        for job in self.jobs:
            if now >= job.next_at:
                job.next_at = now + job.interval_s
                try:
                    job.run()
                except Exception:
                    logger.exception("worker.job_failed", extra={"job": job.name})
