"""Write throughput of ``PostgresStore.write`` in 5,000-trade batches, against a real server.

Run standalone (it is not part of ``make bench``)::

    .venv/bin/python -m bench.pg_store [--url postgresql://postgres@127.0.0.1/postgres]
                                       [--batches 40] [--repeats 3] [--strategies]

Each repeat creates a fresh database from the maintenance database ``--url`` names, opens a
``PostgresStore`` on it and writes ``--batches`` batches, one ``write`` at a time, as the group
commit writer does: ``BATCH`` trades of benchmark 1's tape (PEPE, UUIDv7-layout ids, real
prices and sizes) plus the candle states those trades changed at every interval (the candle
book's ``drain``), one durable transaction per batch. The database is dropped afterwards.
Reported: trades/s over the timed batches (median and range of the repeats) and the per-batch
latency (p50, p99), with ``SqliteStore.write`` of the same batches as the reference.

``--strategies`` also times the ways of inserting the same trade batches that the store's
design weighed (module docstring of ``memetrade.adapters.storage.postgres``), each on a bare
copy of the trades table: COPY into a temp table then ``INSERT ... SELECT`` (what the store
does), ``INSERT ... SELECT FROM unnest(arrays)``, pipelined ``executemany``, and multi-row
``VALUES``.
"""

from __future__ import annotations

import argparse
import asyncio
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import psycopg
from psycopg import sql

from bench.tape import tape
from memetrade.adapters.storage.postgres import PostgresStore
from memetrade.adapters.storage.sqlite import SqliteStore
from memetrade.domain.candle_book import CandleBook
from memetrade.domain.candles import CandleUpdate
from memetrade.domain.symbols import PRESETS
from memetrade.domain.trades import Trade
from memetrade.ports import TradeStore

BATCH = 5_000
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"

Batches = list[tuple[list[Trade], list[CandleUpdate]]]


def batches(count: int) -> Batches:
    """``count`` batches of ``BATCH`` tape trades with the candle updates each one causes."""
    trades = tape(count * BATCH)
    book = CandleBook("PEPE")
    out: Batches = []
    for start in range(0, len(trades), BATCH):
        chunk = list(trades[start : start + BATCH])
        for trade in chunk:
            book.apply(trade, trade.ts)
        out.append((chunk, book.drain()))
    return out


async def time_writes(store: TradeStore, work: Batches) -> tuple[float, list[float]]:
    """Open ``store``, write ``work[0]`` untimed (warm-up), then the rest; return trades/s and
    per-batch seconds."""
    await store.open([PRESETS["PEPE"]])
    try:
        await store.write(*work[0])
        lap: list[float] = []
        for trades, candles in work[1:]:
            t0 = time.perf_counter()
            await store.write(trades, candles)
            lap.append(time.perf_counter() - t0)
        assert await store.trade_count() == len(work) * BATCH
        return (len(work) - 1) * BATCH / sum(lap), lap
    finally:
        await store.close()


def scratch_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    name = f"memetrade_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    return urlsplit(admin_url)._replace(path=f"/{name}").geturl(), drop


# -- the insert strategies the store's design compared -----------------------------------------

_COLUMNS = "symbol, id, ts, price, amount, side"
_TABLE = """CREATE TABLE trades (
    symbol text NOT NULL, id text NOT NULL, ts bigint NOT NULL, price bigint NOT NULL,
    amount bigint NOT NULL, side text NOT NULL, PRIMARY KEY (symbol, id));
    CREATE INDEX ON trades (symbol, ts, id);
    CREATE TEMP TABLE trades_in (LIKE trades) ON COMMIT DELETE ROWS"""
_Conn = psycopg.AsyncConnection[tuple[Any, ...]]
Rows = list[tuple[Any, ...]]


async def _copy(conn: _Conn, rows: Rows) -> None:
    async with conn.cursor().copy(f"COPY trades_in ({_COLUMNS}) FROM STDIN") as copy:
        for row in rows:
            await copy.write_row(row)
    await conn.execute(
        "INSERT INTO trades SELECT * FROM trades_in ORDER BY symbol, id ON CONFLICT DO NOTHING"
    )


async def _unnest(conn: _Conn, rows: Rows) -> None:
    await conn.execute(
        f"INSERT INTO trades ({_COLUMNS}) SELECT * FROM unnest("
        "%s::text[], %s::text[], %s::int8[], %s::int8[], %s::int8[], %s::text[])"
        " ON CONFLICT DO NOTHING",
        [list(column) for column in zip(*rows, strict=True)],
    )


