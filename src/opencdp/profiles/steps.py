"""The pipeline step that keeps profiles up to date with every processed batch.

The ingestion package sits above this one, so the step does not import its ``WorkItem``: it
reads the few attributes it needs through the ``BatchItem`` protocol, which ``WorkItem``
satisfies structurally.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from sqlalchemy.engine import Connection

from opencdp.events.schema import Batch
from opencdp.profiles.model import ProfileUpdate, update_from_batch
from opencdp.profiles.service import ProfileService


class BatchItem(Protocol):
    """What the step reads of a pipeline work item."""

    @property
    def workspace_id(self) -> int: ...

    @property
    def mpid(self) -> int | None: ...

    @property
    def received_ms(self) -> int: ...

    @property
    def batch(self) -> Batch: ...


def profile_mpid(item: BatchItem, *, fallback_to_batch_mpid: bool) -> int | None:
    """The profile a batch belongs to: the MPID identity resolution chose (set by the identity
    step, which runs earlier), else, if allowed, the batch's own ``mpid``. 0 means "no user",
    as in the SDKs."""
    if item.mpid is not None:
        return item.mpid or None
    return (item.batch.mpid or None) if fallback_to_batch_mpid else None


class ApplyProfileUpdates:
    """Merge each batch's user attributes, deletions, attribute-change and opt-out events, and
    device flags into its profile. Batches without a profile (no MPID) are skipped.

    ``fallback_to_batch_mpid`` lets a pipeline without an identity step use the batch's own
    ``mpid``. With the identity step present it must be off: that step leaves ``mpid`` unset on
    purpose when it refuses a batch (an MPID that belongs to another workspace).
    """

    name = "apply_profile"

    def __init__(self, profiles: ProfileService, *, fallback_to_batch_mpid: bool = True) -> None:
        self._profiles = profiles
        self._fallback = fallback_to_batch_mpid

    def apply(self, tx: Connection, items: Sequence[BatchItem], now_ms: int) -> None:
        updates: list[ProfileUpdate] = []
        for item in items:
            mpid = profile_mpid(item, fallback_to_batch_mpid=self._fallback)
            if mpid is None:
                continue
            updates.append(
                update_from_batch(
                    item.batch,
                    workspace_id=item.workspace_id,
                    mpid=mpid,
                    received_ms=item.received_ms,
                )
            )
        if updates:
            self._profiles.apply(tx, updates, now_ms)
