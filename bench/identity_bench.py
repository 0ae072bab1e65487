"""IDSync benchmark: identify and login against a seeded million-profile identity graph.

``python -m bench.identity_bench [--database-url URL] [--profiles 1000000] [--duration 10]``

What runs, each as its own process on loopback (the approach of bench/run.py):

1. a fresh store (temp SQLite dir, or a new database when ``--database-url`` names a
   PostgreSQL *admin* URL; dropped afterwards), ``opencdp init --json``, then
   ``bench.seed_graph`` bulk-loads ``--profiles`` users (customer_id + email + device stamp);
2. **bare**: ``bench/bare_json_app.py`` (parse JSON, fixed 200 JSON, same uvicorn options)
   under the same wrk script and bodies as ``identify``: the baseline for the ratio;
3. ``opencdp serve --no-worker`` on the seeded store (IDSync needs no worker), then
   a correctness check (sampled users get their seeded MPID; a new user gets one MPID);
4. **identify**: ``POST /v1/identify`` with ``{"known_identities": {"customerid", "email"}}``
   for users seen minutes ago (the read-only path) mixed with ``--new-fraction`` new users
   (a write transaction each);
5. **login**: ``POST /v1/login``, the same mix, with the user's device stamp added;
6. **returning**: identify for users last seen days ago: still no graph change, but the
   server records their activity (a write transaction each);
7. **low**: bare and identify again with ``--low-connections`` (4): the same requests at low
   concurrency. One API process runs requests in a 40-thread pool under one GIL, and 32
   concurrent requests cost more in lock hand-offs than 4 do, so both regimes are reported.

Load comes from wrk (``bench/lua/identify.lua``, closed loop, ``--connections`` keep-alive
connections); every existing user is looked up at most once per run, so lookups spread over
the whole graph as production traffic does. Every non-200 answer or socket error is counted.
After the run the store is checked: new profiles created == new-user requests sent (less at
most one in-flight request per connection and run), returning users' activity recorded.

``--sqlite-analyze`` runs SQLite's ANALYZE on the seeded store before serving. opencdp never
does that itself; the option exists to measure what statistics (or an equivalent plan fix)
change, and its results are labelled as such.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench import idp_harness as h
from bench.seed_graph import Population, SeedReport, check_plans, opencdp_init, seed

IDENTIFY_RPS_TARGET = 3000.0
IDENTIFY_P99_TARGET_MS = 20.0
SEED_TARGET_S = 180.0
PHASES = ("bare", "identify", "login", "returning", "low")


def settle(pid: int, limit_s: float = 30.0) -> None:
    """Wait until the server is idle: wrk abandons in-flight requests at its deadline, and the
    server still finishes them; they must not run into the next phase's measurement."""
    deadline = time.monotonic() + limit_s
    while time.monotonic() < deadline:
        c0 = h.cpu_seconds(pid)
        time.sleep(0.3)
        if h.cpu_seconds(pid) - c0 < 0.03:
            return
    h.log("server still busy after the previous phase; measuring anyway")


