"""The Binance-compatible WebSocket streams against a real server, with a real client."""

import json
import time
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import anyio
import httpx
import pytest
from e2e_server import TOKEN, Server
from http_helpers import running
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# A symbol per test, so one test's trades never reach another's streams.
SYMBOLS = "PEPE,DOGE,TRD,KLN,CMB,CTL,LIM,NAT"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("bnws"), SYMBOLS=SYMBOLS) as server:
        yield server


def now_ms() -> int:
    return time.time_ns() // 1_000_000


async def ingest(
    srv: Server, symbol: str, ids: list[str], price: str = "1.5", side: str = "Sell"
) -> list[dict[str, Any]]:
    """Post one trade per id, stamped now; return them."""
    trades = [
        {
            "id": i,
            "symbol": symbol,
            "price": price,
            "amount": "2",
            "side": side,
            "timestamp": now_ms(),
        }
        for i in ids
    ]
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as http:
        response = await http.post("/internal/trades", json=trades, headers=AUTH)
    assert response.status_code == 200, response.text
    return trades


async def get(srv: Server, path: str, **params: Any) -> Any:
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as http:
        response = await http.get(path, params=params)
    assert response.status_code == 200, response.text
    return json.loads(response.text, parse_float=Decimal)


async def until_closed(ws: ClientConnection) -> None:
    """Read until the server closes the connection (within 5 s)."""
    with anyio.fail_after(5):
        try:
            while True:
                await ws.recv()
        except ConnectionClosed:
            return


async def recv(ws: ClientConnection, within: float = 5.0) -> Any:
    with anyio.fail_after(within):
        return json.loads(await ws.recv(), parse_float=Decimal)


async def recv_reply(ws: ClientConnection) -> Any:
    """The next reply to a control message (replies carry ``id``), skipping the stream events
    (raw or combined) that subscriptions may push in between."""
    while "id" not in (message := await recv(ws)):
        pass
    return message


async def test_raw_trade_stream_carries_the_rest_trade_ids(srv: Server) -> None:
    async with connect(f"{srv.ws_url}/ws/trdusdt@trade") as ws:
        await ingest(srv, "TRD", ["a", "b"])
        events = [await recv(ws), await recv(ws)]
    assert [e["e"] for e in events] == ["trade", "trade"]
    assert all(e["s"] == "TRDUSDT" and e["m"] is True for e in events)
    rest = await get(srv, "/api/v3/trades", symbol="TRDUSDT")
    assert [e["t"] for e in events] == [r["id"] for r in rest] == [1, 2]
    assert [(e["p"], e["q"], e["T"]) for e in events] == [
        (r["price"], r["qty"], r["time"]) for r in rest
    ]


async def test_kline_stream_conflates_to_a_push_a_second_and_matches_rest(srv: Server) -> None:
    async with connect(f"{srv.ws_url}/ws/klnusdt@kline_1m") as ws:
        started = time.monotonic()
        sent = []
        for n in range(12):  # a trade every 0.25 s for 3 s, takers buying one in three
            side = "Buy" if n % 3 == 0 else "Sell"
            sent += await ingest(srv, "KLN", [f"k{n}"], price=f"1.{n + 1}", side=side)
            await anyio.sleep(0.25)
        events = []
        with anyio.move_on_after(1.5):
            while True:
                events.append(await recv(ws))
        elapsed = time.monotonic() - started
    # At most a push a second (two when a minute boundary closes one window, opens one).
    assert 2 <= len(events) <= elapsed + 2, (len(events), elapsed)
    last = events[-1]
    assert last["e"] == "kline"
    k = last["k"]
    assert (k["s"], k["i"], k["x"]) == ("KLNUSDT", "1m", False) or k["x"] is True
    rows = await get(srv, "/api/v3/klines", symbol="KLNUSDT", interval="1m")
    row = next(r for r in rows if r[0] == k["t"])
    assert [k["o"], k["h"], k["l"], k["c"], k["v"], k["T"], k["q"], k["n"]] == [
        row[1],
        row[2],
        row[3],
        row[4],
        row[5],
        row[6],
        row[7],
        row[8],
    ]
    # Taker buy volumes: the buy trades of the window, as in the REST row.
    buys = [t for t in sent if t["side"] == "Buy" and k["t"] <= t["timestamp"] <= k["T"]]
    assert Decimal(k["V"]) == sum(Decimal(t["amount"]) for t in buys)
    assert Decimal(k["Q"]) == sum(Decimal(t["price"]) * Decimal(t["amount"]) for t in buys)
    assert [k["V"], k["Q"]] == [row[9], row[10]]
    assert k["B"] == "0"


