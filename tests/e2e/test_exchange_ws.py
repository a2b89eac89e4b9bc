"""The exchange's WebSocket streams end to end against a real ``memetrade serve`` process.

Depth: clients keep a local book from a snapshot and numbered diffs (native ``/ws/depth``, the
multiplexed ``depth.<SYMBOL>``, Binance ``@depth@100ms`` from ``GET /api/v3/depth``) while two
users place and cancel many orders; at the end every local book equals ``GET /api/v1/depth``
exactly, and no diff was missed. User streams: each user gets its own orders, fills and
balances, and nothing of anyone else's. Binance partial-book streams and tickers carry the
book's best bid and ask.

DOGE has a 0.000001 tick and a 0.01 lot; prices stay around 0.2 USDT.
"""

import random
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import msgspec
import pytest
from e2e_server import Server
from http_helpers import make_client, running
from websockets.exceptions import ConnectionClosed
from websockets.sync.client import ClientConnection, connect

pytestmark = pytest.mark.e2e

SECRET = "e2e-exchange-ws-secret-" + "0" * 32
PASSWORD = "correct horse battery"
DEMO = "USDT:10000,DOGE:50000"
ENV = {"JWT_SECRET": SECRET, "DEMO_BALANCES": DEMO, "RATE_LIMIT_PER_MIN": "100000"}

Book = dict[str, dict[Decimal, Decimal]]


@contextmanager
def _user(server: Server) -> Iterator[httpx.Client]:
    """A client signed in (by cookie) as a new user, from its own client address."""
    with make_client(server) as client:
        client.headers["X-Forwarded-For"] = (
            f"10.8.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
        )
        email = f"ws-{secrets.token_hex(4)}@example.com"
        response = client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
        assert response.status_code == 201, response.text
        client.headers["X-Test-Email"] = email
        yield client


def _token(client: httpx.Client) -> str:
    email = client.headers["X-Test-Email"]
    response = client.post("/api/v1/auth/signin", json={"email": email, "password": PASSWORD})
    assert response.status_code == 200, response.text
    token: str = response.json()["token"]
    return token


def _place(client: httpx.Client, **order: Any) -> dict[str, Any]:
    response = client.post("/api/v1/orders", json=order)
    assert response.status_code == 201, response.text
    placed: dict[str, Any] = response.json()
    return placed


def _recv(ws: ClientConnection, timeout: float = 10) -> Any:
    return msgspec.json.decode(ws.recv(timeout=timeout))


def _book(bids: list[list[str]], asks: list[list[str]]) -> Book:
    return {
        "b": {Decimal(p): Decimal(q) for p, q in bids},
        "a": {Decimal(p): Decimal(q) for p, q in asks},
    }


class _LocalBook:
    """A book kept from a snapshot and diffs, checking that every diff follows the last."""

    def __init__(self, last_id: int, bids: list[list[str]], asks: list[list[str]]) -> None:
        self.last_id = last_id
        self.book = _book(bids, asks)
        self.diffs = 0

    def apply(self, diff: dict[str, Any], exact_start: bool) -> None:
        if diff["u"] <= self.last_id and not exact_start:
            return  # Already in the snapshot (Binance's procedure drops these).
        if exact_start or self.diffs:
            assert diff["U"] == self.last_id + 1, (diff["U"], self.last_id)
        else:
            assert diff["U"] <= self.last_id + 1 <= diff["u"], (diff["U"], self.last_id)
        for side in ("b", "a"):
            for price, qty in diff[side]:
                if Decimal(qty) == 0:
                    self.book[side].pop(Decimal(price), None)
                else:
                    self.book[side][Decimal(price)] = Decimal(qty)
        self.last_id = diff["u"]
        self.diffs += 1


def _trade_randomly(ann: httpx.Client, bob: httpx.Client, count: int) -> None:
    """Limit orders on both sides around 0.2, some crossing (fills), a third canceled."""
    rng = random.Random(7)
    resting: list[tuple[httpx.Client, int]] = []
    for i in range(count):
        client = ann if i % 2 else bob
        side = rng.choice(("buy", "sell"))
        ticks = 200_000 + rng.randint(-40, 40) * 25 + (30 if side == "buy" else -30)
        price = str(Decimal(ticks) / 1_000_000)
        quantity = str(Decimal(rng.randint(1000, 5000)) / 100)
        placed = _place(
            client, symbol="DOGE", side=side, type="limit", price=price, quantity=quantity
        )
        if placed["order"]["status"] in ("new", "partially_filled"):
            resting.append((client, placed["order"]["order_id"]))
        if resting and rng.random() < 0.35:
            owner, order_id = resting.pop(rng.randrange(len(resting)))
            response = owner.delete(f"/api/v1/orders/{order_id}")
            assert response.status_code in (200, 404, 409, 422), response.text


