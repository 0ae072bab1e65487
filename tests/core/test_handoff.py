"""Handoff: completions posted from threads run once on their loop, in order, from ``poll`` or
from the loop's own wake-up, whichever comes first."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

from opencdp.core.handoff import Handoff


def _post_from_thread(
    handoff: Handoff,
    loop: asyncio.AbstractEventLoop,
    fn: Callable[..., None],
    *args: object,
    after: Callable[[], None] | None = None,
) -> None:
    t = threading.Thread(target=handoff.post, args=(loop, fn, *args), kwargs={"after": after})
    t.start()
    t.join()


def test_poll_delivers_before_the_wake_up_and_the_wake_up_does_not_repeat_it() -> None:
    handoff = Handoff()
    ran: list[str] = []

    async def go() -> None:
        loop = asyncio.get_running_loop()
        for name in ("a", "b", "c"):
            _post_from_thread(handoff, loop, ran.append, name)
        assert ran == []  # the loop has not had a chance yet
        handoff.poll()  # code on the loop, before the loop's own wake-ups run
        assert ran == ["a", "b", "c"]
        await asyncio.sleep(0.01)  # now the three wake-ups run, and find them delivered

    asyncio.run(go())
    assert ran == ["a", "b", "c"]


def test_without_poll_the_wake_up_delivers_in_order() -> None:
    handoff = Handoff()
    ran: list[int] = []

    async def go() -> None:
        loop = asyncio.get_running_loop()
        for i in range(5):
            _post_from_thread(handoff, loop, ran.append, i)
        await asyncio.sleep(0.01)

    asyncio.run(go())
    assert ran == [0, 1, 2, 3, 4]


def test_a_failing_callback_does_not_hold_back_the_next() -> None:
    handoff = Handoff()
    ran: list[str] = []

    def broken() -> None:
        raise RuntimeError("bug")

    async def go() -> None:
        loop = asyncio.get_running_loop()
        _post_from_thread(handoff, loop, broken)
        _post_from_thread(handoff, loop, ran.append, "next")
        handoff.poll()

    asyncio.run(go())
    assert ran == ["next"]


def test_poll_only_delivers_the_running_loops_completions() -> None:
    handoff = Handoff()
    ran: list[str] = []
    other = asyncio.new_event_loop()
    try:

        async def go() -> None:
            _post_from_thread(handoff, other, ran.append, "other loop")
            _post_from_thread(handoff, asyncio.get_running_loop(), ran.append, "this loop")
            handoff.poll()
            assert ran == ["this loop"]

        asyncio.run(go())
        handoff.poll()  # not on a loop: nothing, no error
        other.run_until_complete(asyncio.sleep(0.01))
        assert ran == ["this loop", "other loop"]
    finally:
        other.close()


def test_after_runs_at_the_wake_up_even_when_poll_delivered() -> None:
    handoff = Handoff()
    ran: list[str] = []

    async def go() -> None:
        loop = asyncio.get_running_loop()
        _post_from_thread(handoff, loop, ran.append, "done", after=lambda: ran.append("woke"))
        handoff.poll()
        assert ran == ["done"]  # delivered; the wake-up has not come yet
        await asyncio.sleep(0.01)

    asyncio.run(go())
    assert ran == ["done", "woke"]
