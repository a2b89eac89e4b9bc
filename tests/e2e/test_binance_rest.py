"""The Binance-compatible REST API (``/api/v3``) against a real server: shapes, values equal
to the native API's, and Binance's errors."""

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_server import Server
from http_helpers import AUTH, make_client, running

pytestmark = pytest.mark.e2e

MINUTE = 60_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("binance"), SYMBOLS="PEPE,DOGE") as server:
        yield server


@pytest.fixture(scope="module")
def client(srv: Server) -> Iterator[httpx.Client]:
    with make_client(srv) as http:
        yield http


@pytest.fixture(scope="module")
def traded(client: httpx.Client) -> list[dict[str, Any]]:
    """DOGE trades over the last four minutes (a late one last), in acceptance order."""
    t = now_ms()
    base = t - t % MINUTE - 3 * MINUTE
    trades = [
        {
            "id": f"d{i}",
            "symbol": "DOGE",
            "price": f"0.1{i % 7}",
            "amount": f"{i + 1}.5",
            "side": "Buy" if i % 3 else "Sell",
            "timestamp": base + i * 9_000,
        }
        for i in range(20)
    ]
    trades.append(
        {
            "id": "late",
            "symbol": "DOGE",
            "price": "0.2",
            "amount": "0.01",
            "side": "Sell",
            "timestamp": base + 1,
        }
    )
    response = client.post("/internal/trades", json=trades, headers=AUTH)
    assert response.status_code == 200, response.text
    return trades


