"""What the API's routes reach: the services, built by ``memetrade.bootstrap``."""

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Protocol

from fastapi import Depends, Request

from memetrade.api.metrics import Metrics
from memetrade.api.response_cache import ResponseCache
from memetrade.config import Settings
from memetrade.domain.trades import Trade
from memetrade.ports import ConnectionGate, TradeStore
from memetrade.services.analytics import MarketAnalytics
from memetrade.services.auth import AuthService
from memetrade.services.exchange import ExchangeService
from memetrade.services.exchange_history_feed import ExchangeHistory
from memetrade.services.exchange_streams import ExchangeStreams
from memetrade.services.hub import Hub
from memetrade.services.market_data import IngestResult, MarketData
from memetrade.services.rate_limit import RateLimiter

__all__ = ["AppContext", "Ctx", "IngestSink", "context"]


class IngestSink(Protocol):
    async def ingest(self, trades: Sequence[Trade]) -> IngestResult: ...


@dataclass(frozen=True, slots=True)
class AppContext:
    settings: Settings
    market: MarketData
    hub: Hub
    store: TradeStore
    metrics: Metrics
    analytics: MarketAnalytics
    klines_cache: ResponseCache = field(default_factory=ResponseCache)
    # Scale-out roles (bootstrap): where POST /internal/trades goes instead of ``market``
    # (the bus), what /ready checks instead of the store alone, and the connection cap
    # shared with other API instances (Redis).
    ingest_sink: IngestSink | None = None
    ready_checks: tuple[tuple[str, Callable[[], Awaitable[None]]], ...] | None = None
    connection_gate: ConnectionGate | None = None
    # Accounts (api/auth_routes.py): None where a role serves no public API.
    auth: AuthService | None = None
    rate_limiter: RateLimiter | None = None
    # The exchange (order books, balances): None where it does not run (EXCHANGE=0, or a
    # role other than ``all``).
    exchange: ExchangeService | None = None
    # Users' orders and fills (ended ones included), beside ``exchange``.
    history: ExchangeHistory | None = None
    # The exchange's depth and user streams (services/exchange_streams.py), beside ``exchange``.
    exchange_streams: ExchangeStreams | None = None


def context(request: Request) -> AppContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, AppContext)
    return ctx


async def _context_dependency(request: Request) -> AppContext:
    # ``async`` so FastAPI calls it on the event loop: a plain ``def`` dependency runs in the
    # thread pool, a hop per request that cost klines about 60% of its throughput.
    return context(request)


Ctx = Annotated[AppContext, Depends(_context_dependency)]
"""A route parameter annotated ``Ctx`` receives the app's context."""
