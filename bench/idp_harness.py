"""Process management, wrk runs and reporting shared by the identity and profile benchmarks.

Same approach as the ingestion benchmark (bench/run.py, bench/README.md): every role is its own
process on loopback (``opencdp serve`` through the real CLI, a bare ASGI baseline under the same
uvicorn options, wrk with a Lua script as the load generator), CPU is accounted per process from
/proc so a busy shared machine shows up in the report instead of silently skewing it, and each
backend's results replace their own section of a Markdown file between markers.

Kept separate from bench/run.py (owned by another engineer) so that changes there cannot break
these benchmarks, and vice versa.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import http.client
import json
import math
import os
import platform
import shutil
import signal
import socket
import sqlite3
import subprocess
import sys
import tempfile
import time
import urllib.parse
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
BENCH = ROOT / "bench"
LUA = BENCH / "lua"
RESULTS = BENCH / "results"
REPORT = BENCH / "IDENTITY_PROFILE.md"


def log(msg: str) -> None:
    """Progress goes to stderr so stdout carries only the final table."""
    sys.stderr.write(f"[bench {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def http_call(
    port: int,
    method: str,
    path: str,
    *,
    body: bytes | None = None,
    headers: dict[str, str] | None = None,
    timeout: float = 10.0,
) -> tuple[int, bytes]:
    """One request on a fresh connection (checks and set-up only; never on a measured path)."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout)
    try:
        conn.request(method, path, body=body, headers=headers or {})
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        conn.close()


def python_path() -> str:
    """PYTHONPATH for child processes: the repository (for ``bench``) after any PYTHONPATH the
    caller set, so a run can import opencdp from a snapshot (e.g. ``git archive HEAD``) while
    the working tree is being edited."""
    existing = os.environ.get("PYTHONPATH", "")
    return os.pathsep.join(p for p in (existing, str(ROOT)) if p)


def opencdp_source() -> str:
    """Where child processes import opencdp from (reported next to the results)."""
    out = subprocess.run(
        [sys.executable, "-c", "import opencdp, os; print(os.path.dirname(opencdp.__file__))"],
        capture_output=True,
        text=True,
        env=dict(os.environ, PYTHONPATH=python_path()),
        cwd=ROOT,
        check=False,
    )
    return out.stdout.strip() or "?"


def _own_cpu(pid: int) -> tuple[float, int]:
    """(user + system CPU seconds of the process and its threads, parent pid), from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0, -1
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK"), int(fields[1])


def cpu_seconds(pid: int) -> float:
    """CPU of a live process and its live descendants (``serve --api-processes N`` runs its
    API in child processes)."""
    parents: dict[int, int] = {}
    cpu: dict[int, float] = {}
    for d in Path("/proc").iterdir():
        if d.name.isdigit():
            cpu[int(d.name)], parents[int(d.name)] = _own_cpu(int(d.name))
    total = 0.0
    for p, c in cpu.items():
        q = p
        while q > 1 and q != pid:
            q = parents.get(q, -1)
        if q == pid:
            total += c
    return total


def postgres_cpu_seconds() -> float:
    """CPU of every process named ``postgres`` on the machine (backends, walwriter...).

    The database is part of the system under test on PostgreSQL, so its CPU is reported
    beside the server's instead of hiding in "other" (another PostgreSQL client on the same
    machine would be counted too; "other" stays honest about the rest).
    """
    total = 0.0
    for d in Path("/proc").iterdir():
        if not d.name.isdigit():
            continue
        try:
            if (d / "comm").read_text().strip() != "postgres":
                continue
        except OSError:
            continue
        total += _own_cpu(int(d.name))[0]
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all processes spent busy so far, summed over CPUs (from /proc/stat)."""
    try:
        values = [int(v) for v in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:]]
    except (OSError, ValueError):
        return 0.0
    idle = values[3] + (values[4] if len(values) > 4 else 0)
    return (sum(values[:8]) - idle) / os.sysconf("SC_CLK_TCK")


def wait_until_quiet(budget: list[float], threshold: float = 0.3) -> None:
    """Wait (from a shared budget of seconds) until other work uses < ``threshold`` cores.

    The machine is shared; a test suite running beside the benchmark halves the numbers.
    """
    if budget[0] <= 0:
        return
    deadline = time.monotonic() + budget[0]
    busy = 0.0
    while time.monotonic() < deadline:
        b0, t0 = machine_busy_seconds(), time.monotonic()
        time.sleep(1.0)
        busy = (machine_busy_seconds() - b0) / (time.monotonic() - t0)
        if busy < threshold:
            break
        log(f"machine busy ({busy:.2f} cores used by other work); waiting")
    budget[0] = max(0.0, deadline - time.monotonic())


