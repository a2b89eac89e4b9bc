"""The scale-out store: PostgreSQL through psycopg 3 and a psycopg_pool connection pool.

Design, and why:

* Driver: psycopg 3 (``psycopg[binary,pool]``), not asyncpg. Both are maintained and fast at
  what this store does (bulk COPY; the rest is a few small queries). psycopg ships its own type
  annotations, so the package stays ``mypy --strict`` with no third-party stubs; it speaks libpq,
  so ``DATABASE_URL`` means exactly what it means to ``psql`` (both URL schemes, ``sslmode``,
  ``options=-csearch_path=...``, service files, ``PG*`` environment defaults); its pool checks a
  connection before lending it, so a restarted server costs a reconnect, not an error.
* Exact numbers: prices, amounts, timestamps and counts are BIGINT (the domain keeps prices and
  amounts below 2**62). Volumes are sums and ``quote_volume`` a sum of products, so they may not
  fit 64 bits: they are NUMERIC with no precision, exact and unbounded, read back with ``int``.
* One transaction per ``write``, committed with the server's ``synchronous_commit`` (``on`` by
  default: the commit is flushed to the WAL before ``write`` returns, so an acknowledged trade
  survives a kill -9 of either process). A server configured with ``off`` would make that a lie,
  so this store's sessions turn it back ``on`` (``local``, ``remote_write`` and stricter levels
  are left as they are).
* Writes go through COPY into session temp tables, then one ``INSERT ... SELECT``: trades with
  ``ON CONFLICT (symbol, id) DO NOTHING`` (a replayed id keeps the first stored fact), candles
  with ``ON CONFLICT ... DO UPDATE`` (an update carries the candle's whole new state). Measured
  on this project's 2-core machine with 5,000-trade batches (``bench/pg_store.py
  --strategies``), COPY gave 140-220k trades/s, ``INSERT ... SELECT unnest(arrays)`` 115-135k
  (and about half of COPY with random ids), pipelined ``executemany`` 70-95k, multi-row
  ``VALUES`` 42-48k. Most of a batch's time is the server's index maintenance, not the client.
  Rows are inserted in key order, so concurrent writers of overlapping keys (two processes, say)
  take row locks in the same order and cannot deadlock.
* Duplicate trade ids within one batch are dropped here, keeping the first, as SQLite keeps the
  first it inserts; an INSERT must never see one key twice.
* Schema: ``schema_version`` holds one row per applied migration; ``_MIGRATIONS[i]`` (in
  ``postgres_schema``) takes version ``i`` to ``i + 1``. Pending steps, their version rows and
  the symbol check commit in one transaction under a transaction-scoped advisory lock, so two
  processes starting at once migrate once (the second waits, then finds nothing to do) and a
  refused symbol leaves the database as it was.
* ``psycopg`` and pool errors become ``StorageError`` here, at the boundary (``raise ... from
  exc``), with one-line messages that name the server but never the password.

Cancelling a caller of ``write`` does not cancel the write: it runs on to COMMIT or ROLLBACK in a
task of its own (``close`` waits for it), so a connection is never abandoned mid-transaction,
but that caller cannot know which. Behind a transaction-mode connection pooler (PgBouncer)
temp tables and prepared statements misbehave: connect to the server, or a session-mode pooler.
"""

import asyncio
from collections.abc import Callable, Coroutine, Sequence
from typing import Any, Final, LiteralString, TypeVar

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg_pool import AsyncConnectionPool

from memetrade.adapters.storage.postgres_schema import MIGRATIONS as _MIGRATIONS
from memetrade.adapters.storage.rows import (
    candle_from_row,
    candle_rows,
    steps_changed,
    trades_from_rows,
)
from memetrade.domain.candles import Candle, CandleUpdate
from memetrade.domain.intervals import Interval
from memetrade.domain.symbols import SymbolSpec
from memetrade.domain.trades import Trade
from memetrade.ports import StorageError, StorageUnavailable

__all__ = ["PostgresStore"]

_T = TypeVar("_T")
_Conn = psycopg.AsyncConnection[tuple[Any, ...]]

