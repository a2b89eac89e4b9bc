"""Orders over HTTP: a real server, authenticated clients placing and cancelling orders at
several request rates; latency per rate and the highest rate sustained.

Run standalone::

    .venv/bin/python -m bench.exchange_http [--quick] [--repeats 1]

The server is ``memetrade serve`` (one process, embedded SQLite and file journal, mock data
off, rate limits out of the way), with DOGE only. ``CLIENTS`` users sign up (demo balances) and
keep their session cookies. Each request is, in turn per user, a GTC limit order somewhere in
the 2 % below (buys) or above (sells) the reference price (so it rests, and the book grows to a
few thousand orders), or the cancel of that user's oldest open order from this run: every
request journals one command.

Open loop, as an order gateway sees traffic: requests start on a fixed schedule (``rate`` per
second for ``seconds``) whatever the answers do, on the next free client (at most ``CLIENTS``
in flight), and latency runs from the scheduled start to the answer, so a server falling behind
shows as latency rather than as a lower rate (no coordinated omission). A rate is sustained
when at least 95 % of its requests were answered within the run plus one second, all with 2xx,
and p99 stayed under ``MAX_P99_MS``. The load generator is httpx in one Python process on the
same machine: on 2 cores it competes with the server for CPU, so the figures are a floor.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import tempfile
from collections import deque
from pathlib import Path

import httpx

from bench.common import Measure, Options, Result, Server, percentile

__all__ = ["run"]

CLIENTS = 32
RATES = (100, 200, 300, 400, 600, 800)
MAX_P99_MS = 100.0
SECRET = "bench-exchange-http-secret-" + "0" * 32
PASSWORD = "correct horse battery"
MID = 123_400  # DOGE's reference price, in ticks of 0.000001


class _User:
    def __init__(self, client: httpx.AsyncClient, rng: random.Random) -> None:
        self.client = client
        self.rng = rng
        self.open: deque[int] = deque()
        self.busy = False

    async def act(self) -> int:
        """One request: cancel the oldest open order when placing would leave more than
        a few, else place; return the status."""
        if len(self.open) > 2 or (self.open and self.rng.random() < 0.5):
            order_id = self.open.popleft()
            response = await self.client.delete(f"/api/v1/orders/{order_id}")
            # 409: a crossing order of another user filled it meanwhile.
            return 200 if response.status_code == 409 else response.status_code
        side = self.rng.choice(("buy", "sell"))
        offset = self.rng.randint(1, MID // 50)
        price = MID - offset if side == "buy" else MID + offset
        order = {
            "symbol": "DOGE",
            "side": side,
            "type": "limit",
            "price": f"{price / 1e6:.6f}",
            "quantity": str(self.rng.randint(10, 500)),
        }
        response = await self.client.post("/api/v1/orders", json=order)
        if response.status_code == 201:
            self.open.append(response.json()["order"]["order_id"])
        return response.status_code


async def _sign_up(url: str, n: int) -> list[_User]:
    users = []
    for i in range(n):
        client = httpx.AsyncClient(base_url=url, timeout=30, limits=httpx.Limits(max_connections=2))
        response = await client.post(
            "/api/v1/auth/signup",
            json={"email": f"bench{i}@example.com", "password": PASSWORD},
        )
        response.raise_for_status()
        users.append(_User(client, random.Random(i)))
    return users


async def _at_rate(
    users: list[_User], rate: int, seconds: float
) -> tuple[list[float], int, int, float]:
    """Latencies (ms) of the answered requests, how many were scheduled, how many failed, and
    the seconds from the first start to the last answer."""
    loop = asyncio.get_running_loop()
    free: asyncio.Queue[_User] = asyncio.Queue()
    for user in users:
        free.put_nowait(user)
    latencies: list[float] = []
    failed = 0
    total = int(rate * seconds)
    start = loop.time()

    async def one(user: _User, scheduled: float) -> None:
        nonlocal failed
        try:
            status = await user.act()
        except httpx.HTTPError:
            status = 0
        finally:
            free.put_nowait(user)
        if status // 100 == 2:
            latencies.append((loop.time() - scheduled) * 1e3)
        else:
            failed += 1

    tasks = []
    for i in range(total):
        scheduled = start + i / rate
        await asyncio.sleep(max(0.0, scheduled - loop.time()))
        user = await free.get()
        tasks.append(asyncio.create_task(one(user, scheduled)))
    if tasks:
        # Stragglers get one second after the last scheduled start, then count as unanswered.
        _, late = await asyncio.wait(tasks, timeout=1.0)
        for task in late:
            task.cancel()
        await asyncio.gather(*late, return_exceptions=True)
    return latencies, total, failed, loop.time() - start


async def _closed_loop(users: list[_User], seconds: float) -> int:
    """Requests answered with 2xx by every client sending back to back for ``seconds``."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + seconds
    answered = 0

    async def client(user: _User) -> None:
        nonlocal answered
        while loop.time() < deadline:
            if await user.act() // 100 == 2:
                answered += 1

    await asyncio.gather(*(client(user) for user in users))
    return answered


