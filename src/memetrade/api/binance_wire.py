"""The Binance Spot dialect's wire formats: symbol names, errors, and JSON of klines, trades,
tickers and stream events, rendered from our exact integers.

Binance sends numbers as decimal strings with a fixed number of decimals (``"0.00100000"``);
here a price has the symbol's tick decimals, an amount its lot decimals and a quote amount
both added, so every value is exact and reads like Binance's. Names and field order follow
Binance's public REST and WebSocket documentation.
"""

import msgspec

from memetrade.api.errors import DialectError
from memetrade.domain.candles import Candle
from memetrade.domain.indicators import PRICE_EXTRA_DIGITS, div_round
from memetrade.domain.resample import Bucket
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.ticker import TickerStats
from memetrade.domain.trades import Side, Trade

__all__ = [
    "BinanceNames",
    "TickerExtras",
    "agg_trade_json",
    "avg_price_units",
    "binance_error",
    "book_top",
    "fixed",
    "kline_event",
    "kline_row",
    "mini_ticker_event",
    "ticker_event",
    "ticker_json",
    "trade_event",
    "trade_json",
]

# Binance's error codes used here (its "Error codes" page).
ILLEGAL_CHARS = -1100
TOO_MANY_PARAMETERS = -1101
MANDATORY_PARAM = -1102
UNREAD_PARAMETERS = -1104
PARAM_EMPTY = -1105
BAD_INTERVAL = -1120
BAD_SYMBOL = -1121
INVALID_TIME_RANGE = -1127
BAD_COMBINATION = -1128
INVALID_PARAMETER = -1130

_encode = msgspec.json.encode


def binance_error(code: int, msg: str, status: int = 400) -> DialectError:
    """An error answered as Binance does: ``{"code": -1121, "msg": "Invalid symbol."}``."""
    return DialectError(status, _encode({"code": code, "msg": msg}))


def fixed(units: int, decimals: int) -> str:
    """``units * 10**-decimals`` with exactly ``decimals`` decimals, as Binance pads them."""
    if decimals <= 0:
        return str(units * 10**-decimals)
    sign = "-" if units < 0 else ""
    digits = str(abs(units)).rjust(decimals + 1, "0")
    return f"{sign}{digits[:-decimals]}.{digits[-decimals:]}"


class BinanceNames:
    """``PEPE`` ↔ ``PEPEUSDT``: a symbol's Binance name is its name followed by the quote asset."""

    def __init__(self, specs: dict[str, SymbolSpec], quote: str) -> None:
        self.quote = quote
        self._by_name = {spec.name + quote: spec for spec in specs.values()}

    def name(self, spec: SymbolSpec) -> str:
        return spec.name + self.quote

    def spec(self, name: str) -> SymbolSpec | None:
        return self._by_name.get(name.upper())

    def all(self) -> list[SymbolSpec]:
        return list(self._by_name.values())


def _price(spec: SymbolSpec, units: int) -> str:
    return fixed(units, spec.price_decimals)


def _qty(spec: SymbolSpec, units: int) -> str:
    return fixed(units, spec.amount_decimals)


def _quote(spec: SymbolSpec, units: int) -> str:
    return fixed(units, spec.price_decimals + spec.amount_decimals)


def kline_row(spec: SymbolSpec, target: Bucket, candle: Candle) -> str:
    """The 12-field kline array. Fields 9 and 10 are the taker buy base and quote volumes (the
    trades whose taker bought); the last field is Binance's unused ``"0"``."""
    return (
        f'[{candle.open_time},"{_price(spec, candle.open)}","{_price(spec, candle.high)}",'
        f'"{_price(spec, candle.low)}","{_price(spec, candle.close)}",'
        f'"{_qty(spec, candle.volume)}",{candle.open_time + target.ms - 1},'
        f'"{_quote(spec, candle.quote_volume)}",{candle.trades},'
        f'"{_qty(spec, candle.buy_volume)}","{_quote(spec, candle.buy_quote_volume)}","0"]'
    )


def _maker(trade: Trade) -> str:
    # The taker sold: the buyer's order was resting on the book.
    return "true" if trade.side is Side.SELL else "false"


