"""Open-loop Events API sender that measures ingest-to-Profile-API lag (bench/profile_bench.py).

``python -m bench.lag_client --port P --auth KEY:SECRET --token T --profile-prefix
/userprofile/v1/O/A/W/ --profiles N --rate 500 --duration 15``

Why open loop: the question is "how stale is a profile while the system ingests at a given
rate", so batches must leave at that rate whatever the server does (a closed loop would slow
down with the server and hide the backlog). Each batch is for a different seeded user and
carries a fresh ``bench_marker`` user attribute. Every ``rate / probe_rate``-th batch is a
probe: after its 202 the client polls ``GET {profile_prefix}{mpid}?fields=user_attributes``
every ``--poll-ms``, backing off to ``--poll-backoff`` (20%) of the time waited so far, until
the marker is visible; all polls together are capped at ``--max-poll-rate`` (100/s) so that
probing stays a small load beside the one being measured. The lag reported is from the 202 to the arrival of the first answer
showing the marker: an upper bound, high by at most one poll interval plus one lookup.

The body has the same shape as ``bench/lua/events.lua`` (used to find the maximum rate):
customer_id + email + device stamp of one user, three user attributes, a custom event and a
screen view. Prints one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import resource
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from bench import idp_harness as h
from bench.seed_graph import CITIES, Population

_ENCODE = json.JSONEncoder(separators=(",", ":")).encode


class Conn:
    """One keep-alive HTTP/1.1 connection; responses are framed by Content-Length."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    async def call(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        head = await self.reader.readuntil(b"\r\n\r\n")
        status = int(head[9:12])
        length = 0
        for line in head.split(b"\r\n")[1:]:
            if line[:15].lower() == b"content-length:":
                length = int(line[15:])
                break
        body = await self.reader.readexactly(length) if length else b""
        return status, body


class Pool:
    """A fixed set of connections; callers queue for a free one (no unbounded fan-out)."""

    def __init__(self, host: str, port: int, size: int) -> None:
        self.host, self.port, self.size = host, port, size
        self._free: asyncio.Queue[Conn] = asyncio.Queue()

    async def open(self) -> None:
        for _ in range(self.size):
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self._free.put_nowait(Conn(reader, writer))

    async def call(self, request: bytes) -> tuple[int, bytes]:
        conn = await self._free.get()
        try:
            result = await conn.call(request)
        except BaseException:
            conn.writer.close()  # a broken connection is replaced, not reused
            reader, writer = await asyncio.open_connection(self.host, self.port)
            self._free.put_nowait(Conn(reader, writer))
            raise
        self._free.put_nowait(conn)
        return result


@dataclass
class Stats:
    sent: int = 0
    accepted: int = 0
    non_202: int = 0
    errors: int = 0
    ack_ms: list[float] = field(default_factory=list)
    start_delay_ms: list[float] = field(default_factory=list)
    lags_ms: list[float] = field(default_factory=list)
    probes: int = 0
    not_visible: int = 0
    polls: int = 0
    poll_errors: int = 0


def batch_body(pop: Population, i: int, marker: str, seq: int, now_ms: int) -> bytes:
    doc = {
        "environment": "production",
        "source_request_id": marker,
        "user_identities": {"customer_id": pop.customer_id(i), "email": pop.email(i)},
        "mp_deviceid": pop.device_id(i),
        "device_info": {"platform": "Android", "os_version": "14"},
        "user_attributes": {"bench_marker": marker, "$city": CITIES[i % 8], "visits": seq},
        "events": [
            {
                "event_type": "custom_event",
                "data": {
                    "event_name": "Search",
                    "custom_event_type": "search",
                    "timestamp_unixtime_ms": now_ms,
                    "custom_attributes": {"query": f"q{seq}"},
                },
            },
            {
                "event_type": "screen_view",
                "data": {"screen_name": "Home", "timestamp_unixtime_ms": now_ms},
            },
        ],
    }
    return _ENCODE(doc).encode()


def percentile(values: list[float], q: float) -> float:
    return h.percentile(sorted(values), q)


