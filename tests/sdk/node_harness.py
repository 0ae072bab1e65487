"""Python wrappers around the Node harness scripts in tests/sdk/node (for pytest).

    import node_harness as nh
    nh.require_node()                         # pytest.skip unless node + `npm ci` done
    lines = nh.send_events({"baseUrl": base, "apiKey": k, "apiSecret": s, "batches": [...]})
    nh.require_browser()                      # pytest.skip unless /usr/bin/chromium too
    page = nh.web_sdk_page(base, api_key, request_config=True, alias=True)
    assert page["ok"], page["problems"]

Run ``scripts/setup-browser.sh`` once to install chromium and the npm packages.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path
from typing import Any

NODE_DIR = Path(__file__).resolve().parent / "node"
CHROMIUM = os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium")


def node_ready() -> str | None:
    """None when node + node_modules are usable, else the reason why not."""
    if shutil.which("node") is None:
        return "node not installed"
    for pkg in ("mparticle", "@mparticle/web-sdk", "playwright-core"):
        if not (NODE_DIR / "node_modules" / pkg / "package.json").exists():
            return f"npm package {pkg} missing: run scripts/setup-browser.sh"
    return None


def browser_ready() -> str | None:
    reason = node_ready()
    if reason:
        return reason
    if not os.access(CHROMIUM, os.X_OK):
        return f"{CHROMIUM} missing: run scripts/setup-browser.sh"
    return None


def _missing(reason: str) -> None:
    """Skip on a developer machine without node/chromium; in CI (CI=true) that is a failure."""
    import pytest

    if os.environ.get("CI", "").lower() in {"1", "true", "yes"}:
        pytest.fail(f"CI must run the SDK tests: {reason}")
    pytest.skip(reason)


def require_node() -> None:
    reason = node_ready()
    if reason:
        _missing(reason)


def require_browser() -> None:
    reason = browser_ready()
    if reason:
        _missing(reason)


def send_events(job: dict[str, Any], *, timeout: float = 120) -> list[dict[str, Any]]:
    """Run send_events.js with ``job`` on stdin; returns one dict per SDK call (see the script)."""
    proc = subprocess.run(
        ["node", str(NODE_DIR / "send_events.js"), "-"],
        input=json.dumps(job),
        capture_output=True,
        text=True,
        timeout=timeout,
        cwd=NODE_DIR,
        check=False,
    )
    if proc.returncode == 2:
        raise RuntimeError(f"send_events.js failed: {proc.stderr}")
    return [json.loads(line) for line in proc.stdout.splitlines() if line.strip()]


def web_sdk_page(
    base_url: str,
    api_key: str,
    *,
    request_config: bool = True,
    timeout_ms: int = 30000,
    extra_args: list[str] | None = None,
    **options: Any,
) -> dict[str, Any]:
    """Run web_sdk_page.js; returns its JSON result (``ok``, ``mpid``, ``requests``, ...).

    ``options`` map to ``--kebab-case`` flags, e.g. ``alias=True``, ``email="a@b.c"``,
    ``customerid="c1"``, ``development=True``, ``capture_bodies=True``, ``settle=1000``,
    ``https_base="none"``.
    """
    args = [
        "node",
        str(NODE_DIR / "web_sdk_page.js"),
        "--base-url",
        base_url,
        "--api-key",
        api_key,
        "--request-config",
        "true" if request_config else "false",
        "--timeout",
        str(timeout_ms),
    ]
    for k, v in options.items():
        args += ["--" + k.replace("_", "-"), str(v).lower() if isinstance(v, bool) else str(v)]
    args += extra_args or []
    proc = subprocess.run(
        args,
        capture_output=True,
        text=True,
        timeout=timeout_ms / 1000 + 60,
        cwd=NODE_DIR,
        check=False,
    )
    try:
        result: dict[str, Any] = json.loads(proc.stdout)
    except json.JSONDecodeError as e:
        raise RuntimeError(
            f"web_sdk_page.js rc={proc.returncode} stdout={proc.stdout!r} stderr={proc.stderr!r}"
        ) from e
    result["_exit_code"] = proc.returncode
    return result
