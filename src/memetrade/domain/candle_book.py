"""The candle book: one symbol's candles at every interval, built trade by trade.

Design, and why:

* The 1s candle is the atom. A trade in the current second (the common case) updates one
  "hot" 1s bar and nothing else: about a microsecond. When the second ends, the hot bar is
  merged once into the open bar of every coarser interval. So an hour candle *is* the merge of
  its seconds, by construction, and the per-trade cost does not grow with the interval count.
* The open candle of a coarse interval is read as ``merge(open bar, hot bar)``.
* A late trade (its second already ended) is applied directly to its 1s bar and to the bar of
  every coarser interval that contains it, so they stay the merge of their seconds.
* Open and close are decided by the trade order key ``(ts, id)``, never by arrival order, so a
  candle is the same whatever order its trades arrive in.
* Trade ids are remembered in one set for as long as a trade may be late (each 1s bar lists
  its ids, and they are forgotten when the bar leaves memory), so a replayed trade is always
  recognised, whatever timestamp it comes back with.
* Bars are stored sparsely: an interval with no trades has no bar. It is materialised on read
  as a flat candle at the previous close with zero volume.

The book never reads a clock: callers pass ``now`` (epoch ms) in.
"""

from collections.abc import Iterable
from dataclasses import dataclass, field

from memetrade.domain.candles import Candle, CandleRules, CandleUpdate, flat_candle
from memetrade.domain.errors import TradeTooOld
from memetrade.domain.intervals import INTERVALS, Interval
from memetrade.domain.trades import Side, Trade

__all__ = ["CandleBook"]

# A module constant: one global lookup in ``_Bar.add``, the per-trade hot path, not two.
_BUY = Side.BUY


class _Bar:
    """A mutable candle under construction. ``ids`` (the trade ids, for forgetting them when the
    bar leaves memory) is kept on 1s bars only."""

    __slots__ = (
        "buy_quote",
        "buy_volume",
        "close",
        "count",
        "first_id",
        "first_ts",
        "high",
        "ids",
        "last_id",
        "last_ts",
        "low",
        "open",
        "quote",
        "volume",
    )

    def __init__(self, trade: Trade, ids: list[str] | None) -> None:
        price = trade.price
        self.open = self.high = self.low = self.close = price
        self.volume = trade.amount
        self.quote = price * trade.amount
        if trade.side is _BUY:
            self.buy_volume, self.buy_quote = trade.amount, self.quote
        else:
            self.buy_volume = self.buy_quote = 0
        self.count = 1
        self.first_ts = self.last_ts = trade.ts
        self.first_id = self.last_id = trade.id
        self.ids = ids

    @classmethod
    def from_candle(cls, candle: Candle) -> "_Bar":
        assert candle.first is not None
        assert candle.last is not None
        bar = cls.__new__(cls)
        bar.open, bar.high, bar.low, bar.close = candle.open, candle.high, candle.low, candle.close
        bar.volume, bar.quote, bar.count = candle.volume, candle.quote_volume, candle.trades
        bar.buy_volume, bar.buy_quote = candle.buy_volume, candle.buy_quote_volume
        bar.first_ts, bar.first_id = candle.first
        bar.last_ts, bar.last_id = candle.last
        bar.ids = None
        return bar

    def add(self, trade: Trade) -> bool:
        """Add a trade; return whether it became the bar's last (changing the close)."""
        price, ts, tid = trade.price, trade.ts, trade.id
        if price > self.high:
            self.high = price
        elif price < self.low:
            self.low = price
        amount = trade.amount
        quote = price * amount
        self.volume += amount
        self.quote += quote
        if trade.side is _BUY:
            self.buy_volume += amount
            self.buy_quote += quote
        self.count += 1
        if ts > self.last_ts or (ts == self.last_ts and tid > self.last_id):
            self.close, self.last_ts, self.last_id = price, ts, tid
            return True
        if ts < self.first_ts or (ts == self.first_ts and tid < self.first_id):
            self.open, self.first_ts, self.first_id = price, ts, tid
        return False

    def merge(self, other: "_Bar") -> None:
        if other.high > self.high:
            self.high = other.high
        if other.low < self.low:
            self.low = other.low
        self.volume += other.volume
        self.quote += other.quote
        self.buy_volume += other.buy_volume
        self.buy_quote += other.buy_quote
        self.count += other.count
        if (other.last_ts, other.last_id) > (self.last_ts, self.last_id):
            self.close, self.last_ts, self.last_id = other.close, other.last_ts, other.last_id
        if (other.first_ts, other.first_id) < (self.first_ts, self.first_id):
            self.open, self.first_ts, self.first_id = other.open, other.first_ts, other.first_id

    def copy(self) -> "_Bar":
        bar = _Bar.__new__(_Bar)
        for name in _Bar.__slots__:
            setattr(bar, name, getattr(self, name))
        bar.ids = None
        return bar

    def candle(self, open_time: int) -> Candle:
        return Candle(
            open_time,
            self.open,
            self.high,
            self.low,
            self.close,
            self.volume,
            self.quote,
            self.count,
            (self.first_ts, self.first_id),
            (self.last_ts, self.last_id),
            self.buy_volume,
            self.buy_quote,
        )


