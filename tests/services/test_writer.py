"""Group commit against the real SQLite store."""

import asyncio
from pathlib import Path

import pytest

from memetrade.adapters.storage.sqlite import SqliteStore
from memetrade.domain.symbols import PRESETS
from memetrade.domain.trades import Side, Trade
from memetrade.ports import StorageError
from memetrade.services.writer import GroupCommitWriter

pytestmark = pytest.mark.anyio
PEPE = PRESETS["PEPE"]


def trades(prefix: str, n: int) -> list[Trade]:
    return [
        Trade(f"{prefix}-{i}", "PEPE", 1000 + i, 5, Side.BUY, 1_700_000_000_000 + i)
        for i in range(n)
    ]


async def test_concurrent_submissions_share_commits_and_all_are_stored(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    await store.open([PEPE])
    writer = GroupCommitWriter(store)
    runner = asyncio.create_task(writer.run())
    try:
        await asyncio.gather(*(writer.submit(trades(f"s{i}", 50), []) for i in range(40)))
        assert await store.trade_count() == 2000
        assert writer.commits < 40  # submissions that arrived together shared a transaction
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await store.close()


async def test_cancelling_the_writer_commits_what_is_waiting(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    await store.open([PEPE])
    writer = GroupCommitWriter(store)
    runner = asyncio.create_task(writer.run())
    pending = asyncio.create_task(writer.submit(trades("late", 10), []))
    await asyncio.sleep(0)
    runner.cancel()
    await asyncio.gather(runner, return_exceptions=True)
    await pending
    assert await store.trade_count() == 10
    with pytest.raises(StorageError, match="shut down"):
        await writer.submit(trades("after", 1), [])
    await store.close()


async def test_a_failed_write_fails_its_submitters_and_stops_the_writer(tmp_path: Path) -> None:
    store = SqliteStore(tmp_path / "db.sqlite")
    await store.open([PEPE])
    await store.close()  # every write now fails, as a lost disk would make it
    writer = GroupCommitWriter(store)
    runner = asyncio.create_task(writer.run())
    with pytest.raises(StorageError):
        await writer.submit(trades("x", 3), [])
    with pytest.raises(StorageError):
        await runner