async def _measure(
    url: str, seconds: float
) -> tuple[list[tuple[int, list[float], int, int, float]], int]:
    users = await _sign_up(url, CLIENTS)
    try:
        await _at_rate(users, RATES[0], 1.0)  # Warm-up: connections, code paths.
        rows = [(rate, *await _at_rate(users, rate, seconds)) for rate in RATES]
        return rows, await _closed_loop(users, seconds)
    finally:
        for user in users:
            await user.client.aclose()


def run(opts: Options) -> list[Result]:
    seconds = 2.0 if opts.quick else 5.0
    with tempfile.TemporaryDirectory(prefix="bench-exchange-http-") as scratch:
        env = {
            "SYMBOLS": "DOGE",
            "DATABASE_URL": f"sqlite:///{Path(scratch) / 'memetrade.db'}",
            "JWT_SECRET": SECRET,
            "DEMO_BALANCES": "USDT:1000000,DOGE:10000000",
            "RATE_LIMIT_PER_MIN": "1000000",
        }
        with Server(env=env) as server:
            rows, closed = asyncio.run(_measure(server.url, seconds))
    sustained = 0
    extra = []
    for rate, latencies, total, failed, took in rows:
        answered = len(latencies)
        p50, p99 = percentile(latencies, 50), percentile(latencies, 99)
        ok = failed == 0 and answered >= 0.95 * total and p99 <= MAX_P99_MS
        if ok:
            sustained = rate
        extra.append(
            f"{rate:,} req/s offered: {answered / took:,.0f}/s answered, p50 {p50:.1f} ms, "
            f"p99 {p99:.1f} ms, {failed} failed{'' if ok else ' (not sustained)'}"
        )
    measure = Measure("orders/s sustained over HTTP (place + cancel)", "orders/s", [sustained])
    return [
        Result(
            "Exchange over HTTP",
            measure,
            "report only",
            None,
            extra=[
                *extra,
                f"closed loop ({CLIENTS} clients back to back): {closed / seconds:,.0f} orders/s",
                f"{CLIENTS} authenticated clients, open loop, {seconds:.0f} s per rate; "
                f"sustained: >= 95 % answered, none failed, p99 <= {MAX_P99_MS:.0f} ms",
            ],
        )
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench.exchange_http", description=__doc__)
    parser.add_argument("--quick", action="store_true", help="2 s per rate instead of 5")
    parser.add_argument("--repeats", type=int, default=1, help="ignored: one run per rate")
    args = parser.parse_args(argv)
    for r in run(Options(quick=args.quick, repeats=args.repeats)):
        print("\n    ".join([f"{r.name}: {r.measure.text()}  [{r.target}]", *r.extra]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
