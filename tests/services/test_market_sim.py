"""The simulated market against the real exchange service, file journal and snapshots."""

import asyncio
import time
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path

import pytest

from memetrade.adapters.clock import SystemClock
from memetrade.adapters.journal.file_snapshots import FileSnapshotStore
from memetrade.adapters.journal.files import FileJournal
from memetrade.domain.exchange import FEE_COLLECTOR, Event, Fill, build_markets
from memetrade.domain.market_maker import quote_ladder
from memetrade.domain.market_model import MarketModel
from memetrade.domain.symbols import PRESETS
from memetrade.services.exchange import ExchangeService
from memetrade.services.market_sim import SIMULATED_USER_BASE, MarketSimulation

pytestmark = pytest.mark.anyio

SPECS = (PRESETS["PEPE"], PRESETS["DOGE"])
MARKETS = build_markets(SPECS)


class Recorder:
    """An exchange listener keeping every fill."""

    def __init__(self) -> None:
        self.fills: list[Fill] = []

    def on_exchange_events(self, seq: int, events: Sequence[Event]) -> None:
        self.fills += [e for e in events if isinstance(e, Fill)]

    async def flush(self) -> None:
        return None


@asynccontextmanager
async def running_service(directory: Path) -> AsyncIterator[ExchangeService]:
    """An exchange service recovered from ``directory`` and journaling into it."""
    journal, snapshots = FileJournal(directory), FileSnapshotStore(directory)
    await journal.open()
    await snapshots.open()
    try:
        service = ExchangeService(MARKETS, journal, snapshots, SystemClock())
        await service.recover()
        task = asyncio.create_task(service.run())
        try:
            yield service
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
    finally:
        await snapshots.close()
        await journal.close()


@pytest.fixture
async def exchange(tmp_path: Path) -> AsyncIterator[ExchangeService]:
    async with running_service(tmp_path) as service:
        yield service


async def run_until(
    sim: MarketSimulation, done: Callable[[], bool], timeout_s: float = 20.0
) -> None:
    """Run ``sim`` until ``done()`` holds (failing after ``timeout_s``), then stop it."""
    task = asyncio.create_task(sim.run())
    deadline = time.monotonic() + timeout_s
    try:
        while not done() and time.monotonic() < deadline:
            assert not task.done(), task.exception()
            await asyncio.sleep(0.05)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert done(), "the simulated market did not get there in time"


def models(seed: int = 7) -> list[MarketModel]:
    return [MarketModel(spec, seed + i) for i, spec in enumerate(SPECS)]


async def test_makers_and_takers_trade_through_the_book_with_fees_and_no_debt(
    exchange: ExchangeService,
) -> None:
    recorder = Recorder()
    exchange.add_listener(recorder)
    sim = MarketSimulation(exchange, models(), 20, SystemClock(), trades_per_tick=2.0)

    def traded_everywhere() -> bool:
        return {f.symbol for f in recorder.fills} == {"PEPE", "DOGE"} and len(recorder.fills) >= 20

    await run_until(sim, traded_everywhere)
    engine = exchange.engine
    makers = {m.user_id for m in sim.makers}
    assert len(makers) == 2 * len(SPECS)
    for spec in SPECS:
        _, bids, asks = engine.depth(spec.name, 100)
        assert bids[0][0] < asks[0][0]  # Never crossed.
        # Both makers' ladders are there: at least five levels a side.
        assert len(bids) >= 5
        assert len(asks) >= 5
    # Takers take from makers (post-only quotes never take), and every fill pays both fees.
    for fill in recorder.fills:
        assert fill.maker_user_id in makers
        assert fill.taker_user_id in sim.takers
        assert fill.maker_fee > 0
        assert fill.taker_fee > 0
    collected = engine.balances(FEE_COLLECTOR)["USDT"].available
    assert collected == sum(f.maker_fee + f.taker_fee for f in recorder.fills)
    for user in [*makers, *sim.takers]:
        assert user >= SIMULATED_USER_BASE
        for asset, balance in engine.balances(user).items():
            assert balance.available >= 0, (user, asset)
            assert balance.locked >= 0, (user, asset)
    # Refusals happen only for the reasons the simulation expects.
    assert set(sim.refused) <= {"would_take", "insufficient_balance"}, sim.refused


async def test_a_restarted_simulation_replaces_its_ladders_instead_of_adding_to_them(
    tmp_path: Path,
) -> None:
    paths = models()
    async with running_service(tmp_path) as service:
        sim = MarketSimulation(service, paths, 20, SystemClock())
        await run_until(sim, lambda: len(service.engine.depth("DOGE", 100)[1]) >= 5)
        await service.snapshot()

    async with running_service(tmp_path) as recovered:
        # No taker flow: the prices stay where the first run left them.
        again = MarketSimulation(recovered, paths, 20, SystemClock(), trades_per_tick=0.0)
        started = time.monotonic()
        await run_until(again, lambda: time.monotonic() - started > 0.5)
        for maker in again.makers:
            orders = recovered.engine.open_orders(maker.user_id)
            held = recovered.engine.balances(maker.user_id)[maker.market.base]
            ladder = quote_ladder(
                maker.model.mid_price(), held.available + held.locked, maker.params
            )
            # One ladder, none of the old orders left beside it (kept ones may be part-filled).
            assert sorted((o.side, o.price) for o in orders) == sorted(
                (q.side, q.price) for q in ladder
            )
