"""The composition root: the one place that picks adapters from settings, wires them, and owns
the process's life (start-up, background tasks, serving, shutdown)."""

import asyncio
import contextlib
import gc
import logging
import secrets
import signal
import socket
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Iterator
from contextlib import asynccontextmanager
from typing import TYPE_CHECKING, Any, TypeVar

import uvicorn
from fastapi import FastAPI

from memetrade.adapters.bus import bus_from_url
from memetrade.adapters.clock import SystemClock
from memetrade.adapters.journal import journal_from_url
from memetrade.adapters.rate_counters import MemoryCounters, RedisCounters
from memetrade.adapters.storage import (
    account_store_from_url,
    history_store_from_url,
    store_from_url,
)
from memetrade.api.app import create_app
from memetrade.api.binance_wire import BinanceNames
from memetrade.api.context import AppContext
from memetrade.api.depth_streams import DepthPublisher
from memetrade.api.dialect_streams import DialectPublisher
from memetrade.api.market_streams import AnalyticsPublisher
from memetrade.api.metrics import Metrics
from memetrade.api.streams import HubPublisher
from memetrade.api.ws_protocol import FanoutWebSocketProtocol
from memetrade.config import Settings
from memetrade.domain.exchange.markets import build_markets
from memetrade.domain.market_model import MarketModel
from memetrade.ports import AccountStore, BusError, Clock, Counters, StorageError
from memetrade.services.analytics import MarketAnalytics
from memetrade.services.auth import AuthService, OnSignup
from memetrade.services.backfill import backfill
from memetrade.services.credentials import TokenIssuer
from memetrade.services.demo_balances import demo_credit
from memetrade.services.exchange import ExchangeService
from memetrade.services.exchange_feed import ExchangeTradeFeed
from memetrade.services.exchange_history_feed import ExchangeHistory
from memetrade.services.exchange_runtime import ExchangeRuntime
from memetrade.services.exchange_streams import ExchangeStreams
from memetrade.services.generator import run_generator
from memetrade.services.hub import Hub
from memetrade.services.market_data import MarketData, Writer
from memetrade.services.market_sim import MarketSimulation
from memetrade.services.pipeline import (
    Aggregator,
    BusIngest,
    CandleBroadcaster,
    DiscardWriter,
    Follower,
)
from memetrade.services.rate_limit import RateLimiter, SigninThrottle
from memetrade.services.writer import GroupCommitWriter

