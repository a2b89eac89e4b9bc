"""Candles of intervals the candle book does not keep, merged exactly from ones it does.

The book keeps 1s, 1m, 5m, 15m and 1h (``INTERVALS``). Chart dialects ask for more (Binance:
3m, 30m, 2h, 4h, 6h, 8h, 12h, 1d; TradingView: the same in minutes), and for windows aligned
to a time zone rather than to UTC. A ``Bucket`` is such a window: a length and an offset
(``open_time ≡ -offset_ms (mod ms)``, so a +08:00 day opens at 16:00 UTC), with the stored
interval it is merged from: the coarsest whose candles tile it exactly.

``merge_candles`` follows the candle book's own merge rule: high/low, the volumes (taker buy
volumes included) and trades are sums or extremes over the non-empty parts; open and close
are those of the parts holding the first and last trade by ``(ts, id)``; a window with no
trade is flat at the previous close. So an hour merged here equals the hour the book keeps,
and a day merged from hours equals a day merged from minutes.
"""

from collections.abc import Iterable
from dataclasses import dataclass

from memetrade.domain.candles import Candle, flat_candle
from memetrade.domain.errors import UnknownInterval
from memetrade.domain.intervals import INTERVALS, Interval

__all__ = ["BINANCE_INTERVALS", "Bucket", "bucket", "merge_candles"]

_UNITS = {"s": 1_000, "m": 60_000, "h": 3_600_000, "d": 86_400_000}

# Binance's kline intervals that are whole multiples of a stored one (1w and 1M are not: a
# week opens on Monday, not at an epoch multiple, and a month has no fixed length).
BINANCE_INTERVALS: tuple[str, ...] = (
    "1s",
    "1m",
    "3m",
    "5m",
    "15m",
    "30m",
    "1h",
    "2h",
    "4h",
    "6h",
    "8h",
    "12h",
    "1d",
)


@dataclass(frozen=True, slots=True)
class Bucket:
    """A candle window: ``name`` (like ``4h``), length ``ms``, ``offset_ms`` (the time zone's
    offset from UTC, already reduced modulo ``ms``) and the stored ``base`` interval it is
    merged from (``base`` itself when ``ms == base.ms`` and there is no offset)."""

    name: str
    ms: int
    offset_ms: int
    base: Interval

    @property
    def stored(self) -> bool:
        """Whether the candle book keeps these candles as they are (no merge needed)."""
        return self.ms == self.base.ms and self.offset_ms == 0

    def open_time(self, ts: int) -> int:
        """The open time of the window containing ``ts``."""
        return ts - (ts + self.offset_ms) % self.ms


def bucket(name: str, offset_ms: int = 0) -> Bucket:
    """The window ``name`` (a number and a unit s/m/h/d, like Binance's ``3m``) at
    ``offset_ms`` from UTC; raise ``UnknownInterval`` unless stored candles tile it."""
    ms = _length(name)
    offset = offset_ms % ms if ms else 0
    for base in reversed(INTERVALS):
        if ms and ms % base.ms == 0 and offset % base.ms == 0:
            return Bucket(name, ms, offset, base)
    raise UnknownInterval(f"interval {name!r} is not a whole number of stored candles")


def _length(name: str) -> int:
    unit = _UNITS.get(name[-1:])
    count = name[:-1]
    if unit is None or not count.isdigit() or not count.isascii() or count.startswith("0"):
        raise UnknownInterval(f"unknown interval {name!r}")
    if int(count) > 366 * _UNITS["d"] // unit:
        raise UnknownInterval(f"interval {name!r} is too long")
    return int(count) * unit


def merge_candles(candles: Iterable[Candle], target: Bucket) -> list[Candle]:
    """Merge consecutive ``candles`` of ``target.base`` (oldest first, gaps filled with flat
    candles as ``fill_gaps`` and the book make them) into one candle per ``target`` window
    they touch, oldest first."""
    out: list[Candle] = []
    group: list[Candle] = []
    window = -1
    for candle in candles:
        t = target.open_time(candle.open_time)
        if t != window and group:
            out.append(_merge(window, group))
            group = []
        window = t
        group.append(candle)
    if group:
        out.append(_merge(window, group))
    return out


def _merge(open_time: int, parts: list[Candle]) -> Candle:
    traded = [c for c in parts if c.trades]
    if not traded:
        close = parts[-1].close  # flat parts are all at the previous close
        return flat_candle(open_time, close)
    first = min(traded, key=_first_key)
    last = max(traded, key=_last_key)
    return Candle(
        open_time,
        first.open,
        max(c.high for c in traded),
        min(c.low for c in traded),
        last.close,
        sum(c.volume for c in traded),
        sum(c.quote_volume for c in traded),
        sum(c.trades for c in traded),
        first.first,
        last.last,
        sum(c.buy_volume for c in traded),
        sum(c.buy_quote_volume for c in traded),
    )


def _first_key(candle: Candle) -> tuple[int, str]:
    assert candle.first is not None
    return candle.first


def _last_key(candle: Candle) -> tuple[int, str]:
    assert candle.last is not None
    return candle.last
