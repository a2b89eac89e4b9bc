"""``POST /internal/trades`` against a real server process: authorisation, every kind of bad
input (each answered with a JSON error, never a 500), all-or-nothing batches, size limits,
and retries of trades already stored.

The tests share one server; every trade id is unique to its test. The last test checks that
the server is still healthy after all of it.
"""

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_server import TOKEN, Server
from http_helpers import AUTH, assert_error, make_client, running

SYMBOLS = "PEPE,DOGE,INGA:0.01:0.1"
MAX_BODY_BYTES = 16 * 1024 * 1024
MAX_TRADES = 50_000


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def trade(trade_id: str, **fields: Any) -> dict[str, Any]:
    """A valid INGA trade of now, with ``fields`` replaced."""
    return {
        "id": trade_id,
        "symbol": "INGA",
        "price": "1.25",
        "amount": "0.5",
        "side": "Buy",
        "timestamp": now_ms() - 1_000,
        **fields,
    }


@pytest.fixture(scope="module")
def ingest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("ingest"), SYMBOLS=SYMBOLS) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(ingest_server: Server) -> Iterator[httpx.Client]:
    with make_client(ingest_server) as c:
        yield c


def post(client: httpx.Client, body: object) -> httpx.Response:
    return client.post("/internal/trades", json=body, headers=AUTH)


def post_raw(client: httpx.Client, body: bytes | str) -> httpx.Response:
    return client.post(
        "/internal/trades", content=body, headers={**AUTH, "Content-Type": "application/json"}
    )


def assert_trade_refused(response: httpx.Response, code: str = "invalid_trade") -> None:
    """422 ``invalid_trade`` whose single detail has ``code``."""
    assert_error(response, 422, "invalid_trade")
    details = response.json()["error"]["details"]
    assert len(details) == 1, details
    assert details[0]["index"] == 0
    assert details[0]["code"] == code, details
    assert details[0]["message"]


def assert_not_stored(client: httpx.Client, *trades: dict[str, Any]) -> None:
    """None of ``trades`` was stored: sent again (valid now), each is accepted as new."""
    for item in trades:
        assert post(client, item).json() == {"accepted": 1, "duplicates": 0}, item


# -- the happy path ----------------------------------------------------------------------


def test_ingest_accepts_one_trade_object(client: httpx.Client) -> None:
    response = post(client, trade("ok-object"))
    assert response.status_code == 200
    assert response.json() == {"accepted": 1, "duplicates": 0}


def test_ingest_accepts_an_array_with_numbers_as_json_numbers_or_text(
    client: httpx.Client,
) -> None:
    ts = now_ms() - 500
    body = (
        f'[{{"id":"ok-array-1","symbol":"INGA","price":1.25,"amount":0.1,"side":"Sell",'
        f'"timestamp":{ts}}},'
        f'{{"id":"ok-array-2","symbol":"INGA","price":"1.30","amount":"0.2","side":"buy",'
        f'"timestamp":"{time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(ts // 1000))}Z"}}]'
    )
    response = post_raw(client, body)
    assert response.status_code == 200, response.text
    assert response.json() == {"accepted": 2, "duplicates": 0}


def test_ingest_of_an_empty_array_accepts_nothing(client: httpx.Client) -> None:
    assert post(client, []).json() == {"accepted": 0, "duplicates": 0}


# -- authorisation -----------------------------------------------------------------------


def test_ingest_without_a_configured_token_is_403_saying_how_to_set_one(
    tmp_path: Path,
) -> None:
    with running(tmp_path, INGEST_TOKEN="") as srv, make_client(srv) as c:
        response = c.post("/internal/trades", json=trade("no-token"), headers=AUTH)
        assert_error(response, 403, "ingest_disabled")
        assert "INGEST_TOKEN" in response.json()["error"]["message"]
        assert_error(c.post("/internal/trades", json=trade("no-token")), 403)


@pytest.mark.parametrize(
    "headers",
    [
        pytest.param({}, id="missing"),
        pytest.param({"Authorization": f"Bearer {TOKEN}x"}, id="wrong-token"),
        pytest.param({"Authorization": "Bearer"}, id="empty-token"),
        pytest.param({"Authorization": f"Basic {TOKEN}"}, id="wrong-scheme"),
        pytest.param({"Authorization": TOKEN}, id="no-scheme"),
    ],
)
def test_ingest_with_missing_or_wrong_bearer_token_is_401(
    client: httpx.Client, headers: dict[str, str]
) -> None:
    item = trade("unauthorised")
    response = client.post("/internal/trades", json=item, headers=headers)
    assert_error(response, 401, "unauthorized")
    assert response.headers["www-authenticate"] == "Bearer"


