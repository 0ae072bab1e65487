"""Request bodies for the benchmark, and a Python load generator (the fallback for wrk).

Bodies are pre-generated once per run as *templates*: one compact JSON body per line, in which
every ``source_request_id`` value is the placeholder ``SRID_TOKEN``. The load generator (this
module or ``bench/rotate.lua`` under wrk) rotates through the templates and replaces each
placeholder with a fresh id of exactly ``SRID_LEN`` characters. Why this shape:

* unique ids per batch are required: the server de-duplicates on ``source_request_id``, so a
  rotated body with a repeated id would be acknowledged but not stored, and the stored-count
  check would fail (or, worse, the benchmark would measure a cheaper code path);
* ids of a fixed length keep every body's size equal to its template's, so the 256 KiB bulk
  limit can be checked once, at generation time, and ``Content-Length`` can be precomputed;
* generating JSON per request inside the load generator would cost more CPU than the server
  work being measured on a 2-core machine.

Run as ``python -m bench.loadgen --port P --path /v2/events --templates FILE ...``; it prints
one JSON object with counts and latency percentiles. Unlike wrk it stops gracefully (no new
requests after the deadline, in-flight ones are awaited), so its accepted count is exact.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import functools
import json
import random
import resource
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

import msgspec

SRID_LEN = 24
SRID_TOKEN = "#" * SRID_LEN
"""Placeholder for ``source_request_id`` in templates; never produced by the JSON encoder."""

EVENTS_PER_BATCH = 10
BATCHES_PER_BULK = 100

_EVENT_NAMES = ["Search", "Add to Wishlist", "Video Play", "Share", "Login", "Rate Item"]
_CUSTOM_TYPES = ["navigation", "search", "transaction", "user_content", "social", "other"]
_SCREENS = ["Home", "Product Detail", "Cart", "Checkout", "Account", "Search Results"]
_CITIES = ["Berlin", "Austin", "Lyon", "Osaka", "Leeds", "Quito", "Perth", "Oslo"]
_PRODUCTS = [
    ("SKU-1001", "Trail Shoe", "Footwear", 89.99),
    ("SKU-2044", "Rain Jacket", "Outerwear", 149.0),
    ("SKU-3310", "Wool Socks", "Accessories", 14.5),
    ("SKU-4120", "Day Pack 24L", "Bags", 64.0),
]


def make_srid(tag: str, worker: int, seq: int) -> str:
    """``tag`` (8 chars) + worker (2 digits) + sequence (14 digits): always ``SRID_LEN`` long."""
    srid = f"{tag:8.8}{worker % 100:02d}{seq % 10**14:014d}"
    assert len(srid) == SRID_LEN
    return srid


def make_batch(rng: random.Random, user_no: int, now_ms: int) -> dict[str, Any]:
    """One realistic server-to-server batch for one user: 10 events, identities, attributes.

    The mix (6 custom events with 5 attributes, 3 screen views, 1 purchase of a product)
    resembles an app session; values and timestamps vary so batches are not byte-identical.
    Fields are kept compact on purpose: 100 such batches must fit a 256 KB bulk request
    (about 2.5 KB a batch), so per-event ``source_message_id``/``session_uuid`` are left out.
    """
    start = now_ms - rng.randrange(3_600_000)
    kinds = ["custom_event"] * 6 + ["screen_view"] * 3 + ["commerce_event"]
    rng.shuffle(kinds)
    events: list[dict[str, Any]] = []
    for i, kind in enumerate(kinds):
        data: dict[str, Any] = {"timestamp_unixtime_ms": start + i * rng.randrange(500, 20_000)}
        if kind == "custom_event":
            data["event_name"] = rng.choice(_EVENT_NAMES)
            data["custom_event_type"] = rng.choice(_CUSTOM_TYPES)
            data["custom_attributes"] = {
                "screen": rng.choice(_SCREENS),
                "query": f"q{rng.randrange(10_000)}",
                "position": rng.randrange(1, 50),
                "ab_group": rng.choice(["A", "B"]),
                "logged_in": rng.random() < 0.7,
            }
        elif kind == "screen_view":
            data["screen_name"] = rng.choice(_SCREENS)
        else:
            sku, name, category, price = rng.choice(_PRODUCTS)
            qty = rng.randrange(1, 4)
            data["currency_code"] = "USD"
            data["product_action"] = {
                "action": "purchase",
                "transaction_id": f"T{rng.randrange(10**9):09d}",
                "total_amount": round(price * qty, 2),
                "products": [
                    {
                        "id": sku,
                        "name": name,
                        "category": category,
                        "price": price,
                        "quantity": qty,
                    }
                ],
            }
        events.append({"event_type": kind, "data": data})
    ios = user_no % 2 == 0
    return {
        "schema_version": 2,
        "environment": "production",
        "source_request_id": SRID_TOKEN,
        "user_identities": {
            "email": f"user{user_no}@example.com",
            "customer_id": f"cust-{user_no:08d}",
        },
        "device_info": {
            "platform": "iOS" if ios else "Android",
            "os_version": "17.4" if ios else "14",
            "device_model": "iPhone15,2" if ios else "Pixel 8",
            "device_manufacturer": "Apple" if ios else "Google",
            "locale_country": "US",
        },
        "user_attributes": {
            "$firstname": f"First{user_no % 997}",
            "$city": _CITIES[user_no % len(_CITIES)],
            "tier": ["free", "plus", "pro"][user_no % 3],
            "lifetime_orders": user_no % 40,
            "newsletter": user_no % 5 != 0,
        },
        "events": events,
    }


@dataclass(frozen=True)
class TemplateSet:
    """Where the templates were written and what each request carries."""

    path: Path
    count: int
    batches_per_request: int
    events_per_request: int
    max_body_bytes: int
    max_batch_bytes: int


def write_templates(
    path: Path,
    *,
    bodies: int,
    batches_per_body: int,
    bulk: bool,
    seed: int,
    users: int = 50_000,
    now_ms: int | None = None,
) -> TemplateSet:
    """Write ``bodies`` templates; each is one batch object or a JSON array of batches."""
    rng = random.Random(seed)
    now = now_ms if now_ms is not None else int(time.time() * 1000)
    encode = msgspec.json.encode
    max_body = max_batch = 0
    with path.open("wb") as fh:
        for _ in range(bodies):
            batches = [make_batch(rng, rng.randrange(users), now) for _ in range(batches_per_body)]
            max_batch = max(max_batch, *(len(encode(b)) for b in batches))
            body = encode(batches) if bulk else encode(batches[0])
            assert b"\n" not in body
            max_body = max(max_body, len(body))
            fh.write(body + b"\n")
    return TemplateSet(
        path=path,
        count=bodies,
        batches_per_request=batches_per_body,
        events_per_request=batches_per_body * EVENTS_PER_BATCH,
        max_body_bytes=max_body,
        max_batch_bytes=max_batch,
    )


def read_templates(path: Path) -> list[list[bytes]]:
    """Each template split on the placeholder: n placeholders give n + 1 parts."""
    token = SRID_TOKEN.encode()
    return [line.split(token) for line in path.read_bytes().splitlines() if line]


# -- the Python load generator ------------------------------------------------------------------


@dataclass
class Stats:
    latencies_ns: list[int] = field(default_factory=list)
    status: dict[int, int] = field(default_factory=dict)
    with_body_202: int = 0
    socket_errors: int = 0
    sent: int = 0


class _Requests:
    """Rotates through the templates, filling in fresh ids; shared by every connection."""

    def __init__(
        self, templates: list[list[bytes]], head: bytes, tag: str, worker: int, limit: int | None
    ) -> None:
        self._templates = templates
        self._head = head
        self._tag = tag
        self._worker = worker
        self._seq = 0
        self._n = 0
        self.limit = limit
        self.deadline = float("inf")

    def next(self) -> bytes | None:
        if self.limit is not None and self._n >= self.limit:
            return None
        if time.monotonic() >= self.deadline:
            return None
        parts = self._templates[self._n % len(self._templates)]
        self._n += 1
        out: list[bytes] = []
        for part in parts[:-1]:
            out.append(part)
            self._seq += 1
            out.append(make_srid(self._tag, self._worker, self._seq).encode())
        out.append(parts[-1])
        body = b"".join(out)
        return self._head + b"Content-Length: %d\r\n\r\n" % len(body) + body


class _Conn(asyncio.Protocol):
    """One keep-alive connection: send, read one response (Content-Length framed), repeat."""

    def __init__(self, requests: _Requests, stats: Stats, done: asyncio.Future[None]) -> None:
        self._requests = requests
        self._stats = stats
        self._done = done
        self._buf = b""
        self._started = 0
        self._transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports are not asyncio.Transport subclasses, but have the same API.
        self._transport = cast(asyncio.Transport, transport)
        self._send()

    def _send(self) -> None:
        req = self._requests.next()
        if req is None:
            self._finish()
            return
        self._stats.sent += 1
        self._started = time.perf_counter_ns()
        assert self._transport is not None
        self._transport.write(req)

    def data_received(self, data: bytes) -> None:
        self._buf += data
        end = self._buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = self._buf[:end].lower()
        at = head.find(b"content-length:")
        length = 0
        if at >= 0:
            line_end = head.find(b"\r\n", at)
            length = int(head[at + 15 : line_end if line_end >= 0 else None])
        if len(self._buf) < end + 4 + length:
            return
        latency = time.perf_counter_ns() - self._started
        status = int(self._buf[9:12])
        self._buf = self._buf[end + 4 + length :]
        st = self._stats
        st.latencies_ns.append(latency)
        st.status[status] = st.status.get(status, 0) + 1
        if status == 202 and length > 0:
            st.with_body_202 += 1  # a bulk request with some batches rejected
        self._send()

    def connection_lost(self, exc: Exception | None) -> None:
        if not self._done.done():
            self._stats.socket_errors += 1
            self._done.set_result(None)

    def _finish(self) -> None:
        if self._transport is not None:
            self._transport.close()
        if not self._done.done():
            self._done.set_result(None)


def percentile(sorted_values: list[int], q: float) -> float:
    """Nearest-rank percentile of an ascending list (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, round(q / 100 * len(sorted_values) + 0.5) - 1))
    return float(sorted_values[rank])


