"""The service on PostgreSQL, end to end: a real server process with ``DATABASE_URL`` on a fresh
database. Trades are ingested and served as klines; the process is killed with SIGKILL in the
middle of a steady ingest and restarted; every acknowledged trade is then in the database, the
candles read before the kill are served unchanged, and every candle equals an exact ``Decimal``
aggregation of the trades the database holds.

Skipped when the PostgreSQL server is unreachable, except under ``CI=true``, where that fails
(``store_backends.require_server``).
"""

import json
import signal
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_server import Server, start_server
from http_helpers import AUTH, make_client, running

# Each symbol has a tick of 0.01 and a lot of 0.1 (stored as integers of those units).
SYMBOLS = "PGA:0.01:0.1,PGB:0.01:0.1"
TICK, LOT = Decimal("0.01"), Decimal("0.1")
STEPS = {"1s": 1_000, "1m": 60_000}


@pytest.fixture
def database_url() -> Iterator[str]:
    """A fresh PostgreSQL database, dropped after the test."""
    # The scratch-database helper and the skip-or-fail rule belong to the contract suite's
    # backends; reuse them rather than keep a second copy in step.
    contract = str(Path(__file__).resolve().parent.parent / "contract")
    if contract not in sys.path:
        sys.path.append(contract)
    from store_backends import postgres_database

    url, drop = postgres_database()
    yield url
    drop()


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def align(ts: int, step: int) -> int:
    return ts - ts % step


def make_trades(symbol: str, prefix: str, start: int, count: int) -> list[dict[str, Any]]:
    """``count`` trades of ``symbol`` from ``start`` on, a few per second, prices wandering."""
    return [
        {
            "id": f"{prefix}-{i}",
            "symbol": symbol,
            "price": str(Decimal(100 + (i * 37) % 23) * TICK + 1),
            "amount": str(Decimal(1 + (i * 11) % 7) * LOT),
            "side": "Sell" if i % 3 else "Buy",
            "timestamp": start + i * 97,
        }
        for i in range(count)
    ]


def post(client: httpx.Client, trades: Sequence[dict[str, Any]]) -> dict[str, Any]:
    response = client.post("/internal/trades", json=list(trades), headers=AUTH)
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


def klines(client: httpx.Client, symbol: str, interval: str, first: int, last: int) -> list[Any]:
    """Non-empty candles opening in ``[first, last]``, without ``closed`` (which moves with
    the clock), numbers as exact ``Decimal``."""
    response = client.get(
        f"/api/v1/klines/{symbol}",
        params={"interval": interval, "from": first, "to": last, "limit": 1000},
    )
    assert response.status_code == 200, response.text
    data = json.loads(response.text, parse_float=Decimal)["data"]
    return [{k: v for k, v in c.items() if k != "closed"} for c in data if c["trades"]]


def reference(rows: Sequence[tuple[str, int, int, int, str]], step: int) -> list[dict[str, Any]]:
    """Candles of stored ``(id, ts, price ticks, amount lots, side)`` rows, computed in
    Decimal."""
    groups: dict[int, list[tuple[str, int, int, int, str]]] = {}
    for row in rows:
        groups.setdefault(align(row[1], step), []).append(row)
    out = []
    for open_time, group in sorted(groups.items()):
        group.sort(key=lambda row: (row[1], row[0]))
        prices = [Decimal(row[2]) * TICK for row in group]
        amounts = [Decimal(row[3]) * LOT for row in group]
        buys = [(p, a) for p, a, row in zip(prices, amounts, group, strict=True) if row[4] == "Buy"]
        out.append(
            {
                "timestamp": open_time,
                "open": prices[0],
                "high": max(prices),
                "low": min(prices),
                "close": prices[-1],
                "volume": sum(amounts, Decimal(0)),
                "quote_volume": sum(
                    (p * a for p, a in zip(prices, amounts, strict=True)), Decimal(0)
                ),
                "trades": len(group),
                "close_time": open_time + step - 1,
                "buy_volume": sum((a for _, a in buys), Decimal(0)),
                "buy_quote_volume": sum((p * a for p, a in buys), Decimal(0)),
            }
        )
    return out