def test_unauthorised_trades_are_not_stored(client: httpx.Client) -> None:
    item = trade("unauthorised-then-ok")
    client.post("/internal/trades", json=item, headers={"Authorization": "Bearer nope"})
    assert_not_stored(client, item)


# -- bad bodies ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [b"", b"{", b"not json", b'{"id": "x",}', b'[{"id": "x"', b"\xff\xfe", b"{'id': 'x'}"],
    ids=["empty", "open-brace", "text", "trailing-comma", "open-array", "not-utf8", "quotes"],
)
def test_malformed_json_is_400(client: httpx.Client, body: bytes) -> None:
    assert_error(post_raw(client, body), 400, "malformed_json")


@pytest.mark.parametrize(
    "body",
    [
        pytest.param({k: v for k, v in trade("t").items() if k != "price"}, id="missing-price"),
        pytest.param({k: v for k, v in trade("t").items() if k != "id"}, id="missing-id"),
        pytest.param(
            {k: v for k, v in trade("t").items() if k != "timestamp"}, id="missing-timestamp"
        ),
        pytest.param(trade("t", price=True), id="price-bool"),
        pytest.param(trade("t", price=[1]), id="price-list"),
        pytest.param(trade("t", price="abc"), id="price-text"),
        pytest.param(trade("t", amount=None), id="amount-null"),
        pytest.param(trade("t", id=17), id="id-number"),
        pytest.param(trade("t", side=1), id="side-number"),
        pytest.param(trade("t", timestamp=1.5e12), id="timestamp-float"),
        pytest.param(trade("t", timestamp=None), id="timestamp-null"),
        pytest.param(trade("t", extra=1), id="unknown-field"),
        pytest.param(42, id="number"),
        pytest.param("trade", id="string"),
        pytest.param([1, 2], id="array-of-numbers"),
        pytest.param([[trade("t")]], id="nested-array"),
    ],
)
def test_wrong_types_or_missing_fields_are_422(client: httpx.Client, body: object) -> None:
    assert_error(post(client, body), 422, "invalid_trade")


def test_json_null_body_is_422(client: httpx.Client) -> None:
    assert_error(post_raw(client, b"null"), 422, "invalid_trade")


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"price": "0"}, id="zero-price"),
        pytest.param({"price": "-1.25"}, id="negative-price"),
        pytest.param({"amount": "0"}, id="zero-amount"),
        pytest.param({"amount": "-0.5"}, id="negative-amount"),
        pytest.param({"price": "0.00"}, id="zero-price-with-decimals"),
    ],
)
def test_zero_or_negative_price_or_amount_is_422(
    client: httpx.Client, fields: dict[str, str]
) -> None:
    assert_trade_refused(post(client, trade("non-positive", **fields)))


@pytest.mark.parametrize("side", ["Hold", "", "B", "long"])
def test_unknown_side_is_422(client: httpx.Client, side: str) -> None:
    response = post(client, trade("bad-side", side=side))
    assert_trade_refused(response)
    assert "side" in response.json()["error"]["details"][0]["message"]


@pytest.mark.parametrize(
    "fields",
    [
        pytest.param({"price": "1.255"}, id="price-below-tick-0.01"),
        pytest.param({"amount": "0.55"}, id="amount-below-lot-0.1"),
        pytest.param({"price": "NaN"}, id="price-nan"),
        pytest.param({"price": "Infinity"}, id="price-infinite"),
        pytest.param({"price": "1e400"}, id="price-huge"),
    ],
)
def test_price_off_tick_or_not_finite_is_422(client: httpx.Client, fields: dict[str, str]) -> None:
    assert_trade_refused(post(client, trade("off-tick", **fields)))


@pytest.mark.parametrize("symbol", ["NOPE", "inga", ""])
def test_unknown_symbol_in_a_trade_is_422(client: httpx.Client, symbol: str) -> None:
    response = post(client, trade("unknown-symbol", symbol=symbol))
    assert_trade_refused(response)


@pytest.mark.parametrize(
    "trade_id", ["", "x" * 65, "tab\there"], ids=["empty", "too-long", "unprintable"]
)
def test_bad_trade_id_is_422(client: httpx.Client, trade_id: str) -> None:
    assert_trade_refused(post(client, trade(trade_id)))


@pytest.mark.parametrize("timestamp", ["yesterday", "2024-02-30T00:00:00Z", -1])
def test_bad_timestamp_is_422(client: httpx.Client, timestamp: object) -> None:
    assert_trade_refused(post(client, trade("bad-ts", timestamp=timestamp)))


