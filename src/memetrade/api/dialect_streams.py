"""Stream topics of the Binance-compatible WebSocket and of the native ``/ws/stream``, and the
publisher that feeds them from the same service events as every other stream.

``DialectPublisher`` is a ``MarketData`` listener and an ``AnalyticsSink``. Like
``HubPublisher`` it encodes a message only if some client listens to its topic, and then once
for all of them. Per family:

* Binance (``bn:raw:<stream>`` and ``bn:comb:<stream>``, the latter wrapped as
  ``{"stream","data"}``): trades are published at once, as events. Klines and tickers are
  conflated and pushed by ``run`` at most once a second per stream, Binance's documented
  cadence: a candle update only marks its window dirty, and the flush publishes each dirty
  window's current state (read through ``services.candle_views``, so a 4h kline is the merge
  of the stored 1h candles), with ``x`` true once the window has ended.
* native multiplexed (``mux:<stream>``, wrapped as ``{"stream","data"}``): trades and signal
  events at once as events; candles at once as state (the native stream's conflation);
  tickers once a second when they changed.

State keys are ``(topic, open_time)``: one subscriber holds many topics, and two topics'
candles must not replace each other in its conflation buffer.
"""

import asyncio
import logging
from collections.abc import Sequence

from memetrade.api import binance_wire as bw
from memetrade.api.analytics_wire import signal_json, ticker_json
from memetrade.api.binance_rest import ticker_extras
from memetrade.api.context import AppContext
from memetrade.api.streams import kline_message
from memetrade.api.wire import trade_json
from memetrade.domain.candles import CandleUpdate
from memetrade.domain.indicator_series import Point
from memetrade.domain.intervals import INTERVALS, Interval
from memetrade.domain.resample import BINANCE_INTERVALS, Bucket, bucket
from memetrade.domain.trades import Trade
from memetrade.ports import StorageError
from memetrade.services.analytics import SignalChange, StreamKey
from memetrade.services.candle_views import bucket_klines, open_bucket

__all__ = [
    "FLUSH_PERIOD_S",
    "DialectPublisher",
    "binance_topics",
    "mux_topic",
]

log = logging.getLogger(__name__)

FLUSH_PERIOD_S = 1.0
_MINUTE = INTERVALS[1]
# Binance kline intervals by the stored interval they are merged from.
_BUCKETS_BY_BASE: dict[Interval, list[Bucket]] = {}
for _name in BINANCE_INTERVALS:
    _b = bucket(_name)
    _BUCKETS_BY_BASE.setdefault(_b.base, []).append(_b)


def binance_topics(stream: str) -> tuple[str, str]:
    """The raw and the combined (``{"stream","data"}``-wrapped) topic of a Binance stream."""
    return f"bn:raw:{stream}", f"bn:comb:{stream}"


def mux_topic(stream: str) -> str:
    return f"mux:{stream}"


def _wrap(stream: str, data: str) -> str:
    return f'{{"stream":"{stream}","data":{data}}}'


