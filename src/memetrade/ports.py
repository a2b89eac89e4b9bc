"""The small interfaces the services depend on. Adapters implement them; tests use the same."""

from collections.abc import AsyncGenerator, Sequence
from typing import Protocol

from memetrade.domain.accounts import ApiKey, AuditEntry, Role, User
from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.domain.exchange.events import Fill, OrderUpdate
from memetrade.domain.exchange.history import FillRecord, OrderRecord, StatusFilter
from memetrade.domain.intervals import Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Trade

__all__ = [
    "Bus",
    "BusError",
    "Clock",
    "CommandJournal",
    "ConnectionGate",
    "Delivery",
    "ExchangeHistoryStore",
    "JournalCorruptError",
    "SnapshotStore",
    "StorageError",
    "StorageUnavailable",
    "TradeStore",
]


class StorageError(Exception):
    """A store could not do what was asked (unreachable, corrupt, or refused)."""


class StorageUnavailable(StorageError):
    """The store cannot be reached now (server down, connection lost, pool exhausted); the
    same call may succeed later, so callers that own the data retry instead of giving up."""


class JournalCorruptError(StorageError):
    """Stored journal entries are damaged or missing: acknowledged commands would be lost, so
    recovery must stop rather than go on without them."""


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


class CommandJournal(Protocol):
    """The exchange's durable, append-only log of commands: opaque entries numbered 1, 2, 3, ...

    One process appends (the matching engine); the numbering is dense and never reused, so
    "snapshot at ``seq`` + entries after ``seq``" is the whole state. ``append`` calls run one
    after another in the order they were made.
    """

    async def open(self) -> None:
        """Create or recover the journal; raise ``JournalCorruptError`` if entries it must keep
        are damaged (a half-written last append is dropped, with a warning, instead)."""
        ...

    async def close(self) -> None: ...

    async def append(self, entries: Sequence[bytes]) -> int:
        """Store ``entries`` numbered on from ``last_seq() + 1``; durable when it returns, with
        one flush for the whole call (group commit). Return the number of the last one.

        When it raises, the entries may or may not be stored (a commit can succeed and its
        answer be lost): do not retry them blindly, which could store them twice, nor answer
        their commands. ``StorageUnavailable`` means the journal could not be reached: once it
        can, ``append([])`` answers the last stored number (re-read from storage), which tells
        whether they landed. Any other error: recover from the journal (reopen, replay)."""
        ...

    async def read(self, from_seq: int, limit: int) -> list[tuple[int, bytes]]:
        """``(seq, entry)`` of up to ``limit`` entries numbered ``from_seq`` (>= 1) and on, in
        order; empty past the end. Raise ``StorageError`` if entry ``from_seq`` was dropped by
        ``truncate_before``, ``JournalCorruptError`` if one read is damaged."""
        ...

    def last_seq(self) -> int:
        """The number of the last durable entry (0 for an empty journal)."""
        ...

    async def truncate_before(self, seq: int) -> None:
        """Allow dropping the entries numbered below ``seq`` (a snapshot covers them). Entries
        from ``seq`` on stay, and so does the last one, which keeps the numbering."""
        ...


class SnapshotStore(Protocol):
    """Checksummed snapshots of the exchange's state; a snapshot at ``seq`` is the state after
    journal entry ``seq``. The newest few are kept, so a damaged one has an older fallback."""

    async def open(self) -> None: ...

    async def close(self) -> None: ...

    async def save(self, seq: int, payload: bytes) -> None:
        """Store ``payload`` (durable when it returns), replacing one at the same ``seq``, then
        drop the oldest beyond the number kept."""
        ...

    async def load_latest_valid(self) -> tuple[int, bytes] | None:
        """``(seq, payload)`` of the newest snapshot whose checksum matches, logging a warning
        for each newer one skipped as damaged; None if there is none."""
        ...

    async def seqs(self) -> list[int]:
        """The ``seq`` of every stored snapshot, oldest first (damaged ones included)."""
        ...


