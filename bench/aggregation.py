"""Benchmark 1: streaming candle aggregation, CandleBook vs nautilus-trader's TimeBarAggregator.

Ours: every trade through ``CandleBook.apply`` (exact integers, idempotence by id, the late-trade
window checked) for all five intervals at once, ``drain()`` every 1,000 trades as the service
drains after each ingest batch, with ``now`` = the trade's timestamp.

Reference: nautilus-trader's ``TimeBarAggregator`` (its Cython core), one aggregator per
interval (1s, 1m, 5m, 15m, 1h; LAST price, INTERNAL), each fed every ``TradeTick``. Time bars
close on timer events, so it is driven as nautilus' own tests and backtest engine drive it: a
``TestClock`` is advanced to each tick's timestamp (once per distinct millisecond; advancing to
the same time again is a no-op) and the returned timer events are handled before the tick.
``interval_type='right-open'`` gives [open, close) windows like ours. Converting our trades to
``TradeTick`` objects happens before timing, as ours are ``Trade`` objects before timing.

Sanity check: the 1m bars of both sides agree on count, OHLC and volume.
"""

from __future__ import annotations

import gc
import time
from collections.abc import Sequence
from typing import Any

from bench.common import Measure, Options, Result
from bench.tape import SYMBOL, tape
from memetrade.domain.candle_book import CandleBook
from memetrade.domain.candles import Candle
from memetrade.domain.intervals import INTERVALS
from memetrade.domain.symbols import PRESETS
from memetrade.domain.trades import Side, Trade

__all__ = ["run"]

DRAIN_EVERY = 1000
TARGET = 1.5


def run_ours(trades: Sequence[Trade]) -> tuple[float, CandleBook, int]:
    book = CandleBook(SYMBOL)
    apply, drain = book.apply, book.drain
    updates = 0
    gc.collect()
    start = time.perf_counter()
    for i, trade in enumerate(trades, 1):
        apply(trade, trade.ts)
        if i % DRAIN_EVERY == 0:
            updates += len(drain())
    updates += len(drain())
    return time.perf_counter() - start, book, updates


def _nautilus_setup(trades: Sequence[Trade]) -> tuple[Any, list[Any]]:
    from nautilus_trader.model.currencies import USDT
    from nautilus_trader.model.data import TradeTick
    from nautilus_trader.model.enums import AggressorSide
    from nautilus_trader.model.identifiers import InstrumentId, Symbol, TradeId
    from nautilus_trader.model.instruments import CurrencyPair
    from nautilus_trader.model.objects import FIXED_PRECISION, Currency, Price, Quantity

    spec = PRESETS[SYMBOL]
    pd_, ad = spec.price_decimals, spec.amount_decimals
    if max(pd_, ad) > FIXED_PRECISION:
        raise RuntimeError(f"nautilus build has precision {FIXED_PRECISION} < {pd_}")
    iid = InstrumentId.from_str(f"{SYMBOL}USDT.BINANCE")
    pepe = Currency(SYMBOL, 8, 0, SYMBOL, _crypto())
    instrument = CurrencyPair(
        instrument_id=iid,
        raw_symbol=Symbol(f"{SYMBOL}USDT"),
        base_currency=pepe,
        quote_currency=USDT,
        price_precision=pd_,
        size_precision=ad,
        price_increment=Price.from_raw(10 ** (FIXED_PRECISION - pd_), pd_),
        size_increment=Quantity.from_raw(10 ** (FIXED_PRECISION - ad), ad),
        ts_event=0,
        ts_init=0,
    )
    p_scale, a_scale = 10 ** (FIXED_PRECISION - pd_), 10 ** (FIXED_PRECISION - ad)
    buy, sell = AggressorSide.BUYER, AggressorSide.SELLER
    ticks = [
        TradeTick(
            iid,
            Price.from_raw(t.price * p_scale, pd_),
            Quantity.from_raw(t.amount * a_scale, ad),
            buy if t.side is Side.BUY else sell,
            TradeId(t.id),
            t.ts * 1_000_000,
            t.ts * 1_000_000,
        )
        for t in trades
    ]
    return instrument, ticks


def _crypto() -> Any:
    from nautilus_trader.model.enums import CurrencyType

    return CurrencyType.CRYPTO


