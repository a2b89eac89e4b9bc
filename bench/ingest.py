"""Benchmark 5: durable ingest over ``POST /internal/trades`` into SQLite.

One ``memetrade serve`` (mock data off, a fresh database, default ``synchronous=FULL``: every
commit fsyncs). Producers in this process (``CONNECTIONS`` threads, one keep-alive connection
each) send batches of ``BATCH`` PEPE trades from benchmark 1's tape (UUIDv7-layout ids, real
prices and sizes), stamped with the current time as they are sent, and wait for each answer:
the server acknowledges only after the transaction holding the batch committed. Sustained rate
= acknowledged trades / wall time of a round; latency = request send to acknowledgement.

Reference: the storage layer alone in the same run: ``SqliteStore.write`` of the same trades in
the same batch size, sequentially in-process (no HTTP, no parsing, no candle book).
"""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections.abc import Sequence

import msgspec

from bench.common import INGEST_TOKEN, RESULTS, Measure, Options, Result, Server, percentile
from bench.rest import profile
from bench.tape import tape
from memetrade.adapters.storage.sqlite import SqliteStore
from memetrade.domain.numbers import format_units
from memetrade.domain.symbols import PRESETS
from memetrade.domain.trades import Trade

__all__ = ["run"]

BATCH = 1000
CONNECTIONS = 4
TARGET = 100_000


def _wire(trades: Sequence[Trade], prefix: str) -> list[dict[str, object]]:
    spec = PRESETS["PEPE"]
    return [
        {
            "id": prefix + t.id[1:],  # Unique per round; still random-looking UUIDv7 text.
            "symbol": t.symbol,
            "price": format_units(t.price, spec.price_decimals),
            "amount": format_units(t.amount, spec.amount_decimals),
            "side": t.side.value,
            "timestamp": 0,
        }
        for t in trades
    ]


def _producer(
    port: int,
    batches: list[list[dict[str, object]]],
    lock: threading.Lock,
    acks: list[float],
    counts: list[int],
    deadline: float,
) -> None:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    encode = msgspec.json.encode
    headers = {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"}
    while time.perf_counter() < deadline:
        with lock:
            if not batches:
                return
            batch = batches.pop()
        now = time.time_ns()
        for item in batch:
            item["timestamp"] = now // 1_000_000
        conn.request("POST", "/internal/trades", encode(batch), headers)
        response = conn.getresponse()
        body = response.read()
        if response.status != 200:
            raise RuntimeError(f"ingest answered {response.status}: {body[:300]!r}")
        acks.append((time.time_ns() - now) / 1e6)
        counts.append(len(batch))


def _round(
    port: int, trades: Sequence[Trade], prefix: str, seconds: float
) -> tuple[float, list[float]]:
    items = _wire(trades, prefix)
    batches = [items[i : i + BATCH] for i in range(0, len(items), BATCH)][::-1]
    lock = threading.Lock()
    acks: list[float] = []
    counts: list[int] = []
    start = time.perf_counter()
    threads = [
        threading.Thread(
            target=_producer, args=(port, batches, lock, acks, counts, start + seconds)
        )
        for _ in range(CONNECTIONS)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    return sum(counts) / elapsed, acks


async def _store_only(trades: Sequence[Trade], prefix: str, path: str) -> float:
    store = SqliteStore(path)
    await store.open([PRESETS["PEPE"]])
    try:
        # Numbered, as the service numbers trades before it stores them.
        last = await store.last_trade_seq("PEPE")
        renamed = [
            Trade(prefix + t.id[1:], t.symbol, t.price, t.amount, t.side, t.ts, last + i)
            for i, t in enumerate(trades, 1)
        ]
        start = time.perf_counter()
        for i in range(0, len(renamed), BATCH):
            await store.write(renamed[i : i + BATCH], ())
        return len(renamed) / (time.perf_counter() - start)
    finally:
        await store.close()


def run(opts: Options) -> list[Result]:
    seconds = opts.n(6, 2)
    rounds = opts.n(3, 2)
    n = opts.n(1_000_000, 200_000)  # An upper bound: a round stops after ``seconds``.
    trades = tape(n)
    db = RESULTS / "ingest.db"
    ref_db = RESULTS / "ingest-ref.db"
    for path in (db, ref_db):
        for suffix in ("", "-wal", "-shm"):
            path.with_name(path.name + suffix).unlink(missing_ok=True)
    rates: list[float] = []
    acks: list[float] = []
    p99s: list[float] = []
    env = {"MOCK_DATA": "0", "DATABASE_URL": f"sqlite:///{db}"}
    with Server(env=env, log=RESULTS / "ingest-server.log") as srv:
        _round(srv.port, trades[:20_000], "f", 1.0)  # Warm-up.
        for r in range(rounds):
            rate, round_acks = _round(srv.port, trades, f"{r:x}", seconds)
            rates.append(rate)
            acks += round_acks
            p99s.append(percentile(round_acks, 99))
        lines: list[str] = []
        if not opts.quick or min(rates) < TARGET:
            lines = profile(
                srv,
                lambda: _round(srv.port, trades, "e", seconds),
                seconds,
                RESULTS / "ingest-profile",
            )
    ref_n = opts.n(300_000, 100_000)
    ref = [
        asyncio.run(_store_only(trades[:ref_n], f"{r:x}", str(ref_db))) for r in range(opts.n(3, 1))
    ]
    measure = Measure("HTTP ingest, ack after commit", "trades/s", rates)
    reference = Measure("SqliteStore.write alone, same batches", "trades/s", ref)
    return [
        Result(
            "5. Durable ingest",
            measure,
            f">= {TARGET:,} trades/s sustained",
            measure.median >= TARGET,
            reference=reference,
            ratio=measure.median / reference.median,
            extra=[
                f"ack latency per {BATCH}-trade request: p50 {percentile(acks, 50):.1f} ms, "
                f"p99 {percentile(acks, 99):.1f} ms (per-round p99: "
                f"{Measure('', 'ms', p99s).text()})"
            ],
            notes=[
                f"{CONNECTIONS} keep-alive connections, batches of {BATCH}, rounds of "
                f"{seconds} s into a fresh database growing across rounds; synchronous=FULL. "
                "The producers (this process) share the 2 cores with the server.",
                *(
                    [
                        "py-spy profile of the server under ingest load (raw stacks in "
                        "bench/results/ingest-profile.txt):"
                    ]
                    if lines
                    else []
                ),
                *("    " + line for line in lines),
            ],
        )
    ]
