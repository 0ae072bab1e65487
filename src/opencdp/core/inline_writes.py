"""Group commit for small writes made on an event loop (SQLite).

IDSync creates a profile for every new user: a few inserts and then a commit whose fsync is
most of the time. ``Database.write_begin`` runs the statements on the loop and waits for the
fsync in a thread, but SQLite has one writer: a second new user arriving during that commit
could only wait and retry, and at 32 connections those retries set IDSync's p99 (44 ms).
Here it joins the next group instead. Writes queue on the loop; one task applies everything
queued as one transaction, each write in its own savepoint (a failing write is rolled back
alone and gets its own exception), commits once, and then answers every caller. While a group
commits, the next one gathers.
"""

from __future__ import annotations

import asyncio
import functools
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from sqlalchemy.engine import Connection

from opencdp.core.db import Database, WriterBusy
from opencdp.core.sql import savepoint

T = TypeVar("T")

logger = logging.getLogger(__name__)

Done = Callable[[bool, Any], None]
"""``done(True, result)`` or ``done(False, exception)``, called on the loop."""

_Write = tuple[Callable[[Connection], Any], Done]

BUSY_PAUSES_S = (0.0005, 0.001, 0.002, 0.004)
"""Pauses before trying a group again while another writer holds the database."""


class InlineWriter:
    """``await writer.write(fn)``: ``fn(tx)`` applied and durably committed, grouped with the
    writes queued beside it. ``WriterBusy`` when another writer (a thread, another process)
    holds the database; the caller decides whether to wait for it elsewhere.

    No task drives the groups: the first write of a group is applied by its caller at once;
    each commit's completion answers its group (``_finished``: at the first ``Handoff.poll``
    on the loop, else at the loop's wake-up), and the wake-up starts the next group
    (``_next_group``). On a loaded loop every extra hop is one more pass over all ready
    requests (about 5 ms at 32 connections), so a task in between cost a new user 20 ms.
    """

    def __init__(self, db: Database) -> None:
        self._db = db
        self._pending: list[_Write] = []
        self._committing = False
        self._busy_tries = 0

    async def write(self, fn: Callable[[Connection], T]) -> T:
        fut: asyncio.Future[T] = asyncio.get_running_loop().create_future()

        def done(ok: bool, value: Any) -> None:
            if not fut.done():  # not cancelled meanwhile
                if ok:
                    fut.set_result(value)
                else:
                    fut.set_exception(value)

        self.write_then(fn, done)
        return await fut

    def write_then(self, fn: Callable[[Connection], Any], done: Done) -> None:
        """``write`` in callback form: ``done`` runs straight from the commit's completion,
        one loop pass before a task awaiting ``write`` would resume (``api/raw.py Later``)."""
        self._pending.append((fn, done))
        if not self._committing:
            self._start()

    def _start(self) -> None:
        group, self._pending = self._pending, []
        outcomes: list[tuple[bool, Any]] = []
        self._committing = True
        try:
            outcomes = self._db.write_begin(
                functools.partial(_apply_all, group=group),
                lambda exc: self._finished(group, outcomes, exc),
                self._next_group,
            )
        except WriterBusy as exc:
            # Another writer (the other API processes, the worker, the inbox) holds the
            # database for a millisecond or so: try the same group again shortly, from a timer,
            # so the loop keeps serving; give up after a few tries (the callers then wait for
            # the lock in a thread).
            self._pending = group + self._pending
            if self._busy_tries < len(BUSY_PAUSES_S):
                pause = BUSY_PAUSES_S[self._busy_tries]
                self._busy_tries += 1
                asyncio.get_running_loop().call_later(pause, self._start)
                return
            self._busy_tries = 0
            self._committing = False
            group, self._pending = self._pending, []
            _fail(group, exc)
        except Exception as exc:  # the database failed: nothing was written
            self._committing = False
            _fail(group, exc)
        else:
            self._busy_tries = 0

    def _finished(
        self, group: list[_Write], outcomes: list[tuple[bool, Any]], exc: BaseException | None
    ) -> None:
        """Answer the group: as soon as an IDSync call on the loop sees the commit done
        (``Handoff.poll``), else at the loop's wake-up."""
        if exc is not None:
            _fail(group, exc)
        else:
            for (_, done), (ok, value) in zip(group, outcomes, strict=True):
                _call(done, ok, value)

    def _next_group(self) -> None:
        """At the loop's wake-up after a commit: start what queued meanwhile.

        Not as soon as the answers go out: writes that arrive until then join the next group.
        Started at once, each group held a write or two, and with one write per call (users
        last seen days ago) throughput fell by a quarter."""
        self._committing = False
        if self._pending:
            self._start()


def _call(done: Done, ok: bool, value: Any) -> None:
    try:
        done(ok, value)
    except Exception:  # one caller's bug must not leave the rest of the group unanswered
        logger.exception("inline_write.callback_failed")


def _fail(group: list[_Write], exc: BaseException) -> None:
    for _, done in group:
        _call(done, False, exc)


def _apply_all(tx: Connection, *, group: list[_Write]) -> list[tuple[bool, Any]]:
    """Each write in its own savepoint; (True, result) or (False, exception) per write."""
    outcomes: list[tuple[bool, Any]] = []
    for fn, _ in group:
        try:
            with savepoint(tx):
                outcomes.append((True, fn(tx)))
        except Exception as exc:
            outcomes.append((False, exc))
    return outcomes
