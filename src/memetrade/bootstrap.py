"""The composition root: the one place that picks adapters from settings, wires them, and owns
the process's life (start-up, background tasks, serving, shutdown)."""

import asyncio
import contextlib
import logging
import signal
import socket
from collections.abc import AsyncIterator, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import Any, TypeVar

import uvicorn
from fastapi import FastAPI

from memetrade.adapters.clock import SystemClock
from memetrade.adapters.storage import store_from_url
from memetrade.api.app import create_app
from memetrade.api.context import AppContext
from memetrade.api.market_streams import AnalyticsPublisher
from memetrade.api.metrics import Metrics
from memetrade.api.streams import HubPublisher
from memetrade.api.ws_protocol import FanoutWebSocketProtocol
from memetrade.config import Settings
from memetrade.domain.market_model import MarketModel
from memetrade.ports import Clock, StorageError
from memetrade.services.analytics import MarketAnalytics
from memetrade.services.backfill import backfill
from memetrade.services.generator import run_generator
from memetrade.services.hub import Hub
from memetrade.services.market_data import MarketData
from memetrade.services.writer import GroupCommitWriter

__all__ = ["Service", "StartupError", "run"]

log = logging.getLogger("memetrade")


T = TypeVar("T")


def run(main: Coroutine[Any, Any, T]) -> T:
    """Run ``main`` on uvloop where it exists (not on Windows): its transports cost a fraction
    of asyncio's per write, which is most of what fan-out does."""
    try:
        import uvloop
    except ImportError:  # pragma: no cover - Windows
        return asyncio.run(main)
    return uvloop.run(main)


class StartupError(Exception):
    """The service cannot start; the message is one line fit for a terminal."""


class Service:
    """Everything one ``memetrade serve`` process runs, wired from ``settings``.

    ``app`` is the ASGI application; ``serve`` runs it until SIGINT/SIGTERM or until a
    background task fails (storage died, say), then shuts down cleanly, committing what is
    waiting. After such a failure the process must exit: a restart recovers from storage.
    """

    def __init__(self, settings: Settings, clock: Clock | None = None) -> None:
        self.settings = settings
        self.clock = clock = clock or SystemClock()
        # DATABASE_URL picks the backend: SQLite (the embedded default) or PostgreSQL.
        self.store = store_from_url(settings.database_url)
        self.writer = GroupCommitWriter(self.store)
        self.market = MarketData(settings.symbols, settings.rules, self.store, self.writer, clock)
        self.hub = Hub(settings.max_connections)
        self.market.add_listener(HubPublisher(self.hub, self.market.specs))
        self.analytics = MarketAnalytics(self.market)
        self.market.add_listener(self.analytics)
        self.analytics_publisher = AnalyticsPublisher(self.hub, self.analytics, self.market.specs)
        self.analytics.add_sink(self.analytics_publisher)
        metrics = Metrics(lambda: self.market.trades_ingested, lambda: self.hub.connections)
        ctx = AppContext(settings, self.market, self.hub, self.store, metrics, self.analytics)
        self.app = create_app(ctx, self._lifespan)
        self._models = [
            MarketModel(spec, settings.mock_seed + i) for i, spec in enumerate(settings.symbols)
        ]
        self._server: _Server | None = None
        self._failure: BaseException | None = None
        self._on_ready: Callable[[], None] = lambda: None

    async def serve(self, announce: Callable[[str], None]) -> int:
        """Listen, restore state, serve until told to stop; return the exit status.

        ``announce`` receives one line once the service is ready. Raise ``StartupError`` when
        the port cannot be bound or storage cannot be opened.
        """
        settings = self.settings
        try:
            sock = socket.create_server((settings.host, settings.port), backlog=4096)
            # Accepted connections inherit it: without it, small responses and WebSocket
            # frames wait on Nagle's algorithm (asyncio sets it only on sockets it creates).
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        except OSError as exc:
            raise StartupError(
                f"cannot listen on {settings.host}:{settings.port}: {exc.strerror or exc}"
            ) from None
        try:
            await self._open_storage()
            host, port = sock.getsockname()[:2]
            self._on_ready = lambda: announce(
                f"memetrade listening on http://{host}:{port} (docs: /docs)"
            )
            self._server = _Server(
                uvicorn.Config(
                    self.app,
                    log_level=settings.log_level,
                    access_log=False,
                    # Lets the hub write frames straight to sockets (see ws_protocol).
                    ws=FanoutWebSocketProtocol,
                    ws_ping_interval=20,
                    ws_ping_timeout=20,
                    ws_max_size=64 * 1024,
                    # Compression would deflate each message once per client, defeating
                    # encode-once fan-out; market data messages are small anyway.
                    ws_per_message_deflate=False,
                    timeout_graceful_shutdown=5,
                )
            )
            await self._server.serve(sockets=[sock])
        finally:
            sock.close()
            await self.store.close()
        return 1 if self._failure is not None else 0

    async def _open_storage(self) -> None:
        settings = self.settings
        try:
            await self.store.open(settings.symbols)
            if settings.mock_data and settings.backfill:
                # Only symbols without any stored trade get history.
                written = await backfill(
                    self.store, self._models, settings.rules, self.clock.now_ms()
                )
                if written:
                    log.info("backfilled %d generated trades of history", written)
            await self.market.restore()
            await self.analytics.restore()
        except StorageError as exc:
            await self.store.close()
            raise StartupError(f"storage: {exc}") from None

    @asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        writer = asyncio.create_task(self.writer.run(), name="writer")
        writer.add_done_callback(self._watch)
        sources = [
            asyncio.create_task(self.market.run_clock(), name="clock"),
            asyncio.create_task(self.analytics_publisher.run(), name="snapshots"),
        ]
        if self.settings.mock_data:
            generator = run_generator(
                self._models, self.settings.mock_data_interval_ms, self.clock, self.market.ingest
            )
            sources.append(asyncio.create_task(generator, name="generator"))
        for task in sources:
            task.add_done_callback(self._watch)
        self._on_ready()
        try:
            yield
        finally:
            # Sources first, then the writer, which commits whatever is still waiting.
            for task in sources:
                task.cancel()
            await asyncio.gather(*sources, return_exceptions=True)
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    def _watch(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or (error := task.exception()) is None:
            return
        log.critical("background task %s failed, shutting down: %r", task.get_name(), error)
        self._failure = error
        if self._server is not None:
            self._server.should_exit = True


class _Server(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        # SIGINT/SIGTERM shut down gracefully (committing what is waiting) and the process
        # then exits normally; uvicorn's own handling re-raises the signal afterwards.
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.handle_exit, sig, None)
        try:
            yield
        finally:
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
