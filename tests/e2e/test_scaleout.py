"""Scale-out end to end, with real processes on the machine's NATS JetStream and PostgreSQL:
``ROLE=aggregate``, ``ROLE=api`` (two instances) and ``ROLE=ingest`` meeting on the bus.

Each test uses symbols of its own (the JetStream streams and durable consumers on the server
are shared by every run). Skipped when NATS or PostgreSQL is unreachable, failing under
``CI=true``.
"""

import json
import secrets
import signal
import sys
import threading
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_server import TOKEN, Server, start_server
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

TICK, LOT = Decimal("0.01"), Decimal("0.1")


def _contract_helpers() -> Any:
    contract = str(Path(__file__).resolve().parent.parent / "contract")
    if contract not in sys.path:
        sys.path.append(contract)
    import bus_backends
    import store_backends

    return bus_backends, store_backends


@pytest.fixture
def database_url() -> Iterator[str]:
    bus_backends, store_backends = _contract_helpers()
    bus_backends.require_nats()
    url, drop = store_backends.postgres_database()
    yield url
    drop()


@pytest.fixture
def symbol() -> str:
    return "S" + secrets.token_hex(4).upper()


@pytest.fixture
def start(database_url: str, symbol: str, tmp_path: Path) -> Iterator[Any]:
    """Start a role; every process is stopped at the end."""
    bus_backends, _ = _contract_helpers()
    servers: list[Server] = []

    def launch(role: str, **env: str) -> Server:
        server = start_server(
            tmp_path,
            ROLE=role,
            DATABASE_URL=database_url,
            BUS_URL=bus_backends.NATS_URL,
            SYMBOLS=f"{symbol}:{TICK}:{LOT}",
            **env,
        )
        servers.append(server)
        return server

    yield launch
    for server in servers:
        server.stop(signal.SIGKILL if server.process.poll() is None else signal.SIGTERM)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def trade(symbol: str, trade_id: str, i: int) -> dict[str, Any]:
    return {
        "id": trade_id,
        "symbol": symbol,
        "price": str(Decimal(100 + (i * 37) % 23) * TICK + 1),
        "amount": str(Decimal(1 + (i * 11) % 7) * LOT),
        "side": "Sell" if i % 3 else "Buy",
        "timestamp": now_ms(),
    }


def ingest(server: Server, trades: list[dict[str, Any]]) -> httpx.Response:
    return httpx.post(
        server.base_url + "/internal/trades",
        json=trades,
        headers={"Authorization": f"Bearer {TOKEN}"},
        timeout=10,
    )


def klines(server: Server, symbol: str, interval: str = "1m") -> list[dict[str, Any]]:
    response = httpx.get(
        f"{server.base_url}/api/v1/klines/{symbol}", params={"interval": interval}, timeout=10
    )
    assert response.status_code == 200, response.text
    return [c for c in json.loads(response.text, parse_float=Decimal)["data"] if c["trades"]]


