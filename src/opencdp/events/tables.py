"""The event store: every processed event with its server-assigned id and receive time."""

from __future__ import annotations

import sqlalchemy as sa

from opencdp.core.db import metadata

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")

events = sa.Table(
    "events",
    metadata,
    sa.Column("id", BigId, primary_key=True, autoincrement=True),
    sa.Column("event_id", sa.BigInteger, nullable=False),
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("mpid", sa.BigInteger, nullable=True),
    sa.Column("batch_id", sa.BigInteger, nullable=False),
    sa.Column("event_type", sa.Text, nullable=False),
    sa.Column("event_name", sa.Text, nullable=True),
    sa.Column("timestamp_ms", sa.BigInteger, nullable=False),
    sa.Column("received_ms", sa.BigInteger, nullable=False),
    sa.Column("environment", sa.Text, nullable=False),
    sa.Column("data", sa.LargeBinary, nullable=False),
    sa.Index("ix_events_workspace_mpid_ts", "workspace_id", "mpid", "timestamp_ms"),
    sa.Index("ix_events_batch", "batch_id"),
)
