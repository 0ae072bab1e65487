"""The ``opencdp`` command: init, serve, worker, migrate (and client management).

Each process role is a subcommand. Every flag also reads ``OPENCDP_<FLAG>`` from the
environment (flags win).
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import signal
import sys
import threading
from pathlib import Path
from typing import Any

from opencdp.core import config
from opencdp.core.logging import configure as configure_logging

logger = logging.getLogger("opencdp.cli")


def _store_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--data-dir", type=Path, default=None, help="data directory (.opencdp)")
    p.add_argument("--database-url", default=None, help="postgresql://... (default: SQLite)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="opencdp", description=__doc__)
    sub = parser.add_subparsers(dest="command", required=True)

    p_init = sub.add_parser("init", help="create the schema and default credentials")
    p_init.add_argument("--json", action="store_true", help="print the credentials as JSON")
    _store_args(p_init)

    p_serve = sub.add_parser("serve", help="run the HTTP API (and the worker)")
    p_serve.add_argument("--host", default=None)
    p_serve.add_argument("--port", type=int, default=None)
    p_serve.add_argument("--no-worker", action="store_true", default=None)
    p_serve.add_argument("--api-processes", type=int, default=None, help="HTTP processes (1)")
    _store_args(p_serve)

    p_worker = sub.add_parser("worker", help="run processing alone")
    _store_args(p_worker)

    p_migrate = sub.add_parser("migrate", help="apply database migrations")
    _store_args(p_migrate)

    p_client = sub.add_parser("create-client", help="create an OAuth client")
    _store_args(p_client)
    p_client.add_argument("--workspace", type=int, action="append", default=[], required=True)
    p_client.add_argument("--name", default="client")
    p_client.add_argument("--no-platform", action="store_true", help="no Platform API access")
    p_strategy = sub.add_parser("set-identity-strategy", help="choose a workspace's strategy")
    _store_args(p_strategy)
    p_strategy.add_argument("--workspace", type=int, required=True)
    p_strategy.add_argument(
        "--strategy",
        required=True,
        choices=[
            "default",
            "profile_conversion",
            "profile_link",
            "profile_isolation",
            "best_match",
        ],
    )
    for name in ("login", "unique", "immutable"):
        p_strategy.add_argument(f"--{name}-identities", default=None, help="comma-separated")
    p_strategy.add_argument("--identity-priority", default=None, help="comma-separated")
    p_strategy.add_argument("--alias-allowed", choices=["true", "false"], default=None)
    return parser


def _settings(args: argparse.Namespace) -> config.Settings:
    base = config.from_env()
    return base.with_overrides(
        data_dir=getattr(args, "data_dir", None),
        database_url=getattr(args, "database_url", None),
        host=getattr(args, "host", None),
        port=getattr(args, "port", None),
        no_worker=getattr(args, "no_worker", None),
        api_processes=getattr(args, "api_processes", None),
    )


def _print_json(doc: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(doc) + "\n")
    sys.stdout.flush()


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    settings = _settings(args)
    configure_logging(settings.log_level, settings.log_format)
    from opencdp.app import build_runtime  # deferred: `--help` stays fast

    if args.command == "migrate":
        build_runtime(settings)
        _print_json({"status": "migrated"})
        return 0
    if args.command == "init":
        rt = build_runtime(settings)
        creds, path = rt.tenancy.bootstrap(data_dir=settings.data_dir)
        if args.json:
            _print_json(creds.as_dict())
        else:
            sys.stdout.write(f"credentials written to {path}\n")
        return 0
    if args.command == "create-client":
        rt = build_runtime(settings)
        ws = rt.tenancy.workspace(args.workspace[0])
        client_id, secret = rt.tenancy.create_oauth_client(
            org_id=ws.org_id,
            account_id=ws.account_id,
            workspace_ids=list(args.workspace),
            name=args.name,
            platform_access=not args.no_platform,
        )
        _print_json({"client_id": client_id, "client_secret": secret})
        return 0
    if args.command == "set-identity-strategy":
        return _set_strategy(settings, args)
    if args.command == "worker":
        return _run_worker(settings)
    return _serve(settings)


def _set_strategy(settings: config.Settings, args: argparse.Namespace) -> int:
    from opencdp.app import build_runtime
    from opencdp.core.errors import OpenCdpError

    rt = build_runtime(settings)
    raw: dict[str, Any] = {"strategy": args.strategy}
    for key, value in (
        ("login_identities", args.login_identities),
        ("unique_identities", args.unique_identities),
        ("immutable_identities", args.immutable_identities),
        ("identity_priority", args.identity_priority),
    ):
        if value is not None:
            raw[key] = [v.strip() for v in value.split(",") if v.strip()]
    if args.alias_allowed is not None:
        raw["alias_allowed"] = args.alias_allowed == "true"
    try:
        rt.services["identity"].configure(args.workspace, raw)
    except OpenCdpError as exc:
        sys.stderr.write(f"opencdp: {exc.message}\n")
        return 2
    _print_json({"workspace_id": args.workspace, "identity": raw})
    return 0


def uvicorn_options(settings: config.Settings) -> dict[str, Any]:
    """How ``serve`` runs uvicorn: quiet (structured logs are ours), no server header, and
    uvicorn's httptools protocol extended with the ingestion fast path (ADR 0008)."""
    return {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "server_header": False,
        "timeout_graceful_shutdown": 10,
        "http": "opencdp.api.fast_http:FastPathProtocol",
    }


def _serve(settings: config.Settings) -> int:
    import uvicorn

    from opencdp.app import build_runtime

    rt = build_runtime(settings)
    creds, path = rt.tenancy.bootstrap(data_dir=settings.data_dir)
    logger.info(
        "serve.starting",
        extra={
            "url": f"http://{settings.host}:{settings.port}",
            "credentials_file": str(path.resolve()),
            "workspace_id": creds.workspace_id,
            "worker": not settings.no_worker,
        },
    )
    sys.stderr.write(
        f"opencdp: serving on http://{settings.host}:{settings.port} "
        f"(credentials in {path.resolve()})\n"
    )
    options = uvicorn_options(settings)
    if settings.api_processes > 1:
        rt.db.dispose()
        os.environ.update(config.to_env(settings))
        uvicorn.run(
            "opencdp.app:asgi_from_env",
            factory=True,
            workers=settings.api_processes,
            **options,
        )
        return 0
    uvicorn.run(rt.asgi(run_worker=not settings.no_worker), **options)
    return 0


def _run_worker(settings: config.Settings) -> int:
    from opencdp.app import build_runtime

    rt = build_runtime(settings)
    stop = threading.Event()

    def _stop(*_a: object) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    rt.worker.start()
    stop.wait()
    rt.close()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
