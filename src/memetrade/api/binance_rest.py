"""Binance Spot-compatible market data under ``/api/v3/``: a thin mapping over the same
queries as the native API (``MarketData.klines`` through ``services.candle_views``, the
analytics' rolling ticker, the store's trades), in Binance's names, formats and errors.

Parameters are read as Binance reads them: an unknown parameter is ``-1104``, a repeated one
``-1101``, a missing mandatory one ``-1102``, malformed characters ``-1100``, a value out of
range ``-1130``; an unknown symbol is ``-1121`` and an unknown interval ``-1120``, all with
HTTP 400. Symbols are ``<NAME><QUOTE_ASSET>`` (``PEPEUSDT``).
"""

import re

import msgspec
from fastapi import APIRouter, Request
from starlette.datastructures import QueryParams
from starlette.responses import Response

from memetrade.api import binance_wire as bw
from memetrade.api.context import AppContext, Ctx
from memetrade.api.errors import DialectError
from memetrade.domain.errors import UnknownInterval
from memetrade.domain.resample import BINANCE_INTERVALS, Bucket, bucket
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.ticker import TickerStats
from memetrade.services.candle_views import bucket_klines

__all__ = ["MAX_LIMIT", "names", "parse_time_zone", "router", "ticker_extras"]

router = APIRouter(prefix="/api/v3", tags=["binance"])

MAX_LIMIT = 1000
DEFAULT_LIMIT = 500
# aggTrades with both startTime and endTime: at most this far apart, as on Binance.
MAX_AGG_RANGE_MS = 3_600_000
_AVG_PRICE_MINUTES = 5

_SYMBOL_RE = re.compile(r"^[A-Z0-9\-_.]{1,20}$")
_INT_RE = re.compile(r"^[0-9]{1,20}$")
_TZ_RE = re.compile(r"^([+-]?)(\d{1,2})(?::(\d{2}))?$")


def _json(body: str | bytes) -> Response:
    return Response(body, media_type="application/json")


def names(ctx: AppContext) -> bw.BinanceNames:
    """The app's symbol-name mapping (a dict of a few entries: cheap to build per request)."""
    return bw.BinanceNames(ctx.market.specs, ctx.settings.quote_asset)


class _Params:
    """The query of one request, checked against the parameters the endpoint reads."""

    def __init__(self, query: QueryParams, allowed: tuple[str, ...]) -> None:
        keys = [key for key, _ in query.multi_items()]
        if len(set(keys)) != len(keys):
            raise bw.binance_error(
                bw.TOO_MANY_PARAMETERS, "Duplicate values for a parameter detected."
            )
        unread = [key for key in keys if key not in allowed]
        if unread:
            read = len(keys) - len(unread)
            raise bw.binance_error(
                bw.UNREAD_PARAMETERS,
                f"Not all sent parameters were read; read '{read}' parameter(s) but was sent"
                f" '{len(keys)}'.",
            )
        self._query = query

    def text(self, name: str) -> str | None:
        value = self._query.get(name)
        if value == "":
            raise bw.binance_error(bw.PARAM_EMPTY, f"Parameter '{name}' was empty.")
        return value

    def required(self, name: str) -> str:
        value = self._query.get(name)
        if not value:
            raise bw.binance_error(
                bw.MANDATORY_PARAM,
                f"Mandatory parameter '{name}' was not sent, was empty/null, or malformed.",
            )
        return value

    def integer(self, name: str) -> int | None:
        value = self.text(name)
        if value is None:
            return None
        if not _INT_RE.match(value):
            raise bw.binance_error(
                bw.ILLEGAL_CHARS,
                f"Illegal characters found in parameter '{name}'; legal range is"
                " '^[0-9]{1,20}$'.",
            )
        return int(value)

    def limit(self, default: int = DEFAULT_LIMIT, maximum: int = MAX_LIMIT) -> int:
        value = self.integer("limit")
        if value is None:
            return default
        if not 1 <= value <= maximum:
            raise _invalid("limit")
        return value


def _invalid(name: str) -> DialectError:
    return bw.binance_error(bw.INVALID_PARAMETER, f"Data sent for parameter '{name}' is not valid.")


def _symbol_spec(ctx: AppContext, text: str, param: str = "symbol") -> SymbolSpec:
    if not _SYMBOL_RE.match(text):
        raise bw.binance_error(
            bw.ILLEGAL_CHARS,
            f"Illegal characters found in parameter '{param}'; legal range is"
            " '^[A-Z0-9-_.]{1,20}$'.",
        )
    spec = names(ctx).spec(text)
    if spec is None:
        raise bw.binance_error(bw.BAD_SYMBOL, "Invalid symbol.")
    return spec


