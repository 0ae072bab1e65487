"""Ingestion benchmark: opencdp's Events API against a bare ASGI baseline, and the worker drain.

``python -m bench.run [--database-url URL] [--duration 10] [--connections 32]
[--only events,bulk,drain,bare]`` (``make bench BENCH_ARGS=...``).

Everything runs as separate processes on loopback, as in a deployment: ``opencdp serve`` (and
``opencdp worker``) through the real CLI, the baseline (``bench/bare_app.py``) under the same
uvicorn options, and a load generator that is neither of them (wrk with ``bench/rotate.lua``
when it is installed, else ``python -m bench.loadgen``). On a 2-core machine a load generator
in the server's process, or an in-process test client, would measure something else.

Phases (each bounded in time; the whole run stays under ~3 minutes with the defaults):

``bare``   the baseline with the same single-batch bodies as ``events``;
``events`` ``POST /v2/events``, one 10-event batch per request;
``bulk``   ``POST /v2/bulkevents``, 100 batches (1,000 events, < 256 KB) per request;
``drain``  a fresh store is filled with >= 200,000 events by ``serve --no-worker``, which is
           then stopped; ``opencdp worker`` is started and timed until the inbox is empty.

Correctness is checked, not assumed: every non-202 answer is counted (it must be 0), and after
``events``/``bulk`` the server is stopped and the rows in the ``inbox`` table are compared with
what the load generator saw acknowledged and with the server's own accepted counter.

Results: a table on stdout, ``bench/results/<backend>.json``, and the backend's section of
``bench/README.md`` (rewritten between its markers).
"""

from __future__ import annotations

import argparse
import contextlib
import datetime as dt
import http.client
import json
import math
import os
import platform
import shutil
import signal
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.idp_harness import (  # shared with the identity and Profile API benchmarks
    Proc,
    cpu_seconds,
    free_port,
    log,
    machine_busy_seconds,
    wait_until_quiet,
)
from bench.loadgen import BATCHES_PER_BULK, EVENTS_PER_BATCH, TemplateSet, write_templates

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
RESULTS = BENCH / "results"
README = BENCH / "README.md"
LUA = BENCH / "rotate.lua"
PHASES = ("bare", "events", "bulk", "drain")

EVENTS_RATIO_TARGET = 0.50
BULK_EVENTS_TARGET = 100_000.0
DRAIN_EVENTS_TARGET = 20_000.0


# -- small utilities ----------------------------------------------------------------------------


