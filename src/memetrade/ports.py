"""The small interfaces the services depend on. Adapters implement them; tests use the same."""

from collections.abc import Sequence
from typing import Protocol

from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.domain.intervals import Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Trade

__all__ = ["Clock", "StorageError", "TradeStore"]


class StorageError(Exception):
    """A store could not do what was asked (unreachable, corrupt, or refused)."""


class Clock(Protocol):
    def now_ms(self) -> int:
        """Current time, epoch milliseconds UTC."""
        ...


class TradeStore(Protocol):
    """Durable storage of trades (the source of truth) and the candles derived from them.

    ``write`` is atomic and durable when it returns: trades and the candle states computed from
    them land together or not at all, so candles on disk always match trades on disk.
    Only non-empty candles are stored; empty intervals are materialised on read.
    """

    async def open(self, symbols: Sequence[SymbolSpec]) -> None:
        """Connect, create or migrate the schema, and check the symbols' steps are unchanged
        (stored integers would change meaning); raise ``StorageError`` if they changed."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StorageError`` if the store cannot answer a query now."""
        ...

    async def write(self, trades: Sequence[Trade], candles: Sequence[CandleUpdate]) -> None:
        """Insert trades (ignoring ids already stored) and upsert candles, in one transaction."""
        ...

    async def existing_ids(self, symbol: str, ids: Sequence[str]) -> set[str]:
        """The subset of ``ids`` already stored for ``symbol``."""
        ...

    async def candles(
        self, symbol: str, interval: Interval, start: int, end: int, limit: int
    ) -> list[Candle]:
        """Stored candles with ``start <= open_time <= end``, oldest first, at most ``limit``
        (the oldest ones)."""
        ...

    async def latest_candles(self, symbol: str, interval: Interval, limit: int) -> list[Candle]:
        """The newest ``limit`` stored candles, oldest first."""
        ...

    async def last_candle_before(self, symbol: str, interval: Interval, t: int) -> Candle | None:
        """The newest stored candle with ``open_time < t``."""
        ...

    async def trade_keys_since(self, symbol: str, ts: int) -> list[tuple[int, str]]:
        """``(ts, id)`` of stored trades with ``ts >= ts``, for rebuilding duplicate detection."""
        ...

    async def recent_trades(self, symbol: str, limit: int) -> list[Trade]:
        """The newest ``limit`` trades, newest first."""
        ...

    async def trade_count(self) -> int: ...
