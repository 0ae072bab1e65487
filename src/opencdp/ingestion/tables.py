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
    # What the worker has yet to apply. PostgreSQL: per partition, for the worker processes
    # that lease them. SQLite: in id order, so a commit's new entries share the right-most leaf
    # instead of dirtying one page per partition (one worker reads them all; migration 0005).
    sa.Index(
        "ix_inbox_pending", "partition", "id", postgresql_where=sa.text("NOT processed")
    ).ddl_if(dialect="postgresql"),
    sa.Index(
        "ix_inbox_pending_seq", "id", "partition", sqlite_where=sa.text("processed = 0")
    ).ddl_if(dialect="sqlite"),
)

applied_requests = sa.Table(
    "applied_requests",
    metadata,
    # Which inbox row was applied for an input's ``source_request_id``; the worker skips the
    # others (a client's retries). Checked when applying, not when accepting: a unique index
    # on the inbox put a random-page write into every request's commit (ADR 0007).
    sa.Column("input_id", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("source_request_id", sa.Text, primary_key=True),
    sa.Column("inbox_id", BigId, nullable=False),
    sqlite_with_rowid=False,
)

partition_leases = sa.Table(
    "partition_leases",
    metadata,
    sa.Column("partition", sa.Integer, primary_key=True, autoincrement=False),
    sa.Column("owner", sa.Text, nullable=True),
    sa.Column("expires_ms", sa.BigInteger, nullable=False, server_default="0"),
)
