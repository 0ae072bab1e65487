"""Profile API benchmark: lookups by MPID on a seeded million-profile store, and the lag from
an Events API 202 to the new value being visible through the Profile API.

``python -m bench.profile_bench [--database-url URL] [--profiles 1000000] [--duration 10]``

What runs, each as its own process on loopback (the approach of bench/run.py):

1. a fresh store (temp SQLite dir, or a new database when ``--database-url`` names a
   PostgreSQL *admin* URL; dropped afterwards), ``opencdp init --json``, then
   ``bench.seed_graph`` bulk-loads ``--profiles`` users with identities and four attributes;
2. **bare**: ``bench/bare_json_app.py`` answering every GET with a fixed profile-shaped JSON,
   under the same wrk script: the baseline for the ratio;
3. ``opencdp serve`` (with its embedded worker, the default deployment: the lag needs it),
   a token from ``POST /oauth/token`` (client credentials from ``opencdp init``), and a
   correctness check (sampled profiles answer with their seeded identities and attributes);
4. **lookups**: wrk (``bench/lua/profile.lua``) ``GET /userprofile/v1/{org}/{account}/
   {workspace}/{mpid}?fields=user_identities,user_attributes`` for MPIDs drawn at random
   from a 100,000-user sample of the seeded graph; **low**: bare and lookups again with
   ``--low-connections`` (4), since one process serving 32 concurrent requests from a
   40-thread pool spends more on GIL hand-offs than at low concurrency;
5. **ingest-max**: wrk (``bench/lua/events.lua``) sends single-batch ``POST /v2/events`` as
   fast as the server accepts them for ``--max-seconds``; then the inbox is polled until the
   worker has processed everything. Maximum sustained ingest = batches stored / time from the
   first request to the empty inbox (accepting and processing share the process);
6. **lag**: ``bench/lag_client.py`` sends batches open-loop at each of ``--lag-fractions``
   (0.5 and 0.25) of that maximum (or at ``--lag-rate``), each with a fresh marker attribute,
   and polls the Profile API after the 202 of every probed batch until the marker is visible;
   between the two the inbox is drained. The quarter rate shows the lag where the system keeps
   up when half the burst-measured maximum turns out not to be sustainable.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import idp_harness as h
from bench.seed_graph import Population, SeedReport, check_plans, opencdp_init, seed

LOOKUP_RPS_TARGET = 5000.0
LOOKUP_P99_TARGET_MS = 10.0
LAG_P99_TARGET_MS = 1000.0
SEED_TARGET_S = 180.0
FIELDS = "?fields=user_identities,user_attributes"
PHASES = ("bare", "lookups", "low", "lag")


def settle(pid: int, limit_s: float = 30.0) -> None:
    """Wait until the server is idle (wrk abandons in-flight requests at its deadline)."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        c0 = h.cpu_seconds(pid)
        time.sleep(0.3)
        if h.cpu_seconds(pid) - c0 < 0.03:
            return
    h.log("server still busy after the previous phase; measuring anyway")


class ProfileBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="opencdp-papibench-"))
        self.run_seed = int.from_bytes(os.urandom(3), "big")
        self.loads: list[h.Load] = []
        self.checks: dict[str, Any] = {}
        self.seed_info: dict[str, Any] = {}
        self.ingest: dict[str, Any] = {}
        self.lags: list[dict[str, Any]] = []
        self.profiler = h.Profiler(
            args.py_spy if args.profile else None, self.workdir, "papi", gil=args.profile_gil
        )
        self.store: h.Store | None = None
        self.pop: Population | None = None
        self.runs = 0

    @property
    def backend(self) -> str:
        return "postgresql" if self.args.database_url else "sqlite"

    def lookups(
        self,
        phase: str,
        target: str,
        port: int,
        prefix: str,
        token: str,
        pid: int,
        connections: int | None = None,
    ) -> None:
        for name, secs in ((phase + "-warmup", self.args.warmup), (phase, self.args.duration)):
            if secs <= 0:
                continue
            self.runs += 1
            measured = name == phase
            spy = self.profiler.start(phase, pid, secs) if measured else None
            try:
                load = h.run_wrk(
                    name,
                    target,
                    port,
                    prefix,
                    "profile.lua",
                    [prefix, token, str(self.mpid_file), FIELDS, str(self.run_seed + self.runs)],
                    duration=secs,
                    connections=connections or self.args.connections,
                    server_pid=pid,
                    store=self.store if target == "opencdp" else None,
                )
            finally:
                self.profiler.stop(phase, spy)
            self.loads.append(load)
            if target == "opencdp":
                settle(pid)

    @property
    def mpid_file(self) -> Path:
        return self.workdir / "mpids.txt"

    def write_mpid_sample(self) -> list[int]:
        """A random sample of seeded users; wrk picks lookups from their MPIDs."""
        assert self.pop is not None
        n = self.pop.profiles
        rng = random.Random(self.run_seed)
        users = rng.sample(range(n), min(n, self.args.sample))
        self.mpid_file.write_text("".join(f"{self.pop.mpid(i)}\n" for i in users))
        return users

    # -- set-up and checks ------------------------------------------------------------------
    @staticmethod
    def token(port: int, creds: dict[str, Any]) -> str:
        body = json.dumps(
            {
                "client_id": creds["client_id"],
                "client_secret": creds["client_secret"],
                "audience": "https://api.mparticle.com",
                "grant_type": "client_credentials",
            }
        ).encode()
        status, raw = h.http_call(
            port, "POST", "/oauth/token", body=body, headers={"Content-Type": "application/json"}
        )
        if status != 200:
            raise RuntimeError(f"/oauth/token answered {status}: {raw[:300]!r}")
        return str(json.loads(raw)["access_token"])

    def check_answers(self, port: int, prefix: str, token: str, users: list[int]) -> None:
        """Sampled profiles come back with their seeded identities and attributes."""
        pop = self.pop
        assert pop is not None
        good = 0
        sample = users[:10]
        for i in sample:
            status, raw = h.http_call(
                port,
                "GET",
                f"{prefix}{pop.mpid(i)}{FIELDS}",
                headers={"Authorization": f"Bearer {token}"},
                timeout=60,
            )
            if status != 200:
                continue
            doc = json.loads(raw)
            ids = {x["type"]: x["value"] for x in doc.get("user_identities", [])}
            if (
                doc["mpid"] == pop.mpid(i)
                and ids == {"customer_id": pop.customer_id(i), "email": pop.email(i)}
                and doc.get("user_attributes") == pop.attributes(i)
            ):
                good += 1
        self.checks["sampled_profiles_ok"] = good
        self.checks["sampled_profiles"] = len(sample)
        h.log(f"check: {good}/{len(sample)} sampled profiles as seeded")

    def inbox(self) -> tuple[int, int]:
        assert self.store is not None
        total = self.store.scalar("SELECT count(*) FROM inbox")
        pending = self.store.scalar("SELECT count(*) FROM inbox WHERE NOT processed")
        return total, pending

    def ingest_max(self, port: int, auth: str, pid: int) -> float:
        """Closed-loop burst, then drain: batches stored / time until all are processed."""
        assert self.pop is not None
        total0, _ = self.inbox()
        self.runs += 1
        t0 = time.monotonic()
        load = h.run_wrk(
            "ingest-max",
            "opencdp",
            port,
            "/v2/events",
            "events.lua",
            [auth, str(self.pop.profiles), f"m{self.run_seed:x}", str(self.run_seed + self.runs)],
            duration=self.args.max_seconds,
            connections=self.args.connections,
            server_pid=pid,
            store=self.store,
        )
        self.loads.append(load)
        t_burst = time.monotonic() - t0
        deadline = time.monotonic() + self.args.drain_timeout
        spy = self.profiler.start("drain", pid, self.args.drain_timeout)
        pending = -1
        try:
            while time.monotonic() < deadline:
                _total, pending = self.inbox()
                if pending == 0:
                    break
                time.sleep(0.2)
        finally:
            self.profiler.stop("drain", spy, interrupt=True)
        elapsed = time.monotonic() - t0
        total1, pending = self.inbox()
        stored = total1 - total0
        # Not drained in time: the processing rate so far (the API was idle after the burst,
        # so this flatters it a little); the lag phase is then skipped, see run().
        rate = (stored - pending) / elapsed
        self.ingest = {
            "stored_batches": stored,
            "accepted_per_s_during_burst": load.rps,
            "burst_s": round(t_burst, 2),
            "until_drained_s": round(elapsed, 2),
            "drained": pending == 0,
            "pending_at_end": pending,
            "max_sustained_per_s": rate,
        }
        h.log(
            f"  ingest-max: {stored:,} batches stored in {t_burst:.1f}s ({load.rps:,.0f}/s "
            f"accepted); {stored - pending:,} processed after {elapsed:.1f}s → max sustained "
            f"{rate:,.1f} batches/s" + ("" if pending == 0 else f" ({pending:,} still pending)")
        )
        return rate

    def run_lag(
        self, port: int, auth: str, token: str, prefix: str, rate: float, pid: int, label: str
    ) -> None:
        assert self.pop is not None
        argv = [sys.executable, "-m", "bench.lag_client", "--port", str(port)]
        argv += ["--auth", auth, "--token", token, "--profile-prefix", prefix]
        argv += ["--profiles", str(self.pop.profiles), "--rate", f"{rate:g}"]
        tag = f"lag{self.run_seed:x}n{len(self.lags)}"
        argv += ["--duration", f"{self.args.lag_duration:g}", "--tag", tag]
        argv += ["--probe-rate", f"{self.args.probe_rate:g}", "--poll-ms", f"{self.args.poll_ms:g}"]
        h.log(
            f"lag: {rate:,.0f} batches/s for {self.args.lag_duration:g}s, probing "
            f"{self.args.probe_rate:g}/s"
        )
        pg = self.store is not None and self.store.url is not None
        db0 = h.postgres_cpu_seconds() if pg else 0.0
        cpu0, busy0 = h.cpu_seconds(pid), h.machine_busy_seconds()
        phase = f"lag-{len(self.lags) + 1}"
        spy = self.profiler.start(phase, pid, self.args.lag_duration)
        t0 = time.monotonic()
        try:
            out = subprocess.run(
                argv,
                capture_output=True,
                text=True,
                cwd=h.ROOT,
                env=dict(os.environ, PYTHONPATH=h.python_path()),
                timeout=self.args.lag_duration + 120,
                check=False,
            )
        finally:
            self.profiler.stop(phase, spy)
        wall = time.monotonic() - t0
        if out.returncode != 0:
            raise RuntimeError(f"lag client failed: {out.stderr[-2000:]}")
        doc = h.last_json(out.stdout, "LAGJSON ")
        doc["server_cores"] = (h.cpu_seconds(pid) - cpu0) / wall
        doc["postgres_cores"] = (h.postgres_cpu_seconds() - db0) / wall if pg else 0.0
        doc["machine_cores"] = (h.machine_busy_seconds() - busy0) / wall
        doc["label"] = label
        # Probes end when the last one is visible; later batches may still be queued.
        _total, doc["backlog_after"] = self.inbox()
        t1 = time.monotonic()
        doc["drained"] = self.wait_drained(self.args.drain_timeout)
        doc["drain_s"] = time.monotonic() - t1
        self.lags.append(doc)
        h.log(
            f"  lag: sent {doc['sent']:,} at {doc['achieved_rate']:,.0f}/s, "
            f"{doc['visible']}/{doc['probes']} probes visible, lag p50 {doc['lag_p50_ms']:.0f} "
            f"ms p99 {doc['lag_p99_ms']:.0f} ms; 202 p99 {doc['ack_p99_ms']:.1f} ms; "
            f"{doc['backlog_after']:,} batches queued at the end, drained in {doc['drain_s']:.1f}s"
        )

    def wait_drained(self, timeout: float) -> bool:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.inbox()[1] == 0:
                return True
            time.sleep(0.2)
        return False

    # -- the run ----------------------------------------------------------------------------
    def run(self) -> None:
        args = self.args
        quiet = [args.wait_quiet]
        self.store = store = h.Store(self.workdir, args.database_url)
        t0 = time.monotonic()
        creds = opencdp_init(store.data_dir, store.url)
        init_s = time.monotonic() - t0
        self.pop, report = seed(store.data_dir, store.url, creds, args.profiles)
        self.seed_info = _seed_doc(report, init_s)
        if store.backend == "sqlite":
            if args.sqlite_analyze:
                conn = sqlite3.connect(store.sqlite_path)
                conn.execute("PRAGMA analysis_limit=1000")
                conn.execute("ANALYZE")
                conn.commit()
                conn.close()
            self.seed_info["plans"] = check_plans(store.sqlite_path)
        users = self.write_mpid_sample()
        prefix = f"/userprofile/v1/{creds['org_id']}/{creds['account_id']}/{creds['workspace_id']}/"
        auth = f"{creds['api_key']}:{creds['api_secret']}"
        if "bare" in args.phases:
            h.wait_until_quiet(quiet)
            port = h.free_port()
            proc = h.bare(port, self.workdir, self.args.api_processes)
            h.log(f"bare baseline on :{port}")
            try:
                self.lookups("bare", "bare", port, prefix, "bare-token", proc.pid)
                if "low" in args.phases:
                    self.lookups(
                        "bare-low",
                        "bare",
                        port,
                        prefix,
                        "bare-token",
                        proc.pid,
                        args.low_connections,
                    )
            finally:
                proc.stop()
        port = h.free_port()
        h.log(f"opencdp serve ({store.backend}, embedded worker) on :{port}")
        extra = (
            ["--api-processes", str(self.args.api_processes)] if self.args.api_processes > 1 else []
        )
        proc = h.serve(store, port, self.workdir, worker=True, name="serve", extra=extra)
        try:
            token = self.token(port, creds)
            self.check_answers(port, prefix, token, users)
            settle(proc.pid)
            if "lookups" in args.phases:
                h.wait_until_quiet(quiet)
                self.lookups("lookups", "opencdp", port, prefix, token, proc.pid)
            if "low" in args.phases:
                h.wait_until_quiet(quiet)
                self.lookups(
                    "lookups-low", "opencdp", port, prefix, token, proc.pid, args.low_connections
                )
            if "lag" in args.phases:
                h.wait_until_quiet(quiet)
                runs: list[tuple[float, str]] = []
                if args.lag_rate is not None:
                    runs.append((args.lag_rate, "fixed rate"))
                else:
                    top = self.ingest_max(port, auth, proc.pid)
                    for f in args.lag_fractions:
                        rate = max(1.0, round(f * top, -1 if f * top > 100 else 0))
                        runs.append((rate, f"{f:g} x max"))
                    settle(proc.pid)
                if self.ingest and not self.ingest["drained"]:
                    # A backlog from the burst is still queued: every probe would wait behind
                    # it, so the lag would measure the backlog, not the system at that rate.
                    self.checks["lag_skipped"] = (
                        f"the worker did not drain the burst within {args.drain_timeout:g} s"
                    )
                    h.log(f"lag: skipped ({self.checks['lag_skipped']})")
                else:
                    for rate, label in runs:
                        self.run_lag(port, auth, token, prefix, rate, proc.pid, label)
                        settle(proc.pid)
                total, pending = self.inbox()
                events = store.scalar("SELECT count(*) FROM events")
                self.checks.update(
                    {"inbox_total": total, "inbox_pending_after_lag": pending, "events": events}
                )
        finally:
            self.checks["serve_exit_code"] = proc.stop()
            self.checks["server_log_errors"] = h.log_errors(proc.log_path)
            for line in self.checks["server_log_errors"]:
                h.log(f"server error: {line[:300]}")

    def cleanup(self) -> None:
        if self.store is not None:
            try:
                self.store.drop()
            except Exception as exc:
                h.log(f"could not drop {self.store.db_name}: {exc}")
        if self.args.keep:
            h.log(f"kept {self.workdir}")
        else:
            shutil.rmtree(self.workdir, ignore_errors=True)

    # -- reporting --------------------------------------------------------------------------
    def rows(self) -> list[h.Row]:
        by = {x.phase: x for x in self.loads}
        sqlite = self.backend == "sqlite"
        scope = "" if sqlite else " (set for SQLite)"
        rows: list[h.Row] = []
        for phase in ("lookups", "lookups-low"):
            x = by.get(phase)
            if x is None:
                continue
            low = phase.endswith("-low")
            bare = by.get("bare-low" if low else "bare")
            conns = f", {x.connections} connections" if low else ""
            rows.append(
                h.Row(
                    f"GET /userprofile/v1/.../{{mpid}} (identities + attributes){conns} lookups/s",
                    h.fmt_n(x.rps),
                    h.fmt_n(bare.rps) if bare else "-",
                    f"{x.rps / bare.rps:.2f}" if bare and bare.rps else "-",
                    f">= {h.fmt_n(LOOKUP_RPS_TARGET)}{scope}",
                    h.pass_fail(x.rps >= LOOKUP_RPS_TARGET),
                )
            )
            rows.append(
                h.Row(
                    f"{phase} p50 / p99 latency",
                    f"{h.fmt_ms(x.p50_ms)} / {h.fmt_ms(x.p99_ms)}",
                    f"{h.fmt_ms(bare.p50_ms)} / {h.fmt_ms(bare.p99_ms)}" if bare else "-",
                    f"{x.p99_ms / bare.p99_ms:.1f} (p99)" if bare and bare.p99_ms else "-",
                    f"p99 < {LOOKUP_P99_TARGET_MS:g} ms{scope}",
                    h.pass_fail(x.p99_ms < LOOKUP_P99_TARGET_MS),
                )
            )
            b_us = bare.server_cpu_us if bare else 0.0
            rows.append(
                h.Row(
                    f"{phase} server CPU per request",
                    f"{x.server_cpu_us:,.0f} us",
                    f"{b_us:,.0f} us" if b_us else "-",
                    f"{x.server_cpu_us / b_us:.1f}" if b_us else "-",
                )
            )
        if self.ingest:
            g = self.ingest
            rows.append(
                h.Row(
                    "max sustained ingest, accepted and processed (batches/s)",
                    h.fmt_n(g["max_sustained_per_s"]),
                    target="measured",
                    result="info" if g["drained"] else "FAIL (not drained)",
                )
            )
            rows.append(
                h.Row(
                    "  of which accepted during the closed-loop burst (batches/s)",
                    f"{h.fmt_n(g['accepted_per_s_during_burst'])} for {g['burst_s']:.0f} s, "
                    f"drained after {g['until_drained_s']:.0f} s",
                )
            )
        if "lag_skipped" in self.checks:
            rows.append(
                h.Row(
                    "202 → visible in Profile API",
                    "not measurable: " + self.checks["lag_skipped"],
                    target=f"p99 < {LAG_P99_TARGET_MS:,.0f} ms{scope}",
                    result="FAIL",
                )
            )
        for n, lag in enumerate(self.lags):
            first = n == 0
            at = f"at {h.fmt_n(lag['rate'])}/s ({lag['label']})"
            rows.append(
                h.Row(
                    f"lag run {at}: achieved rate, 202 p50 / p99",
                    f"{h.fmt_n(lag['achieved_rate'])} batches/s ({lag['sent']:,} sent); "
                    f"{h.fmt_ms(lag['ack_p50_ms'])} / {h.fmt_ms(lag['ack_p99_ms'])}",
                )
            )
            rows.append(
                h.Row(
                    f"202 → visible in Profile API {at}, p50 / p99 (max)",
                    f"{lag['lag_p50_ms']:,.0f} ms / {lag['lag_p99_ms']:,.0f} ms "
                    f"({lag['lag_max_ms']:,.0f} ms)",
                    target=f"p99 < {LAG_P99_TARGET_MS:,.0f} ms{scope}" if first else "",
                    result=h.pass_fail(
                        lag["lag_p99_ms"] < LAG_P99_TARGET_MS and lag["not_visible"] == 0
                    )
                    if first
                    else "info",
                )
            )
            rows.append(
                h.Row(
                    f"  probes visible {at}; backlog at the end",
                    f"{lag['visible']}/{lag['probes']} (poll every max({lag['poll_ms']:g} ms, "
                    f"{lag['poll_backoff']:.0%} of the wait), {lag['polls_per_s']:,.0f} "
                    f"lookups/s); {lag['backlog_after']:,} batches queued, drained in "
                    f"{lag['drain_s']:.1f} s",
                    target="all visible",
                    result=h.pass_fail(lag["not_visible"] == 0 and lag["probes"] > 0),
                )
            )
        errors = sum(x.errors for x in self.loads) + sum(
            lag.get("non_202", 0) + lag.get("socket_errors", 0) for lag in self.lags
        )
        rows.append(
            h.Row(
                "non-200/202 answers + socket errors (all runs)",
                str(errors),
                target="0",
                result=h.pass_fail(errors == 0),
            )
        )
        c = self.checks
        if "sampled_profiles" in c:
            rows.append(
                h.Row(
                    "sampled profiles answer as seeded",
                    f"{c['sampled_profiles_ok']}/{c['sampled_profiles']}",
                    target="all",
                    result=h.pass_fail(c["sampled_profiles_ok"] == c["sampled_profiles"]),
                )
            )
        if "inbox_pending_after_lag" in c:
            rows.append(
                h.Row(
                    "inbox processed after the lag phase (stored / pending / events)",
                    f"{c['inbox_total']:,} / {c['inbox_pending_after_lag']:,} / {c['events']:,}",
                    target="pending 0, events = 2 x stored",
                    result=h.pass_fail(
                        c["inbox_pending_after_lag"] == 0 and c["events"] == 2 * c["inbox_total"]
                    ),
                )
            )
        s = self.seed_info
        if s:
            rows.append(
                h.Row(
                    f"seeding {s['profiles']:,} profiles ({s['rows']:,} rows)",
                    f"{s['seed_seconds']:.0f} s",
                    target=f"<= {SEED_TARGET_S:.0f} s (SQLite)",
                    result=h.pass_fail(s["seed_seconds"] <= SEED_TARGET_S) if sqlite else "info",
                )
            )
        return rows


