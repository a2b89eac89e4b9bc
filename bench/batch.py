"""Benchmark 2: batch (vectorised) aggregation, ``memetrade.domain.batch.aggregate``.

The same trades as benchmark 1, as int64 columns and a bool column of the taker's side, sorted
by ``(ts, id)`` (how a rebuild reads them from the store; building the columns is not timed).
Each interval is one ``aggregate`` call returning finished ``Candle`` values with exact volumes.
The headline figure is the slowest interval (1s: the most candles to build as Python objects);
all five are listed.

Reference: the streaming ``CandleBook`` on the same trades in the same run (all five intervals
in one pass, as in benchmark 1). The candles of both paths are compared for equality.
"""

from __future__ import annotations

import gc
import time

import numpy as np

from bench.aggregation import run_ours
from bench.common import Measure, Options, Result, fmt
from bench.tape import tape
from memetrade.domain.batch import aggregate
from memetrade.domain.intervals import INTERVALS
from memetrade.domain.trades import Side

__all__ = ["run"]

TARGET = 20e6


def run(opts: Options) -> list[Result]:
    n = opts.n(1_000_000, 200_000)
    trades = tape(n)
    ts = np.fromiter((t.ts for t in trades), np.int64, n)
    price = np.fromiter((t.price for t in trades), np.int64, n)
    amount = np.fromiter((t.amount for t in trades), np.int64, n)
    buy = np.fromiter((t.side is Side.BUY for t in trades), np.bool_, n)
    ids = [t.id for t in trades]
    repeats = opts.n(max(opts.repeats, 7), 3)
    per_interval: dict[str, list[float]] = {i.name: [] for i in INTERVALS}
    all_five: list[float] = []
    for _ in range(repeats):
        gc.collect()
        total = 0.0
        for interval in INTERVALS:
            start = time.perf_counter()
            aggregate(interval.ms, ts, price, amount, buy, ids)
            elapsed = time.perf_counter() - start
            total += elapsed
            per_interval[interval.name].append(n / elapsed)
        all_five.append(n / total)

    streaming: list[float] = []
    book = None
    for _ in range(opts.n(3, 1)):
        elapsed, book, _ = run_ours(trades)
        streaming.append(n / elapsed)
    assert book is not None
    identical = []
    for interval in INTERVALS:
        mine = aggregate(interval.ms, ts, price, amount, buy, ids)
        # The book holds its last ``retention`` candles; compare those (all of them for >= 1m).
        start_t = max(book.memory_start(interval), mine[0].open_time)
        theirs = [c for c in book.candles(interval, start_t, book.open_time(interval)) if c.trades]
        overlap = [c for c in mine if c.open_time >= start_t]
        identical.append(
            f"{interval.name} {len(theirs)}/{len(overlap)}"
            f"{'' if theirs == overlap else ' DIFFERENT'}"
        )
    slowest = min(per_interval, key=lambda k: float(np.median(per_interval[k])))
    measure = Measure(
        f"batch.aggregate, slowest interval ({slowest})", "trades/s", per_interval[slowest]
    )
    ref = Measure("streaming CandleBook, 5 intervals", "trades/s", streaming)
    ratio = measure.median / ref.median
    extra = [
        "per interval (median trades/s): "
        + ", ".join(f"{k} {fmt(float(np.median(v)))}" for k, v in per_interval.items()),
        f"all five intervals from the same columns: {fmt(float(np.median(all_five)))} "
        "trades/s (n trades / total time of the five calls)",
    ]
    notes = [
        f"{n:,} trades (benchmark 1's tape). Candles equal to the streaming book's "
        "(candles compared, both sides' count): " + ", ".join(identical) + ".",
        "Exactness costs: quote volumes of the 1h PEPE candles exceed 2**63, so sums go "
        "through the 32-bit high/low split (see domain/batch.py).",
    ]
    return [
        Result(
            "2. Batch aggregation",
            measure,
            f">= {fmt(TARGET)} trades/s",
            measure.median >= TARGET,
            reference=ref,
            ratio=ratio,
            extra=extra,
            notes=notes,
        )
    ]
