"""``GET /api/v1/indicators`` and ``/ws/klines?indicators=`` against a real server: values
equal to a naive computation over the served candles, alignment with klines, the documented
shapes, late trades corrected and republished, and clear errors for bad input.
"""

import json
import time
from collections.abc import Iterator
from decimal import ROUND_HALF_EVEN, Decimal
from itertools import pairwise
from typing import Any

import anyio
import httpx
import pytest
from e2e_server import Server
from http_helpers import AUTH, assert_error, make_client, running
from websockets.asyncio.client import ClientConnection, connect

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

SYMBOLS = "PEPE,IND:0.01:0.1,ISHAPE:0.01:0.1,ILATE:0.01:0.1,IWS:0.01:0.1"
MINUTE = 60_000
SIX = Decimal("0.000001")  # 2 tick decimals + 4


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("ind"), SYMBOLS=SYMBOLS, MAX_TRADE_AGE="3600") as srv:
        with make_client(srv) as client:
            start = now_ms() // MINUTE * MINUTE - 40 * MINUTE
            for symbol in ("IND", "ISHAPE", "ILATE", "IWS"):
                ingest(client, market(symbol, 38, start))
        yield srv


@pytest.fixture
def http(shared: Server) -> Iterator[httpx.Client]:
    with make_client(shared) as client:
        yield client


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def market(symbol: str, minutes: int, start: int) -> list[dict[str, Any]]:
    """A zig-zag market with a trade in most minutes (every fifth minute is empty)."""
    out = []
    for m in range(minutes):
        if m % 5 == 4:
            continue
        price = Decimal("20.00") + Decimal("0.37") * (m % 7) - Decimal("0.11") * m
        out.append({"id": f"{symbol}-{m}", "symbol": symbol, "price": str(price),
                    "amount": "0.5", "side": "Sell",
                    "timestamp": start + m * MINUTE + 500})  # fmt: skip
    return out


def ingest(client: httpx.Client, trades: list[dict[str, Any]]) -> None:
    response = client.post("/internal/trades", json=trades, headers=AUTH)
    assert response.status_code == 200, response.text


def body(response: httpx.Response) -> Any:
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


def consistent(http: httpx.Client, params: dict[str, Any], symbol: str, warm: int) -> tuple:
    """Indicator points and the klines they are aligned with (plus ``warm`` before), read
    within one minute (retried if a minute boundary slipped in between)."""
    for _ in range(5):
        points = body(http.get(f"/api/v1/indicators/{symbol}", params=params))
        limit = params.get("limit", 100)
        klines = body(http.get(f"/api/v1/klines/{symbol}", params={"limit": limit + warm}))
        if klines["data"][-1]["timestamp"] == points["data"][-1]["timestamp"]:
            return points, klines["data"]
    raise AssertionError("the minute kept changing")


def test_sma_points_are_aligned_with_the_klines_and_equal_a_naive_average(
    http: httpx.Client,
) -> None:
    points, candles = consistent(http, {"name": "sma", "period": 5, "limit": 12}, "IND", 4)
    assert (points["symbol"], points["interval"], points["name"]) == ("IND", "1m", "sma")
    assert points["params"] == {"period": 5}
    closes = [c["close"] for c in candles]
    assert [p["timestamp"] for p in points["data"]] == [c["timestamp"] for c in candles[4:]]
    for i, point in enumerate(points["data"], start=4):
        expected = (sum(closes[i - 4 : i + 1], Decimal(0)) / 5).quantize(SIX, ROUND_HALF_EVEN)
        assert point["value"] == expected
    assert points["data"][-1]["provisional"] is True
    assert all("provisional" not in p for p in points["data"][:-1])


def test_ema_rsi_and_vwap_equal_naive_computations_over_the_served_candles(
    http: httpx.Client,
) -> None:
    # EMA/RSI over the whole history served (all 40 minutes: the warm-up covers it).
    ema, candles = consistent(http, {"name": "ema", "period": 3, "limit": 10}, "IND", 60)
    closes = [c["close"] for c in candles]
    value = sum(closes[:3], Decimal(0)) / 3
    for close in closes[3:]:
        value = (2 * close + 2 * value) / 4
    assert ema["data"][-1]["value"] == value.quantize(SIX, ROUND_HALF_EVEN)

    rsi, candles = consistent(http, {"name": "rsi", "period": 14, "limit": 5}, "IND", 60)
    closes = [c["close"] for c in candles]
    changes = [b - a for a, b in pairwise(closes)]
    gain = sum((max(c, 0) for c in changes[:14]), Decimal(0)) / 14
    loss = sum((max(-c, 0) for c in changes[:14]), Decimal(0)) / 14
    for c in changes[14:]:
        gain, loss = (13 * gain + max(c, 0)) / 14, (13 * loss + max(-c, 0)) / 14
    expected = 100 * gain / (gain + loss)
    assert rsi["data"][-1]["value"] == expected.quantize(Decimal("0.01"), ROUND_HALF_EVEN)

    # Over the UTC day: the minutes before the first point count too (the session's
    # totals are read from coarser candles).
    vwap, candles = consistent(http, {"name": "vwap", "limit": 10}, "IND", 50)
    day = candles[-1]["timestamp"] - candles[-1]["timestamp"] % 86_400_000
    session = [c for c in candles if c["timestamp"] >= day]
    if len(session) == len(candles):  # not across midnight UTC
        quote = sum((c["quote_volume"] for c in candles), Decimal(0))
        volume = sum((c["volume"] for c in candles), Decimal(0))
        assert vwap["data"][-1]["value"] == (quote / volume).quantize(SIX, ROUND_HALF_EVEN)
    assert vwap["params"] == {}