class ExchangeHistoryStore(Protocol):
    """Users' orders (open and ended) and fills, projected from the exchange's events.

    The history is derived: the journal is the truth, and ``checkpoint`` says from which entry
    on its events must be fed again after a restart. Writes are idempotent, so feeding an entry
    twice changes nothing. Ids are the engine's (orders and trades numbered from 1, never
    reused); amounts are integers in the units the events carry.
    """

    async def open(self) -> None:
        """Connect and create or migrate the schema; raise ``StorageError``."""
        ...

    async def close(self) -> None: ...

    async def ping(self) -> None:
        """Raise ``StorageError`` if the store cannot answer a query now."""
        ...

    async def record(self, seq: int, events: Sequence[OrderUpdate | Fill]) -> None:
        """Store the ``OrderUpdate`` and ``Fill`` events of journal entries up to ``seq``, in
        journal order, and raise the checkpoint to ``seq``, in one transaction.

        An order's row becomes its last update here, as of ``seq``; a row stored as of a
        higher seq is left alone (a replay never takes an order back in time). Fills already
        stored (by ``trade_id``) are skipped. Raise ``StorageUnavailable`` when the call may
        succeed later."""
        ...

    async def checkpoint(self) -> int:
        """The highest ``seq`` recorded (0 before the first ``record``)."""
        ...

    async def orders(
        self,
        user_id: int,
        *,
        symbol: str | None = None,
        status: StatusFilter = "all",
        start: int | None = None,
        end: int | None = None,
        before: int | None = None,
        limit: int = 100,
    ) -> list[OrderRecord]:
        """The user's orders matching every filter given, newest (highest id) first, at most
        ``limit``: placed at ``start <= created_at <= end``, with ``order_id < before`` (pass
        the last id of a page to get the next one)."""
        ...

    async def order(self, user_id: int, order_id: int) -> OrderRecord | None:
        """The user's order ``order_id``; None when there is none (or it is someone else's)."""
        ...

    async def fills(
        self,
        user_id: int,
        *,
        symbol: str | None = None,
        start: int | None = None,
        end: int | None = None,
        from_id: int | None = None,
        limit: int = 500,
    ) -> list[FillRecord]:
        """The user's fills, as maker or taker, matching every filter given (``start <= ts <=
        end``), oldest first: the first ``limit`` with ``trade_id >= from_id`` when ``from_id``
        is given, else the newest ``limit``."""
        ...


class EmailTaken(Exception):
    """``AccountStore.create_user``: a user with that email (in any case) exists already."""


class AccountStore(Protocol):
    """Users, their API keys, revoked session tokens and the audit log.

    Emails are matched case-insensitively: the store keeps them lower-cased. Times are epoch
    ms; ids are positive and never reused.
    """

    async def open(self) -> None:
        """Connect and create or migrate the schema; raise ``StorageError``."""
        ...

    async def close(self) -> None: ...

    async def create_user(
        self, email: str, password_hash: str, role: Role, created_at: int
    ) -> User:
        """Insert a user; raise ``EmailTaken`` when the email is registered already."""
        ...

    async def user_by_email(self, email: str) -> User | None: ...

    async def user_by_id(self, user_id: int) -> User | None: ...

    async def set_password_hash(self, user_id: int, password_hash: str) -> None:
        """Replace a user's hash (after a rehash with new parameters)."""
        ...

    async def set_disabled(self, user_id: int, disabled: bool) -> User | None:
        """Disable or re-enable a user; the updated user, None if there is no such user."""
        ...

    async def create_api_key(
        self, user_id: int, name: str, prefix: str, secret_hash: str, created_at: int
    ) -> ApiKey:
        """Insert a key; ``prefix`` is unique (a clash raises ``StorageError``)."""
        ...

    async def api_keys_of(self, user_id: int) -> list[ApiKey]:
        """A user's keys, revoked ones included, oldest first."""
        ...

    async def api_key_by_prefix(self, prefix: str) -> ApiKey | None: ...

    async def revoke_api_key(self, user_id: int, key_id: int, at: int) -> ApiKey | None:
        """Revoke ``user_id``'s key ``key_id`` at ``at`` (a revoked key keeps its first
        revocation time); None when that user has no such key."""
        ...

    async def touch_api_key(self, key_id: int, at: int) -> None:
        """Record that the key was used at ``at``."""
        ...

    async def revoke_token(self, jti: str, expires_at: int, now: int) -> None:
        """Deny the token ``jti`` until ``expires_at``. Tokens past their expiry are refused
        anyway, so the store forgets those that expired before ``now``."""
        ...

    async def is_token_revoked(self, jti: str) -> bool: ...

    async def record(
        self, ts: int, actor: int | None, action: str, ip: str | None, detail: str
    ) -> AuditEntry:
        """Append to the audit log; ``detail`` is a JSON object as text."""
        ...

    async def audit_entries(
        self,
        *,
        actor: int | None = None,
        action: str | None = None,
        start: int | None = None,
        end: int | None = None,
        limit: int = 100,
    ) -> list[AuditEntry]:
        """The newest ``limit`` entries matching every filter given (``start <= ts <= end``),
        newest first."""
        ...


class Counters(Protocol):
    """Expiring counters for rate limits, shared by API instances or local to one."""

    async def hit(self, key: str, window_ms: int) -> tuple[int, int]:
        """Count one event under ``key``; return the count in the current window and the ms
        until that window ends. A window starts at the first event after the last one ended."""
        ...

    async def peek(self, key: str) -> tuple[int, int]:
        """The same as ``hit`` without counting; ``(0, 0)`` when no window is open."""
        ...

    async def reset(self, key: str) -> None:
        """Forget ``key``'s window."""
        ...

    async def close(self) -> None: ...
