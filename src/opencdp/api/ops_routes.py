"""Operations: /healthz, /metrics, /openapi.json and /docs."""

from __future__ import annotations

import html

import msgspec
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, Response
from starlette.routing import Route

from opencdp.api.context import ApiContext
from opencdp.api.openapi import build_openapi


def routes(ctx: ApiContext) -> list[Route]:
    spec = build_openapi()
    spec_bytes = msgspec.json.encode(spec)

    async def healthz(_request: Request) -> Response:
        try:
            ctx.processing.pending()
        except Exception:
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    async def metrics(_request: Request) -> Response:
        return Response(ctx.metrics.render(), media_type="text/plain; version=0.0.4")

    async def openapi(_request: Request) -> Response:
        return Response(spec_bytes, media_type="application/json")

    async def docs(_request: Request) -> Response:
        rows = []
        for path, ops in spec["paths"].items():
            for method, op in ops.items():
                rows.append(
                    f"<tr><td>{method.upper()}</td><td><code>{html.escape(path)}</code></td>"
                    f"<td>{html.escape(op.get('summary', ''))}</td></tr>"
                )
        page = (
            "<!doctype html><html><head><meta charset='utf-8'><title>opencdp API</title></head>"
            "<body><h1>opencdp API</h1><p>Machine-readable: <a href='/openapi.json'>"
            "/openapi.json</a> (OpenAPI 3.1)</p><table border='1' cellpadding='4'>"
            "<tr><th>Method</th><th>Path</th><th>Summary</th></tr>" + "".join(rows) + "</table>"
            "</body></html>"
        )
        return HTMLResponse(page)

    return [
        Route("/healthz", healthz, methods=["GET"]),
        Route("/metrics", metrics, methods=["GET"]),
        Route("/openapi.json", openapi, methods=["GET"]),
        Route("/docs", docs, methods=["GET"]),
    ]
