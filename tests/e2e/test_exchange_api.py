"""The exchange's HTTP API end to end against a real ``memetrade serve`` process: users sign up
with demo balances, trade, and see exact balances, depth, order history, their fills, and the
candles and trade stream the trades made; every bad input gets its 4xx and code and changes no
balance; admins move money; authentication and rate limits guard every trading route.

DOGE has a 0.000001 tick and a 0.01 lot; fees are 0.10 % (maker) and 0.20 % (taker) in the
Standard tier, rounded up to the quote unit (10^-12 USDT here), so the sums below are exact.
"""

import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import httpx
import jwt
import pytest
from e2e_server import Server
from http_helpers import assert_error, make_client, running
from websockets.sync.client import connect

pytestmark = pytest.mark.e2e

SECRET = "e2e-exchange-secret-" + "0" * 32
PASSWORD = "correct horse battery"
ADMIN = "admin-exchange@example.com"
DEMO = "USDT:10000,DOGE:50000"


def _email(name: str) -> str:
    return f"{name}-{secrets.token_hex(4)}@example.com"


@contextmanager
def _user(server: Server, email: str | None = None) -> Iterator[httpx.Client]:
    """A client signed in (by cookie) as a new user; distinct client addresses keep the
    anonymous sign-up limit of one address out of the way."""
    with make_client(server) as client:
        client.headers["X-Forwarded-For"] = (
            f"10.9.{secrets.randbelow(256)}.{secrets.randbelow(256)}"
        )
        response = client.post(
            "/api/v1/auth/signup", json={"email": email or _email("u"), "password": PASSWORD}
        )
        assert response.status_code == 201, response.text
        yield client


def _balances(client: httpx.Client) -> dict[str, dict[str, str]]:
    response = client.get("/api/v1/balances")
    assert response.status_code == 200, response.text
    return {b["asset"]: b for b in response.json()["balances"]}


def _place(client: httpx.Client, **order: Any) -> httpx.Response:
    return client.post("/api/v1/orders", json=order)


def _placed(client: httpx.Client, **order: Any) -> dict[str, Any]:
    response = _place(client, **order)
    assert response.status_code == 201, response.text
    placed: dict[str, Any] = response.json()
    return placed


def test_two_users_trade_and_see_balances_depth_history_candles_and_stream(
    tmp_path: Path,
) -> None:
    with (
        running(tmp_path, JWT_SECRET=SECRET, DEMO_BALANCES=DEMO) as server,
        _user(server) as ann,
        _user(server) as bob,
    ):
        start = _balances(ann)
        assert start["USDT"] == {
            "asset": "USDT",
            "available": "10000",
            "locked": "0",
            "total": "10000",
        }
        assert start["DOGE"]["available"] == "50000"
        assert start["PEPE"]["total"] == "0"  # every asset is listed, zero included

        sell = _placed(ann, symbol="DOGE", side="sell", type="limit", quantity="100", price="0.2")
        order = sell["order"]
        assert (order["status"], order["remaining"], sell["fills"]) == ("new", "100", [])
        assert _balances(ann)["DOGE"] == {
            "asset": "DOGE", "available": "49900", "locked": "100", "total": "50000"
        }  # fmt: skip
        depth = ann.get("/api/v1/depth/DOGE", params={"limit": 5}).json()
        assert depth["asks"] == [["0.2", "100"]]
        assert depth["bids"] == []
        assert [o["order_id"] for o in ann.get("/api/v1/orders").json()["orders"]] == [
            order["order_id"]
        ]

        with connect(server.ws_url + "/ws/transactions/DOGE", open_timeout=10) as stream:
            buy = _placed(bob, symbol="DOGE", side="buy", type="market", quantity="100")
            messages: list[str] = []
            deadline = time.monotonic() + 10
            while not any("0.2" in m for m in messages) and time.monotonic() < deadline:
                messages.append(str(stream.recv(timeout=10)))
        assert any("0.2" in m and "100" in m for m in messages), messages

        taken = buy["order"]
        assert (taken["status"], taken["filled"], taken["avg_price"]) == ("filled", "100", "0.2")
        assert taken["fee"] == "0.04"  # 0.20 % of 20 USDT
        (fill,) = buy["fills"]
        assert (fill["role"], fill["price"], fill["quantity"], fill["fee"]) == (
            "taker", "0.2", "100", "0.04"
        )  # fmt: skip

        assert _balances(bob)["USDT"]["total"] == "9979.96"  # 10000 - 20 - 0.04
        assert _balances(bob)["DOGE"]["total"] == "50100"
        assert _balances(ann)["USDT"]["total"] == "10019.98"  # 10000 + 20 - 0.02
        assert _balances(ann)["DOGE"] == {
            "asset": "DOGE", "available": "49900", "locked": "0", "total": "49900"
        }  # fmt: skip
        after = ann.get("/api/v1/depth/DOGE").json()
        assert after["asks"] == []
        assert after["lastUpdateId"] > depth["lastUpdateId"]

        history = ann.get("/api/v1/orders/history").json()["orders"]
        assert [(o["order_id"], o["status"], o["fee"]) for o in history] == [
            (order["order_id"], "filled", "0.02")
        ]
        assert ann.get(f"/api/v1/orders/{order['order_id']}").json()["status"] == "filled"
        assert ann.get("/api/v1/orders").json()["orders"] == []
        (mine,) = ann.get("/api/v1/my-trades", params={"symbol": "DOGE"}).json()["trades"]
        (theirs,) = bob.get("/api/v1/my-trades").json()["trades"]
        assert mine["trade_id"] == theirs["trade_id"] == fill["trade_id"]
        assert (mine["role"], mine["side"], mine["fee"]) == ("maker", "sell", "0.02")
        assert (theirs["role"], theirs["side"], theirs["fee"]) == ("taker", "buy", "0.04")

        (candle,) = ann.get("/api/v1/klines/DOGE", params={"interval": "1m"}).json()["data"][-1:]
        assert (candle["close"], candle["volume"], candle["trades"]) == (0.2, 100, 1)

        metrics = ann.get("/metrics").text
        assert 'memetrade_exchange_orders_accepted_total{type="market"} 1.0' in metrics
        assert "memetrade_exchange_fills_total 1.0" in metrics
        assert 'memetrade_exchange_command_duration_seconds_count{command="PlaceOrder"}' in metrics


