"""Backfill and the live generator, run against the real in-memory store (``MemoryStore``)."""

import asyncio
import time

import pytest

from memetrade.domain.candles import Candle, CandleRules, CandleUpdate
from memetrade.domain.intervals import INTERVALS, Interval
from memetrade.domain.market_model import MarketModel
from memetrade.domain.symbols import PRESETS, SymbolSpec
from memetrade.domain.trades import Side, Trade
from memetrade.ports import StorageError
from memetrade.services.backfill import DEPTH, backfill
from memetrade.services.generator import MAX_CATCH_UP_MS, run_generator
from memetrade.testing import MemoryStore

SPECS = list(PRESETS.values())
NOW = 1_700_000_123_456  # Not aligned to anything: the current candles are partial.
HOUR_MS = 3_600_000


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


class Backfilled:
    def __init__(self, store: MemoryStore, models: list[MarketModel], written: int) -> None:
        self.store, self.models, self.written = store, models, written


@pytest.fixture(scope="module")
def backfilled() -> Backfilled:
    """One backfill of the four preset symbols, shared by the checks below (it takes seconds)."""

    async def go() -> Backfilled:
        store = MemoryStore()
        await store.open(SPECS)
        models = [MarketModel(spec, 42 + i) for i, spec in enumerate(SPECS)]
        started = time.perf_counter()
        written = await backfill(store, models, CandleRules(), NOW)
        elapsed = time.perf_counter() - started
        counts = {m.spec.name: len(await store.trade_keys_since(m.spec.name, 0)) for m in models}
        print(f"\nbackfill of {len(SPECS)} symbols: {written} trades in {elapsed:.2f} s; {counts}")
        return Backfilled(store, models, written)

    return asyncio.run(go())


def recompute(trades: list[Trade], interval: Interval) -> list[Candle]:
    """Non-empty candles straight from the trades: an independent, naive aggregation."""
    groups: dict[int, list[Trade]] = {}
    for trade in trades:
        groups.setdefault(interval.open_time(trade.ts), []).append(trade)
    out = []
    for t in sorted(groups):
        group = sorted(groups[t], key=lambda trade: (trade.ts, trade.id))
        first, last = group[0], group[-1]
        buys = [trade for trade in group if trade.side is Side.BUY]
        out.append(
            Candle(
                t,
                first.price,
                max(trade.price for trade in group),
                min(trade.price for trade in group),
                last.price,
                sum(trade.amount for trade in group),
                sum(trade.price * trade.amount for trade in group),
                len(group),
                (first.ts, first.id),
                (last.ts, last.id),
                sum(trade.amount for trade in buys),
                sum(trade.price * trade.amount for trade in buys),
            )
        )
    return out


async def all_trades(store: MemoryStore, symbol: str) -> list[Trade]:
    return list(reversed(await store.recent_trades(symbol, 10**9)))


# -- backfill -----------------------------------------------------------------------------------


