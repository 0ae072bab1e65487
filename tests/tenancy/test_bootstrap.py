"""`opencdp init` semantics: same credentials twice, file mode 0600, working keys."""

from __future__ import annotations

import json
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from opencdp.app import Runtime
from opencdp.core.config import Settings
from opencdp.core.errors import Forbidden, Unauthenticated


def test_bootstrap_is_idempotent_and_private(runtime: Runtime, settings: Settings) -> None:
    first, path = runtime.tenancy.bootstrap(data_dir=settings.data_dir)
    second, _ = runtime.tenancy.bootstrap(data_dir=settings.data_dir)
    assert first == second
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert runtime.tenancy.workspace_ids() == [first.workspace_id]
    p = runtime.tenancy.authenticate_basic(first.api_key, first.api_secret)
    assert p.workspace_id == first.workspace_id
    assert not p.allow_key_only
    web = runtime.tenancy.authenticate_key_only(first.web_api_key)
    assert web.allow_key_only
    with pytest.raises(Forbidden):
        runtime.tenancy.authenticate_key_only(first.api_key)  # server input needs its secret
    with pytest.raises(Unauthenticated):
        runtime.tenancy.authenticate_basic(None, None)
    client = runtime.tenancy.verify_oauth_client(first.client_id, first.client_secret)
    assert client.workspace_ids == (first.workspace_id,)
    with pytest.raises(Forbidden):
        runtime.tenancy.verify_oauth_client(first.client_id, "wrong")


def test_secrets_never_in_repr(runtime: Runtime, settings: Settings) -> None:
    creds, _ = runtime.tenancy.bootstrap(data_dir=settings.data_dir)
    p = runtime.tenancy.authenticate_basic(creds.api_key, creds.api_secret)
    assert creds.api_secret not in repr(p)


def test_cli_init_json_prints_the_same_object_twice(tmp_path: Path, database_url: str) -> None:
    cmd = [sys.executable, "-m", "opencdp.cli", "init", "--json", "--data-dir", str(tmp_path)]
    if not database_url.startswith("sqlite"):
        cmd += ["--database-url", database_url]
    env = {**os.environ, "OPENCDP_LOG_LEVEL": "WARNING"}
    out1 = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    out2 = subprocess.run(cmd, capture_output=True, text=True, check=True, env=env).stdout
    doc = json.loads(out1)
    assert json.loads(out2) == doc
    assert set(doc) == {
        "org_id",
        "account_id",
        "workspace_id",
        "api_key",
        "api_secret",
        "web_api_key",
        "web_api_secret",
        "client_id",
        "client_secret",
    }
    assert all(isinstance(doc[k], int) for k in ("org_id", "account_id", "workspace_id"))
    assert stat.S_IMODE((tmp_path / "credentials.json").stat().st_mode) == 0o600


def test_cli_sets_and_validates_the_identity_strategy(tmp_path: Path) -> None:
    env = {**os.environ, "OPENCDP_LOG_LEVEL": "WARNING"}
    base = [sys.executable, "-m", "opencdp.cli"]
    init = subprocess.run(
        [*base, "init", "--json", "--data-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        check=True,
        env=env,
    )
    ws = str(json.loads(init.stdout)["workspace_id"])
    ok = subprocess.run(
        [
            *base,
            "set-identity-strategy",
            "--data-dir",
            str(tmp_path),
            "--workspace",
            ws,
            "--strategy",
            "profile_link",
            "--login-identities",
            "customerid,email",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert ok.returncode == 0, ok.stderr
    bad = subprocess.run(
        [
            *base,
            "set-identity-strategy",
            "--data-dir",
            str(tmp_path),
            "--workspace",
            ws,
            "--strategy",
            "best_match",
            "--login-identities",
            "email",
        ],
        capture_output=True,
        text=True,
        env=env,
    )
    assert bad.returncode == 2
    assert "best_match" in bad.stderr or "best match" in bad.stderr
