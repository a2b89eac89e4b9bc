"""The exchange end to end in one process: matching, balance checks and fees (``Engine``) plus
the durable journal (``FileJournal``, one ``fdatasync`` per batch): commands/s and latency.

Run standalone::

    .venv/bin/python -m bench.engine_journal [--quick] [--repeats 3]

The command stream is ``bench/engine.py``'s (same seed, same 2,000 resting orders first). Two
figures, each on a fresh engine and a fresh journal in a temporary directory:

* **Engine + journal, group commit.** The loop ``ExchangeService`` runs, without its asyncio
  plumbing per command: execute a command, encode its journal entry (what the service
  stores), and hand what was executed to ``FileJournal.append`` whenever the previous append
  is durable (group commit: the engine goes on while a batch is written, so batches grow with
  load, as in the service; appends never overlap, so the journal stays in order). Judged:
  commands/s over the whole stream, appends included; and p99 of execute + encode per command,
  from a second run of the same loop with a timer around each command (the timer is left out
  of the first run, whose figure it would lower by about 4 %). Also reported: the appends'
  latency and mean size.
* **ExchangeService.submit.** The real service with the same journal: ``CLIENTS`` concurrent
  submitters, each awaiting its command's durability before sending the next, as API requests
  do; its group commit sizes the batches by itself. Reported: commands/s and p50/p99 from
  submit to durable (report only: it includes one await per command and the journal's latency).

The target: at least 200,000 commands/s through matching + balance checks + fees + journal,
with p99 under 50 us per command.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import tempfile
import time
from collections.abc import Sequence

from bench.common import Measure, Options, Result, fmt, percentile
from bench.engine import MARKETS, PREFILL, fresh_engine, stream
from memetrade.adapters.clock import ManualClock
from memetrade.adapters.journal.file_snapshots import FileSnapshotStore
from memetrade.adapters.journal.files import FileJournal
from memetrade.domain.exchange import Command
from memetrade.domain.exchange.commands import encode_command
from memetrade.services.exchange import ExchangeService

__all__ = ["run"]

TARGET = 200_000
TARGET_P99_US = 50.0
YIELD_EVERY = 64  # commands between two looks at the journal
CLIENTS = 256
T0 = 1_750_000_000_000


async def _pipelined(
    commands: Sequence[Command], directory: str, timed: bool
) -> tuple[float, list[float], list[float], float]:
    """Seconds for the timed stream; per-command execute + encode (us, when ``timed``);
    per-append (ms); mean entries per append.

    Throughput is taken from a run without the per-command timer (two clock reads and a list
    append: about 4 % of a command), latency from a second run with it."""
    engine = fresh_engine()
    execute = engine.execute
    for ts, command in enumerate(commands[:PREFILL], 1):
        execute(command, ts)
    journal = FileJournal(directory)
    await journal.open()
    laps: list[float] = []
    appends: list[float] = []
    sizes: list[int] = []

    async def append(entries: list[bytes]) -> None:
        t0 = time.perf_counter()
        await journal.append(entries)
        appends.append((time.perf_counter() - t0) * 1e3)
        sizes.append(len(entries))

    try:
        clock = time.perf_counter_ns
        writing: asyncio.Task[None] | None = None
        entries: list[bytes] = []
        gc.collect()
        start = time.perf_counter()
        for ts, command in enumerate(commands[PREFILL:], PREFILL + 1):
            if timed:
                t0 = clock()
                if execute(command, ts).ok:
                    entries.append(encode_command(command, ts))
                laps.append((clock() - t0) / 1_000)
            elif execute(command, ts).ok:
                entries.append(encode_command(command, ts))
            if ts % YIELD_EVERY == 0:
                # Group commit, as the service does it: while one append is being written the
                # engine goes on, and the next append takes everything executed meanwhile.
                await asyncio.sleep(0)
                if entries and (writing is None or writing.done()):
                    if writing is not None:
                        await writing
                    writing = asyncio.create_task(append(entries))
                    entries = []
        if writing is not None:
            await writing
        if entries:
            await append(entries)
        return time.perf_counter() - start, laps, appends, sum(sizes) / len(sizes)
    finally:
        await journal.close()


async def _service(commands: Sequence[Command], directory: str) -> tuple[float, list[float]]:
    """Seconds for the timed stream through ``ExchangeService.submit``; per-command ms."""
    journal, snapshots = FileJournal(directory), FileSnapshotStore(directory)
    await journal.open()
    await snapshots.open()
    service = ExchangeService(MARKETS, journal, snapshots, ManualClock(T0), snapshot_every=10**9)
    await service.recover()
    # The funded, pre-filled state, unjournaled: only the timed commands go through the journal.
    engine = fresh_engine()
    for ts, command in enumerate(commands[:PREFILL], 1):
        engine.execute(command, ts)
    service.engine = engine
    runner = asyncio.create_task(service.run())
    todo = iter(commands[PREFILL:])
    laps: list[float] = []

    async def client() -> None:
        for command in todo:
            t0 = time.perf_counter()
            await service.submit(command)
            laps.append((time.perf_counter() - t0) * 1e3)

    try:
        gc.collect()
        start = time.perf_counter()
        await asyncio.gather(*(client() for _ in range(CLIENTS)))
        return time.perf_counter() - start, laps
    finally:
        runner.cancel()
        await asyncio.gather(runner, return_exceptions=True)
        await snapshots.close()
        await journal.close()


def run(opts: Options) -> list[Result]:
    n = opts.n(200_000, 20_000)
    commands, _ = stream(n)
    repeats = opts.n(opts.repeats, 1)
    rates, service_rates = [], []
    laps: list[float] = []
    appends: list[float] = []
    service_laps: list[float] = []
    batch = 0.0
    for _ in range(repeats):
        with tempfile.TemporaryDirectory(prefix="bench-engine-journal-") as scratch:
            elapsed, _, appends, batch = asyncio.run(_pipelined(commands, scratch, False))
            rates.append(n / elapsed)
        with tempfile.TemporaryDirectory(prefix="bench-engine-journal-") as scratch:
            laps = asyncio.run(_pipelined(commands, scratch, True))[1]
        with tempfile.TemporaryDirectory(prefix="bench-exchange-service-") as scratch:
            elapsed, service_laps = asyncio.run(_service(commands, scratch))
            service_rates.append(n / elapsed)
    p99 = percentile(laps, 99)
    measure = Measure("Engine.execute + encode_command + FileJournal.append", "commands/s", rates)
    service = Measure(f"ExchangeService.submit, {CLIENTS} clients", "commands/s", service_rates)
    return [
        Result(
            "Exchange engine + journal",
            measure,
            f">= {fmt(TARGET)} commands/s and p99 <= {TARGET_P99_US:.0f} us per command",
            measure.median >= TARGET and p99 <= TARGET_P99_US,
            extra=[
                f"per command (execute + encode): p50 {percentile(laps, 50):.1f} us, "
                f"p99 {p99:.1f} us, max {max(laps):.0f} us",
                f"per append (one fdatasync, {batch:,.0f} entries on average): p50 "
                f"{percentile(appends, 50):.2f} ms, p99 {percentile(appends, 99):.2f} ms",
                f"{n:,} commands after {PREFILL:,} resting orders (bench/engine.py's stream)",
            ],
        ),
        Result(
            "Exchange service submit",
            service,
            "report only",
            None,
            extra=[
                f"submit to durable: p50 {percentile(service_laps, 50):.2f} ms, "
                f"p99 {percentile(service_laps, 99):.2f} ms",
            ],
        ),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine_journal", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a shorter stream, one run")
    parser.add_argument("--repeats", type=int, default=3, help="runs per figure (default 3)")
    args = parser.parse_args(argv)
    for r in run(Options(quick=args.quick, repeats=args.repeats)):
        verdict = "n/a" if r.passed is None else "PASS" if r.passed else "MISS"
        print("\n    ".join([f"{r.name}: {r.measure.text()}  [{r.target}: {verdict}]", *r.extra]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