def stored_trades(url: str, symbol: str) -> dict[str, tuple[str, int, int, int, str]]:
    """The trades the database holds for ``symbol``, by id, read with a client of our own."""
    import psycopg

    with psycopg.connect(url) as conn:
        rows = conn.execute(
            "SELECT id, ts, price, amount, side FROM trades WHERE symbol = %s", (symbol,)
        ).fetchall()
    return {row[0]: row for row in rows}


def ingest_until_stopped(
    srv: Server, trades: list[dict[str, Any]], acked: list[dict[str, Any]], stop: threading.Event
) -> None:
    """POST ``trades`` in batches of 50 until ``stop`` or the server is gone; append to
    ``acked`` what was answered 200 (so is promised durable)."""
    with httpx.Client(base_url=srv.base_url, timeout=10) as client:
        for start in range(0, len(trades), 50):
            if stop.is_set():
                return
            batch = trades[start : start + 50]
            try:
                response = client.post("/internal/trades", json=batch, headers=AUTH)
            except httpx.TransportError:
                return  # Killed mid-request: this batch is not acknowledged.
            if response.status_code != 200:
                return
            acked.extend(batch)


def test_postgres_keeps_every_acknowledged_trade_across_sigkill(
    tmp_path: Path, database_url: str
) -> None:
    env = {"DATABASE_URL": database_url, "SYMBOLS": SYMBOLS}
    start = align(now_ms() - 90_000, 60_000) + 123  # Inside the late-trade window (300 s).
    first = make_trades("PGA", "a", start, 600)  # About a minute of PGA, a few per second.
    steady = make_trades("PGB", "b", start, 800)
    window = (align(start, 1_000), now_ms())

    srv = start_server(tmp_path, **env)
    try:
        with make_client(srv) as client:
            assert client.get("/ready").json() == {"status": "ready"}
            for at in range(0, len(first), 200):
                assert post(client, first[at : at + 200]) == {"accepted": 200, "duplicates": 0}
            before = {iv: klines(client, "PGA", iv, *window) for iv in STEPS}
            assert sum(c["trades"] for c in before["1s"]) == len(first)

        # A steady ingest of PGB, killed after a few acknowledged batches.
        acked: list[dict[str, Any]] = []
        stop = threading.Event()
        feeder = threading.Thread(target=ingest_until_stopped, args=(srv, steady, acked, stop))
        feeder.start()
        deadline = time.monotonic() + 30
        while len(acked) < 200 and time.monotonic() < deadline and feeder.is_alive():
            time.sleep(0.005)
        assert len(acked) >= 200, "the steady ingest did not get going"
        assert srv.stop(signal.SIGKILL) == -signal.SIGKILL
        stop.set()
        feeder.join(timeout=20)
    finally:
        if srv.process.poll() is None:
            srv.stop(signal.SIGKILL)

    # Every acknowledged trade is in the database; nothing else is.
    stored_a, stored_b = stored_trades(database_url, "PGA"), stored_trades(database_url, "PGB")
    assert set(stored_a) == {t["id"] for t in first}
    assert {t["id"] for t in acked} <= set(stored_b)
    assert set(stored_b) <= {t["id"] for t in steady}

    with running(tmp_path, **env) as again, make_client(again) as client:
        # Candles read before the kill are served unchanged, and every candle is exactly the
        # aggregation of the stored trades: none lost, none counted twice.
        for iv, step in STEPS.items():
            assert klines(client, "PGA", iv, *window) == before[iv]
            assert before[iv] == reference(list(stored_a.values()), step)
            assert klines(client, "PGB", iv, *window) == reference(list(stored_b.values()), step)
        # Ingest stays idempotent across the restart: replays are recognised as stored.
        assert post(client, first[:200]) == {"accepted": 0, "duplicates": 200}
        assert post(client, acked[:50]) == {"accepted": 0, "duplicates": 50}
