"""Profiles: the profile read model (heads and last-writer-wins values).

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "user_profiles",
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.Column("mpid", sa.BigInteger, nullable=False),
        sa.Column("created_ms", sa.BigInteger, nullable=False),
        sa.Column("last_stored_ms", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint("workspace_id", "mpid", name="pk_user_profiles"),
    )
    op.create_table(
        "user_profile_values",
        sa.Column("workspace_id", sa.Integer, nullable=False),
        sa.Column("mpid", sa.BigInteger, nullable=False),
        sa.Column("kind", sa.Text, nullable=False),
        sa.Column("name", sa.Text, nullable=False),
        sa.Column("value", sa.Text, nullable=True),
        sa.Column("ts_ms", sa.BigInteger, nullable=False),
        sa.Column("tiebreak", sa.BigInteger, nullable=False),
        sa.PrimaryKeyConstraint(
            "workspace_id", "mpid", "kind", "name", name="pk_user_profile_values"
        ),
    )


def downgrade() -> None:
    for name in ("user_profile_values", "user_profiles"):
        op.drop_table(name)
