"""Group commit: many concurrent writers, one transaction per batch, acknowledged after it.

Every submission waits until the transaction holding it has committed, so an acknowledged
trade is durable. While one transaction runs, new submissions gather into the next one; under
load batches grow by themselves and the cost of a commit is shared by everything in it.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from memetrade.domain.candles import CandleUpdate
from memetrade.domain.trades import Trade
from memetrade.ports import StorageError, TradeStore

__all__ = ["GroupCommitWriter"]

log = logging.getLogger(__name__)


@dataclass(slots=True)
class _Batch:
    trades: list[Trade] = field(default_factory=list)
    # Keyed by candle identity: a later state of the same candle replaces an earlier one.
    candles: dict[tuple[str, str, int], CandleUpdate] = field(default_factory=dict)
    done: asyncio.Future[None] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class GroupCommitWriter:
    """Batches writes to a ``TradeStore``.

    ``max_pending_trades`` bounds memory: when that many trades wait for a commit, ``submit``
    waits for room (backpressure to producers) instead of queueing without limit.
    """

    def __init__(self, store: TradeStore, max_pending_trades: int = 200_000) -> None:
        self._store = store
        self._max_pending = max_pending_trades
        self._next: _Batch | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Condition()
        self._pending = 0
        self._closed = False
        self.commits = 0

    async def submit(self, trades: Sequence[Trade], candles: Sequence[CandleUpdate]) -> None:
        """Return once ``trades`` and ``candles`` are durably stored; raise ``StorageError``
        if the transaction holding them failed."""
        if not trades and not candles:
            return
        if self._closed:
            raise StorageError("the writer is shut down")
        async with self._room:
            await self._room.wait_for(lambda: self._pending < self._max_pending)
            self._pending += len(trades)
        batch = self._next
        if batch is None:
            batch = self._next = _Batch()
        batch.trades.extend(trades)
        for update in candles:
            batch.candles[(update.symbol, update.interval.name, update.candle.open_time)] = update
        self._wake.set()
        await asyncio.shield(batch.done)

    async def run(self) -> None:
        """Commit batches until cancelled (then commit what is waiting first) or until a
        write fails (then raise ``StorageError``; later submissions fail too)."""
        try:
            while True:
                await self._wake.wait()
                await self._commit_next()
        finally:
            self._closed = True
            await asyncio.shield(self._commit_next())

    async def _commit_next(self) -> None:
        self._wake.clear()
        batch, self._next = self._next, None
        if batch is None:
            return
        try:
            await self._store.write(batch.trades, list(batch.candles.values()))
        except Exception as exc:
            log.exception("storage write of %d trades failed", len(batch.trades))
            error = exc if isinstance(exc, StorageError) else StorageError(str(exc))
            batch.done.set_exception(error)
            # Nobody may be waiting (all cancelled); retrieve so it is not logged as lost.
            batch.done.exception()
            # Memory now holds state that is not on disk: stop, so the owner shuts the
            # service down and a restart recovers from what storage has.
            if error is exc:
                raise
            raise error from exc
        else:
            self.commits += 1
            batch.done.set_result(None)
        finally:
            async with self._room:
                self._pending -= len(batch.trades)
                self._room.notify_all()