@pytest.mark.parametrize(
    ("params", "lines", "echo"),
    [
        ({"name": "bollinger"}, {"upper", "middle", "lower"}, {"period": 20, "k": 2}),
        ({"name": "bollinger", "period": 10, "k": "2.50"}, {"upper", "middle", "lower"},
         {"period": 10, "k": Decimal("2.5")}),
        ({"name": "macd", "fast": 3, "slow": 6, "signal": 4}, {"macd", "signal", "histogram"},
         {"fast": 3, "slow": 6, "signal": 4}),
        ({"name": "ema"}, {"value"}, {"period": 20}),
        ({"name": "RSI", "period": 2}, {"value"}, {"period": 2}),
    ],
)  # fmt: skip
def test_each_indicator_answers_its_documented_shape(
    http: httpx.Client, params: dict[str, Any], lines: set[str], echo: dict[str, Any]
) -> None:
    got = body(http.get("/api/v1/indicators/ishape", params={**params, "limit": 30}))
    assert set(got) == {"symbol", "interval", "name", "params", "data"}
    assert got["name"] == params["name"].lower()
    assert got["params"] == echo
    assert len(got["data"]) == 30
    for point in got["data"]:
        assert set(point) - {"provisional"} == {"timestamp"} | lines
    last = got["data"][-1]
    assert all(last[line] is not None for line in lines)
    if "upper" in lines:
        assert last["upper"] >= last["middle"] >= last["lower"]
    if "histogram" in lines:
        assert (
            last["histogram"] == last["macd"] - last["signal"]
            or abs(last["histogram"] - (last["macd"] - last["signal"])) <= SIX
        )


def test_from_and_to_select_the_same_candles_as_klines(http: httpx.Client) -> None:
    candles = body(http.get("/api/v1/klines/IND", params={"limit": 30}))["data"]
    start, end = candles[3]["timestamp"], candles[12]["timestamp"]
    got = body(http.get("/api/v1/indicators/IND",
                        params={"name": "sma", "period": 3, "from": start, "to": end}))  # fmt: skip
    assert [p["timestamp"] for p in got["data"]] == [c["timestamp"] for c in candles[3:13]]
    assert all(p["value"] is not None for p in got["data"])  # warm-up read before `from`


@pytest.mark.parametrize(
    ("query", "status", "code"),
    [
        ("", 400, "invalid_parameter"),
        ("?name=foo", 400, "unknown_indicator"),
        ("?name=sma&period=0", 400, "invalid_parameter"),
        ("?name=sma&period=-5", 400, "invalid_parameter"),
        ("?name=sma&period=201", 400, "invalid_parameter"),
        ("?name=sma&period=1000000000000000000000", 400, "invalid_parameter"),
        ("?name=sma&period=ten", 400, "invalid_parameter"),
        ("?name=sma&perod=5", 400, "invalid_parameter"),
        ("?name=bollinger&k=-1", 400, "invalid_parameter"),
        ("?name=macd&fast=30&slow=10", 400, "invalid_parameter"),
        ("?name=sma&interval=2m", 400, "unknown_interval"),
        ("?name=sma&interval=", 400, "unknown_interval"),
        ("?name=sma&limit=0", 400, "invalid_limit"),
        ("?name=sma&limit=1001", 400, "invalid_limit"),
        ("?name=sma&from=2&to=1", 400, "invalid_range"),
        ("?name=sma&from=yesterday", 400, "invalid_time"),
    ],
)
def test_bad_indicator_requests_are_400_with_a_code(
    http: httpx.Client, query: str, status: int, code: str
) -> None:
    assert_error(http.get("/api/v1/indicators/IND" + query), status, code)


def test_unknown_symbol_is_404(http: httpx.Client) -> None:
    assert_error(http.get("/api/v1/indicators/NOPE?name=sma"), 404, "unknown_symbol")