def trade_json(spec: SymbolSpec, trade: Trade) -> str:
    return (
        f'{{"id":{trade.seq},"price":"{_price(spec, trade.price)}",'
        f'"qty":"{_qty(spec, trade.amount)}",'
        f'"quoteQty":"{_quote(spec, trade.price * trade.amount)}","time":{trade.ts},'
        f'"isBuyerMaker":{_maker(trade)},"isBestMatch":true}}'
    )


def agg_trade_json(spec: SymbolSpec, trade: Trade) -> str:
    """One aggregate trade: each trade is its own aggregate, numbered with the trade's number
    (our trades carry no taker-order id to group by)."""
    return (
        f'{{"a":{trade.seq},"p":"{_price(spec, trade.price)}","q":"{_qty(spec, trade.amount)}",'
        f'"f":{trade.seq},"l":{trade.seq},"T":{trade.ts},"m":{_maker(trade)},"M":true}}'
    )


def trade_event(name: str, spec: SymbolSpec, trade: Trade, event_time: int) -> str:
    return (
        f'{{"e":"trade","E":{event_time},"s":"{name}","t":{trade.seq},'
        f'"p":"{_price(spec, trade.price)}","q":"{_qty(spec, trade.amount)}",'
        f'"T":{trade.ts},"m":{_maker(trade)},"M":true}}'
    )


def kline_event(
    name: str, spec: SymbolSpec, target: Bucket, candle: Candle, closed: bool, event_time: int
) -> str:
    """A kline stream event. ``f``/``L`` (first and last trade id) are -1: candles keep no
    trade numbers; ``V``/``Q`` are the taker buy volumes, as in ``kline_row``."""
    return (
        f'{{"e":"kline","E":{event_time},"s":"{name}","k":{{"t":{candle.open_time},'
        f'"T":{candle.open_time + target.ms - 1},"s":"{name}","i":"{target.name}",'
        f'"f":-1,"L":-1,"o":"{_price(spec, candle.open)}","c":"{_price(spec, candle.close)}",'
        f'"h":"{_price(spec, candle.high)}","l":"{_price(spec, candle.low)}",'
        f'"v":"{_qty(spec, candle.volume)}","n":{candle.trades},'
        f'"x":{"true" if closed else "false"},"q":"{_quote(spec, candle.quote_volume)}",'
        f'"V":"{_qty(spec, candle.buy_volume)}","Q":"{_quote(spec, candle.buy_quote_volume)}",'
        f'"B":"0"}}}}'
    )


class TickerExtras(msgspec.Struct, frozen=True):
    """What a Binance ticker has beyond ``TickerStats``: the first and last trade numbers in
    the window (-1 without trades), the last trade's quantity (in lots), and the order book's
    best bid and ask as ``(price, quantity)`` (None: that side is empty, or no book is served
    here; rendered as zeros, as Binance does for an empty side)."""

    first_id: int
    last_id: int
    last_qty: int
    bid: tuple[int, int] | None = None
    ask: tuple[int, int] | None = None


def book_top(
    spec: SymbolSpec, bid: tuple[int, int] | None, ask: tuple[int, int] | None
) -> tuple[str, str, str, str]:
    """``bidPrice``, ``bidQty``, ``askPrice``, ``askQty`` (zeros for an empty side)."""
    bid, ask = bid or (0, 0), ask or (0, 0)
    return _price(spec, bid[0]), _qty(spec, bid[1]), _price(spec, ask[0]), _qty(spec, ask[1])


def avg_price_units(spec: SymbolSpec, quote: int, volume: int) -> str:
    """``quote / volume`` (tick-lots over lots) with the tick decimals + 4, rounded to nearest,
    ties to even: the precision of our VWAP."""
    return fixed(div_round(quote * 10**PRICE_EXTRA_DIGITS, volume), spec.price_decimals + 4)