class DialectPublisher:
    def __init__(self, ctx: AppContext) -> None:
        self._ctx = ctx
        self._hub = ctx.hub
        self._names = bw.BinanceNames(ctx.market.specs, ctx.settings.quote_asset)
        # Names and topics per symbol, built once: the listener runs for every trade batch.
        self._trade_topics: dict[str, tuple[str, str, str, str, str]] = {}
        self._kline_topics: dict[tuple[str, Interval], list[tuple[str, Bucket, str, str]]] = {}
        for symbol, spec in ctx.market.specs.items():
            lower = self._names.name(spec).lower()
            stream = f"{lower}@trade"
            mux_stream = f"trades.{symbol}"
            self._trade_topics[symbol] = (
                stream,
                *binance_topics(stream),
                mux_stream,
                mux_topic(mux_stream),
            )
            for base, targets in _BUCKETS_BY_BASE.items():
                self._kline_topics[(symbol, base)] = [
                    (f"{lower}@kline_{t.name}", t, *binance_topics(f"{lower}@kline_{t.name}"))
                    for t in targets
                ]
        # Binance kline windows to push: (stream name, bucket, symbol) -> open times.
        self._dirty_klines: dict[tuple[str, Bucket, str], set[int]] = {}
        self._dirty_tickers: set[str] = set()

    # -- MarketData listener ------------------------------------------------------------------

    def on_trades(self, trades: Sequence[Trade]) -> None:
        hub, specs = self._hub, self._ctx.market.specs
        now = -1
        by_topic: dict[str, list[str]] = {}
        for trade in trades:
            stream, raw, comb, mux_stream, mux = self._trade_topics[trade.symbol]
            want_raw, want_comb = hub.has_subscribers(raw), hub.has_subscribers(comb)
            if want_raw or want_comb:
                if now < 0:
                    now = self._ctx.market.now_ms()
                spec = specs[trade.symbol]
                event = bw.trade_event(self._names.name(spec), spec, trade, now)
                if want_raw:
                    by_topic.setdefault(raw, []).append(event)
                if want_comb:
                    by_topic.setdefault(comb, []).append(_wrap(stream, event))
            if hub.has_subscribers(mux):
                data = trade_json(specs[trade.symbol], trade)
                by_topic.setdefault(mux, []).append(_wrap(mux_stream, data))
        for topic, messages in by_topic.items():
            hub.publish_many(topic, messages)

    def on_candles(self, updates: Sequence[CandleUpdate]) -> None:
        hub = self._hub
        for update in updates:
            symbol = update.symbol
            if update.interval is _MINUTE:
                self._dirty_tickers.add(symbol)
            for stream, target, raw, comb in self._kline_topics.get((symbol, update.interval), ()):
                if hub.has_subscribers(raw) or hub.has_subscribers(comb):
                    windows = self._dirty_klines.setdefault((stream, target, symbol), set())
                    windows.add(target.open_time(update.candle.open_time))
            mux_stream = f"candles.{symbol}.{update.interval.name}"
            topic = mux_topic(mux_stream)
            if hub.has_subscribers(topic):
                message = _wrap(mux_stream, kline_message(self._ctx.market.specs[symbol], update))
                hub.publish_state(topic, (topic, update.candle.open_time), message)

    # -- AnalyticsSink ------------------------------------------------------------------------

    def on_signal(self, change: SignalChange) -> None:
        stream = f"signals.{change.snapshot.interval.name}"
        topic = mux_topic(stream)
        if self._hub.has_subscribers(topic):
            spec = self._ctx.market.specs[change.snapshot.symbol]
            self._hub.publish(topic, _wrap(stream, signal_json(spec, change)))

    def on_snapshot(self, symbol: str, interval: Interval) -> None:
        pass

    def on_points(self, stream: StreamKey, seq: int, points: Sequence[Point]) -> None:
        pass

    # -- the once-a-second push ---------------------------------------------------------------

    async def run(self, period_s: float = FLUSH_PERIOD_S) -> None:
        """Push conflated klines and tickers every ``period_s`` seconds, until cancelled.
        A storage failure skips one push (and is logged); the next one retries."""
        while True:
            await asyncio.sleep(period_s)
            try:
                await self.flush()
            except StorageError as exc:
                log.warning("dialect stream push skipped: %s", exc)

    async def flush(self) -> None:
        await self._flush_klines()
        await self._flush_tickers()

    async def _flush_klines(self) -> None:
        dirty, self._dirty_klines = self._dirty_klines, {}
        hub, market = self._hub, self._ctx.market
        for (stream, target, symbol), windows in dirty.items():
            raw, comb = binance_topics(stream)
            spec = market.specs[symbol]
            name = self._names.name(spec)
            for window in sorted(windows):
                if not (hub.has_subscribers(raw) or hub.has_subscribers(comb)):
                    break
                candles, _ = await bucket_klines(market, symbol, target, 1, start=window)
                if not candles or candles[0].open_time != window:
                    continue
                closed = window < open_bucket(market, symbol, target)
                event = bw.kline_event(name, spec, target, candles[0], closed, market.now_ms())
                if hub.has_subscribers(raw):
                    hub.publish_state(raw, (raw, window), event)
                if hub.has_subscribers(comb):
                    hub.publish_state(comb, (comb, window), _wrap(stream, event))

    async def _flush_tickers(self) -> None:
        dirty, self._dirty_tickers = self._dirty_tickers, set()
        hub, ctx = self._hub, self._ctx
        for symbol in dirty:
            spec = ctx.market.specs[symbol]
            name = self._names.name(spec)
            lower = name.lower()
            stats = ctx.analytics.ticker(symbol)
            now = ctx.market.now_ms()
            full = f"{lower}@ticker"
            mini = f"{lower}@miniTicker"
            wanted = {
                topic: stream
                for stream in (full, mini)
                for topic in binance_topics(stream)
                if hub.has_subscribers(topic)
            }
            if wanted:
                extras = await ticker_extras(ctx, spec, stats)
                events = {
                    full: bw.ticker_event(name, spec, stats, extras, now),
                    mini: bw.mini_ticker_event(name, spec, stats, now),
                }
                for topic, stream in wanted.items():
                    event = events[stream]
                    text = _wrap(stream, event) if topic.startswith("bn:comb:") else event
                    hub.publish_state(topic, (topic, 0), text)
            mux_stream = f"ticker.{symbol}"
            topic = mux_topic(mux_stream)
            if hub.has_subscribers(topic):
                snapshot = ctx.analytics.snapshot(symbol, _MINUTE)
                text = ticker_json(spec, _MINUTE, stats, snapshot)
                hub.publish_state(topic, (topic, 0), _wrap(mux_stream, text))
