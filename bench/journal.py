"""Durable appends to the exchange's command journal: appends/s and entries/s.

Run standalone (not part of ``make bench`` yet)::

    .venv/bin/python -m bench.journal [--quick] [--repeats 3]
                                      [--url postgresql://postgres@127.0.0.1:5432/postgres]

Each append is one ``await journal.append(batch)``, one after another as the matching engine
makes them (one per event loop tick), with batches of 1, 100 and 1,000 entries of 80 random
bytes (about the size of an encoded order command). Every append is durable when it returns: one
``fdatasync`` (files) or one committed transaction (PostgreSQL) per call.

* Files: ``FileJournal`` in a temporary directory. Reference: the same encoded records written
  with ``os.write`` + ``os.fdatasync`` in a plain loop, no asyncio and no thread hop, which is
  what the disk allows (the ceiling).
* PostgreSQL: ``PostgresJournal`` in a scratch database created from the maintenance database
  ``--url`` names and dropped afterwards; skipped with a note when the server is unreachable.

The exchange's target is 200,000 commands/s including journaling, so the figure judged is
entries/s of the file journal (the embedded default) in batches of 1,000; the rest is reported.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

from bench.common import Measure, Options, Result, fmt, percentile
from memetrade.adapters.journal.files import FileJournal
from memetrade.adapters.journal.postgres import PostgresJournal
from memetrade.adapters.journal.records import encode
from memetrade.ports import CommandJournal

__all__ = ["run"]

ENTRY_BYTES = 80
BATCHES = (1, 100, 1_000)
TARGET_ENTRIES_S = 200_000
ADMIN_URL = "postgresql://postgres@127.0.0.1:5432/postgres"


def _appends(batch: int, quick: bool) -> int:
    """How many appends one timed run makes: about 200k entries, or 2,000 appends for small
    batches (a second or two on a disk with fast flushes)."""
    full = max(200, min(2_000, 200_000 // batch))
    return max(20, full // 10) if quick else full


async def _time_journal(journal: CommandJournal, batch: int, appends: int) -> list[float]:
    """Seconds of each of ``appends`` appends of ``batch`` entries, after one untimed."""
    entries = [os.urandom(ENTRY_BYTES) for _ in range(batch)]
    await journal.open()
    try:
        start = await journal.append(entries)
        laps: list[float] = []
        for _ in range(appends):
            t0 = time.perf_counter()
            await journal.append(entries)
            laps.append(time.perf_counter() - t0)
        assert journal.last_seq() == start + appends * batch
        return laps
    finally:
        await journal.close()


def _time_raw(directory: Path, batch: int, appends: int) -> list[float]:
    """The ceiling: encoded records written and flushed in a plain loop."""
    entries = [os.urandom(ENTRY_BYTES) for _ in range(batch)]
    fd = os.open(directory / "raw.log", os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        laps: list[float] = []
        for k in range(appends):
            t0 = time.perf_counter()
            os.write(fd, encode(entries, k * batch + 1))
            os.fdatasync(fd)
            laps.append(time.perf_counter() - t0)
        return laps
    finally:
        os.close(fd)


def _scratch_database(admin_url: str) -> tuple[str, Callable[[], None]]:
    import psycopg
    from psycopg import sql

    name = f"memetrade_bench_{secrets.token_hex(4)}"
    with psycopg.connect(admin_url, autocommit=True, connect_timeout=3) as conn:
        conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))

    def drop() -> None:
        with psycopg.connect(admin_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name))
            )

    return urlsplit(admin_url)._replace(path=f"/{name}").geturl(), drop


def _result(backend: str, batch: int, runs: list[list[float]], reference: Measure | None) -> Result:
    rates = [len(laps) * batch / sum(laps) for laps in runs]
    measure = Measure(f"{backend}, batches of {batch:,}", "entries/s", rates)
    laps = [lap for run in runs for lap in run]
    judged = backend == "files" and batch == max(BATCHES)
    return Result(
        f"Journal append, {backend}, batch {batch:,}",
        measure,
        f">= {fmt(TARGET_ENTRIES_S)} entries/s" if judged else "report only",
        measure.median >= TARGET_ENTRIES_S if judged else None,
        reference=reference,
        ratio=measure.median / reference.median if reference else None,
        extra=[
            f"appends/s: {fmt(statistics.median(len(run) / sum(run) for run in runs))}",
            f"per append: p50 {percentile(laps, 50) * 1e3:.3f} ms,"
            f" p99 {percentile(laps, 99) * 1e3:.3f} ms",
        ],
    )


def run(opts: Options, admin_url: str = ADMIN_URL) -> list[Result]:
    repeats = opts.n(opts.repeats, 1)
    results: list[Result] = []
    for batch in BATCHES:
        appends = _appends(batch, opts.quick)
        files: list[list[float]] = []
        raw: list[list[float]] = []
        for _ in range(repeats):
            with tempfile.TemporaryDirectory(prefix="bench-journal-") as scratch:
                files.append(asyncio.run(_time_journal(FileJournal(scratch), batch, appends)))
                raw.append(_time_raw(Path(scratch), batch, appends))
        ceiling = Measure(
            "os.write + fdatasync, plain loop",
            "entries/s",
            [len(laps) * batch / sum(laps) for laps in raw],
        )
        results.append(_result("files", batch, files, ceiling))
    try:
        url, drop = _scratch_database(admin_url)
    except Exception as exc:
        print(f"PostgreSQL skipped: {exc}", file=sys.stderr)
        return results
    try:
        for batch in BATCHES:
            appends = _appends(batch, opts.quick)
            runs = [
                asyncio.run(_time_journal(PostgresJournal(url), batch, appends))
                for _ in range(repeats)
            ]
            results.append(_result("postgres", batch, runs, None))
    finally:
        drop()
    return results


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.journal", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer appends, one run each")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (default 3)")
    parser.add_argument("--url", default=ADMIN_URL, help="PostgreSQL maintenance database")
    args = parser.parse_args(argv)
    for r in run(Options(quick=args.quick, repeats=args.repeats), args.url):
        verdict = "n/a" if r.passed is None else "PASS" if r.passed else "MISS"
        line = f"{r.name}: {r.measure.text()}  [{r.target}: {verdict}]"
        if r.reference is not None and r.ratio is not None:
            line += f"\n    vs {r.reference.label}: {r.reference.text()} (x{r.ratio:.2f})"
        print("\n    ".join([line, *r.extra]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
