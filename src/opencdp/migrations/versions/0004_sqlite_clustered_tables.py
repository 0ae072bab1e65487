"""SQLite: the identity graph and the profile read model become WITHOUT ROWID tables.

Revision ID: 0004
Revises: 0003

These tables are always read by their primary key or by a prefix of it ((workspace, MPID) for
a profile's rows). As rowid tables, every such read searched the primary key's index and then
the table itself, and a profile's rows lay wherever they had been appended. WITHOUT ROWID
stores each row in its primary key's B-tree, so a profile's rows sit together and are found by
one search, and a write updates one B-tree fewer. Measured on the benchmark's million-profile
store: the Profile API's lookup statement 30 -> 26 us, and that store was seeded in key order,
the rowid layout's best case (bench/IDENTITY_PROFILE.md). PostgreSQL has no such option; its
tables are unchanged. The rebuild copies each table once, in key order.
"""

from __future__ import annotations

import re

from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TABLES = {
    "identity_profiles": "mpid",
    "identity_values": "workspace_id, identity_type, value, mpid",
    "identity_unique": "workspace_id, identity_type, value",
    "user_profiles": "workspace_id, mpid",
    "user_profile_values": "workspace_id, mpid, kind, name",
}
_SUFFIX = " WITHOUT ROWID"


def _rebuild(table: str, order_by: str, *, without_rowid: bool) -> None:
    bind = op.get_bind()
    create = bind.exec_driver_sql(
        "SELECT sql FROM sqlite_master WHERE type = 'table' AND name = ?", (table,)
    ).scalar_one()
    indexes = [
        r[0]
        for r in bind.exec_driver_sql(
            "SELECT sql FROM sqlite_master WHERE type = 'index' AND tbl_name = ?"
            " AND sql IS NOT NULL",
            (table,),
        )
    ]
    body = create.rstrip()
    if body.endswith(_SUFFIX):
        body = body[: -len(_SUFFIX)].rstrip()
    if without_rowid:
        body += _SUFFIX
    # SQLite keeps the statement as written; after a rename the name is quoted.
    head = re.match(rf'CREATE TABLE\s+"?{table}"?\s*\(', body)
    if head is None:
        raise RuntimeError(f"unexpected definition of {table}: {create[:80]}")
    new = f"{table}__rebuild"
    bind.exec_driver_sql(f"DROP TABLE IF EXISTS {new}")
    bind.exec_driver_sql(f"CREATE TABLE {new} (" + body[head.end() :])
    bind.exec_driver_sql(f"INSERT INTO {new} SELECT * FROM {table} ORDER BY {order_by}")
    bind.exec_driver_sql(f"DROP TABLE {table}")
    bind.exec_driver_sql(f"ALTER TABLE {new} RENAME TO {table}")
    for sql in indexes:
        bind.exec_driver_sql(sql)


def upgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, order_by in TABLES.items():
        _rebuild(table, order_by, without_rowid=True)


def downgrade() -> None:
    if op.get_bind().dialect.name != "sqlite":
        return
    for table, order_by in TABLES.items():
        _rebuild(table, order_by, without_rowid=False)
