"""PostgreSQL: inbox payloads are stored inline and uncompressed.

Revision ID: 0006
Revises: 0005

A batch is ~2.4 KB of JSON, over PostgreSQL's 2 KB TOAST threshold, so every inbox insert
compressed its payload with pglz and wrote it to the TOAST table and its index: a third of the
server's CPU per ``/v2/events`` request (24 -> 10 us per request) inside the commit every
request waits for. Raising ``toast_tuple_target`` to the page size keeps rows up to ~8 KB inline;
``STORAGE EXTERNAL`` stores larger ones (big Web SDK batches) out of line without compression.
The inbox keeps the bytes it is sent for the worker to read once; disk is cheaper than the
latency. Measured with ``python -m bench.run --database-url ...``: 0.26 -> 0.39 x the bare
baseline. SQLite never compresses; nothing changes there. Existing rows keep their storage.
"""

from __future__ import annotations

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE inbox SET (toast_tuple_target = 8160)")
    op.execute("ALTER TABLE inbox ALTER COLUMN payload SET STORAGE EXTERNAL")


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("ALTER TABLE inbox ALTER COLUMN payload SET STORAGE EXTENDED")
    op.execute("ALTER TABLE inbox RESET (toast_tuple_target)")
