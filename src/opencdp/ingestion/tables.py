"""The inbox: every accepted batch, durably, in arrival order per partition."""

from __future__ import annotations

import sqlalchemy as sa

from opencdp.core.db import metadata

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")  # SQLite rowid alias

inbox = sa.Table(
    "inbox",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("input_id", sa.Integer, nullable=False),
    sa.Column("partition", sa.Integer, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Column("source_request_id", sa.Text, nullable=True),
    sa.Column("payload", sa.LargeBinary, nullable=False),
    sa.Column("processed", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("processed_ms", sa.BigInteger, nullable=True),
    sa.Index("uq_inbox_input_source_request", "input_id", "source_request_id", unique=True),
    sa.Index(
        "ix_inbox_pending",
        "partition",
        "id",
        sqlite_where=sa.text("processed = 0"),
        postgresql_where=sa.text("NOT processed"),
    ),
)

partition_leases = sa.Table(
    "partition_leases",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.Text, nullable=True),
    sa.Column("expires_ms", sa.BigInteger, nullable=False, server_default="0"),
)
