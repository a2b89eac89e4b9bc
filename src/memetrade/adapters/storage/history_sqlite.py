"""``ExchangeHistoryStore`` in the embedded SQLite file, beside the market data.

Design, and why:

* The same file as ``SqliteStore`` (one file to back up), through connections of its own: WAL
  lets every store read while one writes, and ``busy_timeout`` makes each writer wait its turn
  for the file's single write lock. A wait longer than that raises ``StorageUnavailable``
  rather than ``StorageError``: the lock is another writer's, so the same call succeeds later,
  and the projector retries it.
* ``PRAGMA user_version`` is the market store's schema version, so this store keeps its own in
  ``exchange_history_schema_version`` (``version_tables``). Migrations run in one
  ``BEGIN IMMEDIATE`` transaction, so two processes opening one file migrate it once.
* ``synchronous = FULL``, as the market store: the history is derived from the journal, but
  the journal keeps only the entries after its oldest snapshot, and the exchange takes a
  snapshot once its listeners have flushed. A commit that a power cut could take back would
  then be lost for good, so each one is fsynced (once per batch, which group commit keeps
  cheap).
* One writer thread (batches in submission order, no locks of ours) and a few reader threads,
  each with its own connection, as ``SqliteStore`` does.
"""

import asyncio
import queue
import sqlite3
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Final, TypeVar

from memetrade.adapters.storage.history_rows import (
    FILL_COLUMNS,
    ORDER_COLUMNS,
    fill_from_row,
    fills_query,
    order_from_row,
    orders_query,
    rows_of,
)

# The connection set-up shared with SqliteStore (WAL retry, busy timeout, no implicit BEGIN).
from memetrade.adapters.storage.sqlite import _connect, _enter_wal
from memetrade.adapters.storage.version_tables import migrate_sqlite
from memetrade.domain.exchange.events import Fill, OrderUpdate
from memetrade.domain.exchange.history import FillRecord, OrderRecord, StatusFilter
from memetrade.ports import StorageError, StorageUnavailable

__all__ = ["SqliteHistoryStore"]

_T = TypeVar("_T")

_VERSION_TABLE: Final = "exchange_history_schema_version"
_MIGRATIONS: Final[tuple[tuple[str, ...], ...]] = (
    # 1: orders, fills per user and role, the checkpoint.
    (
        """CREATE TABLE exchange_orders (
            order_id INTEGER NOT NULL PRIMARY KEY,
            user_id INTEGER NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
            type TEXT NOT NULL,
            status TEXT NOT NULL,
            price INTEGER,
            stop_price INTEGER,
            quantity INTEGER,
            filled INTEGER NOT NULL,
            remaining INTEGER NOT NULL,
            cum_quote TEXT NOT NULL,
            cum_fee TEXT NOT NULL,
            reason TEXT,
            client_order_id TEXT,
            created_at INTEGER NOT NULL,
            updated_at INTEGER NOT NULL,
            seq INTEGER NOT NULL
        )""",
        # SQLite appends the rowid (order_id) to index entries: these are (user_id, order_id)
        # and (user_id, symbol, order_id), in the newest-first order the queries read.
        "CREATE INDEX exchange_orders_by_user ON exchange_orders (user_id)",
        "CREATE INDEX exchange_orders_by_user_symbol ON exchange_orders (user_id, symbol)",
        # Open orders are few beside a long history of ended ones; this keeps them one probe
        # away. The condition is the text the open-orders query uses, as the planner requires.
        """CREATE INDEX exchange_orders_open ON exchange_orders (user_id)
            WHERE status IN ('new', 'partially_filled', 'triggered')""",
        """CREATE TABLE exchange_fills (
            user_id INTEGER NOT NULL,
            trade_id INTEGER NOT NULL,
            role TEXT NOT NULL CHECK (role IN ('maker', 'taker')),
            order_id INTEGER NOT NULL,
            symbol TEXT NOT NULL,
            side TEXT NOT NULL CHECK (side IN ('buy', 'sell')),
            price INTEGER NOT NULL,
            quantity INTEGER NOT NULL,
            quote_amount TEXT NOT NULL,
            fee TEXT NOT NULL,
            fee_asset TEXT NOT NULL,
            ts INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (user_id, trade_id, role)
        ) WITHOUT ROWID""",
        """CREATE TABLE exchange_history_checkpoint (
            one INTEGER NOT NULL PRIMARY KEY CHECK (one = 1),
            seq INTEGER NOT NULL
        )""",
        "INSERT INTO exchange_history_checkpoint VALUES (1, 0)",
    ),
)

