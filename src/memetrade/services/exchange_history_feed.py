"""The exchange's history in a process: the store, its projector, and the listener that hands
the engine's events to the projector.

``ExchangeService`` calls its listeners synchronously (they must not block), while the
projector's ``on_events`` is a coroutine that may wait for room. ``HistoryFeed`` bridges the
two: it queues each entry and a task hands them over one at a time, in journal order. Its queue
is not bounded: it holds what the projector has not yet taken, and the projector bounds itself
(``max_pending_events``), so this queue only grows while the history store is unreachable,
by the commands the journal accepts meanwhile; the alternative, blocking the engine, would stop
trading because a derived view is behind.

Reads go through ``ExchangeHistory.synced``, which waits until every command answered so far is
in the store: a user who just placed an order finds it in their history.
"""

import asyncio
import contextlib
from collections import deque
from collections.abc import Callable, Sequence

from memetrade.domain.exchange.events import Event
from memetrade.ports import ExchangeHistoryStore, StorageError
from memetrade.services.exchange_history import HistoryProjector

__all__ = ["ExchangeHistory", "HistoryFeed"]


class HistoryFeed:
    """An exchange listener feeding a ``HistoryProjector``; ``run`` must be running."""

    def __init__(self, projector: HistoryProjector) -> None:
        self._projector = projector
        self._pending: deque[tuple[int, Sequence[Event]]] = deque()
        self._wake = asyncio.Event()
        self._idle = asyncio.Event()
        self._idle.set()

    def on_exchange_events(self, seq: int, events: Sequence[Event]) -> None:
        self._pending.append((seq, events))
        self._idle.clear()
        self._wake.set()

    async def flush(self) -> None:
        """Return once every entry handed over so far is stored."""
        await self._idle.wait()
        await self._projector.flush()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            while self._pending:
                seq, events = self._pending[0]
                await self._projector.on_events(seq, events)
                self._pending.popleft()
            self._idle.set()


class ExchangeHistory:
    """Owns the history store, the projector and the feed, and their tasks."""

    def __init__(self, store: ExchangeHistoryStore) -> None:
        self.store = store
        self.projector = HistoryProjector(store)
        self.feed = HistoryFeed(self.projector)
        self._tasks: list[asyncio.Task[None]] = []

    async def open(self) -> None:
        """Open the store and read its checkpoint, before the exchange replays its journal:
        the entries up to the checkpoint are then skipped. Raise ``StorageError``."""
        await self.store.open()
        try:
            await self.projector.checkpoint()
        except BaseException:
            await self.store.close()
            raise

    def start(self, watch: Callable[[asyncio.Task[None]], None]) -> None:
        """Start the projector and the feed; ``watch`` is called when one ends."""
        self._tasks = [
            asyncio.create_task(self.projector.run(), name="exchange-history"),
            asyncio.create_task(self.feed.run(), name="exchange-history-feed"),
        ]
        for task in self._tasks:
            task.add_done_callback(watch)

    async def synced(self) -> None:
        """Wait until every command answered so far is in the store; raise ``StorageError``
        when the history cannot be written (the caller answers 503)."""
        if any(task.done() for task in self._tasks):
            raise StorageError("the exchange history is not being written")
        await self.feed.flush()

    async def stop(self) -> None:
        """Store what the exchange handed over (call after the exchange stopped), then stop."""
        if self._tasks and not any(task.done() for task in self._tasks):
            # A stopped projector is fine here: start-up feeds the entries after its
            # checkpoint again.
            with contextlib.suppress(StorageError):
                await self.feed.flush()
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)

    async def close(self) -> None:
        await self.store.close()
