"""TradingView UDF (Universal Data Feed) under ``/udf``: the charting library's
``UDFCompatibleDatafeed`` pointed at ``http://HOST:PORT/udf`` charts memetrade.

A thin mapping over the same candle query as everything else (``services.candle_views``):
resolutions ``1S 1 3 5 15 30 60 120 240 360 480 720 1D`` are our 1s/1m/… intervals, the
derived ones merged exactly from stored candles. Times are Unix seconds, as UDF wants them;
numbers are JSON numbers rendered exactly. Errors answer ``{"s": "error", "errmsg": …}``
(400 for bad parameters, 404 for an unknown symbol).
"""

import msgspec
from fastapi import APIRouter, Request
from starlette.responses import PlainTextResponse, Response

from memetrade.api.context import AppContext, Ctx
from memetrade.api.errors import DialectError
from memetrade.domain.numbers import format_units
from memetrade.domain.resample import Bucket, bucket
from memetrade.domain.symbols import SymbolSpec
from memetrade.services.candle_views import bucket_klines

__all__ = ["EXCHANGE", "MAX_BARS", "RESOLUTIONS", "router"]

router = APIRouter(prefix="/udf", tags=["tradingview udf"])

EXCHANGE = "memetrade"
# Bars one history answer holds at most: with a range longer than this, the newest ones (the
# library then asks again for the range before the first bar it got).
MAX_BARS = 5000
# UDF resolution -> our interval name.
RESOLUTIONS: dict[str, str] = {
    "1S": "1s",
    "1": "1m",
    "3": "3m",
    "5": "5m",
    "15": "15m",
    "30": "30m",
    "60": "1h",
    "120": "2h",
    "240": "4h",
    "360": "6h",
    "480": "8h",
    "720": "12h",
    "1D": "1d",
}
_ALIASES = {"D": "1D", "S": "1S"}


def _json(body: bytes | str) -> Response:
    return Response(body, media_type="application/json")


def _error(status: int, message: str) -> DialectError:
    return DialectError(status, msgspec.json.encode({"s": "error", "errmsg": message}))


def _spec(ctx: AppContext, text: str | None) -> SymbolSpec:
    if not text:
        raise _error(400, "symbol is required")
    name = text.rsplit(":", 1)[-1].strip().upper()  # "memetrade:PEPE" as the library may send
    spec = ctx.market.specs.get(name)
    if spec is None:
        raise _error(404, f"unknown symbol {text!r}")
    return spec


def _bucket(text: str | None) -> Bucket:
    resolution = _ALIASES.get(text or "", text or "")
    name = RESOLUTIONS.get(resolution)
    if name is None:
        raise _error(400, f"unsupported resolution {text!r}; use one of {', '.join(RESOLUTIONS)}")
    return bucket(name)


def _seconds(name: str, text: str | None) -> int | None:
    if text is None:
        return None
    try:
        value = int(text)
    except ValueError:
        raise _error(400, f"{name} must be Unix seconds, not {text!r}") from None
    if not 0 <= value < 2**53 // 1000:
        raise _error(400, f"{name} is out of range")
    return value


@router.get("/config")
async def config() -> Response:
    """The datafeed's capabilities."""
    return _json(
        msgspec.json.encode(
            {
                "supported_resolutions": list(RESOLUTIONS),
                "supports_group_request": False,
                "supports_marks": False,
                "supports_search": True,
                "supports_timescale_marks": False,
                "supports_time": True,
                "exchanges": [{"value": EXCHANGE, "name": EXCHANGE, "desc": "memetrade"}],
                "symbols_types": [{"name": "crypto", "value": "crypto"}],
            }
        )
    )


def _symbol_info(ctx: AppContext, spec: SymbolSpec) -> dict[str, object]:
    quote = ctx.settings.quote_asset
    return {
        "name": spec.name,
        "ticker": spec.name,
        "full_name": f"{EXCHANGE}:{spec.name}",
        "description": f"{spec.name}/{quote}",
        "type": "crypto",
        "session": "24x7",
        "exchange": EXCHANGE,
        "listed_exchange": EXCHANGE,
        "timezone": "Etc/UTC",
        "format": "price",
        "minmov": 1,
        "pricescale": 10 ** max(spec.price_decimals, 0),
        "has_intraday": True,
        "has_seconds": True,
        "seconds_multipliers": ["1"],
        "intraday_multipliers": [r for r in RESOLUTIONS if r[-1].isdigit()],
        "has_daily": True,
        "daily_multipliers": ["1"],
        "has_weekly_and_monthly": False,
        "supported_resolutions": list(RESOLUTIONS),
        "volume_precision": max(spec.amount_decimals, 0),
        "data_status": "streaming",
        "currency_code": quote,
    }