# Any constant works; this one spells "memetrad". Advisory locks are per database, so stores in
# different schemas of one database serialise their (short) migrations, which is harmless.
_MIGRATION_LOCK: Final = 0x6D656D6574726164
# How long open() waits for another process's migration before giving up.
_MIGRATION_LOCK_TIMEOUT: Final = "60s"
# Used when the URL sets none (libpq's own default is to wait forever).
_CONNECT_TIMEOUT_S: Final = 10
# How long a call waits for a free pool connection before failing with StorageError.
_POOL_TIMEOUT_S: Final = 10.0

_TRADE_COLUMNS: Final = "symbol, id, ts, price, amount, side, seq"
_CANDLE_COLUMNS: Final = (
    "open_time, open, high, low, close, volume, quote_volume, trades,"
    " first_ts, first_id, last_ts, last_id, buy_volume, buy_quote_volume"
)
# Per-session staging tables for COPY, emptied by every commit (and by every rollback, as
# anything a transaction wrote). Created once per pooled connection, by _configure.
_STAGING: Final[tuple[LiteralString, ...]] = (
    """CREATE TEMP TABLE trades_in (
        symbol text, id text, ts bigint, price bigint, amount bigint, side text, seq bigint,
        ord bigint
    ) ON COMMIT DELETE ROWS""",
    """CREATE TEMP TABLE candles_in (
        symbol text, interval text, open_time bigint, open bigint, high bigint, low bigint,
        close bigint, volume numeric, quote_volume numeric, trades bigint,
        first_ts bigint, first_id text, last_ts bigint, last_id text,
        buy_volume numeric, buy_quote_volume numeric
    ) ON COMMIT DELETE ROWS""",
)
_COPY_TRADES: Final = f"COPY trades_in ({_TRADE_COLUMNS}, ord) FROM STDIN"
_COPY_CANDLES: Final = f"COPY candles_in (symbol, interval, {_CANDLE_COLUMNS}) FROM STDIN"
# A trade without a number (seq 0) gets the next one past the symbol's highest, in the order
# given (``ord``); ids stored already are left out first, so they consume no number. Writers of
# unnumbered trades hold a per-symbol advisory lock (``_NUMBER_LOCK``) until commit, so two
# processes cannot hand out the same numbers.
_INSERT_TRADES: Final = """
    INSERT INTO trades (symbol, id, ts, price, amount, side, seq)
    SELECT t.symbol, t.id, t.ts, t.price, t.amount, t.side,
        CASE WHEN t.seq > 0 THEN t.seq ELSE
            coalesce((SELECT max(x.seq) FROM trades x WHERE x.symbol = t.symbol), 0)
            + row_number() OVER (PARTITION BY t.symbol, t.seq > 0 ORDER BY t.ord) END
    FROM trades_in t
    WHERE NOT EXISTS (SELECT 1 FROM trades x WHERE x.symbol = t.symbol AND x.id = t.id)
    ORDER BY t.symbol, t.id
    ON CONFLICT (symbol, id) DO NOTHING"""
# The two-key advisory lock space is apart from the one-key space of _MIGRATION_LOCK.
_NUMBER_LOCK: Final = (
    "SELECT pg_advisory_xact_lock(1835363685, hashtext(s)) FROM unnest(%s::text[]) AS s ORDER BY s"
)
_SELECT_TRADES: Final = "SELECT id, price, amount, side, ts, seq FROM trades WHERE symbol = %s"
_UPSERT_CANDLES: Final = f"""
    INSERT INTO candles (symbol, interval, {_CANDLE_COLUMNS})
    SELECT symbol, interval, {_CANDLE_COLUMNS} FROM candles_in
    ORDER BY symbol, interval, open_time
    ON CONFLICT (symbol, interval, open_time) DO UPDATE SET
        open = excluded.open, high = excluded.high, low = excluded.low, close = excluded.close,
        volume = excluded.volume, quote_volume = excluded.quote_volume, trades = excluded.trades,
        first_ts = excluded.first_ts, first_id = excluded.first_id,
        last_ts = excluded.last_ts, last_id = excluded.last_id,
        buy_volume = excluded.buy_volume, buy_quote_volume = excluded.buy_quote_volume"""

