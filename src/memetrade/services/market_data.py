"""The market-data service: trades in, candles kept, stored and announced; history served.

Trades from every source (generator, ingest API) take one path: applied to the symbol's candle
book, stored with the candle states they produced in one group-committed transaction, and only
then announced to listeners. So what a client sees has been stored, and an ingest request is
acknowledged only once its trades are durable.
"""

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Protocol

from memetrade.domain.candle_book import CandleBook
from memetrade.domain.candles import Candle, CandleRules, CandleUpdate, fill_gaps
from memetrade.domain.errors import DomainError, TradeTooOld, UnknownSymbol
from memetrade.domain.intervals import INTERVALS, Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Trade
from memetrade.ports import Clock, TradeStore

__all__ = [
    "CLOSE_DELAY_MS",
    "MAX_KLINES",
    "IngestResult",
    "Listener",
    "MarketData",
    "Rejection",
    "Writer",
]

log = logging.getLogger(__name__)

MAX_KLINES = 1000
# A candle whose interval ended with no later trade yet is closed by the clock this long after
# its end, so trades stamped just before the boundary but still in flight (a generator tick,
# a feed's latency) land in it before it is announced as closed rather than revising it after.
# A trade stamped after the boundary closes it at once.
CLOSE_DELAY_MS = 250


class Writer(Protocol):
    """Where ``MarketData`` commits (``GroupCommitWriter``); returns once durable."""

    async def submit(self, trades: Sequence[Trade], candles: Sequence[CandleUpdate]) -> None: ...


class Listener(Protocol):
    """Told about stored trades and candle updates, in order; must not block."""

    def on_trades(self, trades: Sequence[Trade]) -> None: ...

    def on_candles(self, updates: Sequence[CandleUpdate]) -> None: ...


@dataclass(frozen=True, slots=True)
class Rejection:
    index: int
    code: str
    message: str


@dataclass(slots=True)
class IngestResult:
    accepted: int = 0
    duplicates: int = 0
    rejected: list[Rejection] = field(default_factory=list)