def _read_until(ws: ClientConnection, last_id: int, local: _LocalBook, mux: bool) -> None:
    deadline = time.monotonic() + 20
    while local.last_id < last_id:
        assert time.monotonic() < deadline, (local.last_id, last_id)
        message = _recv(ws)
        if mux:
            if message.get("stream") != "depth.DOGE":
                continue
            message = message["data"]
        if message.get("e") == "depthUpdate":
            local.apply(message, exact_start=True)


def test_local_books_from_snapshot_and_diffs_equal_the_depth_after_many_orders(
    tmp_path: Path,
) -> None:
    with running(tmp_path, **ENV) as server, _user(server) as ann, _user(server) as bob:
        _place(ann, symbol="DOGE", side="sell", type="limit", price="0.25", quantity="40")
        native = connect(server.ws_url + "/ws/depth/doge?limit=1000", open_timeout=10)
        mux = connect(server.ws_url + "/ws/stream", open_timeout=10)
        binance = connect(server.ws_url + "/ws/dogeusdt@depth@100ms", open_timeout=10)
        with native, mux, binance:
            snapshot = _recv(native)
            assert snapshot["e"] == "depthSnapshot"
            assert snapshot["s"] == "DOGE"
            assert snapshot["asks"] == [["0.25", "40"]]
            local = _LocalBook(snapshot["lastUpdateId"], snapshot["bids"], snapshot["asks"])

            mux.send('{"op": "subscribe", "streams": ["depth.doge"], "snapshot": 1000, "id": 1}')
            assert _recv(mux)["type"] == "subscribed"
            mux_snapshot = _recv(mux)
            assert mux_snapshot["type"] == "snapshot"
            assert mux_snapshot["stream"] == "depth.DOGE"
            mux_local = _LocalBook(
                mux_snapshot["lastUpdateId"], mux_snapshot["bids"], mux_snapshot["asks"]
            )

            # Binance's way: subscribe, then the REST snapshot, then drop what it holds.
            time.sleep(0.2)
            rest = httpx.get(
                server.base_url + "/api/v3/depth", params={"symbol": "DOGEUSDT", "limit": 5000}
            ).json()
            binance_local = _LocalBook(rest["lastUpdateId"], rest["bids"], rest["asks"])

            _trade_randomly(ann, bob, 160)

            final = ann.get("/api/v1/depth/DOGE", params={"limit": 1000}).json()
            _read_until(native, final["lastUpdateId"], local, mux=False)
            _read_until(mux, final["lastUpdateId"], mux_local, mux=True)
            deadline = time.monotonic() + 20
            while binance_local.last_id < final["lastUpdateId"]:
                assert time.monotonic() < deadline
                event = _recv(binance)
                assert event["e"] == "depthUpdate"
                assert event["s"] == "DOGEUSDT"
                assert set(event) == {"e", "E", "s", "U", "u", "b", "a"}
                binance_local.apply(event, exact_start=False)

        expected = _book(final["bids"], final["asks"])
        assert expected["b"]
        assert expected["a"]
        for kept in (local, mux_local, binance_local):
            assert kept.last_id == final["lastUpdateId"]
            assert kept.book == expected
        # One diff per command that changed the book: far more than a handful arrived.
        assert local.diffs >= 100
        assert mux_local.diffs == local.diffs
        assert 0 < binance_local.diffs < local.diffs  # merged per 100 ms


def _user_stream(server: Server, **kwargs: Any) -> ClientConnection:
    path = kwargs.pop("path", "/ws/user")
    ws: ClientConnection = connect(server.ws_url + path, open_timeout=10, **kwargs)
    return ws


def _drain(ws: ClientConnection, quiet_s: float = 1.0) -> list[dict[str, Any]]:
    messages: list[dict[str, Any]] = []
    while True:
        try:
            messages.append(_recv(ws, timeout=quiet_s))
        except TimeoutError:
            return messages