def http_get(port: int, path: str, timeout: float = 5.0) -> tuple[int, bytes]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request("GET", path)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def parse_metrics(text: str) -> dict[str, float]:
    """Prometheus text → {'name{labels}': value}; comments skipped."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        name, _, value = line.rpartition(" ")
        with contextlib.suppress(ValueError):
            out[name] = float(value)
    return out


# -- processes ------------------------------------------------------------------------------------


def run_measured(argv: list[str], timeout: float) -> tuple[str, str, float]:
    """Run a load generator to completion; returns (stdout, stderr, its CPU seconds).

    ``os.wait4`` gives the child's own rusage, so the load generator's cost on the shared
    2 cores is reported next to the numbers it produced.
    """
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        env = dict(os.environ, PYTHONPATH=str(ROOT))
        p = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT, env=env)
        deadline = time.monotonic() + timeout
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                p.kill()
                raise RuntimeError(f"load generator overran {timeout}s: {argv}")
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if p.returncode != 0:
        raise RuntimeError(f"load generator failed ({p.returncode}): {stderr}\n{stdout}")
    return stdout, stderr, usage.ru_utime + usage.ru_stime


# -- stores ----------------------------------------------------------------------------------------


class Store:
    """One fresh opencdp store: a temp SQLite directory, or a new database on a PostgreSQL."""

    def __init__(self, workdir: Path, name: str, admin_url: str | None) -> None:
        self.data_dir = workdir / name
        self.data_dir.mkdir(parents=True)
        self.admin_url = admin_url
        self.url: str | None = None
        self.db_name: str | None = None
        if admin_url:
            self.db_name = f"opencdp_bench_{os.getpid()}_{name}_{int(time.time())}"
            with self._pg(admin_url) as conn:
                conn.execute(f'CREATE DATABASE "{self.db_name}"')
            parts = urllib.parse.urlsplit(admin_url)
            self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.db_name))

    @staticmethod
    @contextlib.contextmanager
    def _pg(url: str) -> Iterator[Any]:
        import psycopg

        with psycopg.connect(url, autocommit=True) as conn:
            yield conn

    def cli_args(self) -> list[str]:
        args = ["--data-dir", str(self.data_dir)]
        return [*args, "--database-url", self.url] if self.url else args

    def scalar(self, sql: str) -> int:
        if self.url:
            with self._pg(self.url) as conn:
                row = conn.execute(sql).fetchone()
        else:
            conn = sqlite3.connect(self.data_dir / "opencdp.db", timeout=30)
            try:
                row = conn.execute(sql).fetchone()
            finally:
                conn.close()
        return int(row[0]) if row else 0

    def inbox_total(self) -> int:
        return self.scalar("SELECT count(*) FROM inbox")

    def inbox_pending(self) -> int:
        return self.scalar("SELECT count(*) FROM inbox WHERE NOT processed")

    def backend_cpu(self) -> dict[int, float]:
        """CPU seconds so far of each PostgreSQL backend serving this store's database.

        The database's work for opencdp happens in those processes, not in the server's, so
        without this it would be reported as other load on the machine.
        """
        if not self.url:
            return {}
        sql = "SELECT pid FROM pg_stat_activity WHERE datname = %s AND pid <> pg_backend_pid()"
        with self._pg(self.url) as conn:
            pids = [int(r[0]) for r in conn.execute(sql, (self.db_name,))]
        return {pid: cpu_seconds(pid) for pid in pids}

    def events_total(self) -> int:
        return self.scalar("SELECT count(*) FROM events")

    def drop(self) -> None:
        if self.admin_url and self.db_name:
            with self._pg(self.admin_url) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


# -- the run -------------------------------------------------------------------------------------


@dataclass
class Load:
    """What one load-generator run saw (its JSON) plus the CPU it cost."""

    phase: str
    target: str
    loadgen: str
    duration_s: float
    requests: int
    accepted_202: int
    non_202: int
    partial_202: int
    socket_errors: int
    status: dict[str, int]
    p50_ms: float
    p99_ms: float
    max_ms: float
    loadgen_cpu_s: float
    server_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    other_cpu_s: float = 0.0
    batches_per_request: int = 1
    events_per_request: int = EVENTS_PER_BATCH
    group_commit: dict[str, float] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def server_cpu_us_per_request(self) -> float:
        return 1e6 * self.server_cpu_s / self.requests if self.requests else 0.0

    @property
    def accepted_batches(self) -> int:
        return self.accepted_202 * self.batches_per_request

    @property
    def events_per_s(self) -> float:
        if not self.duration_s:
            return 0.0
        return self.accepted_202 * self.events_per_request / self.duration_s


@dataclass
class Row:
    metric: str
    opencdp: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    result: str = "info"


@dataclass
class Run:
    args: argparse.Namespace
    workdir: Path
    run_id: str
    loadgen: str
    loads: list[Load] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    drain: dict[str, Any] = field(default_factory=dict)
    profiles: dict[str, dict[str, Any]] = field(default_factory=dict)
    stores: list[Store] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    pair_ratios: list[float] = field(default_factory=list)

    @property
    def backend(self) -> str:
        return "postgresql" if self.args.database_url else "sqlite"

    # -- plumbing ---------------------------------------------------------------------------
    def store(self, name: str) -> Store:
        s = Store(self.workdir, name, self.args.database_url)
        self.stores.append(s)
        return s

    def cli(self, *argv: str) -> list[str]:
        return [sys.executable, "-m", "opencdp.cli", *argv]

    def init(self, store: Store) -> dict[str, Any]:
        out = subprocess.run(
            self.cli("init", "--json", *store.cli_args()),
            capture_output=True,
            text=True,
            cwd=ROOT,
            timeout=120,
            check=False,
        )
        if out.returncode != 0:
            raise RuntimeError(f"opencdp init failed:\n{out.stderr[-3000:]}")
        creds: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
        return creds

    def serve(self, store: Store, port: int, *, worker: bool, name: str) -> Proc:
        argv = self.cli("serve", "--host", "127.0.0.1", "--port", str(port), *store.cli_args())
        if not worker:
            argv.append("--no-worker")
        if self.args.api_processes > 1:
            argv += ["--api-processes", str(self.args.api_processes)]
        proc = Proc(name, argv, self.workdir / f"{name}.log")
        proc.wait_http(port)
        return proc

    def templates(self, name: str, *, bulk: bool, seed: int) -> TemplateSet:
        per_body = BATCHES_PER_BULK if bulk else 1
        t = write_templates(
            self.workdir / f"{name}.templates",
            bodies=16 if bulk else 512,
            batches_per_body=per_body,
            bulk=bulk,
            seed=seed,
        )
        if t.max_body_bytes > max_request_bytes():
            raise RuntimeError(f"generated body of {t.max_body_bytes} bytes is over the limit")
        return t

    def load(
        self,
        phase: str,
        target: str,
        port: int,
        path: str,
        auth: str,
        t: TemplateSet,
        *,
        duration: float | None = None,
        requests: int | None = None,
        connections: int | None = None,
        server_pid: int | None = None,
        db: Store | None = None,
        force_python: bool = False,
    ) -> Load:
        """One load-generator run; ``requests`` (exact count) always uses the Python one."""
        conns = connections or self.args.connections
        # 4 hex of run id + the index of this load run: never repeats within a run, so no
        # batch id is ever reused (a reused one would be de-duplicated, not stored).
        tag = f"{self.run_id}{len(self.loads):04d}"
        use_wrk = self.loadgen == "wrk" and requests is None and not force_python
        if use_wrk:
            secs = max(1, round(duration or 1))
            argv = [
                "wrk",
                "-t",
                str(self.args.wrk_threads),
                "-c",
                str(conns),
                "-d",
                f"{secs}s",
                "--timeout",
                "30s",
                "-s",
                str(LUA),
                f"http://127.0.0.1:{port}{path}",
                "--",
                str(t.path),
                path,
                auth,
                tag,
            ]
        else:
            argv = [sys.executable, "-m", "bench.loadgen", "--port", str(port)]
            argv += ["--path", path, "--auth", auth, "--templates", str(t.path)]
            argv += ["--tag", tag, "--connections", str(conns)]
            argv += ["--requests", str(requests)] if requests else ["--duration", str(duration)]
        cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
        db0 = db.backend_cpu() if db is not None else {}
        busy0 = machine_busy_seconds()
        stdout, _err, lg_cpu = run_measured(argv, timeout=(duration or 0) + 180)
        busy1 = machine_busy_seconds()
        db1 = db.backend_cpu() if db is not None else {}
        cpu1 = cpu_seconds(server_pid) if server_pid else 0.0
        # Backends that appeared during the run count from zero.
        db_cpu = sum(v - db0.get(pid, 0.0) for pid, v in db1.items())
        doc = _last_json(stdout, "BENCHJSON " if use_wrk else "")
        result = Load(
            phase=phase,
            target=target,
            loadgen=str(doc["loadgen"]),
            duration_s=float(doc["duration_s"]),
            requests=int(doc["requests"]),
            accepted_202=int(doc["accepted_202"]),
            non_202=int(doc["non_202"]),
            partial_202=int(doc["partial_202"]),
            socket_errors=int(doc.get("socket_errors", 0)) + int(doc.get("timeouts", 0)),
            status={str(k): int(v) for k, v in doc["status"].items()},
            p50_ms=float(doc["p50_ms"]),
            p99_ms=float(doc["p99_ms"]),
            max_ms=float(doc["max_ms"]),
            loadgen_cpu_s=lg_cpu,
            server_cpu_s=cpu1 - cpu0,
            db_cpu_s=db_cpu,
            other_cpu_s=(
                max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - lg_cpu - db_cpu) if server_pid else 0.0
            ),
            batches_per_request=t.batches_per_request,
            events_per_request=t.events_per_request,
        )
        self.loads.append(result)
        log(
            f"  {phase}: {result.rps:,.0f} req/s, {result.events_per_s:,.0f} events/s, "
            f"p50 {result.p50_ms:.2f} ms, p99 {result.p99_ms:.2f} ms, "
            f"non-202 {result.non_202}"
            + (
                f", CPU cores: server {result.server_cpu_s / result.duration_s:.2f}, "
                f"loadgen {lg_cpu / result.duration_s:.2f}, "
                f"postgres backends {db_cpu / result.duration_s:.2f}, "
                f"other {result.other_cpu_s / result.duration_s:.2f}"
                if server_pid
                else ""
            )
        )
        return result

    def measure(
        self,
        phase: str,
        target: str,
        port: int,
        path: str,
        auth: str,
        t: TemplateSet,
        pid: int,
        db: Store | None = None,
    ) -> Load:
        """Warm-up (counted for correctness, not reported), then the measured window."""
        if self.args.warmup > 0:
            self.load(phase + "w", target, port, path, auth, t, duration=self.args.warmup)
        before = self.group_commit_counters(port) if target == "opencdp" else {}
        profiler = self.profile_start(phase, pid, self.args.duration)
        try:
            result = self.load(
                phase,
                target,
                port,
                path,
                auth,
                t,
                duration=self.args.duration,
                server_pid=pid,
                db=db,
            )
        finally:
            self.profile_stop(phase, profiler)
        if before:
            after = self.group_commit_counters(port)
            commits = after["commits"] - before["commits"]
            rows = after["rows"] - before["rows"]
            result.group_commit = {
                "commits": commits,
                "rows": rows,
                "commits_per_s": commits / result.duration_s,
                "rows_per_commit": rows / commits if commits else 0.0,
            }
            log(
                f"  {phase}: group commit {commits / result.duration_s:,.0f} commits/s, "
                f"{result.group_commit['rows_per_commit']:.1f} batches per commit"
            )
        return result

    @staticmethod
    def group_commit_counters(port: int) -> dict[str, float]:
        """The server's own view of batching: how many inbox transactions, how many rows."""
        m = parse_metrics(http_get(port, "/metrics", timeout=30)[1].decode())
        return {
            "commits": m.get("opencdp_ingestion_group_commits_total", 0.0),
            "rows": m.get("opencdp_ingestion_group_commit_rows_total", 0.0),
        }

    # -- optional py-spy profile ------------------------------------------------------------
    def profile_start(
        self, phase: str, pid: int, duration: float
    ) -> subprocess.Popen[bytes] | None:
        if not self.args.profile:
            return None
        out = RESULTS / f"profile-{self.backend}-{phase}.txt"
        argv = [self.args.py_spy, "record", "--pid", str(pid), "--rate", "200", "--threads"]
        argv += ["--nonblocking", "--format", "raw", "-o", str(out)]
        if self.args.profile_gil:
            argv.append("--gil")
        argv += ["--duration", str(max(1, math.ceil(duration)))]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def profile_stop(self, phase: str, proc: subprocess.Popen[bytes] | None) -> None:
        if proc is None:
            return
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
        path = RESULTS / f"profile-{self.backend}-{phase}.txt"
        if path.exists():
            self.profiles[phase] = summarize_profile(path)

    # -- phases -----------------------------------------------------------------------------
    def start_bare(self) -> tuple[Proc, int]:
        port = free_port()
        out = self.workdir / "bare.out"
        argv = [sys.executable, "-m", "bench.bare_app", "--port", str(port), "--out", str(out)]
        if self.args.api_processes > 1:  # the baseline gets as many processes as opencdp
            argv += ["--workers", str(self.args.api_processes)]
        proc = Proc("bare", argv, self.workdir / "bare.log")
        log(f"bare baseline on :{port}")
        proc.wait_http(port)
        return proc, port

    def stop_bare(self, proc: Proc) -> None:
        proc.stop()
        out = self.workdir / "bare.out"
        lines = sum(1 for _ in out.open("rb")) if out.exists() else 0
        acked = sum(x.accepted_batches for x in self.loads if x.target == "bare")
        self.checks["bare_stored_lines"] = lines
        self.checks["bare_acked"] = acked

    def phase_bare(self, single: TemplateSet) -> None:
        proc, port = self.start_bare()
        try:
            self.measure("bare", "bare", port, "/v2/events", "bench:bench", single, proc.pid)
        finally:
            self.stop_bare(proc)

    def measure_pairs(
        self,
        bare: tuple[Proc, int],
        port: int,
        auth: str,
        single: TemplateSet,
        pid: int,
        db: Store | None,
    ) -> None:
        """Bare and /v2/events in alternating windows (bare first in odd pairs, events first
        in even ones), so that a change in the machine's speed during the run hits both alike;
        each pair gives one ratio. Same total measured time per target as ``--pairs 1``."""
        bare_proc, bare_port = bare
        n = self.args.pairs
        window = self.args.duration / n
        if self.args.warmup > 0:
            self.load(
                "barew",
                "bare",
                bare_port,
                "/v2/events",
                "bench:bench",
                single,
                duration=self.args.warmup,
            )
            self.load(
                "eventsw", "opencdp", port, "/v2/events", auth, single, duration=self.args.warmup
            )
        for i in range(1, n + 1):

            def run_bare(i: int = i) -> Load:
                return self.load(
                    f"bare.{i}",
                    "bare",
                    bare_port,
                    "/v2/events",
                    "bench:bench",
                    single,
                    duration=window,
                    server_pid=bare_proc.pid,
                )

            def run_events(i: int = i) -> Load:
                before = self.group_commit_counters(port)
                result = self.load(
                    f"events.{i}",
                    "opencdp",
                    port,
                    "/v2/events",
                    auth,
                    single,
                    duration=window,
                    server_pid=pid,
                    db=db,
                )
                after = self.group_commit_counters(port)
                result.group_commit = {
                    "commits": after["commits"] - before["commits"],
                    "rows": after["rows"] - before["rows"],
                }
                return result

            if i % 2:
                b, e = run_bare(), run_events()
            else:
                e, b = run_events(), run_bare()
            if b.rps:
                self.pair_ratios.append(e.rps / b.rps)
                log(f"  pair {i}: ratio {e.rps / b.rps:.3f}")

    def phase_ingest(
        self,
        single: TemplateSet | None,
        bulk: TemplateSet | None,
        bare: tuple[Proc, int] | None = None,
    ) -> None:
        store = self.store("ingest")
        creds = self.init(store)
        auth = f"{creds['api_key']}:{creds['api_secret']}"
        port = free_port()
        log(f"opencdp serve ({self.backend}) on :{port}, worker={self.args.with_worker}")
        proc = self.serve(store, port, worker=self.args.with_worker, name="serve-ingest")
        metrics: dict[str, float] = {}
        db = store if store.url else None
        try:
            if single is not None and bare is not None:
                self.measure_pairs(bare, port, auth, single, proc.pid, db)
            elif single is not None:
                self.measure("events", "opencdp", port, "/v2/events", auth, single, proc.pid, db)
            if bulk is not None:
                self.measure("bulk", "opencdp", port, "/v2/bulkevents", auth, bulk, proc.pid, db)
            time.sleep(0.5)  # in-flight requests abandoned by wrk at its deadline finish
            metrics = parse_metrics(http_get(port, "/metrics", timeout=30)[1].decode())
        finally:
            code = proc.stop()
        stored = store.inbox_total()
        server_accepted = int(
            sum(
                v
                for k, v in metrics.items()
                if k.startswith("opencdp_ingestion_batches_accepted_total{")
            )
        )
        loads = [x for x in self.loads if x.target == "opencdp"]
        acked = sum(x.accepted_batches for x in loads)
        # wrk stops at its deadline without waiting for in-flight requests; the server may
        # still commit (and count) those, so the client-side count can be short by at most
        # one request per connection for each wrk run.
        slack = sum(
            self.args.connections * x.batches_per_request for x in loads if x.loadgen == "wrk"
        )
        self.checks.update(
            {
                "serve_exit_code": code,
                "inbox_rows": stored,
                "server_accepted_batches": server_accepted,
                "client_acked_batches": acked,
                "client_slack_batches": slack,
                # /metrics is per process: with --api-processes one scrape sees one of them
                "stored_matches_server": stored == server_accepted
                or (self.args.api_processes > 1 and stored >= server_accepted),
                "stored_matches_client": acked <= stored <= acked + slack,
            }
        )

    def phase_drain(self, bulk: TemplateSet) -> None:
        store = self.store("drain")
        creds = self.init(store)
        auth = f"{creds['api_key']}:{creds['api_secret']}"
        requests = math.ceil(self.args.drain_events / bulk.events_per_request)
        port = free_port()
        log(f"drain: filling a fresh inbox with {requests * bulk.events_per_request:,} events")
        proc = self.serve(store, port, worker=False, name="serve-fill")
        try:
            fill = self.load(
                "fill", "fill", port, "/v2/bulkevents", auth, bulk, requests=requests, connections=8
            )
        finally:
            proc.stop()
        batches = store.inbox_pending()
        events = batches * EVENTS_PER_BATCH
        worker_argv = self.cli("worker", *store.cli_args())
        log(f"drain: {batches:,} batches pending; starting opencdp worker")
        t_spawn = time.monotonic()
        worker = Proc("worker", worker_argv, self.workdir / "worker.log")
        profiler = self.profile_start("drain", worker.pid, self.args.drain_timeout)
        samples: list[tuple[float, int]] = [(t_spawn, batches)]
        try:
            deadline = t_spawn + self.args.drain_timeout
            while time.monotonic() < deadline and worker.alive():
                time.sleep(0.1)
                depth = store.inbox_pending()
                samples.append((time.monotonic(), depth))
                if depth == 0:
                    break
            worker_cpu = cpu_seconds(worker.pid)
        finally:
            if profiler is not None:
                profiler.send_signal(signal.SIGINT)
            self.profile_stop("drain", profiler)
            worker_code = worker.stop()
        t_end, left = samples[-1]
        # The drain starts at the last sample that still saw the full inbox: conservative by
        # at most one poll interval, and free of the worker's start-up (imports, migrations).
        t_start = max(t for t, d in samples if d == batches)
        done_batches = batches - left
        stored_events = store.events_total()
        self.drain = {
            "fill_events": fill.accepted_202 * bulk.events_per_request,
            "fill_non_202": fill.non_202,
            "batches": batches,
            "events": events,
            "batches_left": left,
            "drained": left == 0,
            "seconds": t_end - t_start,
            "seconds_incl_startup": t_end - t_spawn,
            "events_per_s": done_batches * EVENTS_PER_BATCH / max(1e-9, t_end - t_start),
            "events_per_s_incl_startup": done_batches * EVENTS_PER_BATCH / (t_end - t_spawn),
            "events_stored": stored_events,
            "events_stored_ok": stored_events == done_batches * EVENTS_PER_BATCH,
            "worker_exit_code": worker_code,
            "worker_cpu_s": worker_cpu,
            "worker_cores": worker_cpu / (t_end - t_spawn),
            "samples": [(round(t - t_spawn, 3), d) for t, d in samples],
        }
        log(
            f"  drain: {done_batches * EVENTS_PER_BATCH:,} events in {t_end - t_start:.2f}s "
            f"→ {self.drain['events_per_s']:,.0f} events/s "
            f"({self.drain['events_per_s_incl_startup']:,.0f} incl. start-up); "
            f"events table {stored_events:,}"
        )

    def guarded(self, name: str, fn: Callable[..., None], *args: Any) -> None:
        """Run a phase; a failure is recorded (and fails the run) but the others still run
        and the table still shows what was measured."""
        try:
            fn(*args)
        except Exception as exc:
            log(f"phase {name} failed: {exc}")
            self.errors.append(f"{name}: {str(exc).strip().splitlines()[-1][:300]}")

    def cleanup(self) -> None:
        for s in self.stores:
            try:
                s.drop()
            except Exception as exc:
                log(f"could not drop {s.db_name}: {exc}")
        if not self.args.keep:
            shutil.rmtree(self.workdir, ignore_errors=True)
        else:
            log(f"kept {self.workdir}")