@pytest.mark.anyio
async def test_every_interval_has_at_least_300_candles_of_depth(backfilled: Backfilled) -> None:
    store = backfilled.store
    for spec in SPECS:
        for interval in INTERVALS:
            stored = await store.latest_candles(spec.name, interval, 10**9)
            current = interval.open_time(NOW)
            # Materialised depth: every interval from the oldest stored candle to now.
            assert (current - stored[0].open_time) // interval.ms + 1 >= DEPTH
            # Real depth: non-empty candles among the last DEPTH intervals.
            recent = [c for c in stored if c.open_time > current - DEPTH * interval.ms]
            minimum = {"1s": DEPTH // 4, "1m": DEPTH * 8 // 10}.get(interval.name, DEPTH * 9 // 10)
            assert len(recent) >= minimum, (spec.name, interval.name, len(recent))
        hours = await store.latest_candles(spec.name, INTERVALS[-1], 10**9)
        assert len(hours) >= DEPTH
        assert all(c.trades > 0 for c in hours)


@pytest.mark.anyio
async def test_stored_candles_equal_a_recomputation_from_the_stored_trades(
    backfilled: Backfilled,
) -> None:
    store = backfilled.store
    for spec in SPECS:
        trades = await all_trades(store, spec.name)
        for interval in INTERVALS:
            stored = await store.candles(spec.name, interval, 0, NOW, 10**9)
            assert stored == recompute(trades, interval), (spec.name, interval.name)


@pytest.mark.anyio
async def test_trade_counts_prices_and_the_last_trade_close_to_now(backfilled: Backfilled) -> None:
    store = backfilled.store
    assert backfilled.written == await store.trade_count()
    for spec in SPECS:
        trades = await all_trades(store, spec.name)
        assert 30_000 <= len(trades) <= 60_000
        assert all(t.price >= 1 and t.amount >= 1 for t in trades)
        assert {t.side for t in trades} == {Side.BUY, Side.SELL}
        assert trades[0].ts >= NOW - (DEPTH + 6) * HOUR_MS
        assert NOW - 1_000 <= trades[-1].ts <= NOW
        # Denser towards now: the last ten minutes hold thousands, an old hour dozens.
        last_10_min = sum(1 for t in trades if t.ts > NOW - 600_000)
        old_hour = sum(1 for t in trades if NOW - 200 * HOUR_MS <= t.ts < NOW - 199 * HOUR_MS)
        assert last_10_min > 600
        assert 5 < old_hour < 500


@pytest.mark.anyio
async def test_backfill_leaves_symbols_with_history_alone() -> None:
    store = MemoryStore()
    doge, pepe = PRESETS["DOGE"], PRESETS["PEPE"]
    await store.open([doge, pepe])
    existing = Trade("t-1", "DOGE", 123_400, 100, Side.BUY, NOW - 5_000)
    await store.write([existing], [])
    written = await backfill(
        store, [MarketModel(doge, 1), MarketModel(pepe, 1)], CandleRules(), NOW
    )
    assert await store.recent_trades("DOGE", 10) == [existing]
    assert written == await store.trade_count() - 1 > 0


@pytest.mark.anyio
async def test_live_generator_continues_the_backfilled_path(backfilled: Backfilled) -> None:
    store = backfilled.store
    last = {spec.name: (await store.recent_trades(spec.name, 1))[0] for spec in SPECS}
    clock = LoopClock(NOW)
    batches: list[list[Trade]] = []
    enough = asyncio.Event()

    async def sink(trades: list[Trade]) -> None:
        batches.append(trades)
        if sum(map(len, batches)) >= 200:
            enough.set()

    task = asyncio.create_task(run_generator(backfilled.models, 10, clock, sink))
    await asyncio.wait_for(enough.wait(), 10)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    calls = len(batches)
    await asyncio.sleep(0.05)
    assert len(batches) == calls  # Cancelled means stopped.

    live = [trade for batch in batches for trade in batch]
    assert all(NOW <= t.ts < clock.now_ms() for t in live)
    for batch in batches:
        assert batch
        assert [t.ts for t in batch] == sorted(t.ts for t in batch)
    for spec in SPECS:
        mine = [t for t in live if t.symbol == spec.name]
        assert mine
        # The first live price picks up where the backfill stopped, not at the reference.
        drift = mine[0].price / last[spec.name].price
        assert 0.98 < drift < 1.02, spec.name
        assert mine[0].id > last[spec.name].id


@pytest.mark.anyio
async def test_generator_averages_about_one_trade_per_symbol_per_tick() -> None:
    specs = [PRESETS["DOGE"], PRESETS["PEPE"]]
    models = [MarketModel(spec, 3) for spec in specs]
    clock = LoopClock(NOW)
    trades: list[Trade] = []

    async def sink(batch: list[Trade]) -> None:
        trades.extend(batch)

    task = asyncio.create_task(run_generator(models, 5, clock, sink, trades_per_tick=1.0))
    await asyncio.sleep(1.0)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    ticks = (clock.now_ms() - NOW) / 5
    per_symbol_per_tick = len(trades) / len(specs) / ticks
    # Bursty and regime-dependent, so only roughly one.
    assert 0.2 < per_symbol_per_tick < 5


@pytest.mark.anyio
async def test_generator_survives_clock_jumps_and_models_ahead_of_the_clock() -> None:
    doge = MarketModel(PRESETS["DOGE"], 1)
    ahead = MarketModel(PRESETS["PEPE"], 1)
    ahead.trades_between(NOW, NOW + 30_000, 1.0)  # Stands 30 s ahead of the clock.
    clock = SetClock(NOW)
    trades: list[Trade] = []

    async def sink(batch: list[Trade]) -> None:
        trades.extend(batch)

    task = asyncio.create_task(run_generator([doge, ahead], 5, clock, sink, trades_per_tick=3))
    for now in (NOW + 1_000, NOW + HOUR_MS, NOW + HOUR_MS - 60_000, NOW + HOUR_MS + 1_000):
        await asyncio.sleep(0.05)
        clock.now = now
    await asyncio.sleep(0.05)
    assert not task.done()
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await task
    # After the jump forward, only the last MAX_CATCH_UP_MS were filled in; the step back
    # produced nothing until the clock passed the last window again.
    assert {t.ts for t in trades} <= set(range(NOW, NOW + 1_000)) | set(
        range(NOW + HOUR_MS - MAX_CATCH_UP_MS, NOW + HOUR_MS + 1_000)
    )
    assert all(t.ts >= NOW + 30_000 for t in trades if t.symbol == "PEPE")
    assert {t.symbol for t in trades} == {"DOGE", "PEPE"}
    ids = [t.id for t in trades if t.symbol == "DOGE"]
    assert ids == sorted(ids)


@pytest.mark.anyio
async def test_generator_refuses_a_bad_interval() -> None:
    async def sink(batch: list[Trade]) -> None:
        raise AssertionError("not reached")

    with pytest.raises(ValueError, match="interval"):
        await run_generator([], 0, LoopClock(NOW), sink)


class SetClock:
    """A clock the test sets by hand."""

    def __init__(self, now: int) -> None:
        self.now = now

    def now_ms(self) -> int:
        return self.now


class LoopClock:
    """A real clock that starts at ``start`` and runs with the event loop's time."""

    def __init__(self, start: int) -> None:
        loop = asyncio.get_running_loop()
        self._start, self._t0, self._loop = start, loop.time(), loop

    def now_ms(self) -> int:
        return self._start + int((self._loop.time() - self._t0) * 1000)


# -- the in-memory store the backfill is tested against -----------------------------------------


def candle_update(symbol: str, interval: Interval, trade: Trade, count: int = 1) -> CandleUpdate:
    p = trade.price
    key = (trade.ts, trade.id)
    buy = trade.side is Side.BUY
    candle = Candle(
        interval.open_time(trade.ts), p, p, p, p, 1, p, count, key, key, int(buy), p if buy else 0
    )
    return CandleUpdate(symbol, interval, candle, False, 1)


@pytest.mark.anyio
async def test_memory_store_inserts_trades_once_and_upserts_non_empty_candles() -> None:
    store = MemoryStore()
    await store.open([PRESETS["DOGE"]])
    minute = INTERVALS[1]
    a = Trade("a", "DOGE", 100, 1, Side.BUY, NOW)
    b = Trade("b", "DOGE", 101, 1, Side.SELL, NOW - 120_000)
    await store.write([a, b], [candle_update("DOGE", minute, a)])
    await store.write([Trade("a", "DOGE", 999, 9, Side.SELL, NOW)], [])
    empty = CandleUpdate(
        "DOGE",
        minute,
        Candle(minute.open_time(NOW) + 60_000, 1, 1, 1, 1, 0, 0, 0, None, None, 0, 0),
        False,
        2,
    )
    await store.write([], [candle_update("DOGE", minute, a, count=2), empty])

    assert await store.trade_count() == 2
    assert await store.existing_ids("DOGE", ["a", "x", "b"]) == {"a", "b"}
    assert await store.recent_trades("DOGE", 5) == [a, b]
    assert await store.trade_keys_since("DOGE", NOW - 60_000) == [(NOW, "a")]
    candles = await store.latest_candles("DOGE", minute, 10)
    assert [c.trades for c in candles] == [2]  # Upserted; the empty one was not stored.
    assert await store.last_candle_before("DOGE", minute, candles[0].open_time) is None
    assert await store.last_candle_before("DOGE", minute, NOW + 1) == candles[0]
    assert await store.candles("DOGE", minute, 0, NOW, 0) == []


@pytest.mark.anyio
async def test_memory_store_checks_symbol_steps_and_refuses_work_while_closed() -> None:
    store = MemoryStore()
    with pytest.raises(StorageError, match="not open"):
        await store.trade_count()
    await store.open([PRESETS["DOGE"]])
    await store.write([Trade("a", "DOGE", 100, 1, Side.BUY, NOW)], [])
    await store.close()
    with pytest.raises(StorageError, match="would change meaning"):
        await store.open([SymbolSpec("DOGE", 8, 2)])
    await store.open([PRESETS["DOGE"]])  # Reopened: the data is still there.
    assert await store.trade_count() == 1