def test_bad_orders_and_cancels_get_their_code_and_change_no_balance(tmp_path: Path) -> None:
    with (
        running(tmp_path, JWT_SECRET=SECRET, DEMO_BALANCES=DEMO) as server,
        _user(server) as ann,
        _user(server) as bob,
    ):
        resting = _placed(ann, symbol="DOGE", side="sell", type="limit", quantity="10", price="0.3")
        before = (_balances(ann), _balances(bob))
        limit = {"symbol": "DOGE", "side": "buy", "type": "limit"}
        cases: list[tuple[dict[str, Any], int, str]] = [
            ({**limit, "symbol": "NOPE", "quantity": "10", "price": "1"}, 404, "unknown_symbol"),
            ({**limit, "quantity": "10", "price": "0.1234567"}, 400, "price_off_tick"),
            ({**limit, "quantity": "10.001", "price": "0.1"}, 400, "quantity_off_lot"),
            ({**limit, "quantity": "ten", "price": "0.1"}, 400, "invalid_number"),
            ({**limit, "quantity": "1", "price": "0.1"}, 422, "below_min_notional"),
            ({**limit, "quantity": "100000", "price": "0.2"}, 422, "insufficient_balance"),
            ({**limit, "quantity": "10", "price": "0.3", "post_only": True}, 422, "would_take"),
            ({**limit, "quantity": "10"}, 422, "invalid_order"),
            ({**limit, "side": "up", "quantity": "10", "price": "0.1"}, 422, "invalid_request"),
        ]
        for order, status, code in cases:
            assert_error(_place(bob, **order), status, code)
        assert_error(bob.post("/api/v1/orders", content=b"{"), 400, "malformed_json")
        assert (_balances(ann), _balances(bob)) == before

        order_id = resting["order"]["order_id"]
        # Someone else's open order, and an id never issued: the same answer.
        assert_error(bob.delete(f"/api/v1/orders/{order_id}"), 404, "unknown_order")
        assert_error(bob.get(f"/api/v1/orders/{order_id}"), 404, "unknown_order")
        assert_error(bob.delete("/api/v1/orders/999999"), 404, "unknown_order")
        assert (_balances(ann), _balances(bob)) == before

        _placed(bob, symbol="DOGE", side="buy", type="limit", quantity="10", price="0.3")
        assert ann.get(f"/api/v1/orders/{order_id}").json()["status"] == "filled"
        filled = (_balances(ann), _balances(bob))
        assert_error(ann.delete(f"/api/v1/orders/{order_id}"), 409, "order_not_open")
        assert (_balances(ann), _balances(bob)) == filled

        # Cancel one, then cancel all of a symbol: the locked funds come back.
        one = _placed(ann, symbol="DOGE", side="sell", type="limit", quantity="10", price="0.5")
        canceled = ann.delete(f"/api/v1/orders/{one['order']['order_id']}").json()
        assert (canceled["status"], canceled["reason"]) == ("canceled", "canceled_by_user")
        for price in ("0.6", "0.7"):
            _placed(ann, symbol="DOGE", side="sell", type="limit", quantity="10", price=price)
        assert _balances(ann)["DOGE"]["locked"] == "20"
        swept = ann.delete("/api/v1/orders", params={"symbol": "DOGE"}).json()["orders"]
        assert [o["price"] for o in swept] == ["0.6", "0.7"]
        assert _balances(ann) == filled[0]
        assert_error(ann.delete("/api/v1/orders", params={"symbol": "NOPE"}), 404, "unknown_symbol")

        ended = ann.get("/api/v1/orders/history", params={"status": "ended", "limit": 2}).json()
        assert [o["status"] for o in ended["orders"]] == ["canceled", "canceled"]
        page = ann.get("/api/v1/orders/history", params={"before": ended["orders"][-1]["order_id"]})
        assert [o["price"] for o in page.json()["orders"]] == ["0.5", "0.3"]
        assert_error(ann.get("/api/v1/depth/DOGE", params={"limit": 7}), 400, "invalid_limit")
        assert_error(ann.get("/api/v1/depth/NOPE"), 404, "unknown_symbol")


