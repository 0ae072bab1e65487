"""Profile read-model schema (created by migration 0002).

``user_profiles`` has one row per (workspace, MPID) with the times the Profile API shows. A
profile's last activity is not kept here: expiry goes by the identity record's ``last_seen_ms``
(ADR 0006). ``user_profile_values`` holds every last-writer-wins register of a profile: user
attributes (kind ``attr``) and profile fields (kind ``field``), deletions as rows whose value is
NULL. Identities are not kept here: the identity slice's graph owns them.
"""

from __future__ import annotations

import sqlalchemy as sa

from opencdp.core.db import metadata

user_profiles = sa.Table(
    "user_profiles",
    metadata,
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("mpid", sa.BigInteger, nullable=False),
    sa.Column("created_ms", sa.BigInteger, nullable=False),
    sa.Column("last_stored_ms", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "mpid"),
    sqlite_with_rowid=False,  # clustered on the primary key (migration 0004)
)

user_profile_values = sa.Table(
    "user_profile_values",
    metadata,
    sa.Column("workspace_id", sa.Integer, nullable=False),
    sa.Column("mpid", sa.BigInteger, nullable=False),
    sa.Column("kind", sa.Text, nullable=False),
    sa.Column("name", sa.Text, nullable=False),
    sa.Column("value", sa.Text, nullable=True),
    sa.Column("ts_ms", sa.BigInteger, nullable=False),
    sa.Column("tiebreak", sa.BigInteger, nullable=False),
    sa.PrimaryKeyConstraint("workspace_id", "mpid", "kind", "name"),
    sqlite_with_rowid=False,  # clustered on the primary key (migration 0004)
)
