"""The WebSocket streams against a real server process, with a real WebSocket client.

Most tests share one quiet server (no generator); each uses a symbol of its own, so what one
test ingests never reaches another's streams. Tests that need a setting of their own (the
connection cap) or load the server on purpose (the slow reader) start their own.
"""

import json
import re
import socket
import time
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import anyio
import httpx
import pytest
from e2e_server import TOKEN, Server, start_server
from http_helpers import running
from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed

from memetrade.services.market_data import CLOSE_DELAY_MS

pytestmark = [pytest.mark.e2e, pytest.mark.anyio]

AUTH = {"Authorization": f"Bearer {TOKEN}"}
# One symbol per test on the shared server (NAME alone: tick 0.00000001, lot 0.01).
SYMBOLS = "PEPE,DOGE,SHIB,FLOKI,DUPE,FANA,KSEQ,KEND,KSNAP,KBOT,KLATE,MANY"
# A 1s candle is announced closed CLOSE_DELAY_MS after it ends, so a trade's candle closes up
# to 1.25 s after the trade; wait a little longer than that.
CLOSE_WAIT_S = (1000 + CLOSE_DELAY_MS + 350) / 1000
ISO_MS = re.compile(r"^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$")


@pytest.fixture(scope="module")
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("ws"), SYMBOLS=SYMBOLS) as srv:
        yield srv


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def trade(symbol: str, trade_id: str, price: str = "1.5", amount: str = "2", **extra: Any) -> dict:
    return {
        "id": trade_id,
        "symbol": symbol,
        "price": price,
        "amount": amount,
        "side": "Buy",
        "timestamp": now_ms(),
    } | extra


async def ingest(srv: Server, trades: list[dict]) -> dict:
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=30) as http:
        response = await http.post("/internal/trades", json=trades, headers=AUTH)
    assert response.status_code == 200, response.text
    return dict(response.json())


async def rest_klines(srv: Server, symbol: str, interval: str, limit: int = 100) -> dict:
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as http:
        response = await http.get(
            f"/api/v1/klines/{symbol}", params={"interval": interval, "limit": limit}
        )
    assert response.status_code == 200, response.text
    return dict(json.loads(response.text, parse_float=Decimal))


async def ws_clients(srv: Server) -> int:
    async with httpx.AsyncClient(base_url=srv.base_url, timeout=10) as http:
        text = (await http.get("/metrics")).text
    match = re.search(r"^memetrade_websocket_clients (\S+)$", text, re.MULTILINE)
    assert match, text
    return int(float(match.group(1)))


async def recv_text(ws: ClientConnection, within: float = 5.0) -> str:
    with anyio.fail_after(within):
        message = await ws.recv()
    assert isinstance(message, str)
    return message


async def recv_json(ws: ClientConnection, within: float = 5.0) -> dict:
    return dict(json.loads(await recv_text(ws, within), parse_float=Decimal))


async def nothing_within(ws: ClientConnection, seconds: float) -> bool:
    with anyio.move_on_after(seconds):
        await ws.recv()
        return False
    return True


async def read_to_close(ws: ClientConnection) -> int:
    """Read until the server closes the connection; return how many messages came first."""
    count = 0
    with anyio.fail_after(15):
        try:
            while True:
                await ws.recv()
                count += 1
        except ConnectionClosed:
            return count


async def close_of(ws: ClientConnection) -> tuple[int | None, str | None]:
    """Read until the server closes the connection; return its close code and reason."""
    await read_to_close(ws)
    return ws.close_code, ws.close_reason


async def until_clients(srv: Server, count: int) -> None:
    """Wait until the server counts ``count`` WebSocket connections."""
    with anyio.fail_after(5):
        while (now := await ws_clients(srv)) != count:
            assert now > count, now
            await anyio.sleep(0.02)


# -- live trades ---------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/ws/PEPE", "/ws/transactions/PEPE"])
async def test_trade_stream_sends_an_ingested_trade_in_the_seed_format_with_exact_numbers(
    shared: Server, path: str
) -> None:
    async with connect(shared.ws_url + path) as ws:
        sent = trade("PEPE", f"exact-{path}", price="0.000001234", amount="1000", side="Sell")
        assert await ingest(shared, [sent]) == {"accepted": 1, "duplicates": 0}
        text = await recv_text(ws)
    assert '"price":0.000001234,' in text  # the exact number text, never 1.234e-06
    assert '"amount":1000,' in text
    message = json.loads(text, parse_float=Decimal)
    assert set(message) == {"id", "symbol", "price", "amount", "side", "timestamp"}
    assert message["id"] == sent["id"]
    assert message["symbol"] == "PEPE"
    assert message["price"] == Decimal("0.000001234")
    assert message["amount"] == 1000
    assert message["side"] == "Sell"
    assert ISO_MS.match(message["timestamp"]), message["timestamp"]
    ms = sent["timestamp"] % 1000
    assert message["timestamp"].endswith(f".{ms:03d}Z")