def test_admin_deposits_and_withdraws_and_others_may_not(tmp_path: Path) -> None:
    with (
        running(tmp_path, JWT_SECRET=SECRET, DEMO_BALANCES="", ADMIN_EMAIL=ADMIN) as server,
        _user(server, ADMIN) as admin,
        _user(server) as ann,
    ):
        assert _balances(ann)["USDT"]["total"] == "0"  # DEMO_BALANCES empty: nothing credited
        ann_id = ann.get("/api/v1/auth/me").json()["user"]["id"]
        transfer = {"user_id": ann_id, "asset": "USDT", "amount": "250.5"}
        assert_error(ann.post("/api/v1/admin/deposit", json=transfer), 403, "forbidden")
        response = admin.post("/api/v1/admin/deposit", json=transfer)
        assert response.status_code == 200, response.text
        assert response.json()["balance"]["available"] == "250.5"
        out = admin.post("/api/v1/admin/withdraw", json={**transfer, "amount": "50"})
        assert out.json()["balance"]["available"] == "200.5"
        assert_error(
            admin.post("/api/v1/admin/withdraw", json={**transfer, "amount": "1000"}),
            422,
            "insufficient_balance",
        )
        assert_error(
            admin.post("/api/v1/admin/deposit", json={**transfer, "asset": "XYZ"}),
            404,
            "unknown_asset",
        )
        assert_error(
            admin.post("/api/v1/admin/deposit", json={**transfer, "user_id": 999}),
            404,
            "unknown_user",
        )
        assert _balances(ann)["USDT"]["total"] == "200.5"

        entries = admin.get("/api/v1/admin/audit", params={"action": "deposit"}).json()["entries"]
        assert [(e["detail"]["user_id"], e["detail"]["amount"]) for e in entries] == [
            (ann_id, "250.5")
        ]
        _placed(ann, symbol="DOGE", side="buy", type="limit", quantity="10", price="0.2")
        audit = admin.get("/api/v1/admin/audit", params={"user_id": ann_id}).json()["entries"]
        placed = [e for e in audit if e["action"] == "order_placed"]
        assert placed[0]["detail"]["symbol"] == "DOGE"
        assert placed[0]["ip"]


def test_trading_routes_need_valid_credentials_and_are_rate_limited(tmp_path: Path) -> None:
    with (
        running(tmp_path, JWT_SECRET=SECRET, DEMO_BALANCES=DEMO, RATE_LIMIT_PER_MIN="40") as server,
        _user(server) as ann,
        make_client(server) as anonymous,
    ):
        order = {"symbol": "DOGE", "side": "buy", "type": "limit", "quantity": "10", "price": "0.2"}
        assert_error(anonymous.post("/api/v1/orders", json=order), 401, "unauthorized")
        assert_error(anonymous.get("/api/v1/balances"), 401, "unauthorized")

        user_id = ann.get("/api/v1/auth/me").json()["user"]["id"]
        now = int(time.time())
        claims = {"sub": str(user_id), "jti": "j", "iat": now - 100, "exp": now + 600}
        forged = jwt.encode(claims, "another-secret-" + "1" * 32, algorithm="HS256")
        expired = jwt.encode({**claims, "exp": now - 10}, SECRET, algorithm="HS256")
        for token in (forged, expired):
            response = anonymous.post(
                "/api/v1/orders", json=order, headers={"Authorization": f"Bearer {token}"}
            )
            assert_error(response, 401, "invalid_token")

        created = ann.post("/api/v1/auth/api-keys", json={"name": "bot"}).json()["api_key"]
        key = {"X-API-Key": created["key"]}
        assert anonymous.get("/api/v1/balances", headers=key).status_code == 200
        ann.delete(f"/api/v1/auth/api-keys/{created['id']}")
        assert_error(
            anonymous.post("/api/v1/orders", json=order, headers=key), 401, "api_key_revoked"
        )
        # A key is counted apart from its user's sessions: it reads while the session is limited.
        reader = {
            "X-API-Key": ann.post("/api/v1/auth/api-keys", json={"name": "r"}).json()["api_key"][
                "key"
            ]
        }
        before = anonymous.get("/api/v1/balances", headers=reader).json()

        statuses = [ann.get("/api/v1/orders").status_code for _ in range(40)]
        assert statuses[-1] == 429
        response = _place(ann, **order)
        assert_error(response, 429, "rate_limited")
        assert int(response.headers["Retry-After"]) >= 1
        assert anonymous.get("/api/v1/balances", headers=reader).json() == before
        assert anonymous.get("/api/v1/orders", headers=reader).json() == {"orders": []}