# -- processes ------------------------------------------------------------------------------------


class Proc:
    """A child process whose output goes to a log file; stopped with SIGTERM, then SIGKILL."""

    def __init__(self, name: str, argv: list[str], log_path: Path) -> None:
        self.name = name
        self.log_path = log_path
        self._log = log_path.open("ab")
        env = dict(os.environ, PYTHONPATH=python_path(), PYTHONUNBUFFERED="1")
        self.popen = subprocess.Popen(
            argv, stdout=self._log, stderr=subprocess.STDOUT, cwd=ROOT, env=env
        )

    @property
    def pid(self) -> int:
        return self.popen.pid

    def alive(self) -> bool:
        return self.popen.poll() is None

    def tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def wait_http(self, port: int, timeout: float = 90.0) -> None:
        """Until ``GET /healthz`` is 200; fails fast if the process died."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited early:\n{self.tail()}")
            with contextlib.suppress(OSError, http.client.HTTPException):
                if http_call(port, "GET", "/healthz", timeout=2.0)[0] == 200:
                    return
            time.sleep(0.1)
        raise RuntimeError(f"{self.name} was not ready after {timeout}s:\n{self.tail()}")

    def stop(self, timeout: float = 30.0) -> int:
        """Graceful stop (uvicorn drains in-flight requests); returns the exit code."""
        if self.alive():
            self.popen.send_signal(signal.SIGTERM)
            try:
                self.popen.wait(timeout)
            except subprocess.TimeoutExpired:
                log(f"{self.name} did not stop in {timeout}s; killing it")
                self.popen.kill()
                self.popen.wait()
        self._log.close()
        return int(self.popen.returncode)


def log_errors(log_path: Path, limit: int = 5) -> list[str]:
    """The first error lines of a server log (JSON lines), kept in the results so a failed
    run can be diagnosed after its temp dir is gone."""
    out: list[str] = []
    with contextlib.suppress(OSError):
        for line in log_path.read_text(errors="replace").splitlines():
            if '"level": "error"' in line or "Traceback" in line:
                out.append(line[:2000])
                if len(out) >= limit:
                    break
    return out


def cli(*argv: str) -> list[str]:
    return [sys.executable, "-m", "opencdp.cli", *argv]


# -- stores ---------------------------------------------------------------------------------------


class Store:
    """A fresh opencdp store: a temp SQLite directory, or a new database on a PostgreSQL.

    With an admin URL a database ``opencdp_idp_<pid>_<time>`` is created for the run and
    dropped by :meth:`drop`, so runs never share or leave state.
    """

    def __init__(self, workdir: Path, admin_url: str | None) -> None:
        self.data_dir = workdir / "store"
        self.data_dir.mkdir(parents=True)
        self.admin_url = admin_url
        self.url: str | None = None
        self.db_name: str | None = None
        if admin_url:
            self.db_name = f"opencdp_idp_{os.getpid()}_{int(time.time())}"
            with self._pg(admin_url) as conn:
                conn.execute(f'CREATE DATABASE "{self.db_name}"')
            parts = urllib.parse.urlsplit(admin_url)
            self.url = urllib.parse.urlunsplit(parts._replace(path="/" + self.db_name))

    @property
    def backend(self) -> str:
        return "postgresql" if self.url else "sqlite"

    @property
    def sqlite_path(self) -> Path:
        return self.data_dir / "opencdp.db"

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
            conn = sqlite3.connect(self.sqlite_path, timeout=30)
            try:
                row = conn.execute(sql).fetchone()
            finally:
                conn.close()
        return int(row[0]) if row and row[0] is not None else 0

    def pg_sessions(self) -> int:
        """Sessions ever opened on this database (``pg_stat_database``, PostgreSQL 14+): the
        rate shows whether the server's connection pool opens connections under load."""
        if not self.url:
            return 0
        try:
            return self.scalar(
                "SELECT sessions FROM pg_stat_database WHERE datname = current_database()"
            )
        except Exception:
            return 0

    def drop(self) -> None:
        if self.admin_url and self.db_name:
            with self._pg(self.admin_url) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.db_name}" WITH (FORCE)')


def serve(
    store: Store,
    port: int,
    workdir: Path,
    *,
    worker: bool,
    name: str,
    extra: Sequence[str] = (),
) -> Proc:
    """``opencdp serve`` on ``store`` (the real CLI, as deployed)."""
    argv = cli("serve", "--host", "127.0.0.1", "--port", str(port), *store.cli_args(), *extra)
    if not worker:
        argv.append("--no-worker")
    proc = Proc(name, argv, workdir / f"{name}.log")
    proc.wait_http(port)
    return proc