def test_user_streams_carry_own_orders_fills_and_balances_and_nobody_elses(
    tmp_path: Path,
) -> None:
    with (
        running(tmp_path, **ENV) as server,
        _user(server) as ann,
        _user(server) as bob,
        _user(server) as carl,
    ):
        ann_id = ann.get("/api/v1/auth/me").json()["user"]["id"]
        key = bob.post("/api/v1/auth/api-keys", json={"name": "bot"}).json()["api_key"]["key"]
        ann_ws = _user_stream(server, additional_headers={"Authorization": f"Bearer {_token(ann)}"})
        bob_ws = _user_stream(server, additional_headers={"X-API-Key": key})
        carl_ws = _user_stream(server, path=f"/ws/user?token={_token(carl)}")
        with ann_ws, bob_ws, carl_ws:
            first = _recv(ann_ws)
            assert first["e"] == "snapshot"
            assert first["user_id"] == ann_id
            assert first["balances"]["USDT"] == {"available": "10000", "locked": "0"}
            assert first["open_orders"] == []
            for ws in (bob_ws, carl_ws):
                assert _recv(ws)["e"] == "snapshot"

            sell = _place(
                ann, symbol="DOGE", side="sell", type="limit", price="0.2", quantity="100"
            )
            buy = _place(bob, symbol="DOGE", side="buy", type="market", quantity="60")
            sell_id, buy_id = sell["order"]["order_id"], buy["order"]["order_id"]
            ann_events, bob_events = _drain(ann_ws), _drain(bob_ws)
            assert _drain(carl_ws, 0.5) == []

            orders = [(e["order_id"], e["status"]) for e in ann_events if e["e"] == "order"]
            assert orders == [(sell_id, "new"), (sell_id, "partially_filled")]
            (fill,) = [e for e in ann_events if e["e"] == "fill"]
            assert (fill["order_id"], fill["role"], fill["side"]) == (sell_id, "maker", "sell")
            assert (fill["price"], fill["quantity"], fill["fee"]) == ("0.2", "60", "0.012")
            balances = {e["asset"]: e for e in ann_events if e["e"] == "balance"}
            response = ann.get("/api/v1/balances").json()["balances"]
            rest = {b["asset"]: (b["available"], b["locked"]) for b in response}
            for asset, event in balances.items():
                assert (event["available"], event["locked"]) == rest[asset]
            assert balances["DOGE"]["locked"] == "40"

            assert {e["order_id"] for e in bob_events if e["e"] in ("order", "fill")} == {buy_id}
            (bob_fill,) = [e for e in bob_events if e["e"] == "fill"]
            assert (bob_fill["role"], bob_fill["side"], bob_fill["fee"]) == (
                "taker", "buy", "0.024"
            )  # fmt: skip
            assert bob_fill["trade_id"] == fill["trade_id"]

            ann.delete(f"/api/v1/orders/{sell_id}")
            canceled = [e for e in _drain(ann_ws) if e["e"] == "order"]
            assert [(e["status"], e["reason"]) for e in canceled] == [
                ("canceled", "canceled_by_user")
            ]
            assert _drain(bob_ws, 0.5) == []
            assert _drain(carl_ws, 0.2) == []


def _closed_with(ws: ClientConnection, timeout: float = 10.0) -> tuple[int, str]:
    """The close code and reason, once the server closes (messages before it are skipped)."""
    with pytest.raises(ConnectionClosed) as closed:  # noqa: PT012 - recv until the close.
        while True:
            ws.recv(timeout=timeout)
    assert closed.value.rcvd is not None
    return closed.value.rcvd.code, closed.value.rcvd.reason


def test_user_stream_closes_4401_without_valid_credentials(tmp_path: Path) -> None:
    with running(tmp_path, **ENV) as server, _user(server) as ann:
        cookie = ann.cookies.get("memetrade_session")
        assert cookie is not None
        cases: list[dict[str, Any]] = [
            {},
            {"additional_headers": {"Authorization": "Bearer not-a-token"}},
            {"path": "/ws/user?token=forged"},
            {"additional_headers": {"X-API-Key": "mt_0000000000000000_bad"}},
            # The session cookie from another site's page.
            {
                "additional_headers": {"Cookie": f"memetrade_session={cookie}"},
                "origin": "https://evil.example",
            },
        ]
        for case in cases:
            with _user_stream(server, **case) as ws:
                code, reason = _closed_with(ws)
                assert code == 4401, (case, code, reason)
                assert reason
        # The same cookie from this site's own page is accepted.
        host = server.base_url.removeprefix("http://")
        with _user_stream(
            server,
            additional_headers={"Cookie": f"memetrade_session={cookie}"},
            origin=f"http://{host}",
        ) as ws:
            assert _recv(ws)["e"] == "snapshot"


