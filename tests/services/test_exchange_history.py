"""The history projector against the real SQLite history store."""

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from memetrade.adapters.storage.history_sqlite import SqliteHistoryStore
from memetrade.domain.exchange.events import (
    BalanceUpdate,
    BookLevelChange,
    Event,
    Fill,
    OrderStatus,
    OrderUpdate,
)
from memetrade.domain.exchange.history import FillRecord, OrderRecord
from memetrade.ports import StorageError
from memetrade.services.exchange_history import HistoryProjector

pytestmark = pytest.mark.anyio

T0 = 1_700_000_000_000


def update(order_id: int, status: OrderStatus, seq: int, filled: int = 0) -> OrderUpdate:
    return OrderUpdate(
        order_id=order_id, user_id=1, symbol="PEPE", side="buy", type="limit", status=status,
        price=100, stop_price=None, quantity=10, filled=filled, remaining=10 - filled,
        cum_quote=100 * filled, cum_fee=filled, reason=None, client_order_id=None, ts=T0 + seq,
    )  # fmt: skip


def trade(trade_id: int, taker_order_id: int, seq: int) -> Fill:
    return Fill(
        trade_id=trade_id, symbol="PEPE", price=100, quantity=1, quote_amount=100,
        taker_side="buy", maker_order_id=999, taker_order_id=taker_order_id, maker_user_id=2,
        taker_user_id=1, maker_fee=0, taker_fee=1, fee_asset="USDT", ts=T0 + seq,
    )  # fmt: skip


def entry(seq: int) -> list[Event]:
    """The events of journal entry ``seq``: order ``seq`` placed and filled 1 lot (a fill),
    with the balance and book events the projector has no use for."""
    return [
        update(seq, "partially_filled", seq, filled=1),
        trade(seq, seq, seq),
        BalanceUpdate(user_id=1, asset="USDT", available=5, locked=0, ts=T0 + seq),
        BookLevelChange(symbol="PEPE", side="ask", price=100, quantity=0, update_id=seq, ts=T0),
    ]


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqliteHistoryStore]:
    opened = SqliteHistoryStore(tmp_path / "memetrade.db", busy_timeout_ms=20)
    await opened.open()
    try:
        yield opened
    finally:
        await opened.close()


async def running(projector: HistoryProjector) -> asyncio.Task[None]:
    task = asyncio.create_task(projector.run())
    await asyncio.sleep(0)
    return task


async def stop(task: asyncio.Task[None]) -> None:
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)


async def snapshot(
    store: SqliteHistoryStore,
) -> tuple[int, list[OrderRecord], list[FillRecord]]:
    return (
        await store.checkpoint(),
        await store.orders(1, limit=10_000),
        await store.fills(1, limit=10_000),
    )


async def test_entries_share_transactions_and_flush_waits_for_all(
    store: SqliteHistoryStore,
) -> None:
    projector = HistoryProjector(store)
    task = await running(projector)
    try:
        for seq in range(1, 501):
            await projector.on_events(seq, entry(seq))
            if seq % 50 == 0:
                await asyncio.sleep(0)  # the engine's loop yields now and then
        await projector.flush()
        assert await store.checkpoint() == 500
        assert len(await store.orders(1, limit=1000)) == 500
        assert len(await store.fills(1, limit=1000)) == 500
        assert len(await store.fills(2, limit=1000)) == 500  # the maker's side of each
        assert 1 <= projector.commits < 50
    finally:
        await stop(task)


async def test_an_order_updated_within_a_batch_is_stored_as_its_last_state(
    store: SqliteHistoryStore,
) -> None:
    projector = HistoryProjector(store)
    await projector.on_events(1, [update(1, "new", 1)])
    await projector.on_events(2, [update(1, "partially_filled", 2, filled=4)])
    await projector.on_events(3, [update(1, "filled", 3, filled=10)])
    task = await running(projector)
    try:
        await projector.flush()
    finally:
        await stop(task)
    assert projector.commits == 1
    stored = await store.order(1, 1)
    assert stored is not None
    assert (stored.status, stored.filled, stored.created_at, stored.updated_at) == (
        "filled",
        10,
        T0 + 1,
        T0 + 3,
    )


