"""``raw.Later``: a reply completed by a loop callback is sent from inside that callback."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from typing import Any

from opencdp.api import raw
from opencdp.api.errors import EVENTS
from opencdp.core import errors as e

Sent = list[dict[str, Any]]


def _run(handler: raw.Handler, send: Callable[[Any], Any] | None = None) -> tuple[Sent, list[str]]:
    """Call a RawEndpoint running ``handler``; returns what it sent and the error codes counted."""
    sent: Sent = []
    codes: list[str] = []

    async def record(message: Any) -> None:
        sent.append(message)

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"", "more_body": False}

    endpoint = raw.RawEndpoint(EVENTS, handler, lambda _family, code: codes.append(code))
    scope = {"type": "http", "method": "POST", "path": "/x", "headers": []}
    asyncio.run(endpoint(scope, receive, send or record))
    return sent, codes


def _status_and_body(sent: Sent) -> tuple[int, bytes]:
    assert [m["type"] for m in sent] == ["http.response.start", "http.response.body"]
    return sent[0]["status"], sent[1]["body"]


def test_a_reply_given_later_is_sent_from_the_completing_callback() -> None:
    order: list[str] = []
    sent: Sent = []

    async def send(message: Any) -> None:
        order.append(f"send {message['type']}")
        sent.append(message)

    async def handler(_scope: raw.Scope, _receive: raw.Receive) -> raw.Later:
        def begin(answer: raw.Answer) -> None:
            def complete() -> None:
                order.append("callback")
                answer((202, b'{"ok":true}'))
                order.append("callback returned")

            asyncio.get_running_loop().call_later(0.01, complete)

        return raw.Later(begin)

    _run(handler, send)
    # both sends happened inside the callback, not after a task resumed
    assert order == [
        "callback",
        "send http.response.start",
        "send http.response.body",
        "callback returned",
    ]
    assert _status_and_body(sent) == (202, b'{"ok":true}')


def test_an_answer_given_at_once_is_sent_at_once() -> None:
    async def handler(_scope: raw.Scope, _receive: raw.Receive) -> raw.Later:
        return raw.Later(lambda answer: answer((202, b"")))

    sent, codes = _run(handler)
    assert _status_and_body(sent) == (202, b"")
    assert codes == []


def test_an_error_given_later_leaves_in_the_family_shape() -> None:
    async def handler(_scope: raw.Scope, _receive: raw.Receive) -> raw.Later:
        def begin(answer: raw.Answer) -> None:
            asyncio.get_running_loop().call_soon(answer, e.Unavailable("try again"))

        return raw.Later(begin)

    sent, codes = _run(handler)
    status, body = _status_and_body(sent)
    assert status == 503
    assert json.loads(body)["errors"][0]["message"] == "try again"
    assert codes == [e.Unavailable("x").code]


def test_begin_refusing_at_once_is_answered_as_an_error() -> None:
    async def handler(_scope: raw.Scope, _receive: raw.Receive) -> raw.Later:
        def begin(_answer: raw.Answer) -> None:
            raise e.BadRequest("no good")

        return raw.Later(begin)

    sent, _ = _run(handler)
    status, body = _status_and_body(sent)
    assert status == 400
    assert json.loads(body)["errors"][0] == {"code": "BAD_REQUEST", "message": "no good"}


def test_an_unexpected_exception_given_later_is_a_500_in_the_family_shape() -> None:
    async def handler(_scope: raw.Scope, _receive: raw.Receive) -> raw.Later:
        return raw.Later(lambda answer: answer(RuntimeError("bug")))

    sent, codes = _run(handler)
    status, body = _status_and_body(sent)
    assert status == 500
    assert "bug" not in body.decode()
    assert codes == ["internal"]


def test_reply_of_turns_a_raise_into_an_outcome() -> None:
    assert raw.reply_of(lambda: (200, b"{}")) == (200, b"{}")

    def broken() -> raw.Reply:
        raise ValueError("encode failed")

    outcome = raw.reply_of(broken)
    assert isinstance(outcome, ValueError)


def test_a_send_that_must_wait_is_resumed_when_it_can() -> None:
    """A full socket buffer makes the server's send wait; the callback cannot finish it, so
    the send continues when what it waits for is done, and the request still completes."""
    sent: Sent = []
    gate: dict[str, asyncio.Future[None]] = {}

    async def slow_send(message: Any) -> None:
        if message["type"] == "http.response.body":
            fut = asyncio.get_running_loop().create_future()
            gate["f"] = fut
            asyncio.get_running_loop().call_later(0.01, fut.set_result, None)
            await fut
            await asyncio.sleep(0)  # a bare yield too
        sent.append(message)

    async def handler(_scope: raw.Scope, _receive: raw.Receive) -> raw.Later:
        def begin(answer: raw.Answer) -> None:
            asyncio.get_running_loop().call_soon(answer, (202, b"{}"))

        return raw.Later(begin)

    _run(handler, slow_send)
    assert gate["f"].done()
    assert _status_and_body(sent) == (202, b"{}")