@dataclass(slots=True)
class _Level:
    """The bars of one interval. ``open_t`` is the open time of the candle containing the book's
    frontier (-1 before the first trade or clock tick)."""

    interval: Interval
    retention: int
    bars: dict[int, _Bar] = field(default_factory=dict)
    open_t: int = -1
    newest_t: int = -1
    seq: int = 0

    @property
    def memory_start(self) -> int:
        return self.open_t - (self.retention - 1) * self.interval.ms

    def prune(self) -> list[_Bar]:
        # Insertion order is time order (``_apply_late`` re-sorts when it opens an older bar),
        # so the oldest bar is always first. A bar left behind out of order would outlive
        # newer pruned bars and lend its stale close to empty candles read after them.
        threshold = self.memory_start
        bars = self.bars
        removed = []
        while bars:
            oldest = next(iter(bars))
            # The newest bar always stays: it carries the close an empty candle is flat at.
            if oldest >= threshold or oldest == self.newest_t:
                break
            removed.append(bars.pop(oldest))
        return removed

    def close_before(self, t: int) -> int | None:
        """The close of the latest bar before ``t`` in memory, if any."""
        best_t, best = -1, None
        for bar_t, bar in self.bars.items():
            if best_t < bar_t < t:
                best_t, best = bar_t, bar
        return None if best is None else best.close


