"""Durability and restart against a real server process: ``kill -9`` after acknowledgements and
in the middle of a concurrent ingest, a clean SIGTERM shutdown, and restarts with the mock
generator on.

Candles are checked against an independent ``Decimal`` reference built from the trades the
test sent: every interval, every field, empty candles included.
"""

import json
import random
import signal
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from e2e_server import TOKEN, Server, start_server
from websockets.asyncio.client import connect

pytestmark = pytest.mark.e2e

INTERVALS = {"1s": 1_000, "1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
SYMBOLS = ("PEPE", "DOGE")
AUTH = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
def servers() -> Iterator[list[Server]]:
    """Every server a test starts; whatever is still running at the end is killed."""
    started: list[Server] = []
    yield started
    for srv in started:
        srv.stop(signal.SIGKILL)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@dataclass(frozen=True)
class Trade:
    id: str
    symbol: str
    price: Decimal
    amount: Decimal
    ts: int

    def wire(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "symbol": self.symbol,
            "price": str(self.price),
            "amount": str(self.amount),
            "side": "Buy" if self.ts % 2 else "Sell",
            "timestamp": self.ts,
        }


def make_trades(rng: random.Random, count: int, prefix: str, age_ms: int = 90_000) -> list[Trade]:
    """Trades on PEPE (tick 1e-12, lot 1) and DOGE (tick 1e-6, lot 0.01) in the last
    ``age_ms``: late ones too, well inside MAX_TRADE_AGE."""
    now = now_ms()
    trades = []
    for i in range(count):
        symbol = rng.choice(SYMBOLS)
        if symbol == "PEPE":
            price = Decimal(rng.randint(1_000_000, 1_500_000)).scaleb(-12)
            amount = Decimal(rng.randint(1, 10**9))
        else:
            price = Decimal(rng.randint(100_000, 150_000)).scaleb(-6)
            amount = Decimal(rng.randint(1, 10**6)).scaleb(-2)
        trades.append(Trade(f"{prefix}{i}", symbol, price, amount, now - rng.randint(0, age_ms)))
    return trades


def wire(trades: Iterable[Trade]) -> list[dict[str, Any]]:
    return [t.wire() for t in trades]


def post(http: httpx.Client, trades: Iterable[Trade]) -> dict[str, int]:
    response = http.post("/internal/trades", json=wire(trades), headers=AUTH)
    assert response.status_code == 200, response.text
    return dict(response.json())


# -- the reference -----------------------------------------------------------------------

FIELDS = ("timestamp", "open", "high", "low", "close", "volume", "quote_volume", "trades")


def reference(trades: Iterable[Trade], step: int, first: int, last: int) -> list[dict]:
    """Candles with open times in ``[first, last]`` (aligned) from ``trades`` alone: ordered
    by (timestamp, id), summed in Decimal; empty intervals flat at the previous close."""
    groups: dict[int, list[Trade]] = {}
    for t in trades:
        groups.setdefault(t.ts - t.ts % step, []).append(t)
    out: list[dict] = []
    close: Decimal | None = None
    for start in range(first, last + 1, step):
        group = sorted(groups.get(start, []), key=lambda t: (t.ts, t.id))
        if group:
            prices = [t.price for t in group]
            close = group[-1].price
            out.append(
                {
                    "timestamp": start,
                    "open": group[0].price,
                    "high": max(prices),
                    "low": min(prices),
                    "close": close,
                    "volume": sum(t.amount for t in group),
                    "quote_volume": sum(t.price * t.amount for t in group),
                    "trades": len(group),
                }
            )
        elif close is not None:
            zero = Decimal(0)
            values = (start, close, close, close, close, zero, zero, 0)
            out.append(dict(zip(FIELDS, values, strict=True)))
    return out


def exact(candle: dict) -> dict:
    """The compared fields of a candle: integers as int, numbers as Decimal."""
    return {
        f: int(candle[f]) if f in ("timestamp", "trades") else Decimal(candle[f]) for f in FIELDS
    }


def served_candles(http: httpx.Client, trades: list[Trade]) -> dict[tuple[str, str], list[dict]]:
    """Every interval's candles of each symbol, from the first trade's candle to now."""
    served = {}
    for symbol in SYMBOLS:
        first_ts = min(t.ts for t in trades if t.symbol == symbol)
        for name, step in INTERVALS.items():
            response = http.get(
                f"/api/v1/klines/{symbol}",
                params={"interval": name, "from": first_ts - first_ts % step, "limit": 1000},
            )
            assert response.status_code == 200, response.text
            data = json.loads(response.text, parse_float=Decimal)["data"]
            served[(symbol, name)] = [exact(c) for c in data]
    return served


def assert_candles_equal_reference(
    served: dict[tuple[str, str], list[dict]], trades: list[Trade]
) -> None:
    for (symbol, name), candles in served.items():
        step = INTERVALS[name]
        mine = [t for t in trades if t.symbol == symbol]
        first = min(t.ts for t in mine)
        expected = reference(mine, step, first - first % step, candles[-1]["timestamp"])
        expected = [exact(c) for c in expected]
        assert len(candles) == len(expected), (symbol, name)
        for got, want in zip(candles, expected, strict=True):
            assert got == want, (symbol, name)


# -- kill -9 ---------------------------------------------------------------------------------


def test_every_acknowledged_trade_survives_kill_9_and_resending_them_only_finds_duplicates(
    tmp_path: Path, servers: list[Server]
) -> None:
    rng = random.Random(7)
    srv = start_server(tmp_path)
    servers.append(srv)
    acknowledged: list[Trade] = []
    with srv.client() as http:
        for b in range(8):
            batch = make_trades(rng, 250, f"k{b}-")
            assert post(http, batch) == {"accepted": 250, "duplicates": 0}
            acknowledged.extend(batch)
        # Right after the last acknowledgement: no graceful anything.
        assert srv.stop(signal.SIGKILL) == -signal.SIGKILL

    again = start_server(tmp_path)
    servers.append(again)
    with again.client() as http:
        assert_candles_equal_reference(served_candles(http, acknowledged), acknowledged)
        assert post(http, acknowledged) == {"accepted": 0, "duplicates": len(acknowledged)}
        assert_candles_equal_reference(served_candles(http, acknowledged), acknowledged)
    assert again.stop() == 0


def test_kill_9_during_concurrent_ingest_loses_no_acknowledged_trade_and_splits_no_batch(
    tmp_path: Path, servers: list[Server]
) -> None:
    srv = start_server(tmp_path)
    servers.append(srv)
    acknowledged: list[list[Trade]] = []
    unacknowledged: list[list[Trade]] = []
    lock = threading.Lock()

    def keep_posting(worker: int) -> None:
        rng = random.Random(worker)
        with srv.client() as http:
            for n in range(100_000):
                batch = make_trades(rng, 20, f"w{worker}-{n}-", age_ms=30_000)
                try:
                    response = http.post("/internal/trades", json=wire(batch), headers=AUTH)
                except httpx.TransportError:
                    with lock:
                        unacknowledged.append(batch)
                    return
                assert response.status_code == 200, response.text
                with lock:
                    acknowledged.append(batch)

    workers = [threading.Thread(target=keep_posting, args=(w,)) for w in range(3)]
    for thread in workers:
        thread.start()
    deadline = time.monotonic() + 10
    while len(acknowledged) < 40 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
    for thread in workers:
        thread.join(timeout=20)
        assert not thread.is_alive()
    assert len(acknowledged) >= 40
    assert len(unacknowledged) == len(workers)  # each worker's last request never got an answer

    again = start_server(tmp_path)
    servers.append(again)
    with again.client() as http:
        everything = [t for batch in acknowledged + unacknowledged for t in batch]
        served = served_candles(http, everything)
        # Which unacknowledged batches made it: resending tells, and a batch is all or nothing.
        stored = [t for batch in acknowledged for t in batch]
        for batch in unacknowledged:
            result = post(http, batch)
            assert result["duplicates"] in (0, len(batch)), result
            if result["duplicates"]:
                stored.extend(batch)
        acked = [t for batch in acknowledged for t in batch]
        assert post(http, acked) == {"accepted": 0, "duplicates": len(acked)}
    assert_candles_equal_reference(served, stored)
    assert again.stop() == 0


# -- clean shutdown ------------------------------------------------------------------------


@pytest.mark.anyio
async def test_sigterm_exits_0_and_after_restart_the_open_candle_keeps_accumulating(
    tmp_path: Path, servers: list[Server]
) -> None:
    if (now_ms() // 1000) % 60 > 54:  # keep the whole test inside one minute candle
        await anyio.sleep(61 - (now_ms() // 1000) % 60)
    rng = random.Random(11)
    srv = start_server(tmp_path)
    servers.append(srv)
    before = make_trades(rng, 40, "before-", age_ms=0)
    with srv.client() as http:
        assert post(http, before)["accepted"] == 40
    async with connect(srv.ws_url + "/ws/klines/DOGE/1m") as ws:
        await ws.recv()
        assert srv.stop(signal.SIGTERM) == 0
        # Connected clients are told the server goes away, with a close code saying so.
        with anyio.fail_after(5):
            await ws.wait_closed()
        assert ws.close_code == 1012, ws.close_code  # service restart

    again = start_server(tmp_path)
    servers.append(again)
    minute = now_ms() - now_ms() % 60_000
    after = make_trades(rng, 30, "after-", age_ms=0)
    doge_before = [t for t in before if t.symbol == "DOGE"]
    doge_after = [t for t in after if t.symbol == "DOGE"]
    async with connect(again.ws_url + "/ws/klines/DOGE/1m") as ws:
        first = json.loads(await ws.recv(), parse_float=Decimal)
        # The open candle is back as it was: the trades from before the restart are in it.
        assert first["candle"]["timestamp"] == minute
        assert first["candle"]["closed"] is False
        assert first["candle"]["trades"] == len(doge_before)
        with again.client() as http:
            assert post(http, after)["accepted"] == 30
        update = json.loads(await ws.recv(), parse_float=Decimal)
        assert update["seq"] == first["seq"] + 1
        assert update["candle"]["timestamp"] == minute
        assert update["candle"]["trades"] == len(doge_before) + len(doge_after)
        assert update["candle"]["volume"] == sum(t.amount for t in doge_before + doge_after)
    with again.client() as http:
        assert_candles_equal_reference(served_candles(http, before + after), before + after)
    assert again.stop(signal.SIGTERM) == 0


def _total_trades(http: httpx.Client) -> int:
    response = http.get("/api/v1/klines/PEPE", params={"interval": "1h", "limit": 1000})
    assert response.status_code == 200, response.text
    return sum(int(c["trades"]) for c in response.json()["data"])


def test_restart_with_mock_data_does_not_backfill_again_and_the_generator_goes_on(
    tmp_path: Path, servers: list[Server]
) -> None:
    env = {"MOCK_DATA": "1", "SYMBOLS": "PEPE", "MOCK_DATA_INTERVAL": "20"}
    srv = start_server(tmp_path, **env)
    servers.append(srv)
    with srv.client() as http:
        backfilled = _total_trades(http)
        assert backfilled > 10_000  # history for every interval's chart
        time.sleep(0.5)
        assert _total_trades(http) > backfilled  # the generator runs
    assert srv.stop(signal.SIGTERM) == 0

    again = start_server(tmp_path, **env)
    servers.append(again)
    with again.client() as http:
        # Read at exit of the first run, the count is what it was, plus what the generator
        # made since the restart: nothing like a second backfill of history.
        at_restart = _total_trades(http)
        time.sleep(0.5)
        later = _total_trades(http)
    assert backfilled < at_restart < backfilled + 2_000
    assert later > at_restart
    assert again.stop(signal.SIGTERM) == 0