async def _drive(args: argparse.Namespace) -> dict[str, Any]:
    templates = read_templates(Path(args.templates))
    auth = base64.b64encode(args.auth.encode()).decode()
    head = (
        f"POST {args.path} HTTP/1.1\r\nHost: {args.host}:{args.port}\r\n"
        f"Authorization: Basic {auth}\r\nContent-Type: application/json\r\n"
    ).encode()
    requests = _Requests(templates, head, args.tag, 0, args.requests)
    stats = Stats()
    loop = asyncio.get_running_loop()
    started = time.monotonic()
    if args.requests is None:
        requests.deadline = started + args.duration
    dones: list[asyncio.Future[None]] = []
    for _ in range(args.connections):
        done: asyncio.Future[None] = loop.create_future()
        dones.append(done)
        await loop.create_connection(
            functools.partial(_Conn, requests, stats, done), args.host, args.port
        )
    # Bounded even if the server stops answering: a stuck connection is counted, not awaited.
    _finished, stuck = await asyncio.wait(dones, timeout=args.timeout)
    elapsed = time.monotonic() - started
    lat = sorted(stats.latencies_ns)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    completed = len(lat)
    return {
        "loadgen": "python",
        "duration_s": elapsed,
        "requests": completed,
        "sent": stats.sent,
        "status": {str(k): v for k, v in sorted(stats.status.items())},
        "non_202": completed - stats.status.get(202, 0),
        "accepted_202": stats.status.get(202, 0),
        "partial_202": stats.with_body_202,
        "socket_errors": stats.socket_errors + len(stuck),
        "rps": completed / elapsed if elapsed else 0.0,
        "p50_ms": percentile(lat, 50) / 1e6,
        "p99_ms": percentile(lat, 99) / 1e6,
        "max_ms": (lat[-1] / 1e6) if lat else 0.0,
        "cpu_s": usage.ru_utime + usage.ru_stime,
    }


def _parse(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.loadgen", description=__doc__)
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, required=True)
    p.add_argument("--path", required=True)
    p.add_argument("--auth", default="", help="key:secret for HTTP Basic")
    p.add_argument("--templates", required=True)
    p.add_argument("--tag", required=True, help="8 characters that prefix every id")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--duration", type=float, default=10.0)
    p.add_argument("--requests", type=int, default=None, help="send exactly N, then stop")
    p.add_argument("--timeout", type=float, default=300.0, help="give up on the run after this")
    return p.parse_args(argv)


def _loop_policy() -> None:
    """uvloop when present (it is, via uvicorn[standard]): cheaper per request, so less skew."""
    try:
        import uvloop
    except ImportError:  # plain asyncio still works, just slower
        return
    asyncio.set_event_loop_policy(uvloop.EventLoopPolicy())


def main(argv: list[str] | None = None) -> int:
    args = _parse(argv)
    _loop_policy()
    result = asyncio.run(_drive(args))
    sys.stdout.write(json.dumps(result) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
