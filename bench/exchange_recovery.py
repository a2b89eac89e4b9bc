"""Exchange recovery: load the newest snapshot, replay the journal after it.

Run standalone::

    .venv/bin/python -m bench.exchange_recovery [--quick] [--repeats 5]

Set-up (untimed), through the real engine, ``FileJournal`` and ``FileSnapshotStore`` in a
temporary directory: ``USERS`` users are funded (``Deposit``), then ``RESTING`` GTC limit
orders that do not cross are placed on DOGE/USDT (buys below the mid, sells above, across a
few thousand price levels), each journaled as ``ExchangeService`` journals it (a
journal entry per accepted command, appended in batches); then a snapshot of that state is
saved. After it, ``TAIL`` more commands are journaled: new resting orders, cancels of resting
ones, and orders that trade (IOC and market, both sides).

Timed: a fresh ``ExchangeService`` on the same files running ``recover()``: the snapshot
decoded into a new engine, then every journaled command after it executed again (and handed to
listeners, of which there are none here). The recovered state's hash must equal the one built,
or the run fails. Also reported: the snapshot's size and its load time alone.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Measure, Options, Result
from memetrade.adapters.clock import ManualClock
from memetrade.adapters.journal.file_snapshots import FileSnapshotStore
from memetrade.adapters.journal.files import FileJournal
from memetrade.domain.exchange import (
    CancelOrder,
    Command,
    Deposit,
    Engine,
    PlaceOrder,
    build_markets,
)
from memetrade.domain.exchange.commands import encode_command
from memetrade.domain.symbols import PRESETS
from memetrade.services.exchange import ExchangeService

__all__ = ["run"]

MARKETS = build_markets([PRESETS["DOGE"]])
MID = 123_400  # DOGE at 0.1234 USDT, in ticks of 10**-6
USERS = 250  # 100,000 resting orders stay under the engine's 1,000 open orders per user.
RESTING = 100_000
TAIL = 50_000
BATCH = 1_000
T0 = 1_750_000_000_000


def _commands(rng: random.Random, resting: int, tail: int) -> tuple[list[Command], list[Command]]:
    """The set-up's commands, and the tail's (cancels name orders by the id they will get:
    the k-th accepted order gets id k, and every order here is funded and valid)."""
    setup: list[Command] = []
    for user in range(1, USERS + 1):
        setup.append(Deposit(user, "USDT", 2**60))
        setup.append(Deposit(user, "DOGE", 2**50))

    def rest(user: int) -> PlaceOrder:
        side = rng.choice(("buy", "sell"))
        offset = rng.randint(1, 3_000)
        price = MID - offset if side == "buy" else MID + offset
        quantity = rng.randint(1_000, 20_000)
        return PlaceOrder(user, "DOGE", side, "limit", quantity=quantity, price=price)  # type: ignore[arg-type]

    setup.extend(rest(k % USERS + 1) for k in range(resting))
    tail_commands: list[Command] = []
    for _ in range(tail):
        roll = rng.random()
        user = rng.randint(1, USERS)
        if roll < 0.4:
            tail_commands.append(rest(user))
        elif roll < 0.7:
            tail_commands.append(CancelOrder(0, rng.randint(1, resting)))  # Owner filled in later.
        else:
            side = rng.choice(("buy", "sell"))
            quantity = rng.randint(1_000, 50_000)
            if roll < 0.85:
                price = MID + 50 if side == "buy" else MID - 50
                tail_commands.append(
                    PlaceOrder(
                        user,
                        "DOGE",
                        side,
                        "limit",
                        quantity=quantity,
                        price=price,
                        time_in_force="IOC",
                    )  # type: ignore[arg-type]
                )
            else:
                tail_commands.append(PlaceOrder(user, "DOGE", side, "market", quantity=quantity))  # type: ignore[arg-type]
    return setup, tail_commands


async def _journal(
    engine: Engine, journal: FileJournal, commands: list[Command], ts: int
) -> tuple[int, int]:
    """Execute and journal ``commands`` (accepted ones only, as the service does); return the
    next ``ts`` and how many were journaled."""
    entries: list[bytes] = []
    journaled = 0
    for command in commands:
        if isinstance(command, CancelOrder):
            order = engine.order(command.order_id)
            if order is None:
                continue  # Ended already (traded or cancelled): a refusal, never journaled.
            command = CancelOrder(order.user_id, command.order_id)
        if engine.execute(command, ts).ok:
            entries.append(encode_command(command, ts))
            journaled += 1
        ts += 1
        if len(entries) >= BATCH:
            await journal.append(entries)
            entries = []
    if entries:
        await journal.append(entries)
    return ts, journaled


async def _build(directory: Path, resting: int, tail: int) -> tuple[str, int, int]:
    """Write the journal and snapshot; return the final state hash, the snapshot's size and
    the number of journaled commands after it."""
    setup, tail_commands = _commands(random.Random(11), resting, tail)
    engine = Engine(MARKETS)
    journal, snapshots = FileJournal(directory), FileSnapshotStore(directory)
    await journal.open()
    await snapshots.open()
    try:
        ts, _ = await _journal(engine, journal, setup, T0)
        open_orders = sum(len(engine.open_orders(user)) for user in range(1, USERS + 1))
        assert open_orders == resting, open_orders  # All of them rest: none crossed.
        payload = engine.snapshot()
        await snapshots.save(journal.last_seq(), payload)
        _, journaled = await _journal(engine, journal, tail_commands, ts)
        return engine.state_hash(), len(payload), journaled
    finally:
        await snapshots.close()
        await journal.close()


async def _recover(directory: Path) -> tuple[float, float, str, int]:
    """Seconds of ``recover()``, seconds of the snapshot load alone, the state hash and how
    many commands were replayed."""
    journal, snapshots = FileJournal(directory), FileSnapshotStore(directory)
    await journal.open()
    await snapshots.open()
    try:
        found = await snapshots.load_latest_valid()
        assert found is not None
        t0 = time.perf_counter()
        Engine.restore(MARKETS, found[1])
        load_s = time.perf_counter() - t0
        service = ExchangeService(MARKETS, journal, snapshots, ManualClock(T0))
        t0 = time.perf_counter()
        await service.recover()
        elapsed = time.perf_counter() - t0
        return elapsed, load_s, service.engine.state_hash(), service.recovered_commands
    finally:
        await snapshots.close()
        await journal.close()


def run(opts: Options) -> list[Result]:
    resting, tail = opts.n(RESTING, 10_000), opts.n(TAIL, 5_000)
    repeats = opts.n(opts.repeats, 2)
    with tempfile.TemporaryDirectory(prefix="bench-exchange-recovery-") as scratch:
        directory = Path(scratch)
        built, snapshot_bytes, journaled = asyncio.run(_build(directory, resting, tail))
        times, loads = [], []
        replayed = 0
        for _ in range(repeats):
            elapsed, load_s, state, replayed = asyncio.run(_recover(directory))
            if state != built:
                raise RuntimeError("the recovered state differs from the one journaled")
            times.append(elapsed)
            loads.append(load_s)
    measure = Measure(
        f"ExchangeService.recover: snapshot of {resting:,} resting orders + {replayed:,} "
        "journaled commands",
        "s",
        times,
        higher_is_better=False,
    )
    load_s = sorted(loads)[len(loads) // 2]
    replay_rate = replayed / max(1e-9, measure.median - load_s)
    return [
        Result(
            "Exchange recovery",
            measure,
            "report only",
            None,
            extra=[
                f"snapshot: {snapshot_bytes / 2**20:.1f} MiB, loaded alone in "
                f"{load_s:.2f} s (median)",
                f"replay: {replayed:,} commands ({journaled:,} journaled after the snapshot), "
                f"about {replay_rate:,.0f} commands/s",
                "the recovered state hash equals the one built, every run",
            ],
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.exchange_recovery", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="10,000 orders, 5,000 commands")
    parser.add_argument("--repeats", type=int, default=5, help="recoveries timed (default 5)")
    args = parser.parse_args(argv)
    for r in run(Options(quick=args.quick, repeats=args.repeats)):
        print("\n    ".join([f"{r.name}: {r.measure.text()}  [{r.target}]", *r.extra]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
