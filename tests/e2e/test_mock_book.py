"""The mock market through the order book (``MOCK_MODE=book``) against a real server process:
simulated makers keep a two-sided book, simulated takers trade against it, the candles move,
and a person can trade against the simulated makers like against anyone else.
"""

import time
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from http_helpers import make_client, running

pytestmark = pytest.mark.e2e

ENV = {
    "MOCK_DATA": "1",
    "MOCK_MODE": "book",
    "MOCK_DATA_INTERVAL": "20",
    "BACKFILL": "0",
    "SYMBOLS": "DOGE,PEPE",
    "JWT_SECRET": "e2e-mock-book-secret-" + "0" * 32,
    "DEMO_BALANCES": "USDT:10000,DOGE:50000",
}


def wait_for(check: Callable[[], Any], what: str, timeout_s: float = 15.0) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if found := check():
            return found
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def depth(client: httpx.Client, symbol: str) -> dict[str, Any]:
    response = client.get(f"/api/v1/depth/{symbol}", params={"limit": 20})
    assert response.status_code == 200, response.text
    book: dict[str, Any] = response.json()
    return book


def traded(client: httpx.Client, symbol: str) -> int:
    response = client.get(f"/api/v1/klines/{symbol}", params={"interval": "1m", "limit": 5})
    assert response.status_code == 200, response.text
    return sum(int(c["trades"]) for c in response.json()["data"])


def check_market(client: httpx.Client, symbol: str) -> None:
    book = wait_for(
        lambda: (found := depth(client, symbol))["bids"] and found["asks"] and found,
        f"a two-sided {symbol} book",
    )
    bids = [Decimal(p) for p, _ in book["bids"]]
    asks = [Decimal(p) for p, _ in book["asks"]]
    assert bids == sorted(bids, reverse=True)
    assert asks == sorted(asks)
    assert bids[0] < asks[0]
    # Two makers, five levels a side each (some may share a price).
    assert len(bids) >= 5
    assert len(asks) >= 5
    # Takers trade: the candles count trades, and keep counting.
    first: int = wait_for(lambda: traded(client, symbol), f"{symbol} trades")
    wait_for(lambda: traded(client, symbol) > first, f"more {symbol} trades")
    # The trades printed at the makers' prices: close to the book's inside.
    response = client.get("/api/v3/trades", params={"symbol": f"{symbol}USDT", "limit": 1})
    (last,) = response.json()
    mid = (bids[0] + asks[0]) / 2
    assert abs(Decimal(last["price"]) - mid) / mid < Decimal("0.01")


def test_simulated_makers_and_takers_fill_the_book_and_move_the_candles(tmp_path: Path) -> None:
    with running(tmp_path, **ENV) as srv, make_client(srv) as client:
        for symbol in ("DOGE", "PEPE"):
            check_market(client, symbol)


def test_a_person_trades_against_the_simulated_makers_and_pays_fees(tmp_path: Path) -> None:
    with running(tmp_path, **ENV) as srv, make_client(srv) as client:
        signup = client.post(
            "/api/v1/auth/signup",
            json={"email": "taker@example.com", "password": "correct horse battery"},
        )
        assert signup.status_code == 201, signup.text
        wait_for(lambda: depth(client, "DOGE")["asks"], "DOGE asks")
        response = client.post(
            "/api/v1/orders",
            json={"symbol": "DOGE", "side": "buy", "type": "market", "quantity": "100"},
        )
        assert response.status_code == 201, response.text
        placed = response.json()
        assert placed["order"]["status"] == "filled"
        assert sum(Decimal(f["quantity"]) for f in placed["fills"]) == 100
        assert all(f["role"] == "taker" and Decimal(f["fee"]) > 0 for f in placed["fills"])
        balances = {b["asset"]: b for b in client.get("/api/v1/balances").json()["balances"]}
        assert Decimal(balances["DOGE"]["total"]) == 50_100
        paid = sum(Decimal(f["quote_amount"]) + Decimal(f["fee"]) for f in placed["fills"])
        assert Decimal(balances["USDT"]["total"]) == 10_000 - paid
        assert all(Decimal(b["available"]) >= 0 for b in balances.values())
