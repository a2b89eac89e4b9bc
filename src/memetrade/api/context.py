"""What the API's routes reach: the services, built by ``memetrade.bootstrap``."""

from dataclasses import dataclass, field

from fastapi import Request

from memetrade.api.metrics import Metrics
from memetrade.api.response_cache import ResponseCache
from memetrade.config import Settings
from memetrade.ports import TradeStore
from memetrade.services.analytics import MarketAnalytics
from memetrade.services.hub import Hub
from memetrade.services.market_data import MarketData

__all__ = ["AppContext", "context"]


@dataclass(frozen=True, slots=True)
class AppContext:
    settings: Settings
    market: MarketData
    hub: Hub
    store: TradeStore
    metrics: Metrics
    analytics: MarketAnalytics
    klines_cache: ResponseCache = field(default_factory=ResponseCache)


def context(request: Request) -> AppContext:
    ctx = request.app.state.ctx
    assert isinstance(ctx, AppContext)
    return ctx
