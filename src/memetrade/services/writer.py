"""Group commit: many concurrent writers, one transaction per batch, acknowledged after it.

Every submission waits until the transaction holding it has committed, so an acknowledged
trade is durable. While one transaction runs, new submissions gather into the next one; under
load batches grow by themselves and the cost of a commit is shared by everything in it.

A store that cannot be reached (``StorageUnavailable``: PostgreSQL restarting, a network cut)
is waited out: the same batch is retried with backoff until it commits, its submitters keep
waiting, and new submissions queue behind it up to ``max_pending_trades``. Retrying is safe
because a write is idempotent (trades are inserted by id, candles carry their whole state). Any
other ``StorageError`` means memory holds state the store refused: the writer stops.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field

from memetrade.domain.candles import CandleUpdate
from memetrade.domain.trades import Trade
from memetrade.ports import StorageError, StorageUnavailable, TradeStore
from memetrade.services.backoff import Backoff

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

    # Retry delays while the store is unreachable: doubling from the first to the last.
    RETRY_FIRST_S = 0.1
    RETRY_MAX_S = 2.0

    def __init__(self, store: TradeStore, max_pending_trades: int = 200_000) -> None:
        self._store = store
        self._max_pending = max_pending_trades
        self._next: _Batch | None = None
        self._wake = asyncio.Event()
        self._room = asyncio.Condition()
        self._pending = 0
        self._closed = False
        self.commits = 0
        self.retries = 0

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
        """Commit batches until cancelled (then try once to commit what is waiting) or until a
        write fails for good (then raise ``StorageError``; later submissions fail too)."""
        try:
            while True:
                await self._wake.wait()
                await self._commit_next(retry=True)
        finally:
            self._closed = True
            await asyncio.shield(self._commit_next(retry=False))

    async def _commit_next(self, *, retry: bool) -> None:
        self._wake.clear()
        batch, self._next = self._next, None
        if batch is None:
            return
        try:
            if retry:
                await self._write_until_reachable(batch)
            else:
                await self._store.write(batch.trades, list(batch.candles.values()))
        except asyncio.CancelledError:
            # Shut down while waiting for the store: these trades were never acknowledged.
            batch.done.set_exception(StorageUnavailable("shut down before the store came back"))
            batch.done.exception()
            raise
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

    async def _write_until_reachable(self, batch: _Batch) -> None:
        backoff = Backoff(self.RETRY_FIRST_S, self.RETRY_MAX_S)
        candles = list(batch.candles.values())
        while True:
            try:
                await self._store.write(batch.trades, candles)
            except StorageUnavailable as exc:
                self.retries += 1
                log.warning(
                    "storage unavailable, %d trades wait; retrying within %.1f s: %s",
                    len(batch.trades),
                    backoff.next_s,
                    exc,
                )
                await backoff.sleep()
            else:
                if backoff.retries:
                    log.warning("storage reachable again; %d trades stored", len(batch.trades))
                return
