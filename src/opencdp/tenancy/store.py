"""All tenancy SQL. Plain functions taking the connection first; they never commit."""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection

from opencdp.tenancy import tables as t
from opencdp.tenancy.model import OAuthClient, Platform, Principal, Workspace


def insert_organization(conn: Connection, *, name: str, now_ms: int) -> int:
    res = conn.execute(sa.insert(t.organizations).values(name=name, created_ms=now_ms))
    return int(res.inserted_primary_key[0])  # type: ignore[index]


def insert_account(conn: Connection, *, org_id: int, name: str, now_ms: int) -> int:
    res = conn.execute(sa.insert(t.accounts).values(org_id=org_id, name=name, created_ms=now_ms))
    return int(res.inserted_primary_key[0])  # type: ignore[index]


def insert_workspace(
    conn: Connection, *, account_id: int, name: str, settings: dict[str, Any], now_ms: int
) -> int:
    res = conn.execute(
        sa.insert(t.workspaces).values(
            account_id=account_id, name=name, settings=settings, created_ms=now_ms
        )
    )
    return int(res.inserted_primary_key[0])  # type: ignore[index]


def insert_input(
    conn: Connection,
    *,
    workspace_id: int,
    platform: Platform,
    name: str,
    api_key: str,
    api_secret: str,
    allow_key_only: bool,
    now_ms: int,
) -> int:
    res = conn.execute(
        sa.insert(t.inputs).values(
            workspace_id=workspace_id,
            platform=platform.value,
            name=name,
            api_key=api_key,
            api_secret=api_secret,
            allow_key_only=allow_key_only,
            created_ms=now_ms,
        )
    )
    return int(res.inserted_primary_key[0])  # type: ignore[index]


def insert_oauth_client(
    conn: Connection,
    *,
    client_id: str,
    secret_hash: str,
    name: str,
    org_id: int,
    account_id: int,
    workspace_ids: list[int],
    platform_access: bool,
    now_ms: int,
) -> int:
    res = conn.execute(
        sa.insert(t.oauth_clients).values(
            client_id=client_id,
            secret_hash=secret_hash,
            name=name,
            org_id=org_id,
            account_id=account_id,
            workspace_ids=workspace_ids,
            platform_access=platform_access,
            created_ms=now_ms,
        )
    )
    return int(res.inserted_primary_key[0])  # type: ignore[index]


_principal_cols = (
    t.inputs.c.id,
    t.inputs.c.workspace_id,
    t.workspaces.c.account_id,
    t.accounts.c.org_id,
    t.inputs.c.platform,
    t.inputs.c.api_key,
    t.inputs.c.allow_key_only,
    t.inputs.c.api_secret,
)


def _principal_from(row: Any) -> Principal:
    return Principal(
        input_id=row[0],
        workspace_id=row[1],
        account_id=row[2],
        org_id=row[3],
        platform=Platform(row[4]),
        api_key=row[5],
        allow_key_only=bool(row[6]),
        api_secret=row[7],
    )


def principal_by_api_key(conn: Connection, api_key: str) -> Principal | None:
    row = conn.execute(
        sa.select(*_principal_cols)
        .join(t.workspaces, t.workspaces.c.id == t.inputs.c.workspace_id)
        .join(t.accounts, t.accounts.c.id == t.workspaces.c.account_id)
        .where(t.inputs.c.api_key == api_key, t.inputs.c.disabled == sa.false())
    ).first()
    return _principal_from(row) if row else None


def workspace_by_id(conn: Connection, workspace_id: int) -> Workspace | None:
    row = conn.execute(
        sa.select(
            t.workspaces.c.id,
            t.workspaces.c.account_id,
            t.accounts.c.org_id,
            t.workspaces.c.name,
            t.workspaces.c.settings,
        )
        .join(t.accounts, t.accounts.c.id == t.workspaces.c.account_id)
        .where(t.workspaces.c.id == workspace_id)
    ).first()
    if row is None:
        return None
    return Workspace(id=row[0], account_id=row[1], org_id=row[2], name=row[3], settings=row[4])


def update_workspace_settings(
    conn: Connection, workspace_id: int, settings: dict[str, Any]
) -> None:
    conn.execute(
        sa.update(t.workspaces).where(t.workspaces.c.id == workspace_id).values(settings=settings)
    )


def list_workspace_ids(conn: Connection) -> list[int]:
    return [r[0] for r in conn.execute(sa.select(t.workspaces.c.id).order_by(t.workspaces.c.id))]


def oauth_client_by_client_id(conn: Connection, client_id: str) -> OAuthClient | None:
    c = t.oauth_clients.c
    row = conn.execute(
        sa.select(
            c.id,
            c.client_id,
            c.org_id,
            c.account_id,
            c.name,
            c.secret_hash,
            c.workspace_ids,
            c.platform_access,
        ).where(c.client_id == client_id)
    ).first()
    if row is None:
        return None
    return OAuthClient(
        id=row[0],
        client_id=row[1],
        org_id=row[2],
        account_id=row[3],
        name=row[4],
        secret_hash=row[5],
        workspace_ids=tuple(int(w) for w in row[6]),
        platform_access=bool(row[7]),
    )


def get_setting(conn: Connection, key: str) -> str | None:
    row = conn.execute(sa.select(t.settings_kv.c.value).where(t.settings_kv.c.key == key)).first()
    return None if row is None else str(row[0])


def put_setting_if_absent(conn: Connection, key: str, value: str) -> str:
    """Store ``value`` unless a value exists; return the value that is now stored."""
    existing = get_setting(conn, key)
    if existing is not None:
        return existing
    conn.execute(sa.insert(t.settings_kv).values(key=key, value=value))
    return value


def count_organizations(conn: Connection) -> int:
    return int(conn.execute(sa.select(sa.func.count()).select_from(t.organizations)).scalar_one())
