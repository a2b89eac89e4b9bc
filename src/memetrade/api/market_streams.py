"""Streams of the analytics: ``/ws`` snapshots and signals, and candles with indicators.

``AnalyticsPublisher`` is the ``AnalyticsSink`` that turns analytics changes into WebSocket
messages, each encoded once for every client of its topic (and only if there is one):

* snapshots are coalesced: a change only marks (symbol, interval) dirty, and ``run`` publishes
  the dirty ones every ``SNAPSHOT_PERIOD_S`` as state keyed by symbol, so a client gets at most
  one snapshot per symbol per period, and a slow client only the latest;
* signal events (a flip of the recommendation) are published at once, as events: a bot must
  not miss one, so they share the trade streams' bounded FIFO and its too-slow rule;
* candles with indicators are state keyed by open time, like plain candles; a revision that
  changes later values republishes those candles too.

Topics include the normalised indicator set, so each distinct set is encoded once per update
whatever the number of clients.
"""

import asyncio
from collections.abc import Awaitable, Callable, Sequence

from fastapi import WebSocket

from memetrade.api.analytics_wire import indicator_kline_message, signal_json, snapshot_json
from memetrade.api.context import AppContext
from memetrade.domain.errors import InvalidIndicator
from memetrade.domain.indicator_params import MAX_INDICATORS, parse_token
from memetrade.domain.indicator_series import Point
from memetrade.domain.indicators import Indicator
from memetrade.domain.intervals import Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.ports import StorageError
from memetrade.services.analytics import MarketAnalytics, SignalChange, StreamKey
from memetrade.services.hub import Hub

__all__ = [
    "SNAPSHOT_PERIOD_S",
    "AnalyticsPublisher",
    "current_snapshots",
    "indicator_topic",
    "market_topic",
    "parse_indicator_list",
    "serve_klines_with_indicators",
]

SNAPSHOT_PERIOD_S = 0.25
# The history behind the indicators could not be read (storage failed).
CLOSE_UNAVAILABLE = 1011

Serve = Callable[[WebSocket, str, list[str]], Awaitable[None]]


def market_topic(interval: Interval) -> str:
    return f"market:{interval.name}"


def indicator_topic(stream: StreamKey, closed_only: bool) -> str:
    keys = ",".join(indicator.key for indicator in stream.indicators)
    return (
        f"klines:{stream.symbol}:{stream.interval.name}{':closed' if closed_only else ''}"
        f":indicators={keys}"
    )


def parse_indicator_list(text: str) -> tuple[Indicator, ...]:
    """``sma20,rsi14`` as indicators, deduplicated, in a canonical order (by key)."""
    tokens = [token for token in text.split(",") if token.strip()]
    if not tokens:
        raise InvalidIndicator("indicators must name at least one, like sma20,rsi14")
    unique = {indicator.key: indicator for indicator in map(parse_token, tokens)}
    if len(unique) > MAX_INDICATORS:
        raise InvalidIndicator(f"at most {MAX_INDICATORS} indicators per stream")
    return tuple(unique[key] for key in sorted(unique))


class AnalyticsPublisher:
    def __init__(self, hub: Hub, analytics: MarketAnalytics, specs: dict[str, SymbolSpec]):
        self._hub = hub
        self._analytics = analytics
        self._specs = specs
        self._dirty: dict[tuple[str, Interval], None] = {}

    def on_signal(self, change: SignalChange) -> None:
        topic = market_topic(change.snapshot.interval)
        if self._hub.has_subscribers(topic):
            spec = self._specs[change.snapshot.symbol]
            self._hub.publish(topic, signal_json(spec, change))

    def on_snapshot(self, symbol: str, interval: Interval) -> None:
        self._dirty[(symbol, interval)] = None

    def on_points(self, stream: StreamKey, seq: int, points: Sequence[Point]) -> None:
        hub = self._hub
        live, closed = indicator_topic(stream, False), indicator_topic(stream, True)
        want_live, want_closed = hub.has_subscribers(live), hub.has_subscribers(closed)
        if not (want_live or want_closed):
            return
        spec = self._specs[stream.symbol]
        for point in points:
            if not want_live and point.provisional:
                continue
            message = indicator_kline_message(spec, stream.indicators, stream.interval, seq, point)
            key = point.candle.open_time
            if want_live:
                hub.publish_state(live, key, message)
            if want_closed and not point.provisional:
                hub.publish_state(closed, key, message)

    def flush(self) -> None:
        """Publish the snapshots that changed since the last flush."""
        dirty, self._dirty = self._dirty, {}
        hub = self._hub
        for symbol, interval in dirty:
            topic = market_topic(interval)
            if not hub.has_subscribers(topic):
                continue
            snapshot = self._analytics.snapshot(symbol, interval)
            if snapshot is not None:
                hub.publish_state(topic, symbol, snapshot_json(self._specs[symbol], snapshot))

    async def run(self, period_s: float = SNAPSHOT_PERIOD_S) -> None:
        """Flush every ``period_s`` seconds, until cancelled."""
        while True:
            await asyncio.sleep(period_s)
            self.flush()


def current_snapshots(ctx: AppContext, interval: Interval) -> list[str]:
    """The current snapshot of every symbol (what a new ``/ws`` client gets first)."""
    out = []
    for symbol, spec in ctx.market.specs.items():
        snapshot = ctx.analytics.snapshot(symbol, interval)
        if snapshot is not None:
            out.append(snapshot_json(spec, snapshot))
    return out


async def serve_klines_with_indicators(
    websocket: WebSocket,
    ctx: AppContext,
    spec: SymbolSpec,
    interval: Interval,
    indicators: tuple[Indicator, ...],
    closed_only: bool,
    serve: Serve,
) -> None:
    """Serve ``/ws/klines/{symbol}/{interval}?indicators=…`` through ``serve`` (the plain
    stream's connection loop), holding the live series for as long as the client stays."""
    stream = StreamKey(spec.name, interval, indicators)
    try:
        series = await ctx.analytics.acquire(stream)
    except StorageError:
        await websocket.accept()
        await websocket.close(CLOSE_UNAVAILABLE, "storage is not available; retry")
        return
    try:
        first: list[str] = []
        point = series.last()
        if point is not None and point.provisional and not closed_only:
            seq = ctx.market.books[spec.name].seq(interval)
            first.append(indicator_kline_message(spec, indicators, interval, seq, point))
        await serve(websocket, indicator_topic(stream, closed_only), first)
    finally:
        ctx.analytics.release(stream)
