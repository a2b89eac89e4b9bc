"""Tickers, indicators and BUY/SELL signals, kept current from the candle stream.

``MarketAnalytics`` is a listener of ``MarketData`` rather than a part of it: it consumes
exactly the candle updates clients see (stored first, then announced, late revisions
included), so everything it derives is a function of the stored candles, it can be restored
from storage like any client's view, and the market-data hot path does not grow with the
number of indicators. It keeps, per symbol, a rolling 24h ticker (fed 1m candles), per
(symbol, interval) an SMA-20 series and the current recommendation (so every interval's
signal is ready and flips are seen as they happen), and the indicator series that candle
streams asked for (``acquire``/``release``, shared by every client asking the same set).

What changes is told to sinks (``AnalyticsSink``): signal flips, which (symbol, interval)
snapshots moved, and the indicator points to republish. Sinks encode and fan out; this module
does no I/O but reading history through ``MarketData``.

Start-up: ``restore`` rebuilds the tickers from the last 24h of 1m candles and each SMA-20
series from the last candles of its interval, through ``MarketData.klines`` (memory first,
then storage), so values are right at once after a restart.
"""

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.domain.indicator_series import IndicatorSeries, Point, capacity_for
from memetrade.domain.indicators import DAY_MS, Indicator, Sma, Vwap
from memetrade.domain.intervals import INTERVALS, Interval
from memetrade.domain.ticker import WINDOW_MINUTES, RollingTicker, Signal, TickerStats, recommend
from memetrade.domain.trades import Trade
from memetrade.ports import StorageError
from memetrade.services.market_data import MarketData

__all__ = [
    "SIGNAL_SMA",
    "AnalyticsSink",
    "MarketAnalytics",
    "SignalChange",
    "Snapshot",
    "StreamKey",
]

SIGNAL_SMA = Sma(20)
_MINUTE = INTERVALS[1]
assert _MINUTE.name == "1m"


@dataclass(frozen=True, slots=True)
class Snapshot:
    """The latest price of ``symbol``, the SMA-20 of ``interval`` (``10**-4`` ticks) and the
    recommendation; ``timestamp`` is the time of the price (its trade, or the candle's open
    time when the open candle has no trade yet)."""

    symbol: str
    interval: Interval
    price: int
    sma: int | None
    signal: Signal
    timestamp: int


@dataclass(frozen=True, slots=True)
class SignalChange:
    """The recommendation of (``snapshot.symbol``, ``snapshot.interval``) changed."""

    snapshot: Snapshot
    previous: Signal


@dataclass(frozen=True, slots=True)
class StreamKey:
    """A candle stream with a set of indicators (in a canonical order)."""

    symbol: str
    interval: Interval
    indicators: tuple[Indicator, ...]


class AnalyticsSink(Protocol):
    """Told what changed, synchronously and in order; must not block."""

    def on_signal(self, change: SignalChange) -> None: ...

    def on_snapshot(self, symbol: str, interval: Interval) -> None:
        """The snapshot of (symbol, interval) changed; read it with ``snapshot``."""
        ...

    def on_points(self, stream: StreamKey, seq: int, points: Sequence[Point]) -> None: ...


@dataclass(slots=True)
class _Live:
    series: IndicatorSeries | None = None
    # Updates that arrived while the series' history was loading.
    pending: list[CandleUpdate] = field(default_factory=list)
    refs: int = 0
    ready: asyncio.Event = field(default_factory=asyncio.Event)


