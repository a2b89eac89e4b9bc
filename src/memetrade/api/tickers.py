"""REST: rolling 24h tickers with the SMA-20 recommendation, and recent trade history
(seed 003's snapshot and history calls)."""

from typing import Annotated

from fastapi import APIRouter, Query
from starlette.responses import Response

from memetrade.api.analytics_wire import ticker_json
from memetrade.api.context import AppContext, Ctx
from memetrade.api.params import limit_param
from memetrade.api.wire import trade_json
from memetrade.domain.intervals import INTERVALS, parse_interval

__all__ = ["MAX_HISTORY", "router"]

router = APIRouter()

# Trades one history call returns at most; the store holds every trade, older ones included.
MAX_HISTORY = 1000
_DEFAULT_HISTORY = 100

IntervalQ = Annotated[
    str | None,
    Query(
        description="Interval of the SMA-20 behind `sma20`/`signal`: "
        + ", ".join(i.name for i in INTERVALS)
        + " (default 1m)."
    ),
]


def _json(body: str) -> Response:
    return Response(body, media_type="application/json")


def _ticker(ctx: AppContext, symbol: str, interval: str | None) -> str:
    spec = ctx.market.spec(symbol)
    iv = parse_interval("1m" if interval is None else interval)
    analytics = ctx.analytics
    return ticker_json(spec, iv, analytics.ticker(spec.name), analytics.snapshot(spec.name, iv))


@router.get("/api/v1/ticker/{symbol}", tags=["market data"])
async def ticker(ctx: Ctx, symbol: str, interval: IntervalQ = None) -> Response:
    """Rolling 24h statistics of ``symbol`` (last price, open, high, low, change, change %,
    volume, quote volume, trade count), its SMA-20 over ``interval`` candles and the
    recommendation: BUY above the SMA, SELL below, NEUTRAL before 20 candles."""
    return _json(_ticker(ctx, symbol.upper(), interval))


@router.get("/api/v1/ticker", tags=["market data"])
async def tickers(ctx: Ctx, interval: IntervalQ = None) -> Response:
    """The ticker of every symbol, in the configured order."""
    items = ",".join(_ticker(ctx, symbol, interval) for symbol in ctx.market.specs)
    return _json(f'{{"data":[{items}]}}')


@router.get("/api/v1/history/{symbol}", tags=["market data"])
async def history(
    ctx: Ctx,
    symbol: str,
    limit: Annotated[
        str | None,
        Query(description=f"Trades, 1..{MAX_HISTORY} (default {_DEFAULT_HISTORY})."),
    ] = None,
) -> Response:
    """The most recent trades of ``symbol``, newest first, in the trade stream's format.
    Served from storage, which holds every acknowledged trade (a trade is stored before it
    is streamed), so the answer includes everything any stream has shown."""
    spec = ctx.market.spec(symbol.upper())
    count = limit_param(limit, _DEFAULT_HISTORY, MAX_HISTORY)
    trades = await ctx.store.recent_trades(spec.name, count)
    data = ",".join(trade_json(spec, trade) for trade in trades)
    return _json(f'{{"symbol":"{spec.name}","data":[{data}]}}')
