"""``WS /ws/stream``, the native multiplexed WebSocket, against a real server."""

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
SYMBOLS = "PEPE,DOGE,SNAP,MIX,TICK,OFF"


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def srv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("mux"), SYMBOLS=SYMBOLS) as server:
        yield server


async def ingest(srv: Server, symbol: str, ids: list[str], price: str = "2.5") -> None:
    t = time.time_ns() // 1_000_000
    trades = [
        {"id": i, "symbol": symbol, "price": price, "amount": "1", "side": "Buy", "timestamp": t}
        for i in ids
    ]
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as http:
        response = await http.post("/internal/trades", json=trades, headers=AUTH)
    assert response.status_code == 200, response.text


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


async def send(ws: ClientConnection, message: dict[str, Any]) -> None:
    await ws.send(json.dumps(message))


async def test_candle_subscription_starts_with_a_snapshot_then_gapless_updates(
    srv: Server,
) -> None:
    await ingest(srv, "SNAP", ["s0"])
    async with connect(f"{srv.ws_url}/ws/stream") as ws:
        await send(ws, {"op": "subscribe", "streams": ["candles.snap.1s"], "id": 1, "snapshot": 5})
        assert await recv(ws) == {"type": "subscribed", "id": 1, "streams": ["candles.SNAP.1s"]}
        snapshot = await recv(ws)
        assert snapshot["type"] == "snapshot"
        assert snapshot["stream"] == "candles.SNAP.1s"
        assert 1 <= len(snapshot["data"]) <= 5
        seqs = [snapshot["seq"]]
        candles = {c["timestamp"]: c for c in snapshot["data"]}
        for n in range(5):
            await ingest(srv, "SNAP", [f"s{n + 1}"], price=f"2.{n + 1}")
            await anyio.sleep(0.2)
        with anyio.move_on_after(1.5):
            while True:
                message = await recv(ws)
                assert message["stream"] == "candles.SNAP.1s"
                seqs.append(message["data"]["seq"])
                candle = message["data"]["candle"]
                candles[candle["timestamp"]] = candle
    # Every update is newer than the snapshot, in order, and none is missing: the client's
    # candles equal REST's.
    assert seqs == sorted(seqs)
    assert len(set(seqs)) == len(seqs)
    assert len(seqs) > 1
    async with httpx.AsyncClient(base_url=srv.base_url) as http:
        rest = json.loads(
            (await http.get("/api/v1/klines/SNAP", params={"interval": "1s", "limit": 20})).text,
            parse_float=Decimal,
        )
    mine = [candles[t] for t in sorted(candles) if t >= rest["data"][0]["timestamp"]]
    assert sum(c["trades"] for c in mine) == 6
    for candle in mine:
        stored = next(c for c in rest["data"] if c["timestamp"] == candle["timestamp"])
        assert {k: v for k, v in candle.items() if k != "closed"} == {
            k: v for k, v in stored.items() if k != "closed"
        }


async def test_many_streams_on_one_connection_tagged_with_their_stream(srv: Server) -> None:
    async with connect(f"{srv.ws_url}/ws/stream") as ws:
        await send(
            ws,
            {
                "op": "subscribe",
                "streams": ["trades.MIX", "candles.MIX.1m", "signals.1m"],
                "snapshot": 0,
                "id": "a",
            },
        )
        ack = await recv(ws)
        assert ack == {
            "type": "subscribed",
            "id": "a",
            "streams": ["trades.MIX", "candles.MIX.1m", "signals.1m"],
        }
        await ingest(srv, "MIX", ["m1"])
        got: dict[str, Any] = {}
        with anyio.fail_after(5):
            while {"trades.MIX", "candles.MIX.1m"} - set(got):
                message = await recv(ws)
                got[message["stream"]] = message["data"]
        assert got["trades.MIX"]["id"] == "m1"
        assert got["candles.MIX.1m"]["candle"]["trades"] == 1
        await send(ws, {"op": "list", "id": 2})
        assert (await recv(ws))["streams"] == ["trades.MIX", "candles.MIX.1m", "signals.1m"]
        await send(ws, {"op": "unsubscribe", "streams": ["trades.MIX"], "id": 3})
        assert await recv(ws) == {"type": "unsubscribed", "id": 3, "streams": ["trades.MIX"]}
        await send(ws, {"op": "ping", "id": 4})
        assert await recv(ws) == {"type": "pong", "id": 4}


async def test_ticker_stream_starts_with_the_current_ticker(srv: Server) -> None:
    await ingest(srv, "TICK", ["t1"])
    async with connect(f"{srv.ws_url}/ws/stream") as ws:
        await send(ws, {"op": "subscribe", "streams": ["ticker.TICK"]})
        assert (await recv(ws))["type"] == "subscribed"
        first = await recv(ws)
        assert first["stream"] == "ticker.TICK"
        assert first["data"]["symbol"] == "TICK"
        assert first["data"]["trades"] == 1
        await ingest(srv, "TICK", ["t2"], price="3")
        # A push of the first trade's ticker may still be due: read on to the second's.
        with anyio.fail_after(3):
            while (update := await recv(ws))["data"]["trades"] < 2:
                assert update["stream"] == "ticker.TICK"
        assert update["data"]["price"] == Decimal(3)
        assert update["data"]["trades"] == 2


async def test_errors_are_clear_and_change_nothing(srv: Server) -> None:
    async with connect(f"{srv.ws_url}/ws/stream") as ws:
        await ws.send("nope")
        assert (await recv(ws))["code"] == "malformed_json"
        await send(ws, {"op": "fly", "id": 1})
        assert (await recv(ws))["code"] == "unknown_op"
        await send(ws, {"op": "subscribe", "streams": ["trades.OFF", "candles.OFF.7m"], "id": 2})
        error = await recv(ws)
        assert (error["type"], error["id"], error["code"]) == ("error", 2, "unknown_stream")
        assert "7m" in error["message"]
        await send(ws, {"op": "list", "id": 3})
        assert (await recv(ws))["streams"] == []
        await anyio.sleep(1.1)
        await send(ws, {"op": "subscribe", "streams": ["trades.OFF"], "snapshot": -1, "id": 4})
        assert (await recv(ws))["code"] == "invalid_request"


async def test_flooding_control_messages_closes_with_1008(srv: Server) -> None:
    async with connect(f"{srv.ws_url}/ws/stream") as ws:
        for n in range(60):
            await send(ws, {"op": "ping", "id": n})
        await until_closed(ws)
        assert ws.close_code == 1008
