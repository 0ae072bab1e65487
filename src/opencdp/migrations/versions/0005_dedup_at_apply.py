"""``source_request_id`` de-duplication moves from the inbox insert to the worker.

Revision ID: 0005
Revises: 0004

Every ``/v2/events`` request waits for its inbox commit, and that commit was mostly index
upkeep: the unique index on ``(input_id, source_request_id)`` takes each batch's random id to a
random leaf page, and the pending index on ``(partition, id)`` one leaf per partition written.
Ten batches dirtied about thirty-six 4 KiB pages; without those two indexes one commit of ten
went from ~390 to ~130 us (bench/README.md). So (ADR 0007):

- ``applied_requests`` remembers, per input and ``source_request_id``, the inbox row that was
  applied; the worker skips any other row with the same key. It starts with every id the old
  unique index held (at most one row each), so nothing applied before the upgrade is applied
  again, and rows still waiting are applied as their own.
- The unique index goes.
- SQLite: the pending index becomes ``(id, partition)``: new rows land at its right edge, and
  the worker (one per SQLite store) reads it in id order. PostgreSQL keeps ``(partition, id)``,
  which its worker processes read per leased partition.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

BigId = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    op.create_table(
        "applied_requests",
        sa.Column("input_id", sa.Integer, primary_key=True, autoincrement=False),
        sa.Column("source_request_id", sa.Text, primary_key=True),
        sa.Column("inbox_id", BigId, nullable=False),
        sqlite_with_rowid=False,
    )
    op.execute(
        "INSERT INTO applied_requests (input_id, source_request_id, inbox_id) "
        "SELECT input_id, source_request_id, min(id) FROM inbox "
        "WHERE source_request_id IS NOT NULL GROUP BY input_id, source_request_id"
    )
    op.drop_index("uq_inbox_input_source_request", table_name="inbox")
    if sqlite:
        op.drop_index("ix_inbox_pending", table_name="inbox")
        op.create_index(
            "ix_inbox_pending_seq",
            "inbox",
            ["id", "partition"],
            sqlite_where=sa.text("processed = 0"),
        )


def downgrade() -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        op.drop_index("ix_inbox_pending_seq", table_name="inbox")
        op.create_index(
            "ix_inbox_pending", "inbox", ["partition", "id"], sqlite_where=sa.text("processed = 0")
        )
    # The copies a retry stored while the worker de-duplicated go first (it skipped them; the
    # one it applied is the oldest, since it applies a partition in id order).
    op.execute(
        "DELETE FROM inbox WHERE source_request_id IS NOT NULL AND id NOT IN "
        "(SELECT min(id) FROM inbox WHERE source_request_id IS NOT NULL "
        "GROUP BY input_id, source_request_id)"
    )
    op.create_index(
        "uq_inbox_input_source_request", "inbox", ["input_id", "source_request_id"], unique=True
    )
    op.drop_table("applied_requests")
