"""``ExchangeService`` on the real file journal and snapshot store: commands are answered once
journaled, batches share an append, a restart rebuilds the exact state (snapshot + journal tail),
a damaged snapshot falls back to an older one, and listeners see every durable command in order.
"""

import asyncio
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from memetrade.adapters.clock import SystemClock
from memetrade.adapters.journal.file_snapshots import FileSnapshotStore
from memetrade.adapters.journal.files import FileJournal
from memetrade.domain.exchange.commands import CancelOrder, Command, Deposit, PlaceOrder
from memetrade.domain.exchange.events import Event, Fill
from memetrade.domain.exchange.markets import Market, build_markets
from memetrade.domain.symbols import SymbolSpec
from memetrade.ports import StorageError, StorageUnavailable
from memetrade.services.exchange import ExchangeService

pytestmark = pytest.mark.anyio

MARKETS = build_markets([SymbolSpec("DOGE", 4, 0)], min_notional="0.01")
DOGE: Market = MARKETS[0]


@dataclass
class Recorder:
    """A listener keeping what it was handed."""

    seen: list[tuple[int, list[Event]]] = field(default_factory=list)
    flushes: int = 0

    def on_exchange_events(self, seq: int, events: Sequence[Event]) -> None:
        self.seen.append((seq, list(events)))

    async def flush(self) -> None:
        self.flushes += 1


@dataclass
class Running:
    service: ExchangeService
    journal: FileJournal
    snapshots: FileSnapshotStore
    recorder: Recorder
    task: asyncio.Task[None]


async def start(directory: Path, snapshot_every: int = 1_000_000) -> Running:
    journal, snapshots = FileJournal(directory), FileSnapshotStore(directory)
    await journal.open()
    await snapshots.open()
    service = ExchangeService(
        MARKETS, journal, snapshots, SystemClock(), snapshot_every=snapshot_every
    )
    recorder = Recorder()
    service.add_listener(recorder)
    await service.recover()
    return Running(service, journal, snapshots, recorder, asyncio.create_task(service.run()))


async def stop(running: Running) -> None:
    running.task.cancel()
    await asyncio.gather(running.task, return_exceptions=True)
    await running.journal.close()
    await running.snapshots.close()


@pytest.fixture
async def exchange(tmp_path: Path) -> AsyncIterator[Running]:
    running = await start(tmp_path)
    yield running
    await stop(running)


def funding() -> list[Command]:
    return [
        Deposit(1, "USDT", DOGE.parse_quote("100000")),
        Deposit(2, "DOGE", DOGE.parse_quantity("1000000")),
    ]