class CandleBook:
    """Every interval's candles for one symbol; a state machine fed trades and clock ticks.

    ``apply`` and ``advance`` change state; ``drain`` returns the candle updates since the last
    drain (each changed candle once, in its latest state), which callers publish and persist.
    """

    def __init__(self, symbol: str, rules: CandleRules | None = None) -> None:
        self.symbol = symbol
        self.rules = rules = rules or CandleRules()
        late_window = rules.max_trade_age_ms + rules.max_trade_ahead_ms
        self._levels = [
            _Level(interval, max(rules.history_limit, -(-late_window // interval.ms) + 2))
            for interval in INTERVALS
        ]
        self._index = {level.interval: i for i, level in enumerate(self._levels)}
        self._seconds = self._levels[0].bars
        self._coarse = self._levels[1:]
        # The 1s bar of the frontier second while it is not yet merged into coarser bars.
        self._hot: _Bar | None = None
        self._open_s = -1
        self._hot_dirty = False
        self._dirty: dict[tuple[int, int], None] = {}
        # Ids of every trade young enough to be replayed.
        self._seen: set[str] = set()

    # -- commands ------------------------------------------------------------------------

    def apply(self, trade: Trade, now: int) -> bool:
        """Apply a trade; return False when its id was already applied (nothing changes).

        Raise ``TradeTooOld``/``TradeTooNew`` when ``trade.ts`` is outside the window that
        ``rules`` allow around ``now``.
        """
        self.rules.check_time(trade, now)
        ts = trade.ts
        hot = self._hot
        trade_id = trade.id
        if trade_id in self._seen:
            return False
        self._seen.add(trade_id)
        if hot is not None and ts - ts % 1000 == self._open_s:
            assert hot.ids is not None
            hot.ids.append(trade_id)
            hot.add(trade)
            self._hot_dirty = True
            return True
        return self._apply_outside_hot(trade, ts - ts % 1000)

    def advance(self, now: int) -> None:
        """Move the book's clock to ``now``: candles whose interval ended become closed."""
        second = now - now % 1000
        if second > self._open_s and self._open_s >= 0:
            self._move_frontier(second)

    def restore(self, interval: Interval, candles: Iterable[Candle]) -> None:
        """Load stored non-empty candles of one interval (from a previous run)."""
        level = self._levels[self._index[interval]]
        for candle in sorted(candles, key=lambda c: c.open_time):
            level.bars[candle.open_time] = _Bar.from_candle(candle)
            level.newest_t = max(level.newest_t, candle.open_time)
        newest_second = self._levels[0].newest_t
        if newest_second > self._open_s:
            self._open_s = newest_second
            for lvl in self._levels:
                lvl.open_t = newest_second - newest_second % lvl.interval.ms
        level.prune()

    def restore_ids(self, trades: Iterable[tuple[int, str]]) -> None:
        """Remember ids of stored trades, given as ``(ts, id)``, so replays stay duplicates."""
        for ts, trade_id in trades:
            bar = self._seconds.get(ts - ts % 1000)
            if bar is not None and trade_id not in self._seen:
                self._seen.add(trade_id)
                if bar.ids is None:
                    bar.ids = []
                bar.ids.append(trade_id)

    def drain(self) -> list[CandleUpdate]:
        """Return the updates since the last drain, coarse-to-fine order not guaranteed;
        within one interval, in time order."""
        dirty = self._dirty
        if self._hot_dirty:
            for i, level in enumerate(self._levels):
                dirty[(i, level.open_t)] = None
            self._hot_dirty = False
        if not dirty:
            return []
        self._dirty = {}
        updates = []
        # Runs of consecutive candles are common (every interval a clock jump closed), so
        # carry the close along instead of searching memory for each empty one.
        prev: tuple[int, int, int] | None = None
        for i, t in sorted(dirty):
            level = self._levels[i]
            if t < level.memory_start:
                continue
            carried = prev[2] if prev and prev[:2] == (i, t - level.interval.ms) else None
            candle = self._materialize(i, t, carried)
            if candle is None:
                continue
            prev = (i, t, candle.close)
            level.seq += 1
            updates.append(
                CandleUpdate(self.symbol, level.interval, candle, t < level.open_t, level.seq)
            )
        return updates

    # -- queries ---------------------------------------------------------------------------

    def open_time(self, interval: Interval) -> int:
        """Open time of the current candle, or -1 before any trade or clock tick."""
        return self._levels[self._index[interval]].open_t

    def retention(self, interval: Interval) -> int:
        """How many candles of ``interval`` the book keeps in memory."""
        return self._levels[self._index[interval]].retention

    def memory_start(self, interval: Interval) -> int:
        """Open time of the oldest candle this book can serve."""
        return self._levels[self._index[interval]].memory_start

    def seq(self, interval: Interval) -> int:
        """The sequence number of the last update drained for ``interval``."""
        return self._levels[self._index[interval]].seq

    def close_before(self, interval: Interval, t: int) -> int | None:
        return self._levels[self._index[interval]].close_before(t)

    def candles(
        self, interval: Interval, start: int, end: int, prev_close: int | None = None
    ) -> list[Candle]:
        """Materialised candles with open times in ``[start, end]``, oldest first.

        ``start`` must be aligned and not older than ``memory_start``. Leading empty intervals
        are flat at ``prev_close`` (or the close found in memory); before the first trade
        there are no candles.
        """
        i = self._index[interval]
        level = self._levels[i]
        end = min(end, level.open_t)
        out: list[Candle] = []
        close = prev_close if prev_close is not None else level.close_before(start)
        for t in range(start, end + 1, interval.ms):
            candle = self._materialize(i, t, close)
            if candle is not None:
                out.append(candle)
                close = candle.close
        return out

    # -- internals -------------------------------------------------------------------------

    def _apply_outside_hot(self, trade: Trade, second: int) -> bool:
        if second > self._open_s:
            if self._open_s >= 0:
                self._move_frontier(second)
            else:
                self._start(second)
            self._new_hot(trade, second)
            return True
        if second == self._open_s and self._hot is None and second not in self._seconds:
            self._new_hot(trade, second)
            return True
        return self._apply_late(trade, second)

    def _new_hot(self, trade: Trade, second: int) -> None:
        self._hot = bar = _Bar(trade, [trade.id])
        self._seconds[second] = bar
        self._levels[0].newest_t = max(self._levels[0].newest_t, second)
        self._hot_dirty = True

    def _apply_late(self, trade: Trade, second: int) -> bool:
        seconds = self._levels[0]
        if second < seconds.memory_start:
            self._seen.discard(trade.id)
            raise TradeTooOld(f"trade {trade.id} is older than the candles kept in memory")
        for i, level in enumerate(self._levels):
            t = second - second % level.interval.ms
            bar = level.bars.get(t)
            if bar is None:
                level.bars[t] = _Bar(trade, [trade.id] if i == 0 else None)
                if t < level.newest_t:
                    # Rare (a late trade in an empty interval): restore time order in place,
                    # which ``prune`` relies on; in place because ``_seconds`` aliases it.
                    ordered = sorted(level.bars.items())
                    level.bars.clear()
                    level.bars.update(ordered)
                level.newest_t = max(level.newest_t, t)
                closes_changed = True
            else:
                if i == 0:
                    if bar.ids is None:
                        bar.ids = []
                    bar.ids.append(trade.id)
                closes_changed = bar.add(trade)
            self._dirty[(i, t)] = None
            if closes_changed and t < level.open_t:
                self._mark_following_empties(i, level, t)
        return True

    def _mark_following_empties(self, i: int, level: _Level, t: int) -> None:
        # Empty candles after a revised close are flat at it, so they changed too.
        step = level.interval.ms
        t += step
        while t <= level.open_t and t not in level.bars:
            self._dirty[(i, t)] = None
            t += step

    def _start(self, second: int) -> None:
        self._open_s = second
        for i, level in enumerate(self._levels):
            level.open_t = second - second % level.interval.ms
            self._dirty[(i, level.open_t)] = None

    def _move_frontier(self, second: int) -> None:
        hot = self._hot
        if hot is not None:
            for level in self._coarse:
                bar = level.bars.get(level.open_t)
                if bar is None:
                    level.bars[level.open_t] = hot.copy()
                    level.newest_t = max(level.newest_t, level.open_t)
                else:
                    bar.merge(hot)
            self._hot = None
        self._open_s = second
        for i, level in enumerate(self._levels):
            step = level.interval.ms
            new_open = second - second % step
            if new_open == level.open_t:
                continue
            # Every interval that ended gets a final (closed) update, empty ones included;
            # only those still in memory are worth announcing.
            first = max(level.open_t, new_open - level.retention * step)
            for t in range(first, new_open + 1, step):
                self._dirty[(i, t)] = None
            level.open_t = new_open
            for bar in level.prune():
                if bar.ids:
                    self._seen.difference_update(bar.ids)

    def _materialize(self, i: int, t: int, prev_close: int | None) -> Candle | None:
        level = self._levels[i]
        bar = level.bars.get(t)
        hot = self._hot
        if i > 0 and hot is not None and t == level.open_t:
            if bar is None:
                bar = hot
            else:
                bar = bar.copy()
                bar.merge(hot)
        if bar is not None:
            return bar.candle(t)
        close = prev_close if prev_close is not None else level.close_before(t)
        if close is None:
            return None
        return flat_candle(t, close)
