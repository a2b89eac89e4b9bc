"""Rolling 24-hour statistics of one symbol, fed its 1m candles; and the BUY/SELL signal.

The window is the newest (open) minute and the 1,439 before it: 24 hours at minute
resolution. The ticker keeps a ring of 1,440 minute candles (a slot per minute of the day),
so a candle update is O(1): volume, quote volume and trade count are running sums (the old
state of a minute is subtracted, the new one added), and a minute leaving the window is
subtracted once. High and low are the extremes over the minutes with trades; the newest
minute's are combined at read time, and those of the closed minutes are cached until the
window slides (once a minute) or a late trade revises a closed minute: a 1,440-slot scan at
most once a minute on read. All numbers are the candles' exact integers.

``open`` is the price at the start of the window: the open of its first minute (a minute
without trades is flat at the previous close), or of the earliest minute present if that came
later (the symbol's first trade).
"""

import enum
from dataclasses import dataclass

from memetrade.domain.candles import Candle
from memetrade.domain.indicators import PRICE_SCALE, div_round

__all__ = ["WINDOW_MINUTES", "RollingTicker", "Signal", "TickerStats", "recommend"]

WINDOW_MINUTES = 1440
_MINUTE = 60_000


class Signal(enum.Enum):
    BUY = "BUY"
    SELL = "SELL"
    NEUTRAL = "NEUTRAL"


def recommend(price: int, sma: int | None) -> Signal:
    """BUY when ``price`` (ticks) is above ``sma`` (``10**-4`` ticks), SELL below; NEUTRAL
    without an SMA yet, or exactly on it."""
    if sma is None:
        return Signal.NEUTRAL
    scaled = price * PRICE_SCALE
    if scaled > sma:
        return Signal.BUY
    return Signal.SELL if scaled < sma else Signal.NEUTRAL


@dataclass(frozen=True, slots=True)
class TickerStats:
    """The window's figures: prices in ticks, ``volume`` in lots, ``quote_volume`` in
    tick-lots, ``change_percent`` in hundredths of a percent (ties to even)."""

    window_start: int
    price: int
    open: int
    high: int
    low: int
    volume: int
    quote_volume: int
    trades: int
    last_trade_ts: int | None

    @property
    def change(self) -> int:
        return self.price - self.open

    @property
    def change_percent(self) -> int:
        return div_round(self.change * 10_000, self.open)


class RollingTicker:
    """A symbol's rolling 24h statistics; ``apply`` each 1m candle state, in any order."""

    def __init__(self) -> None:
        self._slots: list[Candle | None] = [None] * WINDOW_MINUTES
        self._newest = -1
        self._first = -1  # open time of the first minute ever seen
        self._volume = self._quote = self._trades = 0
        self._last_ts: int | None = None
        # (high, low) over the closed minutes with trades; valid while _cached.
        self._extremes: tuple[int, int] | None = None
        self._cached = False

    def apply(self, candle: Candle) -> None:
        t = candle.open_time
        if self._newest < 0:
            self._newest = self._first = t
        elif t > self._newest:
            self._slide(t)
        elif t <= self._newest - WINDOW_MINUTES * _MINUTE:
            return  # left the window already
        if t < self._first:
            self._first = t
        slot = (t // _MINUTE) % WINDOW_MINUTES
        old = self._slots[slot]
        if old is not None and old.open_time == t:
            self._remove(old)
        self._slots[slot] = candle
        self._volume += candle.volume
        self._quote += candle.quote_volume
        self._trades += candle.trades
        if candle.last is not None and (self._last_ts is None or candle.last[0] > self._last_ts):
            self._last_ts = candle.last[0]
        if t != self._newest:
            self._cached = False

    def stats(self) -> TickerStats | None:
        """The window's figures, or None before the first candle."""
        if self._newest < 0:
            return None
        newest = self._slot(self._newest)
        assert newest is not None
        start = self._newest - (WINDOW_MINUTES - 1) * _MINUTE
        opening = self._opening(max(start, self._first))
        if not self._cached:
            self._extremes, self._cached = self._scan(), True
        extremes = self._extremes
        if newest.trades:
            high, low = newest.high, newest.low
            if extremes is not None:
                high, low = max(high, extremes[0]), min(low, extremes[1])
        elif extremes is not None:
            high, low = extremes
        else:
            high = low = newest.close
        return TickerStats(
            start,
            newest.close,
            opening,
            high,
            low,
            self._volume,
            self._quote,
            self._trades,
            self._last_ts,
        )

    # -- internals -------------------------------------------------------------------------

    def _slot(self, t: int) -> Candle | None:
        candle = self._slots[(t // _MINUTE) % WINDOW_MINUTES]
        return candle if candle is not None and candle.open_time == t else None

    def _opening(self, start: int) -> int:
        # Minutes arrive contiguous (the book announces empty ones too), so the first one is
        # there; if one was never announced, the window opens at the earliest one present.
        for t in range(start, self._newest + 1, _MINUTE):
            candle = self._slot(t)
            if candle is not None:
                return candle.open
        raise AssertionError("the newest minute is always present")

    def _remove(self, candle: Candle) -> None:
        self._volume -= candle.volume
        self._quote -= candle.quote_volume
        self._trades -= candle.trades

    def _slide(self, t: int) -> None:
        # Every slot whose minute leaves the window is reused by a minute in (newest, t].
        steps = min((t - self._newest) // _MINUTE, WINDOW_MINUTES)
        for k in range(1, steps + 1):
            slot = ((t // _MINUTE) - steps + k) % WINDOW_MINUTES
            old = self._slots[slot]
            if old is not None:
                self._remove(old)
                self._slots[slot] = None
        self._newest = t
        self._cached = False

    def _scan(self) -> tuple[int, int] | None:
        high = low = None
        for candle in self._slots:
            if candle is None or not candle.trades or candle.open_time == self._newest:
                continue
            if high is None or candle.high > high:
                high = candle.high
            if low is None or candle.low < low:
                low = candle.low
        return None if high is None or low is None else (high, low)