def test_trade_older_than_max_trade_age_is_422_trade_too_old(client: httpx.Client) -> None:
    item = trade("too-old", timestamp=now_ms() - 301_000)  # MAX_TRADE_AGE is 300 s
    response = post(client, item)
    assert_trade_refused(response, "trade_too_old")
    assert_not_stored(client, {**item, "timestamp": now_ms()})


def test_trade_too_far_in_the_future_is_422_trade_too_new(client: httpx.Client) -> None:
    item = trade("too-new", timestamp=now_ms() + 6_000)  # at most 5 s ahead
    response = post(client, item)
    assert_trade_refused(response, "trade_too_new")
    assert_not_stored(client, {**item, "timestamp": now_ms()})


def test_batch_with_one_invalid_trade_stores_nothing(client: httpx.Client) -> None:
    good = [trade("batch-a-1"), trade("batch-a-2")]
    response = post(client, [good[0], trade("batch-a-bad", price="-1"), good[1]])
    assert_error(response, 422, "invalid_trade")
    details = response.json()["error"]["details"]
    assert [d["index"] for d in details] == [1]
    assert_not_stored(client, *good)


def test_batch_with_one_trade_outside_the_time_window_stores_nothing(
    client: httpx.Client,
) -> None:
    good = [trade("batch-b-1"), trade("batch-b-2")]
    late = trade("batch-b-old", timestamp=now_ms() - 400_000)
    early = trade("batch-b-new", timestamp=now_ms() + 60_000)
    response = post(client, [good[0], late, good[1], early])
    assert_error(response, 422, "invalid_trade")
    details = response.json()["error"]["details"]
    assert [(d["index"], d["code"]) for d in details] == [
        (1, "trade_too_old"),
        (3, "trade_too_new"),
    ]
    assert_not_stored(client, *good)


def test_body_over_16_mib_is_413(client: httpx.Client) -> None:
    body = b"[" + b" " * MAX_BODY_BYTES + b"]"
    assert_error(post_raw(client, body), 413, "body_too_large")


def test_chunked_body_over_16_mib_is_413(client: httpx.Client) -> None:
    # No Content-Length: the server must count while it reads.
    def chunks() -> Iterator[bytes]:
        yield b"["
        for _ in range(17):
            yield b" " * (1024 * 1024)
        yield b"]"

    response = client.post(
        "/internal/trades", content=chunks(), headers={**AUTH, "Content-Type": "application/json"}
    )
    assert "content-length" not in response.request.headers
    assert_error(response, 413, "body_too_large")


def test_more_than_50000_trades_is_413_and_stores_nothing(client: httpx.Client) -> None:
    ts = now_ms() - 1_000
    items = [trade(f"many-{i}", timestamp=ts) for i in range(MAX_TRADES + 1)]
    body = json.dumps(items, separators=(",", ":")).encode()
    assert len(body) < MAX_BODY_BYTES
    assert_error(post_raw(client, body), 413, "too_many_trades")
    assert_not_stored(client, items[0], items[-1])


def test_server_is_healthy_after_all_the_bad_input(
    client: httpx.Client, ingest_server: Server
) -> None:
    # Every response above was checked to be below 500 by the client's hook; ``running``
    # checks the log for tracebacks when the module's server stops.
    assert ingest_server.process.poll() is None
    response = client.get("/health")
    assert response.status_code == 200
    assert response.text == "OK"
    metrics = client.get("/metrics").text
    assert 'route="/internal/trades",status="500"' not in metrics


# -- retries -----------------------------------------------------------------------------


def test_retry_of_a_stored_trade_older_than_max_trade_age_is_a_duplicate(
    tmp_path: Path,
) -> None:
    with running(tmp_path, MAX_TRADE_AGE="1", SYMBOLS=SYMBOLS) as srv, make_client(srv) as c:
        stored = trade("retry-1", timestamp=now_ms())
        assert post(c, stored).json() == {"accepted": 1, "duplicates": 0}
        time.sleep(1.5)  # now older than MAX_TRADE_AGE
        # The retry of the stored trade is answered as a duplicate, not refused...
        assert post(c, stored).json() == {"accepted": 0, "duplicates": 1}
        # ...alongside new trades, which are accepted...
        fresh = trade("retry-2", timestamp=now_ms())
        assert post(c, [stored, fresh]).json() == {"accepted": 1, "duplicates": 1}
        # ...while an old trade never stored is still refused as too old.
        never = trade("retry-3", timestamp=stored["timestamp"])
        assert_trade_refused(post(c, never), "trade_too_old")
