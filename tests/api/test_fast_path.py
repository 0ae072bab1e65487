"""The Events API's HTTP fast path (api/fast_http.py, ADR 0008), on a real socket.

Every answer must be the one the ASGI endpoint gives for the same request (the in-process
client below takes that path); what the fast path leaves to ASGI (pipelining, query strings,
``Expect: 100-continue``) must still work; and keep-alive and HTTP/1.0 behave as uvicorn's.
"""

from __future__ import annotations

import base64
import gzip
import http.client
import json
import socket
import time
from collections.abc import Iterator
from typing import Any

import pytest
from starlette.testclient import TestClient

from opencdp.api.fast_http import FastPathProtocol, fast_routes_of
from opencdp.app import Runtime
from opencdp.core.config import Settings
from opencdp.events.limits import MAX_REQUEST_BYTES
from opencdp.ingestion import store as inbox_store
from opencdp.tenancy.model import Credentials
from tests.support.batches import batch
from tests.support.server import LiveServer


class Live:
    def __init__(self, runtime: Runtime, creds: Credentials, port: int) -> None:
        self.runtime = runtime
        self.creds = creds
        self.port = port

    def auth(self, key: str | None = None, secret: str | None = None) -> str:
        k = self.creds.api_key if key is None else key
        s = self.creds.api_secret if secret is None else secret
        return "Basic " + base64.b64encode(f"{k}:{s}".encode()).decode()

    def stored(self) -> int:
        with self.runtime.db.read() as conn:
            return inbox_store.count_batches(conn)


@pytest.fixture
def live(runtime: Runtime, settings: Settings) -> Iterator[Live]:
    creds, _ = runtime.tenancy.bootstrap(data_dir=settings.data_dir)
    with LiveServer(runtime.asgi(run_worker=False)) as server:
        yield Live(runtime, creds, server.port)