def bare(port: int, workdir: Path, processes: int = 1) -> Proc:
    """The baseline app (``bench/bare_json_app.py``) on ``port``, in as many processes as the
    server under test gets (``serve --api-processes``), so the ratio compares like with like."""
    argv = [sys.executable, "-m", "bench.bare_json_app", "--port", str(port)]
    if processes > 1:
        argv += ["--workers", str(processes)]
    proc = Proc("bare", argv, workdir / "bare.log")
    proc.wait_http(port)
    return proc


# -- wrk ------------------------------------------------------------------------------------------


@dataclass
class Load:
    """One measured load run: what wrk saw, plus the CPU it and the server used."""

    phase: str
    target: str
    connections: int
    duration_s: float
    requests: int
    ok: int
    errors: int
    status: dict[str, int]
    p50_ms: float
    p90_ms: float
    p99_ms: float
    max_ms: float
    loadgen_cpu_s: float
    server_cpu_s: float = 0.0
    db_cpu_s: float = 0.0
    db_sessions: int = 0
    other_cpu_s: float = 0.0
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def rps(self) -> float:
        return self.ok / self.duration_s if self.duration_s else 0.0

    @property
    def server_cpu_us(self) -> float:
        return 1e6 * self.server_cpu_s / self.requests if self.requests else 0.0

    def cores(self) -> str:
        d = self.duration_s or 1.0
        db = (
            f"postgres {self.db_cpu_s / d:.2f} ({self.db_sessions / d:,.0f} new sessions/s), "
            if self.db_cpu_s
            else ""
        )
        return (
            f"server {self.server_cpu_s / d:.2f}, {db}wrk {self.loadgen_cpu_s / d:.2f}, "
            f"other {self.other_cpu_s / d:.2f} cores"
        )


def wrk_available() -> bool:
    return shutil.which("wrk") is not None


def run_wrk(
    phase: str,
    target: str,
    port: int,
    path: str,
    script: str,
    script_args: Sequence[str],
    *,
    duration: float,
    connections: int,
    server_pid: int | None = None,
    store: Store | None = None,
    timeout_s: float = 30.0,
) -> Load:
    """One wrk run with ``bench/lua/<script>``; its ``done()`` prints a ``BENCHJSON`` line.

    ``os.wait4`` gives wrk's own CPU, so its share of the 2 cores is reported beside the
    numbers it produced; the server's and everything else's come from /proc.
    """
    secs = max(1, round(duration))
    argv = ["wrk", "-t", "1", "-c", str(connections), "-d", f"{secs}s"]
    argv += ["--timeout", f"{timeout_s:g}s", "-s", str(LUA / script)]
    argv += [f"http://127.0.0.1:{port}{path}", "--", *script_args]
    pg = store is not None and store.url is not None
    sessions0 = store.pg_sessions() if pg and store else 0
    db0 = postgres_cpu_seconds() if pg else 0.0
    cpu0 = cpu_seconds(server_pid) if server_pid else 0.0
    busy0 = machine_busy_seconds()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(argv, stdout=out, stderr=err, cwd=ROOT)
        deadline = time.monotonic() + secs + timeout_s + 30
        while True:
            pid, status, usage = os.wait4(p.pid, os.WNOHANG)
            if pid:
                p.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                p.kill()
                p.wait()
                raise RuntimeError(f"wrk overran its deadline: {argv}")
            time.sleep(0.05)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    busy1 = machine_busy_seconds()
    cpu1 = cpu_seconds(server_pid) if server_pid else 0.0
    db_cpu = postgres_cpu_seconds() - db0 if pg else 0.0
    sessions = (store.pg_sessions() - sessions0 - 1) if pg and store else 0  # -1: our query
    if p.returncode != 0:
        raise RuntimeError(f"wrk failed ({p.returncode}): {stderr}\n{stdout}")
    doc = last_json(stdout, "BENCHJSON ")
    lg_cpu = usage.ru_utime + usage.ru_stime
    load = Load(
        phase=phase,
        target=target,
        connections=connections,
        duration_s=float(doc["duration_s"]),
        requests=int(doc["requests"]),
        ok=int(doc["ok"]),
        errors=int(doc["requests"]) - int(doc["ok"]) + int(doc["socket_errors"]),
        status={str(k): int(v) for k, v in doc["status"].items()},
        p50_ms=float(doc["p50_ms"]),
        p90_ms=float(doc["p90_ms"]),
        p99_ms=float(doc["p99_ms"]),
        max_ms=float(doc["max_ms"]),
        loadgen_cpu_s=lg_cpu,
        server_cpu_s=cpu1 - cpu0,
        db_cpu_s=db_cpu,
        db_sessions=max(0, sessions),
        other_cpu_s=max(0.0, (busy1 - busy0) - (cpu1 - cpu0) - lg_cpu - db_cpu)
        if server_pid
        else 0.0,
        extra={k: v for k, v in doc.items() if k.startswith("x_")},
    )
    log(
        f"  {phase} ({target}): {load.rps:,.0f} ok/s, p50 {load.p50_ms:.2f} ms, "
        f"p99 {load.p99_ms:.2f} ms, errors {load.errors}"
        + (f"; {load.cores()}" if server_pid else "")
    )
    return load


