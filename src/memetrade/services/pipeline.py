"""The scale-out roles' services: trades onto the bus, aggregated off it, followed by API
instances.

::

    POST /internal/trades ─> BusIngest ─> trades.<SYM> (JetStream) ─> Aggregator
        ─> MarketData (candle books, store commit) ─> stored.<SYM> ─> Follower (each API)
                                                   └> candles.<SYM>.<iv> (live)

Delivery is at least once at every hop and every consumer is idempotent by trade id, so a
crash anywhere loses nothing and counts nothing twice:

* the aggregator acknowledges a ``trades.`` message only after its trades are committed to
  storage and re-published on ``stored.``; if it dies before the ack, the message comes again
  and ``MarketData`` counts the trades already stored as duplicates;
* a redelivered message may hold trades that were stored but never re-published (the crash
  fell between the two), so for a redelivered batch every trade is re-published, and
  followers drop the ones they have (their candle books know recent trade ids).
"""

import asyncio
import contextlib
import logging
from collections.abc import Sequence

import msgspec

from memetrade.domain.candles import CandleRules, CandleUpdate
from memetrade.domain.errors import DomainError
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Trade
from memetrade.ports import Bus, BusError, Clock, Delivery
from memetrade.services.backoff import Backoff
from memetrade.services.bus_messages import (
    MAX_TRADES_PER_MESSAGE,
    candle_subject,
    decode_trades,
    encode_candle,
    encode_trades,
    stored_subject,
    trades_subject,
)
from memetrade.services.market_data import IngestResult, MarketData, Rejection

__all__ = [
    "Aggregator",
    "BusIngest",
    "CandleBroadcaster",
    "DiscardWriter",
    "Follower",
    "apply_all_valid",
]

log = logging.getLogger(__name__)


class DiscardWriter:
    """The writer of a follower's ``MarketData``: its candles are another process's to store."""

    async def submit(self, trades: Sequence[Trade], candles: Sequence[CandleUpdate]) -> None:
        return None


async def apply_all_valid(market: MarketData, trades: Sequence[Trade]) -> list[Trade]:
    """Ingest ``trades`` into ``market``, dropping (and returning) the ones it refuses.

    ``MarketData.ingest`` is all or nothing, which is right for a client who can fix its
    batch; a consumer of the bus cannot, and must not block its stream on one trade that
    became too old while it waited (an aggregator down for longer than ``MAX_TRADE_AGE``).
    """
    dropped: list[Trade] = []
    pending = list(trades)
    while pending:
        result = await market.ingest(pending)
        if not result.rejected:
            break
        bad = {r.index for r in result.rejected}
        for r in result.rejected:
            log.warning("dropped trade %s from the bus: %s", pending[r.index].id, r.message)
        dropped += [t for i, t in enumerate(pending) if i in bad]
        pending = [t for i, t in enumerate(pending) if i not in bad]
    return dropped


class BusIngest:
    """The ingest path of the ``ingest`` and ``api`` roles: validate, then publish.

    ``ingest`` returns once every trade is stored in the JetStream stream (see
    ``adapters/bus/nats.py`` for what that survives). It checks what can be checked without
    the candle books (symbol, time window); duplicates are counted later, by the aggregator,
    so ``duplicates`` is always 0 here. When publishing fails part-way, some symbols' trades
    may be queued: the error tells the client to retry, and the retry is deduplicated.
    """

    def __init__(
        self, bus: Bus, specs: Sequence[SymbolSpec], rules: CandleRules, clock: Clock
    ) -> None:
        self._bus = bus
        self._specs = {spec.name for spec in specs}
        self._rules = rules
        self._clock = clock
        self.published = 0

    async def ingest(self, trades: Sequence[Trade]) -> IngestResult:
        result = IngestResult()
        now = self._clock.now_ms()
        by_symbol: dict[str, list[Trade]] = {}
        for index, trade in enumerate(trades):
            if trade.symbol not in self._specs:
                message = f"unknown symbol {trade.symbol!r}"
                result.rejected.append(Rejection(index, "unknown_symbol", message))
                continue
            try:
                self._rules.check_time(trade, now)
            except DomainError as exc:
                result.rejected.append(Rejection(index, exc.code, exc.message))
                continue
            by_symbol.setdefault(trade.symbol, []).append(trade)
        if result.rejected:
            return result
        await asyncio.gather(
            *(
                self._bus.publish(trades_subject(symbol), encode_trades(batch[i : i + size]))
                for symbol, batch in by_symbol.items()
                for size in (MAX_TRADES_PER_MESSAGE,)
                for i in range(0, len(batch), size)
            )
        )
        result.accepted = len(trades)
        self.published += len(trades)
        return result


class _StoredTrades:
    """A ``Listener`` collecting the trades ``MarketData`` stored, per symbol."""

    def __init__(self) -> None:
        self.by_symbol: dict[str, list[Trade]] = {}

    def on_trades(self, trades: Sequence[Trade]) -> None:
        for trade in trades:
            self.by_symbol.setdefault(trade.symbol, []).append(trade)

    def on_candles(self, updates: Sequence[CandleUpdate]) -> None:
        return None

    def take(self, symbol: str) -> list[Trade]:
        return self.by_symbol.pop(symbol, [])


