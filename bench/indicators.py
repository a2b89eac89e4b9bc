"""Benchmark 7: incremental indicators (``IndicatorSeries``) against the candle updates they
follow.

The tape of benchmark 1 goes through ``CandleBook.apply`` with ``drain()`` every
``DRAIN_EVERY`` trades (about a second of market time, as the service drains after every
ingest batch), which gives the candle updates of all five intervals: open candles changing,
candles closing, empty ones announced. Untimed, the updates are recorded per drain.

Timed: the updates of each drain, grouped by interval, applied to one ``IndicatorSeries`` per
interval carrying six indicators (SMA-20, EMA-20, RSI-14, Bollinger 20/2, MACD 12/26/9,
VWAP), as ``services/analytics.py`` does for a ``/ws/klines?indicators=`` stream. The figure is
candle updates absorbed per second (each one is six indicator steps); alongside it, the candle
updates per second the book itself produces from trades on the same tape, and each indicator
alone (SMA-20 alone is the always-on cost: the signal series of every interval). Issue 5 asks
for the two rates side by side; no target is judged (the book's own rate is far above what
durable ingest sustains, benchmark 5, so it is a ceiling, not a requirement).
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from decimal import Decimal

from bench.common import Measure, Options, Result, fmt
from bench.tape import SYMBOL, tape
from memetrade.domain.candle_book import CandleBook
from memetrade.domain.candles import Candle, CandleRules, CandleUpdate
from memetrade.domain.indicator_series import IndicatorSeries, capacity_for
from memetrade.domain.indicators import Bollinger, Ema, Indicator, Macd, Rsi, Sma, Vwap
from memetrade.domain.intervals import INTERVALS
from memetrade.domain.trades import Trade

__all__ = ["run"]

DRAIN_EVERY = 50
SET: tuple[Indicator, ...] = (
    Sma(20), Ema(20), Rsi(14), Bollinger(20, Decimal(2)), Macd(12, 26, 9), Vwap()
)  # fmt: skip


def candle_updates(trades: Sequence[Trade]) -> tuple[float, list[list[CandleUpdate]]]:
    """Time the book producing updates; return the time and the updates of each drain."""
    book = CandleBook(SYMBOL)
    apply, drain = book.apply, book.drain
    batches: list[list[CandleUpdate]] = []
    gc.collect()
    start = time.perf_counter()
    for i, trade in enumerate(trades, 1):
        apply(trade, trade.ts)
        if i % DRAIN_EVERY == 0:
            batches.append(drain())
    batches.append(drain())
    return time.perf_counter() - start, batches


def grouped(batches: list[list[CandleUpdate]]) -> list[list[tuple[int, list[tuple[Candle, bool]]]]]:
    index = {interval: k for k, interval in enumerate(INTERVALS)}
    out = []
    for batch in batches:
        groups: dict[int, list[tuple[Candle, bool]]] = {}
        for update in batch:
            groups.setdefault(index[update.interval], []).append((update.candle, update.closed))
        out.append(list(groups.items()))
    return out


def apply_indicators(
    batches: list[list[tuple[int, list[tuple[Candle, bool]]]]], indicators: tuple[Indicator, ...]
) -> float:
    rules = CandleRules()
    series = [
        IndicatorSeries(interval, indicators, capacity_for(interval, indicators, rules))
        for interval in INTERVALS
    ]
    gc.collect()
    start = time.perf_counter()
    for batch in batches:
        for k, changes in batch:
            series[k].update(changes)
    return time.perf_counter() - start


def run(opts: Options) -> list[Result]:
    n = opts.n(1_000_000, 100_000)
    trades = tape(n)
    repeats = opts.n(opts.repeats, 2)
    book_rates: list[float] = []
    batches: list[list[CandleUpdate]] = []
    for _ in range(repeats):
        elapsed, batches = candle_updates(trades)
        book_rates.append(sum(map(len, batches)) / elapsed)
    updates = sum(map(len, batches))
    groups = grouped(batches)
    rates = [updates / apply_indicators(groups, SET) for _ in range(repeats)]
    alone = {
        indicator.key: sorted(updates / apply_indicators(groups, (indicator,)) for _ in range(3))[1]
        for indicator in SET
    }
    measure = Measure("IndicatorSeries, 6 indicators x 5 intervals", "candle updates/s", rates)
    book = Measure("CandleBook producing the updates from trades", "candle updates/s", book_rates)
    ratio = measure.median / book.median
    return [
        Result(
            "7. Indicators",
            measure,
            "report only: indicator vs candle updates/s",
            None,
            reference=book,
            ratio=ratio,
            extra=[
                f"indicator steps/s: {fmt(measure.median * len(SET))} (6 per candle update)",
                "each indicator alone (median candle updates/s): "
                + ", ".join(f"{key} {fmt(rate)}" for key, rate in alone.items()),
            ],
            notes=[
                f"{n:,} trades (benchmark 1's tape), drain() every {DRAIN_EVERY} trades: "
                f"{updates:,} candle updates over 5 intervals. Exact integer sums for SMA, "
                "Bollinger (isqrt) and VWAP; 34-digit Decimal recurrences for EMA, RSI, MACD."
            ],
        )
    ]
