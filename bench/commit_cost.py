"""What one inbox commit costs, without HTTP: the group committer's write, measured alone.

``python -m bench.commit_cost [--group 10] [--commits 3000]`` builds two fresh SQLite stores,
one with today's schema and one with the two inbox indexes migration 0005 removed (the unique
``(input_id, source_request_id)`` and the pending ``(partition, id)``), and times the same
stream of groups (the load generator's 2.4 KB batches, random request ids, 64 partitions)
into each, alternating in slices so machine noise hits both alike. Prints wall and CPU
microseconds per commit and the ratio; ADR 0007 quotes it.
"""

from __future__ import annotations

import argparse
import random
import resource
import sqlite3
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.loadgen import write_templates
from opencdp.core.config import Settings
from opencdp.ingestion.store import append_batches


def _store(root: Path, legacy: bool) -> Any:
    from opencdp.app import build_runtime

    runtime = build_runtime(Settings(data_dir=root))
    if legacy:
        cx = sqlite3.connect(root / "opencdp.db")
        cx.execute(
            "CREATE UNIQUE INDEX uq_inbox_input_source_request"
            " ON inbox (input_id, source_request_id)"
        )
        cx.execute("CREATE INDEX ix_inbox_pending ON inbox (partition, id) WHERE processed = 0")
        cx.commit()
        cx.close()
    return runtime


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--group", type=int, default=10, help="batches per commit")
    ap.add_argument("--commits", type=int, default=3000, help="measured commits per store")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="commit-cost-"))
    t = write_templates(tmp / "t", bodies=512, batches_per_body=1, bulk=False, seed=1)
    bodies = t.path.read_bytes().splitlines()
    rng = random.Random(7)
    seq = 0

    def rows() -> list[dict[str, Any]]:
        nonlocal seq
        out = []
        for _ in range(args.group):
            seq += 1
            out.append(
                {
                    "workspace_id": 1,
                    "input_id": 1,
                    "partition": rng.randrange(64),
                    "kind": "events",
                    "received_ms": seq,
                    "source_request_id": f"{rng.getrandbits(128):032x}",
                    "payload": bodies[seq % len(bodies)],
                }
            )
        return out

    stores = {"today": _store(tmp / "today", False), "pre-0005": _store(tmp / "legacy", True)}
    for runtime in stores.values():
        for _ in range(300):  # warm: caches, WAL file size
            append_batches(runtime.db, rows)
    wall: dict[str, list[float]] = {name: [] for name in stores}
    cpu: dict[str, list[float]] = {name: [] for name in stores}
    slice_n = 250
    for _ in range(max(1, args.commits // slice_n)):
        for name, runtime in stores.items():
            r0 = resource.getrusage(resource.RUSAGE_SELF)
            t0 = time.perf_counter()
            for _ in range(slice_n):
                append_batches(runtime.db, rows)
            wall[name].append((time.perf_counter() - t0) / slice_n * 1e6)
            r1 = resource.getrusage(resource.RUSAGE_SELF)
            used = r1.ru_utime - r0.ru_utime + r1.ru_stime - r0.ru_stime
            cpu[name].append(used / slice_n * 1e6)
    for runtime in stores.values():
        runtime.close()
        runtime.db.dispose()
    print(f"inbox commit of {args.group} batches (SQLite, synchronous=FULL), median of slices:")
    for name in stores:
        print(
            f"  {name:9s} {statistics.median(wall[name]):6.0f} us wall"
            f"  {statistics.median(cpu[name]):6.0f} us CPU"
        )
    print(
        f"  today / pre-0005: wall {statistics.median(wall['today']) / statistics.median(wall['pre-0005']):.2f}"
        f"  CPU {statistics.median(cpu['today']) / statistics.median(cpu['pre-0005']):.2f}"
    )


if __name__ == "__main__":
    main()
