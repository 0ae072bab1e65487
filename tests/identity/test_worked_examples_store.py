"""The §4.2 worked examples replayed through IdentityService on the real stores.

The same tables as tests/identity/test_strategies.py (which replays them on the pure model);
here every call goes through the service's transactions and SQL, and after every row the graph
read back from the database must equal the expectation.
"""

from __future__ import annotations

from typing import Any

import pytest
import sqlalchemy as sa

from opencdp.app import Runtime
from opencdp.core.config import Settings
from opencdp.core.errors import NotFound
from opencdp.identity.model import IdentityChange, IdentityRequest, ModifyRequest, StrategyConfig
from opencdp.identity.service import IdentityService
from opencdp.identity.types import IdentityType, to_identity_api
from tests.identity.test_strategies import (
    BEST_MATCH,
    BEST_MATCH_ROWS,
    CONVERSION,
    CONVERSION_ROWS,
    DEFAULT,
    DEFAULT_ROWS,
    ISOLATION,
    ISOLATION_ROWS,
    LINK,
    LINK_ROWS,
    Row,
)

Pair = tuple[IdentityType, str]


def _settings_for(cfg: StrategyConfig) -> dict[str, Any]:
    raw: dict[str, Any] = {
        "strategy": cfg.strategy.value,
        "identity_priority": [to_identity_api(t) for t in cfg.priority],
    }
    defaults = StrategyConfig.for_strategy(cfg.strategy, priority=cfg.priority)
    if cfg.login_types != defaults.login_types:
        raw["login_identities"] = sorted(to_identity_api(t) for t in cfg.login_types)
    return raw


def _graph(runtime: Runtime, ws: int) -> dict[int, set[Pair]]:
    with runtime.db.read() as conn:
        mpids = conn.execute(
            sa.text("SELECT mpid FROM identity_profiles WHERE workspace_id = :w"), {"w": ws}
        ).scalars()
        graph: dict[int, set[Pair]] = {int(m): set() for m in mpids}
        for m, t, v in conn.execute(
            sa.text(
                "SELECT mpid, identity_type, value FROM identity_values WHERE workspace_id = :w"
            ),
            {"w": ws},
        ):
            graph[int(m)].add((IdentityType(t), v))
    return graph


@pytest.mark.parametrize(
    ("cfg", "rows"),
    [
        pytest.param(CONVERSION, CONVERSION_ROWS, id="profile_conversion"),
        pytest.param(DEFAULT, DEFAULT_ROWS, id="default"),
        pytest.param(LINK, LINK_ROWS, id="profile_link"),
        pytest.param(ISOLATION, ISOLATION_ROWS, id="profile_isolation"),
        pytest.param(BEST_MATCH, BEST_MATCH_ROWS, id="best_match"),
    ],
)
def test_worked_example_on_the_store(
    runtime: Runtime, settings: Settings, cfg: StrategyConfig, rows: list[Row]
) -> None:
    creds, _ = runtime.tenancy.bootstrap(data_dir=settings.data_dir)
    ws = creds.workspace_id
    runtime.tenancy.update_workspace_settings(ws, {"identity": _settings_for(cfg)})
    svc = runtime.services["identity"]
    assert isinstance(svc, IdentityService)
    assert svc.config_for(ws) == cfg
    names: dict[str, int] = {}
    expected: dict[str, set[Pair]] = {}
    for row in rows:
        before = len(_graph(runtime, ws))
        if row.call == "modify":
            changes = tuple(IdentityChange(*c) for c in row.changes)
            result = svc.modify(ws, ModifyRequest(names[row.expect], changes))
            assert result.mpid == names[row.expect]
        elif row.expect == "not found":
            with pytest.raises(NotFound):
                svc.search(ws, IdentityRequest(dict(row.ids)))
            continue
        else:
            call = getattr(svc, row.call)
            result = call(ws, IdentityRequest(dict(row.ids)))
            if row.expect.startswith("new "):
                name = row.expect.removeprefix("new ")
                assert result.mpid not in names.values(), f"{row} did not create"
                names[name] = result.mpid
            else:
                assert result.mpid == names[row.expect], f"{row}: got another profile"
            if row.logged_in is not None:
                assert result.is_logged_in is row.logged_in, row
        created = 1 if row.expect.startswith("new ") else 0
        graph = _graph(runtime, ws)
        assert len(graph) == before + created
        expected.update(row.after)
        actual = {n: graph[m] for n, m in names.items()}
        assert actual == expected, row