async def test_a_duplicate_trade_is_not_streamed_again(shared: Server) -> None:
    async with connect(shared.ws_url + "/ws/DUPE") as ws:
        first = trade("DUPE", "dupe-1")
        assert await ingest(shared, [first]) == {"accepted": 1, "duplicates": 0}
        assert (await recv_json(ws))["id"] == "dupe-1"
        assert await ingest(shared, [first]) == {"accepted": 0, "duplicates": 1}
        assert await ingest(shared, [first, trade("DUPE", "dupe-2")]) == {
            "accepted": 1,
            "duplicates": 1,
        }
        assert (await recv_json(ws))["id"] == "dupe-2"
        assert await nothing_within(ws, 0.3)


async def test_every_client_of_a_stream_gets_the_trade_and_other_symbols_clients_do_not(
    shared: Server,
) -> None:
    async with (
        connect(shared.ws_url + "/ws/FANA") as seed000,
        connect(shared.ws_url + "/ws/transactions/FANA") as seed001,
        connect(shared.ws_url + "/ws/transactions/DOGE") as other,
    ):
        await ingest(shared, [trade("FANA", "fan-1")])
        texts = [await recv_text(seed000), await recv_text(seed001)]
        assert texts[0] == texts[1]
        assert json.loads(texts[0])["id"] == "fan-1"
        await ingest(shared, [trade("DOGE", "fan-doge-1")])
        # The DOGE client's first message is the DOGE trade: it never saw the FANA one.
        assert (await recv_json(other))["id"] == "fan-doge-1"


async def test_two_hundred_clients_on_one_stream_all_receive_the_same_trade(
    shared: Server,
) -> None:
    clients: list[ClientConnection] = []
    try:
        async with anyio.create_task_group() as tg:
            for _ in range(200):
                tg.start_soon(_open_into, shared.ws_url + "/ws/MANY", clients)
        assert len(clients) == 200
        await ingest(shared, [trade("MANY", "many-1", price="3.25")])
        received: list[str] = []

        async def read(ws: ClientConnection) -> None:
            received.append(await recv_text(ws, within=10))

        async with anyio.create_task_group() as tg:
            for ws in clients:
                tg.start_soon(read, ws)
        assert len(received) == 200
        assert len(set(received)) == 1
        assert json.loads(received[0])["id"] == "many-1"
    finally:
        async with anyio.create_task_group() as tg:
            for ws in clients:
                tg.start_soon(ws.close)


async def _open_into(url: str, into: list[ClientConnection]) -> None:
    into.append(await connect(url, open_timeout=10))


# -- live candles --------------------------------------------------------------------------


async def test_kline_stream_starts_with_the_open_candle_and_numbers_every_update_by_one(
    shared: Server,
) -> None:
    await ingest(shared, [trade("KSEQ", "seq-0")])
    snapshot = await rest_klines(shared, "KSEQ", "1m", limit=1)
    async with connect(shared.ws_url + "/ws/klines/KSEQ/1m") as ws:
        first = await recv_json(ws)
        assert set(first) == {"symbol", "interval", "seq", "candle"}
        assert (first["symbol"], first["interval"]) == ("KSEQ", "1m")
        assert set(first["candle"]) == {
            "timestamp", "open", "high", "low", "close", "volume", "quote_volume", "trades",
            "close_time", "closed", "buy_volume", "buy_quote_volume",
        }  # fmt: skip
        assert first["candle"]["closed"] is False
        assert first["seq"] >= snapshot["seq"]
        if first["seq"] == snapshot["seq"]:
            assert first["candle"] == snapshot["data"][-1]
        counts: dict[int, int] = {snapshot["data"][-1]["timestamp"]: 1}
        seq = first["seq"]
        for i in range(1, 16):
            sent = trade("KSEQ", f"seq-{i}", price=str(Decimal("1.5") + i))
            await ingest(shared, [sent])
            minute = sent["timestamp"] - sent["timestamp"] % 60_000
            counts[minute] = counts.get(minute, 0) + 1
            while True:  # a minute boundary may slip in a close and a new open candle
                update = await recv_json(ws)
                assert update["seq"] == seq + 1, (update, seq)
                seq = update["seq"]
                candle = update["candle"]
                if candle["timestamp"] == minute and candle["trades"] == counts[minute]:
                    break
            assert candle["close"] == Decimal("1.5") + i
            assert candle["closed"] is False
            assert candle["close_time"] == minute + 59_999