async def _executemany(conn: _Conn, rows: Rows) -> None:
    async with conn.cursor() as cur:  # psycopg pipelines executemany.
        await cur.executemany(
            f"INSERT INTO trades ({_COLUMNS}) VALUES (%s, %s, %s, %s, %s, %s)"
            " ON CONFLICT DO NOTHING",
            rows,
        )


async def _values(conn: _Conn, rows: Rows) -> None:
    for start in range(0, len(rows), 1_000):
        chunk = rows[start : start + 1_000]
        marks = ", ".join(["(%s, %s, %s, %s, %s, %s)"] * len(chunk))
        await conn.execute(
            f"INSERT INTO trades ({_COLUMNS}) VALUES {marks} ON CONFLICT DO NOTHING",  # type: ignore[arg-type]
            [value for row in chunk for value in row],
        )


STRATEGIES: dict[str, Callable[[_Conn, Rows], Awaitable[None]]] = {
    "COPY + INSERT SELECT (the store)": _copy,
    "INSERT SELECT unnest(arrays)": _unnest,
    "executemany, pipelined": _executemany,
    "multi-row VALUES (1,000 rows)": _values,
}


async def time_strategy(
    url: str, insert: Callable[[_Conn, Rows], Awaitable[None]], work: Batches
) -> float:
    async with await psycopg.AsyncConnection.connect(url, autocommit=True) as conn:
        await conn.execute("DROP TABLE IF EXISTS trades")
        await conn.execute(_TABLE)  # type: ignore[arg-type]
        elapsed = 0.0
        for trades, _ in work:
            rows: Rows = [(t.symbol, t.id, t.ts, t.price, t.amount, t.side.value) for t in trades]
            t0 = time.perf_counter()
            async with conn.transaction():
                await insert(conn, rows)
            elapsed += time.perf_counter() - t0
        return len(work) * BATCH / elapsed


# -- main ----------------------------------------------------------------------------------------


def _ms(seconds: Sequence[float], q: int) -> float:
    return statistics.quantiles(seconds, n=100)[q - 1] * 1000 if len(seconds) > 1 else 0.0


def _rate(samples: Sequence[float]) -> str:
    return (
        f"{statistics.median(samples):,.0f} trades/s"
        f" (range {min(samples):,.0f}..{max(samples):,.0f} over {len(samples)} runs)"
    )


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.pg_store", description=__doc__.split("\n")[0]
    )
    parser.add_argument("--url", default=ADMIN_URL, help="maintenance database to create from")
    parser.add_argument("--batches", type=int, default=40, help=f"batches of {BATCH:,} per run")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--strategies", action="store_true", help="also compare insert methods")
    args = parser.parse_args(argv)
    if args.batches < 2:
        parser.error("--batches must be at least 2 (the first one warms up)")

    work = batches(args.batches)
    candles = sum(len(c) for _, c in work) / len(work)
    print(f"{args.batches} batches of {BATCH:,} trades (+ ~{candles:.0f} candle states each)")

    pg_rates: list[float] = []
    pg_laps: list[float] = []
    for _ in range(args.repeats):
        url, drop = scratch_database(args.url)
        try:
            rate, lap = asyncio.run(time_writes(PostgresStore(url), work))
        finally:
            drop()
        pg_rates.append(rate)
        pg_laps += lap
    print(
        f"PostgresStore.write: {_rate(pg_rates)};"
        f" per batch p50 {_ms(pg_laps, 50):.1f} ms, p99 {_ms(pg_laps, 99):.1f} ms"
    )

    lite_rates: list[float] = []
    for _ in range(args.repeats):
        with tempfile.TemporaryDirectory() as tmp:
            rate, _ = asyncio.run(time_writes(SqliteStore(Path(tmp) / "bench.db"), work))
        lite_rates.append(rate)
    print(f"SqliteStore.write (reference): {_rate(lite_rates)}")

    if args.strategies:
        for label, insert in STRATEGIES.items():
            samples = []
            for _ in range(args.repeats):
                url, drop = scratch_database(args.url)
                try:
                    samples.append(asyncio.run(time_strategy(url, insert, work)))
                finally:
                    drop()
            print(f"  trades only, {label}: {_rate(samples)}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