def run_nautilus(instrument: Any, ticks: Sequence[Any]) -> tuple[float, dict[str, list[Any]]]:
    from nautilus_trader.common.component import TestClock
    from nautilus_trader.data.aggregation import TimeBarAggregator
    from nautilus_trader.model.data import BarType

    clock = TestClock()
    clock.set_time(ticks[0].ts_init)
    bars: dict[str, list[Any]] = {}
    aggregators = []
    units = {
        "1s": "1-SECOND",
        "1m": "1-MINUTE",
        "5m": "5-MINUTE",
        "15m": "15-MINUTE",
        "1h": "1-HOUR",
    }
    for interval in INTERVALS:
        out: list[Any] = []
        bars[interval.name] = out
        bar_type = BarType.from_str(f"{instrument.id}-{units[interval.name]}-LAST-INTERNAL")
        aggregators.append(
            TimeBarAggregator(
                instrument,
                bar_type,
                out.append,
                clock,
                interval_type="right-open",
                timestamp_on_close=False,
            )
        )
    handlers = [a.handle_trade_tick for a in aggregators]
    advance = clock.advance_time
    last = -1
    gc.collect()
    start = time.perf_counter()
    for tick in ticks:
        ts = tick.ts_init
        if ts != last:
            for event in advance(ts):
                event.handle()
            last = ts
        for handle in handlers:
            handle(tick)
    elapsed = time.perf_counter() - start
    for a in aggregators:
        a.stop()
    return elapsed, bars


def _check(book_candles: list[Candle], bars: list[Any]) -> str:
    spec = PRESETS[SYMBOL]
    by_open = {c.open_time: c for c in book_candles if c.trades}
    matched = 0
    for bar in bars:
        candle = by_open.get(bar.ts_event // 1_000_000)
        if candle is None:
            continue
        theirs = (bar.open.raw, bar.high.raw, bar.low.raw, bar.close.raw, bar.volume.raw)
        p = 10 ** (16 - spec.price_decimals)
        a = 10 ** (16 - spec.amount_decimals)
        mine = (
            candle.open * p,
            candle.high * p,
            candle.low * p,
            candle.close * p,
            candle.volume * a,
        )
        if theirs == mine:
            matched += 1
    return f"{matched} of {len(by_open)} closed 1m candles identical to nautilus' bars"


def run(opts: Options) -> list[Result]:
    n = opts.n(1_000_000, 200_000)
    trades = tape(n)
    repeats = opts.n(opts.repeats, 2)
    ours: list[float] = []
    book = None
    updates = 0
    for _ in range(repeats):
        elapsed, book, updates = run_ours(trades)
        ours.append(n / elapsed)
    assert book is not None
    measure = Measure("CandleBook, 5 intervals", "trades/s", ours)
    notes = [
        f"{n:,} PEPE trades from MarketModel (seed 3, 50 trades/s average, bursty; "
        f"{(trades[-1].ts - trades[0].ts) / 3.6e6:.1f} h of market time), drain() every "
        f"{DRAIN_EVERY} trades ({updates:,} candle updates per run)."
    ]
    try:
        instrument, ticks = _nautilus_setup(trades)
    except Exception as exc:  # Report exactly why the reference could not run.
        return [
            Result(
                "1. Streaming aggregation",
                measure,
                f">= {TARGET}x nautilus-trader",
                None,
                notes=[*notes, f"nautilus-trader could not run: {exc!r}"],
            )
        ]
    theirs: list[float] = []
    bars: dict[str, list[Any]] = {}
    for _ in range(repeats):
        elapsed, bars = run_nautilus(instrument, ticks)
        theirs.append(n / elapsed)
    import nautilus_trader

    ref = Measure(
        f"nautilus-trader {nautilus_trader.__version__} TimeBarAggregator x5", "trades/s", theirs
    )
    minute = INTERVALS[1]
    closed = book.candles(minute, book.memory_start(minute), book.open_time(minute) - minute.ms)
    notes.append("Check: " + _check(closed, bars["1m"]) + ".")
    ratio = measure.median / ref.median
    return [
        Result(
            "1. Streaming aggregation",
            measure,
            f">= {TARGET}x nautilus-trader trades/s",
            ratio >= TARGET,
            reference=ref,
            ratio=ratio,
            notes=notes,
        )
    ]
