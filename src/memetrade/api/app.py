"""The ASGI application factory."""

from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi

from memetrade import __version__
from memetrade.api import (
    auth_routes,
    binance_book,
    binance_rest,
    binance_ws,
    exchange_admin,
    exchange_market,
    exchange_orders,
    exchange_state,
    exchange_wire,
    exchange_ws,
    indicators,
    ingest,
    rest,
    tickers,
    udf,
    ws,
    ws_market,
    ws_stream,
)
from memetrade.api.context import AppContext
from memetrade.api.errors import install_error_handlers
from memetrade.api.metrics import MetricsMiddleware
from memetrade.api.web import install_dashboard

__all__ = ["create_app"]

Lifespan = Callable[[FastAPI], AbstractAsyncContextManager[None]]

DESCRIPTION = """Real-time OHLCV candles and trade streams for meme tokens.

Every error answers `{"error": {"code", "message"}}` with a stable `code`.
WebSocket routes (not listed by OpenAPI): `/ws/{symbol}` and `/ws/transactions/{symbol}`
stream trades; `/ws/klines/{symbol}/{interval}[?closed_only=1][&indicators=sma20,rsi14]` streams
candle updates (with indicator values); `/ws[?interval=1m]` streams price, SMA-20 and BUY/SELL
snapshots of every symbol and signal events; `/ws/depth/{symbol}` streams the order book and
`/ws/user` (authenticated) the caller's orders, fills and balances (docs/websocket.md).
"""


def create_app(ctx: AppContext, lifespan: Lifespan | None = None) -> FastAPI:
    app = FastAPI(
        title="memetrade",
        version=__version__,
        description=DESCRIPTION,
        lifespan=lifespan,
        docs_url="/docs",
        redoc_url=None,
    )
    app.state.ctx = ctx
    install_error_handlers(app)
    app.include_router(rest.router)
    app.include_router(ingest.router)
    # Before ws.router: /ws/<stream with @> and /ws/stream would otherwise match /ws/{symbol}.
    app.include_router(binance_ws.router)
    app.include_router(ws_stream.router)
    app.include_router(exchange_ws.router)
    app.include_router(ws.router)
    app.include_router(binance_rest.router)
    app.include_router(binance_book.router)
    app.include_router(udf.router)
    app.include_router(tickers.router)
    app.include_router(indicators.router)
    app.include_router(ws_market.router)
    app.include_router(auth_routes.router)
    app.include_router(exchange_orders.router)
    app.include_router(exchange_market.router)
    app.include_router(exchange_admin.router)
    app.include_router(exchange_state.router)
    app.add_middleware(MetricsMiddleware, metrics=ctx.metrics)

    install_dashboard(app)  # GET / and /static/...: the web dashboard

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(
                ingest.SCHEMA_COMPONENTS
            )
            schema["components"]["schemas"].update(exchange_wire.SCHEMA_COMPONENTS)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app
