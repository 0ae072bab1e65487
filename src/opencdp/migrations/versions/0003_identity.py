"""The identity graph.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "identity_profiles",
        sa.Column("mpid", sa.BigInteger, primary_key=True, autoincrement=False),
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("last_seen_ms", sa.BigInteger, nullable=False),
        sa.Column("linked_source_mpid", sa.BigInteger, nullable=True),
    )
    op.create_index(
        "ix_identity_profiles_workspace_last_seen",
        "identity_profiles",
        ["workspace_id", "last_seen_ms"],
    )
    op.create_table(
        "identity_values",
        sa.Column("workspace_id", sa.Integer, primary_key=True),
        sa.Column("identity_type", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("mpid", sa.BigInteger, primary_key=True),
    )
    op.create_index(
        "ix_identity_values_mpid",
        "identity_values",
        ["mpid", "workspace_id", "identity_type", "value"],
    )
    op.create_table(
        "identity_unique",
        sa.Column("workspace_id", sa.Integer, primary_key=True),
        sa.Column("identity_type", sa.Text, primary_key=True),
        sa.Column("value", sa.Text, primary_key=True),
        sa.Column("mpid", sa.BigInteger, nullable=False),
    )
    op.create_table(
        "identity_aliases",
        sa.Column("id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), primary_key=True),
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.Column("source_mpid", sa.BigInteger, nullable=False),
        sa.Column("destination_mpid", sa.BigInteger, nullable=False),
        sa.Column("start_ms", sa.BigInteger, nullable=False),
        sa.Column("end_ms", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("applied", sa.Boolean, nullable=False),
    )


def downgrade() -> None:
    for name in ("identity_aliases", "identity_unique", "identity_values", "identity_profiles"):
        op.drop_table(name)
