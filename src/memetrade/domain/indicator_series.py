"""An indicator series: some indicators over one (symbol, interval) candle stream, kept
current as candle updates arrive.

The series owns a window of consecutive candles (every interval, empty ones flat at the
previous close, as the candle book materialises them) and, per indicator, the state and value
after each candle. A candle update either

* changes the newest candle (the open one, on every trade): one ``step`` per indicator, from
  the state after the candle before: O(1);
* appends a candle (a new interval began; a gap is filled with flat candles): O(1) each;
* revises an older candle (a late trade, or the final state of a candle that just closed):
  every indicator is recomputed from that candle to the newest, from the stored state before
  it. Late trades are at most ``max_trade_age`` old, so that is a bounded replay.

``update`` returns the points whose candle or indicator values changed, which is what a
stream republishes; values downstream of a revision that round to the same output are not
repeated. The window keeps ``capacity`` candles (trimmed in chunks, so trimming is amortised
O(1)); a revision older than the window is ignored, so ``capacity`` must cover the late-trade
window plus the indicators' lookback (``capacity_for``).
"""

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from memetrade.domain.candles import Candle, CandleRules, flat_candle
from memetrade.domain.indicators import Indicator, Value
from memetrade.domain.intervals import Interval

__all__ = ["IndicatorSeries", "Point", "capacity_for"]


@dataclass(frozen=True, slots=True)
class Point:
    """A candle with the value of each of the series' indicators there (in their order);
    ``provisional`` while the candle is open."""

    candle: Candle
    values: tuple[Value, ...]
    provisional: bool


def capacity_for(interval: Interval, indicators: Sequence[Indicator], rules: CandleRules) -> int:
    """Candles a live series must keep so any late trade ``rules`` accept can be replayed."""
    late = -(-(rules.max_trade_age_ms + rules.max_trade_ahead_ms) // interval.ms) + 2
    return late + max((ind.lookback for ind in indicators), default=0) + 1


class IndicatorSeries:
    """A window of candles of one interval and ``indicators``' values over it.

    ``initial`` may give an indicator's state before the first candle (a VWAP seeded with its
    session's totals so far); by default each starts from ``initial()``.
    """

    def __init__(
        self,
        interval: Interval,
        indicators: Sequence[Indicator],
        capacity: int | None = None,
        initial: dict[int, Any] | None = None,
    ) -> None:
        self.interval = interval
        self.indicators = tuple(indicators)
        self.capacity = capacity
        self._candles: list[Candle] = []
        # _states[k][i]: indicator k's state after candle i; _values[k][i]: its value there.
        self._states: list[list[Any]] = [[] for _ in self.indicators]
        self._values: list[list[Value]] = [[] for _ in self.indicators]
        initial = initial or {}
        self._start = [initial.get(k, ind.initial()) for k, ind in enumerate(self.indicators)]
        self._open_time = -1  # open time of the open candle, if the newest one is open

    def __len__(self) -> int:
        return len(self._candles)

    # -- commands ------------------------------------------------------------------------

    def update(self, changes: Iterable[tuple[Candle, bool]]) -> list[Point]:
        """Apply candle states given as ``(candle, closed)``, in any order; return the points
        of those candles and of every later one whose values changed, oldest first."""
        candles = self._candles
        step = self.interval.ms
        touched: set[int] = set()
        first = len(candles)
        if not isinstance(changes, list) or len(changes) > 1:
            changes = sorted(changes, key=lambda change: change[0].open_time)
        for candle, closed in changes:
            t = candle.open_time
            if closed:
                if t == self._open_time:
                    self._open_time = -1
            elif t >= self._open_time:
                self._open_time = t
            if not candles:
                candles.append(candle)
                first = 0
                touched.add(t)
                continue
            newest = candles[-1].open_time
            if t > newest:
                close = candles[-1].close
                for gap in range(newest + step, t, step):
                    candles.append(flat_candle(gap, close))
                    touched.add(gap)
                candles.append(candle)
                touched.add(t)
                continue
            index = (t - candles[0].open_time) // step
            if index < 0:
                continue  # older than the window
            touched.add(t)  # re-announced even if unchanged: it may have just closed
            if candles[index] != candle:
                candles[index] = candle
                first = min(first, index)
        first = min(first, len(self._states[0]) if self.indicators else len(candles))
        changed = self._recompute(first, touched)
        self._trim()
        return changed

    def extend(self, candles: Iterable[Candle], open_time: int = -1) -> None:
        """Append consecutive ``candles`` (the one opening at ``open_time`` is open)."""
        self.update((candle, candle.open_time != open_time) for candle in candles)

    # -- queries ---------------------------------------------------------------------------

    def points(self, start: int = 0) -> list[Point]:
        """Points with open times at or after ``start``, oldest first."""
        candles = self._candles
        if not candles:
            return []
        first = max(0, -(-(start - candles[0].open_time) // self.interval.ms))
        return [self._point(i) for i in range(first, len(candles))]

    def last(self) -> Point | None:
        return self._point(len(self._candles) - 1) if self._candles else None

    # -- internals -------------------------------------------------------------------------

    def _point(self, i: int) -> Point:
        candle = self._candles[i]
        values = tuple(values[i] for values in self._values)
        return Point(candle, values, candle.open_time == self._open_time)

    def _recompute(self, first: int, touched: set[int]) -> list[Point]:
        candles = self._candles
        end = len(candles)
        changed_at: set[int] = set()
        for k, indicator in enumerate(self.indicators):
            states, values = self._states[k], self._values[k]
            state = states[first - 1] if first else self._start[k]
            step = indicator.step
            known = min(len(states), end)
            # Candles computed before: replace, noting values that changed.
            for i in range(first, known):
                state, value = step(state, candles, i)
                states[i] = state
                if values[i] != value:
                    values[i] = value
                    changed_at.add(i)
            # New candles (the common case: one, the open candle or the next one).
            for i in range(max(first, known), end):
                state, value = step(state, candles, i)
                states.append(state)
                values.append(value)
        if candles:
            base, step_ms = candles[0].open_time, self.interval.ms
            changed_at.update((t - base) // step_ms for t in touched)
        return [self._point(i) for i in sorted(changed_at)]

    def _trim(self) -> None:
        capacity = self.capacity
        if capacity is None or len(self._candles) <= capacity + max(capacity // 4, 16):
            return
        drop = len(self._candles) - capacity
        # The state after the last dropped candle becomes the start of the window.
        for k in range(len(self.indicators)):
            self._start[k] = self._states[k][drop - 1]
            del self._states[k][:drop]
            del self._values[k][:drop]
        del self._candles[:drop]
