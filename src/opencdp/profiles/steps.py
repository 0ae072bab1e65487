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


class ApplyProfileUpdates:
    """Merge each batch's user attributes, deletions, attribute-change and opt-out events, and
    device flags into its profile.

    The profile is the MPID the identity step (which runs earlier) chose. Batches it left
    without one are skipped: no identities and no ``mpid``, or an ``mpid`` that belongs to
    another workspace. The batch's own ``mpid`` is never used directly, so every profile this
    step writes has an identity record.
    """

    name = "apply_profile"

    def __init__(self, profiles: ProfileService) -> None:
        self._profiles = profiles

    def apply(self, tx: Connection, items: Sequence[BatchItem], now_ms: int) -> None:
        updates: list[ProfileUpdate] = []
        for item in items:
            mpid = item.mpid
            if not mpid:  # None: not resolved; 0: "no user", as in the SDKs
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