def decoded(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return json.loads(response.text, parse_float=Decimal)


def binance_error(response: httpx.Response, code: int) -> None:
    assert response.status_code == 400, response.text
    assert response.json() == {"code": code, "msg": response.json()["msg"]}
    assert response.json()["code"] == code
    assert response.json()["msg"]


def native(client: httpx.Client, symbol: str, interval: str, **params: Any) -> list[dict]:
    data = decoded(client.get(f"/api/v1/klines/{symbol}", params={"interval": interval, **params}))
    return list(data["data"])


def test_ping_and_time(client: httpx.Client) -> None:
    assert decoded(client.get("/api/v3/ping")) == {}
    server_time = decoded(client.get("/api/v3/time"))["serverTime"]
    assert abs(server_time - now_ms()) < 5_000


def test_exchange_info_has_filters_from_tick_and_lot_sizes(client: httpx.Client) -> None:
    info = decoded(client.get("/api/v3/exchangeInfo"))
    assert info["timezone"] == "UTC"
    assert [s["symbol"] for s in info["symbols"]] == ["PEPEUSDT", "DOGEUSDT"]
    doge = info["symbols"][1]
    assert (doge["baseAsset"], doge["quoteAsset"], doge["status"]) == ("DOGE", "USDT", "TRADING")
    filters = {f["filterType"]: f for f in doge["filters"]}
    assert filters["PRICE_FILTER"]["tickSize"] == "0.000001"
    assert filters["PRICE_FILTER"]["minPrice"] == "0.000001"
    assert filters["LOT_SIZE"]["stepSize"] == "0.01"
    pepe = decoded(client.get("/api/v3/exchangeInfo", params={"symbol": "PEPEUSDT"}))
    assert pepe["symbols"][0]["filters"][0]["tickSize"] == "0.000000000001"
    listed = decoded(client.get("/api/v3/exchangeInfo", params={"symbols": '["DOGEUSDT"]'}))
    assert [s["symbol"] for s in listed["symbols"]] == ["DOGEUSDT"]
    binance_error(client.get("/api/v3/exchangeInfo", params={"symbol": "BTCUSDT"}), -1121)


def test_klines_rows_equal_the_native_candles(client: httpx.Client, traded: list) -> None:
    rows = decoded(client.get("/api/v3/klines", params={"symbol": "DOGEUSDT", "interval": "1m"}))
    by_time = {c["timestamp"]: c for c in native(client, "DOGE", "1m", limit=1000)}
    # A minute may open between the two requests: compare the candles both answered.
    both = [(row, by_time[row[0]]) for row in rows if row[0] in by_time]
    assert len(both) >= len(rows) - 1 >= 3
    for row, candle in both:
        assert len(row) == 12
        assert all(isinstance(row[i], str) for i in (1, 2, 3, 4, 5, 7, 9, 10, 11))
        assert row[0] == candle["timestamp"]
        assert row[6] == candle["close_time"]
        assert [Decimal(row[i]) for i in (1, 2, 3, 4, 5, 7)] == [
            candle[k] for k in ("open", "high", "low", "close", "volume", "quote_volume")
        ]
        assert row[8] == candle["trades"]
    assert rows[0][1] == "0.100000"  # fixed decimals, as Binance pads them
    ui = decoded(client.get("/api/v3/uiKlines", params={"symbol": "DOGEUSDT", "interval": "1m"}))
    assert ui == rows


def test_klines_taker_buy_volumes_are_the_buy_trades_of_each_window(
    client: httpx.Client, traded: list
) -> None:
    for interval, width in (("1m", 1), ("3m", 3), ("1d", 1440)):
        rows = decoded(
            client.get("/api/v3/klines", params={"symbol": "DOGEUSDT", "interval": interval})
        )
        assert rows
        for row in rows:
            buys = [
                t
                for t in traded
                if t["side"] == "Buy" and row[0] <= t["timestamp"] < row[0] + width * MINUTE
            ]
            assert Decimal(row[9]) == sum(Decimal(t["amount"]) for t in buys)
            assert Decimal(row[10]) == sum(Decimal(t["price"]) * Decimal(t["amount"]) for t in buys)
            assert Decimal(row[9]) <= Decimal(row[5])
            assert row[11] == "0"
        # Some windows hold both sides: the split is not all or nothing.
        assert any(0 < Decimal(row[9]) < Decimal(row[5]) for row in rows)
    # The native candles carry the same figures.
    for candle in native(client, "DOGE", "1m", limit=1000):
        buys = [
            t
            for t in traded
            if t["side"] == "Buy" and candle["timestamp"] <= t["timestamp"] <= candle["close_time"]
        ]
        assert candle["buy_volume"] == sum(Decimal(t["amount"]) for t in buys)
        assert candle["buy_quote_volume"] == sum(
            Decimal(t["price"]) * Decimal(t["amount"]) for t in buys
        )


def test_derived_intervals_are_exact_merges_of_stored_candles(
    client: httpx.Client, traded: list
) -> None:
    minutes = native(client, "DOGE", "1m", limit=1000)
    for interval, width in (("3m", 3), ("30m", 30), ("1d", 1440)):
        rows = decoded(
            client.get("/api/v3/klines", params={"symbol": "DOGEUSDT", "interval": interval})
        )
        assert rows
        for row in rows:
            parts = [m for m in minutes if row[0] <= m["timestamp"] < row[0] + width * MINUTE]
            traded_parts = [m for m in parts if m["trades"]]
            assert row[6] == row[0] + width * MINUTE - 1
            assert row[8] == sum(m["trades"] for m in parts)
            assert Decimal(row[5]) == sum(m["volume"] for m in parts)
            assert Decimal(row[7]) == sum(m["quote_volume"] for m in parts)
            assert Decimal(row[4]) == parts[-1]["close"]
            if not traded_parts:  # flat at the previous close
                assert Decimal(row[1]) == Decimal(row[2]) == Decimal(row[3]) == Decimal(row[4])
                continue
            assert Decimal(row[2]) == max(m["high"] for m in traded_parts)
            assert Decimal(row[3]) == min(m["low"] for m in traded_parts)
    # The hour candles merge to the same day as the minutes do.
    hours = native(client, "DOGE", "1h", limit=48)
    day = decoded(client.get("/api/v3/klines", params={"symbol": "DOGEUSDT", "interval": "1d"}))
    assert Decimal(day[-1][5]) == sum(h["volume"] for h in hours if h["timestamp"] >= day[-1][0])


def test_klines_time_zone_shifts_day_windows(client: httpx.Client, traded: list) -> None:
    rows = decoded(
        client.get(
            "/api/v3/klines",
            params={"symbol": "DOGEUSDT", "interval": "1d", "timeZone": "+8"},
        )
    )
    assert rows[-1][0] % 86_400_000 == 16 * 3_600_000
    assert sum(int(r[8]) for r in rows) == len(traded)


def test_klines_start_end_and_limit(client: httpx.Client, traded: list) -> None:
    minutes = native(client, "DOGE", "1m", limit=1000)
    first = minutes[1]["timestamp"]
    rows = decoded(
        client.get(
            "/api/v3/klines",
            params={"symbol": "DOGEUSDT", "interval": "1m", "startTime": first, "limit": 2},
        )
    )
    assert [r[0] for r in rows] == [first, first + MINUTE]
    rows = decoded(
        client.get(
            "/api/v3/klines",
            params={"symbol": "DOGEUSDT", "interval": "1m", "endTime": first, "limit": 1},
        )
    )
    assert [r[0] for r in rows] == [first]
    for bad in ("0", "1001"):
        binance_error(
            client.get(
                "/api/v3/klines", params={"symbol": "DOGEUSDT", "interval": "1m", "limit": bad}
            ),
            -1130,
        )
    binance_error(
        client.get("/api/v3/klines", params={"symbol": "DOGEUSDT", "interval": "1m", "limit": "x"}),
        -1100,
    )


def test_trades_have_stable_increasing_ids_and_equal_native_history(
    client: httpx.Client, traded: list
) -> None:
    rows = decoded(client.get("/api/v3/trades", params={"symbol": "DOGEUSDT"}))
    assert [r["id"] for r in rows] == list(range(1, len(traded) + 1))
    history = decoded(client.get("/api/v1/history/DOGE", params={"limit": 1000}))["data"]
    by_id = {h["id"]: h for h in history}
    for row, sent in zip(rows, traded, strict=True):  # acceptance order: the late one last
        assert row["time"] == sent["timestamp"]
        assert Decimal(row["price"]) == by_id[sent["id"]]["price"]
        assert Decimal(row["qty"]) == by_id[sent["id"]]["amount"]
        assert Decimal(row["quoteQty"]) == Decimal(row["price"]) * Decimal(row["qty"])
        assert row["isBuyerMaker"] is (sent["side"] == "Sell")
    last2 = decoded(client.get("/api/v3/trades", params={"symbol": "DOGEUSDT", "limit": 2}))
    assert last2 == rows[-2:]
    from5 = decoded(
        client.get("/api/v3/historicalTrades", params={"symbol": "DOGEUSDT", "fromId": 5})
    )
    assert from5 == rows[4:]


def test_agg_trades_by_id_and_time(client: httpx.Client, traded: list) -> None:
    rows = decoded(client.get("/api/v3/aggTrades", params={"symbol": "DOGEUSDT"}))
    assert [r["a"] for r in rows] == list(range(1, len(traded) + 1))
    assert all(r["f"] == r["l"] == r["a"] for r in rows)
    assert set(rows[0]) == {"a", "p", "q", "f", "l", "T", "m", "M"}
    page = decoded(
        client.get("/api/v3/aggTrades", params={"symbol": "DOGEUSDT", "fromId": 3, "limit": 2})
    )
    assert [r["a"] for r in page] == [3, 4]
    start = traded[0]["timestamp"]
    window = decoded(
        client.get(
            "/api/v3/aggTrades",
            params={"symbol": "DOGEUSDT", "startTime": start, "endTime": start + 9_000},
        )
    )
    # By number: the late trade (stamped inside the window) comes last.
    assert [r["a"] for r in window] == [1, 2, len(traded)]
    binance_error(
        client.get(
            "/api/v3/aggTrades", params={"symbol": "DOGEUSDT", "fromId": 1, "startTime": start}
        ),
        -1128,
    )
    binance_error(
        client.get(
            "/api/v3/aggTrades",
            params={"symbol": "DOGEUSDT", "startTime": 0, "endTime": 3_600_001},
        ),
        -1127,
    )


def test_ticker_24hr_equals_native_ticker(client: httpx.Client, traded: list) -> None:
    full = decoded(client.get("/api/v3/ticker/24hr", params={"symbol": "DOGEUSDT"}))
    mine = decoded(client.get("/api/v1/ticker/DOGE"))
    assert full["symbol"] == "DOGEUSDT"
    assert Decimal(full["lastPrice"]) == mine["price"]
    assert Decimal(full["openPrice"]) == mine["open"]
    assert Decimal(full["highPrice"]) == mine["high"]
    assert Decimal(full["lowPrice"]) == mine["low"]
    assert Decimal(full["volume"]) == mine["volume"]
    assert Decimal(full["quoteVolume"]) == mine["quote_volume"]
    assert Decimal(full["priceChange"]) == mine["change"]
    assert Decimal(full["priceChangePercent"]) == mine["change_percent"]
    assert full["count"] == mine["trades"] == len(traded)
    assert (full["firstId"], full["lastId"]) == (1, len(traded))
    assert Decimal(full["lastQty"]) == Decimal(traded[-1]["amount"])
    assert full["closeTime"] == mine["timestamp"]
    mini = decoded(client.get("/api/v3/ticker/24hr", params={"symbol": "DOGEUSDT", "type": "MINI"}))
    assert set(mini) == {
        "symbol",
        "openPrice",
        "highPrice",
        "lowPrice",
        "lastPrice",
        "volume",
        "quoteVolume",
        "openTime",
        "closeTime",
        "firstId",
        "lastId",
        "count",
    }
    listed = decoded(
        client.get("/api/v3/ticker/24hr", params={"symbols": '["DOGEUSDT","PEPEUSDT"]'})
    )
    assert [t["symbol"] for t in listed] == ["DOGEUSDT", "PEPEUSDT"]
    assert listed[0] == full | {"closeTime": listed[0]["closeTime"]}
    everything = decoded(client.get("/api/v3/ticker/24hr"))
    assert [t["symbol"] for t in everything] == ["PEPEUSDT", "DOGEUSDT"]
    assert everything[1]["firstId"] == 1
    assert everything[0]["count"] == 0
    assert everything[0]["firstId"] == -1
    binance_error(client.get("/api/v3/ticker/24hr", params={"type": "HUGE"}), -1130)


def test_ticker_price_and_avg_price(client: httpx.Client, traded: list) -> None:
    price = decoded(client.get("/api/v3/ticker/price", params={"symbol": "DOGEUSDT"}))
    assert price == {"symbol": "DOGEUSDT", "price": "0.150000"}  # the newest by time
    assert len(decoded(client.get("/api/v3/ticker/price"))) == 2
    average = decoded(client.get("/api/v3/avgPrice", params={"symbol": "DOGEUSDT"}))
    minutes = native(client, "DOGE", "1m", limit=5)
    quote = sum(m["quote_volume"] for m in minutes)
    volume = sum(m["volume"] for m in minutes)
    assert average["mins"] == 5
    assert Decimal(average["price"]) == (quote / volume).quantize(Decimal("1e-10"))


def test_errors_are_binance_errors(client: httpx.Client) -> None:
    get = client.get
    binance_error(get("/api/v3/klines", params={"symbol": "NOPEUSDT", "interval": "1m"}), -1121)
    binance_error(get("/api/v3/klines", params={"symbol": "DOGEUSDT", "interval": "7m"}), -1120)
    binance_error(get("/api/v3/klines", params={"interval": "1m"}), -1102)
    binance_error(get("/api/v3/klines", params={"symbol": "doge usdt", "interval": "1m"}), -1100)
    binance_error(get("/api/v3/trades", params={"symbol": "DOGEUSDT", "x": "1"}), -1104)
    binance_error(get("/api/v3/trades?symbol=DOGEUSDT&symbol=PEPEUSDT"), -1101)
    binance_error(get("/api/v3/ticker/price", params={"symbols": "not json"}), -1102)
    binance_error(
        get("/api/v3/ticker/price", params={"symbol": "DOGEUSDT", "symbols": '["DOGEUSDT"]'}),
        -1128,
    )
    binance_error(
        get("/api/v3/klines", params={"symbol": "DOGEUSDT", "interval": "1m", "timeZone": "99"}),
        -1130,
    )


def test_quote_asset_is_configurable(tmp_path: Path) -> None:
    with (
        running(tmp_path, SYMBOLS="DOGE", QUOTE_ASSET="busd") as server,
        make_client(server) as http,
    ):
        info = decoded(http.get("/api/v3/exchangeInfo"))
        assert [(s["symbol"], s["quoteAsset"]) for s in info["symbols"]] == [("DOGEBUSD", "BUSD")]
        binance_error(http.get("/api/v3/avgPrice", params={"symbol": "DOGEUSDT"}), -1121)