def _ticker_fields(spec: SymbolSpec, stats: TickerStats | None) -> tuple[str, ...]:
    if stats is None:
        zero = _price(spec, 0)
        return zero, "0.00", zero, zero, zero, zero, zero, _qty(spec, 0), _quote(spec, 0)
    weighted = (
        avg_price_units(spec, stats.quote_volume, stats.volume) if stats.volume else _price(spec, 0)
    )
    return (
        _price(spec, stats.change),
        fixed(stats.change_percent, 2) if stats.open else "0.00",
        weighted,
        _price(spec, stats.price),
        _price(spec, stats.open),
        _price(spec, stats.high),
        _price(spec, stats.low),
        _qty(spec, stats.volume),
        _quote(spec, stats.quote_volume),
    )


def _times(stats: TickerStats | None, now: int) -> tuple[int, int]:
    if stats is None:
        return now - 86_400_000, now
    close = stats.last_trade_ts if stats.last_trade_ts is not None else now
    return stats.window_start, close


def ticker_json(
    name: str,
    spec: SymbolSpec,
    stats: TickerStats | None,
    extras: TickerExtras,
    now: int,
    mini: bool,
) -> str:
    """``GET /api/v3/ticker/24hr`` of one symbol, FULL or MINI. ``prevClosePrice`` is the
    price at the window's start (``openPrice``)."""
    change, percent, weighted, last, opening, high, low, volume, quote = _ticker_fields(spec, stats)
    open_time, close_time = _times(stats, now)
    trades = stats.trades if stats is not None else 0
    tail = (
        f'"openTime":{open_time},"closeTime":{close_time},"firstId":{extras.first_id},'
        f'"lastId":{extras.last_id},"count":{trades}}}'
    )
    if mini:
        return (
            f'{{"symbol":"{name}","openPrice":"{opening}","highPrice":"{high}",'
            f'"lowPrice":"{low}","lastPrice":"{last}","volume":"{volume}",'
            f'"quoteVolume":"{quote}",' + tail
        )
    bid_price, bid_qty, ask_price, ask_qty = book_top(spec, extras.bid, extras.ask)
    return (
        f'{{"symbol":"{name}","priceChange":"{change}","priceChangePercent":"{percent}",'
        f'"weightedAvgPrice":"{weighted}","prevClosePrice":"{opening}","lastPrice":"{last}",'
        f'"lastQty":"{_qty(spec, extras.last_qty)}","bidPrice":"{bid_price}",'
        f'"bidQty":"{bid_qty}","askPrice":"{ask_price}","askQty":"{ask_qty}",'
        f'"openPrice":"{opening}","highPrice":"{high}","lowPrice":"{low}",'
        f'"volume":"{volume}","quoteVolume":"{quote}",' + tail
    )


def ticker_event(
    name: str, spec: SymbolSpec, stats: TickerStats | None, extras: TickerExtras, now: int
) -> str:
    change, percent, weighted, last, opening, high, low, volume, quote = _ticker_fields(spec, stats)
    open_time, close_time = _times(stats, now)
    trades = stats.trades if stats is not None else 0
    bid_price, bid_qty, ask_price, ask_qty = book_top(spec, extras.bid, extras.ask)
    return (
        f'{{"e":"24hrTicker","E":{now},"s":"{name}","p":"{change}","P":"{percent}",'
        f'"w":"{weighted}","x":"{opening}","c":"{last}","Q":"{_qty(spec, extras.last_qty)}",'
        f'"b":"{bid_price}","B":"{bid_qty}","a":"{ask_price}","A":"{ask_qty}",'
        f'"o":"{opening}","h":"{high}","l":"{low}","v":"{volume}","q":"{quote}",'
        f'"O":{open_time},"C":{close_time},"F":{extras.first_id},"L":{extras.last_id},'
        f'"n":{trades}}}'
    )


def mini_ticker_event(name: str, spec: SymbolSpec, stats: TickerStats | None, now: int) -> str:
    _, _, _, last, opening, high, low, volume, quote = _ticker_fields(spec, stats)
    return (
        f'{{"e":"24hrMiniTicker","E":{now},"s":"{name}","c":"{last}","o":"{opening}",'
        f'"h":"{high}","l":"{low}","v":"{volume}","q":"{quote}"}}'
    )
