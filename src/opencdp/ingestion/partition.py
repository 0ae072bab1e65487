"""Partition assignment: a stable hash of workspace and the batch's strongest identity.

Batches of one user land in one partition, so the one worker that holds its lease applies them
in inbox order. See docs/adr/0002-inbox-and-partitions.md for what happens when identity
resolution later shows two keys belong to one person.
"""

from __future__ import annotations

import zlib


def partition_for(workspace_id: int, key: tuple[str, str] | None, count: int, salt: str) -> int:
    """``count`` is a power of two; ``salt`` spreads key-less batches (they have no order)."""
    if key is None:
        material = f"{workspace_id}\x00-\x00{salt}"
    else:
        material = f"{workspace_id}\x00{key[0]}\x00{key[1]}"
    return zlib.crc32(material.encode()) & (count - 1)
