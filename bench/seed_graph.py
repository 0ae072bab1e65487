"""Seed a realistic identity graph and profile read model straight into an opencdp store.

``python -m bench.seed_graph --data-dir D [--database-url URL] [--profiles 1000000]``

The identity and profile benchmarks need lookups to hit a store of realistic size (a million
users), and creating that through the API would take far longer than the benchmark itself
(every new user is a write transaction with a durable commit). So the rows are generated here
and bulk-loaded into the app's own tables, after ``opencdp init`` created the schema and the
default tenancy:

=========================== =============================================================
``identity_profiles``       one row per user (MPID, created, last seen)
``identity_values``         customer_id, email and a device application stamp per user
``identity_unique``         customer_id: the default strategy's unique login ID
``user_profiles``           the profile read model's head per user
``user_profile_values``     four user attributes per user (stored as the pipeline stores
                            them: JSON text, last-writer-wins ``ts_ms``/``tiebreak``)
``user_profile_identities`` the identities batches carried, on stores that still have this
                            table (newer ones leave identities to the identity graph)
=========================== =============================================================

Every value is a pure function of the user's index ``i`` (see :class:`Population`), so the
benchmarks and their load generators can name existing users, and know their MPIDs, without
reading the store. Half the users (even ``i``) were last seen minutes ago, the other half days
ago: IDSync serves a recently seen user from a read transaction but records activity (a write)
for one not seen for an hour, and the benchmarks measure both.

How it is fast: secondary indexes (and on PostgreSQL the primary keys too) are dropped, the
rows are inserted in key order where the key allows it, and the indexes are rebuilt from their
own catalog definitions afterwards, so the schema ends exactly as the migrations made it.
SQLite loads in one transaction without a journal (then returns to WAL); PostgreSQL uses COPY,
then ``VACUUM ANALYZE`` as autovacuum would have done on a store that grew over time.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import sqlite3
import subprocess
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent

MASK64 = (1 << 64) - 1
MINUTE_MS = 60_000
DAY_MS = 86_400_000

CITIES = ("Berlin", "Austin", "Lyon", "Osaka", "Leeds", "Quito", "Perth", "Oslo")
TIERS = ("free", "plus", "pro")


def log(msg: str) -> None:
    """Progress goes to stderr, so stdout carries only results."""
    sys.stderr.write(f"[seed {time.strftime('%H:%M:%S')}] {msg}\n")
    sys.stderr.flush()


def splitmix64(x: int) -> int:
    """SplitMix64's finalizer: a bijection on 64-bit ints, so distinct inputs never collide."""
    z = (x + 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


@dataclass(frozen=True)
class Population:
    """The seeded users: every column is derived from the user's index ``i`` and ``now_ms``.

    MPIDs look like the server's own (uniformly random signed 64-bit integers) but are
    reproducible, so a load generator can be handed a sample of them without a query.
    """

    profiles: int
    now_ms: int
    seed: int = 1

    def mpid(self, i: int) -> int:
        z = splitmix64((self.seed << 40) + i)
        return z - (1 << 64) if z >= 1 << 63 else z

    @staticmethod
    def customer_id(i: int) -> str:
        return f"cust-{i:08d}"

    @staticmethod
    def email(i: int) -> str:
        return f"user{i}@example.com"

    @staticmethod
    def device_id(i: int) -> str:
        return f"das-{i:08d}"

    @staticmethod
    def is_recent(i: int) -> bool:
        """Even users were seen minutes ago (IDSync reads), odd ones days ago (IDSync writes)."""
        return i % 2 == 0

    def last_seen_ms(self, i: int) -> int:
        if self.is_recent(i):
            return self.now_ms - (i * 7919) % (20 * MINUTE_MS)  # within the last 20 minutes
        return self.now_ms - 2 * DAY_MS - (i * 7919) % (10 * DAY_MS)  # 2-12 days ago

    def created_ms(self, i: int) -> int:
        return self.now_ms - 30 * DAY_MS - (i * 104729) % (300 * DAY_MS)

    @staticmethod
    def attributes(i: int) -> dict[str, str]:
        """User attributes as the Profile API returns them (strings)."""
        return {
            "$city": CITIES[i % len(CITIES)],
            "$firstname": f"First{i % 997}",
            "lifetime_orders": str(i % 40),
            "tier": TIERS[i % len(TIERS)],
        }


# -- stores ------------------------------------------------------------------------------------


def opencdp_init(data_dir: Path, database_url: str | None) -> dict[str, Any]:
    """``opencdp init --json``: creates the schema and default tenancy; returns credentials."""
    argv = [sys.executable, "-m", "opencdp.cli", "init", "--json", "--data-dir", str(data_dir)]
    if database_url:
        argv += ["--database-url", database_url]
    out = subprocess.run(argv, capture_output=True, text=True, cwd=ROOT, timeout=180, check=False)
    if out.returncode != 0:
        raise RuntimeError(f"opencdp init failed:\n{out.stderr[-3000:]}")
    creds: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    return creds


@dataclass
class SeedReport:
    """What was loaded and where the time went (seconds per stage)."""

    backend: str
    profiles: int
    rows: dict[str, int] = field(default_factory=dict)
    seconds: dict[str, float] = field(default_factory=dict)

    @property
    def total_rows(self) -> int:
        return sum(self.rows.values())

    @property
    def total_seconds(self) -> float:
        return sum(self.seconds.values())


TableRows = tuple[str, Sequence[str], Callable[[], Iterable[tuple[Any, ...]]]]


def table_rows(pop: Population, workspace_id: int) -> list[TableRows]:
    """(table, columns, row generator) for every seeded table.

    Tables keyed by MPID are filled in MPID order and identity tables in (type, value) order,
    so most index pages are appended to rather than split at random.
    """
    # Imported here: the store's own value encoding and tie-break, so seeded registers are
    # byte-identical to what the pipeline would have written for the same attributes.
    from opencdp.profiles.model import encode_value, tiebreak_of

    ws = workspace_id
    n = pop.profiles
    log(f"computing {n:,} MPIDs")
    mpids = [pop.mpid(i) for i in range(n)]
    by_mpid = sorted(range(n), key=mpids.__getitem__)
    registers_of: dict[str, tuple[str, int]] = {}

    def register(value: str) -> tuple[str, int]:
        """(stored JSON text, tiebreak) of an attribute value; the few distinct ones cached."""
        hit = registers_of.get(value)
        if hit is None:
            encoded = encode_value(value)
            hit = registers_of[value] = (encoded, tiebreak_of(encoded))
        return hit

    def profiles() -> Iterator[tuple[Any, ...]]:
        for i in by_mpid:
            yield (mpids[i], ws, pop.created_ms(i), pop.last_seen_ms(i), None)

    id_types: list[tuple[str, Callable[[int], str]]] = [
        ("customer_id", pop.customer_id),
        ("device_application_stamp", pop.device_id),
        ("email", pop.email),
    ]

    def values() -> Iterator[tuple[Any, ...]]:
        for t, value_of in id_types:
            for i in range(n):
                yield (ws, t, value_of(i), mpids[i])

    def unique() -> Iterator[tuple[Any, ...]]:
        for i in range(n):
            yield (ws, "customer_id", pop.customer_id(i), mpids[i])

    def heads() -> Iterator[tuple[Any, ...]]:
        for i in by_mpid:
            seen = pop.last_seen_ms(i)
            yield (ws, mpids[i], pop.created_ms(i), seen)

    def registers() -> Iterator[tuple[Any, ...]]:
        for i in by_mpid:
            seen = pop.last_seen_ms(i)
            for name, value in pop.attributes(i).items():  # already in name order
                encoded, tiebreak = register(value)
                yield (ws, mpids[i], "attr", name, encoded, seen, tiebreak)

    return [
        (
            "identity_profiles",
            ("mpid", "workspace_id", "created_ms", "last_seen_ms", "linked_source_mpid"),
            profiles,
        ),
        ("identity_values", ("workspace_id", "identity_type", "value", "mpid"), values),
        ("identity_unique", ("workspace_id", "identity_type", "value", "mpid"), unique),
        (
            "user_profiles",
            ("workspace_id", "mpid", "created_ms", "last_stored_ms"),
            heads,
        ),
        (
            "user_profile_values",
            ("workspace_id", "mpid", "kind", "name", "value", "ts_ms", "tiebreak"),
            registers,
        ),
    ]


OPTIONAL_TABLES = frozenset({"user_profile_identities"})
"""Seeded when the store has them: the profiles slice is dropping this one (the identity graph
owns identities), and the seeder must work on stores from before and after that change."""


def present_tables(tables: list[TableRows], present: set[str]) -> list[TableRows]:
    """The seeded tables the store has; a missing required one is an error."""
    missing = {t for t, _, _ in tables} - present - OPTIONAL_TABLES
    if missing:
        raise RuntimeError(f"the store has no table(s) {', '.join(sorted(missing))}")
    return [t for t in tables if t[0] in present]


def seed_sqlite(db_path: Path, pop: Population, workspace_id: int) -> SeedReport:
    """One transaction, no journal, a 2 GiB page cache; indexes rebuilt at the end.

    ``journal_mode=OFF`` is safe here because nothing else has the file open and a crash only
    loses a benchmark store; the WAL mode the server expects is restored before returning.
    """
    report = SeedReport("sqlite", pop.profiles)
    t0 = time.monotonic()
    tables = table_rows(pop, workspace_id)
    report.seconds["generate keys"] = time.monotonic() - t0
    conn = sqlite3.connect(db_path, isolation_level=None)
    try:
        present = {r[0] for r in conn.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        tables = present_tables(tables, present)
        conn.execute("PRAGMA journal_mode=OFF")
        conn.execute("PRAGMA synchronous=OFF")
        conn.execute("PRAGMA cache_size=-2000000")
        conn.execute("PRAGMA temp_store=MEMORY")
        conn.execute("PRAGMA threads=2")  # index rebuilds sort on both cores
        names = [t for t, _, _ in tables]
        marks = ",".join("?" * len(names))
        indexes = conn.execute(
            f"SELECT name, sql FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL"
            f" AND tbl_name IN ({marks})",
            names,
        ).fetchall()
        conn.execute("BEGIN")
        for name, _sql in indexes:
            conn.execute(f'DROP INDEX "{name}"')
        for table, cols, rows in tables:
            t = time.monotonic()
            sql = f"INSERT INTO {table} ({', '.join(cols)}) VALUES ({', '.join('?' * len(cols))})"
            conn.executemany(sql, rows())
            count = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
            report.rows[table] = int(count)
            report.seconds[f"insert {table}"] = time.monotonic() - t
            log(f"  {table}: {count:,} rows in {time.monotonic() - t:.1f}s")
        t = time.monotonic()
        for _name, sql in indexes:
            conn.execute(sql)
        conn.execute("COMMIT")
        report.seconds["rebuild indexes"] = time.monotonic() - t
        log(f"  {len(indexes)} secondary indexes rebuilt in {time.monotonic() - t:.1f}s")
        t = time.monotonic()
        conn.execute("PRAGMA journal_mode=WAL")
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        report.seconds["sync"] = time.monotonic() - t
    finally:
        conn.close()
    return report


def _copy_text(value: Any) -> str:
    return "\\N" if value is None else str(value)


def seed_postgresql(url: str, pop: Population, workspace_id: int) -> SeedReport:
    """COPY into index-free tables, rebuild primary keys and indexes, then VACUUM ANALYZE.

    Constraint and index definitions are read from the catalog before dropping them and
    replayed verbatim, so the store ends with exactly the schema the migrations created.
    """
    import psycopg

    report = SeedReport("postgresql", pop.profiles)
    t0 = time.monotonic()
    tables = table_rows(pop, workspace_id)
    report.seconds["generate keys"] = time.monotonic() - t0
    with psycopg.connect(url) as conn:
        conn.execute("SET synchronous_commit = off")
        conn.execute("SET maintenance_work_mem = '1GB'")
        conn.execute("SET max_parallel_maintenance_workers = 2")
        present = {
            r[0]
            for r in conn.execute(
                "SELECT tablename FROM pg_tables WHERE schemaname = current_schema()"
            )
        }
        tables = present_tables(tables, present)
        restore: list[str] = []
        for table, _cols, _rows in tables:
            pks = conn.execute(
                "SELECT conname, pg_get_constraintdef(oid) FROM pg_constraint"
                " WHERE conrelid = %s::regclass AND contype = 'p'",
                (table,),
            ).fetchall()
            idx = conn.execute(
                "SELECT indexname, indexdef FROM pg_indexes"
                " WHERE schemaname = current_schema() AND tablename = %s",
                (table,),
            ).fetchall()
            pk_names = {name for name, _ in pks}
            for name, definition in pks:
                conn.execute(f'ALTER TABLE {table} DROP CONSTRAINT "{name}"')
                restore.append(f'ALTER TABLE {table} ADD CONSTRAINT "{name}" {definition}')
            for name, definition in idx:
                if name not in pk_names:
                    conn.execute(f'DROP INDEX "{name}"')
                    restore.append(definition)
        for table, cols, rows in tables:
            t = time.monotonic()
            count = 0
            with conn.cursor().copy(f"COPY {table} ({', '.join(cols)}) FROM STDIN") as copy:
                chunk: list[str] = []
                for row in rows():
                    chunk.append("\t".join(map(_copy_text, row)))
                    if len(chunk) >= 50_000:
                        copy.write("\n".join(chunk) + "\n")
                        count += len(chunk)
                        chunk.clear()
                if chunk:
                    copy.write("\n".join(chunk) + "\n")
                    count += len(chunk)
            report.rows[table] = count
            report.seconds[f"copy {table}"] = time.monotonic() - t
            log(f"  {table}: {count:,} rows in {time.monotonic() - t:.1f}s")
        t = time.monotonic()
        for ddl in restore:
            conn.execute(ddl)
        conn.commit()
        report.seconds["rebuild keys and indexes"] = time.monotonic() - t
        log(f"  {len(restore)} primary keys and indexes rebuilt in {time.monotonic() - t:.1f}s")
    t = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        for table, _cols, _rows in tables:
            conn.execute(f"VACUUM (ANALYZE) {table}")
    report.seconds["vacuum analyze"] = time.monotonic() - t
    log(f"  vacuum analyze in {time.monotonic() - t:.1f}s")
    return report


def seed(
    data_dir: Path,
    database_url: str | None,
    creds: dict[str, Any],
    profiles: int,
    *,
    now_ms: int | None = None,
) -> tuple[Population, SeedReport]:
    """Seed ``profiles`` users into an initialized store (see the module docstring)."""
    pop = Population(profiles=profiles, now_ms=now_ms or int(time.time() * 1000))
    ws = int(creds["workspace_id"])
    log(f"seeding {profiles:,} profiles into {'PostgreSQL' if database_url else 'SQLite'}")
    started = time.monotonic()
    if database_url:
        report = seed_postgresql(_libpq_url(database_url), pop, ws)
    else:
        report = seed_sqlite(data_dir / "opencdp.db", pop, ws)
    log(
        f"seeded {report.total_rows:,} rows for {profiles:,} profiles in "
        f"{time.monotonic() - started:.1f}s"
    )
    return pop, report


def _libpq_url(url: str) -> str:
    """psycopg wants ``postgresql://``; SQLAlchemy-style driver suffixes are dropped."""
    for prefix in ("postgresql+psycopg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url


def check_plans(db_path: Path) -> dict[str, str]:
    """SQLite's plans for the IDSync and Profile API hot statements (no ANALYZE is run, as
    the app never runs it), so a report can show every lookup uses an index."""
    statements = {
        "mpids_for": "SELECT mpid FROM identity_values WHERE workspace_id = 1"
        " AND identity_type = 'email' AND value = 'x'",
        "profile_ids": "SELECT identity_type, value FROM identity_values"
        " WHERE workspace_id = 1 AND mpid = 5",
        "live_values": "SELECT kind, name, value FROM user_profile_values"
        " WHERE workspace_id = 1 AND mpid = 5 AND value IS NOT NULL",
    }
    conn = sqlite3.connect(db_path)
    try:
        return {
            k: "; ".join(r[-1] for r in conn.execute("EXPLAIN QUERY PLAN " + sql))
            for k, sql in statements.items()
        }
    finally:
        conn.close()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.seed_graph", description=__doc__)
    p.add_argument("--data-dir", type=Path, required=True)
    p.add_argument("--database-url", default=None, help="target PostgreSQL database (as is)")
    p.add_argument("--profiles", type=int, default=1_000_000)
    args = p.parse_args(argv)
    args.data_dir.mkdir(parents=True, exist_ok=True)
    t = time.monotonic()
    creds = opencdp_init(args.data_dir, args.database_url)
    init_s = time.monotonic() - t
    _pop, report = seed(args.data_dir, args.database_url, creds, args.profiles)
    doc: dict[str, Any] = {
        "backend": report.backend,
        "profiles": report.profiles,
        "rows": report.rows,
        "init_seconds": round(init_s, 2),
        "seconds": {k: round(v, 2) for k, v in report.seconds.items()},
        "seed_seconds": round(report.total_seconds, 2),
    }
    if not args.database_url:
        with contextlib.suppress(sqlite3.Error):
            doc["plans"] = check_plans(args.data_dir / "opencdp.db")
    sys.stdout.write(json.dumps(doc, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