def reference(trades: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Minute candles of ``trades`` in exact Decimal: (open time, ohlc, volume, count)."""
    by_minute: dict[int, list[dict[str, Any]]] = {}
    for t in sorted(trades, key=lambda t: (t["timestamp"], t["id"])):
        by_minute.setdefault(t["timestamp"] - t["timestamp"] % 60_000, []).append(t)
    return [
        {
            "timestamp": minute,
            "open": Decimal(ts[0]["price"]),
            "high": max(Decimal(t["price"]) for t in ts),
            "low": min(Decimal(t["price"]) for t in ts),
            "close": Decimal(ts[-1]["price"]),
            "volume": sum(Decimal(t["amount"]) for t in ts),
            "trades": len(ts),
        }
        for minute, ts in sorted(by_minute.items())
    ]


def served(candles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "timestamp": c["timestamp"],
            **{k: Decimal(c[k]) for k in ("open", "high", "low", "close", "volume")},
            "trades": c["trades"],
        }
        for c in candles
    ]


def wait_until(check: Any, within: float, what: str) -> None:
    deadline = time.monotonic() + within
    last: Any = None
    while time.monotonic() < deadline:
        last = check()
        if last is True:
            return
        time.sleep(0.2)
    pytest.fail(f"{what} not within {within} s: {last!r}")


def test_a_trade_ingested_on_one_api_instance_reaches_a_websocket_client_of_another(
    start: Any, symbol: str
) -> None:
    start("aggregate")
    api_a = start("api")
    api_b = start("api")
    with connect(f"{api_b.ws_url}/ws/{symbol}", open_timeout=10) as ws:
        time.sleep(0.3)  # The subscription is registered once the handshake is done.
        sent = trade(symbol, "cross-1", 1)
        response = ingest(api_a, [sent])
        assert response.status_code == 200, response.text
        message = json.loads(ws.recv(timeout=10), parse_float=Decimal)
    assert message["id"] == "cross-1"
    assert Decimal(message["price"]) == Decimal(sent["price"])

    # Both instances answer the same candles, equal to the reference.
    want = reference([sent])
    wait_until(lambda: served(klines(api_a, symbol)) == want or klines(api_a, symbol), 10, "A")
    wait_until(lambda: served(klines(api_b, symbol)) == want or klines(api_b, symbol), 10, "B")
    assert klines(api_a, symbol) == klines(api_b, symbol)


def test_an_aggregator_killed_mid_ingest_loses_nothing_and_counts_nothing_twice(
    start: Any, symbol: str
) -> None:
    aggregator = start("aggregate")
    entry = start("ingest")
    api = start("api")
    acknowledged: list[dict[str, Any]] = []
    stop = threading.Event()
    failures: list[str] = []

    def produce() -> None:
        i = 0
        while not stop.is_set():
            batch = [trade(symbol, f"k-{i + j}", i + j) for j in range(20)]
            i += 20
            response = ingest(entry, batch)
            if response.status_code != 200:
                failures.append(response.text)
                continue
            acknowledged.extend(batch)
            if i % 200 == 0:
                # A client retry of an acknowledged batch: must not count twice.
                assert ingest(entry, batch).status_code == 200
            time.sleep(0.01)

    producer = threading.Thread(target=produce)
    producer.start()
    try:
        time.sleep(1.5)
        aggregator.stop(signal.SIGKILL)
        time.sleep(1.0)
        start("aggregate")
        time.sleep(1.5)
    finally:
        stop.set()
        producer.join(timeout=30)
    assert not failures, failures[:3]
    assert len(acknowledged) > 100
    want = reference(acknowledged)

    # Redelivery of what the killed aggregator held unacknowledged waits for the ack timeout.
    wait_until(lambda: served(klines(api, symbol)) == want or served(klines(api, symbol)), 30, "")
    assert sum(c["trades"] for c in klines(api, symbol)) == len(acknowledged)


REDIS_URL = "redis://127.0.0.1:6379/15"  # A database of its own, emptied by the test.


@pytest.fixture
def redis_url() -> str:
    import os

    import redis

    try:
        client = redis.Redis.from_url(REDIS_URL, socket_connect_timeout=2)
        client.flushdb()
        client.close()
    except redis.RedisError as exc:
        message = f"Redis at {REDIS_URL} is unreachable ({exc})"
        if os.environ.get("CI") == "true":
            pytest.fail(f"{message}; CI=true requires it")
        pytest.skip(message)
    return REDIS_URL


def test_max_connections_holds_across_api_instances_with_redis(
    start: Any, symbol: str, redis_url: str
) -> None:
    env = {"REDIS_URL": redis_url, "MAX_CONNECTIONS": "2"}
    api_a = start("api", **env)
    api_b = start("api", **env)
    with (
        connect(f"{api_a.ws_url}/ws/{symbol}", open_timeout=10),
        connect(f"{api_b.ws_url}/ws/{symbol}", open_timeout=10),
    ):
        # Each instance holds one: the third, on either, is over the shared cap of 2.
        with (
            connect(f"{api_a.ws_url}/ws/{symbol}", open_timeout=10) as third,
            pytest.raises(ConnectionClosed) as closed,
        ):
            third.recv(timeout=10)
        assert closed.value.rcvd is not None
        assert closed.value.rcvd.code == 1013
    # Places come back when clients leave.
    time.sleep(0.5)
    with (
        connect(f"{api_b.ws_url}/ws/{symbol}", open_timeout=10) as again,
        pytest.raises(TimeoutError),
    ):
        again.recv(timeout=0.5)  # Admitted: open, nothing to say yet.