async def test_kline_candle_gets_a_final_closed_update_when_its_interval_ends_without_trades(
    shared: Server,
) -> None:
    sent = trade("KEND", "end-1", price="2.5")
    await ingest(shared, [sent])
    second = sent["timestamp"] - sent["timestamp"] % 1000
    messages = []
    async with connect(shared.ws_url + "/ws/klines/KEND/1s") as ws:
        with anyio.move_on_after(2.6):
            while True:
                messages.append(await recv_json(ws))
    seqs = [m["seq"] for m in messages]
    assert seqs == list(range(seqs[0], seqs[0] + len(seqs))), seqs
    finals = [m["candle"] for m in messages if m["candle"]["closed"]]
    traded = [c for c in finals if c["timestamp"] == second]
    assert traded, messages
    assert traded[0]["trades"] == 1
    # Later seconds had no trade, yet each got its final update: flat at the close, no volume.
    empty = [c for c in finals if c["timestamp"] > second]
    assert empty, messages
    for candle in empty:
        assert candle["trades"] == 0
        assert candle["volume"] == 0
        assert (
            candle["open"] == candle["high"] == candle["low"] == candle["close"] == Decimal("2.5")
        )


async def test_rest_snapshot_plus_stream_updates_after_its_seq_equal_a_later_rest_read(
    shared: Server,
) -> None:
    async with connect(shared.ws_url + "/ws/klines/KSNAP/1s") as ws:
        await ingest(shared, [trade("KSNAP", "snap-0", price="1.00")])
        await ingest(shared, [trade("KSNAP", "snap-1", price="1.20", amount="0.5")])
        snapshot = await rest_klines(shared, "KSNAP", "1s")
        for i in range(2, 8):  # spread over more than one second: candles close in between
            await anyio.sleep(0.2)
            await ingest(shared, [trade("KSNAP", f"snap-{i}", price=f"1.{i}0", amount="0.3")])
        later = await rest_klines(shared, "KSNAP", "1s")
        view = {c["timestamp"]: c for c in snapshot["data"]}
        while True:
            update = await recv_json(ws)
            if update["seq"] > later["seq"]:
                break
            if update["seq"] > snapshot["seq"]:
                view[update["candle"]["timestamp"]] = update["candle"]
            if update["seq"] == later["seq"]:
                break
    assert later["seq"] > snapshot["seq"]
    assert view == {c["timestamp"]: c for c in later["data"]}
    assert sum(c["trades"] for c in view.values()) == 8


async def test_closed_only_stream_sends_nothing_but_closed_candles(shared: Server) -> None:
    messages = []
    async with connect(shared.ws_url + "/ws/klines/KBOT/1s?closed_only=1") as ws:
        await ingest(shared, [trade("KBOT", "bot-1")])
        with anyio.move_on_after(CLOSE_WAIT_S):
            while True:
                messages.append(await recv_json(ws))
        await ingest(shared, [trade("KBOT", "bot-2", price="1.75")])
        with anyio.move_on_after(CLOSE_WAIT_S):
            while True:
                messages.append(await recv_json(ws))
    assert len(messages) >= 2, messages
    assert all(m["candle"]["closed"] is True for m in messages), messages
    seqs = [m["seq"] for m in messages]
    assert seqs == sorted(set(seqs)), seqs
    assert sum(m["candle"]["trades"] for m in messages) == 2


async def test_a_late_trade_republishes_the_revised_closed_candle(shared: Server) -> None:
    first = trade("KLATE", "late-1", price="2.00", amount="1")
    second = first["timestamp"] - first["timestamp"] % 1000
    async with (
        connect(shared.ws_url + "/ws/klines/KLATE/1s") as live,
        connect(shared.ws_url + "/ws/klines/KLATE/1s?closed_only=1") as bots,
    ):
        await ingest(shared, [first])
        while (
            not ((m := await recv_json(live))["candle"]["closed"])
            or m["candle"]["timestamp"] != second
        ):
            pass
        assert m["candle"]["trades"] == 1
        # Its second has ended; a trade stamped inside it is late but within MAX_TRADE_AGE.
        late = trade("KLATE", "late-2", price="2.50", amount="3", timestamp=second + 999)
        assert await ingest(shared, [late]) == {"accepted": 1, "duplicates": 0}
        for ws in (live, bots):
            while True:
                update = await recv_json(ws)
                if update["candle"]["timestamp"] == second and update["candle"]["trades"] == 2:
                    break
            candle = update["candle"]
            assert candle["closed"] is True
            assert (candle["open"], candle["high"], candle["low"], candle["close"]) == (
                Decimal("2.00"),
                Decimal("2.50"),
                Decimal("2.00"),
                Decimal("2.50"),
            )
            assert candle["volume"] == 4
            assert candle["quote_volume"] == Decimal("9.5")
    rest = await rest_klines(shared, "KLATE", "1s")
    assert next(c for c in rest["data"] if c["timestamp"] == second) == candle


