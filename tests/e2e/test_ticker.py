"""Tickers, trade history and the ``/ws`` snapshot/signal stream against a real server.

One quiet server for the module; each test owns its symbols. ``MAX_TRADE_AGE`` is an hour so
tests can ingest the last half hour of a market at once.
"""

import json
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from e2e_server import Server
from http_helpers import AUTH, assert_error, make_client, running
from websockets.asyncio.client import ClientConnection, connect

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SYMBOLS = "PEPE,TICKA:0.01:0.1,THIST:0.01:0.1,TWS:0.01:0.1,TSLOW:0.01:0.1"
ENV = {"SYMBOLS": SYMBOLS, "MAX_TRADE_AGE": "3600"}
MINUTE = 60_000


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("ticker"), **ENV) as srv:
        yield srv


@pytest.fixture
def http(shared: Server) -> Iterator[httpx.Client]:
    with make_client(shared) as client:
        yield client


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def trade(symbol: str, trade_id: str, ts: int, price: str, amount: str = "0.1") -> dict[str, Any]:
    return {"id": trade_id, "symbol": symbol, "price": price, "amount": amount, "side": "Buy",
            "timestamp": ts}  # fmt: skip


def ingest(client: httpx.Client, trades: list[dict[str, Any]]) -> None:
    response = client.post("/internal/trades", json=trades, headers=AUTH)
    assert response.status_code == 200, response.text


