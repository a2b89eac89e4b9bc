"""Schema step 3 on every backend: a database written at version 2, before candles kept taker
buy volumes, gets them recomputed from its stored trades, so that every stored candle equals
the aggregation of its trades again."""

import sqlite3
from pathlib import Path

import numpy as np
import psycopg
import pytest
from store_backends import SYMBOLS, postgres_database

from memetrade.adapters.storage.postgres import PostgresStore
from memetrade.adapters.storage.sqlite import SqliteStore
from memetrade.domain.batch import aggregate
from memetrade.domain.candles import Candle
from memetrade.domain.intervals import INTERVALS
from memetrade.domain.trades import Side, Trade
from memetrade.ports import TradeStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_040_000  # A minute boundary, epoch ms.
HUGE = 2**61 + 7  # price * amount is about 2**122: past 64 bits, in SQL as everywhere.

# Two symbols; seconds with buys only, sells only and both; minutes and hours apart; and
# products whose sums do not fit 64 bits.
TRADES = [
    Trade("a", "PEPE", 100, 3, Side.BUY, T0 + 10, 1),
    Trade("b", "PEPE", 105, 2, Side.SELL, T0 + 20, 2),
    Trade("c", "PEPE", 99, 5, Side.BUY, T0 + 900, 3),
    Trade("d", "PEPE", 101, 7, Side.SELL, T0 + 1_500, 4),
    Trade("e", "PEPE", HUGE, HUGE, Side.BUY, T0 + 61_000, 5),
    Trade("f", "PEPE", HUGE - 1, HUGE + 1, Side.BUY, T0 + 61_001, 6),
    Trade("g", "PEPE", HUGE, 2, Side.SELL, T0 + 61_002, 7),
    Trade("h", "PEPE", 120, 1, Side.BUY, T0 + 3_700_000, 8),
    Trade("x", "DOGE", 50, 4, Side.SELL, T0 + 10, 1),
    Trade("y", "DOGE", 51, 6, Side.BUY, T0 + 30, 2),
]

# Version 2 of each schema, as it was released (what a database written then holds).
_SQLITE_V2 = (
    """CREATE TABLE symbols (name TEXT NOT NULL PRIMARY KEY, price_decimals INTEGER NOT NULL,
        amount_decimals INTEGER NOT NULL) WITHOUT ROWID""",
    """CREATE TABLE trades (symbol TEXT NOT NULL, id TEXT NOT NULL, ts INTEGER NOT NULL,
        price INTEGER NOT NULL, amount INTEGER NOT NULL,
        side TEXT NOT NULL CHECK (side IN ('Buy', 'Sell')), seq INTEGER NOT NULL DEFAULT 0,
        PRIMARY KEY (symbol, id)) WITHOUT ROWID""",
    "CREATE INDEX trades_by_time ON trades (symbol, ts)",
    "CREATE UNIQUE INDEX trades_by_seq ON trades (symbol, seq)",
    """CREATE TABLE candles (symbol TEXT NOT NULL, interval TEXT NOT NULL,
        open_time INTEGER NOT NULL, open INTEGER NOT NULL, high INTEGER NOT NULL,
        low INTEGER NOT NULL, close INTEGER NOT NULL, volume TEXT NOT NULL,
        quote_volume TEXT NOT NULL, trades INTEGER NOT NULL CHECK (trades > 0),
        first_ts INTEGER NOT NULL, first_id TEXT NOT NULL, last_ts INTEGER NOT NULL,
        last_id TEXT NOT NULL, PRIMARY KEY (symbol, interval, open_time)) WITHOUT ROWID""",
    "PRAGMA user_version = 2",
)
_POSTGRES_V2 = (
    """CREATE TABLE schema_version (version integer NOT NULL PRIMARY KEY,
        applied_at timestamptz NOT NULL DEFAULT now())""",
    "INSERT INTO schema_version (version) VALUES (1), (2)",
    """CREATE TABLE symbols (name text NOT NULL PRIMARY KEY, price_decimals integer NOT NULL,
        amount_decimals integer NOT NULL)""",
    """CREATE TABLE trades (symbol text NOT NULL, id text NOT NULL, ts bigint NOT NULL,
        price bigint NOT NULL, amount bigint NOT NULL,
        side text NOT NULL CHECK (side IN ('Buy', 'Sell')), seq bigint NOT NULL,
        PRIMARY KEY (symbol, id))""",
    "CREATE INDEX trades_by_time ON trades (symbol, ts, id)",
    "CREATE UNIQUE INDEX trades_by_seq ON trades (symbol, seq)",
    """CREATE TABLE candles (symbol text NOT NULL, interval text NOT NULL,
        open_time bigint NOT NULL, open bigint NOT NULL, high bigint NOT NULL,
        low bigint NOT NULL, close bigint NOT NULL, volume numeric NOT NULL,
        quote_volume numeric NOT NULL, trades bigint NOT NULL CHECK (trades > 0),
        first_ts bigint NOT NULL, first_id text NOT NULL, last_ts bigint NOT NULL,
        last_id text NOT NULL, PRIMARY KEY (symbol, interval, open_time))""",
)