# -- refusals and limits ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "code", "named"),
    [
        ("/ws/NOPE", 4404, "NOPE"),
        ("/ws/transactions/NOPE", 4404, "NOPE"),
        ("/ws/klines/NOPE/1m", 4404, "NOPE"),
        ("/ws/klines/PEPE/7m", 4404, "7m"),
        ("/ws/klines/PEPE/1m?closed_only=maybe", 4400, "closed_only"),
    ],
)
async def test_a_bad_stream_is_closed_with_a_code_and_a_reason_naming_the_problem(
    shared: Server, path: str, code: int, named: str
) -> None:
    async with connect(shared.ws_url + path) as ws:
        close_code, reason = await close_of(ws)
    assert close_code == code
    assert reason
    assert named in reason


async def test_max_connections_refuses_the_one_too_many_and_frees_the_place_on_close(
    tmp_path: Path,
) -> None:
    srv = start_server(tmp_path, MAX_CONNECTIONS="3")
    try:
        url = srv.ws_url + "/ws/transactions/PEPE"
        first, second, third = [await connect(url) for _ in range(3)]
        async with connect(url) as fourth:
            close_code, reason = await close_of(fourth)
        assert close_code == 1013
        assert reason
        assert "3" in reason
        await first.close()
        await until_clients(srv, 2)
        async with connect(url) as fifth:
            await ingest(srv, [trade("PEPE", "cap-1", price="0.000001")])
            for ws in (second, third, fifth):
                assert (await recv_json(ws))["id"] == "cap-1"
        await second.close()
        await third.close()
    finally:
        srv.stop()


async def test_a_client_that_stops_reading_is_cut_off_with_4008_while_a_fast_one_gets_all(
    tmp_path: Path,
) -> None:
    srv = start_server(tmp_path, SYMBOLS="SLOW")
    try:
        port = int(srv.base_url.rsplit(":", 1)[1])
        # A tiny receive buffer and no compression, so the socket buffers fill quickly and
        # the server sees that this client does not keep up.
        sock = socket.socket()
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        sock.connect(("127.0.0.1", port))
        url = srv.ws_url + "/ws/SLOW"
        slow = await connect(url, sock=sock, max_queue=1, compression=None)
        fast = await connect(url, compression=None)
        received: list[str] = []
        sent: list[str] = []
        all_received = anyio.Event()

        async def read_fast() -> None:
            async for message in fast:
                assert isinstance(message, str)
                received.append(json.loads(message)["id"])
                if len(received) == len(sent) and await_all:
                    all_received.set()

        await_all = False
        async with anyio.create_task_group() as tg:
            tg.start_soon(read_fast)
            # Until the server cuts the slow client off; what its socket buffers absorb first
            # depends on the kernel, so there is no fixed count.
            while await ws_clients(srv) == 2:
                assert len(sent) < 300_000, "the slow client was never cut off"
                batch = [trade("SLOW", f"s{len(sent) + i}") for i in range(2000)]
                await ingest(srv, batch)
                sent.extend(t["id"] for t in batch)
            assert await ws_clients(srv) == 1
            await_all = True
            if len(received) == len(sent):
                all_received.set()
            with anyio.fail_after(20):
                await all_received.wait()
            await fast.close()
        assert received == sent  # every trade, in order, none lost to the slow neighbour
        # The slow client, once it reads again, finds what was buffered, then the reason.
        late = await read_to_close(slow)
        assert late < len(sent)
        assert slow.close_code == 4008
        assert "too slow" in (slow.close_reason or "")
        # The server is healthy and serves new clients.
        async with connect(url) as again:
            await ingest(srv, [trade("SLOW", "after")])
            assert (await recv_json(again))["id"] == "after"
        assert srv.process.poll() is None
    finally:
        srv.stop()
    assert "Traceback" not in "".join(srv.log), "".join(srv.log)


async def test_one_ingest_larger_than_the_backlog_limit_reaches_a_client_that_keeps_up(
    shared: Server,
) -> None:
    # 12,000 trades in one request (the hub's backlog limit is 5,000 messages): a client
    # reading as fast as it can is not "too slow" for a burst it had no chance to drain.
    async with connect(shared.ws_url + "/ws/SHIB", compression=None) as ws:
        batch = [trade("SHIB", f"burst-{i}", price="0.00001234", amount="7") for i in range(12_000)]
        assert (await ingest(shared, batch))["accepted"] == 12_000
        ids = [json.loads(await recv_text(ws))["id"] for _ in range(12_000)]
    assert ids == [t["id"] for t in batch]
