"""The exchange matching engine: commands/s and per-command latency on a seeded mix.

Part of ``make bench``; run standalone::

    .venv/bin/python -m bench.engine [--quick] [--repeats 5]

The mix (seeded, generated before timing): 60 % GTC limit orders, 15 % market orders by
quantity, 10 % IOC limit orders, 15 % cancels of a recent GTC order (some of which have filled
by then and are refused, as on a live venue), buys and sells alike, from 20 users with ample
balances and no cap on open orders, on DOGE/USDT around a fixed mid price so that about half
the orders trade. The book is pre-filled with 2,000 resting orders (untimed) and deepens over
the run (cancels do not keep up with resting orders). Each figure is a fresh engine.

Timed: ``Engine.execute`` over the whole stream (commands/s); then the same stream again with
``perf_counter_ns`` around each call (p50/p99 latency; the timer adds ~0.1 us). Also reported:
the same with each command encoded first as the journal stores it (JSON with its timestamp).

Reference, in the same run: a plain price-time book on ``SortedDict`` (FIFO deques with lazy
cancel, an id map) that only matches: no balances, no fees, no self-trade prevention, no
events, no journal. It is the ceiling of pure-Python matching, not a competitor.

The exchange's target is 200,000 commands/s end to end including the journal; the engine alone
is judged against it here.
"""

from __future__ import annotations

import argparse
import gc
import random
import sys
import time
from collections import deque
from collections.abc import Sequence

from sortedcontainers import SortedDict

from bench.common import Measure, Options, Result, fmt, percentile
from memetrade.domain.exchange import (
    CancelOrder,
    Command,
    Deposit,
    Engine,
    PlaceOrder,
    build_markets,
    encode_command,
)
from memetrade.domain.symbols import PRESETS

__all__ = ["run"]

TARGET = 200_000
USERS = 20
MID = 123_400  # DOGE at 0.1234 USDT, in ticks of 10**-6
PREFILL = 2_000
MARKETS = build_markets([PRESETS["DOGE"]])

# Reference-book operations: (kind, side, price, qty, order id).
Op = tuple[str, str, int, int, int]


def stream(n: int, seed: int = 7) -> tuple[list[Command], list[Op]]:
    """``n`` commands after ``PREFILL`` resting orders, and the same as reference operations.

    Every order is valid and funded, so the k-th order gets id k: cancels can name ids.
    """
    rng = random.Random(seed)
    commands: list[Command] = []
    ops: list[Op] = []
    owner: dict[int, int] = {}
    gtc: list[int] = []
    next_id = 1

    def limit(side: str, price: int, tif: str) -> None:
        nonlocal next_id
        user = rng.randint(1, USERS)
        qty = rng.randint(1_000, 20_000)
        commands.append(
            PlaceOrder(user, "DOGE", side, "limit", quantity=qty, price=price, time_in_force=tif)  # type: ignore[arg-type]
        )
        ops.append(("limit" if tif == "GTC" else "ioc", side, price, qty, next_id))
        if tif == "GTC":
            owner[next_id] = user
            gtc.append(next_id)
        next_id += 1

    for _ in range(PREFILL):
        side = rng.choice(("buy", "sell"))
        limit(side, MID - rng.randint(5, 60) if side == "buy" else MID + rng.randint(5, 60), "GTC")
    for _ in range(n):
        roll = rng.random()
        side = rng.choice(("buy", "sell"))
        # Buys from 20 ticks below to 10 above the mid, sells the mirror: about half cross.
        offset = rng.randint(-20, 10)
        price = MID + offset if side == "buy" else MID - offset
        if roll < 0.60:
            limit(side, price, "GTC")
        elif roll < 0.70:
            limit(side, price, "IOC")
        elif roll < 0.85:
            qty = rng.randint(1_000, 20_000)
            commands.append(
                PlaceOrder(rng.randint(1, USERS), "DOGE", side, "market", quantity=qty)  # type: ignore[arg-type]
            )
            ops.append(("market", side, 0, qty, next_id))
            next_id += 1
        else:
            order_id = rng.choice(gtc[-500:])
            commands.append(CancelOrder(owner[order_id], order_id))
            ops.append(("cancel", "", 0, 0, order_id))
    return commands, ops


def fresh_engine() -> Engine:
    # Market makers keep thousands of orders open; the default cap of 1,000 would refuse them.
    engine = Engine(MARKETS, max_open_orders=10**6)
    for user in range(1, USERS + 1):
        for _ in range(100):  # one deposit is capped at 2**62 units (4.6 M USDT)
            engine.execute(Deposit(user, "USDT", 2**62), 0)
        engine.execute(Deposit(user, "DOGE", 2**62), 0)
    return engine


