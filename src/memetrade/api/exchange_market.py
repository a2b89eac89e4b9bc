"""The exchange's public data: the order book's depth and the markets it trades, with their
steps, minimum order value and fee tiers. No authentication, like the other market data."""

from typing import Final

from fastapi import APIRouter, Request
from starlette.responses import Response

from memetrade.api.context import context
from memetrade.api.errors import ApiError
from memetrade.api.exchange_deps import exchange, json_response, market
from memetrade.api.exchange_wire import (
    DepthOut,
    MarketsOut,
    body_schema,
    fee_tiers_out,
    market_out,
)
from memetrade.domain.exchange.fees import DEFAULT_FEE_SCHEDULE

__all__ = ["DEPTH_LIMITS", "router"]

router = APIRouter(prefix="/api/v1", tags=["exchange"])

# Binance's depth sizes: clients written for it ask for exactly these.
DEPTH_LIMITS: Final = (5, 10, 20, 50, 100, 500, 1000)


@router.get("/depth/{symbol}", responses={200: body_schema("DepthOut")})
async def depth(request: Request, symbol: str) -> Response:
    """The order book of ``symbol``: ``bids`` and ``asks`` as ``[price, quantity]``, best
    first, ``limit`` levels a side (5, 10, 20, 50, 100 (default), 500 or 1000), and
    ``lastUpdateId``, the number of the last book change they include."""
    service = exchange(context(request))
    pair = market(service, symbol)
    text = request.query_params.get("limit", "100")
    if not text.isdigit() or int(text) not in DEPTH_LIMITS:
        allowed = ", ".join(map(str, DEPTH_LIMITS))
        raise ApiError(400, "invalid_limit", f"limit must be one of {allowed}, not {text!r}")
    update_id, bids, asks = service.engine.depth(symbol, int(text))
    price, quantity = pair.price_text, pair.quantity_text
    return json_response(
        DepthOut(
            symbol,
            update_id,
            [(price(p), quantity(q)) for p, q in bids],
            [(price(p), quantity(q)) for p, q in asks],
        )
    )


@router.get("/markets", responses={200: body_schema("MarketsOut")})
async def markets(request: Request) -> Response:
    """The trading pairs: ``base``/``quote`` assets, ``tick_size`` (price step), ``lot_size``
    (quantity step), ``min_notional`` (smallest price x quantity, in the quote asset); and the
    fee tiers by 30-day quote volume, rates as fractions charged on each fill's value."""
    service = exchange(context(request))
    # ExchangeService runs its engine with the default schedule.
    out = MarketsOut(
        [market_out(m) for m in service.markets.values()], fee_tiers_out(DEFAULT_FEE_SCHEDULE)
    )
    return json_response(out)