class IdentityBench:
    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.workdir = Path(tempfile.mkdtemp(prefix="opencdp-idbench-"))
        self.run_seed = int.from_bytes(os.urandom(3), "big")
        self.loads: list[h.Load] = []
        self.checks: dict[str, Any] = {}
        self.seed_info: dict[str, Any] = {}
        self.profiler = h.Profiler(
            args.py_spy if args.profile else None, self.workdir, "identity", gil=args.profile_gil
        )
        self.store: h.Store | None = None
        self.pop: Population | None = None
        self.runs = 0

    @property
    def backend(self) -> str:
        return "postgresql" if self.args.database_url else "sqlite"

    # -- load runs --------------------------------------------------------------------------
    def wrk(
        self,
        phase: str,
        target: str,
        port: int,
        *,
        path: str,
        auth: str,
        population: str,
        new_fraction: float,
        device: bool,
        pid: int,
        connections: int | None = None,
    ) -> h.Load:
        """Warm-up (not reported), then the measured run; both use fresh users and tags."""
        assert self.pop is not None
        result: h.Load | None = None
        for name, secs in ((phase + "-warmup", self.args.warmup), (phase, self.args.duration)):
            if secs <= 0:
                continue
            self.runs += 1
            tag = f"r{self.run_seed:x}x{self.runs}"
            script_args = [
                path,
                auth,
                str(self.pop.profiles),
                f"{new_fraction:g}",
                population,
                "1" if device else "0",
                tag,
                str(self.run_seed + 1000 * self.runs),
            ]
            measured = name == phase
            spy = self.profiler.start(phase, pid, secs) if measured else None
            try:
                load = h.run_wrk(
                    name,
                    target,
                    port,
                    path,
                    "identify.lua",
                    script_args,
                    duration=secs,
                    connections=connections or self.args.connections,
                    server_pid=pid,
                    store=self.store if target == "opencdp" else None,
                )
            finally:
                self.profiler.stop(phase, spy)
            self.loads.append(load)
            if measured:
                result = load
            if target == "opencdp":
                settle(pid)
        assert result is not None
        return result

    # -- checks -----------------------------------------------------------------------------
    def identify_once(
        self, port: int, auth: str, path: str, identities: dict[str, str]
    ) -> dict[str, Any]:
        body = json.dumps({"known_identities": identities}).encode()
        headers = {"Authorization": "Basic " + _b64(auth), "Content-Type": "application/json"}
        status, raw = h.http_call(port, "POST", path, body=body, headers=headers, timeout=60)
        if status != 200:
            raise RuntimeError(f"{path} answered {status}: {raw[:300]!r}")
        doc: dict[str, Any] = json.loads(raw)
        return doc

    def check_answers(self, port: int, auth: str) -> None:
        """Sampled seeded users get their own MPID; a new user is created once."""
        pop = self.pop
        assert pop is not None
        n = pop.profiles
        sample = [2 * ((k * 104729 + 17) % (n // 2)) for k in range(8)]  # recent
        sample += [2 * ((k * 7919 + 5) % (n // 2)) + 1 for k in range(3)]  # stale
        good = 0
        for i in sample:
            doc = self.identify_once(
                port,
                auth,
                "/v1/identify",
                {"customerid": pop.customer_id(i), "email": pop.email(i)},
            )
            matched = doc.get("matched_identities", {})
            if (
                doc["mpid"] == str(pop.mpid(i))
                and doc["is_logged_in"] is True
                and matched.get("customerid") == pop.customer_id(i)
                and matched.get("email") == pop.email(i)
            ):
                good += 1
        login = self.identify_once(
            port,
            auth,
            "/v1/login",
            {
                "customerid": pop.customer_id(sample[0]),
                "email": pop.email(sample[0]),
                "device_application_stamp": pop.device_id(sample[0]),
            },
        )
        good += login["mpid"] == str(pop.mpid(sample[0]))
        new_ids = {"customerid": f"check-{self.run_seed}", "email": f"check-{self.run_seed}@x.io"}
        first = self.identify_once(port, auth, "/v1/identify", new_ids)
        again = self.identify_once(port, auth, "/v1/identify", new_ids)
        self.checks["sampled_answers_ok"] = good
        self.checks["sampled_answers"] = len(sample) + 1
        self.checks["new_user_stable_mpid"] = first["mpid"] == again["mpid"] and first[
            "mpid"
        ] not in {str(pop.mpid(i)) for i in sample}
        self.checks["check_new_profiles"] = 1
        self.checks["check_touched_stale"] = 3
        h.log(
            f"check: {good}/{len(sample) + 1} sampled users got their seeded MPID; "
            f"new user stable: {self.checks['new_user_stable_mpid']}"
        )

    def check_store(self) -> None:
        """New profiles == new-user requests; returning users' activity recorded."""
        assert self.store is not None and self.pop is not None
        pop = self.pop
        opencdp = [x for x in self.loads if x.target == "opencdp"]
        sent_new = sum(int(x.extra.get("x_new", 0)) for x in opencdp)
        slack = sum(x.connections for x in opencdp)
        profiles = self.store.scalar("SELECT count(*) FROM identity_profiles")
        created = profiles - pop.profiles - self.checks["check_new_profiles"]
        recent_after = self.store.scalar(
            f"SELECT count(*) FROM identity_profiles WHERE last_seen_ms >= {pop.now_ms - 3_600_000}"
        )
        touched = recent_after - (pop.profiles + 1) // 2 - created - 1
        returning = [x for x in opencdp if x.phase.startswith("returning")]
        sent_returning = sum(int(x.extra.get("x_existing", 0)) for x in returning)
        self.checks.update(
            {
                "profiles_after": profiles,
                "new_profiles_created": created,
                "new_user_requests_sent": sent_new,
                "in_flight_slack": slack,
                "created_matches_sent": sent_new - slack <= created <= sent_new,
                "returning_touched": touched - self.checks["check_touched_stale"],
                "returning_requests_sent": sent_returning,
                "touched_matches_sent": sent_returning - slack
                <= touched - self.checks["check_touched_stale"]
                <= sent_returning,
            }
        )
        h.log(
            f"store: {created:,} new profiles for {sent_new:,} new-user requests "
            f"(slack {slack}); {touched - 3:,} returning users touched for "
            f"{sent_returning:,} sent"
        )

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
                t = time.monotonic()
                conn = sqlite3.connect(store.sqlite_path)
                conn.execute("PRAGMA analysis_limit=1000")
                conn.execute("ANALYZE")
                conn.commit()
                conn.close()
                self.seed_info["analyze_seconds"] = round(time.monotonic() - t, 2)
            self.seed_info["plans"] = check_plans(store.sqlite_path)
        auth = f"{creds['api_key']}:{creds['api_secret']}"
        common = {"auth": auth, "new_fraction": args.new_fraction}
        if "bare" in args.phases:
            h.wait_until_quiet(quiet)
            port = h.free_port()
            proc = h.bare(port, self.workdir, args.api_processes)
            h.log(f"bare baseline on :{port}")
            try:
                for phase, conns in (("bare", None), ("bare-low", args.low_connections)):
                    if phase == "bare-low" and "low" not in args.phases:
                        continue
                    self.wrk(
                        phase,
                        "bare",
                        port,
                        path="/v1/identify",
                        population="recent",
                        device=False,
                        pid=proc.pid,
                        connections=conns,
                        **common,
                    )
            finally:
                proc.stop()
        port = h.free_port()
        h.log(f"opencdp serve --no-worker ({store.backend}) on :{port}")
        extra = ["--api-processes", str(args.api_processes)] if args.api_processes > 1 else []
        proc = h.serve(store, port, self.workdir, worker=False, name="serve", extra=extra)
        try:
            self.check_answers(port, auth)
            settle(proc.pid)
            plan = [
                ("identify", "/v1/identify", "recent", False, args.new_fraction, None),
                ("login", "/v1/login", "recent", True, args.new_fraction, None),
                ("returning", "/v1/identify", "stale", False, 0.0, None),
                ("identify-low", "/v1/identify", "recent", False, args.new_fraction, "low"),
            ]
            for phase, path, population, device, new_fraction, low in plan:
                if (low or phase) not in args.phases:
                    continue
                h.wait_until_quiet(quiet)
                self.wrk(
                    phase,
                    "opencdp",
                    port,
                    path=path,
                    auth=auth,
                    population=population,
                    new_fraction=new_fraction,
                    device=device,
                    pid=proc.pid,
                    connections=args.low_connections if low else None,
                )
        finally:
            self.checks["serve_exit_code"] = proc.stop()
            self.checks["server_log_errors"] = h.log_errors(proc.log_path)
            for line in self.checks["server_log_errors"]:
                h.log(f"server error: {line[:300]}")
        self.check_store()

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
        rows: list[h.Row] = []
        sqlite = self.backend == "sqlite"
        scope = "" if sqlite else " (set for SQLite)"
        new = f"{self.args.new_fraction:.0%} new"
        low = self.args.low_connections
        labels = {
            "identify": f"POST /v1/identify (recent users + {new})",
            "login": f"POST /v1/login (recent users + device + {new})",
            "returning": "POST /v1/identify (users last seen days ago)",
            "identify-low": f"POST /v1/identify (recent users + {new}), {low} connections",
        }
        for phase, label in labels.items():
            x = by.get(phase)
            if x is None:
                continue
            bare = by.get("bare-low" if phase.endswith("-low") else "bare")
            ratio = f"{x.rps / bare.rps:.2f}" if bare and bare.rps else "-"
            target = phase.startswith("identify")
            rows.append(
                h.Row(
                    f"{label} req/s",
                    h.fmt_n(x.rps),
                    h.fmt_n(bare.rps) if bare else "-",
                    ratio,
                    f">= {h.fmt_n(IDENTIFY_RPS_TARGET)}{scope}" if target else "",
                    h.pass_fail(x.rps >= IDENTIFY_RPS_TARGET) if target else "info",
                )
            )
            rows.append(
                h.Row(
                    f"{phase} p50 / p99 latency",
                    f"{h.fmt_ms(x.p50_ms)} / {h.fmt_ms(x.p99_ms)}",
                    f"{h.fmt_ms(bare.p50_ms)} / {h.fmt_ms(bare.p99_ms)}" if bare else "-",
                    f"{x.p99_ms / bare.p99_ms:.1f} (p99)" if bare and bare.p99_ms else "-",
                    f"p99 < {IDENTIFY_P99_TARGET_MS:g} ms{scope}" if target else "",
                    h.pass_fail(x.p99_ms < IDENTIFY_P99_TARGET_MS) if target else "info",
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
        errors = sum(x.errors for x in self.loads)
        rows.append(
            h.Row(
                "non-200 answers + socket errors (all runs)",
                str(errors),
                target="0",
                result=h.pass_fail(errors == 0),
            )
        )
        c = self.checks
        if "sampled_answers" in c:
            rows.append(
                h.Row(
                    "sampled users get their seeded MPID",
                    f"{c['sampled_answers_ok']}/{c['sampled_answers']}",
                    target="all",
                    result=h.pass_fail(c["sampled_answers_ok"] == c["sampled_answers"]),
                )
            )
        if "new_profiles_created" in c:
            rows.append(
                h.Row(
                    "new profiles created == new-user requests",
                    f"{c['new_profiles_created']:,} / {c['new_user_requests_sent']:,} "
                    f"(slack {c['in_flight_slack']})",
                    target="equal",
                    result=h.pass_fail(c["created_matches_sent"] and c["new_user_stable_mpid"]),
                )
            )
        if c.get("returning_requests_sent"):
            rows.append(
                h.Row(
                    "returning users' activity recorded",
                    f"{c['returning_touched']:,} / {c['returning_requests_sent']:,}",
                    target="equal",
                    result=h.pass_fail(c["touched_matches_sent"]),
                )
            )
        s = self.seed_info
        if s:
            ok = s["seed_seconds"] <= SEED_TARGET_S
            rows.append(
                h.Row(
                    f"seeding {s['profiles']:,} profiles ({s['rows']:,} rows)",
                    f"{s['seed_seconds']:.0f} s",
                    target=f"<= {SEED_TARGET_S:.0f} s (SQLite)",
                    result=h.pass_fail(ok) if sqlite else "info",
                )
            )
        return rows


def _b64(text: str) -> str:
    import base64

    return base64.b64encode(text.encode()).decode()


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
    parts = ["python -m bench.identity_bench"]
    if args.database_url:
        parts += ["--database-url", args.database_url]
    parts += ["--profiles", str(args.profiles), "--duration", f"{args.duration:g}"]
    if args.connections != 32:
        parts += ["--connections", str(args.connections)]
    if args.sqlite_analyze:
        parts.append("--sqlite-analyze")
    if args.api_processes > 1:
        parts += ["--api-processes", str(args.api_processes)]
    if args.phases != list(PHASES):
        parts += ["--phases", ",".join(args.phases)]
    return " ".join(parts)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m bench.identity_bench", description=__doc__)
    p.add_argument("--database-url", default=None, help="PostgreSQL admin URL (default SQLite)")
    p.add_argument("--profiles", type=int, default=1_000_000)
    p.add_argument("--duration", type=float, default=10.0, help="seconds per measured phase")
    p.add_argument("--warmup", type=float, default=2.0, help="unreported seconds before each")
    p.add_argument("--connections", type=int, default=32)
    p.add_argument("--low-connections", type=int, default=4, help="for the 'low' phase")
    p.add_argument("--new-fraction", type=float, default=0.05, help="share of new users")
    p.add_argument(
        "--api-processes",
        type=int,
        default=1,
        help="serve --api-processes (opencdp recommends one per core on PostgreSQL only)",
    )
    p.add_argument("--phases", default=",".join(PHASES), help="comma list of " + ",".join(PHASES))
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
    p.add_argument("--keep", action="store_true", help="keep the temp dir (logs, store)")
    p.add_argument("--no-report", action="store_true", help="do not rewrite IDENTITY_PROFILE.md")
    args = p.parse_args(argv)
    args.phases = [x.strip() for x in args.phases.split(",") if x.strip()]
    if unknown := set(args.phases) - set(PHASES):
        p.error(f"unknown phase(s): {', '.join(sorted(unknown))}")
    if not h.wrk_available():
        p.error("wrk is required (apt-get install -y wrk)")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    bench = IdentityBench(args)
    started = time.monotonic()
    try:
        bench.run()
    finally:
        bench.cleanup()
    elapsed = time.monotonic() - started
    rows = bench.rows()
    notes = h.machine_notes(args.database_url)
    cmd = command_line(args)
    section = f"identity:{bench.backend}" + (":analyze" if args.sqlite_analyze else "")
    if args.api_processes > 1:
        section += f":processes{args.api_processes}"
    doc = {
        "command": cmd,
        "backend": bench.backend,
        "wall_seconds": round(elapsed, 1),
        "machine": notes,
        "seed": bench.seed_info,
        "loads": [{**asdict(x), "rps": x.rps} for x in bench.loads],
        "checks": bench.checks,
        "profiles": bench.profiler.summaries,
        "table": [asdict(r) for r in rows],
    }
    path = h.write_results(section.replace(":", "-").replace("identity", "idsync", 1), doc)
    if not args.no_report:
        by = {x.phase: x for x in bench.loads}
        cpu = [f"- `{p}`: {x.cores()}, over {x.duration_s:.1f} s" for p, x in by.items()]
        cpu = [line for line in cpu if "-warmup" not in line]
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
        plans = bench.seed_info.get("plans")
        if plans:
            body += ["", "SQLite plans of the hot statements on this store:", ""]
            body += [f"- `{k}`: {v}" for k, v in plans.items()]
        h.update_report(section, body)
    sys.stdout.write(f"\nopencdp IDSync benchmark ({bench.backend}, {elapsed:.0f} s): {cmd}\n\n")
    sys.stdout.write(h.render_text(rows) + "\n")
    for phase, summary in bench.profiler.summaries.items():
        sys.stdout.write(f"\npy-spy, {phase} ({summary['busy_samples']} busy samples):\n")
        for label, key in (("incl", "opencdp_inclusive"), ("leaf", "leaf")):
            for frame, pct in summary[key]:
                sys.stdout.write(f"  {label} {pct:5.1f}%  {frame}\n")
    sys.stdout.write(f"\nresults: {path}\n")
    failed = [r for r in rows if r.target in ("0", "equal", "all") and r.result == "FAIL"]
    return 1 if failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
