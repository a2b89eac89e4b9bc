"""The TradingView UDF datafeed (``/udf``) against a real server: the exact shapes of the UDF
protocol (TradingView's "UDF" page of the Charting Library docs) and values equal to the
native candles."""

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import httpx
import pytest
from e2e_server import Server
from http_helpers import AUTH, make_client, running

pytestmark = pytest.mark.e2e

MINUTE = 60_000
RESOLUTIONS = ["1S", "1", "3", "5", "15", "30", "60", "120", "240", "360", "480", "720", "1D"]


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("udf"), SYMBOLS="PEPE,DOGE") as server:
        yield server


@pytest.fixture(scope="module")
def client(srv: Server) -> Iterator[httpx.Client]:
    with make_client(srv) as http:
        t = time.time_ns() // 1_000_000
        base = t - t % MINUTE - 3 * MINUTE
        trades = [
            {
                "id": f"u{i}",
                "symbol": "DOGE",
                "price": f"0.1{i % 5}",
                "amount": "3.25",
                "side": "Buy",
                "timestamp": base + i * 7_000,
            }
            for i in range(25)
        ]
        assert http.post("/internal/trades", json=trades, headers=AUTH).status_code == 200
        yield http


def decoded(response: httpx.Response, status: int = 200) -> Any:
    assert response.status_code == status, response.text
    return json.loads(response.text, parse_float=Decimal)


def test_config_shape(client: httpx.Client) -> None:
    config = decoded(client.get("/udf/config"))
    assert config["supported_resolutions"] == RESOLUTIONS
    for key in (
        "supports_search",
        "supports_group_request",
        "supports_marks",
        "supports_timescale_marks",
        "supports_time",
    ):
        assert isinstance(config[key], bool)
    assert config["supports_search"] is True
    assert config["supports_group_request"] is False
    assert all(set(e) == {"value", "name", "desc"} for e in config["exchanges"])
    assert all(set(t) == {"name", "value"} for t in config["symbols_types"])


def test_symbol_info_shape(client: httpx.Client) -> None:
    info = decoded(client.get("/udf/symbols", params={"symbol": "PEPE"}))
    assert info["name"] == info["ticker"] == "PEPE"
    assert info["pricescale"] == 10**12
    assert info["minmov"] == 1
    assert info["session"] == "24x7"
    assert info["timezone"] == "Etc/UTC"
    assert info["has_intraday"] is True
    assert info["has_seconds"] is True
    assert info["supported_resolutions"] == RESOLUTIONS
    assert info["type"] == "crypto"
    assert (
        decoded(client.get("/udf/symbols", params={"symbol": "memetrade:DOGE"}))["pricescale"]
        == 10**6
    )
    error = decoded(client.get("/udf/symbols", params={"symbol": "NOPE"}), 404)
    assert error["s"] == "error"
    assert error["errmsg"]


def test_search_shape(client: httpx.Client) -> None:
    found = decoded(client.get("/udf/search", params={"query": "og", "limit": 5}))
    assert found == [
        {
            "symbol": "DOGE",
            "full_name": "memetrade:DOGE",
            "description": "DOGE/USDT",
            "exchange": "memetrade",
            "ticker": "DOGE",
            "type": "crypto",
        }
    ]
    assert decoded(client.get("/udf/search", params={"query": "", "type": "stock"})) == []


def test_time_is_plain_unix_seconds(client: httpx.Client) -> None:
    response = client.get("/udf/time")
    assert response.status_code == 200
    assert abs(int(response.text) - time.time()) < 5


def test_history_bars_equal_native_candles(client: httpx.Client) -> None:
    candles = decoded(client.get("/api/v1/klines/DOGE", params={"interval": "1m", "limit": 4}))[
        "data"
    ]
    start, stop = candles[0]["timestamp"] // 1000, candles[-1]["timestamp"] // 1000 + 60
    bars = decoded(
        client.get(
            "/udf/history",
            params={"symbol": "DOGE", "resolution": "1", "from": start, "to": stop},
        )
    )
    assert set(bars) == {"s", "t", "o", "h", "l", "c", "v"}
    assert bars["s"] == "ok"
    assert bars["t"] == [c["timestamp"] // 1000 for c in candles]
    for key, field in (("o", "open"), ("h", "high"), ("l", "low"), ("c", "close"), ("v", "volume")):
        assert bars[key] == [c[field] for c in candles]
    # countback: the last bars before "to" (exclusive), "from" ignored.
    back = decoded(
        client.get(
            "/udf/history",
            params={"symbol": "DOGE", "resolution": "1", "from": stop, "to": stop, "countback": 2},
        )
    )
    assert back["t"] == bars["t"][-2:]
    # A derived resolution: 3 minutes merged.
    three = decoded(
        client.get(
            "/udf/history",
            params={"symbol": "DOGE", "resolution": "3", "to": stop + 180, "countback": 5},
        )
    )
    assert three["s"] == "ok"
    assert all(t % 180 == 0 for t in three["t"])
    assert sum(three["v"]) == Decimal("3.25") * 25


def test_history_no_data_has_next_time(client: httpx.Client) -> None:
    now = int(time.time())
    later = decoded(
        client.get(
            "/udf/history",
            params={"symbol": "DOGE", "resolution": "1", "from": now + 3600, "to": now + 7200},
        )
    )
    latest = decoded(client.get("/api/v1/klines/DOGE", params={"interval": "1m", "limit": 1}))
    assert later == {"s": "no_data", "nextTime": latest["data"][0]["timestamp"] // 1000}
    # Before the first trade there is no bar at all, so no nextTime either.
    before = decoded(
        client.get(
            "/udf/history", params={"symbol": "PEPE", "resolution": "1", "from": 100, "to": 200}
        )
    )
    assert before == {"s": "no_data"}


def test_history_errors(client: httpx.Client) -> None:
    bad = decoded(
        client.get(
            "/udf/history", params={"symbol": "DOGE", "resolution": "7", "from": 1, "to": 2}
        ),
        400,
    )
    assert bad["s"] == "error"
    assert "resolution" in bad["errmsg"]
    assert (
        decoded(client.get("/udf/history", params={"symbol": "DOGE", "resolution": "1"}), 400)["s"]
        == "error"
    )
    assert (
        decoded(
            client.get(
                "/udf/history", params={"symbol": "NOPE", "resolution": "1", "from": 1, "to": 2}
            ),
            404,
        )["s"]
        == "error"
    )
