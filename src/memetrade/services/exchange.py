"""The exchange service: the matching engine behind a journal, recovered from snapshots.

How a command flows::

    submit(command) ─> Engine.execute (synchronous, in memory) ─> batch ─> journal append
        (one fsync per batch) ─> seq assigned ─> listeners (trades, history, streams) ─> answer

* A command is answered only once its journal entry is durable, so an acknowledged order
  survives a ``kill -9``. Commands execute at once (the book must see them in order) and
  gather into the next batch while the previous one is being written: under load batches
  grow by themselves and an fsync is shared by every command in it (group commit).
* Refused commands change nothing and are not journaled.
* Listeners see ``(seq, events)`` in journal order, only for durable commands, and again for
  the replayed tail after a restart: they must be idempotent (history upserts by seq, trades
  are deduplicated by id).
* The engine is deterministic, so the state after entry ``seq`` is "snapshot at or before
  ``seq`` + replay of the entries after it". Snapshots are taken every ``snapshot_every``
  commands at a batch boundary (new commands wait a moment so the engine holds exactly the
  journaled state), after the listeners have stored everything up to it, so the replayed tail
  always covers what they may have lost.
* A journal that cannot be reached (``StorageUnavailable``) is waited out: commands wait
  unanswered, and once it answers the service checks whether the failed append landed before
  appending again. Any other failed append leaves memory ahead of the disk: the service stops
  (``run`` raises) and a restart recovers from what the journal holds; commands waiting in
  that batch get a ``StorageError`` (their outcome is unknown until then).
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from memetrade.domain.exchange.commands import Command, decode_command, encode_command
from memetrade.domain.exchange.engine import Engine
from memetrade.domain.exchange.events import Event, Outcome
from memetrade.domain.exchange.markets import Market
from memetrade.ports import Clock, CommandJournal, SnapshotStore, StorageError, StorageUnavailable
from memetrade.services.backoff import Backoff

__all__ = ["ExchangeListener", "ExchangeService"]

log = logging.getLogger(__name__)


class ExchangeListener(Protocol):
    def on_exchange_events(self, seq: int, events: Sequence[Event]) -> None:
        """Called in journal order once command ``seq`` is durable; must not block."""
        ...

    async def flush(self) -> None:
        """Return once everything handed over so far is stored (before a snapshot)."""
        ...


@dataclass(slots=True)
class _Batch:
    entries: list[bytes] = field(default_factory=list)
    events: list[list[Event]] = field(default_factory=list)
    done: asyncio.Future[int] = field(
        default_factory=lambda: asyncio.get_running_loop().create_future()
    )


class ExchangeService:
    """Owns the engine; ``submit`` is the only way to change it. Queries read ``engine``."""

    # Retry delays while the journal cannot be reached: doubling from the first to the last.
    RETRY_FIRST_S = 0.1
    RETRY_MAX_S = 2.0

    def __init__(
        self,
        markets: Sequence[Market],
        journal: CommandJournal,
        snapshots: SnapshotStore,
        clock: Clock,
        *,
        snapshot_every: int = 100_000,
    ) -> None:
        self.markets = {market.symbol: market for market in markets}
        self.engine = Engine(list(markets))
        self._journal = journal
        self._snapshots = snapshots
        self._clock = clock
        self._snapshot_every = snapshot_every
        self._listeners: list[ExchangeListener] = []
        self._next: _Batch | None = None
        self._wake = asyncio.Event()
        self._open_gate = asyncio.Event()
        self._open_gate.set()
        self._failed: BaseException | None = None
        self._snapshot_waiters: list[asyncio.Future[int]] = []
        self.seq = 0
        self.snapshot_seq = 0
        self.recovered_commands = 0
        self.recovery_s = 0.0

    def add_listener(self, listener: ExchangeListener) -> None:
        self._listeners.append(listener)

    # -- start-up -------------------------------------------------------------------------------

    async def recover(self) -> None:
        """Load the newest valid snapshot and replay the journal after it, handing the replayed
        events to the listeners. Raise ``StorageError`` when the journal cannot be replayed."""
        started = time.perf_counter()
        markets = list(self.markets.values())
        found = await self._snapshots.load_latest_valid()
        if found is None:
            seq, self.engine = 0, Engine(markets)
        else:
            seq, payload = found
            self.engine = Engine.restore(markets, payload)
        self.snapshot_seq = seq
        replayed = 0
        while True:
            chunk = await self._journal.read(seq + 1, 10_000)
            if not chunk:
                break
            for entry_seq, payload in chunk:
                if entry_seq != seq + 1:
                    raise StorageError(f"exchange journal skips from {seq} to {entry_seq}")
                ts, command = decode_command(payload)
                outcome = self.engine.execute(command, ts)
                self._deliver(entry_seq, outcome.events)
                seq = entry_seq
                replayed += 1
        if seq != self._journal.last_seq():
            raise StorageError(
                f"exchange journal ends at {self._journal.last_seq()} but replay stopped at {seq}"
            )
        self.seq = seq
        self.recovered_commands = replayed
        self.recovery_s = time.perf_counter() - started
        log.info(
            "exchange recovered: snapshot at %d + %d journaled commands in %.2f s",
            self.snapshot_seq,
            replayed,
            self.recovery_s,
        )

    # -- commands -------------------------------------------------------------------------------

    async def submit(self, command: Command) -> Outcome:
        """Execute ``command``; return its outcome once it is durable (refusals at once).
        Raise ``StorageError`` when the journal failed (the outcome is then unknown)."""
        if not self._open_gate.is_set():
            await self._open_gate.wait()
        if self._failed is not None:
            raise StorageError("the exchange journal failed; the service is stopping")
        ts = self._clock.now_ms()
        outcome = self.engine.execute(command, ts)
        if not outcome.ok:
            return outcome
        batch = self._next
        if batch is None:
            batch = self._next = _Batch()
        batch.entries.append(encode_command(command, ts))
        batch.events.append(outcome.events)
        self._wake.set()
        await asyncio.shield(batch.done)
        return outcome

    async def run(self) -> None:
        """Journal batches until cancelled (then journal what is waiting) or until an append
        fails (then raise ``StorageError``)."""
        try:
            while True:
                await self._wake.wait()
                await self._commit_next()
                waiters, self._snapshot_waiters = self._snapshot_waiters, []
                if waiters or self.seq - self.snapshot_seq >= self._snapshot_every:
                    await self._snapshot()
                    for waiter in waiters:
                        waiter.set_result(self.snapshot_seq)
        finally:
            if self._failed is None:
                await asyncio.shield(self._commit_next())

    async def _commit_next(self) -> None:
        self._wake.clear()
        batch, self._next = self._next, None
        if batch is None:
            return
        try:
            last = await self._append(batch.entries)
        except BaseException as exc:
            self._failed = exc
            error = exc if isinstance(exc, StorageError) else StorageError(repr(exc))
            batch.done.set_exception(error)
            batch.done.exception()
            log.error("exchange journal append failed: %r; stopping", exc)
            raise
        first = last - len(batch.entries) + 1
        for offset, events in enumerate(batch.events):
            self._deliver(first + offset, events)
        self.seq = last
        batch.done.set_result(last)

    async def _append(self, entries: list[bytes]) -> int:
        """Append ``entries``; while the journal cannot be reached (``StorageUnavailable``:
        PostgreSQL restarting, say), wait for it, learn whether the failed append landed after
        all, and append again only if it did not, so no entry is lost or written twice."""
        before = self.seq
        backoff = Backoff(self.RETRY_FIRST_S, self.RETRY_MAX_S)
        try:
            return await self._journal.append(entries)
        except StorageUnavailable as exc:
            log.warning("exchange journal unavailable, %d commands wait: %s", len(entries), exc)
        while True:
            await backoff.sleep()
            try:
                # An empty append re-reads the last stored number after a failure.
                stored = await self._journal.append([])
                if stored == before:
                    return await self._journal.append(entries)
            except StorageUnavailable:
                continue
            if stored == before + len(entries):
                log.warning("exchange journal reachable again; the waiting append had landed")
                return stored
            raise StorageError(
                f"exchange journal ends at {stored}; expected {before} or {before + len(entries)}"
            )

    def _deliver(self, seq: int, events: Sequence[Event]) -> None:
        for listener in self._listeners:
            try:
                listener.on_exchange_events(seq, events)
            except Exception:
                # A broken listener must not stop the exchange: its data can be rebuilt from
                # the journal; the failure is logged with its traceback.
                log.exception("exchange listener %r failed at seq %d", listener, seq)

    # -- snapshots ------------------------------------------------------------------------------

    async def snapshot(self) -> int:
        """Have ``run`` take a snapshot now (it also takes one every ``snapshot_every``
        commands); return its seq."""
        waiter: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        self._snapshot_waiters.append(waiter)
        self._wake.set()
        return await waiter

    async def _snapshot(self) -> None:
        # Hold new commands so the engine holds exactly the journaled state, journal what ran
        # meanwhile, then encode the state (synchronously: nothing runs in between).
        self._open_gate.clear()
        try:
            await self._commit_next()
            payload, seq = self.engine.snapshot(), self.seq
        finally:
            self._open_gate.set()
        for listener in self._listeners:
            await listener.flush()
        await self._snapshots.save(seq, payload)
        self.snapshot_seq = seq
        # Entries the oldest kept snapshot covers are no longer needed for recovery.
        kept = await self._snapshots.seqs()
        if kept:
            await self._journal.truncate_before(kept[0] + 1)
        log.info("exchange snapshot at %d (%d bytes)", seq, len(payload))