def last_json(stdout: str, marker: str) -> dict[str, Any]:
    for line in reversed(stdout.splitlines()):
        if line.startswith(marker):
            doc: dict[str, Any] = json.loads(line[len(marker) :])
            return doc
    raise RuntimeError(f"no result line from the load generator:\n{stdout[-2000:]}")


# -- py-spy ---------------------------------------------------------------------------------------


class Profiler:
    """Optional py-spy recording of the server during one measured phase.

    py-spy is a measurement tool only (``pip install py-spy`` into the venv); it is not a
    project dependency. The summary lists opencdp functions by inclusive share of samples,
    which answers "which of our functions costs the time" better than leaf frames do.
    """

    def __init__(self, exe: str | None, out_dir: Path, tag: str, *, gil: bool = False) -> None:
        self.exe = exe
        self.out_dir = out_dir
        self.tag = tag
        self.gil = gil
        self.summaries: dict[str, dict[str, Any]] = {}

    def start(self, phase: str, pid: int, duration: float) -> subprocess.Popen[bytes] | None:
        if not self.exe:
            return None
        out = self.out_dir / f"profile-{self.tag}-{phase}.txt"
        argv = [self.exe, "record", "--pid", str(pid), "--rate", "200", "--threads"]
        argv += ["--nonblocking", "--format", "raw", "-o", str(out)]
        if self.gil:  # only the thread holding the GIL: where the one Python core goes
            argv.append("--gil")
        argv += ["--duration", str(max(1, math.ceil(duration)))]
        return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)

    def stop(
        self, phase: str, proc: subprocess.Popen[bytes] | None, *, interrupt: bool = False
    ) -> None:
        """Wait for the recording to end (``interrupt``: end it now; py-spy still writes)."""
        if proc is None:
            return
        if interrupt and proc.poll() is None:
            proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.send_signal(signal.SIGINT)
            proc.wait(10)
        path = self.out_dir / f"profile-{self.tag}-{phase}.txt"
        if path.exists():
            self.summaries[phase] = summarize_profile(path)


def _idle(frames: list[str]) -> bool:
    """A thread-pool worker waiting for work (anyio/concurrent.futures queue), not working."""
    leaf = frames[-1]
    if not leaf.startswith(("Condition.wait (threading", "wait (threading", "select (")):
        return False
    return any(f.startswith(("Queue.get (queue.py", "_worker (concurrent")) for f in frames)


def summarize_profile(path: Path, n: int = 10) -> dict[str, Any]:
    """From py-spy's raw collapsed stacks (all threads): the share of samples spent in each
    opencdp function counted inclusively, and the hottest leaf frames, as percent of all
    samples of threads that ran opencdp code (idle event-loop and pool threads excluded)."""
    incl: Counter[str] = Counter()
    leaf: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        frames = stack.split(";")
        k = int(count)
        if _idle(frames):
            continue
        total += k
        leaf[frames[-1]] += k
        for frame in set(frames[1:]):
            if "(opencdp/" in frame and "(opencdp/cli.py" not in frame:
                incl[frame] += k
    pct = (lambda c: round(100.0 * c / total, 1)) if total else (lambda c: 0.0)
    return {
        "busy_samples": total,
        "opencdp_inclusive": [(f, pct(c)) for f, c in incl.most_common(n)],
        "leaf": [(f, pct(c)) for f, c in leaf.most_common(n)],
    }


# -- reporting ------------------------------------------------------------------------------------


@dataclass
class Row:
    metric: str
    opencdp: str
    baseline: str = ""
    ratio: str = ""
    target: str = ""
    result: str = "info"


def fmt_n(x: float) -> str:
    return f"{x:,.0f}"


