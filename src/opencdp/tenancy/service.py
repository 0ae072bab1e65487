"""Tenancy use cases: bootstrap a store, authenticate inputs, manage OAuth clients."""

from __future__ import annotations

import hmac
import json
import logging
import os
import secrets
from pathlib import Path
from typing import Any

from opencdp.core.clock import Clock
from opencdp.core.db import Database
from opencdp.core.errors import BadRequest, Forbidden, NotFound, Unauthenticated
from opencdp.tenancy import store
from opencdp.tenancy.model import (
    Credentials,
    OAuthClient,
    Platform,
    Principal,
    Workspace,
    new_api_key,
    new_secret,
)
from opencdp.tenancy.secrets import hash_secret, verify_secret

logger = logging.getLogger(__name__)

CREDENTIALS_FILE = "credentials.json"
_CACHE_TTL_MS = 10_000
_NEGATIVE_TTL_MS = 2_000


class TenancyService:
    """Owns tenancy transactions and the in-process cache of input credentials."""

    def __init__(self, *, db: Database, clock: Clock) -> None:
        self._db = db
        self._clock = clock
        self._inputs: dict[str, tuple[Principal | None, int]] = {}
        self._workspaces: dict[int, tuple[Workspace, int]] = {}

    # -- bootstrap -------------------------------------------------------------------------
    def bootstrap(self, *, data_dir: Path) -> tuple[Credentials, Path]:
        """Create the default tenancy once; later calls return the same credentials.

        The credentials (including the OAuth client secret, stored in the database only as a
        hash) are kept in ``credentials.json`` (mode 0600) in the data directory, so running
        ``opencdp init`` again prints the same object.
        """
        path = data_dir / CREDENTIALS_FILE
        existing = self._read_credentials(path)
        if existing is not None:
            with self._db.read() as conn:
                if store.principal_by_api_key(conn, existing.api_key) is not None:
                    return existing, path
        creds = self._create_default()
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            json.dump(creds.as_dict(), fh, indent=2)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
        os.chmod(path, 0o600)
        logger.info("tenancy.bootstrapped", extra={"workspace_id": creds.workspace_id})
        return creds, path

    @staticmethod
    def _read_credentials(path: Path) -> Credentials | None:
        try:
            raw = json.loads(path.read_text())
            return Credentials(**raw)
        except (OSError, ValueError, TypeError):
            return None

    def _create_default(self) -> Credentials:
        now = self._clock.now_ms()
        api_key, api_secret = new_api_key(), new_secret()
        web_key, web_secret = new_api_key(), new_secret()
        client_id, client_secret = "oc_" + secrets.token_hex(12), new_secret()
        with self._db.write() as conn:
            org_id = store.insert_organization(conn, name="Default organization", now_ms=now)
            account_id = store.insert_account(
                conn, org_id=org_id, name="Default account", now_ms=now
            )
            workspace_id = store.insert_workspace(
                conn, account_id=account_id, name="Default workspace", settings={}, now_ms=now
            )
            store.insert_input(
                conn,
                workspace_id=workspace_id,
                platform=Platform.SERVER,
                name="Server input",
                api_key=api_key,
                api_secret=api_secret,
                allow_key_only=False,
                now_ms=now,
            )
            store.insert_input(
                conn,
                workspace_id=workspace_id,
                platform=Platform.WEB,
                name="Web input",
                api_key=web_key,
                api_secret=web_secret,
                allow_key_only=True,
                now_ms=now,
            )
            store.insert_oauth_client(
                conn,
                client_id=client_id,
                secret_hash=hash_secret(client_secret),
                name="Default client",
                org_id=org_id,
                account_id=account_id,
                workspace_ids=[workspace_id],
                platform_access=True,
                now_ms=now,
            )
        return Credentials(
            org_id=org_id,
            account_id=account_id,
            workspace_id=workspace_id,
            api_key=api_key,
            api_secret=api_secret,
            web_api_key=web_key,
            web_api_secret=web_secret,
            client_id=client_id,
            client_secret=client_secret,
        )

    # -- tenancy management ----------------------------------------------------------------
    def create_workspace(self, *, account_id: int, name: str) -> int:
        with self._db.write() as conn:
            return store.insert_workspace(
                conn, account_id=account_id, name=name, settings={}, now_ms=self._clock.now_ms()
            )

    def create_organization(self, *, name: str) -> tuple[int, int]:
        """A new organization with one account; returns (org_id, account_id)."""
        now = self._clock.now_ms()
        with self._db.write() as conn:
            org_id = store.insert_organization(conn, name=name, now_ms=now)
            account_id = store.insert_account(conn, org_id=org_id, name=name, now_ms=now)
        return org_id, account_id

    def create_input(
        self,
        *,
        workspace_id: int,
        platform: Platform,
        name: str,
        allow_key_only: bool | None = None,
    ) -> tuple[str, str]:
        """Create an input; returns (api_key, api_secret). Key-only auth defaults to web only."""
        key, secret = new_api_key(), new_secret()
        with self._db.write() as conn:
            if store.workspace_by_id(conn, workspace_id) is None:
                raise NotFound(f"workspace {workspace_id} does not exist")
            store.insert_input(
                conn,
                workspace_id=workspace_id,
                platform=platform,
                name=name,
                api_key=key,
                api_secret=secret,
                allow_key_only=(platform == Platform.WEB)
                if allow_key_only is None
                else allow_key_only,
                now_ms=self._clock.now_ms(),
            )
        return key, secret

    def create_oauth_client(
        self,
        *,
        org_id: int,
        account_id: int,
        workspace_ids: list[int],
        name: str,
        platform_access: bool,
    ) -> tuple[str, str]:
        """Create a client allowed the Profile API on ``workspace_ids``; returns (id, secret)."""
        client_id, secret = "oc_" + secrets.token_hex(12), new_secret()
        with self._db.write() as conn:
            for ws in workspace_ids:
                w = store.workspace_by_id(conn, ws)
                if w is None or w.account_id != account_id or w.org_id != org_id:
                    raise BadRequest(f"workspace {ws} is not in account {account_id}")
            store.insert_oauth_client(
                conn,
                client_id=client_id,
                secret_hash=hash_secret(secret),
                name=name,
                org_id=org_id,
                account_id=account_id,
                workspace_ids=workspace_ids,
                platform_access=platform_access,
                now_ms=self._clock.now_ms(),
            )
        return client_id, secret

    def verify_oauth_client(self, client_id: str, client_secret: str) -> OAuthClient:
        with self._db.read() as conn:
            client = store.oauth_client_by_client_id(conn, client_id)
        if client is None or not verify_secret(client_secret, client.secret_hash):
            raise Forbidden("invalid client credentials")
        return client

    def signing_key(self) -> bytes:
        """The key that signs OAuth tokens, created once per store and shared by processes."""
        with self._db.write() as conn:
            value = store.put_setting_if_absent(conn, "token_signing_key", secrets.token_hex(32))
        return bytes.fromhex(value)

    # -- workspaces ------------------------------------------------------------------------
    def workspace(self, workspace_id: int) -> Workspace:
        now = self._clock.now_ms()
        hit = self._workspaces.get(workspace_id)
        if hit is not None and now - hit[1] < _CACHE_TTL_MS:
            return hit[0]
        with self._db.read() as conn:
            ws = store.workspace_by_id(conn, workspace_id)
        if ws is None:
            raise NotFound(f"workspace {workspace_id} does not exist")
        self._workspaces[workspace_id] = (ws, now)
        return ws

    def update_workspace_settings(self, workspace_id: int, changes: dict[str, Any]) -> Workspace:
        with self._db.write() as conn:
            ws = store.workspace_by_id(conn, workspace_id)
            if ws is None:
                raise NotFound(f"workspace {workspace_id} does not exist")
            settings = {**ws.settings, **changes}
            store.update_workspace_settings(conn, workspace_id, settings)
        self._workspaces.pop(workspace_id, None)
        return self.workspace(workspace_id)

    def workspace_ids(self) -> list[int]:
        with self._db.read() as conn:
            return store.list_workspace_ids(conn)

    # -- input authentication --------------------------------------------------------------
    def principal_for_key(self, api_key: str) -> Principal | None:
        """Look an input up by key, through a short-lived cache (disabling takes ~10 s)."""
        now = self._clock.now_ms()
        hit = self._inputs.get(api_key)
        if hit is not None:
            principal, at = hit
            ttl = _CACHE_TTL_MS if principal is not None else _NEGATIVE_TTL_MS
            if now - at < ttl:
                return principal
        with self._db.read() as conn:
            principal = store.principal_by_api_key(conn, api_key)
        if len(self._inputs) > 100_000:
            self._inputs.clear()
        self._inputs[api_key] = (principal, now)
        return principal

    def authenticate_basic(self, api_key: str | None, api_secret: str | None) -> Principal:
        """Events API / IDSync Basic auth. Missing credentials → 401, wrong ones → 403."""
        if api_key is None or api_secret is None:
            raise Unauthenticated("missing API key and secret (HTTP Basic authentication)")
        principal = self.principal_for_key(api_key)
        if principal is None or not hmac.compare_digest(
            principal.api_secret.encode(), api_secret.encode()
        ):
            raise Forbidden("invalid API key or secret")
        return principal

    def authenticate_key_only(self, api_key: str | None) -> Principal:
        """Key-only auth (the Web SDK's): allowed only for inputs that permit it."""
        if not api_key:
            raise Unauthenticated("missing API key")
        principal = self.principal_for_key(api_key)
        if principal is None:
            raise Forbidden("invalid API key")
        if not principal.allow_key_only:
            raise Forbidden("this input requires its secret (key-only access is off)")
        return principal