if TYPE_CHECKING:
    from memetrade.adapters.shared_state import RedisConnectionGate

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
        role = settings.role
        # DATABASE_URL picks the backend: SQLite (the embedded default) or PostgreSQL.
        self.store = store_from_url(settings.database_url)
        self.writer = GroupCommitWriter(self.store)
        # BUS_URL unset: ROLE=all takes the direct path (ingest -> MarketData), which is what
        # the in-process bus would do with one hop less. Set: the roles meet on the bus.
        self.bus = None if settings.bus_url is None else bus_from_url(settings.bus_url)
        # Only the aggregating roles commit candles; an API instance follows what they stored.
        writer: Writer = self.writer if role in ("all", "aggregate") else DiscardWriter()
        self.market = MarketData(settings.symbols, settings.rules, self.store, writer, clock)
        self.hub = Hub(settings.max_connections)
        self.market.add_listener(HubPublisher(self.hub, self.market.specs))
        self.analytics = MarketAnalytics(self.market)
        self.market.add_listener(self.analytics)
        self.analytics_publisher = AnalyticsPublisher(self.hub, self.analytics, self.market.specs)
        self.analytics.add_sink(self.analytics_publisher)
        self.bus_ingest: BusIngest | None = None
        self.aggregator: Aggregator | None = None
        self.follower: Follower | None = None
        self.broadcaster: CandleBroadcaster | None = None
        if self.bus is not None:
            if role in ("all", "ingest", "api"):
                self.bus_ingest = BusIngest(self.bus, settings.symbols, settings.rules, clock)
            if role in ("all", "aggregate"):
                self.aggregator = Aggregator(self.bus, self.market)
                self.broadcaster = CandleBroadcaster(self.bus)
                self.market.add_listener(self.broadcaster)
            if role == "api":
                self.follower = Follower(self.bus, self.market, clock)
        self.gate = self._connection_gate()
        # The exchange holds its books in this one process: it runs in the embedded role.
        self.exchange = self._exchange() if settings.exchange and role == "all" else None
        self.history: ExchangeHistory | None = None
        if self.exchange is not None:
            self.history = ExchangeHistory(history_store_from_url(settings.database_url))
            self.exchange.service.add_listener(self.history.feed)
        # Depth diffs and users' events for WebSocket clients (services/exchange_streams.py).
        self.exchange_streams: ExchangeStreams | None = None
        if self.exchange is not None:
            self.exchange_streams = ExchangeStreams(self.hub, self.exchange.service)
            self.exchange.service.add_listener(self.exchange_streams)
        # Accounts live in the same database; only the roles serving the public API use them.
        self.accounts: AccountStore | None = None
        self.counters: Counters | None = None
        auth: AuthService | None = None
        limiter: RateLimiter | None = None
        if role in ("all", "api"):
            self.accounts = account_store_from_url(settings.database_url)
            self.counters = (
                MemoryCounters(clock)
                if settings.redis_url is None
                else RedisCounters(settings.redis_url, clock)
            )
            tokens = TokenIssuer(_jwt_secret(settings), settings.jwt_ttl_s, clock)
            throttle = SigninThrottle(self.counters, settings.signin_max_failures)
            auth = AuthService(
                self.accounts,
                tokens,
                throttle,
                clock,
                admin_email=settings.admin_email,
                on_signup=self._demo_credit(),
            )
            limiter = RateLimiter(self.counters, settings.rate_limit_per_min)
        bus_ingest = self.bus_ingest
        metrics = Metrics(
            (lambda: bus_ingest.published)
            if bus_ingest is not None and role == "ingest"
            else (lambda: self.market.trades_ingested),
            lambda: self.hub.connections,
        )
        ctx = AppContext(
            settings,
            self.market,
            self.hub,
            self.store,
            metrics,
            self.analytics,
            ingest_sink=self.bus_ingest,
            ready_checks=self._ready_checks(),
            connection_gate=self.gate,
            auth=auth,
            rate_limiter=limiter,
            exchange=None if self.exchange is None else self.exchange.service,
            history=self.history,
            exchange_streams=self.exchange_streams,
        )
        # Binance-compatible and /ws/stream topics, fed by the same events (api/dialect_streams).
        self.dialect_publisher = DialectPublisher(ctx)
        self.market.add_listener(self.dialect_publisher)
        self.analytics.add_sink(self.dialect_publisher)
        self.depth_publisher: DepthPublisher | None = None
        if self.exchange_streams is not None:
            names = BinanceNames(self.market.specs, settings.quote_asset)
            self.depth_publisher = DepthPublisher(
                self.hub, self.exchange_streams, self.market.specs, names, self.market.now_ms
            )
            self.exchange_streams.add_depth_sink(self.depth_publisher)
        self.app = create_app(ctx, self._lifespan)
        # What uvicorn serves: the roles without the public API answer only their own routes.
        self.asgi: Any = (
            _OnlyPaths(self.app, _ROLE_ROUTES[role]) if role in _ROLE_ROUTES else self.app
        )
        self._models = [
            MarketModel(spec, settings.mock_seed + i) for i, spec in enumerate(settings.symbols)
        ]
        self._server: _Server | None = None
        self._failure: BaseException | None = None
        self._restored_at = 0
        self._on_ready: Callable[[], None] = lambda: None

    def _exchange(self) -> ExchangeRuntime:
        settings = self.settings
        markets = build_markets(settings.symbols, settings.quote_asset, settings.min_notional)
        journal, snapshots = journal_from_url(settings.database_url)
        service = ExchangeService(
            markets, journal, snapshots, self.clock, snapshot_every=settings.snapshot_every
        )
        feed = ExchangeTradeFeed(self.market)
        service.add_listener(feed)
        return ExchangeRuntime(service, journal, snapshots, feed)

    def _demo_credit(self) -> OnSignup | None:
        if self.exchange is None:
            return None
        try:
            return demo_credit(self.exchange.service, self.settings.demo_balances)
        except ValueError as exc:
            raise StartupError(f"DEMO_BALANCES: {exc}") from None

    def _uses_store(self) -> bool:
        return self.settings.role != "ingest"

    def _ready_checks(self) -> tuple[tuple[str, Callable[[], Awaitable[None]]], ...] | None:
        if self.bus is None:
            return None  # The default: storage alone.
        checks: list[tuple[str, Callable[[], Awaitable[None]]]] = [("the bus", self.bus.ping)]
        if self._uses_store():
            checks.append(("storage", self.store.ping))
        return tuple(checks)

    def _connection_gate(self) -> "RedisConnectionGate | None":
        if self.settings.redis_url is None or self.settings.role not in ("all", "api"):
            return None
        from memetrade.adapters.shared_state import RedisConnectionGate

        return RedisConnectionGate(self.settings.redis_url, self.settings.max_connections)

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
            await self._open_bus()
            if self._uses_store():
                await self._open_storage()
            if self.accounts is not None:
                try:
                    await self.accounts.open()
                except StorageError as exc:
                    raise StartupError(f"accounts storage: {exc}") from None
            if self.history is not None:
                try:
                    await self.history.open()
                except StorageError as exc:
                    raise StartupError(f"exchange history: {exc}") from None
            if self.exchange is not None:
                try:
                    await self.exchange.open()
                except StorageError as exc:
                    raise StartupError(f"exchange journal: {exc}") from None
                if self.exchange_streams is not None:
                    # Recovered, and no command taken yet: the engine is what was published.
                    self.exchange_streams.sync()
            if self.gate is not None:
                await self.gate.open()
            # Restored state (candles, ids) lives as long as the process: keep the collector
            # from walking it again and again, and let it run less often (most garbage here
            # is freed by reference counting; the collector only finds cycles). Durable
            # ingest builds several objects per trade: 92k -> 127k trades/s (bench ingest).
            gc.collect()
            gc.freeze()
            gc.set_threshold(50_000, 50, 100)
            host, port = sock.getsockname()[:2]
            self._on_ready = lambda: announce(
                f"memetrade listening on http://{host}:{port} (docs: /docs)"
            )
            self._server = _Server(
                uvicorn.Config(
                    self.asgi,
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
            if self.exchange is not None:
                await self.exchange.close()
            if self.history is not None:
                await self.history.close()
            await self.store.close()
            if self.accounts is not None:
                await self.accounts.close()
            if self.counters is not None:
                await self.counters.close()
            if self.gate is not None:
                await self.gate.close()
            if self.bus is not None:
                await self.bus.close()
        return 1 if self._failure is not None else 0

    async def _open_bus(self) -> None:
        if self.bus is None:
            return
        try:
            await self.bus.open()
        except BusError as exc:
            raise StartupError(f"bus: {exc}") from None

    async def _open_storage(self) -> None:
        settings = self.settings
        try:
            await self.store.open(settings.symbols)
            if settings.mock_data and settings.backfill and settings.role == "all":
                # Only symbols without any stored trade get history.
                written = await backfill(
                    self.store, self._models, settings.rules, self.clock.now_ms()
                )
                if written:
                    log.info("backfilled %d generated trades of history", written)
            # An API instance replays stored trades from (a margin before) this moment on.
            self._restored_at = self.clock.now_ms()
            await self.market.restore()
            await self.analytics.restore()
            self._continue_generated_prices()
        except StorageError as exc:
            await self.store.close()
            raise StartupError(f"storage: {exc}") from None

    def _continue_generated_prices(self) -> None:
        # A model that did not just backfill its symbol starts from the stored last price, so
        # a restart continues the chart instead of jumping back to the reference price.
        for i, model in enumerate(self._models):
            if model.last_price is None:
                last = self.market.last_price(model.spec.name)
                if last is not None:
                    self._models[i] = MarketModel(
                        model.spec, self.settings.mock_seed + i, start_price=last
                    )

    @asynccontextmanager
    async def _lifespan(self, _: FastAPI) -> AsyncIterator[None]:
        role = self.settings.role
        writer = asyncio.create_task(self.writer.run(), name="writer")
        writer.add_done_callback(self._watch)
        if self.exchange is not None:
            self.exchange.start(self._watch)
        if self.history is not None:
            self.history.start(self._watch)
        sources: list[asyncio.Task[None]] = []
        if role != "ingest":
            sources.append(asyncio.create_task(self.market.run_clock(), name="clock"))
        if role in ("all", "api"):
            sources.append(asyncio.create_task(self.analytics_publisher.run(), name="snapshots"))
            dialects = self.dialect_publisher.run()
            sources.append(asyncio.create_task(dialects, name="dialect-streams"))
        if self.depth_publisher is not None:
            sources.append(asyncio.create_task(self.depth_publisher.run(), name="depth-streams"))
        if self.aggregator is not None:
            sources.append(asyncio.create_task(self.aggregator.run(), name="aggregator"))
        if self.broadcaster is not None:
            sources.append(asyncio.create_task(self.broadcaster.run(), name="candle-broadcast"))
        if self.follower is not None:
            follow = self.follower.run(self._restored_at)
            sources.append(asyncio.create_task(follow, name="follower"))
        if self.gate is not None:
            sources.append(asyncio.create_task(self.gate.run(), name="connection-gate"))
        if self.settings.mock_data and role in ("all", "ingest"):
            sources.append(asyncio.create_task(self._mock_source(), name="generator"))
        for task in sources:
            task.add_done_callback(self._watch)
        self._on_ready()
        try:
            yield
        finally:
            # Sources first, then the exchange (journals what waits, hands over its last
            # fills), then the writer, which commits whatever is still waiting.
            for task in sources:
                task.cancel()
            await asyncio.gather(*sources, return_exceptions=True)
            if self.exchange is not None:
                await self.exchange.stop()
            if self.history is not None:
                await self.history.stop()
            writer.cancel()
            await asyncio.gather(writer, return_exceptions=True)

    def _mock_source(self) -> Coroutine[Any, Any, None]:
        # MOCK_MODE=book needs the exchange: without it the plain generator runs.
        interval = self.settings.mock_data_interval_ms
        if self.settings.mock_mode == "book" and self.exchange is not None:
            simulation = MarketSimulation(self.exchange.service, self._models, interval, self.clock)
            return simulation.run()
        sink = self.bus_ingest.ingest if self.bus_ingest is not None else self.market.ingest
        return run_generator(self._models, interval, self.clock, sink)

    def _watch(self, task: asyncio.Task[None]) -> None:
        if task.cancelled() or (error := task.exception()) is None:
            return
        log.critical("background task %s failed, shutting down: %r", task.get_name(), error)
        self._failure = error
        if self._server is not None:
            self._server.should_exit = True


def _jwt_secret(settings: Settings) -> str:
    if settings.jwt_secret is not None:
        return settings.jwt_secret
    log.warning(
        "JWT_SECRET is not set: signing session tokens with a random key; tokens will not"
        " survive a restart, nor work on another API instance"
    )
    return secrets.token_urlsafe(48)


# Routes the roles without the public API serve (ROLE=all and api serve every route).
_OPERATIONS = ("/health", "/ready", "/metrics")
_ROLE_ROUTES = {
    "ingest": (*_OPERATIONS, "/internal/trades", "/docs", "/openapi.json"),
    "aggregate": _OPERATIONS,
}


class _OnlyPaths:
    """ASGI: pass requests for ``paths`` (and lifespan events) to ``app``; 404 the rest."""

    def __init__(self, app: FastAPI, paths: tuple[str, ...]) -> None:
        self._app = app
        self._paths = frozenset(paths)

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"] not in self._paths:
            body = b'{"error":{"code":"not_found","message":"not served by this role"}}'
            headers = [(b"content-type", b"application/json")]
            await send({"type": "http.response.start", "status": 404, "headers": headers})
            await send({"type": "http.response.body", "body": body})
            return
        if scope["type"] == "websocket" and scope["path"] not in self._paths:
            await send({"type": "websocket.close", "code": 4404})
            return
        await self._app(scope, receive, send)


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
