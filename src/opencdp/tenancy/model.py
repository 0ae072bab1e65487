"""Tenancy types: organizations own accounts, accounts own workspaces, workspaces own inputs.

An input is one source of data (a web page, an app, a server feed). Its key and secret are the
credentials of the Events API and IDSync; they scope every call to exactly one workspace.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Platform(StrEnum):
    WEB = "web"
    IOS = "ios"
    ANDROID = "android"
    SERVER = "server"
    CUSTOM = "custom"


@dataclass(frozen=True)
class Principal:
    """Who is calling with an input's credentials: the input and the tenancy above it."""

    input_id: int
    workspace_id: int
    account_id: int
    org_id: int
    platform: Platform
    api_key: str
    allow_key_only: bool
    api_secret: str = field(repr=False)  # needed to verify IDSync HMAC signatures; never logged


@dataclass(frozen=True)
class Workspace:
    id: int
    account_id: int
    org_id: int
    name: str
    settings: dict[str, Any]


@dataclass(frozen=True)
class OAuthClient:
    """An OAuth client; its secret is only ever stored as a hash."""

    id: int
    client_id: str
    org_id: int
    account_id: int
    name: str
    secret_hash: str = field(repr=False)
    workspace_ids: tuple[int, ...] = ()
    platform_access: bool = True


@dataclass(frozen=True)
class Credentials:
    """What ``opencdp init`` prints (and keeps in credentials.json)."""

    org_id: int
    account_id: int
    workspace_id: int
    api_key: str
    api_secret: str
    web_api_key: str
    web_api_secret: str
    client_id: str
    client_secret: str

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def new_api_key() -> str:
    """32 hex characters, the shape mParticle's keys have."""
    return secrets.token_hex(16)


def new_secret() -> str:
    return secrets.token_urlsafe(36)