class Aggregator:
    """The ``aggregate`` role: one durable consumer per owned symbol (``aggregate-<SYM>``).

    Each symbol must be owned by exactly one aggregator: two would split its stream between
    them and each would hold half a candle book.
    """

    def __init__(self, bus: Bus, market: MarketData, batch: int = 2_000) -> None:
        self._bus = bus
        self._market = market
        self._batch = batch
        self._stored = _StoredTrades()
        market.add_listener(self._stored)
        self.dropped = 0

    async def run(self) -> None:
        async with asyncio.TaskGroup() as group:
            for symbol in self._market.specs:
                group.create_task(self._run_symbol(symbol), name=f"aggregate-{symbol}")

    async def _run_symbol(self, symbol: str) -> None:
        backoff = Backoff()
        while True:
            batches = self._bus.consume(trades_subject(symbol), f"aggregate-{symbol}", self._batch)
            try:
                async with contextlib.aclosing(batches):
                    async for deliveries in batches:
                        await self._handle(symbol, deliveries)
                        backoff.reset()
            except BusError as exc:
                # NATS is away (or restarting): nothing acknowledged is lost; retry.
                log.warning("aggregate %s: %s; retrying", symbol, exc)
                await backoff.sleep()

    async def _handle(self, symbol: str, deliveries: Sequence[Delivery]) -> None:
        trades: list[Trade] = []
        for delivery in deliveries:
            try:
                trades += decode_trades(delivery.data)
            except (msgspec.DecodeError, KeyError, ValueError, TypeError):
                log.error("dropped an undecodable message on %s", trades_subject(symbol))
        trades = [t for t in trades if t.symbol == symbol]
        self._stored.take(symbol)
        dropped = await apply_all_valid(self._market, trades)
        self.dropped += len(dropped)
        stored = self._stored.take(symbol)
        if any(d.redelivered for d in deliveries):
            # Possibly stored but never re-published before a crash: re-publish them all.
            refused = {t.id for t in dropped}
            stored = [t for t in trades if t.id not in refused]
        for i in range(0, len(stored), MAX_TRADES_PER_MESSAGE):
            chunk = stored[i : i + MAX_TRADES_PER_MESSAGE]
            await self._bus.publish(stored_subject(symbol), encode_trades(chunk))
        for delivery in deliveries:
            await delivery.ack()


class Follower:
    """The ``api`` role's view of the market: ``MarketData`` (with a ``DiscardWriter``) fed
    with the trades aggregators stored, so every route of the API works unchanged, and every
    API instance holds the same candles (a candle is a function of its set of trades, not of
    the order they came in)."""

    # Start replaying this long before the restore read the store: a trade committed just
    # before the read may be re-published just after it; duplicates are dropped by id.
    MARGIN_MS = 10_000

    def __init__(self, bus: Bus, market: MarketData, clock: Clock) -> None:
        self._bus = bus
        self._market = market
        self._clock = clock
        self.connected = False

    async def run(self, since_ms: int) -> None:
        backoff = Backoff()
        since = since_ms - self.MARGIN_MS
        while True:
            messages = self._bus.follow("stored.>", since)
            try:
                async with contextlib.aclosing(messages):
                    async for data in messages:
                        self.connected = True
                        since = self._clock.now_ms() - self.MARGIN_MS
                        await self._apply(data)
                        backoff.reset()
            except BusError as exc:
                self.connected = False
                log.warning("follow stored trades: %s; retrying", exc)
                await backoff.sleep()

    async def _apply(self, data: bytes) -> None:
        try:
            trades = decode_trades(data)
        except (msgspec.DecodeError, KeyError, ValueError, TypeError):
            log.error("dropped an undecodable message on stored.>")
            return
        mine = [t for t in trades if t.symbol in self._market.specs]
        if mine:
            await apply_all_valid(self._market, mine)


class CandleBroadcaster:
    """A ``Listener`` sending candle updates on ``candles.<SYM>.<iv>`` (live, best effort).

    Updates wait in a buffer conflated by candle (only a candle's latest state matters), so
    the buffer holds at most one entry per open candle and a slow bus never slows the
    aggregator; ``run`` sends them.
    """

    def __init__(self, bus: Bus) -> None:
        self._bus = bus
        self._pending: dict[tuple[str, str, int], CandleUpdate] = {}
        self._wake = asyncio.Event()

    def on_trades(self, trades: Sequence[Trade]) -> None:
        return None

    def on_candles(self, updates: Sequence[CandleUpdate]) -> None:
        for update in updates:
            key = (update.symbol, update.interval.name, update.candle.open_time)
            self._pending.pop(key, None)
            self._pending[key] = update
        self._wake.set()

    async def run(self) -> None:
        while True:
            await self._wake.wait()
            self._wake.clear()
            pending, self._pending = self._pending, {}
            for update in pending.values():
                try:
                    await self._bus.broadcast(candle_subject(update), encode_candle(update))
                except BusError as exc:
                    log.debug("candle update not sent: %s", exc)
