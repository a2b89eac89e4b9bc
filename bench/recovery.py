"""Benchmark 6: start-up to ready with 10 M stored trades, and idle RSS.

The database: 10,000,000 trades from the market model, 2.5 M for each default symbol (PEPE,
DOGE, SHIB, FLOKI; 100 trades/s on average, so about 7 hours each, ending when the file was
made) and their candles at every interval, built with ``domain.batch.aggregate`` and written
through ``SqliteStore.write`` in big batches. That takes about two minutes, so the file is
cached in bench/results/ (gitignored) and reused while its name (symbols, trade count)
matches; each run starts from a fresh copy, so the cached file never changes.

Measured: wall time from spawning ``memetrade serve`` (default settings: mock generator on,
backfill on, which a non-empty database skips) to ``/ready`` answering 200; then RSS after 5 s
of idling. Reference in the same run: the same start-up against an empty database with mock
data off, i.e. the fixed cost of interpreter, imports and server start. If the target is
missed, one more start-up runs under py-spy and its heaviest frames are listed.
"""

from __future__ import annotations

import asyncio
import shutil
import statistics
import time
from pathlib import Path

import numpy as np

from bench.common import PYTHON, RESULTS, Measure, Options, Result, Server, rss_mb
from bench.rest import summarize
from memetrade.adapters.storage.sqlite import SqliteStore
from memetrade.domain.batch import aggregate
from memetrade.domain.candles import CandleUpdate
from memetrade.domain.intervals import INTERVALS
from memetrade.domain.market_model import MarketModel
from memetrade.domain.symbols import PRESETS
from memetrade.domain.trades import Side, Trade

__all__ = ["run"]

RATE = 100.0
CHUNK_MS = 3_600_000  # Generate and write an hour at a time (~360k trades).
START_TARGET_S = 3.0
RSS_TARGET_MB = 150.0


async def _build(path: str, n: int) -> None:
    # Every default symbol gets its share: a symbol without trades would be backfilled at
    # start-up, which is a first start, not a recovery.
    store = SqliteStore(path)
    await store.open(list(PRESETS.values()))
    try:
        now = int(time.time() * 1000)
        for k, spec in enumerate(PRESETS.values()):
            share = n // len(PRESETS) + (n % len(PRESETS) if k == 0 else 0)
            start = now - int(share / RATE * 1000)
            start -= start % CHUNK_MS
            model = MarketModel(spec, seed=7 + k)
            written = 0
            t = start
            while written < share:
                trades = model.trades_between(t, t + CHUNK_MS, RATE)[: share - written]
                t += CHUNK_MS
                if trades:
                    await store.write(trades, _candles(trades))
                    written += len(trades)
    finally:
        await store.close()


def _candles(trades: list[Trade]) -> list[CandleUpdate]:
    # Chunks are whole hours, so every candle of every interval lies inside one chunk.
    ts = np.fromiter((t.ts for t in trades), np.int64, len(trades))
    price = np.fromiter((t.price for t in trades), np.int64, len(trades))
    amount = np.fromiter((t.amount for t in trades), np.int64, len(trades))
    buy = np.fromiter((t.side is Side.BUY for t in trades), np.bool_, len(trades))
    ids = [t.id for t in trades]
    return [
        CandleUpdate(trades[0].symbol, interval, candle, True, 0)
        for interval in INTERVALS
        for candle in aggregate(interval.ms, ts, price, amount, buy, ids)
    ]


def database(n: int) -> tuple[str, float]:
    """The cached database of ``n`` trades (built if missing) and seconds spent building it."""
    cached = RESULTS / f"recovery-{len(PRESETS)}sym-{n}.db"
    if cached.exists():
        return str(cached), 0.0
    RESULTS.mkdir(parents=True, exist_ok=True)
    partial = RESULTS / f"recovery-{len(PRESETS)}sym-{n}.partial.db"
    for suffix in ("", "-wal", "-shm"):
        partial.with_name(partial.name + suffix).unlink(missing_ok=True)
    start = time.perf_counter()
    asyncio.run(_build(str(partial), n))
    partial.rename(cached)
    return str(cached), time.perf_counter() - start


