"""Binance Spot-compatible order-book reads: ``GET /api/v3/depth`` and
``GET /api/v3/ticker/bookTicker``, from the exchange's engine.

Parameters and errors as in ``api/binance_rest.py``. Where the exchange does not run (another
role, ``EXCHANGE=0``) the books are empty: ``lastUpdateId`` 0, no levels, zero bid and ask.
"""

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import Response

from memetrade.api import binance_wire as bw
from memetrade.api.binance_rest import _json, _Params, _symbol, _symbols, names
from memetrade.api.context import AppContext, Ctx
from memetrade.domain.exchange.engine import Engine
from memetrade.domain.symbols import SymbolSpec

__all__ = ["DEFAULT_DEPTH_LIMIT", "MAX_DEPTH_LIMIT", "router"]

router = APIRouter(prefix="/api/v3", tags=["binance"])

DEFAULT_DEPTH_LIMIT = 100
MAX_DEPTH_LIMIT = 5000


def _engine(ctx: AppContext, spec: SymbolSpec) -> Engine | None:
    if ctx.exchange is None or spec.name not in ctx.exchange.markets:
        return None
    return ctx.exchange.engine


def _levels(spec: SymbolSpec, levels: list[tuple[int, int]]) -> list[list[str]]:
    return [
        [bw.fixed(price, spec.price_decimals), bw.fixed(qty, spec.amount_decimals)]
        for price, qty in levels
    ]


@router.get("/depth")
async def depth(ctx: Ctx, request: Request) -> Response:
    """The order book: ``{"lastUpdateId", "bids", "asks"}``, ``limit`` levels a side (default
    100, at most 5000), best first, as ``[price, quantity]``. ``lastUpdateId`` is the book's
    update id: diff events of ``<symbol>@depth`` with ``u <= lastUpdateId`` are already in it."""
    params = _Params(request.query_params, ("symbol", "limit"))
    spec = _symbol(ctx, params)
    limit = params.limit(DEFAULT_DEPTH_LIMIT, MAX_DEPTH_LIMIT)
    engine = _engine(ctx, spec)
    last_id, bids, asks = (0, [], []) if engine is None else engine.depth(spec.name, limit)
    body = {"lastUpdateId": last_id, "bids": _levels(spec, bids), "asks": _levels(spec, asks)}
    return _json(msgspec.json.encode(body))


def _book_ticker(ctx: AppContext, spec: SymbolSpec) -> dict[str, str]:
    engine = _engine(ctx, spec)
    bid, ask = (None, None) if engine is None else engine.best_bid_ask(spec.name)
    bid_price, bid_qty, ask_price, ask_qty = bw.book_top(spec, bid, ask)
    return {
        "symbol": names(ctx).name(spec),
        "bidPrice": bid_price,
        "bidQty": bid_qty,
        "askPrice": ask_price,
        "askQty": ask_qty,
    }


@router.get("/ticker/bookTicker")
async def book_ticker(ctx: Ctx, request: Request) -> Response:
    """The best bid and ask: ``{"symbol", "bidPrice", "bidQty", "askPrice", "askQty"}`` with
    ``symbol``, a list with ``symbols=["A","B"]`` or neither (zeros for an empty side)."""
    params = _Params(request.query_params, ("symbol", "symbols"))
    single = params.text("symbol") is not None
    items = [_book_ticker(ctx, spec) for spec in _symbols(ctx, params)]
    return _json(msgspec.json.encode(items[0] if single else items))