def body(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


def rising_market(symbol: str, minutes: int, start: int) -> list[dict[str, Any]]:
    """Two trades (0.1 and 0.2 lots) in every other minute, prices rising 0.10 a minute."""
    out = []
    for m in range(0, minutes, 2):
        t = start + m * MINUTE
        price = Decimal("10.00") + Decimal("0.10") * m
        out.append(trade(symbol, f"{symbol}-{m}-a", t + 1000, str(price), "0.1"))
        out.append(trade(symbol, f"{symbol}-{m}-b", t + 2000, str(price + Decimal("0.05")), "0.2"))
    return out


def expected_sma20(trades: list[dict[str, Any]], newest_minute: int) -> Decimal | None:
    """SMA-20 of the 1m closes (empty minutes flat at the previous close), the open minute
    included, at 2 + 4 decimals (ties to even)."""
    closes: dict[int, Decimal] = {}
    for t in sorted(trades, key=lambda x: (x["timestamp"], x["id"])):
        closes[t["timestamp"] - t["timestamp"] % MINUTE] = Decimal(t["price"])
    first = min(closes)
    series, close = [], None
    for m in range(first, newest_minute + 1, MINUTE):
        close = closes.get(m, close)
        series.append(close)
    if len(series) < 20:
        return None
    return (sum(series[-20:], Decimal(0)) / 20).quantize(Decimal("0.000001"), ROUND_HALF_EVEN)


# -- REST ticker -----------------------------------------------------------------------------


def test_ticker_has_exact_rolling_figures_and_the_sma20_recommendation(
    http: httpx.Client,
) -> None:
    start = now_ms() // MINUTE * MINUTE - 25 * MINUTE
    trades = rising_market("TICKA", 24, start)
    ingest(http, trades)
    got = body(http.get("/api/v1/ticker/ticka"))
    prices = [Decimal(t["price"]) for t in trades]
    amounts = [Decimal(t["amount"]) for t in trades]
    assert got["symbol"] == "TICKA"
    assert got["interval"] == "1m"
    assert (got["price"], got["open"]) == (prices[-1], prices[0])
    assert (got["high"], got["low"]) == (max(prices), min(prices))
    assert got["volume"] == sum(amounts) == Decimal("3.6")  # 12 x (0.1 + 0.2), exactly
    assert got["quote_volume"] == sum(p * a for p, a in zip(prices, amounts, strict=True))
    assert got["trades"] == len(trades)
    assert got["change"] == prices[-1] - prices[0]
    percent = (prices[-1] - prices[0]) / prices[0] * 100
    assert got["change_percent"] == percent.quantize(Decimal("0.01"), ROUND_HALF_EVEN)
    assert got["timestamp"] == trades[-1]["timestamp"]
    newest = got["window_start"] + 1439 * MINUTE
    assert newest >= start + 24 * MINUTE
    sma = expected_sma20(trades, newest)
    assert sma is not None
    assert got["sma20"] == sma
    assert got["signal"] == ("BUY" if got["price"] > sma else "SELL")


def test_ticker_of_all_symbols_lists_each_and_a_quiet_one_is_neutral(
    http: httpx.Client,
) -> None:
    got = body(http.get("/api/v1/ticker"))
    assert [t["symbol"] for t in got["data"]] == SYMBOLS.replace(":0.01:0.1", "").split(",")
    pepe = got["data"][0]
    assert pepe["price"] is None
    assert (pepe["volume"], pepe["trades"]) == (0, 0)
    assert (pepe["sma20"], pepe["signal"]) == (None, "NEUTRAL")


def test_ticker_interval_chooses_the_candles_of_the_sma(http: httpx.Client) -> None:
    ingest(http, [trade("TICKA", "hourly-1", now_ms(), "12.00")])
    got = body(http.get("/api/v1/ticker/TICKA", params={"interval": "1h"}))
    assert got["interval"] == "1h"
    assert (got["sma20"], got["signal"]) == (None, "NEUTRAL")  # not 20 hours of candles


@pytest.mark.parametrize(
    ("path", "status", "code"),
    [
        ("/api/v1/ticker/NOPE", 404, "unknown_symbol"),
        ("/api/v1/ticker/TICKA?interval=2m", 400, "unknown_interval"),
        ("/api/v1/ticker/TICKA?interval=", 400, "unknown_interval"),
        ("/api/v1/ticker?interval=1d", 400, "unknown_interval"),
        ("/api/v1/history/NOPE", 404, "unknown_symbol"),
        ("/api/v1/history/THIST?limit=0", 400, "invalid_limit"),
        ("/api/v1/history/THIST?limit=1001", 400, "invalid_limit"),
        ("/api/v1/history/THIST?limit=ten", 400, "invalid_limit"),
    ],
)
def test_bad_ticker_and_history_requests_are_clear_errors(
    http: httpx.Client, path: str, status: int, code: str
) -> None:
    assert_error(http.get(path), status, code)


# -- REST history ----------------------------------------------------------------------------


def test_history_serves_the_newest_trades_first_with_exact_numbers(http: httpx.Client) -> None:
    base = now_ms() - 10 * MINUTE
    trades = [
        trade("THIST", f"h-{i:03d}", base + i * 1000, f"{1 + i / 100:.2f}", "0.3")
        for i in range(130)
    ]
    ingest(http, trades)
    default = body(http.get("/api/v1/history/thist"))
    assert default["symbol"] == "THIST"
    assert [t["id"] for t in default["data"]] == [f"h-{i:03d}" for i in range(129, 29, -1)]
    newest = default["data"][0]
    assert (newest["price"], newest["amount"], newest["side"]) == (
        Decimal("2.29"),
        Decimal("0.3"),
        "Buy",
    )
    assert set(newest) == {"id", "symbol", "price", "amount", "side", "timestamp"}
    few = body(http.get("/api/v1/history/THIST", params={"limit": 3}))
    assert [t["id"] for t in few["data"]] == ["h-129", "h-128", "h-127"]
    everything = body(http.get("/api/v1/history/THIST", params={"limit": 1000}))
    assert len(everything["data"]) == 130


# -- restart -----------------------------------------------------------------------------------


def test_a_restart_restores_the_ticker_from_storage(tmp_path: Path) -> None:
    start = now_ms() // MINUTE * MINUTE - 25 * MINUTE
    trades = rising_market("TICKA", 24, start)
    with running(tmp_path, **ENV) as srv, make_client(srv) as client:
        ingest(client, trades)
        before = body(client.get("/api/v1/ticker/TICKA"))
    with running(tmp_path, **ENV) as srv, make_client(srv) as client:
        after = body(client.get("/api/v1/ticker/TICKA"))
    stable = ("price", "open", "high", "low", "change", "volume", "quote_volume", "trades",
              "timestamp")  # fmt: skip
    assert {k: after[k] for k in stable} == {k: before[k] for k in stable}
    assert after["sma20"] == expected_sma20(trades, after["window_start"] + 1439 * MINUTE)


# -- WS /ws ------------------------------------------------------------------------------------


async def recv_json(ws: ClientConnection, within: float = 5.0) -> Any:
    with anyio.fail_after(within):
        message = await ws.recv()
    return json.loads(message, parse_float=Decimal)


async def ingest_async(srv: Server, trades: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=30) as client:
        response = await client.post("/internal/trades", json=trades, headers=AUTH)
    assert response.status_code == 200, response.text


async def test_ws_streams_snapshots_and_a_signal_event_when_the_price_crosses_the_sma(
    shared: Server,
) -> None:
    start = now_ms() // MINUTE * MINUTE - 25 * MINUTE
    await ingest_async(shared, rising_market("TWS", 24, start))
    async with connect(shared.ws_url + "/ws") as ws:
        first = await recv_json(ws)  # the current snapshot of each symbol with data
        assert set(first) == {"type", "symbol", "interval", "price", "sma20", "signal",
                              "timestamp"}  # fmt: skip
        assert (first["type"], first["interval"]) == ("snapshot", "1m")
        await ingest_async(shared, [trade("TWS", "dump", now_ms(), "1.00")])
        with anyio.fail_after(5):
            while True:
                message = await recv_json(ws)
                if message["type"] == "signal" and message["symbol"] == "TWS":
                    break
        assert (message["previous"], message["signal"]) == ("BUY", "SELL")
        assert message["price"] == Decimal("1.00")
        assert message["sma20"] > message["price"]
        with anyio.fail_after(5):
            while True:  # the snapshot follows, with the same verdict
                message = await recv_json(ws)
                if message["type"] == "snapshot" and message["symbol"] == "TWS":
                    break
        assert (message["price"], message["signal"]) == (Decimal("1.00"), "SELL")


async def test_ws_snapshots_are_coalesced_to_at_most_four_a_second_per_symbol(
    shared: Server,
) -> None:
    await ingest_async(shared, [trade("TSLOW", "slow-0", now_ms(), "5.00")])
    async with connect(shared.ws_url + "/ws") as ws:
        started = time.monotonic()
        for i in range(1, 41):
            await ingest_async(shared, [trade("TSLOW", f"slow-{i}", now_ms(), f"{5 + i / 100}")])
        elapsed = time.monotonic() - started
        received = []
        with anyio.move_on_after(1.0):
            while True:
                message = await recv_json(ws)
                if message["symbol"] == "TSLOW":
                    received.append(message)
    assert received, "no snapshot of TSLOW"
    assert all(m["type"] == "snapshot" for m in received)
    # 41 price changes; at most one snapshot per 250 ms, plus the one sent on connect.
    assert len(received) <= (elapsed + 1.0) / 0.25 + 2
    assert len(received) < 41
    assert received[-1]["price"] == Decimal("5.40")


async def test_ws_with_a_bad_interval_is_closed_with_4400(shared: Server) -> None:
    async with connect(shared.ws_url + "/ws?interval=7m") as ws:
        with anyio.fail_after(5):
            await ws.wait_closed()
    assert ws.close_code == 4400
    assert "7m" in (ws.close_reason or "")