def evolving(seq: int) -> list[Event]:
    """Entry ``seq`` of a journal where orders 1-10 fill a lot each in turn, ending filled."""
    order_id, filled = (seq - 1) % 10 + 1, (seq - 1) // 10 + 1
    status: OrderStatus = "filled" if filled == 10 else "partially_filled"
    return [update(order_id, status, seq, filled=filled), trade(seq, order_id, seq)]


async def test_feeding_the_same_entries_again_changes_nothing(store: SqliteHistoryStore) -> None:
    first = HistoryProjector(store)
    task = await running(first)
    for seq in range(1, 101):
        await first.on_events(seq, evolving(seq))
    await first.flush()
    await stop(task)
    before = await snapshot(store)
    assert [o.status for o in before[1]] == ["filled"] * 10

    # A restart whose start-up code does not ask for the checkpoint feeds everything again,
    # one commit per entry here: each carries an order's state older than the stored one, and
    # the history never goes back in time, not even halfway through.
    blind = HistoryProjector(store)
    task = await running(blind)
    for seq in range(1, 101):
        await blind.on_events(seq, evolving(seq))
        await blind.flush()
        assert await snapshot(store) == before
    await stop(task)
    assert blind.commits == 100

    # One that asks skips what is stored and writes nothing of it.
    resumed = HistoryProjector(store)
    assert await resumed.checkpoint() == 100
    task = await running(resumed)
    for seq in range(1, 102):
        await resumed.on_events(seq, evolving(seq))
    await resumed.flush()
    await stop(task)
    assert resumed.commits == 1
    assert await store.checkpoint() == 101
    assert len(await store.fills(1, limit=1000)) == 101


async def test_an_unreachable_store_is_retried_and_pushes_back_on_the_feed(
    store: SqliteHistoryStore, tmp_path: Path
) -> None:
    projector = HistoryProjector(store, max_pending_events=10)
    projector.RETRY_FIRST_S = projector.RETRY_MAX_S = 0.01
    # Another process holds the file's write lock for longer than the store waits for it.
    other = sqlite3.connect(tmp_path / "memetrade.db", isolation_level=None)
    other.execute("BEGIN IMMEDIATE")
    task = await running(projector)
    try:
        for seq in range(1, 6):
            await projector.on_events(seq, entry(seq))  # 2 history events each: 10 pending
        blocked = asyncio.create_task(projector.on_events(6, entry(6)))
        for _ in range(500):
            if projector.retries >= 3:
                break
            await asyncio.sleep(0.01)
        assert not blocked.done()  # the buffer is full: the feed waits for room
        other.execute("COMMIT")
        await blocked
        await projector.flush()
        assert await store.checkpoint() == 6
        assert len(await store.fills(1, limit=100)) == 6
    finally:
        other.close()
        await stop(task)


async def test_a_failed_write_stops_the_projector(store: SqliteHistoryStore) -> None:
    projector = HistoryProjector(store)
    task = await running(projector)
    await projector.on_events(1, [update(1, "new", 1)])
    await projector.flush()
    await store.close()  # every write now fails for good, as a lost disk would make it
    await projector.on_events(2, [update(1, "canceled", 2)])
    with pytest.raises(StorageError, match="not open"):
        await projector.flush()
    with pytest.raises(StorageError, match="not open"):
        await task
    with pytest.raises(StorageError, match="not open"):
        await projector.on_events(3, [])


async def test_stopping_the_projector_commits_what_is_waiting(store: SqliteHistoryStore) -> None:
    projector = HistoryProjector(store)
    task = await running(projector)
    await projector.on_events(1, entry(1))
    await projector.on_events(2, [])  # no history events, yet its seq is checkpointed
    await stop(task)
    assert await store.checkpoint() == 2
    assert len(await store.fills(1)) == 1
    with pytest.raises(StorageError, match="shut down"):
        await projector.on_events(3, entry(3))