@router.get("/symbols")
async def symbols(ctx: Ctx, request: Request) -> Response:
    """Symbol information (``symbol=PEPE`` or ``memetrade:PEPE``)."""
    spec = _spec(ctx, request.query_params.get("symbol"))
    return _json(msgspec.json.encode(_symbol_info(ctx, spec)))


@router.get("/search")
async def search(ctx: Ctx, request: Request) -> Response:
    """Symbols whose name contains ``query`` (case-insensitive), at most ``limit``."""
    query = request.query_params
    text = (query.get("query") or "").upper()
    kind, exchange = query.get("type") or "", query.get("exchange") or ""
    limit = _seconds("limit", query.get("limit")) or 30
    found = []
    if kind in ("", "crypto") and exchange in ("", EXCHANGE):
        quote = ctx.settings.quote_asset
        found = [
            {
                "symbol": spec.name,
                "full_name": f"{EXCHANGE}:{spec.name}",
                "description": f"{spec.name}/{quote}",
                "exchange": EXCHANGE,
                "ticker": spec.name,
                "type": "crypto",
            }
            for spec in ctx.market.specs.values()
            if text in spec.name
        ][:limit]
    return _json(msgspec.json.encode(found))


@router.get("/time")
async def server_time(ctx: Ctx) -> PlainTextResponse:
    """The server's time, Unix seconds, as plain text."""
    return PlainTextResponse(str(ctx.market.now_ms() // 1000))


@router.get("/history")
async def history(ctx: Ctx, request: Request) -> Response:
    """Bars with open times in ``[from, to)`` (Unix seconds), or the ``countback`` bars
    before ``to`` (then ``from`` is ignored). ``{"s": "ok", "t", "o", "h", "l", "c", "v"}``;
    ``{"s": "no_data", "nextTime"}`` when there is none, ``nextTime`` being the newest bar
    before the range (absent when there is none at all)."""
    query = request.query_params
    spec = _spec(ctx, query.get("symbol"))
    target = _bucket(query.get("resolution"))
    start, stop = _seconds("from", query.get("from")), _seconds("to", query.get("to"))
    countback = _seconds("countback", query.get("countback"))
    if stop is None:
        raise _error(400, "to is required")
    if countback is None and start is None:
        raise _error(400, "from or countback is required")
    if countback is not None and countback < 1:
        raise _error(400, "countback must be at least 1")
    end_ms = stop * 1000 - 1  # "to" is exclusive
    market = ctx.market
    if countback is not None:
        candles, _ = await bucket_klines(
            market, spec.name, target, min(countback, MAX_BARS), end=end_ms
        )
        before = end_ms
    else:
        assert start is not None
        if start * 1000 > end_ms:
            raise _error(400, "from must be before to")
        count = (end_ms - start * 1000) // target.ms + 1
        if count > MAX_BARS:
            candles, _ = await bucket_klines(market, spec.name, target, MAX_BARS, end=end_ms)
        else:
            candles, _ = await bucket_klines(
                market, spec.name, target, count, start=start * 1000, end=end_ms
            )
        before = start * 1000 - 1
    if not candles:
        older, _ = await bucket_klines(market, spec.name, target, 1, end=before)
        if older:
            return _json(f'{{"s":"no_data","nextTime":{older[-1].open_time // 1000}}}')
        return _json(b'{"s":"no_data"}')
    pd, ad = spec.price_decimals, spec.amount_decimals

    def column(values: list[int], decimals: int) -> str:
        return "[" + ",".join(format_units(v, decimals) for v in values) + "]"

    return _json(
        '{"s":"ok",'
        f'"t":[{",".join(str(c.open_time // 1000) for c in candles)}],'
        f'"o":{column([c.open for c in candles], pd)},'
        f'"h":{column([c.high for c in candles], pd)},'
        f'"l":{column([c.low for c in candles], pd)},'
        f'"c":{column([c.close for c in candles], pd)},'
        f'"v":{column([c.volume for c in candles], ad)}}}'
    )
