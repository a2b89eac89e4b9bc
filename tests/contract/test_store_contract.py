"""The ``TradeStore`` contract: every backend in ``conftest.STORE_BACKENDS`` must pass all of it."""

import os
import signal
import subprocess
import sys
import textwrap
import threading

import anyio
import pytest
from store_backends import SYMBOLS, StoreBackend

from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.domain.intervals import Interval, parse_interval
from memetrade.domain.symbols import PRESETS, SymbolSpec
from memetrade.domain.trades import Side, Trade
from memetrade.ports import StorageError, TradeStore

pytestmark = pytest.mark.anyio

SECOND = parse_interval("1s")
MINUTE = parse_interval("1m")
T0 = 1_700_000_040_000  # A minute boundary, epoch ms.
BIG = 2**63 + 12_345  # Does not fit a signed 64-bit integer.


def trade(
    trade_id: str,
    ts: int,
    *,
    price: int = 100,
    amount: int = 1,
    side: Side = Side.BUY,
    symbol: str = "PEPE",
) -> Trade:
    return Trade(trade_id, symbol, price, amount, side, ts)


def candle(
    open_time: int,
    *,
    close: int = 110,
    volume: int = 10,
    quote: int = 1_000,
    buy_volume: int = 4,
    buy_quote: int = 380,
) -> Candle:
    return Candle(
        open_time=open_time,
        open=100,
        high=max(120, close),
        low=min(90, close),
        close=close,
        volume=volume,
        quote_volume=quote,
        trades=2,
        first=(open_time, "a"),
        last=(open_time + 1, "b"),
        buy_volume=buy_volume,
        buy_quote_volume=buy_quote,
    )


def update(c: Candle, interval: Interval = MINUTE, symbol: str = "PEPE") -> CandleUpdate:
    return CandleUpdate(symbol, interval, c, closed=False, seq=0)


def minutes(*indexes: int) -> list[Candle]:
    return [candle(T0 + i * 60_000, close=100 + i) for i in indexes]


async def test_trades_and_candles_roundtrip_exactly_with_huge_volumes(store: TradeStore) -> None:
    big_trade = trade("t1", T0 + 5, price=2**62 - 1, amount=2**62 - 1, side=Side.SELL)
    huge = candle(
        T0, volume=BIG, quote=(2**62 - 1) ** 2, buy_volume=BIG - 1, buy_quote=(2**62 - 2) ** 2
    )
    await store.write([big_trade], [update(huge)])

    assert await store.recent_trades("PEPE", 10) == [big_trade]
    assert await store.candles("PEPE", MINUTE, T0, T0, 10) == [huge]
    assert await store.latest_candles("PEPE", MINUTE, 1) == [huge]


async def test_duplicate_trade_ids_are_stored_once(store: TradeStore) -> None:
    first = trade("dup", T0, price=100)
    await store.write([first, trade("dup", T0, price=100)], [])
    # A replay with different fields does not overwrite: the first stored fact wins.
    await store.write([trade("dup", T0 + 1, price=999), trade("other", T0 + 2)], [])
    # The same id on another symbol is another trade.
    await store.write([trade("dup", T0, symbol="DOGE")], [])

    assert await store.trade_count() == 3
    assert await store.recent_trades("PEPE", 10) == [trade("other", T0 + 2), first]