def _seed_doc(report: SeedReport, init_s: float) -> dict[str, Any]:
    return {
        "backend": report.backend,
        "profiles": report.profiles,
        "rows": report.total_rows,
        "rows_by_table": report.rows,
        "init_seconds": round(init_s, 2),
        "seed_seconds": round(report.total_seconds, 1),
        "stages": {k: round(v, 2) for k, v in report.seconds.items()},
    }


def command_line(args: argparse.Namespace) -> str:
    parts = ["python -m bench.profile_bench"]
    if args.database_url:
        parts += ["--database-url", args.database_url]
    parts += ["--profiles", str(args.profiles), "--duration", f"{args.duration:g}"]
    if args.connections != 32:
        parts += ["--connections", str(args.connections)]
    if args.lag_rate is not None:
        parts += ["--lag-rate", f"{args.lag_rate:g}"]
    if args.sqlite_analyze:
        parts.append("--sqlite-analyze")
    if args.api_processes > 1:
        parts += ["--api-processes", str(args.api_processes)]
    if args.phases != list(PHASES):
        parts += ["--phases", ",".join(args.phases)]
    return " ".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.profile_bench", description=__doc__)
    p.add_argument("--database-url", default=None, help="PostgreSQL admin URL (default SQLite)")
    p.add_argument("--profiles", type=int, default=1_000_000)
    p.add_argument("--duration", type=float, default=10.0, help="seconds of measured lookups")
    p.add_argument("--warmup", type=float, default=2.0)
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--low-connections", type=int, default=4, help="for the 'low' phase")
    p.add_argument("--sample", type=int, default=100_000, help="MPIDs wrk draws lookups from")
    p.add_argument("--phases", default=",".join(PHASES), help="comma list of " + ",".join(PHASES))
    p.add_argument("--max-seconds", type=float, default=5.0, help="closed-loop ingest burst")
    p.add_argument("--drain-timeout", type=float, default=60.0)
    p.add_argument(
        "--lag-fractions", default="0.5,0.25", help="lag runs, as fractions of the maximum"
    )
    p.add_argument("--lag-rate", type=float, default=None, help="fixed batches/s instead")
    p.add_argument("--lag-duration", type=float, default=15.0)
    p.add_argument("--probe-rate", type=float, default=10.0, help="probed batches per second")
    p.add_argument("--poll-ms", type=float, default=10.0)
    p.add_argument(
        "--sqlite-analyze",
        action="store_true",
        help="what-if: run ANALYZE on the seeded SQLite store (opencdp never does)",
    )
    p.add_argument("--wait-quiet", type=float, default=0.0, help="seconds to wait for quiet")
    p.add_argument("--profile", action="store_true", help="py-spy the server per phase")
    p.add_argument(
        "--profile-gil",
        action="store_true",
        help="with --profile: sample only the GIL holder (hides time in SQLite, which runs "
        "without the GIL)",
    )
    p.add_argument(
        "--py-spy", default=shutil.which("py-spy") or str(Path(sys.executable).parent / "py-spy")
    )
    p.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="serve --api-processes (the bare baseline gets as many uvicorn workers)",
    )
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, store)")
    p.add_argument("--no-report", action="store_true", help="do not rewrite IDENTITY_PROFILE.md")
    args = p.parse_args(argv)
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    args.lag_fractions = [float(x) for x in args.lag_fractions.split(",") if x.strip()]
    if unknown := set(args.phases) - set(PHASES):
        p.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if not h.wrk_available():
        p.error("wrk is required (apt-get install -y wrk)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = ProfileBench(args)
    started = time.monotonic()
    try:
        bench.run()
    finally:
        bench.cleanup()
    elapsed = time.monotonic() - started
    rows = bench.rows()
    notes = h.machine_notes(args.database_url)
    cmd = command_line(args)
    section = f"profile:{bench.backend}" + (":analyze" if args.sqlite_analyze else "")
    if args.api_processes > 1:
        section += f":processes{args.api_processes}"
    doc = {
        "command": cmd,
        "backend": bench.backend,
        "wall_seconds": round(elapsed, 1),
        "machine": notes,
        "seed": bench.seed_info,
        "loads": [{**asdict(x), "rps": x.rps} for x in bench.loads],
        "ingest_max": bench.ingest,
        "lag": bench.lags,
        "checks": bench.checks,
        "profiles": bench.profiler.summaries,
        "table": [asdict(r) for r in rows],
    }
    path = h.write_results(section.replace(":", "-").replace("profile", "profileapi", 1), doc)
    if not args.no_report:
        cpu = [
            f"- `{x.phase}`: {x.cores()}, over {x.duration_s:.1f} s"
            for x in bench.loads
            if not x.phase.endswith("-warmup")
        ]
        for lag in bench.lags:
            db = lag.get("postgres_cores") or 0.0
            cpu.append(
                f"- `lag` at {lag['rate']:g}/s: server {lag['server_cores']:.2f} cores, "
                + (f"postgres {db:.2f} cores, " if db else "")
                + f"whole machine {lag['machine_cores']:.2f} cores (lag client included)"
            )
        body = [
            f"Run {h.now_stamp()}, {elapsed:.0f} s wall: `{cmd}`; {h.source_line(notes)}.",
            "",
            h.machine_line(notes)
            + f" wrk: 1 thread, {args.connections} connections ({args.low_connections} in the"
            " rows that say so).",
            "",
            h.render_markdown(rows),
            "",
            "CPU during the measured windows (cores = CPU seconds / wall seconds):",
            "",
            *cpu,
        ]
        h.update_report(section, body)
    sys.stdout.write(
        f"\nopencdp Profile API benchmark ({bench.backend}, {elapsed:.0f} s): {cmd}\n\n"
    )
    sys.stdout.write(h.render_text(rows) + "\n")
    for phase, summary in bench.profiler.summaries.items():
        sys.stdout.write(f"\npy-spy, {phase} ({summary['busy_samples']} busy samples):\n")
        for label, key in (("incl", "opencdp_inclusive"), ("leaf", "leaf")):
            for frame, pct in summary[key]:
                sys.stdout.write(f"  {label} {pct:5.1f}%  {frame}\n")
    sys.stdout.write(f"\nresults: {path}\n")
    failed = [r for r in rows if r.target in ("0", "all") and r.result == "FAIL"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