def _symbol(ctx: AppContext, params: _Params) -> SymbolSpec:
    return _symbol_spec(ctx, params.required("symbol"))


def _symbols(ctx: AppContext, params: _Params) -> list[SymbolSpec]:
    """``symbol=A``, ``symbols=["A","B"]`` or neither (every symbol, configured order)."""
    one, many = params.text("symbol"), params.text("symbols")
    if one is not None and many is not None:
        raise bw.binance_error(bw.BAD_COMBINATION, "Combination of optional parameters invalid.")
    if one is not None:
        return [_symbol_spec(ctx, one)]
    if many is None:
        return names(ctx).all()
    try:
        listed = msgspec.json.decode(many, type=list[str])
    except msgspec.DecodeError:
        raise bw.binance_error(
            bw.MANDATORY_PARAM,
            "Mandatory parameter 'symbols' was not sent, was empty/null, or malformed.",
        ) from None
    if not listed:
        raise bw.binance_error(
            bw.MANDATORY_PARAM,
            "Mandatory parameter 'symbols' was not sent, was empty/null, or malformed.",
        )
    specs = [_symbol_spec(ctx, name, "symbols") for name in dict.fromkeys(listed)]
    return specs


def parse_time_zone(text: str | None) -> int:
    """Binance's ``timeZone`` (``0``, ``+8``, ``-1:00``, ``05:45``; -12:00..+14:00) as an
    offset in ms; raise ``ValueError`` otherwise."""
    if text is None:
        return 0
    match = _TZ_RE.match(text.strip())
    if match is None:
        raise ValueError(text)
    sign, hours, minutes = match.groups()
    offset = (int(hours) * 60 + int(minutes or 0)) * 60_000
    if int(minutes or 0) >= 60:
        raise ValueError(text)
    offset = -offset if sign == "-" else offset
    if not -12 * 3_600_000 <= offset <= 14 * 3_600_000:
        raise ValueError(text)
    return offset


def _bucket(params: _Params) -> Bucket:
    name = params.required("interval")
    try:
        offset = parse_time_zone(params.text("timeZone"))
    except ValueError:
        raise _invalid("timeZone") from None
    if name not in BINANCE_INTERVALS:
        raise bw.binance_error(bw.BAD_INTERVAL, "Invalid interval.")
    try:
        return bucket(name, offset)
    except UnknownInterval:
        # A stored interval cannot tile this window at this offset (a 1d at +05:45 can: 15m).
        raise _invalid("timeZone") from None


# -- general ----------------------------------------------------------------------------------


@router.get("/ping")
async def ping(request: Request) -> Response:
    """Test connectivity: ``{}``."""
    _Params(request.query_params, ())
    return _json(b"{}")


@router.get("/time")
async def server_time(ctx: Ctx, request: Request) -> Response:
    """``{"serverTime": epoch ms}``."""
    _Params(request.query_params, ())
    return _json(f'{{"serverTime":{ctx.market.now_ms()}}}')


def _symbol_info(ctx: AppContext, spec: SymbolSpec) -> dict[str, object]:
    quote = ctx.settings.quote_asset
    max_units = 2**62 - 1  # what a trade may carry at most (domain/trades.py)
    return {
        "symbol": names(ctx).name(spec),
        "status": "TRADING",
        "baseAsset": spec.name,
        "baseAssetPrecision": max(spec.amount_decimals, 0),
        "quoteAsset": quote,
        "quotePrecision": max(spec.price_decimals, 0),
        "quoteAssetPrecision": max(spec.price_decimals, 0),
        "baseCommissionPrecision": max(spec.amount_decimals, 0),
        "quoteCommissionPrecision": max(spec.price_decimals, 0),
        "orderTypes": ["LIMIT", "MARKET"],
        "icebergAllowed": False,
        "ocoAllowed": False,
        "otoAllowed": False,
        "quoteOrderQtyMarketAllowed": False,
        "allowTrailingStop": False,
        "cancelReplaceAllowed": False,
        "amendAllowed": False,
        "isSpotTradingAllowed": True,
        "isMarginTradingAllowed": False,
        "filters": [
            {
                "filterType": "PRICE_FILTER",
                "minPrice": bw.fixed(1, spec.price_decimals),
                "maxPrice": bw.fixed(max_units, spec.price_decimals),
                "tickSize": bw.fixed(1, spec.price_decimals),
            },
            {
                "filterType": "LOT_SIZE",
                "minQty": bw.fixed(1, spec.amount_decimals),
                "maxQty": bw.fixed(max_units, spec.amount_decimals),
                "stepSize": bw.fixed(1, spec.amount_decimals),
            },
        ],
        "permissions": [],
        "permissionSets": [["SPOT"]],
        "defaultSelfTradePreventionMode": "NONE",
        "allowedSelfTradePreventionModes": ["NONE"],
    }