def ladder(count: int) -> list[Command]:
    """User 2 offers ``count`` asks one tick apart; user 1 buys through some of them."""
    asks: list[Command] = [
        PlaceOrder(2, "DOGE", "sell", "limit", quantity=10, price=1_000 + i) for i in range(count)
    ]
    return [*asks, PlaceOrder(1, "DOGE", "buy", "market", quantity=10 * (count // 3))]


async def test_commands_are_answered_in_one_shared_append_and_seen_in_order(
    exchange: Running,
) -> None:
    for command in funding():
        assert (await exchange.service.submit(command)).ok
    before = exchange.journal.last_seq()
    outcomes = await asyncio.gather(*(exchange.service.submit(c) for c in ladder(60)))
    assert all(o.ok for o in outcomes)
    # Submitted together, they were journaled together (group commit), not one fsync each.
    assert exchange.journal.last_seq() == before + 61
    appended = await exchange.journal.read(before + 1, 100)
    assert len(appended) == 61
    seqs = [seq for seq, _ in exchange.recorder.seen]
    assert seqs == list(range(1, 64))
    fills = [e for _, events in exchange.recorder.seen for e in events if isinstance(e, Fill)]
    assert sum(f.quantity for f in fills) == 10 * 20


async def test_refused_commands_change_nothing_and_are_not_journaled(exchange: Running) -> None:
    refused = await exchange.service.submit(
        PlaceOrder(7, "DOGE", "buy", "limit", quantity=10, price=1_000)
    )
    assert not refused.ok
    assert refused.code == "insufficient_balance"
    assert exchange.journal.last_seq() == 0
    assert exchange.recorder.seen == []


async def test_restart_rebuilds_the_exact_state_from_journal_and_snapshot(tmp_path: Path) -> None:
    running = await start(tmp_path, snapshot_every=40)
    for command in funding():
        await running.service.submit(command)
    for command in ladder(90):
        await running.service.submit(command)
    order = await running.service.submit(
        PlaceOrder(1, "DOGE", "buy", "limit", quantity=5, price=900)
    )
    assert order.order_id is not None
    await running.service.submit(CancelOrder(1, order.order_id))
    state, seq = running.service.engine.state_hash(), running.service.seq
    snapshots = await running.snapshots.seqs()
    await stop(running)
    assert snapshots, "no snapshot was taken"
    assert max(snapshots) < seq, "the test needs a journal tail after the snapshot"

    again = await start(tmp_path)
    try:
        assert again.service.seq == seq
        assert again.service.engine.state_hash() == state
        assert again.service.recovered_commands == seq - max(snapshots)
        # The replayed tail is handed to listeners again (they are idempotent).
        assert [s for s, _ in again.recorder.seen] == list(range(max(snapshots) + 1, seq + 1))
        # And it goes on numbering where it stopped.
        more = await again.service.submit(Deposit(3, "USDT", 5))
        assert more.ok
        assert again.service.seq == seq + 1
    finally:
        await stop(again)


def sorted_snapshot_files(directory: Path, seq: int) -> list[Path]:
    return sorted(directory.glob(f"snapshot-*{seq}*"))


def damage_file(path: Path) -> None:
    data = bytearray(path.read_bytes())
    data[len(data) // 2] ^= 0xFF
    path.write_bytes(bytes(data))


async def test_a_damaged_newest_snapshot_falls_back_to_an_older_one(tmp_path: Path) -> None:
    running = await start(tmp_path, snapshot_every=30)
    for command in [*funding(), *ladder(120)]:
        await running.service.submit(command)
    state, seq = running.service.engine.state_hash(), running.service.seq
    snapshots = await running.snapshots.seqs()
    await stop(running)
    assert len(snapshots) >= 2
    damage_file(next(iter(sorted_snapshot_files(tmp_path, snapshots[-1]))))

    again = await start(tmp_path)
    try:
        assert again.service.engine.state_hash() == state
        assert again.service.seq == seq
        assert again.service.recovered_commands == seq - snapshots[-2]
    finally:
        await stop(again)


async def test_a_snapshot_on_demand_waits_for_listeners_to_store_their_events(
    exchange: Running,
) -> None:
    for command in funding():
        await exchange.service.submit(command)
    seq = await exchange.service.snapshot()
    assert seq == 2
    assert exchange.recorder.flushes == 1
    assert await exchange.snapshots.seqs() == [2]


async def test_a_failed_append_fails_its_commands_and_stops_the_service(
    exchange: Running,
) -> None:
    await exchange.service.submit(funding()[0])
    # The journal goes away under the running service (as a dying disk would).
    await exchange.journal.close()
    with pytest.raises(StorageError):
        await exchange.service.submit(funding()[1])
    with pytest.raises(StorageError):
        await exchange.task
    # Memory may be ahead of the journal now: nothing more is taken.
    with pytest.raises(StorageError):
        await exchange.service.submit(Deposit(5, "USDT", 1))


class LosesAnswers:
    """The real file journal, with the failure a network gives: an append that raises
    ``StorageUnavailable`` though it was stored (``landed``) or not, the next few times."""

    def __init__(self, journal: FileJournal, failures: list[bool]) -> None:
        self.journal = journal
        self.failures = failures

    def __getattr__(self, name: str) -> object:
        return getattr(self.journal, name)

    async def append(self, entries: Sequence[bytes]) -> int:
        if entries and self.failures:
            landed = self.failures.pop(0)
            if landed:
                await self.journal.append(entries)
            raise StorageUnavailable("connection lost")
        return await self.journal.append(entries)


@pytest.mark.parametrize("landed", [True, False])
async def test_an_unreachable_journal_is_waited_out_and_nothing_is_written_twice(
    tmp_path: Path, landed: bool
) -> None:
    journal, snapshots = FileJournal(tmp_path), FileSnapshotStore(tmp_path)
    await journal.open()
    await snapshots.open()
    flaky = LosesAnswers(journal, [landed, False])
    service = ExchangeService(MARKETS, flaky, snapshots, SystemClock())  # type: ignore[arg-type]
    service.RETRY_FIRST_S = 0.01
    await service.recover()
    task = asyncio.create_task(service.run())
    try:
        outcomes = await asyncio.gather(*(service.submit(c) for c in funding()))
        assert all(o.ok for o in outcomes)
        assert journal.last_seq() == 2  # each command stored once, whichever way it failed
        assert service.seq == 2
        assert (await service.submit(Deposit(3, "USDT", 7))).ok
        assert journal.last_seq() == 3
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
        await journal.close()
        await snapshots.close()