def _last_json(stdout: str, marker: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(marker) and line[len(marker) :].lstrip().startswith("{"):
            doc: dict[str, Any] = json.loads(line[len(marker) :])
            return doc
    raise RuntimeError(f"no result from the load generator:\n{stdout[-2000:]}")


def max_request_bytes() -> int:
    """The server's own request limit when importable; else the conservative 256,000."""
    try:
        from opencdp.events.limits import MAX_REQUEST_BYTES

        return int(MAX_REQUEST_BYTES)
    except Exception:
        return 256_000


def summarize_profile(path: Path, n: int = 8) -> dict[str, Any]:
    """Per thread, from py-spy's collapsed stacks ("raw" format, recorded with ``--threads``):
    the share of samples, the hottest leaf frames (self time) and the hottest opencdp frames
    counted inclusively (time in the function and below it), as percent of that thread's
    samples. Inclusive opencdp frames answer "which of our functions costs the time", which
    leaf frames (mostly inside SQLAlchemy, uvicorn or C) alone do not.
    """
    threads: dict[str, dict[str, Any]] = {}
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        name = frames[0].split(": ", 1)[-1] if frames[0].startswith("thread ") else "?"
        t = threads.setdefault(name, {"samples": 0, "self": Counter(), "incl": Counter()})
        k = int(count)
        total += k
        t["samples"] += k
        t["self"][frames[-1]] += k
        for frame in set(frames[1:]):
            if "(opencdp/" in frame and "(opencdp/cli.py" not in frame:
                t["incl"][frame] += k
    out: dict[str, Any] = {}
    for name, t in sorted(threads.items(), key=lambda kv: -kv[1]["samples"]):
        k = t["samples"]
        out[name] = {
            "share_pct": round(100.0 * k / total, 1) if total else 0.0,
            "samples": k,
            "self": [(f, round(100.0 * c / k, 1)) for f, c in t["self"].most_common(n)],
            "opencdp_inclusive": [
                (f, round(100.0 * c / k, 1)) for f, c in t["incl"].most_common(n)
            ],
        }
    return out


# -- reporting ----------------------------------------------------------------------------------


def _n(x: float) -> str:
    return f"{x:,.0f}"


def _ms(x: float) -> str:
    return f"{x:.2f} ms"


def _combined(phase: str, windows: list[Load]) -> Load:
    """One phase's alternating windows as one load: counts, times and CPU add up; p50 and p99
    are the median of the windows' (wrk reports percentiles, not its histogram)."""
    status: dict[str, int] = {}
    for w in windows:
        for k, v in w.status.items():
            status[k] = status.get(k, 0) + v
    commits = sum(w.group_commit.get("commits", 0.0) for w in windows)
    rows = sum(w.group_commit.get("rows", 0.0) for w in windows)
    duration = sum(w.duration_s for w in windows)
    return Load(
        phase=phase,
        target=windows[0].target,
        loadgen=windows[0].loadgen,
        duration_s=duration,
        requests=sum(w.requests for w in windows),
        accepted_202=sum(w.accepted_202 for w in windows),
        non_202=sum(w.non_202 for w in windows),
        partial_202=sum(w.partial_202 for w in windows),
        socket_errors=sum(w.socket_errors for w in windows),
        status=status,
        p50_ms=statistics.median(w.p50_ms for w in windows),
        p99_ms=statistics.median(w.p99_ms for w in windows),
        max_ms=max(w.max_ms for w in windows),
        loadgen_cpu_s=sum(w.loadgen_cpu_s for w in windows),
        server_cpu_s=sum(w.server_cpu_s for w in windows),
        db_cpu_s=sum(w.db_cpu_s for w in windows),
        other_cpu_s=sum(w.other_cpu_s for w in windows),
        batches_per_request=windows[0].batches_per_request,
        events_per_request=windows[0].events_per_request,
        group_commit=(
            {
                "commits": commits,
                "rows": rows,
                "commits_per_s": commits / duration if duration else 0.0,
                "rows_per_commit": rows / commits if commits else 0.0,
            }
            if commits
            else {}
        ),
    )


def measured_loads(run: Run) -> dict[str, Load]:
    """The reported load per phase; a phase measured in windows (``--pairs``) combined."""
    by = {x.phase: x for x in run.loads if "." not in x.phase}
    for phase in ("bare", "events"):
        windows = [x for x in run.loads if x.phase.startswith(phase + ".")]
        if windows:
            by[phase] = _combined(phase, windows)
    return by


def build_rows(run: Run) -> list[Row]:
    by = measured_loads(run)
    bare, ev, bulk = by.get("bare"), by.get("events"), by.get("bulk")
    rows: list[Row] = []
    if ev is not None:
        ratio = ev.rps / bare.rps if bare and bare.rps else None
        if run.pair_ratios:
            ratio = statistics.median(run.pair_ratios)
        rows.append(
            Row(
                "/v2/events requests/s",
                _n(ev.rps),
                _n(bare.rps) if bare else "-",
                f"{ratio:.2f}" if ratio is not None else "-",
                f">= {EVENTS_RATIO_TARGET:.2f} x bare",
                ("pass" if ratio >= EVENTS_RATIO_TARGET else "FAIL")
                if ratio is not None
                else "n/a",
            )
        )
        if run.pair_ratios:
            rows.append(
                Row(
                    "/v2/events ratio per window pair",
                    " ".join(f"{r:.2f}" for r in run.pair_ratios),
                    ratio=f"{min(run.pair_ratios):.2f}-{max(run.pair_ratios):.2f}",
                )
            )
        rows.append(Row("/v2/events accepted events/s", _n(ev.events_per_s)))
        for label, a, b in (
            ("p50", ev.p50_ms, bare and bare.p50_ms),
            ("p99", ev.p99_ms, bare and bare.p99_ms),
        ):
            rows.append(
                Row(
                    f"/v2/events {label} latency",
                    _ms(a),
                    _ms(b) if b else "-",
                    f"{a / b:.2f}" if b else "-",
                )
            )
        # CPU per request is much less sensitive to other load on the machine than req/s;
        # when the server is CPU-bound its inverse ratio predicts the throughput ratio.
        a_us, b_us = ev.server_cpu_us_per_request, bare.server_cpu_us_per_request if bare else 0
        rows.append(
            Row(
                "/v2/events server CPU per request",
                f"{a_us:,.0f} us",
                f"{b_us:,.0f} us" if b_us else "-",
                f"{a_us / b_us:.2f}" if b_us else "-",
            )
        )
        if ev.db_cpu_s:
            rows.append(
                Row(
                    "/v2/events PostgreSQL CPU per request",
                    f"{1e6 * ev.db_cpu_s / ev.requests:,.0f} us",
                )
            )
    elif bare is not None:
        rows.append(Row("bare requests/s", "-", _n(bare.rps)))
    if bulk is not None:
        sqlite = run.backend == "sqlite"
        ok = bulk.events_per_s >= BULK_EVENTS_TARGET
        rows.append(
            Row(
                "/v2/bulkevents accepted events/s",
                _n(bulk.events_per_s),
                target=f">= {_n(BULK_EVENTS_TARGET)}" + ("" if sqlite else " (SQLite)"),
                result=("pass" if ok else "FAIL") if sqlite else "info",
            )
        )
        rows.append(Row("/v2/bulkevents requests/s", _n(bulk.rps)))
        rows.append(
            Row(
                "/v2/bulkevents server CPU per batch",
                f"{bulk.server_cpu_us_per_request / bulk.batches_per_request:,.0f} us",
            )
        )
        if bulk.db_cpu_s and bulk.requests:
            per_batch = 1e6 * bulk.db_cpu_s / bulk.requests / bulk.batches_per_request
            rows.append(Row("/v2/bulkevents PostgreSQL CPU per batch", f"{per_batch:,.0f} us"))
        rows.append(Row("/v2/bulkevents p50 latency", _ms(bulk.p50_ms)))
        rows.append(Row("/v2/bulkevents p99 latency", _ms(bulk.p99_ms)))
    if run.drain:
        d = run.drain
        ok = d["drained"] and d["events_per_s"] >= DRAIN_EVENTS_TARGET
        rows.append(
            Row(
                "worker drain events/s",
                _n(d["events_per_s"]),
                target=f">= {_n(DRAIN_EVENTS_TARGET)}",
                result="pass" if ok else "FAIL",
            )
        )
        rows.append(
            Row(
                "worker process CPU during drain",
                f"{d['worker_cores']:.2f} cores "
                f"({1e6 * d['worker_cpu_s'] / max(1, d['events']):.0f} us per event)",
            )
        )
        rows.append(
            Row(
                "worker drain incl. start-up",
                f"{_n(d['events_per_s_incl_startup'])} ({d['events']:,} ev, "
                f"{d['seconds_incl_startup']:.1f} s)",
            )
        )
    measured = [x for p, x in by.items() if p in ("bare", "events", "bulk")]
    if measured:
        worst = max(measured, key=lambda x: x.other_cpu_s / x.duration_s)
        other = worst.other_cpu_s / worst.duration_s
        rows.append(
            Row(
                "other CPU on the machine (max)",
                f"{other:.2f} cores ({worst.phase})",
                target="< 0.30",
                result="ok" if other < 0.3 else "NOISY",
            )
        )
    for error in run.errors:
        rows.append(Row("phase failed", error, target="none", result="FAIL"))
    non202 = sum(x.non_202 + x.partial_202 + x.socket_errors for x in run.loads)
    rows.append(
        Row("non-202 responses (all phases)", str(non202), target="0", result=_pf(non202 == 0))
    )
    c = run.checks
    if "inbox_rows" in c:
        ok = c["stored_matches_server"] and c["stored_matches_client"]
        detail = (
            f"{c['inbox_rows']:,} stored / {c['server_accepted_batches']:,} server-accepted / "
            f"{c['client_acked_batches']:,} client-acked"
        )
        rows.append(Row("inbox batches == accepted", detail, target="equal", result=_pf(ok)))
    if run.drain:
        rows.append(
            Row(
                "events table == drained events",
                f"{run.drain['events_stored']:,}",
                target="equal",
                result=_pf(run.drain["events_stored_ok"]),
            )
        )
    if "bare_stored_lines" in c:
        ok = c["bare_stored_lines"] == c["bare_acked"] or run.loadgen == "wrk"
        rows.append(
            Row(
                "bare: lines written >= acked",
                f"{c['bare_stored_lines']:,} / {c['bare_acked']:,}",
                target=">=",
                result=_pf(c["bare_stored_lines"] >= c["bare_acked"] and ok),
            )
        )
    return rows


def _pf(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def render_text(rows: list[Row]) -> str:
    head = Row("metric", "opencdp", "baseline", "ratio", "target", "result")
    table = [head, *rows]
    cols = [list(asdict(r).values()) for r in table]
    widths = [max(len(str(c[i])) for c in cols) for i in range(6)]
    lines = []
    for i, c in enumerate(cols):
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: list[Row]) -> str:
    out = [
        "| metric | opencdp | baseline | ratio | target | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    for r in rows:
        out.append(
            f"| {r.metric} | {r.opencdp} | {r.baseline} | {r.ratio} | {r.target} | {r.result} |"
        )
    return "\n".join(out)


def machine_notes(run: Run) -> dict[str, Any]:
    cpu = "unknown"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    notes: dict[str, Any] = {
        "cpus": os.cpu_count(),
        "cpu_model": cpu,
        "python": platform.python_version(),
        "sqlite": sqlite3.sqlite_version,
        "kernel": platform.release(),
        "loadgen": run.loadgen,
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "src_dirty": bool(_git("status", "--porcelain", "--", "src")),
    }
    with contextlib.suppress(Exception):
        import uvicorn

        notes["uvicorn"] = uvicorn.__version__
    if run.loadgen == "wrk":
        with contextlib.suppress(OSError):
            v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
            notes["wrk"] = (v.stdout or v.stderr).split("[")[0].strip()
    if run.args.database_url:
        with contextlib.suppress(Exception), Store._pg(run.args.database_url) as conn:
            notes["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    return notes


def _git(*argv: str) -> str:
    out = subprocess.run(["git", *argv], capture_output=True, text=True, cwd=ROOT, check=False)
    return out.stdout.strip()


def command_line(args: argparse.Namespace) -> str:
    parts = ["python -m bench.run"]
    if args.database_url:
        parts += ["--database-url", args.database_url]
    parts += ["--duration", f"{args.duration:g}", "--connections", str(args.connections)]
    if args.only != ",".join(PHASES):
        parts += ["--only", args.only]
    if args.api_processes > 1:
        parts += ["--api-processes", str(args.api_processes)]
    return " ".join(parts)


def update_readme(run: Run, rows: list[Row], notes: dict[str, Any], cmd: str) -> None:
    """Replace this backend's section of bench/README.md (between its markers)."""
    section = run.backend
    if run.args.api_processes > 1:
        section += f":processes{run.args.api_processes}"
    start, end = f"<!-- results:{section}:start -->", f"<!-- results:{section}:end -->"
    by = measured_loads(run)
    cpu_lines = [
        f"- `{p}`: server {x.server_cpu_s / x.duration_s:.2f}, load generator ({x.loadgen}) "
        f"{x.loadgen_cpu_s / x.duration_s:.2f}, "
        + (f"PostgreSQL backends {x.db_cpu_s / x.duration_s:.2f}, " if x.db_cpu_s else "")
        + f"everything else on the machine {x.other_cpu_s / x.duration_s:.2f} cores, "
        f"over {x.duration_s:.1f} s"
        + (
            f"; {x.group_commit['commits_per_s']:,.0f} inbox commits/s of "
            f"{x.group_commit['rows_per_commit']:.1f} batches"
            if x.group_commit
            else ""
        )
        for p, x in by.items()
        if p in ("bare", "events", "bulk")
    ]
    pg = f", PostgreSQL {notes['postgresql']}" if "postgresql" in notes else ""
    body = "\n".join(
        [
            start,
            f"Run {dt.datetime.now().strftime('%Y-%m-%d %H:%M')} at commit `{notes['git_commit']}`"
            f"{' (src/ had local changes)' if notes['src_dirty'] else ''}: `{cmd}`",
            "",
            f"Machine: {notes['cpus']} CPUs ({notes['cpu_model']}), Linux {notes['kernel']}, "
            f"Python {notes['python']}, uvicorn {notes.get('uvicorn', '?')}, "
            f"SQLite {notes['sqlite']}{pg}; load generator: {notes.get('wrk', run.loadgen)}.",
            "",
            render_markdown(rows),
            "",
            "CPU used during the measured windows (cores = CPU seconds / wall seconds):",
            "",
            *cpu_lines,
            end,
        ]
    )
    text = README.read_text() if README.exists() else "# Ingestion benchmark\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        after = rest.split(end, 1)[1]
        text = before + body + after
    else:
        text = text.rstrip("\n") + f"\n\n### {run.backend}\n\n" + body + "\n"
    README.write_text(text)


# -- entry point --------------------------------------------------------------------------------


def install_wrk() -> None:
    """``apt-get install -y wrk`` (Debian); only on request, since it changes the machine."""
    log("installing wrk with apt-get")
    for argv in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", "wrk"]):
        done = subprocess.run(argv, capture_output=True, text=True, check=False)
        if done.returncode != 0:
            log(f"{' '.join(argv)} failed: {done.stderr.strip()[-500:]}")
            return


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.run", description=__doc__.split("\n")[0])
    p.add_argument("--database-url", default=None, help="PostgreSQL admin URL (default SQLite)")
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured phase")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--only", default=",".join(PHASES), help="comma list of " + ",".join(PHASES))
    p.add_argument("--warmup", type=float, default=2.0, help="seconds of unreported warm-up")
    p.add_argument("--loadgen", choices=["auto", "wrk", "python"], default="auto")
    p.add_argument("--wrk-threads", type=int, default=1)
    p.add_argument(
        "--pairs",
        type=int,
        default=5,
        help="bare and /v2/events measured in this many alternating window pairs (the ratio is "
        "the median of the pairs' ratios); 1 = one window each, one after the other",
    )
    p.add_argument(
        "--wait-quiet",
        type=float,
        default=0.0,
        help="wait up to this many seconds in total for other CPU use to stop before phases",
    )
    p.add_argument("--install-wrk", action="store_true", help="apt-get install wrk if missing")
    p.add_argument("--drain-events", type=int, default=200_000)
    p.add_argument("--drain-timeout", type=float, default=90.0)
    p.add_argument(
        "--with-worker",
        action="store_true",
        help="run the embedded worker during events/bulk (default: --no-worker, API path only)",
    )
    p.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="serve --api-processes N; the bare baseline gets N uvicorn workers too",
    )
    p.add_argument("--profile", action="store_true", help="record py-spy profiles per phase")
    p.add_argument(
        "--profile-gil",
        action="store_true",
        help="profile only the thread holding the GIL (where the one usable core goes)",
    )
    p.add_argument("--py-spy", default=shutil.which("py-spy") or "py-spy")
    p.add_argument("--no-readme", action="store_true", help="do not rewrite bench/README.md")
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, stores)")
    args = p.parse_args(argv)
    phases = [x.strip() for x in args.only.split(",") if x.strip()]
    unknown = set(phases) - set(PHASES)
    if unknown:
        p.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    args.phases = phases
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    loadgen = args.loadgen
    if args.install_wrk and not shutil.which("wrk"):
        install_wrk()
    if loadgen == "auto":
        loadgen = "wrk" if shutil.which("wrk") else "python"
    if loadgen == "python":
        log("wrk not found; using the Python load generator (apt-get install -y wrk for less skew)")
    run = Run(
        args=args,
        workdir=Path(tempfile.mkdtemp(prefix="opencdp-bench-")),
        run_id=os.urandom(2).hex(),
        loadgen=loadgen,
    )
    RESULTS.mkdir(parents=True, exist_ok=True)
    started = time.monotonic()
    try:
        single = bulk = None
        if {"bare", "events"} & set(args.phases):
            single = run.templates("single", bulk=False, seed=1)
        if {"bulk", "drain"} & set(args.phases):
            bulk = run.templates("bulk", bulk=True, seed=2)
        quiet = [args.wait_quiet]
        paired = args.pairs > 1 and {"bare", "events"} <= set(args.phases)
        if "bare" in args.phases and single is not None and not paired:
            wait_until_quiet(quiet)
            run.guarded("bare", run.phase_bare, single)
        if {"events", "bulk"} & set(args.phases):
            wait_until_quiet(quiet)
            bare = run.start_bare() if paired else None
            try:
                run.guarded(
                    "events/bulk",
                    run.phase_ingest,
                    single if "events" in args.phases else None,
                    bulk if "bulk" in args.phases else None,
                    bare,
                )
            finally:
                if bare is not None:
                    run.stop_bare(bare[0])
        if "drain" in args.phases and bulk is not None:
            wait_until_quiet(quiet)
            run.guarded("drain", run.phase_drain, bulk)
    finally:
        run.cleanup()
    elapsed = time.monotonic() - started
    rows = build_rows(run)
    notes = machine_notes(run)
    cmd = command_line(args)
    doc = {
        "command": cmd,
        "backend": run.backend,
        "finished_at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "wall_seconds": round(elapsed, 1),
        "machine": notes,
        "options": {k: v for k, v in vars(args).items() if k != "database_url"},
        "loads": [{**asdict(x), "rps": x.rps, "events_per_s": x.events_per_s} for x in run.loads],
        "checks": run.checks,
        "drain": run.drain,
        "errors": run.errors,
        "profiles": run.profiles,
        "table": [asdict(r) for r in rows],
    }
    # A profiled run is slower (py-spy samples it), so it never replaces the plain results.
    out = RESULTS / f"{run.backend}{'-profiled' if args.profile else ''}.json"
    out.write_text(json.dumps(doc, indent=2) + "\n")
    if not args.no_readme and not args.profile and not run.errors:
        update_readme(run, rows, notes, cmd)
    sys.stdout.write(f"\nopencdp ingestion benchmark ({run.backend}, {elapsed:.0f} s): {cmd}\n\n")
    sys.stdout.write(render_text(rows) + "\n")
    for phase, threads in run.profiles.items():
        sys.stdout.write(f"\npy-spy, {phase} (percent of the thread's samples):\n")
        for name, t in threads.items():
            if t["share_pct"] < 5:
                continue
            sys.stdout.write(f"  thread {name}: {t['samples']} samples\n")
            for label, key in (("self", "self"), ("incl", "opencdp_inclusive")):
                for frame, pct in t[key]:
                    sys.stdout.write(f"    {label} {pct:5.1f}%  {frame}\n")
    sys.stdout.write(f"\nresults: {out}\n")
    correctness = [r for r in rows if r.target in ("0", "equal", ">=", "none")]
    return 1 if any(r.result == "FAIL" for r in correctness) else 0


if __name__ == "__main__":
    raise SystemExit(main())
