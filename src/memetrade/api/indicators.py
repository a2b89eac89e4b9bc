"""REST: ``GET /api/v1/indicators/{symbol}``, indicator values aligned with the candles."""

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from memetrade.api.analytics_wire import params_json, point_json
from memetrade.api.context import Ctx
from memetrade.api.errors import ApiError
from memetrade.api.params import limit_param, time_param
from memetrade.domain.errors import InvalidIndicator
from memetrade.domain.indicator_params import INDICATOR_NAMES, make_indicator
from memetrade.domain.intervals import INTERVALS, parse_interval
from memetrade.services.market_data import MAX_KLINES

__all__ = ["router"]

router = APIRouter()

# Query parameters of the route itself; any other one is a parameter of the indicator.
_OWN = frozenset({"interval", "name", "limit", "from", "to"})


@router.get("/api/v1/indicators/{symbol}", tags=["market data"])
async def indicators(
    ctx: Ctx,
    request: Request,
    symbol: str,
    name: Annotated[
        str | None, Query(description="One of " + ", ".join(INDICATOR_NAMES) + ".")
    ] = None,
    interval: Annotated[
        str | None,
        Query(description="One of " + ", ".join(i.name for i in INTERVALS) + " (default 1m)."),
    ] = None,
    limit: Annotated[str | None, Query(description="Points, 1..1000 (default 100).")] = None,
    start: Annotated[str | None, Query(alias="from", description="As for klines.")] = None,
    end: Annotated[str | None, Query(alias="to", description="As for klines.")] = None,
) -> Response:
    """One point per candle that ``/api/v1/klines`` answers for the same ``interval``,
    ``limit``, ``from`` and ``to``, oldest first, the open candle's marked ``provisional``;
    ``null`` values while the indicator warms up. Indicator parameters: ``period`` (sma, ema,
    rsi, bollinger; 1..200), ``k`` (bollinger), ``fast``/``slow``/``signal`` (macd);
    vwap takes none."""
    spec = ctx.market.spec(symbol.upper())
    iv = parse_interval("1m" if interval is None else interval)
    if name is None:
        raise InvalidIndicator("name is required: " + ", ".join(INDICATOR_NAMES))
    params = {k: v for k, v in request.query_params.items() if k not in _OWN}
    if len(request.query_params.getlist("name")) > 1:
        raise InvalidIndicator("name is given twice")
    indicator = make_indicator(name, params)
    count = limit_param(limit, 100, MAX_KLINES)
    first, last = time_param("from", start), time_param("to", end)
    if first is not None and last is not None and first > last:
        raise ApiError(400, "invalid_range", "from must not be after to")
    points = await ctx.analytics.indicator_points(spec.name, iv, indicator, count, first, last)
    data = ",".join(point_json(spec, indicator, point) for point in points)
    return Response(
        f'{{"symbol":"{spec.name}","interval":"{iv.name}","name":"{indicator.name}",'
        f'"params":{params_json(indicator)},"data":[{data}]}}',
        media_type="application/json",
    )
