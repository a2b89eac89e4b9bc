"""The embedded default store: market data in one SQLite file (connections: ``sqlite_conn``).

Design, and why:

* The connections, threads, durability (``synchronous=FULL``) and error mapping are those of
  ``sqlite_conn``, shared with the other stores of the file. One transaction per ``write``
  batch is what keeps fsyncing every commit fast.
* Exact numbers: prices, amounts, timestamps and counts fit SQLite's signed 64-bit INTEGER (the
  domain keeps prices and amounts below 2**62). Volumes are sums, and ``quote_volume`` is a sum
  of products, so they may not fit: they are stored as the decimal text of the integer and read
  back with ``int``.
* Trades go in with ``ON CONFLICT (symbol, id) DO NOTHING``, not ``INSERT OR IGNORE``: OR IGNORE
  also silently skips rows that break a NOT NULL or CHECK constraint, which would be a silent
  loss. The upsert clause absorbs only the duplicate ids that idempotent ingest means to ignore.
* The schema version is ``PRAGMA user_version`` (the market store came first; the file's other
  stores keep version tables); ``_MIGRATIONS[i]`` (in ``sqlite_schema``) takes version ``i`` to
  ``i + 1``. Pending steps, the version bump and the symbol check commit in one transaction, so
  a crash or a refused symbol leaves the file as it was.
"""

import sqlite3
from collections.abc import Sequence
from itertools import groupby
from pathlib import Path
from typing import Any, Final

from memetrade.adapters.storage.rows import (
    candle_from_row,
    candle_rows,
    steps_changed,
    trades_from_rows,
)
from memetrade.adapters.storage.sqlite_conn import SqliteDatabase, migrate
from memetrade.adapters.storage.sqlite_schema import MIGRATIONS as _MIGRATIONS
from memetrade.adapters.storage.sqlite_schema import register_functions
from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.domain.intervals import Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Trade
from memetrade.ports import StorageError

__all__ = ["SqliteStore"]

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
_PRAGMAS: Final = (
    f"PRAGMA cache_size = {-_WRITER_CACHE_KIB}",
    f"PRAGMA wal_autocheckpoint = {_WAL_AUTOCHECKPOINT_PAGES}",
    f"PRAGMA journal_size_limit = {_WAL_SIZE_LIMIT_BYTES}",
)

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
        self._path = Path(path)
        self._db = SqliteDatabase(self._path, name="sqlite", readers=readers, pragmas=_PRAGMAS)

    def __repr__(self) -> str:
        return f"SqliteStore({str(self._path)!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, symbols: Sequence[SymbolSpec]) -> None:
        specs = list(symbols)

        def setup(conn: sqlite3.Connection) -> None:
            register_functions(conn)
            migrate(conn, _MIGRATIONS, str(self._path))
            self._check_symbols(conn, specs)

        await self._db.open(setup)

    async def close(self) -> None:
        await self._db.close()

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

    # -- writes ---------------------------------------------------------------------------------

    async def write(self, trades: Sequence[Trade], candles: Sequence[CandleUpdate]) -> None:
        def run(conn: sqlite3.Connection) -> None:
            # Rows are built here, on the writer thread, to keep the event loop free.
            trade_rows = [
                (t.symbol, t.id, t.ts, t.price, t.amount, t.side.value, t.seq) for t in trades
            ]
            # In input order, so numbers are given in the order trades came.
            for numbered, group in groupby(trade_rows, key=lambda row: row[6] > 0):
                if numbered:
                    conn.executemany(_INSERT_TRADE, group)
                else:
                    conn.executemany(_INSERT_UNNUMBERED_TRADE, [row[:6] for row in group])
            conn.executemany(_UPSERT_CANDLE, candle_rows(candles, str))

        await self._db.write(run)

    # -- reads ----------------------------------------------------------------------------------

    async def ping(self) -> None:
        # Reads the file (starts a read transaction), unlike a bare SELECT 1.
        await self._db.fetch("SELECT 1 FROM symbols LIMIT 1", ())

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
            self._db.require_open()
            return set()
        return await self._db.read(run)

    async def candles(
        self, symbol: str, interval: Interval, start: int, end: int, limit: int
    ) -> list[Candle]:
        sql = f"{_SELECT_CANDLES} AND open_time BETWEEN ? AND ? ORDER BY open_time LIMIT ?"
        args = (symbol, interval.name, start, end, max(limit, 0))
        return await self._db.read(
            lambda conn: [candle_from_row(row) for row in conn.execute(sql, args)]
        )

    async def latest_candles(self, symbol: str, interval: Interval, limit: int) -> list[Candle]:
        sql = f"{_SELECT_CANDLES} ORDER BY open_time DESC LIMIT ?"
        args = (symbol, interval.name, max(limit, 0))
        rows = await self._db.fetch(sql, args)
        return [candle_from_row(row) for row in reversed(rows)]

    async def last_candle_before(self, symbol: str, interval: Interval, t: int) -> Candle | None:
        sql = f"{_SELECT_CANDLES} AND open_time < ? ORDER BY open_time DESC LIMIT 1"
        args = (symbol, interval.name, t)
        row = await self._db.read(lambda conn: conn.execute(sql, args).fetchone())
        return None if row is None else candle_from_row(row)

    async def trade_keys_since(self, symbol: str, ts: int) -> list[tuple[int, str]]:
        sql = "SELECT ts, id FROM trades WHERE symbol = ? AND ts >= ? ORDER BY ts, id"
        return await self._db.read(
            lambda conn: [(t, i) for t, i in conn.execute(sql, (symbol, ts))]
        )

    async def recent_trades(self, symbol: str, limit: int) -> list[Trade]:
        sql = f"{_SELECT_TRADES} ORDER BY ts DESC, id DESC LIMIT ?"
        return await self._trades(sql, (symbol, max(limit, 0)))

    async def last_trade_seq(self, symbol: str) -> int:
        sql = "SELECT coalesce(max(seq), 0) FROM trades WHERE symbol = ?"
        seq: int = await self._db.read(lambda conn: conn.execute(sql, (symbol,)).fetchone()[0])
        return seq

    async def trades_by_seq(self, symbol: str, from_seq: int, limit: int) -> list[Trade]:
        sql = f"{_SELECT_TRADES} AND seq >= ? ORDER BY seq LIMIT ?"
        return await self._trades(sql, (symbol, from_seq, max(limit, 0)))

    async def trades_by_time(self, symbol: str, start: int, end: int, limit: int) -> list[Trade]:
        sql = f"{_SELECT_TRADES} AND ts BETWEEN ? AND ? ORDER BY seq LIMIT ?"
        return await self._trades(sql, (symbol, start, end, max(limit, 0)))

    async def _trades(self, sql: str, args: tuple[Any, ...]) -> list[Trade]:
        symbol = args[0]
        return trades_from_rows(symbol, await self._db.fetch(sql, args))

    async def trade_count(self) -> int:
        count: int = await self._db.read(
            lambda conn: conn.execute("SELECT count(*) FROM trades").fetchone()[0]
        )
        return count