def run_engine(commands: Sequence[Command], encode: bool = False) -> tuple[float, int]:
    """Seconds for the timed part; and how many commands were refused."""
    engine = fresh_engine()
    execute = engine.execute
    for ts, command in enumerate(commands[:PREFILL], 1):
        execute(command, ts)
    timed = commands[PREFILL:]
    refused = 0
    gc.collect()
    start = time.perf_counter()
    if encode:
        for ts, command in enumerate(timed, PREFILL + 1):
            encode_command(command, ts)
            execute(command, ts)
    else:
        for ts, command in enumerate(timed, PREFILL + 1):
            if not execute(command, ts).ok:
                refused += 1
    return time.perf_counter() - start, refused


def engine_latencies(commands: Sequence[Command]) -> list[float]:
    engine = fresh_engine()
    execute, clock = engine.execute, time.perf_counter_ns
    for ts, command in enumerate(commands[:PREFILL], 1):
        execute(command, ts)
    laps = []
    for ts, command in enumerate(commands[PREFILL:], PREFILL + 1):
        t0 = clock()
        execute(command, ts)
        laps.append((clock() - t0) / 1_000)
    return laps


class ReferenceBook:
    """Price-time matching only, on ``SortedDict``: the ceiling the engine is measured by."""

    def __init__(self) -> None:
        self.bids: SortedDict = SortedDict()  # -price -> [total, deque of [id, qty]]
        self.asks: SortedDict = SortedDict()  # price -> [total, deque of [id, qty]]
        self.index: dict[int, tuple[SortedDict, int, list[int]]] = {}

    def take(self, side: str, limit: int | None, qty: int) -> int:
        book, sign = (self.asks, 1) if side == "buy" else (self.bids, -1)
        while qty and book:
            key, level = book.peekitem(0)
            if limit is not None and key * sign > limit * sign:
                break
            queue = level[1]
            while qty and queue:
                entry = queue[0]
                if entry[1] == 0:
                    queue.popleft()
                    continue
                q = min(qty, entry[1])
                entry[1] -= q
                level[0] -= q
                qty -= q
                if entry[1] == 0:
                    queue.popleft()
                    del self.index[entry[0]]
            if level[0] == 0:
                del book[key]
        return qty

    def apply(self, op: Op) -> None:
        kind, side, price, qty, order_id = op
        if kind == "cancel":
            found = self.index.pop(order_id, None)
            if found is not None:
                book, key, entry = found
                level = book[key]
                level[0] -= entry[1]
                entry[1] = 0
                if level[0] == 0:
                    del book[key]
            return
        rest = self.take(side, None if kind == "market" else price, qty)
        if rest and kind == "limit":
            book, key = (self.bids, -price) if side == "buy" else (self.asks, price)
            level = book.get(key)
            if level is None:
                level = book[key] = [0, deque()]
            entry = [order_id, rest]
            level[0] += rest
            level[1].append(entry)
            self.index[order_id] = (book, key, entry)


def run_reference(ops: Sequence[Op]) -> float:
    book = ReferenceBook()
    apply = book.apply
    for op in ops[:PREFILL]:
        apply(op)
    gc.collect()
    start = time.perf_counter()
    for op in ops[PREFILL:]:
        apply(op)
    return time.perf_counter() - start


def run(opts: Options) -> list[Result]:
    n = opts.n(200_000, 20_000)
    commands, ops = stream(n)
    repeats = opts.n(opts.repeats, 2)
    ours, encoded, ceiling = [], [], []
    refused = 0
    for _ in range(repeats):
        elapsed, refused = run_engine(commands)
        ours.append(n / elapsed)
        ceiling.append(n / run_reference(ops))
        encoded.append(n / run_engine(commands, encode=True)[0])
    laps = engine_latencies(commands)
    measure = Measure("Engine.execute, mixed commands", "commands/s", ours)
    reference = Measure("price-time SortedDict book, matching only", "commands/s", ceiling)
    return [
        Result(
            "Exchange engine",
            measure,
            f">= {fmt(TARGET)} commands/s",
            measure.median >= TARGET,
            reference=reference,
            ratio=measure.median / reference.median,
            extra=[
                f"latency per command: p50 {percentile(laps, 50):.1f} us, "
                f"p99 {percentile(laps, 99):.1f} us, max {max(laps):.0f} us",
                f"with each command encoded for the journal first: "
                f"{fmt(sorted(encoded)[len(encoded) // 2])} commands/s",
                f"{n:,} commands after {PREFILL:,} resting orders; "
                f"{refused:,} refused (cancels of orders that had ended)",
            ],
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.engine", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="a shorter stream, two runs")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (default 5)")
    args = parser.parse_args(argv)
    for r in run(Options(quick=args.quick, repeats=args.repeats)):
        verdict = "n/a" if r.passed is None else "PASS" if r.passed else "MISS"
        line = f"{r.name}: {r.measure.text()}  [{r.target}: {verdict}]"
        if r.reference is not None and r.ratio is not None:
            line += f"\n    vs {r.reference.label}: {r.reference.text()} (x{r.ratio:.2f})"
        print("\n    ".join([line, *r.extra]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