def _raw(port: int, data: bytes, *, until_closed: bool = False, responses: int = 1) -> bytes:
    """Send bytes as they are; read until ``responses`` complete responses (or EOF)."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(data)
        out = b""
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                return out
            out += chunk
            if not until_closed and _complete(out) >= responses:
                return out


def _complete(data: bytes) -> int:
    """How many whole responses (head + content-length body) ``data`` holds."""
    n = 0
    while b"\r\n\r\n" in data:
        head, rest = data.split(b"\r\n\r\n", 1)
        length = 0
        for line in head.split(b"\r\n")[1:]:
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"content-length":
                length = int(value)
        if len(rest) < length:
            break
        data = rest[length:]
        n += 1
    return n


def _request(path: str, body: bytes, headers: dict[str, str], version: str = "1.1") -> bytes:
    lines = [f"POST {path} HTTP/{version}", "Host: test", f"Content-Length: {len(body)}"]
    lines += [f"{k}: {v}" for k, v in headers.items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


def test_the_protocol_finds_the_events_routes_through_middleware(live: Live) -> None:
    class Wrapper:
        def __init__(self, app: Any) -> None:
            self.app = app

    app = live.runtime.asgi()
    assert set(fast_routes_of(Wrapper(Wrapper(app)))) == {
        b"/v2/events",
        b"/v2/bulkevents",
        b"/v2/bulkevents/historical",
    }
    assert fast_routes_of(object()) == {}


def test_keep_alive_connection_takes_many_batches(live: Live) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    for _ in range(5):
        conn.request(
            "POST",
            "/v2/events",
            body=json.dumps(batch()),
            headers={"Authorization": live.auth(), "Content-Type": "application/json"},
        )
        r = conn.getresponse()
        assert r.status == 202 and r.read() == b""
        assert r.getheader("content-length") == "0"
        assert r.getheader("date")  # uvicorn's default headers, as on the ASGI path
    conn.close()
    assert live.stored() == 5


CASES: dict[str, tuple[str, Any, dict[str, str]]] = {
    "no credentials": ("/v2/events", batch(), {}),
    "wrong secret": ("/v2/events", batch(), {"auth": "wrong"}),
    "not json": ("/v2/events", b"{nope", {}),
    "no event type": ("/v2/events", {"events": [{"data": {}}]}, {}),
    "bulk with one bad batch": ("/v2/bulkevents", [batch(), {"events": 5}], {}),
    "bulk all bad": ("/v2/bulkevents", [{"events": 5}], {}),
    "historical too recent": ("/v2/bulkevents/historical", [batch()], {}),
    "too many batches": ("/v2/bulkevents", [batch(events=0)] * 101, {}),
    "empty body": ("/v2/events", b"", {}),
}


@pytest.mark.parametrize("case", list(CASES))
def test_every_answer_is_the_asgi_endpoints(live: Live, case: str) -> None:
    path, payload, opts = CASES[case]
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    headers = {"Content-Type": "application/json"}
    if case != "no credentials":
        secret = "wrong" if opts.get("auth") == "wrong" else None
        headers["Authorization"] = live.auth(secret=secret)
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    conn.request("POST", path, body=body, headers=headers)
    fast = conn.getresponse()
    fast_body = fast.read()
    conn.close()
    with TestClient(live.runtime.asgi()) as client:  # in-process: the ASGI endpoint
        slow = client.post(path, content=body, headers=headers)
    assert fast.status == slow.status_code, (fast_body, slow.content)
    assert json.loads(fast_body or b"null") == json.loads(slow.content or b"null")
    for name in ("content-type", "retry-after", "x-mp-rate-limit-exceeded"):
        assert fast.getheader(name) == slow.headers.get(name), name


def test_over_the_size_limit_is_413_whether_declared_or_sent(live: Live) -> None:
    auth = {"Authorization": live.auth()}
    big = b'{"events":[],"x":"' + b"a" * MAX_REQUEST_BYTES + b'"}'
    # declared: refused by its Content-Length
    out = _raw(live.port, _request("/v2/events", big, auth))
    assert out.startswith(b"HTTP/1.1 413 ")
    assert b"the limit is" in out
    # chunked, so nothing is declared: refused once the body ran past the limit
    head = b"POST /v2/events HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n"
    head += f"Authorization: {live.auth()}\r\n\r\n".encode()
    chunks = b"".join(b"%x\r\n%s\r\n" % (len(c), c) for c in (big[:100_000], big[100_000:]))
    out = _raw(live.port, head + chunks + b"0\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 413 ")
    assert json.loads(out.split(b"\r\n\r\n", 1)[1])["errors"][0]["code"] == "BAD_REQUEST"
    assert live.stored() == 0


def test_a_gzip_body_is_accepted(live: Live) -> None:
    body = gzip.compress(json.dumps(batch()).encode())
    headers = {"Authorization": live.auth(), "Content-Encoding": "gzip"}
    out = _raw(live.port, _request("/v2/events", body, headers))
    assert out.startswith(b"HTTP/1.1 202 ")
    assert live.stored() == 1


def test_pipelined_requests_are_answered_in_order(live: Live) -> None:
    """Requests that arrive while an earlier one waits for its commit are queued by uvicorn
    and answered after it. (After an error answer uvicorn 0.54 drops what was pipelined
    behind it, with or without the fast path; clients that pipeline do not send past one.)"""
    auth = {"Authorization": live.auth()}
    good = _request("/v2/events", json.dumps(batch()).encode(), auth)
    bad = _request("/v2/events", b"{nope", auth)
    for sent, expected in ((good * 3, [b"202"] * 3), (good + bad, [b"202", b"400"])):
        out = _raw(live.port, sent, responses=len(expected))
        lines = out.split(b"\r\n")
        assert [line.split(b" ")[1] for line in lines if line.startswith(b"HTTP/")] == expected
    assert live.stored() == 4


def test_what_the_fast_path_leaves_to_asgi_still_works(live: Live) -> None:
    body = json.dumps(batch()).encode()
    auth = {"Authorization": live.auth()}
    out = _raw(live.port, _request("/v2/events?x=1", body, auth))
    assert out.startswith(b"HTTP/1.1 202 ")
    head = _request("/v2/events", b"", {**auth, "Expect": "100-continue"})
    head = head.replace(b"Content-Length: 0", f"Content-Length: {len(body)}".encode())
    with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
        sock.sendall(head)
        assert sock.recv(1024).startswith(b"HTTP/1.1 100 ")
        sock.sendall(body)
        assert sock.recv(1024).startswith(b"HTTP/1.1 202 ")
    out = _raw(live.port, b"GET /v2/events HTTP/1.1\r\nHost: t\r\n\r\n")
    assert out.startswith(b"HTTP/1.1 405 ")
    assert live.stored() == 2


def test_http_1_0_gets_its_answer_and_the_connection_closes(live: Live) -> None:
    body = json.dumps(batch()).encode()
    out = _raw(
        live.port,
        _request("/v2/events", body, {"Authorization": live.auth()}, version="1.0"),
        until_closed=True,
    )
    assert out.startswith(b"HTTP/1.1 202 ")
    assert b"connection: close" in out.lower()


def test_a_client_that_leaves_before_the_answer_does_not_stop_the_server(live: Live) -> None:
    body = json.dumps(batch()).encode()
    for _ in range(20):
        with socket.create_connection(("127.0.0.1", live.port), timeout=10) as sock:
            sock.sendall(_request("/v2/events", body, {"Authorization": live.auth()}))
    deadline = time.monotonic() + 10
    while live.stored() < 20 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert live.stored() == 20  # accepted requests are stored even if nobody hears the 202
    out = _raw(live.port, _request("/v2/events", body, {"Authorization": live.auth()}))
    assert out.startswith(b"HTTP/1.1 202 ")


def test_the_serve_command_runs_the_fast_path_protocol(settings: Settings) -> None:
    from opencdp.cli import uvicorn_options

    assert uvicorn_options(settings)["http"] == "opencdp.api.fast_http:FastPathProtocol"
    assert FastPathProtocol.__module__ == "opencdp.api.fast_http"


def test_rate_limited_requests_get_429_with_the_documented_headers(live: Live) -> None:
    live.runtime.tenancy.update_workspace_settings(
        live.creds.workspace_id, {"rate_limit_batches_per_s": 1}
    )
    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=10)
    answers = []
    for _ in range(4):
        conn.request(
            "POST", "/v2/events", body=json.dumps(batch()), headers={"Authorization": live.auth()}
        )
        r = conn.getresponse()
        answers.append(
            (
                r.status,
                r.getheader("retry-after"),
                r.getheader("x-mp-rate-limit-exceeded"),
                r.read(),
            )
        )
    conn.close()
    limited = [a for a in answers if a[0] == 429]
    assert answers[0][0] == 202 and limited
    _, retry_after, scope, body = limited[0]
    assert retry_after is not None and int(retry_after) >= 1
    assert scope == "workspace"
    assert json.loads(body)["errors"][0]["code"] == "TOO_MANY_REQUESTS"
    assert live.stored() == len(answers) - len(limited)


def test_a_uvicorn_without_what_the_fast_path_relies_on_turns_it_off(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

    from opencdp.api import fast_http

    assert fast_http._uvicorn_fits()
    monkeypatch.delattr(HttpToolsProtocol, "on_response_complete")
    assert not fast_http._uvicorn_fits()
