"""The identity graph: profiles (MPIDs), the identity values they hold, unique claims, aliases.

``identity_unique`` is what makes uniqueness hold under concurrency: a unique identity value
has one row there, so two transactions cannot both give it to a profile — the loser gets an
integrity error and retries against the winner's state.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencdp.core.db import metadata

identity_profiles = sa.Table(
    "identity_profiles",
    metadata,
    sa.Column("mpid", sa.BigInteger, primary_key=True, autoincrement=False),
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
    sa.Column("linked_source_mpid", sa.BigInteger, nullable=True),
    sa.Index("ix_identity_profiles_workspace_last_seen", "workspace_id", "last_seen_ms"),
    sqlite_with_rowid=False,  # clustered on the primary key (migration 0004)
)

identity_values = sa.Table(
    "identity_values",
    metadata,
    sa.Column("workspace_id", sa.Integer, primary_key=True),
    sa.Column("identity_type", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("mpid", sa.BigInteger, primary_key=True),
    sa.Index("ix_identity_values_mpid", "mpid", "workspace_id", "identity_type", "value"),
    sqlite_with_rowid=False,  # clustered on the primary key (migration 0004)
)

identity_unique = sa.Table(
    "identity_unique",
    metadata,
    sa.Column("workspace_id", sa.Integer, primary_key=True),
    sa.Column("identity_type", sa.Text, primary_key=True),
    sa.Column("value", sa.Text, primary_key=True),
    sa.Column("mpid", sa.BigInteger, nullable=False),
    sqlite_with_rowid=False,  # clustered on the primary key (migration 0004)
)

aliases = sa.Table(
    "identity_aliases",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("source_mpid", sa.BigInteger, nullable=False),
    sa.Column("destination_mpid", sa.BigInteger, nullable=False),
    sa.Column("start_ms", sa.BigInteger, nullable=False),
    sa.Column("end_ms", sa.BigInteger, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("applied", sa.Boolean, nullable=False),
)
