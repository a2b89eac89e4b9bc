"""The embedded default store: one SQLite file in WAL mode, stdlib ``sqlite3`` only.

Design, and why:

* One writer connection, used only by a single-worker thread pool. Writes are serialised in
  submission order with no locks of ours, and ``BEGIN IMMEDIATE`` never waits on another writer
  in this process.
* Reads use a small pool of reader connections on their own threads. WAL gives each query a
  consistent snapshot while a write is in progress, so a big write never stalls REST reads, and a
  read never sees half a write.
* ``synchronous=FULL``: in WAL mode ``NORMAL`` survives a killed process but may lose the last
  commits on power loss. An acknowledged trade must survive both (ARCHITECTURE.md), so every
  commit fsyncs the WAL. One transaction per ``write`` batch is what keeps that fast.
* Exact numbers: prices, amounts, timestamps and counts fit SQLite's signed 64-bit INTEGER (the
  domain keeps prices and amounts below 2**62). Volumes are sums, and ``quote_volume`` is a sum
  of products, so they may not fit: they are stored as the decimal text of the integer and read
  back with ``int``.
* Trades go in with ``ON CONFLICT (symbol, id) DO NOTHING``, not ``INSERT OR IGNORE``: OR IGNORE
  also silently skips rows that break a NOT NULL or CHECK constraint, which would be a silent
  loss. The upsert clause absorbs only the duplicate ids that idempotent ingest means to ignore.
* The schema version is ``PRAGMA user_version``; ``_MIGRATIONS[i]`` (in ``sqlite_schema``)
  takes version ``i`` to ``i + 1``. Pending steps, the version bump and the symbol check commit
  in one transaction, so a crash or a refused symbol leaves the file as it was.
* ``sqlite3`` errors become ``StorageError`` here, at the boundary (``raise ... from exc``).

Cancelling a caller of ``write`` does not cancel the write: it still runs to COMMIT or ROLLBACK on
the writer thread, so the file is never half-written, but that caller cannot know which.
"""

import asyncio
import contextlib
import queue
import sqlite3
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from itertools import groupby
from pathlib import Path
from typing import Any, Final, TypeVar

from memetrade.adapters.storage.rows import (
    candle_from_row,
    candle_rows,
    steps_changed,
    trades_from_rows,
)
from memetrade.adapters.storage.sqlite_schema import MIGRATIONS as _MIGRATIONS
from memetrade.adapters.storage.sqlite_schema import register_functions
from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.domain.intervals import Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Trade
from memetrade.ports import StorageError

__all__ = ["SqliteStore"]

_T = TypeVar("_T")

_BUSY_TIMEOUT_MS: Final = 5_000
# Below SQLITE_MAX_VARIABLE_NUMBER on every SQLite version (999 before 3.32), leaving room for
# the symbol parameter.
_ID_CHUNK: Final = 500
# Page cache of the writer, in KiB (negative means KiB to SQLite). Inserts by random trade id
# touch pages all over the primary key; keeping them cached is most of the write speed.
_WRITER_CACHE_KIB: Final = 64 * 1024
# Checkpoint the WAL into the database file every this many pages (SQLite's default is 1000).
# A 5,000-trade batch with random ids dirties thousands of pages, so the default checkpoints at
# nearly every commit; a larger WAL lets a page changed by several batches be copied back once
# (about +20% write throughput on a million-trade table). The limit caps the file kept on disk.
_WAL_AUTOCHECKPOINT_PAGES: Final = 10_000
_WAL_SIZE_LIMIT_BYTES: Final = 64 * 1024 * 1024

# Trades arrive numbered (the service numbers them as it accepts them): a plain insert.
_INSERT_TRADE: Final = """
    INSERT INTO trades (symbol, id, ts, price, amount, side, seq) VALUES (?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (symbol, id) DO NOTHING"""
# A trade without a number (seq 0) gets one past the symbol's highest: one index probe. The
# single writer connection makes that race-free; a duplicate id inserts nothing, so it
# consumes no number. The INSERT ... SELECT form costs about a third more than the plain one
# (bench ingest, store alone), so it is kept for these only.
_INSERT_UNNUMBERED_TRADE: Final = """
    INSERT INTO trades (symbol, id, ts, price, amount, side, seq)
    SELECT ?1, ?2, ?3, ?4, ?5, ?6, coalesce((SELECT max(seq) FROM trades WHERE symbol = ?1), 0) + 1
    WHERE true
    ON CONFLICT (symbol, id) DO NOTHING"""
_SELECT_TRADES: Final = "SELECT id, price, amount, side, ts, seq FROM trades WHERE symbol = ?"

