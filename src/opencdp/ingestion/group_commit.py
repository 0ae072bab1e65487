"""Group commit: many requests' inbox rows committed together by one writer thread.

Each request hands its rows to the writer and waits for the commit. While one transaction is
committing, new submissions queue up; the next transaction takes all of them. So the number of
fsyncs follows the disk, not the request rate, and no request waits for a timer. A 202 is sent
only when the request's own rows are committed.

If a group's transaction fails, each submission is retried alone, so one poisoned request cannot
fail the others that happened to share its group.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import queue
import threading
from collections.abc import Callable, Sequence
from concurrent.futures import Future
from typing import Any

from opencdp.core.errors import Unavailable

logger = logging.getLogger(__name__)

Rows = Sequence[dict[str, Any]]
AppendFn = Callable[[Callable[[], Rows]], object]
"""Durably stores the rows its argument returns; calls it once the database is ours."""

_STOP = object()


Done = Callable[[BaseException | None], None]
"""``done(None)`` once committed, ``done(exc)`` if not; called on the submitter's loop."""


class _LoopWaiter:
    """A submission answered on its event loop: ``done`` runs there at the group's wake-up."""

    __slots__ = ("done", "loop")

    def __init__(self, loop: asyncio.AbstractEventLoop, done: Done) -> None:
        self.loop = loop
        self.done = done


Waiter = Future[None] | _LoopWaiter


def _wake(waiting: list[Done], exc: BaseException | None) -> None:
    for done in waiting:
        try:
            done(exc)
        except Exception:  # one caller's bug must not leave the rest unanswered
            logger.exception("inbox.callback_failed")


def _settle(group: list[tuple[Rows, Waiter]], exc: BaseException | None) -> None:
    """Complete every waiter of a group: one loop wake-up per event loop.

    Waking a loop from another thread costs a syscall, and once per request it was a tenth of
    the request's CPU.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[Done]] = {}
    for _, waiter in group:
        if isinstance(waiter, _LoopWaiter):
            by_loop.setdefault(waiter.loop, []).append(waiter.done)
        elif exc is None:
            waiter.set_result(None)
        else:
            waiter.set_exception(exc)
    for loop, waiting in by_loop.items():
        # RuntimeError: the loop has closed, so nobody is waiting any more
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_wake, waiting, exc)


def _rows_of(group: list[tuple[Rows, Waiter]]) -> list[dict[str, Any]]:
    """Every submission's rows, in submission order: one transaction's worth."""
    out: list[dict[str, Any]] = []
    for rows, _ in group:
        out.extend(rows)
    return out


class GroupCommitter:
    """A single writer thread that commits queued submissions in groups."""

    def __init__(
        self,
        *,
        append: AppendFn,
        max_rows: int = 5000,
        on_commit: Callable[[int, int], None] | None = None,
    ) -> None:
        self._append = append
        self._max_rows = max_rows
        self._on_commit = on_commit
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._thread: threading.Thread | None = None
        self._lock = threading.Lock()
        self._closed = False

    def start(self) -> None:
        with self._lock:
            if self._thread is None:
                self._thread = threading.Thread(
                    target=self._run, name="opencdp-group-commit", daemon=True
                )
                self._thread.start()

    def submit(self, rows: Rows) -> Future[None]:
        """Queue rows; the returned future completes once they are committed."""
        fut: Future[None] = Future()
        if self._closed:
            fut.set_exception(Unavailable("the server is shutting down"))
            return fut
        if self._thread is None:
            self.start()
        self._queue.put((rows, fut))
        return fut

    def submit_then(self, rows: Rows, done: Done) -> None:
        """Queue rows; ``done`` runs on the calling event loop once they are committed (or
        failed), from the group's wake-up: the ingestion fast path (``api/fast_http.py``)
        answers its request from there, and ``IngestionService.accept`` completes a future."""
        if self._closed:
            raise Unavailable("the server is shutting down")
        if self._thread is None:
            self.start()
        self._queue.put((rows, _LoopWaiter(asyncio.get_running_loop(), done)))

    def close(self, timeout: float = 10.0) -> None:
        """Commit what is queued, then stop the thread."""
        self._closed = True
        if self._thread is not None:
            self._queue.put(_STOP)
            self._thread.join(timeout)

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is _STOP:
                return
            if not self._commit_from(item):
                return

    def _take_more(self, group: list[tuple[Rows, Waiter]], n: int) -> tuple[int, bool]:
        """Add what is queued now to ``group``; returns (rows, whether STOP was seen)."""
        while n < self._max_rows:
            try:
                nxt = self._queue.get_nowait()
            except queue.Empty:
                break
            if nxt is _STOP:
                return n, True
            group.append(nxt)
            n += len(nxt[0])
        return n, False

    def _commit_from(self, first: tuple[Rows, Waiter]) -> bool:
        """Commit ``first`` and everything queued by the time the write lock is ours.

        The group is closed only once the database is ours: while this thread waits for the
        lock (another process, or the worker, is writing) requests keep queueing and ride
        along in the same commit. Returns False once STOP was seen.
        """
        group = [first]
        n = len(first[0])
        stopping = False

        def collect() -> list[dict[str, Any]]:
            nonlocal n, stopping
            n, stopping = self._take_more(group, n)
            return _rows_of(group)

        try:
            self._append(collect)
        except Exception:
            if len(group) == 1:
                logger.exception("inbox.commit_failed", extra={"rows": n})
                _settle(group, Unavailable("could not store the batch; retry"))
            else:
                for single in group:  # isolate the poisoned submission
                    self._commit([single], len(single[0]))
            return not stopping
        if self._on_commit is not None:
            self._on_commit(len(group), n)
        _settle(group, None)
        return not stopping

    def _commit(self, group: list[tuple[Rows, Waiter]], n: int) -> None:
        try:
            all_rows = _rows_of(group)
            self._append(lambda: all_rows)
        except Exception:
            if len(group) == 1:
                logger.exception("inbox.commit_failed", extra={"rows": n})
                _settle(group, Unavailable("could not store the batch; retry"))
                return
            for single in group:  # isolate the poisoned submission
                self._commit([single], len(single[0]))
            return
        if self._on_commit is not None:
            self._on_commit(len(group), n)
        _settle(group, None)
