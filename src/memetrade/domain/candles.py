"""Candles (OHLCV bars) as values, and the rules that build them."""

from dataclasses import dataclass

import msgspec

from memetrade.domain.errors import TradeTooNew, TradeTooOld
from memetrade.domain.intervals import Interval
from memetrade.domain.trades import Trade

__all__ = ["Candle", "CandleRules", "CandleUpdate", "fill_gaps", "flat_candle"]


@dataclass(frozen=True, slots=True)
class CandleRules:
    """How the candle book treats time.

    ``max_trade_age_ms``: a trade older than this (against the caller's clock) is refused; up to
    it, a late trade revises the candles it falls in. ``max_trade_ahead_ms``: how far in the
    future a trade's timestamp may be (clock skew between producers and us).
    ``history_limit``: candles kept in memory per interval.
    """

    max_trade_age_ms: int = 300_000
    max_trade_ahead_ms: int = 5_000
    history_limit: int = 1000

    def __post_init__(self) -> None:
        if self.max_trade_age_ms < 0 or self.max_trade_ahead_ms < 0:
            raise ValueError("trade age and lead must not be negative")
        if self.history_limit < 1:
            raise ValueError("history limit must be at least 1")

    def check_time(self, trade: Trade, now: int) -> None:
        """Raise ``TradeTooNew``/``TradeTooOld`` if ``trade.ts`` is outside the accepted window
        around ``now``."""
        if trade.ts > now + self.max_trade_ahead_ms:
            raise TradeTooNew(
                f"trade {trade.id} is {trade.ts - now} ms in the future "
                f"(at most {self.max_trade_ahead_ms} ms allowed)"
            )
        if trade.ts < now - self.max_trade_age_ms:
            raise TradeTooOld(
                f"trade {trade.id} is {now - trade.ts} ms old "
                f"(at most {self.max_trade_age_ms} ms allowed)"
            )


class Candle(msgspec.Struct, frozen=True):
    """One interval's aggregate. Prices in ticks, ``volume`` in lots, ``quote_volume`` in
    tick-lots (price times amount). An empty candle (``trades == 0``) is flat at the previous
    close with zero volume. ``first``/``last`` are the (ts, id) order keys of the trades that
    set ``open`` and ``close``; they let candles merge and take late trades exactly.
    ``buy_volume``/``buy_quote_volume`` are the part of ``volume``/``quote_volume`` whose taker
    bought (``Side.BUY``), in the same units: Binance's "taker buy" volumes.

    A frozen msgspec Struct: candles are built in bulk (every read materialises them, a
    rebuild makes tens of thousands), and one costs a tenth of a frozen dataclass's."""

    open_time: int
    open: int
    high: int
    low: int
    close: int
    volume: int
    quote_volume: int
    trades: int
    first: tuple[int, str] | None
    last: tuple[int, str] | None
    # Last, so that a positional construction written for the fields above cannot shift one
    # into another's place unnoticed: it fails for lack of these.
    buy_volume: int
    buy_quote_volume: int

    def close_time(self, interval: Interval) -> int:
        """The last millisecond inside the candle, as Binance reports it."""
        return self.open_time + interval.ms - 1


def flat_candle(open_time: int, close: int) -> Candle:
    """The candle of an interval without trades: flat at the previous ``close``, no volume."""
    return Candle(open_time, close, close, close, close, 0, 0, 0, None, None, 0, 0)


@dataclass(frozen=True, slots=True)
class CandleUpdate:
    """A candle's new state on one stream. ``seq`` counts updates per (symbol, interval) stream;
    ``closed`` is true once the interval has ended (a late trade may still revise it)."""

    symbol: str
    interval: Interval
    candle: Candle
    closed: bool
    seq: int


def fill_gaps(
    candles: list[Candle], start: int, end: int, interval: Interval, prev_close: int | None
) -> list[Candle]:
    """Materialise every interval in ``[start, end]`` from sparse stored ``candles`` (sorted,
    inside the range): empty intervals are flat at the previous close with zero volume. Before
    the first known close there are no candles."""
    out: list[Candle] = []
    by_time = {candle.open_time: candle for candle in candles}
    close = prev_close
    for t in range(start, end + 1, interval.ms):
        candle = by_time.get(t)
        if candle is None:
            if close is None:
                continue
            candle = flat_candle(t, close)
        out.append(candle)
        close = candle.close
    return out