_CANDLE_COLUMNS: Final = (
    "open_time, open, high, low, close, volume, quote_volume, trades,"
    " first_ts, first_id, last_ts, last_id, buy_volume, buy_quote_volume"
)
# A candle update carries the candle's whole new state, so the stored row is replaced.
_UPSERT_CANDLE: Final = f"""
    INSERT INTO candles (symbol, interval, {_CANDLE_COLUMNS})
    VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
    ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
        open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
        volume = excluded.volume, quote_volume = excluded.quote_volume, trades = excluded.trades,
        first_ts = excluded.first_ts, first_id = excluded.first_id,
        last_ts = excluded.last_ts, last_id = excluded.last_id,
        buy_volume = excluded.buy_volume, buy_quote_volume = excluded.buy_quote_volume"""

_SELECT_CANDLES: Final = f"SELECT {_CANDLE_COLUMNS} FROM candles WHERE symbol = ? AND interval = ?"


class SqliteStore:
    """A ``TradeStore`` in one SQLite file at ``path`` (created with its directory on ``open``).

    ``readers`` is the number of reader connections, which is also how many reads run at once.
    After ``close`` the store may be opened again.
    """

    def __init__(self, path: str | Path, *, readers: int = 4) -> None:
        if readers < 1:
            raise ValueError("a store needs at least one reader connection")
        self._path = Path(path)
        self._reader_count = readers
        # None while closed. Every call checks these on the event loop thread before it submits
        # work, so once close() clears them no new work reaches the connections it closes.
        self._writer_pool: ThreadPoolExecutor | None = None
        self._reader_pool: ThreadPoolExecutor | None = None
        # Touched only on the writer thread (and by open/close, which run there too).
        self._writer: sqlite3.Connection | None = None
        self._readers: list[sqlite3.Connection] = []
        # Idle reader connections. The reader pool has as many threads as connections, so a
        # reader task always finds one here.
        self._idle: queue.SimpleQueue[sqlite3.Connection] = queue.SimpleQueue()

    def __repr__(self) -> str:
        return f"SqliteStore({str(self._path)!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, symbols: Sequence[SymbolSpec]) -> None:
        if self._writer_pool is not None:
            raise StorageError(f"{self._path} is already open")
        writer_pool = ThreadPoolExecutor(1, thread_name_prefix="sqlite-writer")
        reader_pool = ThreadPoolExecutor(self._reader_count, thread_name_prefix="sqlite-reader")
        loop = asyncio.get_running_loop()
        try:
            await loop.run_in_executor(writer_pool, self._open_sync, list(symbols))
        except BaseException as exc:
            # Close whatever _open_sync opened. The close is queued behind it on the same thread,
            # so even if we were cancelled while it still runs, it is closed once it is done.
            closing = loop.run_in_executor(writer_pool, self._close_sync, reader_pool)
            writer_pool.shutdown(wait=False)
            if not isinstance(exc, asyncio.CancelledError):
                with contextlib.suppress(StorageError):  # The open error is the one to report.
                    await closing
            raise
        self._writer_pool, self._reader_pool = writer_pool, reader_pool

    async def close(self) -> None:
        writer_pool, reader_pool = self._writer_pool, self._reader_pool
        if writer_pool is None or reader_pool is None:
            return
        self._writer_pool = self._reader_pool = None
        try:
            # Queued behind every write submitted before close(), which therefore complete.
            await asyncio.get_running_loop().run_in_executor(
                writer_pool, self._close_sync, reader_pool
            )
        finally:
            # The thread has nothing left to run and exits by itself.
            writer_pool.shutdown(wait=False)

    def _open_sync(self, symbols: list[SymbolSpec]) -> None:
        try:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            self._writer = writer = _connect(self._path)
            mode = _enter_wal(writer)
            if str(mode).lower() != "wal":
                raise StorageError(f"{self._path}: cannot use WAL journal mode (got {mode!r})")
            writer.execute("PRAGMA synchronous = FULL")
            writer.execute(f"PRAGMA cache_size = {-_WRITER_CACHE_KIB}")
            writer.execute(f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT_PAGES}")
            writer.execute(f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT_BYTES}")
            writer.execute("BEGIN IMMEDIATE")
            try:
                self._migrate(writer)
                self._check_symbols(writer, symbols)
                writer.execute("COMMIT")
            except BaseException:
                writer.rollback()
                raise
            for _ in range(self._reader_count):
                reader = _connect(self._path)
                self._readers.append(reader)
                self._idle.put(reader)
                # Belt and braces: a bug in a read path must not be able to write.
                reader.execute("PRAGMA query_only = ON")
        except (sqlite3.Error, OSError) as exc:
            raise StorageError(f"cannot open {self._path}: {exc}") from exc

    def _migrate(self, conn: sqlite3.Connection) -> None:
        version: int = conn.execute("PRAGMA user_version").fetchone()[0]
        if version > len(_MIGRATIONS):
            raise StorageError(
                f"{self._path} has schema version {version} but this memetrade knows only up to"
                f" {len(_MIGRATIONS)}; upgrade memetrade"
            )
        register_functions(conn)
        for step in _MIGRATIONS[version:]:
            for statement in step:
                conn.execute(statement)
        # PRAGMA takes no parameters; the value is an int we computed.
        conn.execute(f"PRAGMA user_version = {len(_MIGRATIONS)}")

    def _check_symbols(self, conn: sqlite3.Connection, symbols: list[SymbolSpec]) -> None:
        stored = {
            name: (price_decimals, amount_decimals)
            for name, price_decimals, amount_decimals in conn.execute(
                "SELECT name, price_decimals, amount_decimals FROM symbols"
            )
        }
        for spec in symbols:
            steps = (spec.price_decimals, spec.amount_decimals)
            old = stored.get(spec.name)
            if old is None:
                conn.execute("INSERT INTO symbols VALUES (?, ?, ?)", (spec.name, *steps))
                stored[spec.name] = steps
            elif old != steps:
                raise StorageError(steps_changed(spec.name, old, steps, str(self._path)))

    def _close_sync(self, reader_pool: ThreadPoolExecutor) -> None:
        # Reads already submitted finish first; then nothing uses the reader connections.
        reader_pool.shutdown(wait=True)
        connections = [*self._readers, *([self._writer] if self._writer is not None else [])]
        self._readers, self._writer = [], None
        self._idle = queue.SimpleQueue()
        errors: list[sqlite3.Error] = []
        for conn in connections:
            try:
                conn.close()
            except sqlite3.Error as exc:
                errors.append(exc)
        if errors:
            raise StorageError(f"closing {self._path}: {errors[0]}") from errors[0]

    # -- plumbing -------------------------------------------------------------------------------

    async def _on_writer(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        pool = self._writer_pool
        if pool is None:
            raise StorageError(f"{self._path} is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, self._use_writer, fn)

    def _use_writer(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._writer
        if conn is None:  # Only if close() raced ahead of a queued task; it cannot, but be clear.
            raise StorageError(f"{self._path} is not open")
        try:
            return fn(conn)
        except (sqlite3.Error, OverflowError) as exc:
            # OverflowError: an integer too large for SQLite's INTEGER reached the binding.
            raise StorageError(f"sqlite write to {self._path} failed: {exc}") from exc

    async def _read(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        pool = self._reader_pool
        if pool is None:
            raise StorageError(f"{self._path} is not open")
        return await asyncio.get_running_loop().run_in_executor(pool, self._use_reader, fn)

    def _use_reader(self, fn: Callable[[sqlite3.Connection], _T]) -> _T:
        conn = self._idle.get_nowait()
        try:
            return fn(conn)
        except (sqlite3.Error, OverflowError) as exc:
            raise StorageError(f"sqlite read from {self._path} failed: {exc}") from exc
        finally:
            self._idle.put(conn)

    # -- writes ---------------------------------------------------------------------------------

    async def write(self, trades: Sequence[Trade], candles: Sequence[CandleUpdate]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            # Rows are built here, on the writer thread, to keep the event loop free.
            trade_rows = [
                (t.symbol, t.id, t.ts, t.price, t.amount, t.side.value, t.seq) for t in trades
            ]
            upserts = candle_rows(candles, str)
            if not trade_rows and not upserts:
                return
            conn.execute("BEGIN IMMEDIATE")
            try:
                # In input order, so numbers are given in the order trades came.
                for numbered, group in groupby(trade_rows, key=lambda row: row[6] > 0):
                    if numbered:
                        conn.executemany(_INSERT_TRADE, group)
                    else:
                        conn.executemany(_INSERT_UNNUMBERED_TRADE, [row[:6] for row in group])
                conn.executemany(_UPSERT_CANDLE, upserts)
                conn.execute("COMMIT")
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise

        await self._on_writer(run)

    # -- reads ----------------------------------------------------------------------------------

    async def ping(self) -> None:
        # Reads the file (starts a read transaction), unlike a bare SELECT 1.
        await self._read(lambda conn: conn.execute("SELECT 1 FROM symbols LIMIT 1").fetchall())

    async def existing_ids(self, symbol: str, ids: Sequence[str]) -> set[str]:
        unique = list(dict.fromkeys(ids))

        def run(conn: sqlite3.Connection) -> set[str]:
            # Each chunk is its own snapshot; ids are only ever added, so the union is still a
            # subset of what is stored when the call returns.
            found: set[str] = set()
            for start in range(0, len(unique), _ID_CHUNK):
                chunk = unique[start : start + _ID_CHUNK]
                marks = ",".join("?" * len(chunk))
                sql = f"SELECT id FROM trades WHERE symbol = ? AND id IN ({marks})"
                found.update(row[0] for row in conn.execute(sql, (symbol, *chunk)))
            return found

        if not unique:
            return await self._read(lambda conn: set())
        return await self._read(run)

    async def candles(
        self, symbol: str, interval: Interval, start: int, end: int, limit: int
    ) -> list[Candle]:
        sql = f"{_SELECT_CANDLES} AND open_time BETWEEN ? AND ? ORDER BY open_time LIMIT ?"
        args = (symbol, interval.name, start, end, max(limit, 0))
        return await self._read(
            lambda conn: [candle_from_row(row) for row in conn.execute(sql, args)]
        )

    async def latest_candles(self, symbol: str, interval: Interval, limit: int) -> list[Candle]:
        sql = f"{_SELECT_CANDLES} ORDER BY open_time DESC LIMIT ?"
        args = (symbol, interval.name, max(limit, 0))
        rows = await self._read(lambda conn: conn.execute(sql, args).fetchall())
        return [candle_from_row(row) for row in reversed(rows)]

    async def last_candle_before(self, symbol: str, interval: Interval, t: int) -> Candle | None:
        sql = f"{_SELECT_CANDLES} AND open_time < ? ORDER BY open_time DESC LIMIT 1"
        args = (symbol, interval.name, t)
        row = await self._read(lambda conn: conn.execute(sql, args).fetchone())
        return None if row is None else candle_from_row(row)

    async def trade_keys_since(self, symbol: str, ts: int) -> list[tuple[int, str]]:
        sql = "SELECT ts, id FROM trades WHERE symbol = ? AND ts >= ? ORDER BY ts, id"
        return await self._read(lambda conn: [(t, i) for t, i in conn.execute(sql, (symbol, ts))])

    async def recent_trades(self, symbol: str, limit: int) -> list[Trade]:
        sql = f"{_SELECT_TRADES} ORDER BY ts DESC, id DESC LIMIT ?"
        return await self._trades(sql, (symbol, max(limit, 0)))

    async def last_trade_seq(self, symbol: str) -> int:
        sql = "SELECT coalesce(max(seq), 0) FROM trades WHERE symbol = ?"
        seq: int = await self._read(lambda conn: conn.execute(sql, (symbol,)).fetchone()[0])
        return seq

    async def trades_by_seq(self, symbol: str, from_seq: int, limit: int) -> list[Trade]:
        sql = f"{_SELECT_TRADES} AND seq >= ? ORDER BY seq LIMIT ?"
        return await self._trades(sql, (symbol, from_seq, max(limit, 0)))

    async def trades_by_time(self, symbol: str, start: int, end: int, limit: int) -> list[Trade]:
        sql = f"{_SELECT_TRADES} AND ts BETWEEN ? AND ? ORDER BY seq LIMIT ?"
        return await self._trades(sql, (symbol, start, end, max(limit, 0)))

    async def _trades(self, sql: str, args: tuple[Any, ...]) -> list[Trade]:
        symbol = args[0]
        rows = await self._read(lambda conn: conn.execute(sql, args).fetchall())
        return trades_from_rows(symbol, rows)

    async def trade_count(self) -> int:
        count: int = await self._read(
            lambda conn: conn.execute("SELECT count(*) FROM trades").fetchone()[0]
        )
        return count


def _enter_wal(conn: sqlite3.Connection) -> Any:
    # Switching a fresh file to WAL needs an exclusive lock and SQLite answers "locked" at once
    # (no busy handler) while another process's first transaction (creating and migrating the
    # schema) holds it: retry for as long as the busy timeout would have waited.
    deadline = time.monotonic() + _BUSY_TIMEOUT_MS / 1000
    while True:
        try:
            return conn.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.01)


def _connect(path: Path) -> sqlite3.Connection:
    # isolation_level=None: the sqlite3 module opens no implicit transactions; we BEGIN and
    # COMMIT ourselves. check_same_thread=False: a connection is created on the writer thread and
    # used on another, but only ever by one thread at a time (see SqliteStore).
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=_BUSY_TIMEOUT_MS / 1000
    )
    try:
        conn.execute(f"PRAGMA busy_timeout = {_BUSY_TIMEOUT_MS}")
    except BaseException:
        conn.close()
        raise
    return conn
