"""A bench-only server: the real service from ``memetrade.bootstrap.Service`` plus two routes.

``GET /bench/trivial`` answers a fixed body with the same response class and media type as the
klines route, through the same stack (uvicorn, FastAPI routing, middleware, error handlers):
the framework's own ceiling for that response. ``PUT /bench/trivial`` sets the body (the
harness copies a real klines response into it, so both answer the same bytes).

Run: ``python -m bench.rest_server`` with the usual settings in the environment; one worker.
"""

from __future__ import annotations

import os
import sys

from fastapi import Request
from starlette.responses import Response

from bench.common import raise_fd_limit
from memetrade.api.context import AppContext, context
from memetrade.bootstrap import Service, run
from memetrade.config import load_settings

__all__ = ["main"]


def main() -> int:
    raise_fd_limit()
    service = Service(load_settings())
    if os.environ.get("BENCH_ASYNC_CONTEXT") == "1":
        # Experiment behind an optimisation proposal: the same dependency as an ``async def``,
        # which FastAPI calls inline instead of in its thread pool.
        async def async_context(request: Request) -> AppContext:
            return context(request)

        service.app.dependency_overrides[context] = async_context
    body = [b"{}"]

    @service.app.get("/bench/trivial", include_in_schema=False)
    async def trivial() -> Response:
        return Response(body[0], media_type="application/json")

    @service.app.put("/bench/trivial", include_in_schema=False)
    async def set_trivial(request: Request) -> Response:
        body[0] = await request.body()
        return Response(b"", status_code=204)

    # The same server, settings and start-up as ``memetrade serve``.
    return run(service.serve(lambda line: print(line, file=sys.stderr, flush=True)))


if __name__ == "__main__":
    sys.exit(main())
