"""Alembic migrations, applied programmatically by ``opencdp migrate`` / ``init`` / ``serve``."""