@router.get("/exchangeInfo")
async def exchange_info(ctx: Ctx, request: Request) -> Response:
    """Symbols with their PRICE_FILTER (our tick size) and LOT_SIZE (our lot size)."""
    params = _Params(
        request.query_params,
        ("symbol", "symbols", "permissions", "showPermissionSets", "symbolStatus"),
    )
    status = params.text("symbolStatus")
    if status is not None and status not in ("TRADING", "HALT", "BREAK"):
        raise _invalid("symbolStatus")
    specs = _symbols(ctx, params)
    if status is not None and status != "TRADING":
        specs = []
    body = {
        "timezone": "UTC",
        "serverTime": ctx.market.now_ms(),
        "rateLimits": [],
        "exchangeFilters": [],
        "symbols": [_symbol_info(ctx, spec) for spec in specs],
    }
    return _json(msgspec.json.encode(body))


# -- candles ----------------------------------------------------------------------------------


async def _klines(ctx: AppContext, request: Request) -> Response:
    params = _Params(
        request.query_params, ("symbol", "interval", "startTime", "endTime", "timeZone", "limit")
    )
    spec = _symbol(ctx, params)
    target = _bucket(params)
    start, end = params.integer("startTime"), params.integer("endTime")
    limit = params.limit()
    if start is not None and end is not None and start > end:
        raise bw.binance_error(bw.BAD_COMBINATION, "Combination of optional parameters invalid.")
    candles, _ = await bucket_klines(ctx.market, spec.name, target, limit, start, end)
    ctx.metrics.candles_served.inc(len(candles))
    return _json("[" + ",".join(bw.kline_row(spec, target, c) for c in candles) + "]")


@router.get("/klines")
async def klines(ctx: Ctx, request: Request) -> Response:
    """Candles as 12-field rows, oldest first: ``symbol``, ``interval`` (1s 1m 3m 5m 15m 30m
    1h 2h 4h 6h 8h 12h 1d), ``startTime``, ``endTime``, ``timeZone``, ``limit`` (500, ≤1000)."""
    return await _klines(ctx, request)


@router.get("/uiKlines")
async def ui_klines(ctx: Ctx, request: Request) -> Response:
    """The same as ``klines`` (our candles need no presentation tweaks)."""
    return await _klines(ctx, request)


# -- trades -----------------------------------------------------------------------------------


@router.get("/trades")
async def trades(ctx: Ctx, request: Request) -> Response:
    """The most recent trades, oldest first; ``id`` is the trade's number in its symbol."""
    params = _Params(request.query_params, ("symbol", "limit"))
    spec = _symbol(ctx, params)
    limit = params.limit()
    last = await ctx.store.last_trade_seq(spec.name)
    found = await ctx.store.trades_by_seq(spec.name, max(1, last - limit + 1), limit)
    return _json("[" + ",".join(bw.trade_json(spec, t) for t in found) + "]")


@router.get("/historicalTrades")
async def historical_trades(ctx: Ctx, request: Request) -> Response:
    """Trades from ``fromId`` (default: the most recent ones), oldest first. No API key."""
    params = _Params(request.query_params, ("symbol", "limit", "fromId"))
    spec = _symbol(ctx, params)
    limit = params.limit()
    from_id = params.integer("fromId")
    if from_id is None:
        last = await ctx.store.last_trade_seq(spec.name)
        from_id = max(1, last - limit + 1)
    found = await ctx.store.trades_by_seq(spec.name, from_id, limit)
    return _json("[" + ",".join(bw.trade_json(spec, t) for t in found) + "]")


@router.get("/aggTrades")
async def agg_trades(ctx: Ctx, request: Request) -> Response:
    """Aggregate trades: each trade is one aggregate with the trade's number as ``a``
    (``f == l == a``). ``fromId`` or ``startTime``/``endTime`` (at most an hour apart), or
    neither (the most recent); ``limit`` 500, ≤1000; oldest first."""
    params = _Params(request.query_params, ("symbol", "fromId", "startTime", "endTime", "limit"))
    spec = _symbol(ctx, params)
    limit = params.limit()
    from_id = params.integer("fromId")
    start, end = params.integer("startTime"), params.integer("endTime")
    store = ctx.store
    if from_id is not None and (start is not None or end is not None):
        raise bw.binance_error(bw.BAD_COMBINATION, "Combination of optional parameters invalid.")
    if from_id is not None:
        found = await store.trades_by_seq(spec.name, from_id, limit)
    elif start is not None or end is not None:
        if start is None:
            start = (end or 0) - MAX_AGG_RANGE_MS
        if end is None:
            end = start + MAX_AGG_RANGE_MS
        if start > end:
            raise bw.binance_error(
                bw.BAD_COMBINATION, "Combination of optional parameters invalid."
            )
        if end - start > MAX_AGG_RANGE_MS:
            raise bw.binance_error(
                bw.INVALID_TIME_RANGE, "More than 1 hours between startTime and endTime."
            )
        found = await store.trades_by_time(spec.name, start, end, limit)
    else:
        last = await store.last_trade_seq(spec.name)
        found = await store.trades_by_seq(spec.name, max(1, last - limit + 1), limit)
    return _json("[" + ",".join(bw.agg_trade_json(spec, t) for t in found) + "]")