# -- live: /ws/klines?indicators ---------------------------------------------------------------


async def recv_json(ws: ClientConnection, within: float = 5.0) -> Any:
    with anyio.fail_after(within):
        message = await ws.recv()
    return json.loads(message, parse_float=Decimal)


async def ingest_async(srv: Server, trades: list[dict[str, Any]]) -> None:
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=30) as client:
        response = await client.post("/internal/trades", json=trades, headers=AUTH)
    assert response.status_code == 200, response.text


async def get_async(srv: Server, path: str, params: dict[str, Any]) -> Any:
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=30) as client:
        return body(await client.get(path, params=params))


async def test_kline_stream_carries_the_asked_indicators_and_the_plain_one_does_not(
    shared: Server,
) -> None:
    url = shared.ws_url + "/ws/klines/IWS/1m"
    async with connect(url + "?indicators=rsi14,SMA3,bollinger5,macd3_6_4,vwap,sma3") as ws, \
            connect(url) as plain:  # fmt: skip
        first = await recv_json(ws)
        assert set(first) == {"symbol", "interval", "seq", "candle", "indicators"}
        assert set(first["indicators"]) == {"bollinger5", "macd3_6_4", "rsi14", "sma3", "vwap"}
        assert set(first["indicators"]["bollinger5"]) == {"upper", "middle", "lower"}
        assert set(first["indicators"]["macd3_6_4"]) == {"macd", "signal", "histogram"}
        assert first["candle"]["closed"] is False
        assert "indicators" not in await recv_json(plain)
        price = "19.37"
        live = {"id": "iws-live", "symbol": "IWS", "price": price, "amount": "1",
                "side": "Buy", "timestamp": now_ms()}  # fmt: skip
        await ingest_async(shared, [live])
        with anyio.fail_after(5):
            while True:
                update = await recv_json(ws)
                if update["candle"]["close"] == Decimal(price) and not update["candle"]["closed"]:
                    break
        rest = await get_async(shared, "/api/v1/indicators/IWS",
                               {"name": "sma", "period": 3, "limit": 1})  # fmt: skip
        if rest["data"][-1]["timestamp"] == update["candle"]["timestamp"]:
            assert update["indicators"]["sma3"] == rest["data"][-1]["value"]


async def test_a_late_trade_corrects_the_indicators_and_republishes_the_candles_after_it(
    shared: Server,
) -> None:
    async with connect(shared.ws_url + "/ws/klines/ILATE/1m?indicators=sma2") as ws:
        await recv_json(ws)
        before = await get_async(shared, "/api/v1/indicators/ILATE",
                                 {"name": "sma", "period": 2, "limit": 8})  # fmt: skip
        target = before["data"][-5]  # a closed minute with closed minutes after it
        late = {"id": "ilate-late", "symbol": "ILATE", "price": "99.00", "amount": "0.5",
                "side": "Buy", "timestamp": target["timestamp"] + 59_000}  # fmt: skip
        await ingest_async(shared, [late])
        seen: dict[int, Any] = {}
        with anyio.fail_after(5):
            while target["timestamp"] + MINUTE not in seen or target["timestamp"] not in seen:
                update = await recv_json(ws)
                seen[update["candle"]["timestamp"]] = update
        revised, after = seen[target["timestamp"]], seen[target["timestamp"] + MINUTE]
        assert revised["candle"]["close"] == Decimal("99.00")
        assert revised["candle"]["closed"] is True
        klines = await get_async(shared, "/api/v1/klines/ILATE", {"limit": 10})
        closes = {c["timestamp"]: c["close"] for c in klines["data"]}
        for update in (revised, after):
            t = update["candle"]["timestamp"]
            expected = ((closes[t - MINUTE] + closes[t]) / 2).quantize(SIX, ROUND_HALF_EVEN)
            assert update["indicators"]["sma2"] == expected
        now = await get_async(shared, "/api/v1/indicators/ILATE",
                              {"name": "sma", "period": 2, "from": target["timestamp"],
                               "limit": 2})  # fmt: skip
        assert [p["value"] for p in now["data"]] == [
            revised["indicators"]["sma2"],
            after["indicators"]["sma2"],
        ]
        assert now["data"][0]["value"] != target["value"]


@pytest.mark.parametrize(
    "query",
    [
        "indicators=",
        "indicators=sma0",
        "indicators=foo3",
        "indicators=" + ",".join(f"sma{i}" for i in range(1, 10)),
    ],
)
async def test_kline_stream_with_bad_indicators_is_closed_with_4400(
    shared: Server, query: str
) -> None:
    async with connect(shared.ws_url + "/ws/klines/IWS/1m?" + query) as ws:
        with anyio.fail_after(5):
            await ws.wait_closed()
    assert ws.close_code == 4400
    assert ws.close_reason