def _fresh_copy(src: str, name: str) -> str:
    dst = RESULTS / name
    for suffix in ("", "-wal", "-shm"):
        dst.with_name(dst.name + suffix).unlink(missing_ok=True)
    shutil.copyfile(src, dst)
    return str(dst)


def _profile_startup(db: str) -> list[str]:
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    raw = RESULTS / "recovery-profile.txt"
    raw.unlink(missing_ok=True)
    path = _fresh_copy(db, "recovery-run.db")
    srv = Server(
        [
            spy,
            "record",
            "-r",
            "250",
            "-f",
            "raw",
            "-o",
            str(raw),
            "--",
            PYTHON,
            "-m",
            "memetrade",
            "serve",
        ],
        env={"MOCK_DATA": "1", "BACKFILL": "1", "DATABASE_URL": f"sqlite:///{path}"},
        log=RESULTS / "recovery-profile.log",
    )
    srv.start()
    try:
        srv.wait_ready()
    finally:
        srv.stop()
    for _ in range(50):
        if raw.exists():
            break
        time.sleep(0.1)
    return summarize(raw, include_threads=True) if raw.exists() else ["py-spy wrote nothing"]


def run(opts: Options) -> list[Result]:
    n = opts.n(10_000_000, 1_000_000)
    db, built_s = database(n)
    repeats = opts.n(opts.repeats, 2)
    starts: list[float] = []
    refs: list[float] = []
    rss: list[float] = []
    for i in range(repeats):
        path = _fresh_copy(db, "recovery-run.db")
        srv = Server(
            env={"MOCK_DATA": "1", "BACKFILL": "1", "DATABASE_URL": f"sqlite:///{path}"},
            log=RESULTS / "recovery-server.log",
        )
        srv.start()
        try:
            starts.append(srv.wait_ready())
            if i == 0 or not opts.quick:
                time.sleep(5)
                rss.append(rss_mb(srv.pid))
        finally:
            srv.stop()
        empty = RESULTS / "recovery-empty.db"
        for suffix in ("", "-wal", "-shm"):
            empty.with_name(empty.name + suffix).unlink(missing_ok=True)
        ref = Server(
            env={"MOCK_DATA": "0", "DATABASE_URL": f"sqlite:///{empty}"},
            log=RESULTS / "recovery-empty.log",
        )
        ref.start()
        try:
            refs.append(ref.wait_ready())
        finally:
            ref.stop()
    lines: list[str] = []
    if statistics.median(starts) >= START_TARGET_S:
        lines = _profile_startup(db)
    size_mb = Path(db).stat().st_size / 2**20
    start_m = Measure(
        f"process start -> /ready, {n:,} stored trades", "s", starts, higher_is_better=False
    )
    ref_m = Measure("process start -> /ready, empty database", "s", refs, higher_is_better=False)
    rss_m = Measure(
        "RSS idle (default settings, mock generator on)", "MiB", rss, higher_is_better=False
    )
    note = f"Database {size_mb:,.0f} MiB (trades + candles at every interval); " + (
        f"built in {built_s:.0f} s this run." if built_s else "cached from an earlier run."
    )
    return [
        Result(
            "6a. Recovery: start-up to ready",
            start_m,
            f"< {START_TARGET_S:g} s",
            start_m.median < START_TARGET_S,
            reference=ref_m,
            ratio=start_m.median / ref_m.median,
            notes=[
                note,
                *(
                    [
                        "py-spy profile of one start-up to ready (raw stacks in "
                        "bench/results/recovery-profile.txt):"
                    ]
                    if lines
                    else []
                ),
                *("    " + line for line in lines),
            ],
        ),
        Result(
            "6b. Footprint: RSS idle",
            rss_m,
            f"< {RSS_TARGET_MB:g} MB",
            rss_m.median < RSS_TARGET_MB,
        ),
    ]
