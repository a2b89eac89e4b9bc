"""The exchange survives ``kill -9``: a real server process takes orders from several clients at
once, is killed with SIGKILL, and restarts from its latest snapshot plus the journal after it.
The state hash after recovery equals the one before the kill, every acknowledged order is
still known, and a damaged newest snapshot makes recovery fall back to the one before.
"""

import random
import secrets
import signal
import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_server import Server, start_server
from http_helpers import running

pytestmark = pytest.mark.e2e

PASSWORD = "correct horse battery"
ENV = {
    "JWT_SECRET": "recovery-e2e-secret-" + "0" * 32,
    "ADMIN_EMAIL": "admin@example.com",
    "SYMBOLS": "DOGE",
    "MOCK_DATA": "0",
    # Small, so the runs below cross several snapshots and keep a journal tail after the last.
    "SNAPSHOT_EVERY": "150",
    "RATE_LIMIT_PER_MIN": "1000000",
    "DEMO_BALANCES": "",
}


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def sign_up(client: httpx.Client, email: str) -> tuple[int, str]:
    response = client.post("/api/v1/auth/signup", json={"email": email, "password": PASSWORD})
    assert response.status_code == 201, response.text
    signin = client.post("/api/v1/auth/signin", json={"email": email, "password": PASSWORD})
    assert signin.status_code == 200, signin.text
    body = signin.json()
    return int(body["user"]["id"]), str(body["token"])


def deposit(client: httpx.Client, admin: str, user_id: int, asset: str, amount: str) -> None:
    response = client.post(
        "/api/v1/admin/deposit",
        json={"user_id": user_id, "asset": asset, "amount": amount},
        headers=bearer(admin),
    )
    assert response.status_code == 200, response.text


def state(client: httpx.Client, admin: str) -> dict[str, Any]:
    response = client.get("/api/v1/admin/exchange", headers=bearer(admin))
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


def trade_until(
    server: Server, token: str, seed: int, acked: list[int], stop: threading.Event
) -> None:
    """Place and cancel orders around 0.12 until ``stop`` or the server is gone; record every
    order id the server acknowledged."""
    rng = random.Random(seed)
    mine: list[int] = []
    with httpx.Client(base_url=server.base_url, timeout=10, headers=bearer(token)) as client:
        while not stop.is_set():
            roll = rng.random()
            try:
                if roll < 0.15 and mine:
                    client.delete(f"/api/v1/orders/{mine.pop(rng.randrange(len(mine)))}")
                    continue
                side = rng.choice(["buy", "sell"])
                order: dict[str, Any] = {"symbol": "DOGE", "side": side, "quantity": "100"}
                if roll < 0.3:
                    order["type"] = "market"
                else:
                    order |= {"type": "limit", "price": f"0.{rng.randrange(1180, 1220)}"}
                response = client.post("/api/v1/orders", json=order)
            except httpx.TransportError:
                return  # Killed mid-request: that order is not acknowledged.
            if response.status_code == 201:
                order_id = int(response.json()["order"]["order_id"])
                acked.append(order_id)
                mine.append(order_id)


def start_traders(
    server: Server, tokens: list[str], acked: list[int]
) -> tuple[threading.Event, list[threading.Thread]]:
    stop = threading.Event()
    threads = [
        threading.Thread(target=trade_until, args=(server, token, i, acked, stop))
        for i, token in enumerate(tokens)
    ]
    for thread in threads:
        thread.start()
    return stop, threads


def wait_for_orders(acked: list[int], count: int) -> None:
    deadline = time.monotonic() + 60
    while len(acked) < count and time.monotonic() < deadline:
        time.sleep(0.02)
    assert len(acked) >= count, "the traders did not get going"


def test_the_exchange_recovers_its_exact_state_after_sigkill(tmp_path: Path) -> None:
    with running(tmp_path, **ENV) as server, server.client() as client:
        _, admin = sign_up(client, ENV["ADMIN_EMAIL"])
        users = [sign_up(client, f"trader{i}-{secrets.token_hex(3)}@example.com") for i in range(3)]
        for user_id, _ in users:
            deposit(client, admin, user_id, "USDT", "100000")
            deposit(client, admin, user_id, "DOGE", "1000000")
        tokens = [token for _, token in users]

    # 1. A quiet kill: the state hash after recovery is the one read just before the kill.
    server = start_server(tmp_path, **ENV)
    acked: list[int] = []
    try:
        stop, threads = start_traders(server, tokens, acked)
        wait_for_orders(acked, 400)
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
        with server.client() as client:
            before = state(client, admin)
        assert before["snapshot_seq"] > 0, "no snapshot was taken"
        assert before["seq"] > before["snapshot_seq"], "no journal tail after the snapshot"
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
    finally:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)

    server = start_server(tmp_path, **ENV)
    try:
        with server.client() as client:
            after = state(client, admin)
            assert after["state_hash"] == before["state_hash"]
            assert after["seq"] == before["seq"]
            assert after["recovered_commands"] == before["seq"] - after["snapshot_seq"]

        # 2. A kill in the middle of the flood: every acknowledged order is still there.
        acked = []
        stop, threads = start_traders(server, tokens, acked)
        wait_for_orders(acked, 300)
        assert server.stop(signal.SIGKILL) == -signal.SIGKILL
        stop.set()
        for thread in threads:
            thread.join(timeout=30)
    finally:
        if server.process.poll() is None:
            server.stop(signal.SIGKILL)

    with running(tmp_path, **ENV) as server, server.client() as client:
        recovered = state(client, admin)
        assert recovered["seq"] >= before["seq"] + len(acked)
        owners = {token: bearer(token) for token in tokens}
        for order_id in acked:
            found = [
                client.get(f"/api/v1/orders/{order_id}", headers=headers).status_code
                for headers in owners.values()
            ]
            assert 200 in found, f"acknowledged order {order_id} was lost"
        snapshot = client.post("/api/v1/admin/exchange/snapshot", headers=bearer(admin))
        assert snapshot.status_code == 200, snapshot.text
        last = snapshot.json()
        assert last["snapshot_seq"] == last["seq"]

    # 3. The newest snapshot damaged on disk: recovery uses the one before and replays more.
    snapshots = sorted((tmp_path / "memetrade.db.exchange").glob("snapshot-*"))
    assert len(snapshots) >= 2
    damaged = bytearray(snapshots[-1].read_bytes())
    damaged[len(damaged) // 2] ^= 0xFF
    snapshots[-1].write_bytes(bytes(damaged))
    with running(tmp_path, **ENV) as server, server.client() as client:
        fallback = state(client, admin)
        assert fallback["state_hash"] == last["state_hash"]
        assert fallback["snapshot_seq"] < last["snapshot_seq"]
        assert fallback["recovered_commands"] > 0
        assert "snapshot" in "".join(server.log)
