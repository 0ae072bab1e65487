"""Real stores for tests: a fresh SQLite file, and a fresh PostgreSQL database when
OPENCDP_TEST_DATABASE_URL is set. CI sets it; an unreachable server fails the run, never skips.

PostgreSQL databases are cloned from a migrated template, so each test starts empty in ~0.1 s.
"""

from __future__ import annotations

import os
import threading
import uuid

import sqlalchemy as sa

from opencdp.core import migrate
from opencdp.core.config import normalize_database_url
from opencdp.core.db import Database

PG_ENV = "OPENCDP_TEST_DATABASE_URL"
_template_lock = threading.Lock()
_template: str | None = None


def pg_base_url() -> str | None:
    url = os.environ.get(PG_ENV, "").strip()
    return normalize_database_url(url) if url else None


def backends() -> list[str]:
    return ["sqlite", "postgresql"] if pg_base_url() else ["sqlite"]


def _admin_engine(base: str) -> sa.Engine:
    return sa.create_engine(base, isolation_level="AUTOCOMMIT", pool_size=1, max_overflow=2)


def _ensure_template(base: str) -> str:
    global _template
    with _template_lock:
        if _template is not None:
            return _template
        name = f"opencdp_tpl_{uuid.uuid4().hex[:10]}"
        eng = _admin_engine(base)
        with eng.connect() as conn:
            conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
        eng.dispose()
        url = sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)
        db = Database(url)
        migrate.upgrade(db)
        db.dispose()
        _template = name
        return name


def new_pg_database() -> str:
    """A fresh, migrated PostgreSQL database; returns its URL."""
    base = pg_base_url()
    assert base, f"{PG_ENV} is not set"
    template = _ensure_template(base)
    name = f"opencdp_t_{uuid.uuid4().hex[:12]}"
    eng = _admin_engine(base)
    with eng.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}" TEMPLATE "{template}"')
    eng.dispose()
    return sa.engine.make_url(base).set(database=name).render_as_string(hide_password=False)


def drop_pg_database(url: str) -> None:
    base = pg_base_url()
    assert base
    name = sa.engine.make_url(url).database
    eng = _admin_engine(base)
    with eng.connect() as conn:
        conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    eng.dispose()


def drop_template() -> None:
    global _template
    base = pg_base_url()
    if base and _template:
        eng = _admin_engine(base)
        with eng.connect() as conn:
            conn.exec_driver_sql(f'DROP DATABASE IF EXISTS "{_template}" WITH (FORCE)')
        eng.dispose()
        _template = None
