"""The scale-out store: market data in PostgreSQL (connections: ``pg_conn``).

Design, and why:

* The driver, pool, durable commits and error mapping are those of ``pg_conn``, shared with the
  other stores of the database.
* Exact numbers: prices, amounts, timestamps and counts are BIGINT (the domain keeps prices and
  amounts below 2**62). Volumes are sums and ``quote_volume`` a sum of products, so they may not
  fit 64 bits: they are NUMERIC with no precision, exact and unbounded, read back with ``int``.
* One transaction per ``write``: committed durably (``pg_conn``), an acknowledged trade
  survives a kill -9 of either process. Cancelling a caller of ``write`` does not cancel the
  write (``pg_conn``'s shielded writes).
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
"""

from collections.abc import Sequence
from typing import Any, Final, LiteralString

from memetrade.adapters.storage.pg_conn import Conn, PostgresDatabase, copy_rows, migrate
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
from memetrade.ports import StorageError

__all__ = ["PostgresStore"]

# Any constant works; this one spells "memetrad". Advisory locks are per database, so stores in
# different schemas of one database serialise their (short) migrations, which is harmless.
_MIGRATION_LOCK: Final = 0x6D656D6574726164

_TRADE_COLUMNS: Final = "symbol, id, ts, price, amount, side, seq"
_CANDLE_COLUMNS: Final = (
    "open_time, open, high, low, close, volume, quote_volume, trades,"
    " first_ts, first_id, last_ts, last_id, buy_volume, buy_quote_volume"
)
# Per-session staging tables for COPY, emptied by every commit (and by every rollback, as
# anything a transaction wrote). Created once per pooled connection.
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
        self._db = PostgresDatabase(
            url,
            name="memetrade",
            min_connections=min_connections,
            max_connections=max_connections,
            session=_STAGING,
        )

    def __repr__(self) -> str:
        return f"PostgresStore({self._db.target!r})"

    # -- lifecycle -----------------------------------------------------------------------------

    async def open(self, symbols: Sequence[SymbolSpec]) -> None:
        specs = list(symbols)

        async def setup(conn: Conn) -> None:
            await migrate(conn, "schema_version", _MIGRATION_LOCK, _MIGRATIONS, self._db.target)
            await self._check_symbols(conn, specs)

        await self._db.open(setup)

    async def close(self) -> None:
        await self._db.close()

    async def _check_symbols(self, conn: Conn, symbols: list[SymbolSpec]) -> None:
        cur = await conn.execute("SELECT name, price_decimals, amount_decimals FROM symbols")
        stored = {name: (price, amount) for name, price, amount in await cur.fetchall()}
        for spec in symbols:
            steps = (spec.price_decimals, spec.amount_decimals)
            old = stored.get(spec.name)
            if old is None:
                await conn.execute("INSERT INTO symbols VALUES (%s, %s, %s)", (spec.name, *steps))
                stored[spec.name] = steps
            elif old != steps:
                raise StorageError(steps_changed(spec.name, old, steps, self._db.target))

    # -- writes ---------------------------------------------------------------------------------

    async def write(self, trades: Sequence[Trade], candles: Sequence[CandleUpdate]) -> None:
        self._db.require_open()
        trade_rows = _trade_rows(trades)
        upserts = candle_rows(candles, int)
        if not trade_rows and not upserts:
            return

        async def run(conn: Conn) -> None:
            async with conn.transaction():
                if trade_rows:
                    unnumbered = sorted({row[0] for row in trade_rows if row[6] == 0})
                    if unnumbered:
                        await conn.execute(_NUMBER_LOCK, (unnumbered,))
                    await copy_rows(conn, _COPY_TRADES, trade_rows)
                    # Temp tables get no statistics by themselves: the planner would assume
                    # hundreds of staged rows and check them against every stored trade with a
                    # hash join, a full scan whose cost grows with the table (14 ms at 30,000
                    # trades for one staged row). Counted, it probes the primary key instead.
                    await conn.execute("ANALYZE trades_in")
                    await conn.execute(_INSERT_TRADES)
                if upserts:
                    await copy_rows(conn, _COPY_CANDLES, upserts)
                    await conn.execute(_UPSERT_CANDLES)

        await self._db.shielded(self._db.run("write to", run))

    # -- reads ----------------------------------------------------------------------------------

    async def ping(self) -> None:
        # Reads a table of ours, unlike a bare SELECT 1: the schema is there and readable.
        await self._db.fetch("SELECT 1 FROM symbols LIMIT 1", ())

    async def existing_ids(self, symbol: str, ids: Sequence[str]) -> set[str]:
        unique = list(dict.fromkeys(ids))
        self._db.require_open()
        if not unique:
            return set()
        rows = await self._db.fetch(
            "SELECT id FROM trades WHERE symbol = %s AND id = ANY(%s)", (symbol, unique)
        )
        return {row[0] for row in rows}

    async def candles(
        self, symbol: str, interval: Interval, start: int, end: int, limit: int
    ) -> list[Candle]:
        query = f"{_SELECT_CANDLES} AND open_time BETWEEN %s AND %s ORDER BY open_time LIMIT %s"
        rows = await self._db.fetch(query, (symbol, interval.name, start, end, max(limit, 0)))
        return [candle_from_row(row) for row in rows]

    async def latest_candles(self, symbol: str, interval: Interval, limit: int) -> list[Candle]:
        query = f"{_SELECT_CANDLES} ORDER BY open_time DESC LIMIT %s"
        rows = await self._db.fetch(query, (symbol, interval.name, max(limit, 0)))
        return [candle_from_row(row) for row in reversed(rows)]

    async def last_candle_before(self, symbol: str, interval: Interval, t: int) -> Candle | None:
        query = f"{_SELECT_CANDLES} AND open_time < %s ORDER BY open_time DESC LIMIT 1"
        rows = await self._db.fetch(query, (symbol, interval.name, t))
        return candle_from_row(rows[0]) if rows else None

    async def trade_keys_since(self, symbol: str, ts: int) -> list[tuple[int, str]]:
        rows = await self._db.fetch(
            "SELECT ts, id FROM trades WHERE symbol = %s AND ts >= %s ORDER BY ts, id",
            (symbol, ts),
        )
        return [(t, i) for t, i in rows]

    async def recent_trades(self, symbol: str, limit: int) -> list[Trade]:
        query = f"{_SELECT_TRADES} ORDER BY ts DESC, id DESC LIMIT %s"
        return trades_from_rows(symbol, await self._db.fetch(query, (symbol, max(limit, 0))))

    async def last_trade_seq(self, symbol: str) -> int:
        rows = await self._db.fetch(
            "SELECT coalesce(max(seq), 0) FROM trades WHERE symbol = %s", (symbol,)
        )
        seq: int = rows[0][0]
        return seq

    async def trades_by_seq(self, symbol: str, from_seq: int, limit: int) -> list[Trade]:
        query = f"{_SELECT_TRADES} AND seq >= %s ORDER BY seq LIMIT %s"
        return trades_from_rows(
            symbol, await self._db.fetch(query, (symbol, from_seq, max(limit, 0)))
        )

    async def trades_by_time(self, symbol: str, start: int, end: int, limit: int) -> list[Trade]:
        query = f"{_SELECT_TRADES} AND ts BETWEEN %s AND %s ORDER BY seq LIMIT %s"
        return trades_from_rows(
            symbol, await self._db.fetch(query, (symbol, start, end, max(limit, 0)))
        )

    async def trade_count(self) -> int:
        rows = await self._db.fetch("SELECT count(*) FROM trades", ())
        count: int = rows[0][0]
        return count


def _trade_rows(trades: Sequence[Trade]) -> list[tuple[Any, ...]]:
    # The first trade of an id wins, within a batch as across batches.
    first: dict[tuple[str, str], Trade] = {}
    for t in trades:
        first.setdefault((t.symbol, t.id), t)
    return [
        (t.symbol, t.id, t.ts, t.price, t.amount, t.side.value, t.seq, position)
        for position, t in enumerate(first.values())
    ]
