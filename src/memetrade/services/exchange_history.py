"""The exchange's order and fill history: events projected into an ``ExchangeHistoryStore``.

The engine's events reach ``on_events`` once their command is durable in the journal, one
entry at a time and in journal order. Order updates and fills are buffered and written by
``run`` with group commit: while one transaction runs, the events that arrive gather into the
next, so under load a batch grows by itself and one commit carries many commands. Balance and
book events are not history and are dropped here.

Nothing here has to be durable when ``on_events`` returns: the journal is. Each transaction
stores the seq of the last entry it holds (the checkpoint) with its rows, so after a crash the
history is exactly what it was as of that entry, and start-up feeds ``on_events`` again from the
entry after ``checkpoint()``. The journal must therefore keep its entries from there on: the
owner awaits ``flush`` before it takes a snapshot that lets the journal drop older entries.
Writes are idempotent, so feeding an entry twice costs time but changes nothing.

A store that cannot be reached (``StorageUnavailable``) is waited out: the same batch is retried
with backoff, and events keep gathering behind it up to ``max_pending_events``, after which
``on_events`` waits for room (backpressure on the engine's output, which is bounded memory
rather than an unbounded queue). Any other ``StorageError`` stops the projector: ``run`` raises
it, and ``on_events`` and ``flush`` raise it from then on.
"""

import asyncio
import logging
from collections.abc import Sequence

from memetrade.domain.exchange.events import Event, Fill, OrderUpdate
from memetrade.ports import ExchangeHistoryStore, StorageError, StorageUnavailable
from memetrade.services.backoff import Backoff

__all__ = ["HistoryProjector"]

log = logging.getLogger(__name__)


class HistoryProjector:
    """Feeds exchange events to an ``ExchangeHistoryStore`` in batches; ``run`` must be running
    (in a task the owner awaits) for anything to be written."""

    # Retry delays while the store is unreachable: doubling from the first to the last.
    RETRY_FIRST_S = 0.1
    RETRY_MAX_S = 2.0

    def __init__(self, store: ExchangeHistoryStore, max_pending_events: int = 100_000) -> None:
        if max_pending_events < 1:
            raise ValueError("max_pending_events must be at least 1")
        self._store = store
        self._max_pending = max_pending_events
        # Events taken and not yet committed, and the seq of the last entry taken.
        self._buffer: list[OrderUpdate | Fill] = []
        self._accepted = 0
        # Buffered plus in the transaction running now: what backpressure counts.
        self._pending = 0
        self._committed = 0
        self._failure: StorageError | None = None
        self._closed = False
        self._wake = asyncio.Event()
        self._changed = asyncio.Condition()
        self.commits = 0
        self.retries = 0

    async def checkpoint(self) -> int:
        """The seq of the last journal entry whose events are stored (0 before any): start-up
        feeds ``on_events`` from the entry after it. Entries up to it are skipped from now on."""
        seq = await self._store.checkpoint()
        self._accepted = max(self._accepted, seq)
        self._committed = max(self._committed, seq)
        return seq

    async def on_events(self, seq: int, events: Sequence[Event]) -> None:
        """Take the events of journal entry ``seq``. Call once per entry, in journal order, one
        call at a time; an entry at or below one taken already is a replay and is skipped.

        Returns at once unless ``max_pending_events`` wait for a commit (then it waits for
        room). Raise ``StorageError`` once the projector has stopped."""
        self._check_running()
        if seq <= self._accepted:
            return
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._pending < self._max_pending or self._failure is not None
            )
        self._check_running()
        kept = [event for event in events if isinstance(event, OrderUpdate | Fill)]
        self._buffer += kept
        self._pending += len(kept)
        # Even an entry without history events moves the checkpoint on, so a restart does
        # not feed it again.
        self._accepted = seq
        self._wake.set()

    async def flush(self) -> None:
        """Return once every entry taken so far is stored; raise ``StorageError`` if the
        projector stops first."""
        target = self._accepted
        async with self._changed:
            await self._changed.wait_for(
                lambda: self._committed >= target or self._failure is not None
            )
        if self._committed < target and self._failure is not None:
            raise self._failure

    async def run(self) -> None:
        """Commit batches until cancelled (then try once to commit what is waiting) or until a
        write fails for good (then raise ``StorageError``)."""
        try:
            while True:
                await self._wake.wait()
                await self._commit_next(retry=True)
        finally:
            self._closed = True
            if self._failure is None:
                await asyncio.shield(self._commit_next(retry=False))
            if self._failure is None:
                self._failure = StorageError("the history projector is shut down")
            async with self._changed:
                self._changed.notify_all()

    def _check_running(self) -> None:
        if self._failure is not None:
            raise self._failure
        if self._closed:
            raise StorageError("the history projector is shut down")

    async def _commit_next(self, *, retry: bool) -> None:
        self._wake.clear()
        if self._accepted <= self._committed:
            return
        seq, events = self._accepted, self._buffer
        self._buffer = []
        try:
            if retry:
                await self._record_until_reachable(seq, events)
            else:
                await self._store.record(seq, events)
        except asyncio.CancelledError:
            # Shut down while waiting for the store: start-up feeds these entries again.
            self._failure = StorageUnavailable("shut down before the history store came back")
            raise
        except Exception as exc:
            log.exception("history write up to journal entry %d failed", seq)
            error = exc if isinstance(exc, StorageError) else StorageError(str(exc))
            self._failure = error
            if error is exc:
                raise
            raise error from exc
        else:
            self._committed = seq
            self.commits += 1
        finally:
            async with self._changed:
                self._pending -= len(events)
                self._changed.notify_all()

    async def _record_until_reachable(self, seq: int, events: list[OrderUpdate | Fill]) -> None:
        backoff = Backoff(self.RETRY_FIRST_S, self.RETRY_MAX_S)
        while True:
            try:
                await self._store.record(seq, events)
            except StorageUnavailable as exc:
                self.retries += 1
                log.warning(
                    "history store unavailable, %d events wait; retrying within %.1f s: %s",
                    len(events),
                    backoff.next_s,
                    exc,
                )
                await backoff.sleep()
            else:
                if backoff.retries:
                    log.warning("history store reachable again; journal entry %d stored", seq)
                return
