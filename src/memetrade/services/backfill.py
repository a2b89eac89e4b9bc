"""History for a first start: generated trades, and the candles made from them, written to the
store so that every interval's chart has depth from the first request.

Design, and why:

* The same ``MarketModel`` instances as the live generator: after the backfill each model stands
  at "now" on its path, and the live trades continue from the last backfilled price.
* Density falls with age, ``PEAK_RATE * (RECENT_S / age) ** DECAY`` trades per second (flat
  for the last ``RECENT_S``): about 3/s in the last ten minutes, 12 a minute five hours back,
  40 an hour twelve days back. That gives every interval about ``DEPTH`` non-empty candles (the
  coarsest, 1h, needs ``DEPTH`` hours of history) for about 40 000 trades per symbol.
* Candles come from replaying the trades, in order, through a fresh ``CandleBook`` with the
  clock at each trade: the same code that builds live candles, so they agree by construction.
  The replay book keeps only two candles per interval in memory and refuses late trades
  (``max_trade_age_ms=0``): the replay is strictly in time order, those knobs bound memory and
  lateness only, and candle values do not depend on them. It is drained before each new second,
  while every candle it changed is still in memory.
* Writes go in batches of about ``BATCH`` trades with the candle updates drained so far (only
  the last state of each non-empty candle), so at every commit the stored candles are exactly
  the aggregation of the stored trades.
"""

import math
from collections.abc import Sequence
from dataclasses import replace

from memetrade.domain.candle_book import CandleBook
from memetrade.domain.candles import CandleRules, CandleUpdate
from memetrade.domain.intervals import INTERVALS
from memetrade.domain.market_model import MarketModel
from memetrade.domain.trades import Trade
from memetrade.ports import TradeStore

__all__ = ["BATCH", "DECAY", "DEPTH", "PEAK_RATE", "RECENT_S", "backfill", "backfill_rate"]

DEPTH = 300
PEAK_RATE = 3.0
RECENT_S = 600.0
DECAY = 0.75
BATCH = 10_000

_HOUR_MS = 3_600_000
# Trade arrival is bursty, so an old hour is sometimes empty; a few spare hours keep the 1h
# chart at DEPTH real candles anyway.
_SPARE_HOURS = 5


def backfill_rate(age_ms: int) -> float:
    """Mean generated trades per second at ``age_ms`` before now."""
    return PEAK_RATE * math.pow(RECENT_S / max(age_ms / 1000.0, RECENT_S), DECAY)


async def backfill(
    store: TradeStore, models: Sequence[MarketModel], rules: CandleRules, now_ms: int
) -> int:
    """Write generated history up to ``now_ms`` for every model's symbol that has no trades yet;
    return the number of trades written.

    The history starts a few hours more than ``DEPTH`` before the current hour, so each
    interval has at least ``DEPTH`` candles. The last trade is at most about a second before
    ``now_ms``, and none is after it. Afterwards each model continues from ``now_ms``.
    """
    start_ms = now_ms - now_ms % _HOUR_MS - (DEPTH + _SPARE_HOURS) * _HOUR_MS
    replay_rules = replace(rules, max_trade_age_ms=0, max_trade_ahead_ms=0, history_limit=1)
    written = 0
    for model in models:
        if await store.recent_trades(model.spec.name, 1):
            continue  # Never rewrite history a store already has.
        trades = _generate(model, start_ms, now_ms)
        await _replay_and_write(store, CandleBook(model.spec.name, replay_rules), trades)
        written += len(trades)
    return written


def _generate(model: MarketModel, start_ms: int, now_ms: int) -> list[Trade]:
    trades: list[Trade] = []
    t = max(start_ms, model.next_start_ms or start_ms)  # A used model continues where it is.
    end = now_ms - 1  # Leaves the last millisecond for a final trade "now", if needed.
    while t < end:
        age = now_ms - t
        # Windows short enough that the rate is about constant across each.
        length = int(min(max(age / 30, 5_000), 900_000))
        stop = min(t + length, end)
        trades += model.trades_between(t, stop, backfill_rate(now_ms - (t + stop) // 2))
        t = stop
    if t <= end and (not trades or trades[-1].ts < now_ms - 1_000):
        # Quiet last second: one more order, so the chart's last price is current.
        trades += model.trades_at(now_ms - 1)
    return trades


async def _replay_and_write(store: TradeStore, book: CandleBook, trades: list[Trade]) -> None:
    batch: list[Trade] = []
    # The latest state of each candle changed since the last write, by (interval, open time).
    candles: dict[tuple[str, int], CandleUpdate] = {}

    def collect() -> None:
        for update in book.drain():
            if update.candle.trades:
                candles[update.interval.name, update.candle.open_time] = update

    # Each interval keeps the same number of candles, so the 1s level forgets soonest: drain
    # before a trade would move its memory past the oldest second not yet drained.
    second = INTERVALS[0]
    undrained = -1
    for trade in trades:
        ts = trade.ts
        t = ts - ts % 1000
        if t > book.open_time(second) >= 0 and t - _span(book) > undrained:
            collect()
            undrained = t
            if len(batch) >= BATCH:
                await store.write(batch, list(candles.values()))
                batch, candles = [], {}
        elif undrained < 0:
            undrained = t
        book.apply(trade, ts)
        batch.append(trade)
    collect()
    if batch:
        await store.write(batch, list(candles.values()))


def _span(book: CandleBook) -> int:
    second = INTERVALS[0]
    return book.open_time(second) - book.memory_start(second)