def expected_candles(symbol: str) -> dict[str, list[Candle]]:
    """Every interval's candles of ``symbol``, aggregated from ``TRADES``."""
    trades = sorted((t for t in TRADES if t.symbol == symbol), key=lambda t: (t.ts, t.id))

    def column(values: list[int]) -> "np.ndarray[tuple[int], np.dtype[np.int64]]":
        return np.array(values, dtype=np.int64)

    return {
        interval.name: aggregate(
            interval.ms,
            column([t.ts for t in trades]),
            column([t.price for t in trades]),
            column([t.amount for t in trades]),
            np.array([t.side is Side.BUY for t in trades], dtype=np.bool_),
            [t.id for t in trades],
        )
        for interval in INTERVALS
    }


def v2_rows() -> tuple[list[tuple[object, ...]], list[tuple[object, ...]]]:
    """The trade rows and the version-2 candle rows (no taker buy columns) of ``TRADES``."""
    trades = [(t.symbol, t.id, t.ts, t.price, t.amount, t.side.value, t.seq) for t in TRADES]
    candles = [
        (
            symbol,
            interval,
            c.open_time,
            c.open,
            c.high,
            c.low,
            c.close,
            str(c.volume),
            str(c.quote_volume),
            c.trades,
            *(c.first or ()),
            *(c.last or ()),
        )
        for symbol in ("PEPE", "DOGE")
        for interval, cs in expected_candles(symbol).items()
        for c in cs
    ]
    return trades, candles


def v2_sqlite(path: Path) -> TradeStore:
    trades, candles = v2_rows()
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in _SQLITE_V2:
        conn.execute(statement)
    conn.executemany("INSERT INTO trades VALUES (?, ?, ?, ?, ?, ?, ?)", trades)
    conn.executemany("INSERT INTO candles VALUES (" + ", ".join("?" * 14) + ")", candles)
    conn.close()
    return SqliteStore(path)


def v2_postgres(request: pytest.FixtureRequest) -> TradeStore:
    url, drop = postgres_database()
    request.addfinalizer(drop)
    trades, candles = v2_rows()
    with psycopg.connect(url, autocommit=True) as conn:
        for statement in _POSTGRES_V2:
            conn.execute(statement)
        with conn.cursor() as cur:
            cur.executemany("INSERT INTO trades VALUES (%s, %s, %s, %s, %s, %s, %s)", trades)
            cur.executemany(
                "INSERT INTO candles VALUES (%s, %s, %s, %s, %s, %s, %s, %s::numeric,"
                " %s::numeric, %s, %s, %s, %s, %s)",
                candles,
            )
    return PostgresStore(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_candles_stored_at_version_2_get_taker_buy_volumes_from_their_trades(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = v2_sqlite(tmp_path / "v2.db") if backend == "sqlite" else v2_postgres(request)
    await store.open(SYMBOLS)
    try:
        for symbol in ("PEPE", "DOGE"):
            for interval in INTERVALS:
                want = expected_candles(symbol)[interval.name]
                got = await store.candles(symbol, interval, 0, 2**62, 1_000)
                assert got == want, (symbol, interval.name)
        # The figures themselves, not only agreement with the batch aggregator.
        (second,) = await store.candles("PEPE", INTERVALS[0], T0 + 61_000, T0 + 61_000, 1)
        assert second.buy_volume == 2 * HUGE + 1
        assert second.buy_quote_volume == HUGE * HUGE + (HUGE - 1) * (HUGE + 1)
        (sells_only,) = await store.candles("PEPE", INTERVALS[0], T0 + 1_000, T0 + 1_000, 1)
        assert (sells_only.buy_volume, sells_only.buy_quote_volume) == (0, 0)
        (hour,) = await store.candles("DOGE", INTERVALS[-1], 0, 2**62, 1)
        assert (hour.volume, hour.buy_volume, hour.buy_quote_volume) == (10, 6, 306)
    finally:
        await store.close()
    # Migrated once: opening again finds nothing to do and the figures stay.
    await store.open(SYMBOLS)
    try:
        got = await store.candles("PEPE", INTERVALS[1], 0, 2**62, 1_000)
        assert got == expected_candles("PEPE")["1m"]
    finally:
        await store.close()