async def test_combined_streams_wrap_events_with_their_stream(srv: Server) -> None:
    url = f"{srv.ws_url}/stream?streams=cmbusdt@trade/cmbusdt@miniTicker/cmbusdt@kline_4h"
    async with connect(url) as ws:
        await ingest(srv, "CMB", ["c1"])
        seen: dict[str, Any] = {}
        with anyio.fail_after(5):
            while len(seen) < 3:
                message = await recv(ws)
                assert set(message) == {"stream", "data"}
                seen[message["stream"]] = message["data"]
    assert seen["cmbusdt@trade"]["e"] == "trade"
    mini = seen["cmbusdt@miniTicker"]
    assert mini["e"] == "24hrMiniTicker"
    assert mini["c"] == "1.50000000"
    assert seen["cmbusdt@kline_4h"]["k"]["i"] == "4h"
    assert seen["cmbusdt@kline_4h"]["k"]["n"] == 1


async def test_live_subscribe_unsubscribe_and_list(srv: Server) -> None:
    async with connect(f"{srv.ws_url}/ws/ctlusdt@trade") as ws:
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 1}))
        assert await recv(ws) == {"result": ["ctlusdt@trade"], "id": 1}
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["ctlusdt@ticker"], "id": 2}))
        assert await recv(ws) == {"result": None, "id": 2}
        await ws.send(json.dumps({"method": "UNSUBSCRIBE", "params": ["ctlusdt@trade"], "id": 3}))
        assert await recv(ws) == {"result": None, "id": 3}
        await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": 4}))
        assert await recv(ws) == {"result": ["ctlusdt@ticker"], "id": 4}
        await ingest(srv, "CTL", ["t1"])
        ticker = await recv(ws)  # raw mode: the event itself; no trade event any more
        assert ticker["e"] == "24hrTicker"
        assert ticker["s"] == "CTLUSDT"
        assert ticker["n"] == 1
        assert ticker["F"] == ticker["L"] == 1
        await anyio.sleep(1.1)  # at most 5 control messages a second
        # The ticker subscription may push another event (once a second) before each reply.
        await ws.send(json.dumps({"method": "SET_PROPERTY", "params": ["combined", True], "id": 5}))
        assert await recv_reply(ws) == {"result": None, "id": 5}
        await ws.send(json.dumps({"method": "GET_PROPERTY", "params": ["combined"], "id": 6}))
        assert await recv_reply(ws) == {"result": True, "id": 6}


async def test_control_errors_are_binance_errors(srv: Server) -> None:
    async with connect(f"{srv.ws_url}/ws/ctlusdt@trade") as ws:
        await ws.send("{not json")
        assert (await recv(ws))["error"]["code"] == 3
        await ws.send(json.dumps({"method": "FLY", "id": 7}))
        reply = await recv(ws)
        assert reply["id"] == 7
        assert reply["error"]["code"] == 2
        assert "unknown variant" in reply["error"]["msg"]
        await ws.send(json.dumps({"method": "SUBSCRIBE", "params": ["nope@trade"], "id": 8}))
        reply = await recv(ws)
        assert reply["id"] == 8
        assert reply["error"]["code"] == 2
        assert "nope@trade" in reply["error"]["msg"]
        await ws.send(json.dumps({"method": "GET_PROPERTY", "params": ["colour"], "id": 9}))
        assert await recv(ws) == {"error": {"code": 0, "msg": "Unknown property"}, "id": 9}


async def test_too_many_messages_per_second_closes_with_1008(srv: Server) -> None:
    async with connect(f"{srv.ws_url}/ws/limusdt@trade") as ws:
        for n in range(7):
            await ws.send(json.dumps({"method": "LIST_SUBSCRIPTIONS", "id": n}))
        await until_closed(ws)
        assert ws.close_code == 1008
        assert "at most 5 per second" in (ws.close_reason or "")


async def test_unknown_streams_are_refused_and_client_pings_answered(srv: Server) -> None:
    async with connect(f"{srv.ws_url}/ws/nopeusdt@trade") as ws:
        await until_closed(ws)
        assert ws.close_code == 4404
    async with connect(f"{srv.ws_url}/ws/limusdt@kline_1m") as ws:
        with anyio.fail_after(5):
            await (await ws.ping())


async def test_native_routes_are_unchanged_beside_binance_ones(srv: Server) -> None:
    async with (
        connect(f"{srv.ws_url}/ws/nat") as native,
        connect(f"{srv.ws_url}/ws/natusdt@trade") as binance,
    ):
        await ingest(srv, "NAT", ["n1"])
        mine, theirs = await recv(native), await recv(binance)
    assert (mine["id"], mine["symbol"], mine["price"]) == ("n1", "NAT", Decimal("1.5"))
    assert (theirs["e"], theirs["t"]) == ("trade", 1)
