"""The stop-gap identity directory over the identities batches carried, and the Profile API
served from it (what runs when no identity graph is wired in)."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from opencdp.core.clock import FrozenClock
from opencdp.core.config import Settings
from opencdp.core.ratelimit import RateLimiter
from opencdp.profiles.model import Section
from opencdp.profiles.service import LocalIdentityDirectory, ProfileApi
from opencdp.tenancy.tokens import Grant
from tests.conftest import App
from tests.profiles.helpers import T0, frozen_app, profiles_service, send


@pytest.fixture
def papp(settings: Settings) -> Iterator[App]:
    with frozen_app(settings, FrozenClock(T0)) as app:
        yield app


def test_identities_seen_on_batches_are_listed_and_resolvable(papp: App) -> None:
    ws = papp.creds.workspace_id
    send(
        papp,
        {
            "mpid": 21,
            "timestamp_unixtime_ms": T0 - 2000,
            "user_identities": {"customerid": "c-1", "email": "old@example.com"},
            "device_info": {"ios_idfv": "IDFV-1"},
        },
    )
    send(
        papp,
        {"mpid": 21, "timestamp_unixtime_ms": T0 - 3000, "user_identities": {"email": "older@x"}},
    )
    send(
        papp,
        {"mpid": 22, "timestamp_unixtime_ms": T0 - 1000, "user_identities": {"customerid": "c-1"}},
    )
    directory = LocalIdentityDirectory(db=papp.runtime.db)
    found = directory.profile(ws, 21)
    assert found is not None
    assert found.user_identities == (("customerid", "c-1"), ("email", "old@example.com"))
    assert found.device_identities == (("ios_idfv", "IDFV-1"),)
    assert found.created_ms == T0 and found.last_seen_ms == T0
    assert directory.resolve(ws, "customerid", "c-1") == 22  # the latest holder
    assert directory.resolve(ws, "email", "old@example.com") == 21
    assert directory.resolve(ws, "email", "nobody") is None
    assert directory.profile(ws, 999) is None
    assert directory.profile(ws + 1, 21) is None

    api = ProfileApi(
        db=papp.runtime.db,
        clock=papp.runtime.clock,
        profiles=profiles_service(papp),
        directory=directory,
        rate_limiter=RateLimiter(rate_per_s=0, clock=papp.runtime.clock),
    )
    c = papp.creds
    grant = Grant("oc_t", c.org_id, c.account_id, frozenset({ws}), False, T0 + 1)
    view = api.by_mpid(
        grant,
        org_id=str(c.org_id),
        account_id=str(c.account_id),
        workspace_id=str(ws),
        mpid="21",
        fields="user_identities,device_identities",
    )
    assert view.user_identities == (("customer_id", "c-1"), ("email", "old@example.com"))
    assert view.device_identities == (("ios_vendor_id", "IDFV-1"),)
    assert view.sections == {Section.USER_IDENTITIES, Section.DEVICE_IDENTITIES}
