"""Helpers for tests, ours and users': real in-memory adapters, not mocks.

``MemoryStore`` is a complete ``TradeStore`` kept in dicts and sorted lists. It keeps the
protocol's promises the way the SQLite store does (idempotent trade inserts, candle upserts,
empty candles never stored, symbol steps checked on open, errors once closed), so a service
tested against it behaves the same against a real database. Its data outlives ``close``: opening
it again is like restarting a process on the same database file.
"""

from bisect import bisect_left, bisect_right, insort
from collections.abc import Sequence
from typing import TYPE_CHECKING

import msgspec

from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.domain.intervals import Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Trade
from memetrade.ports import StorageError

if TYPE_CHECKING:
    from memetrade.ports import TradeStore

__all__ = ["MemoryStore"]


class MemoryStore:
    """A ``TradeStore`` in memory. Every method is atomic: none awaits inside."""

    def __init__(self) -> None:
        self._open = False
        self._steps: dict[str, tuple[int, int]] = {}
        self._trades: dict[str, dict[str, Trade]] = {}
        # Per symbol, the (ts, id) keys of its trades, sorted.
        self._keys: dict[str, list[tuple[int, str]]] = {}
        self._candles: dict[tuple[str, str], dict[int, Candle]] = {}
        # Per (symbol, interval name), the open times of its candles, sorted.
        self._times: dict[tuple[str, str], list[int]] = {}
        # Per symbol, its trades in number order (numbers only grow, so this is append-only).
        self._by_seq: dict[str, list[Trade]] = {}
        self._count = 0
        self.writes = 0
        """How many ``write`` calls stored something (for tests of batching)."""

    def __repr__(self) -> str:
        return f"MemoryStore(trades={self._count}, open={self._open})"

    # -- lifecycle ---------------------------------------------------------------------------

    async def open(self, symbols: Sequence[SymbolSpec]) -> None:
        if self._open:
            raise StorageError("the memory store is already open")
        # Check every symbol before recording any, so a refused open changes nothing.
        new: dict[str, tuple[int, int]] = {}
        for spec in symbols:
            steps = (spec.price_decimals, spec.amount_decimals)
            old = self._steps.get(spec.name, new.get(spec.name))
            if old is not None and old != steps:
                raise StorageError(
                    f"symbol {spec.name} is stored with {old[0]} price and {old[1]} amount"
                    f" decimals but configured with {steps[0]} and {steps[1]}; its stored"
                    " prices and amounts would change meaning"
                )
            new[spec.name] = steps
        self._steps.update(new)
        self._open = True

    async def close(self) -> None:
        self._open = False

    async def ping(self) -> None:
        self._check_open()

    # -- writes ------------------------------------------------------------------------------

    async def write(self, trades: Sequence[Trade], candles: Sequence[CandleUpdate]) -> None:
        self._check_open()
        # Validate everything first: the write lands whole or not at all.
        for update in candles:
            c = update.candle
            if c.trades > 0 and (c.first is None or c.last is None):
                raise StorageError(
                    f"{update.symbol} {update.interval} candle at {c.open_time} has trades"
                    " but no keys"
                )
        stored = False
        for trade in trades:
            by_id = self._trades.setdefault(trade.symbol, {})
            if trade.id in by_id:
                continue  # Idempotent: a stored id is never replaced.
            numbered = self._by_seq.setdefault(trade.symbol, [])
            last = numbered[-1].seq if numbered else 0
            if trade.seq == 0:
                trade = msgspec.structs.replace(trade, seq=last + 1)
            elif trade.seq <= last:
                raise StorageError(f"{trade.symbol} trade number {trade.seq} is taken")
            numbered.append(trade)
            by_id[trade.id] = trade
            keys = self._keys.setdefault(trade.symbol, [])
            key = (trade.ts, trade.id)
            if not keys or keys[-1] < key:
                keys.append(key)  # The common case: trades arrive in time order.
            else:
                insort(keys, key)
            self._count += 1
            stored = True
        for update in candles:
            candle = update.candle
            if candle.trades == 0:
                continue  # Empty candles are materialised on read, never stored.
            stream = (update.symbol, update.interval.name)
            by_time = self._candles.setdefault(stream, {})
            if candle.open_time not in by_time:
                times = self._times.setdefault(stream, [])
                if not times or times[-1] < candle.open_time:
                    times.append(candle.open_time)
                else:
                    insort(times, candle.open_time)
            by_time[candle.open_time] = candle
            stored = True
        if stored:
            self.writes += 1

    # -- reads -------------------------------------------------------------------------------

    async def existing_ids(self, symbol: str, ids: Sequence[str]) -> set[str]:
        self._check_open()
        by_id = self._trades.get(symbol, {})
        return {i for i in ids if i in by_id}

    async def candles(
        self, symbol: str, interval: Interval, start: int, end: int, limit: int
    ) -> list[Candle]:
        self._check_open()
        times = self._times.get((symbol, interval.name), [])
        lo = bisect_left(times, start)
        hi = min(bisect_right(times, end), lo + max(limit, 0))
        by_time = self._candles[(symbol, interval.name)] if hi > lo else {}
        return [by_time[t] for t in times[lo:hi]]

    async def latest_candles(self, symbol: str, interval: Interval, limit: int) -> list[Candle]:
        self._check_open()
        times = self._times.get((symbol, interval.name), [])
        if limit <= 0 or not times:
            return []
        by_time = self._candles[(symbol, interval.name)]
        return [by_time[t] for t in times[-limit:]]

    async def last_candle_before(self, symbol: str, interval: Interval, t: int) -> Candle | None:
        self._check_open()
        times = self._times.get((symbol, interval.name), [])
        i = bisect_left(times, t)
        return self._candles[(symbol, interval.name)][times[i - 1]] if i else None

    async def trade_keys_since(self, symbol: str, ts: int) -> list[tuple[int, str]]:
        self._check_open()
        keys = self._keys.get(symbol, [])
        # "" sorts before every id, so this finds the first key with a timestamp >= ts.
        return keys[bisect_left(keys, (ts, "")) :]

    async def recent_trades(self, symbol: str, limit: int) -> list[Trade]:
        self._check_open()
        keys = self._keys.get(symbol, [])
        if limit <= 0 or not keys:
            return []
        by_id = self._trades[symbol]
        return [by_id[trade_id] for _, trade_id in reversed(keys[-limit:])]

    async def last_trade_seq(self, symbol: str) -> int:
        self._check_open()
        numbered = self._by_seq.get(symbol)
        return numbered[-1].seq if numbered else 0

    async def trades_by_seq(self, symbol: str, from_seq: int, limit: int) -> list[Trade]:
        self._check_open()
        numbered = self._by_seq.get(symbol, [])
        i = bisect_left([t.seq for t in numbered], from_seq)
        return numbered[i : i + max(limit, 0)]

    async def trades_by_time(self, symbol: str, start: int, end: int, limit: int) -> list[Trade]:
        self._check_open()
        found = [t for t in self._by_seq.get(symbol, []) if start <= t.ts <= end]
        return found[: max(limit, 0)]

    async def trade_count(self) -> int:
        self._check_open()
        return self._count

    def _check_open(self) -> None:
        if not self._open:
            raise StorageError("the memory store is not open")


if TYPE_CHECKING:
    # mypy proves here that MemoryStore keeps the whole protocol.
    _: TradeStore = MemoryStore()