# An update carries the order's whole state; only one as of an equal or later journal entry
# may replace the stored one. created_at stays the time the order was first seen.
_UPSERT_ORDER: Final = f"""
    INSERT INTO exchange_orders ({ORDER_COLUMNS}, seq)
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (order_id) DO UPDATE SET
        status = excluded.status, price = excluded.price, stop_price = excluded.stop_price,
        quantity = excluded.quantity, filled = excluded.filled, remaining = excluded.remaining,
        cum_quote = excluded.cum_quote, cum_fee = excluded.cum_fee, reason = excluded.reason,
        client_order_id = excluded.client_order_id, updated_at = excluded.updated_at,
        seq = excluded.seq
    WHERE excluded.seq >= exchange_orders.seq"""
_INSERT_FILL: Final = f"""
    INSERT INTO exchange_fills ({FILL_COLUMNS}, seq) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (user_id, trade_id, role) DO NOTHING"""
_RAISE_CHECKPOINT: Final = "UPDATE exchange_history_checkpoint SET seq = max(seq, ?)"
_CHECKPOINT: Final = "SELECT seq FROM exchange_history_checkpoint"


class SqliteHistoryStore:
    """An ``ExchangeHistoryStore`` in the SQLite file at ``path`` (created with its directory).

    ``busy_timeout_ms`` is how long a write waits for another writer of the file before it
    raises ``StorageUnavailable``. After ``close`` the store may be opened again.
    """

    def __init__(self, path: str | Path, *, readers: int = 2, busy_timeout_ms: int = 5_000) -> None:
        if readers < 1:
            raise ValueError("a store needs at least one reader connection")
        self._path = Path(path)
        self._reader_count = readers
        self._busy_timeout_ms = busy_timeout_ms
        # None while closed; checked on the event loop before any work is submitted.
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        self._writer: sqlite3.Connection | None = None
        self._readers: list[sqlite3.Connection] = []
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    def __repr__(self) -> str:
        return f"SqliteHistoryStore({str(self._path)!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self) -> None:
        if self._writer_pool is not None:
            raise StorageError(f"{self._path} is already open")
        writer_pool = ThreadPoolExecutor(1, thread_name_prefix="history-writer")
        reader_pool = ThreadPoolExecutor(self._reader_count, thread_name_prefix="history-reader")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(writer_pool, self._open_sync)
        except BaseException:
            # Queued behind _open_sync on the same thread: whatever it opened gets closed.
            await loop.run_in_executor(writer_pool, self._close_sync, reader_pool)
            writer_pool.shutdown(wait=False)
            raise
        self._writer_pool, self._reader_pool = writer_pool, reader_pool

    async def close(self) -> None:
        writer_pool, reader_pool = self._writer_pool, self._reader_pool
        if writer_pool is None or reader_pool is None:
            return
        self._writer_pool = self._reader_pool = None
        try:
            # Queued behind every record submitted before close(), which therefore complete.
            await asyncio.get_running_loop().run_in_executor(
                writer_pool, self._close_sync, reader_pool
            )
        finally:
            writer_pool.shutdown(wait=False)

    def _open_sync(self) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = writer = _connect(self._path)
            mode = _enter_wal(writer)
            if str(mode).lower() != "wal":
                raise StorageError(f"{self._path}: cannot use WAL journal mode (got {mode!r})")
            writer.execute("PRAGMA synchronous = FULL")
            writer.execute("BEGIN IMMEDIATE")
            try:
                migrate_sqlite(writer, _VERSION_TABLE, _MIGRATIONS, str(self._path))
                writer.execute("COMMIT")
            except BaseException:
                writer.rollback()
                raise
            # After the migration, which may wait out another process's with the default.
            writer.execute(f"PRAGMA busy_timeout = {int(self._busy_timeout_ms)}")
            for _ in range(self._reader_count):
                reader = _connect(self._path)
                self._readers.append(reader)
                self._idle.put(reader)
                reader.execute("PRAGMA query_only = ON")
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open exchange history in {self._path}: {exc}") from exc

    def _close_sync(self, reader_pool: ThreadPoolExecutor) -> None:
        reader_pool.shutdown(wait=True)
        connections = [*self._readers, *([self._writer] if self._writer is not None else [])]
        self._readers, self._writer = [], None
        self._idle = queue.SimpleQueue()
        for conn in connections:
            conn.close()

    # -- plumbing -------------------------------------------------------------------------------

    async def _write(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        pool = self._writer_pool
        if pool is None:
            raise StorageError(f"exchange history in {self._path} is not open")
        await asyncio.get_running_loop().run_in_executor(pool, self._use_writer, fn)

    def _use_writer(self, fn: Callable[[sqlite3.Connection], None]) -> None:
        conn = self._writer
        if conn is None:
            raise StorageError(f"exchange history in {self._path} is not open")
        try:
            conn.execute("BEGIN IMMEDIATE")
            try:
                fn(conn)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
        except (sqlite3.Error, OverflowError) as exc:
            message = f"sqlite write to {self._path} failed: {exc}"
            if _is_busy(exc):
                raise StorageUnavailable(message) from exc
            raise StorageError(message) from exc

    async def _read(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        pool = self._reader_pool
        if pool is None:
            raise StorageError(f"exchange history in {self._path} is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, self._use_reader, sql, args)

    def _use_reader(self, sql: str, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        conn = self._idle.get_nowait()
        try:
            return conn.execute(sql, args).fetchall()
        except (sqlite3.Error, OverflowError) as exc:
            raise StorageError(f"sqlite read from {self._path} failed: {exc}") from exc
        finally:
            self._idle.put(conn)

    # -- writes ---------------------------------------------------------------------------------

    async def record(self, seq: int, events: Sequence[OrderUpdate | Fill]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            # Rows are built here, on the writer thread, to keep the event loop free.
            order_rows, fill_rows = rows_of(seq, events, str)
            conn.executemany(_UPSERT_ORDER, order_rows)
            conn.executemany(_INSERT_FILL, fill_rows)
            conn.execute(_RAISE_CHECKPOINT, (seq,))

        await self._write(run)

    # -- reads ----------------------------------------------------------------------------------

    async def ping(self) -> None:
        await self._read(_CHECKPOINT, ())

    async def checkpoint(self) -> int:
        rows = await self._read(_CHECKPOINT, ())
        seq: int = rows[0][0]
        return seq

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
        sql, args = orders_query("?", user_id, symbol, status, start, end, before, limit)
        return [order_from_row(row) for row in await self._read(sql, args)]

    async def order(self, user_id: int, order_id: int) -> OrderRecord | None:
        rows = await self._read(
            f"SELECT {ORDER_COLUMNS} FROM exchange_orders WHERE order_id = ? AND user_id = ?",
            (order_id, user_id),
        )
        return order_from_row(rows[0]) if rows else None

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
        sql, args = fills_query("?", user_id, symbol, start, end, from_id, limit)
        records = [fill_from_row(row) for row in await self._read(sql, args)]
        return records if from_id is not None else records[::-1]


def _is_busy(exc: BaseException) -> bool:
    # The primary result code, without the extended bits: another connection holds the lock.
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