class MarketData:
    def __init__(
        self,
        specs: Sequence[SymbolSpec],
        rules: CandleRules,
        store: TradeStore,
        writer: Writer,
        clock: Clock,
    ) -> None:
        self.specs = {spec.name: spec for spec in specs}
        self.rules = rules
        self.books = {spec.name: CandleBook(spec.name, rules) for spec in specs}
        self._store = store
        self._writer = writer
        self._clock = clock
        self._listeners: list[Listener] = []
        # Per symbol, the number (``Trade.seq``) of its last accepted trade; the next accepted
        # trade gets the one after. Restored from the store, which keeps the numbers given.
        self._trade_seq = dict.fromkeys(self.specs, 0)
        self.trades_ingested = 0

    def add_listener(self, listener: Listener) -> None:
        self._listeners.append(listener)

    def now_ms(self) -> int:
        """The service clock's time, epoch ms (what API dialects report as server time)."""
        return self._clock.now_ms()

    def last_trade_seq(self, symbol: str) -> int:
        """The number (``Trade.seq``) of ``symbol``'s last accepted trade; 0 before any."""
        self.spec(symbol)
        return self._trade_seq[symbol]

    def spec(self, symbol: str) -> SymbolSpec:
        try:
            return self.specs[symbol]
        except KeyError:
            raise UnknownSymbol(f"unknown symbol {symbol!r}") from None

    # -- start-up ------------------------------------------------------------------------

    async def restore(self) -> None:
        """Load recent candles and the ids of trades that may still be replayed."""
        now = self._clock.now_ms()
        id_window = self.rules.max_trade_age_ms + self.rules.max_trade_ahead_ms + 1000
        for symbol, book in self.books.items():
            for interval in INTERVALS:
                candles = await self._store.latest_candles(
                    symbol, interval, book.retention(interval)
                )
                book.restore(interval, candles)
            book.restore_ids(await self._store.trade_keys_since(symbol, now - id_window))
            self._trade_seq[symbol] = await self._store.last_trade_seq(symbol)
            book.advance(now)
            book.drain()

    # -- commands ------------------------------------------------------------------------

    async def ingest(self, trades: Sequence[Trade]) -> IngestResult:
        """Apply, store and announce ``trades``; return once the accepted ones are durable.

        All or nothing: when any trade is refused (unknown symbol, outside the time window),
        ``rejected`` says which and why and nothing is applied. A trade whose id is already
        known counts as a duplicate and changes nothing, so a retried batch is harmless.
        """
        result = IngestResult()
        now = self._clock.now_ms()
        too_old: list[tuple[int, Trade, TradeTooOld]] = []
        for index, trade in enumerate(trades):
            book = self.books.get(trade.symbol)
            try:
                if book is None:
                    raise UnknownSymbol(f"unknown symbol {trade.symbol!r}")
                book.rules.check_time(trade, now)
            except TradeTooOld as exc:
                too_old.append((index, trade, exc))
            except DomainError as exc:
                result.rejected.append(Rejection(index, exc.code, exc.message))
        stored_before = await self._stored_ids(too_old, result) if too_old else set()
        if result.rejected:
            return result
        # No await from here to the drain: these updates are exactly this batch's. The same
        # ``now`` as the checks above, so the window verdicts cannot change in between.
        accepted: list[Trade] = []
        touched: dict[str, CandleBook] = {}
        for index, trade in enumerate(trades):
            book = self.books[trade.symbol]
            try:
                if index not in stored_before and book.apply(trade, now):
                    # Numbered here, in acceptance order, so that streams can show the number
                    # the store will keep (no await before the write is submitted). A trade
                    # numbered upstream (a stored trade followed from the bus) keeps its own.
                    last = self._trade_seq[trade.symbol]
                    if trade.seq == 0:
                        trade = Trade(
                            trade.id,
                            trade.symbol,
                            trade.price,
                            trade.amount,
                            trade.side,
                            trade.ts,
                            last + 1,
                        )
                    self._trade_seq[trade.symbol] = max(last, trade.seq)
                    accepted.append(trade)
                    touched[trade.symbol] = book
                    continue
            except TradeTooOld as exc:
                # Only if the store stalled for seconds while others moved the book on.
                result.rejected.append(Rejection(index, exc.code, exc.message))
                continue
            result.duplicates += 1
        for book in touched.values():
            # A symbol's first trade may lie in an earlier second; the clock task does not
            # move a book before its first trade, so without this its open candle would trail
            # the clock (an ended second served as open) until the next tick. Same delay as
            # the tick, so trades still in flight for the previous second are not cut off.
            book.advance(now - CLOSE_DELAY_MS)
        updates = [update for book in touched.values() for update in book.drain()]
        await self._writer.submit(accepted, updates)
        result.accepted = len(accepted)
        self.trades_ingested += len(accepted)
        self._announce(accepted, updates)
        return result

    async def _stored_ids(
        self, too_old: list[tuple[int, Trade, TradeTooOld]], result: IngestResult
    ) -> set[int]:
        """Indexes of too-old trades that are stored already (a retry is a duplicate, not an
        error); the others are rejected."""
        by_symbol: dict[str, list[str]] = {}
        for _, trade, _ in too_old:
            by_symbol.setdefault(trade.symbol, []).append(trade.id)
        known = {
            (symbol, trade_id)
            for symbol, ids in by_symbol.items()
            for trade_id in await self._store.existing_ids(symbol, ids)
        }
        stored: set[int] = set()
        for index, trade, exc in too_old:
            if (trade.symbol, trade.id) in known:
                stored.add(index)
            else:
                result.rejected.append(Rejection(index, exc.code, exc.message))
        return stored

    async def tick(self) -> None:
        """Move every book to the current time less ``CLOSE_DELAY_MS``, closing the candles
        that ended, and announce them."""
        now = self._clock.now_ms() - CLOSE_DELAY_MS
        updates: list[CandleUpdate] = []
        for book in self.books.values():
            book.advance(now)
            updates.extend(book.drain())
        if updates:
            await self._writer.submit((), updates)
            self._announce((), updates)

    async def run_clock(self) -> None:
        """Tick ``CLOSE_DELAY_MS`` after every second boundary."""
        while True:
            now = self._clock.now_ms() - CLOSE_DELAY_MS
            await asyncio.sleep((1000 - now % 1000 + 1) / 1000)
            await self.tick()

    def _announce(self, trades: Sequence[Trade], updates: Sequence[CandleUpdate]) -> None:
        for listener in self._listeners:
            if trades:
                listener.on_trades(trades)
            if updates:
                listener.on_candles(updates)

    # -- queries ---------------------------------------------------------------------------

    def last_price(self, symbol: str) -> int | None:
        """The close of the newest candle of ``symbol`` (ticks), None before its first trade."""
        book = self.books[symbol]
        second = INTERVALS[0]
        open_t = book.open_time(second)
        return None if open_t < 0 else book.close_before(second, open_t + second.ms)

    async def klines(
        self,
        symbol: str,
        interval: Interval,
        limit: int,
        start: int | None = None,
        end: int | None = None,
    ) -> tuple[list[Candle], int]:
        """Up to ``limit`` candles, oldest first, and the stream's sequence number they are
        current at. With ``start``: the first candles opening at or after it; otherwise the
        last ones opening at or before ``end`` (default: now, the open candle included)."""
        self.spec(symbol)
        book = self.books[symbol]
        seq = book.seq(interval)
        open_t = book.open_time(interval)
        step = interval.ms
        if open_t < 0:
            return [], seq
        last = open_t if end is None else min(open_t, end - end % step)
        if start is not None:
            first = -(-start // step) * step
            first = await self._skip_leading_void(symbol, interval, first, last)
            last = min(last, first + (limit - 1) * step)
        else:
            first = last - (limit - 1) * step
        if first > last:
            return [], seq
        return await self._range(book, symbol, interval, first, last), seq

    async def _skip_leading_void(
        self, symbol: str, interval: Interval, first: int, last: int
    ) -> int:
        # Before a symbol's first trade there are no candles: start at the first one.
        book = self.books[symbol]
        if book.close_before(interval, first) is not None:
            return first
        if await self._store.last_candle_before(symbol, interval, first) is not None:
            return first
        stored = await self._store.candles(symbol, interval, first, last, 1)
        if stored:
            return max(first, stored[0].open_time)
        in_memory = book.candles(interval, max(first, book.memory_start(interval)), last)
        return in_memory[0].open_time if in_memory else first

    async def _range(
        self, book: CandleBook, symbol: str, interval: Interval, first: int, last: int
    ) -> list[Candle]:
        memory_start = book.memory_start(interval)
        older: list[Candle] = []
        if first < memory_start:
            stored_end = min(last, memory_start - interval.ms)
            count = (stored_end - first) // interval.ms + 1
            stored = await self._store.candles(symbol, interval, first, stored_end, count)
            prev = None
            if not stored or stored[0].open_time != first:
                before = await self._store.last_candle_before(symbol, interval, first)
                prev = None if before is None else before.close
            older = fill_gaps(stored, first, stored_end, interval, prev)
            first = memory_start
        if first > last:
            return older
        prev_close = older[-1].close if older else book.close_before(interval, first)
        if prev_close is None:
            # Memory holds nothing older; an idle symbol's last close may be in storage only.
            before = await self._store.last_candle_before(symbol, interval, first)
            prev_close = None if before is None else before.close
        return older + book.candles(interval, first, last, prev_close)