async def drive(args: argparse.Namespace) -> dict[str, Any]:
    pop = Population(profiles=args.profiles, now_ms=0)
    host = f"Host: 127.0.0.1:{args.port}\r\n".encode()
    basic = base64.b64encode(args.auth.encode())
    post_head = (
        b"POST /v2/events HTTP/1.1\r\n" + host + b"Authorization: Basic " + basic + b"\r\n"
        b"Content-Type: application/json\r\n"
    )
    get_tail = host + f"Authorization: Bearer {args.token}\r\n\r\n".encode()
    senders = Pool("127.0.0.1", args.port, args.connections)
    pollers = Pool("127.0.0.1", args.port, args.poll_connections)
    await senders.open()
    await pollers.open()
    stats = Stats()
    tag = args.tag
    step = 1_000_003 if args.profiles % 1_000_003 else 999_983
    start = int.from_bytes(os.urandom(4), "big") % args.profiles
    probe_every = max(1, round(args.rate / args.probe_rate))
    loop = asyncio.get_running_loop()
    tasks: set[asyncio.Task[None]] = set()

    poll_gap = 1.0 / args.max_poll_rate
    next_poll = [0.0]

    async def poll_slot() -> None:
        """A global cap on lookups/s, so probing cannot become the server's main load."""
        now = time.perf_counter()
        at = max(now, next_poll[0])
        next_poll[0] = at + poll_gap
        if at > now:
            await asyncio.sleep(at - now)

    async def poll(mpid: int, marker: str, t_ack: float) -> None:
        request = (
            f"GET {args.profile_prefix}{mpid}?fields=user_attributes HTTP/1.1\r\n".encode()
            + get_tail
        )
        deadline = t_ack + args.visible_timeout
        while time.perf_counter() < deadline:
            await poll_slot()
            stats.polls += 1
            try:
                status, body = await pollers.call(request)
            except (OSError, asyncio.IncompleteReadError):
                stats.poll_errors += 1
                await asyncio.sleep(args.poll_ms / 1000)
                continue
            if status == 200:
                attrs = json.loads(body).get("user_attributes") or {}
                if attrs.get("bench_marker") == marker:
                    stats.lags_ms.append((time.perf_counter() - t_ack) * 1000)
                    return
            elif status != 404:  # 404: not there yet is impossible for seeded users
                stats.poll_errors += 1
            # Back off in proportion to the wait: resolution stays within --poll-backoff of
            # the lag, and a backlog does not turn the probes into a lookup storm that
            # steals the server from the worker being measured.
            waited = time.perf_counter() - t_ack
            await asyncio.sleep(max(args.poll_ms / 1000, waited * args.poll_backoff))
        stats.not_visible += 1

    async def send(k: int, scheduled: float) -> None:
        i = (start + k * step) % args.profiles
        marker = f"{tag}-{k}"
        body = batch_body(pop, i, marker, k, int(time.time() * 1000))
        request = post_head + b"Content-Length: %d\r\n\r\n" % len(body) + body
        t_send = time.perf_counter()
        stats.start_delay_ms.append((t_send - scheduled) * 1000)
        stats.sent += 1
        try:
            status, _ = await senders.call(request)
        except (OSError, asyncio.IncompleteReadError):
            stats.errors += 1
            return
        t_ack = time.perf_counter()
        stats.ack_ms.append((t_ack - t_send) * 1000)
        if status != 202:
            stats.non_202 += 1
            return
        stats.accepted += 1
        if k % probe_every == 0:
            stats.probes += 1
            spawn(poll(pop.mpid(i), marker, t_ack))

    def spawn(coro: Any) -> None:
        task = loop.create_task(coro)
        tasks.add(task)
        task.add_done_callback(tasks.discard)

    t0 = time.perf_counter()
    k = 0
    while True:
        scheduled = t0 + k / args.rate
        if scheduled >= t0 + args.duration:
            break
        delay = scheduled - time.perf_counter()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        spawn(send(k, scheduled))
        k += 1
    send_window = time.perf_counter() - t0
    deadline = time.perf_counter() + args.visible_timeout + 30
    while tasks and time.perf_counter() < deadline:  # probes spawn polls: wait for those too
        await asyncio.wait(set(tasks), timeout=max(0.01, deadline - time.perf_counter()))
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return {
        "rate": args.rate,
        "duration_s": send_window,
        "sent": stats.sent,
        "accepted_202": stats.accepted,
        "achieved_rate": stats.accepted / send_window if send_window else 0.0,
        "non_202": stats.non_202,
        "socket_errors": stats.errors,
        "ack_p50_ms": percentile(stats.ack_ms, 50),
        "ack_p99_ms": percentile(stats.ack_ms, 99),
        "start_delay_p99_ms": percentile(stats.start_delay_ms, 99),
        "probes": stats.probes,
        "visible": len(stats.lags_ms),
        "not_visible": stats.not_visible,
        "lag_p50_ms": percentile(stats.lags_ms, 50),
        "lag_p90_ms": percentile(stats.lags_ms, 90),
        "lag_p99_ms": percentile(stats.lags_ms, 99),
        "lag_max_ms": max(stats.lags_ms, default=0.0),
        "polls": stats.polls,
        "poll_errors": stats.poll_errors,
        "poll_ms": args.poll_ms,
        "poll_backoff": args.poll_backoff,
        "polls_per_s": stats.polls / send_window if send_window else 0.0,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.lag_client", description=__doc__)
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--auth", required=True, help="server input key:secret")
    p.add_argument("--token", required=True, help="OAuth bearer token for the Profile API")
    p.add_argument("--profile-prefix", required=True, help="/userprofile/v1/{o}/{a}/{w}/")
    p.add_argument("--profiles", type=int, required=True, help="seeded users")
    p.add_argument("--rate", type=float, required=True, help="batches per second")
    p.add_argument("--duration", type=float, default=15.0)
    p.add_argument("--probe-rate", type=float, default=10.0, help="probed batches per second")
    p.add_argument("--poll-ms", type=float, default=10.0, help="shortest poll interval")
    p.add_argument("--poll-backoff", type=float, default=0.2, help="interval / time waited")
    p.add_argument("--max-poll-rate", type=float, default=100.0, help="lookups/s, all probes")
    p.add_argument("--visible-timeout", type=float, default=20.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--poll-connections", type=int, default=4)
    p.add_argument("--tag", default=os.urandom(4).hex())
    args = p.parse_args(argv)
    try:
        import uvloop

        asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())
    except ImportError:
        pass
    result = asyncio.run(drive(args))
    sys.stdout.write("LAGJSON " + json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
