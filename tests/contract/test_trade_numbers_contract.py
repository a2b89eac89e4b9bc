"""The trade-number part of the ``TradeStore`` contract (``Trade.seq``), on every backend, and
the migration that numbers the trades of a database written before numbers existed."""

import sqlite3
from pathlib import Path

import psycopg
import pytest
from store_backends import SYMBOLS, postgres_database

from memetrade.adapters.storage import postgres as pg_module
from memetrade.adapters.storage import sqlite as sqlite_module
from memetrade.adapters.storage.postgres import PostgresStore
from memetrade.adapters.storage.sqlite import SqliteStore
from memetrade.domain.trades import Side, Trade
from memetrade.ports import TradeStore

pytestmark = pytest.mark.anyio

T0 = 1_700_000_040_000


def trade(trade_id: str, ts: int, *, seq: int = 0, symbol: str = "PEPE") -> Trade:
    return Trade(trade_id, symbol, 100, 1, Side.BUY, ts, seq)


def seqs(trades: list[Trade]) -> list[tuple[str, int]]:
    return [(t.id, t.seq) for t in trades]


async def test_unnumbered_trades_are_numbered_in_the_order_given_per_symbol(
    store: TradeStore,
) -> None:
    assert await store.last_trade_seq("PEPE") == 0
    await store.write([trade("b", T0 + 5), trade("a", T0), trade("x", T0, symbol="DOGE")], [])
    # A duplicate id consumes no number, in the same batch or a later one.
    await store.write([trade("c", T0 + 1), trade("a", T0 + 9), trade("c", T0 + 2)], [])

    assert seqs(await store.trades_by_seq("PEPE", 1, 10)) == [("b", 1), ("a", 2), ("c", 3)]
    assert seqs(await store.trades_by_seq("DOGE", 0, 10)) == [("x", 1)]
    assert await store.last_trade_seq("PEPE") == 3
    assert await store.last_trade_seq("DOGE") == 1


async def test_numbered_trades_keep_their_numbers_and_read_back_with_them(
    store: TradeStore,
) -> None:
    await store.write([trade("a", T0 + 2, seq=1), trade("b", T0, seq=2)], [])
    await store.write([trade("c", T0 + 1, seq=3), trade("d", T0 + 3, seq=4)], [])

    assert seqs(await store.trades_by_seq("PEPE", 2, 2)) == [("b", 2), ("c", 3)]
    assert seqs(await store.trades_by_seq("PEPE", 5, 2)) == []
    assert seqs(await store.trades_by_seq("PEPE", 1, 0)) == []
    # By time, but in number order: a late trade comes where it was accepted.
    assert seqs(await store.trades_by_time("PEPE", T0, T0 + 2, 10)) == [
        ("a", 1),
        ("b", 2),
        ("c", 3),
    ]
    assert seqs(await store.trades_by_time("PEPE", T0, T0 + 3, 2)) == [("a", 1), ("b", 2)]
    assert [t.seq for t in await store.recent_trades("PEPE", 2)] == [4, 1]
    assert await store.last_trade_seq("PEPE") == 4
    # Unnumbered trades continue after the highest number.
    await store.write([trade("e", T0 + 4)], [])
    assert seqs(await store.trades_by_seq("PEPE", 5, 5)) == [("e", 5)]


_OLD_TRADES = [("PEPE", "b", T0 + 1), ("PEPE", "a", T0 + 1), ("PEPE", "z", T0), ("DOGE", "q", T0)]


def _old_sqlite(scratch: Path) -> TradeStore:
    path = scratch / "old.db"
    conn = sqlite3.connect(path, isolation_level=None)
    for statement in sqlite_module._MIGRATIONS[0]:
        conn.execute(statement)
    conn.execute("PRAGMA user_version = 1")
    conn.executemany("INSERT INTO trades VALUES (?, ?, ?, 100, 1, 'Buy')", list(_OLD_TRADES))
    conn.close()
    return SqliteStore(path)


def _old_postgres(request: pytest.FixtureRequest) -> TradeStore:
    url, drop = postgres_database()
    request.addfinalizer(drop)
    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(
            "CREATE TABLE schema_version (version integer NOT NULL PRIMARY KEY,"
            " applied_at timestamptz NOT NULL DEFAULT now())"
        )
        for statement in pg_module._MIGRATIONS[0]:
            conn.execute(statement)
        conn.execute("INSERT INTO schema_version (version) VALUES (1)")
        with conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO trades VALUES (%s, %s, %s, 100, 1, 'Buy')", list(_OLD_TRADES)
            )
    return PostgresStore(url)


@pytest.mark.parametrize("backend", ["sqlite", "postgres"])
async def test_trades_stored_before_numbers_existed_are_numbered_by_time_then_id(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    store = _old_sqlite(tmp_path) if backend == "sqlite" else _old_postgres(request)
    await store.open(SYMBOLS)
    try:
        assert seqs(await store.trades_by_seq("PEPE", 1, 10)) == [("z", 1), ("a", 2), ("b", 3)]
        assert seqs(await store.trades_by_seq("DOGE", 1, 10)) == [("q", 1)]
        await store.write([trade("new", T0 + 7)], [])
        assert await store.last_trade_seq("PEPE") == 4
    finally:
        await store.close()
