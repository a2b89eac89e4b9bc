"""A real third-party Binance client, ccxt, pointed at a real memetrade server: it loads the
markets from ``/api/v3/exchangeInfo`` and fetches candles, trades and tickers, and what it
gets equals what the native API serves. No glue code: only ccxt's own URL settings."""

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import ccxt
import httpx
import pytest
from e2e_server import Server
from http_helpers import AUTH, make_client, running

pytestmark = pytest.mark.e2e

MINUTE = 60_000


@pytest.fixture(scope="module")
def served(
    tmp_path_factory: pytest.TempPathFactory,
) -> Iterator[tuple[Server, list[dict[str, Any]]]]:
    """The server, and the PEPE trades of the last three minutes it was given."""
    with running(tmp_path_factory.mktemp("ccxt"), SYMBOLS="PEPE,DOGE") as server:
        with make_client(server) as http:
            t = time.time_ns() // 1_000_000
            base = t - t % MINUTE - 2 * MINUTE
            trades = [
                {
                    "id": f"p{i}",
                    "symbol": "PEPE",
                    "price": f"0.00000123{i % 9}",
                    "amount": str(1_000_000 + i),
                    "side": "Sell" if i % 2 else "Buy",
                    "timestamp": base + i * 4_000,
                }
                for i in range(30)
            ]
            assert http.post("/internal/trades", json=trades, headers=AUTH).status_code == 200
        yield server, trades


@pytest.fixture(scope="module")
def srv(served: tuple[Server, list[dict[str, Any]]]) -> Server:
    return served[0]


@pytest.fixture(scope="module")
def traded(served: tuple[Server, list[dict[str, Any]]]) -> list[dict[str, Any]]:
    return served[1]


@pytest.fixture(scope="module")
def exchange(srv: Server) -> ccxt.binance:
    api = f"{srv.base_url}/api/v3"
    return ccxt.binance(
        {
            "urls": {"api": {"public": api, "private": api}},
            # Spot only (no futures endpoints), no wallet endpoint (needs an API key).
            "options": {"fetchMarkets": {"types": ["spot"]}, "fetchCurrencies": False},
            "timeout": 10_000,
        }
    )


def native(srv: Server, path: str, **params: Any) -> Any:
    with make_client(srv) as http:
        response = http.get(path, params=params)
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


def same(a: float, b: Decimal) -> bool:
    # ccxt hands out floats; equal to the exact value within a float's precision.
    return Decimal(repr(a)) == b or abs(Decimal(a) - b) <= abs(b) * Decimal("1e-15")


def test_ccxt_loads_markets_with_our_tick_and_lot_sizes(exchange: ccxt.binance) -> None:
    markets = exchange.load_markets()
    assert set(markets) == {"PEPE/USDT", "DOGE/USDT"}
    pepe = markets["PEPE/USDT"]
    assert (pepe["id"], pepe["base"], pepe["quote"], pepe["spot"]) == (
        "PEPEUSDT",
        "PEPE",
        "USDT",
        True,
    )
    assert pepe["precision"]["price"] == 1e-12
    assert pepe["precision"]["amount"] == 1
    assert markets["DOGE/USDT"]["precision"]["price"] == 1e-6
    assert markets["DOGE/USDT"]["precision"]["amount"] == 0.01


def test_ccxt_candles_equal_native_klines(srv: Server, exchange: ccxt.binance) -> None:
    exchange.load_markets()
    ohlcv = exchange.fetch_ohlcv("PEPE/USDT", "1m", limit=3)
    candles = native(srv, "/api/v1/klines/PEPE", interval="1m", limit=3)["data"]
    assert len(ohlcv) == len(candles) == 3
    for row, candle in zip(ohlcv, candles, strict=True):
        assert row[0] == candle["timestamp"]
        for value, key in zip(row[1:], ("open", "high", "low", "close", "volume"), strict=True):
            assert same(value, candle[key]), (key, value, candle[key])
    # A derived interval: the 3m candle that ccxt gets is the merge of the native minutes.
    three = exchange.fetch_ohlcv("PEPE/USDT", "3m", limit=2)
    minutes = native(srv, "/api/v1/klines/PEPE", interval="1m", limit=10)["data"]
    last = three[-1]
    parts = [m for m in minutes if last[0] <= m["timestamp"] < last[0] + 3 * MINUTE]
    assert same(last[5], sum(m["volume"] for m in parts))


def test_ccxt_raw_klines_carry_the_taker_buy_volumes_of_the_trades(
    exchange: ccxt.binance, traded: list[dict[str, Any]]
) -> None:
    # ccxt's OHLCV drops fields 9 and 10, so ask through its raw endpoint method, which
    # returns Binance's rows as they came.
    rows = exchange.public_get_klines({"symbol": "PEPEUSDT", "interval": "1m", "limit": 5})
    assert rows
    for row in rows:
        open_time = int(row[0])
        buys = [
            t
            for t in traded
            if t["side"] == "Buy" and open_time <= t["timestamp"] < open_time + MINUTE
        ]
        assert Decimal(row[9]) == sum(Decimal(t["amount"]) for t in buys)
        assert Decimal(row[10]) == sum(Decimal(t["price"]) * Decimal(t["amount"]) for t in buys)
    assert any(Decimal(row[9]) > 0 for row in rows)


def test_ccxt_trades_equal_native_history(srv: Server, exchange: ccxt.binance) -> None:
    exchange.load_markets()
    trades = exchange.fetch_trades("PEPE/USDT", limit=10)
    history = native(srv, "/api/v1/history/PEPE", limit=10)["data"][::-1]
    assert [t["id"] for t in trades] == [str(n) for n in range(21, 31)]
    for got, mine in zip(trades, history, strict=True):
        assert got["side"] == mine["side"].lower()
        assert same(got["price"], mine["price"])
        assert same(got["amount"], mine["amount"])
        assert got["datetime"] == mine["timestamp"]


def test_ccxt_tickers_equal_native_tickers(srv: Server, exchange: ccxt.binance) -> None:
    exchange.load_markets()
    ticker = exchange.fetch_ticker("PEPE/USDT")
    mine = native(srv, "/api/v1/ticker/PEPE")
    assert same(ticker["last"], mine["price"])
    assert same(ticker["open"], mine["open"])
    assert same(ticker["high"], mine["high"])
    assert same(ticker["low"], mine["low"])
    assert same(ticker["baseVolume"], mine["volume"])
    assert same(ticker["quoteVolume"], mine["quote_volume"])
    assert same(ticker["percentage"], mine["change_percent"])
    assert ticker["timestamp"] == mine["timestamp"]
    both = exchange.fetch_tickers(["PEPE/USDT", "DOGE/USDT"])
    assert same(both["PEPE/USDT"]["last"], mine["price"])
    assert not both["DOGE/USDT"]["last"]  # DOGE has not traded: 0, which ccxt reads as None


def test_ccxt_sees_binance_errors(exchange: ccxt.binance) -> None:
    exchange.load_markets()
    with pytest.raises(ccxt.BadRequest):
        exchange.public_get_klines({"symbol": "PEPEUSDT", "interval": "7m"})
    with pytest.raises(ccxt.BadSymbol):
        exchange.public_get_klines({"symbol": "NOPEUSDT", "interval": "1m"})


def test_http_client_and_ccxt_agree_on_server_time(srv: Server, exchange: ccxt.binance) -> None:
    with httpx.Client(base_url=srv.base_url) as http:
        mine = http.get("/api/v3/time").json()["serverTime"]
    assert abs(exchange.fetch_time() - mine) < 5_000
