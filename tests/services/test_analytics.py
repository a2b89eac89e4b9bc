"""MarketAnalytics wired to a real MarketData (memory store, manual clock): signals flip on
crossovers, a late trade republishes the indicator values after it, and a restart restores
the same tickers and signals from storage."""

import asyncio
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import pytest

from memetrade.adapters.clock import ManualClock
from memetrade.domain.candles import CandleRules
from memetrade.domain.indicator_series import Point
from memetrade.domain.indicators import Sma
from memetrade.domain.intervals import INTERVALS, Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.ticker import Signal
from memetrade.domain.trades import Side, Trade
from memetrade.services.analytics import MarketAnalytics, SignalChange, StreamKey
from memetrade.services.market_data import MarketData
from memetrade.services.writer import GroupCommitWriter
from memetrade.testing import MemoryStore

pytestmark = pytest.mark.anyio
SPEC = SymbolSpec("MEME", 2, 0)
MINUTE = INTERVALS[1]
T0 = 1_700_000_000_000 // 3_600_000 * 3_600_000
RULES = CandleRules(max_trade_age_ms=300_000)


@dataclass
class Recorder:
    signals: list[SignalChange] = field(default_factory=list)
    snapshots: list[tuple[str, Interval]] = field(default_factory=list)
    points: list[tuple[StreamKey, int, list[Point]]] = field(default_factory=list)

    def on_signal(self, change: SignalChange) -> None:
        self.signals.append(change)

    def on_snapshot(self, symbol: str, interval: Interval) -> None:
        self.snapshots.append((symbol, interval))

    def on_points(self, stream: StreamKey, seq: int, points: Sequence[Point]) -> None:
        self.points.append((stream, seq, list(points)))


@dataclass
class Rig:
    market: MarketData
    analytics: MarketAnalytics
    clock: ManualClock
    recorder: Recorder

    async def trade(self, trade_id: str, minute: int, price: int, second: int = 1) -> None:
        ts = T0 + minute * MINUTE.ms + second * 1000
        self.clock._now = max(self.clock.now_ms(), ts)
        result = await self.market.ingest([Trade(trade_id, "MEME", price, 1, Side.BUY, ts)])
        assert result.accepted == 1, result


@asynccontextmanager
async def rig(store: MemoryStore, now: int) -> AsyncIterator[Rig]:
    await store.open([SPEC])
    clock = ManualClock(now)
    writer = GroupCommitWriter(store)
    task = asyncio.create_task(writer.run())
    market = MarketData([SPEC], RULES, store, writer, clock)
    await market.restore()
    analytics = MarketAnalytics(market)
    market.add_listener(analytics)
    recorder = Recorder()
    analytics.add_sink(recorder)
    await analytics.restore()
    try:
        yield Rig(market, analytics, clock, recorder)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await store.close()


async def test_a_crossover_flips_the_signal_once_and_a_restart_restores_it() -> None:
    store = MemoryStore()
    async with rig(store, T0) as r:
        for minute in range(19):
            await r.trade(f"t{minute}", minute, 1000 + minute)
        first = r.analytics.snapshot("MEME", MINUTE)
        assert first is not None
        assert first.signal is Signal.NEUTRAL
        await r.trade("t19", 19, 1019)
        snapshot = r.analytics.snapshot("MEME", MINUTE)
        assert snapshot is not None
        assert snapshot.signal is Signal.BUY  # 10.19 above the average of 10.00..10.19
        assert snapshot.sma == 10_095_000  # 10.095 in 10**-4 ticks
        await r.trade("t20", 20, 900)  # a dump below the average
        flips = [
            (c.snapshot.interval.name, c.previous, c.snapshot.signal) for c in r.recorder.signals
        ]
        assert ("1m", Signal.BUY, Signal.SELL) in flips
        assert flips.count(("1m", Signal.BUY, Signal.SELL)) == 1
        assert ("MEME", MINUTE) in r.recorder.snapshots
        before = (r.analytics.ticker("MEME"), r.analytics.snapshot("MEME", MINUTE))
        now = r.clock.now_ms()
    async with rig(store, now) as again:
        assert (again.analytics.ticker("MEME"), again.analytics.snapshot("MEME", MINUTE)) == before
        assert before[0] is not None
        assert (before[0].open, before[0].price, before[0].trades) == (1000, 900, 21)


async def test_a_late_trade_republishes_the_indicator_values_after_it() -> None:
    store = MemoryStore()
    async with rig(store, T0) as r:
        for minute in range(4):
            await r.trade(f"t{minute}", minute, 1000 + 10 * minute)
        key = StreamKey("MEME", MINUTE, (Sma(2),))
        series = await r.analytics.acquire(key)
        assert [p.values for p in series.points()] == [
            (None,),
            (10_050_000,),
            (10_150_000,),
            (10_250_000,),
        ]
        # A trade late into minute 1 (still within MAX_TRADE_AGE) becomes its close.
        await r.trade("late", 1, 1110, second=30)
        stream, _, points = r.recorder.points[-1]
        assert stream == key
        assert [(p.candle.open_time - T0) // MINUTE.ms for p in points] == [1, 2]
        assert [p.values for p in points] == [(10_550_000,), (10_650_000,)]
        assert series.points()[3].values == (10_250_000,)
        r.analytics.release(key)
        await r.trade("t9", 4, 1000)
        assert r.recorder.points[-1][2] == points  # released: nothing new reported
