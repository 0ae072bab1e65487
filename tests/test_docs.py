"""Documentation stays true: every setting and every route is documented."""

from __future__ import annotations

from dataclasses import fields
from pathlib import Path

from opencdp.api.openapi import build_openapi
from opencdp.core.config import Settings

ROOT = Path(__file__).resolve().parent.parent


def test_every_setting_is_documented() -> None:
    text = (ROOT / "docs" / "configuration.md").read_text()
    for f in fields(Settings):
        assert f"OPENCDP_{f.name.upper()}" in text, f.name
        assert f.metadata.get("doc"), f"Settings.{f.name} has no doc"


def test_every_route_is_in_the_openapi_document(app) -> None:  # type: ignore[no-untyped-def]
    spec_paths = set(build_openapi()["paths"])
    starlette_app = app.client.app
    for route in starlette_app.routes:
        path = getattr(route, "path", None)
        if path in (None, "/openapi.json", "/docs"):
            continue
        assert path in spec_paths, f"{path} is not described in the OpenAPI document"


def test_readme_shows_the_two_commands() -> None:
    readme = (ROOT / "README.md").read_text()
    assert "make serve" in readme and "make test" in readme
    assert len(readme.splitlines()) < 120


def test_every_path_parameter_is_declared() -> None:
    """Clients generated from /openapi.json (and schemathesis) need each {name} declared."""
    import re

    for path, ops in build_openapi()["paths"].items():
        names = set(re.findall(r"{(\w+)}", path))
        for method, op in ops.items():
            declared = {p["name"] for p in op.get("parameters", []) if p.get("in") == "path"}
            assert names <= declared, f"{method.upper()} {path} lacks {sorted(names - declared)}"
