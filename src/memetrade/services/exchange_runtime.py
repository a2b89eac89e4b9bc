"""The exchange's life in a process: open its journal and snapshots, recover, run its tasks,
and shut down in the order that keeps every acknowledged command and matched trade.

Order at shutdown: stop taking commands and journal what is waiting (``ExchangeService.run``
ends), then hand the last fills to market data (``ExchangeTradeFeed.flush``), and only then
may the market-data writer commit and stop (the caller does that after ``stop``).
"""

import asyncio
from collections.abc import Callable

from memetrade.ports import CommandJournal, SnapshotStore
from memetrade.services.exchange import ExchangeService
from memetrade.services.exchange_feed import ExchangeTradeFeed

__all__ = ["ExchangeRuntime"]


class ExchangeRuntime:
    def __init__(
        self,
        service: ExchangeService,
        journal: CommandJournal,
        snapshots: SnapshotStore,
        feed: ExchangeTradeFeed,
    ) -> None:
        self.service = service
        self.feed = feed
        self._journal = journal
        self._snapshots = snapshots
        self._engine_task: asyncio.Task[None] | None = None
        self._feed_task: asyncio.Task[None] | None = None

    async def open(self) -> None:
        """Open the journal and snapshots and recover the engine; raise ``StorageError``."""
        await self._journal.open()
        try:
            await self._snapshots.open()
            await self.service.recover()
        except BaseException:
            await self.close()
            raise

    def start(self, watch: Callable[[asyncio.Task[None]], None]) -> None:
        """Start the engine's journal loop and the feed; ``watch`` is called when one ends."""
        self._engine_task = asyncio.create_task(self.service.run(), name="exchange")
        self._feed_task = asyncio.create_task(self.feed.run(), name="exchange-feed")
        self._engine_task.add_done_callback(watch)
        self._feed_task.add_done_callback(watch)

    async def stop(self) -> None:
        """Journal what is waiting, hand the last fills to market data, stop both tasks."""
        if self._engine_task is not None:
            self._engine_task.cancel()
            await asyncio.gather(self._engine_task, return_exceptions=True)
        if self._feed_task is not None:
            if not self._feed_task.done():
                await self.feed.flush()
            self._feed_task.cancel()
            await asyncio.gather(self._feed_task, return_exceptions=True)

    async def close(self) -> None:
        await self._snapshots.close()
        await self._journal.close()