# -- tickers ----------------------------------------------------------------------------------


async def ticker_extras(
    ctx: AppContext, spec: SymbolSpec, stats: TickerStats | None
) -> bw.TickerExtras:
    """The window's trade-number range, the last trade's quantity and the book's best bid
    and ask (where the exchange runs). As on Binance,
    ``count == lastId - firstId + 1``: ``lastId`` is the last trade's number and ``firstId``
    follows from the window's count (exact unless a late trade crossed the window's start).
    Two index lookups, whatever the window holds."""
    last = await ctx.store.last_trade_seq(spec.name)
    latest = await ctx.store.trades_by_seq(spec.name, last, 1) if last else []
    last_qty = latest[0].amount if latest else 0
    bid = ask = None
    if ctx.exchange is not None and spec.name in ctx.exchange.markets:
        bid, ask = ctx.exchange.engine.best_bid_ask(spec.name)
    if stats is None or stats.trades == 0:
        return bw.TickerExtras(-1, -1, last_qty, bid, ask)
    return bw.TickerExtras(max(1, last - stats.trades + 1), last, last_qty, bid, ask)


@router.get("/ticker/24hr")
async def ticker_24hr(ctx: Ctx, request: Request) -> Response:
    """Rolling 24h statistics (the native ticker's window): one object with ``symbol``, a
    list with ``symbols=["A","B"]`` or neither; ``type`` FULL (default) or MINI."""
    params = _Params(request.query_params, ("symbol", "symbols", "type"))
    kind = params.text("type") or "FULL"
    if kind not in ("FULL", "MINI"):
        raise _invalid("type")
    single = params.text("symbol") is not None
    now = ctx.market.now_ms()
    items = []
    for spec in _symbols(ctx, params):
        stats = ctx.analytics.ticker(spec.name)
        extras = await ticker_extras(ctx, spec, stats)
        items.append(
            bw.ticker_json(names(ctx).name(spec), spec, stats, extras, now, kind == "MINI")
        )
    return _json(items[0] if single else "[" + ",".join(items) + "]")


def _last_price(ctx: AppContext, spec: SymbolSpec) -> str:
    stats = ctx.analytics.ticker(spec.name)
    return bw.fixed(stats.price if stats is not None else 0, spec.price_decimals)


@router.get("/ticker/price")
async def ticker_price(ctx: Ctx, request: Request) -> Response:
    """The last price: ``{"symbol", "price"}``, or a list of them."""
    params = _Params(request.query_params, ("symbol", "symbols"))
    single = params.text("symbol") is not None
    items = [
        f'{{"symbol":"{names(ctx).name(spec)}","price":"{_last_price(ctx, spec)}"}}'
        for spec in _symbols(ctx, params)
    ]
    return _json(items[0] if single else "[" + ",".join(items) + "]")


@router.get("/avgPrice")
async def avg_price(ctx: Ctx, request: Request) -> Response:
    """The volume-weighted average price of the last 5 minutes (the open minute and the four
    before it): Σ quote volume / Σ volume, exact, with the tick decimals + 4; the last price
    when nothing traded. ``closeTime`` is the last trade's time."""
    params = _Params(request.query_params, ("symbol",))
    spec = _symbol(ctx, params)
    minute = bucket("1m").base
    candles, _ = await ctx.market.klines(spec.name, minute, _AVG_PRICE_MINUTES)
    volume = sum(c.volume for c in candles)
    quote = sum(c.quote_volume for c in candles)
    if volume:
        price = bw.avg_price_units(spec, quote, volume)
    else:
        price = bw.fixed(candles[-1].close if candles else 0, spec.price_decimals)
    stats = ctx.analytics.ticker(spec.name)
    close_time = (stats.last_trade_ts if stats is not None else None) or ctx.market.now_ms()
    return _json(f'{{"mins":{_AVG_PRICE_MINUTES},"price":"{price}","closeTime":{close_time}}}')