_SELECT_CANDLES: Final = (
    f"SELECT {_CANDLE_COLUMNS} FROM candles WHERE symbol = %s AND interval = %s"
)


class PostgresStore:
    """A ``TradeStore`` in the PostgreSQL database at ``url`` (``postgresql://`` or
    ``postgres://``, anything libpq accepts). The database must exist; ``open`` creates or
    migrates the tables in the schema the connection's ``search_path`` selects.

    The pool keeps ``min_connections`` to ``max_connections`` open; the maximum is also how many
    calls run at once. After ``close`` the store may be opened again.
    """

    def __init__(self, url: str, *, min_connections: int = 1, max_connections: int = 8) -> None:
        if not 1 <= min_connections <= max_connections:
            raise ValueError("need 1 <= min_connections <= max_connections")
        self._url = url
        self._min, self._max = min_connections, max_connections
        self._target = _redact(url)
        # None while closed. Every call takes it once, so close() clearing it stops new calls.
        self._pool: AsyncConnectionPool[_Conn] | None = None
        # Writes in flight, each in its own task (see the module docstring); close() awaits them.
        self._writes: set[asyncio.Task[None]] = set()

    def __repr__(self) -> str:
        return f"PostgresStore({self._target!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, symbols: Sequence[SymbolSpec]) -> None:
        if self._pool is not None:
            raise StorageError(f"{self._target} is already open")
        try:
            conninfo = _conninfo(self._url)
            connect = psycopg.AsyncConnection.connect(conninfo, autocommit=True)
            async with await connect as conn, conn.transaction():
                await self._migrate(conn)
                await self._check_symbols(conn, list(symbols))
            pool: AsyncConnectionPool[_Conn] = AsyncConnectionPool(
                conninfo,
                min_size=self._min,
                max_size=self._max,
                open=False,
                kwargs={"autocommit": True},
                configure=_configure,
                check=AsyncConnectionPool.check_connection,
                name="memetrade",
                timeout=_POOL_TIMEOUT_S,
            )
            try:
                await pool.open(wait=True, timeout=_POOL_TIMEOUT_S)
            except BaseException:
                await pool.close()
                raise
        except psycopg.Error as exc:
            raise StorageError(f"cannot open {self._target}: {_one_line(exc)}") from exc
        self._pool = pool

    async def close(self) -> None:
        pool = self._pool
        if pool is None:
            return
        self._pool = None
        try:
            # Writes started before close() run to COMMIT or ROLLBACK; their callers see how.
            await asyncio.gather(*self._writes, return_exceptions=True)
        finally:
            try:
                await pool.close()
            except psycopg.Error as exc:
                raise StorageError(f"closing {self._target}: {_one_line(exc)}") from exc

    async def _migrate(self, conn: _Conn) -> None:
        # The lock is released by the transaction's end. lock_timeout bounds the wait for it.
        await conn.execute(
            sql.SQL("SET LOCAL lock_timeout = {}").format(sql.Literal(_MIGRATION_LOCK_TIMEOUT))
        )
        await conn.execute("SELECT pg_advisory_xact_lock(%s)", (_MIGRATION_LOCK,))
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_version (
                version integer NOT NULL PRIMARY KEY,
                applied_at timestamptz NOT NULL DEFAULT now()
            )"""
        )
        cur = await conn.execute("SELECT coalesce(max(version), 0) FROM schema_version")
        row = await cur.fetchone()
        version: int = row[0] if row is not None else 0
        if version > len(_MIGRATIONS):
            raise StorageError(
                f"{self._target} has schema version {version} but this memetrade knows only up"
                f" to {len(_MIGRATIONS)}; upgrade memetrade"
            )
        for number, step in enumerate(_MIGRATIONS[version:], start=version + 1):
            for statement in step:
                await conn.execute(statement)
            await conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (number,))

    async def _check_symbols(self, conn: _Conn, symbols: list[SymbolSpec]) -> None:
        cur = await conn.execute("SELECT name, price_decimals, amount_decimals FROM symbols")
        stored = {name: (price, amount) for name, price, amount in await cur.fetchall()}
        for spec in symbols:
            steps = (spec.price_decimals, spec.amount_decimals)
            old = stored.get(spec.name)
            if old is None:
                await conn.execute("INSERT INTO symbols VALUES (%s, %s, %s)", (spec.name, *steps))
                stored[spec.name] = steps
            elif old != steps:
                raise StorageError(steps_changed(spec.name, old, steps, str(self._target)))

    # -- plumbing -------------------------------------------------------------------------------

    def _opened(self) -> AsyncConnectionPool[_Conn]:
        pool = self._pool
        if pool is None:
            raise StorageError(f"{self._target} is not open")
        return pool

    async def _run(self, what: str, fn: Callable[[_Conn], Coroutine[Any, Any, _T]]) -> _T:
        pool = self._opened()
        try:
            async with pool.connection() as conn:
                return await fn(conn)
        except psycopg.OperationalError as exc:
            # Connection failures, a server shutting down, and the pool's PoolTimeout (a
            # subclass) all land here: the server may well be back in a moment.
            message = f"postgres {what} {self._target} failed: {_one_line(exc)}"
            raise StorageUnavailable(message) from exc
        except psycopg.Error as exc:
            raise StorageError(f"postgres {what} {self._target} failed: {_one_line(exc)}") from exc

    async def _fetch(self, query: LiteralString, args: Sequence[Any]) -> list[tuple[Any, ...]]:
        async def run(conn: _Conn) -> list[tuple[Any, ...]]:
            cur = await conn.execute(query, args)
            return await cur.fetchall()

        return await self._run("read from", run)

    # -- writes ---------------------------------------------------------------------------------

    async def write(self, trades: Sequence[Trade], candles: Sequence[CandleUpdate]) -> None:
        self._opened()
        trade_rows = _trade_rows(trades)
        upserts = candle_rows(candles, int)
        if not trade_rows and not upserts:
            return

        async def run(conn: _Conn) -> None:
            async with conn.transaction():
                if trade_rows:
                    unnumbered = sorted({row[0] for row in trade_rows if row[6] == 0})
                    if unnumbered:
                        await conn.execute(_NUMBER_LOCK, (unnumbered,))
                    async with conn.cursor().copy(_COPY_TRADES) as copy:
                        for trade_row in trade_rows:
                            await copy.write_row(trade_row)
                    await conn.execute(_INSERT_TRADES)
                if upserts:
                    async with conn.cursor().copy(_COPY_CANDLES) as copy:
                        for candle_row in upserts:
                            await copy.write_row(candle_row)
                    await conn.execute(_UPSERT_CANDLES)

        task = asyncio.create_task(self._run("write to", run))
        self._writes.add(task)
        task.add_done_callback(self._writes.discard)
        await asyncio.shield(task)

    # -- reads ----------------------------------------------------------------------------------

    async def ping(self) -> None:
        # Reads a table of ours, unlike a bare SELECT 1: the schema is there and readable.
        await self._fetch("SELECT 1 FROM symbols LIMIT 1", ())

    async def existing_ids(self, symbol: str, ids: Sequence[str]) -> set[str]:
        unique = list(dict.fromkeys(ids))
        self._opened()
        if not unique:
            return set()
        rows = await self._fetch(
            "SELECT id FROM trades WHERE symbol = %s AND id = ANY(%s)", (symbol, unique)
        )
        return {row[0] for row in rows}

    async def candles(
        self, symbol: str, interval: Interval, start: int, end: int, limit: int
    ) -> list[Candle]:
        query = f"{_SELECT_CANDLES} AND open_time BETWEEN %s AND %s ORDER BY open_time LIMIT %s"
        rows = await self._fetch(query, (symbol, interval.name, start, end, max(limit, 0)))
        return [candle_from_row(row) for row in rows]

    async def latest_candles(self, symbol: str, interval: Interval, limit: int) -> list[Candle]:
        query = f"{_SELECT_CANDLES} ORDER BY open_time DESC LIMIT %s"
        rows = await self._fetch(query, (symbol, interval.name, max(limit, 0)))
        return [candle_from_row(row) for row in reversed(rows)]

    async def last_candle_before(self, symbol: str, interval: Interval, t: int) -> Candle | None:
        query = f"{_SELECT_CANDLES} AND open_time < %s ORDER BY open_time DESC LIMIT 1"
        rows = await self._fetch(query, (symbol, interval.name, t))
        return candle_from_row(rows[0]) if rows else None

    async def trade_keys_since(self, symbol: str, ts: int) -> list[tuple[int, str]]:
        rows = await self._fetch(
            "SELECT ts, id FROM trades WHERE symbol = %s AND ts >= %s ORDER BY ts, id",
            (symbol, ts),
        )
        return [(t, i) for t, i in rows]

    async def recent_trades(self, symbol: str, limit: int) -> list[Trade]:
        query = f"{_SELECT_TRADES} ORDER BY ts DESC, id DESC LIMIT %s"
        return trades_from_rows(symbol, await self._fetch(query, (symbol, max(limit, 0))))

    async def last_trade_seq(self, symbol: str) -> int:
        rows = await self._fetch(
            "SELECT coalesce(max(seq), 0) FROM trades WHERE symbol = %s", (symbol,)
        )
        seq: int = rows[0][0]
        return seq

    async def trades_by_seq(self, symbol: str, from_seq: int, limit: int) -> list[Trade]:
        query = f"{_SELECT_TRADES} AND seq >= %s ORDER BY seq LIMIT %s"
        return trades_from_rows(symbol, await self._fetch(query, (symbol, from_seq, max(limit, 0))))

    async def trades_by_time(self, symbol: str, start: int, end: int, limit: int) -> list[Trade]:
        query = f"{_SELECT_TRADES} AND ts BETWEEN %s AND %s ORDER BY seq LIMIT %s"
        return trades_from_rows(
            symbol, await self._fetch(query, (symbol, start, end, max(limit, 0)))
        )

    async def trade_count(self) -> int:
        rows = await self._fetch("SELECT count(*) FROM trades", ())
        count: int = rows[0][0]
        return count


async def _configure(conn: _Conn) -> None:
    """Prepare a new pooled connection: durable commits and the COPY staging tables."""
    await conn.execute(
        "SELECT set_config('synchronous_commit', 'on', false)"
        " WHERE current_setting('synchronous_commit') = 'off'"
    )
    for statement in _STAGING:
        await conn.execute(statement)


def _conninfo(url: str) -> str:
    """``url`` as a libpq connection string, with our defaults for what it leaves unset."""
    given = conninfo_to_dict(url)
    defaults: dict[str, Any] = {
        "application_name": "memetrade",
        "connect_timeout": _CONNECT_TIMEOUT_S,
    }
    return make_conninfo(url, **{k: v for k, v in defaults.items() if k not in given})


def _redact(url: str) -> str:
    """``postgresql://host:port/dbname`` of ``url``: enough to name it, no user or password."""
    try:
        parts = conninfo_to_dict(url)
    except psycopg.Error:
        return "postgresql://(unparsable URL)"
    host = parts.get("host") or "localhost"
    port = parts.get("port") or "5432"
    dbname = parts.get("dbname") or parts.get("user") or ""
    return f"postgresql://{host}:{port}/{dbname}"


def _one_line(exc: BaseException) -> str:
    # libpq's messages carry DETAIL, HINT and indented context on further lines.
    return " ".join(str(exc).split()) or type(exc).__name__


def _trade_rows(trades: Sequence[Trade]) -> list[tuple[Any, ...]]:
    # The first trade of an id wins, within a batch as across batches.
    first: dict[tuple[str, str], Trade] = {}
    for t in trades:
        first.setdefault((t.symbol, t.id), t)
    return [
        (t.symbol, t.id, t.ts, t.price, t.amount, t.side.value, t.seq, position)
        for position, t in enumerate(first.values())
    ]