def test_binance_partial_books_tickers_and_depth_shapes(tmp_path: Path) -> None:
    with running(tmp_path, **ENV) as server, _user(server) as ann, _user(server) as bob:
        for i in range(7):
            _place(ann, symbol="DOGE", side="buy", type="limit", price=f"0.19{i}", quantity="10")
            _place(bob, symbol="DOGE", side="sell", type="limit", price=f"0.21{i}", quantity="20")
        streams = "dogeusdt@depth5/dogeusdt@depth10@100ms/dogeusdt@depth/dogeusdt@ticker"
        with connect(f"{server.ws_url}/stream?streams={streams}", open_timeout=10) as ws:
            seen: dict[str, Any] = {}
            deadline = time.monotonic() + 15
            traded = False
            while len(seen) < 4 and time.monotonic() < deadline:
                message = _recv(ws)
                seen.setdefault(message["stream"], message["data"])
                if "dogeusdt@depth5" in seen and not traded:
                    # A trade moves the ticker (pushed once a second when it changed).
                    _place(bob, symbol="DOGE", side="sell", type="market", quantity="1")
                    traded = True
        five, ten = seen["dogeusdt@depth5"], seen["dogeusdt@depth10@100ms"]
        assert set(five) == {"lastUpdateId", "bids", "asks"}
        assert five["bids"][0] == ["0.196000", "10.00"]
        assert [len(five["bids"]), len(five["asks"]), len(ten["bids"])] == [5, 5, 7]
        assert five["asks"][0] == ["0.210000", "20.00"]
        diff = seen["dogeusdt@depth"]
        assert diff["e"] == "depthUpdate"
        assert diff["s"] == "DOGEUSDT"
        assert diff["U"] <= diff["u"]
        ticker = seen["dogeusdt@ticker"]
        assert (ticker["b"], ticker["a"]) == ("0.196000", "0.210000")
        assert ticker["B"] == "9.00"
        assert ticker["A"] == "20.00"

        with make_client(server) as client:
            full = client.get("/api/v3/ticker/24hr", params={"symbol": "DOGEUSDT"}).json()
            assert (full["bidPrice"], full["bidQty"]) == ("0.196000", "9.00")
            assert (full["askPrice"], full["askQty"]) == ("0.210000", "20.00")
            top = client.get("/api/v3/ticker/bookTicker", params={"symbol": "DOGEUSDT"}).json()
            assert top == {
                "symbol": "DOGEUSDT",
                "bidPrice": "0.196000",
                "bidQty": "9.00",
                "askPrice": "0.210000",
                "askQty": "20.00",
            }
            book = client.get("/api/v3/depth", params={"symbol": "DOGEUSDT", "limit": 3}).json()
            assert book["bids"] == [
                ["0.196000", "9.00"],
                ["0.195000", "10.00"],
                ["0.194000", "10.00"],
            ]
            assert len(book["asks"]) == 3
            assert book["lastUpdateId"] >= five["lastUpdateId"]
            bad = client.get("/api/v3/depth", params={"symbol": "DOGEUSDT", "limit": 0})
            assert bad.status_code == 400
            assert bad.json()["code"] == -1130


def test_user_streams_end_with_their_credentials(tmp_path: Path) -> None:
    """A sign-out or a revoked key closes the streams opened with it within the recheck period
    (5 s), while a stream on another credential of the same user goes on."""
    with running(tmp_path, **ENV) as server, _user(server) as ann:
        token = _token(ann)
        key = ann.post("/api/v1/auth/api-keys", json={"name": "bot"})
        assert key.status_code == 201, key.text
        key_id, key_text = key.json()["api_key"]["id"], key.json()["api_key"]["key"]
        kept = _token(ann)
        with (
            _user_stream(server, additional_headers={"Authorization": f"Bearer {token}"}) as a,
            _user_stream(server, additional_headers={"X-API-Key": key_text}) as b,
            _user_stream(server, additional_headers={"Authorization": f"Bearer {kept}"}) as c,
        ):
            for ws in (a, b, c):
                assert _recv(ws)["e"] == "snapshot"
            signout = ann.post("/api/v1/auth/signout", headers={"Authorization": f"Bearer {token}"})
            assert signout.status_code in (200, 204), signout.text
            # (Signing out cleared the client's cookie: the other session revokes the key.)
            revoked = ann.delete(
                f"/api/v1/auth/api-keys/{key_id}", headers={"Authorization": f"Bearer {kept}"}
            )
            assert revoked.status_code == 200, revoked.text
            for ws in (a, b):
                code, reason = _closed_with(ws, timeout=12)
                assert code == 4401, (code, reason)
            # The other session's stream is still open and still delivers.
            placed = ann.post(
                "/api/v1/orders",
                json={
                    "symbol": "DOGE",
                    "side": "buy",
                    "type": "limit",
                    "price": "0.1",
                    "quantity": "10",
                },
                headers={"Authorization": f"Bearer {kept}"},
            )
            assert placed.status_code == 201, placed.text
            assert any(m.get("e") == "order" for m in _drain(c, quiet_s=2.0))