class MarketAnalytics:
    def __init__(self, market: MarketData) -> None:
        self._market = market
        rules = market.rules
        self._tickers = {symbol: RollingTicker() for symbol in market.specs}
        self._signal_series = {
            (symbol, iv): IndicatorSeries(iv, (SIGNAL_SMA,), capacity_for(iv, (SIGNAL_SMA,), rules))
            for symbol in market.specs
            for iv in INTERVALS
        }
        self._signals: dict[tuple[str, Interval], Signal] = {}
        self._live: dict[StreamKey, _Live] = {}
        self._streams: dict[tuple[str, Interval], set[StreamKey]] = {}
        self._sinks: list[AnalyticsSink] = []

    def add_sink(self, sink: AnalyticsSink) -> None:
        self._sinks.append(sink)

    # -- start-up ------------------------------------------------------------------------

    async def restore(self) -> None:
        """Rebuild tickers and SMA-20 series from stored and in-memory candles."""
        market = self._market
        for symbol, ticker in self._tickers.items():
            candles, _ = await market.klines(symbol, _MINUTE, WINDOW_MINUTES)
            for candle in candles:
                ticker.apply(candle)
            for iv in INTERVALS:
                series = self._signal_series[(symbol, iv)]
                count = (series.capacity or 0) + SIGNAL_SMA.warmup
                candles, _ = await market.klines(symbol, iv, count)
                series.extend(candles, market.books[symbol].open_time(iv))
                snapshot = self.snapshot(symbol, iv)
                if snapshot is not None:
                    self._signals[(symbol, iv)] = snapshot.signal

    # -- the MarketData listener -------------------------------------------------------------

    def on_trades(self, trades: Sequence[Trade]) -> None:
        pass  # everything here derives from candles

    def on_candles(self, updates: Sequence[CandleUpdate]) -> None:
        groups: dict[tuple[str, Interval], list[CandleUpdate]] = {}
        for update in updates:
            groups.setdefault((update.symbol, update.interval), []).append(update)
        for (symbol, iv), group in groups.items():
            if iv is _MINUTE:
                ticker = self._tickers[symbol]
                for update in group:
                    ticker.apply(update.candle)
            changes = [(update.candle, update.closed) for update in group]
            if self._signal_series[(symbol, iv)].update(changes):
                self._observe(symbol, iv)
            for key in self._streams.get((symbol, iv), ()):
                self._feed(key, group, changes)

    def _observe(self, symbol: str, iv: Interval) -> None:
        snapshot = self.snapshot(symbol, iv)
        if snapshot is None:
            return
        previous = self._signals.get((symbol, iv))
        self._signals[(symbol, iv)] = snapshot.signal
        if previous is not None and previous is not snapshot.signal:
            change = SignalChange(snapshot, previous)
            for sink in self._sinks:
                sink.on_signal(change)
        for sink in self._sinks:
            sink.on_snapshot(symbol, iv)

    def _feed(
        self, key: StreamKey, group: list[CandleUpdate], changes: list[tuple[Candle, bool]]
    ) -> None:
        live = self._live[key]
        if live.series is None:
            live.pending.extend(group)
            return
        points = live.series.update(changes)
        if points:
            seq = max(update.seq for update in group)
            for sink in self._sinks:
                sink.on_points(key, seq, points)

    # -- queries ---------------------------------------------------------------------------

    def ticker(self, symbol: str) -> TickerStats | None:
        """The rolling 24h figures of ``symbol``; None before its first trade."""
        self._market.spec(symbol)
        return self._tickers[symbol].stats()

    def snapshot(self, symbol: str, interval: Interval) -> Snapshot | None:
        """Price, SMA-20 of ``interval`` and recommendation; None before the first trade."""
        self._market.spec(symbol)
        point = self._signal_series[(symbol, interval)].last()
        if point is None:
            return None
        candle = point.candle
        sma = point.values[0]
        assert sma is None or isinstance(sma, int)
        ts = candle.last[0] if candle.last is not None else candle.open_time
        return Snapshot(symbol, interval, candle.close, sma, recommend(candle.close, sma), ts)

    async def indicator_points(
        self,
        symbol: str,
        interval: Interval,
        indicator: Indicator,
        limit: int,
        start: int | None = None,
        end: int | None = None,
    ) -> list[Point]:
        """The indicator at the candles ``MarketData.klines`` selects for the same arguments
        (one point per candle, None while warming up), computed over ``indicator.warmup``
        candles before the first of them."""
        market = self._market
        selected, _ = await market.klines(symbol, interval, limit, start, end)
        if not selected:
            return []
        first = selected[0].open_time
        warm: list[Candle] = []
        if indicator.warmup:
            warm, _ = await market.klines(
                symbol, interval, indicator.warmup, end=first - interval.ms
            )
        candles = warm + selected
        series = IndicatorSeries(
            interval, (indicator,), initial=await self._seeds(symbol, (indicator,), candles)
        )
        series.extend(candles, market.books[symbol].open_time(interval))
        return series.points(first)

    # -- live indicator streams ------------------------------------------------------------

    async def acquire(self, key: StreamKey) -> IndicatorSeries:
        """The live series of ``key``, loading its history on first use; ``release`` it once
        done. Raise ``StorageError`` when the history cannot be read."""
        live = self._live.get(key)
        if live is None:
            self._live[key] = live = _Live()
            self._streams.setdefault((key.symbol, key.interval), set()).add(key)
            try:
                series = await self._load(key)
            except BaseException:
                self._discard(key)
                live.ready.set()
                raise
            series.update((update.candle, update.closed) for update in live.pending)
            live.pending.clear()
            live.series = series
            live.ready.set()
        else:
            await live.ready.wait()
        if live.series is None:
            raise StorageError("the indicator history could not be loaded")
        live.refs += 1
        return live.series

    def release(self, key: StreamKey) -> None:
        live = self._live.get(key)
        if live is not None:
            live.refs -= 1
            if live.refs <= 0:
                self._discard(key)

    def _discard(self, key: StreamKey) -> None:
        self._live.pop(key, None)
        keys = self._streams.get((key.symbol, key.interval))
        if keys is not None:
            keys.discard(key)
            if not keys:
                del self._streams[(key.symbol, key.interval)]

    async def _load(self, key: StreamKey) -> IndicatorSeries:
        market = self._market
        capacity = capacity_for(key.interval, key.indicators, market.rules)
        warmup = max(indicator.warmup for indicator in key.indicators)
        candles, _ = await market.klines(key.symbol, key.interval, capacity + warmup)
        initial = await self._seeds(key.symbol, key.indicators, candles)
        series = IndicatorSeries(key.interval, key.indicators, capacity, initial)
        series.extend(candles, market.books[key.symbol].open_time(key.interval))
        return series

    async def _seeds(
        self, symbol: str, indicators: Sequence[Indicator], candles: list[Candle]
    ) -> dict[int, Any]:
        """Starting states for indicators that need more than the candles: a VWAP's session
        totals before the first candle."""
        seeds: dict[int, Any] = {}
        for k, indicator in enumerate(indicators):
            if isinstance(indicator, Vwap) and candles:
                t = candles[0].open_time
                quote, volume = await self._session_totals(symbol, t - t % DAY_MS, t)
                seeds[k] = Vwap.seeded(t, quote, volume)
        return seeds

    async def _session_totals(self, symbol: str, start: int, end: int) -> tuple[int, int]:
        """Quote volume and volume of the trades in ``[start, end)`` (``start`` aligned to
        every interval), from the coarsest candles that fit: at most 23 hours, 3 quarters,
        2 five-minutes, 4 minutes and 59 seconds, however fine the stream is."""
        quote = volume = 0
        cursor = start
        for iv in reversed(INTERVALS):
            stop = end - end % iv.ms
            if stop - cursor >= iv.ms:
                count = (stop - cursor) // iv.ms
                candles, _ = await self._market.klines(
                    symbol, iv, count, start=cursor, end=stop - iv.ms
                )
                quote += sum(candle.quote_volume for candle in candles)
                volume += sum(candle.volume for candle in candles)
                cursor = stop
        return quote, volume
