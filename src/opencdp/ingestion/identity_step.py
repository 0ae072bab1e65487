"""Pipeline step: resolve every batch to a profile (IDSync identify semantics).

A batch naming an ``mpid`` goes to that profile, which also gains the user and device
identities the batch carries (``IdentityService.attach_in``: never a unique value another
profile holds). Otherwise its identities are resolved under the workspace's strategy, exactly
as an identify call would. ``user_identity_change`` events then apply as modify. Runs before
the steps that need ``WorkItem.mpid`` (event store, profiles).
"""

from __future__ import annotations

import logging

from sqlalchemy.engine import Connection

from opencdp.core.errors import BadRequest, OpenCdpError
from opencdp.events.schema import Batch, UserIdentityChangeEvent
from opencdp.identity.model import IdentityChange, IdentityRequest, ModifyRequest
from opencdp.identity.service import IdentityService
from opencdp.identity.types import (
    IdentityType,
    from_events_device_field,
    from_events_user_identity,
    from_identity_api,
)
from opencdp.ingestion.pipeline import WorkItem

logger = logging.getLogger(__name__)


def identities_of(batch: Batch) -> dict[IdentityType, str]:
    out: dict[IdentityType, str] = {}
    for name, value in batch.identities_dict().items():
        try:
            out[from_events_user_identity(name)] = value
        except BadRequest:
            continue
    for name, value in batch.device_identities_dict().items():
        t = from_events_device_field(name)
        if t is not None:
            out[t] = value
    return out


def _change_type(name: str) -> IdentityType | None:
    for parse in (from_events_user_identity, from_identity_api):
        try:
            return parse(name)
        except BadRequest:
            continue
    return None


class ResolveIdentity:
    name = "resolve_identity"

    def __init__(self, identity: IdentityService) -> None:
        self._identity = identity

    def apply(self, tx: Connection, items: list[WorkItem], now_ms: int) -> None:
        # Per chunk: identities already resolved, and (workspace, mpid, identities) already
        # attached. Both are dropped when a change event edits the graph.
        memo: dict[tuple[int, frozenset[tuple[IdentityType, str]]], int] = {}
        attached: set[tuple[int, int, frozenset[tuple[IdentityType, str]]]] = set()
        for item in items:
            batch = item.batch
            ids = identities_of(batch)
            if batch.mpid:
                if self._identity.ensure_profile_in(tx, item.workspace_id, batch.mpid, now_ms):
                    item.mpid = batch.mpid
                    done = (item.workspace_id, batch.mpid, frozenset(ids.items()))
                    if ids and done not in attached:
                        self._identity.attach_in(tx, item.workspace_id, batch.mpid, ids, now_ms)
                        attached.add(done)
            elif ids:
                key = (item.workspace_id, frozenset(ids.items()))
                mpid = memo.get(key)
                if mpid is None:
                    request = IdentityRequest(ids)
                    mpid = self._identity.resolve_in(tx, item.workspace_id, request, now_ms)
                    memo[key] = mpid
                item.mpid = mpid
            if item.mpid is not None and self._apply_identity_changes(tx, item, now_ms):
                memo.clear()
                attached.clear()

    def _apply_identity_changes(self, tx: Connection, item: WorkItem, now_ms: int) -> bool:
        """Apply the batch's ``user_identity_change`` events; True when any were applied."""
        changes: list[IdentityChange] = []
        for ev in item.batch.events or ():
            if not isinstance(ev, UserIdentityChangeEvent) or ev.data is None:
                continue
            new, old = ev.data.new, ev.data.old
            name = (new or old).identity_type if (new or old) is not None else None  # type: ignore[union-attr]
            t = _change_type(name) if name else None
            if t is None:
                continue
            old_v = old.identity if old is not None else None
            new_v = new.identity if new is not None else None
            if old_v == new_v or (old_v is None and new_v is None):
                continue
            changes.append(IdentityChange(t, old_v or None, new_v or None))
        if not changes:
            return False
        assert item.mpid is not None
        try:
            self._identity.modify_in(
                tx, item.workspace_id, ModifyRequest(item.mpid, tuple(changes)), now_ms
            )
        except OpenCdpError as exc:
            logger.info(
                "identity.change_not_applied",
                extra={"batch_id": item.batch_id, "reason": exc.code},
            )
            return False
        return True