def fmt_ms(x: float) -> str:
    return f"{x:.2f} ms"


def pass_fail(ok: bool) -> str:
    return "pass" if ok else "FAIL"


def render_text(rows: Sequence[Row]) -> str:
    head = Row("metric", "opencdp", "baseline", "ratio", "target", "result")
    cols = [list(asdict(r).values()) for r in [head, *rows]]
    widths = [max(len(str(c[i])) for c in cols) for i in range(6)]
    lines = []
    for i, c in enumerate(cols):
        lines.append("  ".join(str(v).ljust(w) for v, w in zip(c, widths, strict=True)).rstrip())
        if i == 0:
            lines.append("  ".join("-" * w for w in widths))
    return "\n".join(lines)


def render_markdown(rows: Sequence[Row]) -> str:
    out = [
        "| metric | opencdp | baseline | ratio | target | result |",
        "|---|---:|---:|---:|---|---|",
    ]
    out += [
        f"| {r.metric} | {r.opencdp} | {r.baseline} | {r.ratio} | {r.target} | {r.result} |"
        for r in rows
    ]
    return "\n".join(out)


def machine_notes(database_url: str | None) -> dict[str, Any]:
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
        "git_commit": _git("rev-parse", "--short", "HEAD"),
        "src_dirty": bool(_git("status", "--porcelain", "--", "src")),
        "opencdp_from": opencdp_source(),
    }
    with contextlib.suppress(Exception):
        import uvicorn

        notes["uvicorn"] = uvicorn.__version__
    with contextlib.suppress(OSError):
        v = subprocess.run(["wrk", "-v"], capture_output=True, text=True, check=False)
        notes["wrk"] = (v.stdout or v.stderr).split("[")[0].strip()
    if database_url:
        with contextlib.suppress(Exception), Store._pg(database_url) as conn:
            notes["postgresql"] = conn.execute("SHOW server_version").fetchone()[0]
    return notes


def source_line(notes: dict[str, Any]) -> str:
    """Which code was measured: HEAD, the working tree with local edits, or a snapshot."""
    tree = str(ROOT / "src" / "opencdp")
    where = notes.get("opencdp_from", tree)
    if where != tree:
        stamp = Path(where).parent.parent / "COMMIT"  # written by whoever made the snapshot
        commit = stamp.read_text().strip() if stamp.exists() else "?"
        return (
            f"opencdp from a snapshot of commit `{commit}` (`git archive`; the working tree "
            f"was being edited), HEAD `{notes['git_commit']}`"
        )
    dirty = " with local changes in src/" if notes["src_dirty"] else ""
    return f"opencdp from the working tree at `{notes['git_commit']}`{dirty}"


def machine_line(notes: dict[str, Any]) -> str:
    pg = f", PostgreSQL {notes['postgresql']}" if "postgresql" in notes else ""
    return (
        f"Machine: {notes['cpus']} CPUs ({notes['cpu_model']}), Linux {notes['kernel']}, "
        f"Python {notes['python']}, uvicorn {notes.get('uvicorn', '?')}, "
        f"SQLite {notes['sqlite']}{pg}; load generator: {notes.get('wrk', 'wrk')}."
    )


def _git(*argv: str) -> str:
    out = subprocess.run(["git", *argv], capture_output=True, text=True, cwd=ROOT, check=False)
    return out.stdout.strip()


def update_report(section: str, body_lines: Sequence[str]) -> None:
    """Replace one section of bench/IDENTITY_PROFILE.md (between its markers); append the
    section if the markers are missing, so hand-written text around them is kept."""
    start, end = f"<!-- results:{section}:start -->", f"<!-- results:{section}:end -->"
    body = "\n".join([start, *body_lines, end])
    text = REPORT.read_text() if REPORT.exists() else "# Identity and Profile API benchmarks\n"
    if start in text and end in text:
        before, rest = text.split(start, 1)
        text = before + body + rest.split(end, 1)[1]
    else:
        text = text.rstrip("\n") + f"\n\n### {section}\n\n" + body + "\n"
    REPORT.write_text(text)


def write_results(name: str, doc: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps(doc, indent=2, default=str) + "\n")
    return path


def now_stamp() -> str:
    return dt.datetime.now().strftime("%Y-%m-%d %H:%M")


def percentile(sorted_values: Sequence[float], q: float) -> float:
    """Nearest-rank percentile of an ascending sequence (0 for an empty one)."""
    if not sorted_values:
        return 0.0
    rank = max(0, min(len(sorted_values) - 1, math.ceil(q / 100 * len(sorted_values)) - 1))
    return float(sorted_values[rank])
