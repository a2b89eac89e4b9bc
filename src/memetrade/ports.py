"""The small interfaces the services depend on. Adapters implement them; tests use the same."""

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.domain.intervals import Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Trade

__all__ = ["Bus", "BusError", "Clock", "ConnectionGate", "Delivery", "StorageError", "TradeStore"]


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

    # Trade numbers (``Trade.seq``): ``write`` keeps a trade's ``seq`` when it is set and
    # numbers a trade without one (``seq == 0``) one past the symbol's highest, in the order
    # given; numbers are unique per symbol. Trades read back carry their number.

    async def last_trade_seq(self, symbol: str) -> int:
        """The highest trade number of ``symbol`` (0 before its first trade)."""
        ...

    async def trades_by_seq(self, symbol: str, from_seq: int, limit: int) -> list[Trade]:
        """The first ``limit`` trades numbered ``from_seq`` or higher, by number."""
        ...

    async def trades_by_time(self, symbol: str, start: int, end: int, limit: int) -> list[Trade]:
        """The first ``limit`` trades, by number, of those with ``start <= ts <= end``."""
        ...

    async def trade_count(self) -> int: ...


class BusError(Exception):
    """The bus could not do what was asked (unreachable, timed out, or refused)."""


class Delivery(Protocol):
    """One message handed to a durable consumer; it stays pending until acknowledged."""

    @property
    def subject(self) -> str: ...

    @property
    def data(self) -> bytes: ...

    @property
    def redelivered(self) -> bool:
        """True when the bus handed this message out before (it may have been processed)."""
        ...

    async def ack(self) -> None:
        """Mark it done; call only once its work is stored."""
        ...

    async def nak(self) -> None:
        """Give it back for redelivery now."""
        ...


class Bus(Protocol):
    """Messages between processes (or within one). Subjects are dot-separated tokens; in
    patterns ``*`` matches one token and ``>`` the rest.

    Subjects under ``trades.`` and ``stored.`` are *durable*: kept in a stream, replayable, and
    consumable with acknowledgements. Any other subject is *live*: delivered to whoever listens
    now, at most once.
    """

    async def open(self) -> None:
        """Connect and create the durable streams if missing; raise ``BusError``."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``BusError`` if the bus cannot take a message now."""
        ...

    async def publish(self, subject: str, data: bytes) -> None:
        """Append to a durable subject's stream; return once the bus stored it."""
        ...

    async def broadcast(self, subject: str, data: bytes) -> None:
        """Send on a live subject, best effort (no storage, no acknowledgement)."""
        ...

    def consume(
        self, pattern: str, durable: str, batch: int
    ) -> AsyncGenerator[list[Delivery], None]:
        """Batches of up to ``batch`` messages for the durable consumer ``durable``, oldest
        first per subject. The consumer's position outlives the iterator: a new one with the
        same name resumes after the last acknowledged message and gets every unacknowledged
        one again (a crashed worker loses nothing)."""
        ...

    def follow(self, pattern: str, since_ms: int) -> AsyncGenerator[bytes, None]:
        """Every stored message on ``pattern`` published at or after ``since_ms`` (epoch ms),
        then new ones as they come, in order; nothing to acknowledge."""
        ...

    def listen(self, pattern: str) -> AsyncGenerator[tuple[str, bytes], None]:
        """``(subject, data)`` of messages published from now on (live or durable subjects)."""
        ...


class ConnectionGate(Protocol):
    """A connection cap shared by several processes (each also keeps its own local cap)."""

    async def acquire(self) -> bool:
        """Take a place; False when the shared cap is reached."""
        ...

    async def release(self) -> None: ...