async def test_candle_upsert_replaces_the_stored_state(store: TradeStore) -> None:
    await store.write([], [update(candle(T0, close=110, volume=10))])
    newer = candle(T0, close=130, volume=BIG, buy_volume=BIG // 2, buy_quote=BIG * 3)
    await store.write([], [update(newer)])
    assert await store.candles("PEPE", MINUTE, T0, T0, 10) == [newer]
    # Taker buy volumes are part of the stored state: an update that changes only them lands.
    sells_only = candle(T0, close=130, volume=BIG, buy_volume=0, buy_quote=0)
    await store.write([], [update(sells_only)])
    assert await store.candles("PEPE", MINUTE, T0, T0, 10) == [sells_only]

    # Several states of one candle in one batch: the last one is stored.
    states = [candle(T0, close=140 + i, volume=20 + i) for i in range(3)]
    await store.write([], [update(state) for state in states])
    assert await store.candles("PEPE", MINUTE, T0, T0, 10) == [states[-1]]


async def test_candle_ranges_are_inclusive_oldest_first_and_keep_the_oldest(
    store: TradeStore,
) -> None:
    stored = minutes(0, 1, 2, 3, 5)
    # Written out of order, plus the same times on another interval and another symbol.
    others = [update(c, SECOND) for c in stored] + [update(c, symbol="DOGE") for c in stored]
    await store.write([], [update(c) for c in reversed(stored)] + others)

    def at(i: int) -> int:
        return T0 + i * 60_000

    assert await store.candles("PEPE", MINUTE, at(0), at(5), 100) == stored
    assert await store.candles("PEPE", MINUTE, at(1), at(3), 100) == stored[1:4]
    assert await store.candles("PEPE", MINUTE, at(1) + 1, at(5) - 1, 100) == stored[2:4]
    assert await store.candles("PEPE", MINUTE, at(0), at(5), 2) == stored[:2]
    assert await store.candles("PEPE", MINUTE, at(6), at(9), 100) == []
    assert await store.candles("PEPE", MINUTE, at(0), at(5), 0) == []
    assert await store.candles("SHIB", MINUTE, at(0), at(5), 100) == []


async def test_latest_candles_are_the_newest_ones_oldest_first(store: TradeStore) -> None:
    stored = minutes(0, 1, 2, 7)
    await store.write([], [update(c) for c in stored] + [update(candle(T0 + 10**6), SECOND)])

    assert await store.latest_candles("PEPE", MINUTE, 2) == stored[2:]
    assert await store.latest_candles("PEPE", MINUTE, 100) == stored
    assert await store.latest_candles("PEPE", MINUTE, 0) == []
    assert await store.latest_candles("DOGE", MINUTE, 5) == []


async def test_last_candle_before_is_the_newest_strictly_earlier_one(store: TradeStore) -> None:
    stored = minutes(0, 2, 3)
    await store.write([], [update(c) for c in stored])

    assert await store.last_candle_before("PEPE", MINUTE, T0) is None
    assert await store.last_candle_before("PEPE", MINUTE, T0 + 1) == stored[0]
    assert await store.last_candle_before("PEPE", MINUTE, T0 + 2 * 60_000) == stored[0]
    assert await store.last_candle_before("PEPE", MINUTE, T0 + 2 * 60_000 + 1) == stored[1]
    assert await store.last_candle_before("PEPE", MINUTE, T0 + 10**9) == stored[2]
    assert await store.last_candle_before("PEPE", SECOND, T0 + 10**9) is None


async def test_existing_ids_answers_for_thousands_of_ids(store: TradeStore) -> None:
    await store.write([trade(f"id-{i}", T0 + i) for i in range(0, 5_000, 2)], [])
    await store.write([trade("id-1", T0, symbol="DOGE")], [])  # Another symbol's id.

    asked = [f"id-{i}" for i in range(5_000)] + ["id-0", "id-2", "unknown"]
    expected = {f"id-{i}" for i in range(0, 5_000, 2)}
    assert await store.existing_ids("PEPE", asked) == expected
    assert await store.existing_ids("PEPE", []) == set()
    assert await store.existing_ids("SHIB", asked) == set()


async def test_trade_keys_since_are_ordered_by_time_then_id(store: TradeStore) -> None:
    await store.write(
        [
            trade("b", T0 + 1),
            trade("a", T0 + 1),
            trade("c", T0),
            trade("z", T0 - 1),
            trade("d", T0 + 2, symbol="DOGE"),
        ],
        [],
    )
    assert await store.trade_keys_since("PEPE", T0) == [(T0, "c"), (T0 + 1, "a"), (T0 + 1, "b")]
    assert await store.trade_keys_since("PEPE", T0 + 2) == []


async def test_recent_trades_are_newest_first_with_their_sides(store: TradeStore) -> None:
    trades = [
        trade("1", T0, side=Side.BUY),
        trade("2", T0 + 5, side=Side.SELL),
        trade("3", T0 + 5, side=Side.BUY),
        trade("4", T0 + 9, side=Side.SELL, price=7, amount=3),
    ]
    await store.write(trades[2:], [])
    await store.write(trades[:2], [])  # Late trades: order is by (ts, id), not arrival.

    assert await store.recent_trades("PEPE", 10) == trades[::-1]
    assert await store.recent_trades("PEPE", 2) == [trades[3], trades[2]]
    assert await store.recent_trades("PEPE", 0) == []
    assert await store.recent_trades("DOGE", 10) == []


async def test_trade_count_counts_every_symbol(store: TradeStore) -> None:
    assert await store.trade_count() == 0
    await store.write([trade("1", T0), trade("2", T0, symbol="DOGE")], [])
    assert await store.trade_count() == 2


async def test_writes_of_nothing_are_accepted(store: TradeStore) -> None:
    await store.write([], [])
    await store.write((), ())
    assert await store.trade_count() == 0


async def test_empty_candles_are_not_stored(store: TradeStore) -> None:
    empty = Candle(T0, 100, 100, 100, 100, 0, 0, 0, None, None, 0, 0)
    full = candle(T0 + 60_000)
    await store.write([], [update(empty), update(full)])
    assert await store.candles("PEPE", MINUTE, T0, T0 + 60_000, 10) == [full]


async def test_ping_answers_while_open(store: TradeStore) -> None:
    await store.ping()


async def test_data_survives_close_and_reopen(store_backend: StoreBackend) -> None:
    first = store_backend.make()
    await first.open(SYMBOLS)
    trades = [trade("1", T0), trade("2", T0 + 1, symbol="DOGE", side=Side.SELL)]
    candles = [candle(T0, volume=BIG)]
    await first.write(trades, [update(c) for c in candles])
    await first.close()
    await first.close()  # Closing twice is harmless.

    second = store_backend.make()
    await second.open(SYMBOLS)
    try:
        assert await second.trade_count() == 2
        assert await second.recent_trades("DOGE", 5) == [trades[1]]
        assert await second.candles("PEPE", MINUTE, T0, T0, 5) == candles
        assert await second.existing_ids("PEPE", ["1", "2"]) == {"1"}
    finally:
        await second.close()


async def test_a_store_refuses_calls_once_closed(store_backend: StoreBackend) -> None:
    closed = store_backend.make()
    await closed.close()  # Never opened: nothing to do.
    await closed.open(SYMBOLS)
    await closed.close()
    with pytest.raises(StorageError):
        await closed.write([trade("1", T0)], [])
    with pytest.raises(StorageError):
        await closed.trade_count()
    with pytest.raises(StorageError):
        await closed.ping()


async def test_changed_symbol_steps_are_refused(store_backend: StoreBackend) -> None:
    first = store_backend.make()
    await first.open(SYMBOLS)
    await first.close()

    doge = PRESETS["DOGE"]
    finer = SymbolSpec("DOGE", doge.price_decimals + 2, doge.amount_decimals)
    refused = store_backend.make()
    with pytest.raises(StorageError, match="DOGE") as raised:
        await refused.open([PRESETS["PEPE"], finer])
    assert "\n" not in str(raised.value)

    # The refused open changed nothing and left nothing open; new symbols may join later.
    again = store_backend.make()
    await again.open([*SYMBOLS, SymbolSpec("WIF", 4, 1)])
    await again.close()
    with pytest.raises(StorageError, match="WIF"):
        await again.open([SymbolSpec("WIF", 4, 2)])


async def test_stores_opening_a_fresh_database_at_once_all_succeed(
    store_backend: StoreBackend,
) -> None:
    # As when several processes start together: the schema is created once, the others wait.
    stores = [store_backend.make() for _ in range(4)]
    try:
        async with anyio.create_task_group() as tasks:
            for opening in stores:
                tasks.start_soon(opening.open, SYMBOLS)
        await stores[0].write([trade("1", T0)], [])
        for other in stores[1:]:
            assert await other.existing_ids("PEPE", ["1"]) == {"1"}
    finally:
        for opened in stores:
            await opened.close()


async def test_reads_during_writes_see_whole_batches(store: TradeStore) -> None:
    batch, batches = 2_000, 20
    seen: list[int] = []
    writing_done = anyio.Event()

    async def writer() -> None:
        for b in range(batches):
            await store.write([trade(f"{b}-{i}", T0 + b * batch + i) for i in range(batch)], [])
        writing_done.set()

    async def reader() -> None:
        while not writing_done.is_set():
            seen.append(await store.trade_count())
            recent = await store.recent_trades("PEPE", 1)
            assert len(recent) <= 1

    with anyio.fail_after(60):
        async with anyio.create_task_group() as tasks:
            tasks.start_soon(writer)
            tasks.start_soon(reader)

    assert seen, "no read completed while writing"
    assert all(count % batch == 0 for count in seen), "a read saw part of a batch"
    assert seen == sorted(seen)
    # Reads were answered between writes, not only before the first or after the last.
    assert any(0 < count < batch * batches for count in seen)


_CHILD = """
import asyncio
from memetrade.domain.symbols import PRESETS
from memetrade.domain.trades import Side, Trade

{setup}

async def main() -> None:
    store = make_store()
    await store.open([PRESETS["PEPE"]])
    batch = 0
    while True:
        trades = [
            Trade(f"{{batch}}-{{i}}", "PEPE", 100 + i, 1, Side.BUY, 1_000_000 * batch + i)
            for i in range({size})
        ]
        await store.write(trades, [])
        print("ok", batch, flush=True)
        batch += 1

asyncio.run(main())
"""


def _write_until_killed(code: str, acks: int) -> int:
    """Run ``code`` in a child Python, SIGKILL it after ``acks`` "ok" lines; return the count."""
    with subprocess.Popen(
        [sys.executable, "-c", code],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    ) as child:
        watchdog = threading.Timer(60, child.kill)  # A hung child must not hang the suite.
        watchdog.start()
        try:
            assert child.stdout is not None
            acked = 0
            while acked < acks:
                line = child.stdout.readline()
                assert line.startswith("ok"), f"child said {line!r}; stderr: {child.stderr}"
                acked += 1
            os.kill(child.pid, signal.SIGKILL)
            child.wait()
        finally:
            watchdog.cancel()
            if child.poll() is None:
                child.kill()
    assert child.returncode == -signal.SIGKILL
    return acked


@pytest.mark.skipif(sys.platform == "win32", reason="SIGKILL is POSIX")
async def test_an_acknowledged_write_survives_kill_9(store_backend: StoreBackend) -> None:
    size = 1_000
    code = _CHILD.format(setup=store_backend.child_setup, size=size)
    # The child keeps writing after its acknowledgements, so the kill lands mid-write.
    acked = await anyio.to_thread.run_sync(_write_until_killed, textwrap.dedent(code), 5)

    reopened = store_backend.make()
    await reopened.open([PRESETS["PEPE"]])
    try:
        for batch in range(acked):
            ids = [f"{batch}-{i}" for i in range(size)]
            assert await reopened.existing_ids("PEPE", ids) == set(ids), f"batch {batch} lost"
        count = await reopened.trade_count()
        assert count >= acked * size
        assert count % size == 0, "a batch was stored in part"
    finally:
        await reopened.close()
