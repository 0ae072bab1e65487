"""Settings: the one place that reads the environment.

Every command-line flag has an ``OPENCDP_<NAME>`` environment variable; flags win over the
environment, the environment wins over defaults. Zero configuration runs the embedded default:
SQLite in ``.opencdp/`` on 127.0.0.1:8080 with the worker in the same process.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

ENV_PREFIX = "OPENCDP_"


@dataclass(frozen=True)
class Settings:
    """Everything a process needs to start. Built once, passed explicitly."""

    host: str = field(default="127.0.0.1", metadata={"doc": "Address the HTTP API listens on."})
    port: int = field(default=8080, metadata={"doc": "Port the HTTP API listens on."})
    data_dir: Path = field(
        default=Path(".opencdp"),
        metadata={"doc": "Directory for the embedded SQLite store and credentials.json."},
    )
    database_url: str = field(
        default="",
        metadata={"doc": "SQLAlchemy URL (postgresql://...); empty means SQLite in data_dir."},
    )
    no_worker: bool = field(
        default=False, metadata={"doc": "Run only the HTTP API (no processing worker)."}
    )
    api_processes: int = field(
        default=1,
        metadata={
            "doc": "HTTP API processes for `serve` (one per core). On SQLite this raises "
            "IDSync and Profile API throughput (reads run in parallel); writes still take "
            "turns, so ingestion gains little (docs/operations.md)."
        },
    )
    partitions: int = field(
        default=64, metadata={"doc": "Inbox partition count (power of two; fixed per store)."}
    )
    group_commit_max_rows: int = field(
        default=5000, metadata={"doc": "Most inbox rows committed in one group."}
    )
    worker_batch_size: int = field(
        default=500, metadata={"doc": "Most batches the worker applies in one transaction."}
    )
    worker_idle_ms: int = field(
        default=20, metadata={"doc": "Worker sleep when no partition has work."}
    )
    lease_ttl_ms: int = field(
        default=15000, metadata={"doc": "Partition lease lifetime; a dead worker's lease expires."}
    )
    rate_limit_batches_per_s: float = field(
        default=0.0,
        metadata={"doc": "Per-workspace Events API limit in batches/s; 0 turns it off."},
    )
    hmac_window_s: int = field(
        default=300, metadata={"doc": "Accepted clock skew for IDSync HMAC Date headers."}
    )
    sqlite_mmap_mb: int = field(
        default=512,
        metadata={
            "doc": "SQLite: read the file through memory mapping up to this size (0 is off). "
            "Faster reads on large stores; growing the file costs each connection a remap "
            "(docs/operations.md)."
        },
    )
    profile_lifetime_days: int = field(
        default=30, metadata={"doc": "Default profile lifetime after the last activity."}
    )
    profile_rate_limit_per_s: float = field(
        default=0.0, metadata={"doc": "Per-client Profile API limit in requests/s; 0 is off."}
    )
    token_secret: str = field(
        default="",
        metadata={"doc": "Key that signs OAuth tokens; empty means one kept in the store."},
    )
    log_level: str = field(default="INFO", metadata={"doc": "Python logging level."})
    log_format: str = field(default="json", metadata={"doc": "'json' or 'text'."})

    @property
    def effective_database_url(self) -> str:
        """The URL actually used: the given one, or SQLite inside the data directory."""
        if self.database_url:
            return normalize_database_url(self.database_url)
        return f"sqlite:///{(self.data_dir / 'opencdp.db').resolve()}"

    def with_overrides(self, **values: Any) -> Settings:
        """Return a copy with the non-None values applied (how CLI flags are layered on)."""
        return replace(self, **{k: v for k, v in values.items() if v is not None})


def normalize_database_url(url: str) -> str:
    """Accept the ``postgresql://`` spelling users know and select the psycopg 3 driver."""
    for prefix in ("postgres://", "postgresql://"):
        if url.startswith(prefix):
            return "postgresql+psycopg://" + url[len(prefix) :]
    return url


def _coerce(kind: Any, raw: str) -> Any:
    if kind in (bool, "bool"):
        return raw.strip().lower() in {"1", "true", "yes", "on"}
    if kind in (int, "int"):
        return int(raw)
    if kind in (float, "float"):
        return float(raw)
    if kind in (Path, "Path"):
        return Path(raw)
    return raw


def to_env(settings: Settings) -> dict[str, str]:
    """The ``OPENCDP_*`` variables that rebuild ``settings`` in a child process."""
    out: dict[str, str] = {}
    for f in fields(Settings):
        value = getattr(settings, f.name)
        out[ENV_PREFIX + f.name.upper()] = (
            ("true" if value else "false") if isinstance(value, bool) else str(value)
        )
    return out


def from_env(environ: Mapping[str, str] | None = None) -> Settings:
    """Build Settings from ``OPENCDP_*`` variables (unknown ones are ignored)."""
    env = os.environ if environ is None else environ
    values: dict[str, Any] = {}
    for f in fields(Settings):
        raw = env.get(ENV_PREFIX + f.name.upper())
        if raw is not None and raw != "":
            values[f.name] = _coerce(f.type, raw)
    return Settings(**values)
