"""Apply the Alembic migrations shipped inside the package.

On PostgreSQL an advisory lock makes concurrent starts (an API process and workers starting
together) take turns instead of racing to create the same tables.
"""

from __future__ import annotations

from pathlib import Path

from alembic import command
from alembic.config import Config

from opencdp.core.db import Database

_MIGRATIONS = Path(__file__).resolve().parent.parent / "migrations"
_LOCK_KEY = 0x0C_DB_0001


def alembic_config() -> Config:
    cfg = Config()
    cfg.set_main_option("script_location", str(_MIGRATIONS))
    return cfg


def upgrade(db: Database, revision: str = "heads") -> None:
    cfg = alembic_config()
    with db.engine.connect() as conn:
        if not db.is_sqlite:
            conn.exec_driver_sql(f"SELECT pg_advisory_lock({_LOCK_KEY})")
            conn.commit()
        try:
            with conn.begin():
                cfg.attributes["connection"] = conn
                command.upgrade(cfg, revision)
        finally:
            if not db.is_sqlite:
                conn.exec_driver_sql(f"SELECT pg_advisory_unlock({_LOCK_KEY})")
                conn.commit()
