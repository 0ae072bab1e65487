"""Profile lifetime as one rule: the Profile API's 404 and the sweep go by the same last
activity (the identity record's ``last_seen_ms``) and the same lifetime, and the sweep deletes
the identity record and the profile data together (ADR 0006).

Every test runs on each configured store with a frozen clock, so boundaries are exact.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa

from opencdp.core.clock import FrozenClock
from opencdp.core.config import Settings
from opencdp.identity.model import IdentityRequest
from opencdp.identity.service import IdentityService
from opencdp.identity.types import IdentityType
from opencdp.profiles import store
from tests.conftest import App
from tests.profiles.helpers import DAY, T0, frozen_app, get_profile, profiles_service, send


@pytest.fixture
def clock() -> FrozenClock:
    return FrozenClock(T0)


@pytest.fixture
def papp(settings: Settings, clock: FrozenClock) -> Iterator[App]:
    with frozen_app(settings, clock) as app:
        yield app


def _batch(mpid: int, **fields: Any) -> dict[str, Any]:
    return {"mpid": mpid, "environment": "production", **fields}


def _identity(app: App) -> IdentityService:
    svc = app.runtime.services["identity"]
    assert isinstance(svc, IdentityService)
    return svc


def _events_of(app: App, mpid: int) -> int:
    with app.runtime.db.read() as conn:
        q = sa.text("SELECT count(*) FROM events WHERE mpid = :m")
        return int(conn.execute(q, {"m": mpid}).scalar_one())


def test_expired_profiles_are_hidden_swept_and_start_fresh(papp: App, clock: FrozenClock) -> None:
    ws = papp.creds.workspace_id
    send(papp, _batch(7, user_attributes={"old": 1}))
    send(papp, _batch(8, user_attributes={"old": 1}))
    clock.advance(29 * DAY)
    send(papp, _batch(8, user_attributes={"kept": 1}))  # activity resets 8
    clock.advance(2 * DAY)
    assert get_profile(papp, 7)[0] == 404
    assert get_profile(papp, 8)[0] == 200
    assert profiles_service(papp).sweep_expired() == 1
    assert _identity(papp).profile(ws, 7) is None
    with papp.runtime.db.read() as conn:
        assert store.head(conn, ws, 7) is None
        assert store.registers(conn, ws, 7) == []
    send(papp, _batch(7, user_attributes={"new": 1}))
    status, doc = get_profile(papp, 7)
    assert status == 200 and doc["user_attributes"] == {"new": "1"}
    assert doc["created_timestamp_ms"] == T0 + 31 * DAY


def test_the_api_and_the_sweep_draw_the_line_at_the_same_millisecond(
    papp: App, clock: FrozenClock
) -> None:
    send(papp, _batch(20, user_attributes={"a": 1}))
    clock.advance(30 * DAY)  # exactly one lifetime: still alive for both
    assert get_profile(papp, 20)[0] == 200
    assert profiles_service(papp).sweep_expired() == 0
    clock.advance(1)
    assert get_profile(papp, 20)[0] == 404
    assert profiles_service(papp).sweep_expired() == 1
    assert profiles_service(papp).sweep_expired() == 0  # idempotent


def test_the_sweep_deletes_the_identity_record_and_the_data_but_not_the_events(
    papp: App, clock: FrozenClock
) -> None:
    ws = papp.creds.workspace_id
    event = {"event_type": "custom_event", "data": {"event_name": "e"}}
    send(
        papp,
        _batch(
            21,
            user_identities={"customerid": "c-21", "email": "ana@example.com"},
            user_attributes={"plan": "pro"},
            events=[event],
        ),
    )
    identity = _identity(papp)
    assert identity.resolve(ws, IdentityType.CUSTOMER_ID, "c-21") == 21
    clock.advance(31 * DAY)
    assert profiles_service(papp).sweep_expired() == 1
    assert identity.profile(ws, 21) is None
    assert identity.resolve(ws, IdentityType.CUSTOMER_ID, "c-21") is None
    with papp.runtime.db.read() as conn:
        assert store.head(conn, ws, 21) is None
        assert store.registers(conn, ws, 21) == []
    assert _events_of(papp, 21) == 1  # events of expired profiles stay
    # the unique claim went with the profile: the customer id can start a new one
    fresh = identity.identify(ws, IdentityRequest({IdentityType.CUSTOMER_ID: "c-21"}))
    assert fresh.created and fresh.mpid != 21


def test_idsync_activity_keeps_a_profile_alive_for_the_api_and_the_sweep(
    papp: App, clock: FrozenClock
) -> None:
    ws = papp.creds.workspace_id
    send(papp, _batch(22, user_identities={"customerid": "c-22"}, user_attributes={"a": 1}))
    clock.advance(20 * DAY)
    found = _identity(papp).identify(ws, IdentityRequest({IdentityType.CUSTOMER_ID: "c-22"}))
    assert found.mpid == 22
    clock.advance(11 * DAY)  # 31 days after the last batch, 11 after the identify
    assert get_profile(papp, 22)[0] == 200
    assert profiles_service(papp).sweep_expired() == 0
    clock.advance(20 * DAY)
    assert get_profile(papp, 22)[0] == 404
    assert profiles_service(papp).sweep_expired() == 1


def test_a_profile_only_idsync_knows_expires_by_the_same_rule(
    papp: App, clock: FrozenClock
) -> None:
    ws = papp.creds.workspace_id
    mpid = _identity(papp).identify(ws, IdentityRequest({IdentityType.EMAIL: "x@x.io"})).mpid
    status, doc = get_profile(papp, mpid, fields="user_attributes")
    assert status == 200 and doc["user_attributes"] == {}
    assert doc["last_stored_timestamp_ms"] == T0
    clock.advance(31 * DAY)
    assert get_profile(papp, mpid)[0] == 404
    assert profiles_service(papp).sweep_expired() == 1
    assert _identity(papp).profile(ws, mpid) is None


def test_activity_before_the_sweep_runs_keeps_the_profile_and_its_data(
    papp: App, clock: FrozenClock
) -> None:
    """The sweep is the only deleter: between the end of a lifetime and the next sweep (within
    the hour) the profile is hidden, and new activity in that window revives it whole."""
    send(papp, _batch(9, user_attributes={"old": 1}))
    clock.advance(31 * DAY)
    assert get_profile(papp, 9)[0] == 404
    send(papp, _batch(9, user_attributes={"new": 1}))
    status, doc = get_profile(papp, 9)
    assert status == 200 and doc["user_attributes"] == {"new": "1", "old": "1"}
    assert profiles_service(papp).sweep_expired() == 0


def test_the_workspace_setting_overrides_the_default_lifetime(
    papp: App, clock: FrozenClock
) -> None:
    papp.runtime.tenancy.update_workspace_settings(
        papp.creds.workspace_id, {"profile_lifetime_days": 90}
    )
    send(papp, _batch(10, user_attributes={"a": 1}))
    clock.advance(60 * DAY)
    assert get_profile(papp, 10)[0] == 200
    assert profiles_service(papp).sweep_expired() == 0
    clock.advance(31 * DAY)
    assert get_profile(papp, 10)[0] == 404
    assert profiles_service(papp).sweep_expired() == 1
