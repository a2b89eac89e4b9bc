"""The composition root: the one place that picks adapters from settings and wires them."""

import asyncio
import logging
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from fastapi import FastAPI

from memetrade.adapters.clock import SystemClock
from memetrade.adapters.storage.sqlite import SqliteStore
from memetrade.api.app import create_app
from memetrade.api.context import AppContext
from memetrade.api.metrics import Metrics
from memetrade.api.streams import HubPublisher
from memetrade.config import Settings
from memetrade.domain.market_model import MarketModel
from memetrade.ports import Clock
from memetrade.services.backfill import backfill
from memetrade.services.generator import run_generator
from memetrade.services.hub import Hub
from memetrade.services.market_data import MarketData
from memetrade.services.writer import GroupCommitWriter

__all__ = ["build_app"]

log = logging.getLogger("memetrade")


def build_app(
    settings: Settings,
    on_fatal: Callable[[BaseException], None],
    clock: Clock | None = None,
) -> FastAPI:
    """Wire the service for ``settings``. ``on_fatal`` is called when a background task dies
    (storage failed, say): the process must then stop, and a restart recovers from storage."""
    clock = clock or SystemClock()
    store = SqliteStore(settings.sqlite_path)
    writer = GroupCommitWriter(store)
    market = MarketData(settings.symbols, settings.rules, store, writer, clock)
    hub = Hub(settings.max_connections)
    market.add_listener(HubPublisher(hub, market.specs))
    metrics = Metrics(lambda: market.trades_ingested, lambda: hub.connections)
    ctx = AppContext(settings, market, hub, store, metrics)

    @asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        await store.open(settings.symbols)
        writer_task = asyncio.create_task(writer.run(), name="writer")
        writer_task.add_done_callback(_watch(on_fatal))
        sources: list[asyncio.Task[None]] = []
        try:
            models = [
                MarketModel(spec, settings.mock_seed + i) for i, spec in enumerate(settings.symbols)
            ]
            if settings.mock_data and settings.backfill and await store.trade_count() == 0:
                written = await backfill(store, models, settings.rules, clock.now_ms())
                log.info("backfilled %d generated trades of history", written)
            await market.restore()
            sources.append(asyncio.create_task(market.run_clock(), name="clock"))
            if settings.mock_data:
                sources.append(
                    asyncio.create_task(
                        run_generator(
                            models, settings.mock_data_interval_ms, clock, market.ingest
                        ),
                        name="generator",
                    )
                )
            for task in sources:
                task.add_done_callback(_watch(on_fatal))
            yield
        finally:
            # Sources first, then the writer, which commits whatever is still waiting.
            for task in sources:
                task.cancel()
            await asyncio.gather(*sources, return_exceptions=True)
            writer_task.cancel()
            await asyncio.gather(writer_task, return_exceptions=True)
            await store.close()

    return create_app(ctx, lifespan)


def _watch(on_fatal: Callable[[BaseException], None]) -> Callable[[asyncio.Task[None]], None]:
    def done(task: asyncio.Task[None]) -> None:
        if not task.cancelled() and (error := task.exception()) is not None:
            log.critical("background task %s failed: %r", task.get_name(), error)
            on_fatal(error)

    return done
