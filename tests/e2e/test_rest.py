"""REST routes against a real server process: operations, symbols, klines in both dialects,
exact numbers, time ranges, late and duplicate trades, bad queries, and history from storage.

Most tests share one quiet server; each exactness test owns a symbol (``TESTA`` …) so no
other test's trades can touch its candles.
"""

import json
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
from e2e_server import Server
from http_helpers import AUTH, assert_error, make_client, running

INTERVALS = {"1s": 1_000, "1m": 60_000, "5m": 300_000, "15m": 900_000, "1h": 3_600_000}
SYMBOLS = "PEPE,DOGE,SHIB,FLOKI,TESTA:0.01:0.1,TESTB:0.01:0.1,TESTC:0.01:0.1,TESTD:0.01:0.1"
CANDLE_FIELDS = {
    "timestamp",
    "open",
    "high",
    "low",
    "close",
    "volume",
    "quote_volume",
    "trades",
    "close_time",
    "closed",
    "buy_volume",
    "buy_quote_volume",
}
# How long after a second boundary the server may still serve the previous second as open:
# its clock closes candles 250 ms after they end (CLOSE_DELAY_MS), plus scheduling.
CLOCK_LAG_MS = 600


# -- helpers -----------------------------------------------------------------------------


@dataclass(frozen=True)
class RefTrade:
    """A trade as the test knows it: exact ``Decimal`` values, ``ts`` in epoch ms."""

    id: str
    ts: int
    price: Decimal
    amount: Decimal
    side: str = "Buy"
    iso: bool = False  # send the timestamp as ISO 8601 text instead of epoch ms

    def wire(self, symbol: str) -> str:
        """JSON with the numbers as JSON number text (never through a float)."""
        ts = f'"{iso(self.ts)}"' if self.iso else str(self.ts)
        return (
            f'{{"id":"{self.id}","symbol":"{symbol}","price":{self.price},'
            f'"amount":{self.amount},"side":"{self.side}","timestamp":{ts}}}'
        )


def t(
    trade_id: str, ts: int, price: str, amount: str, side: str = "Buy", iso: bool = False
) -> RefTrade:
    return RefTrade(trade_id, ts, Decimal(price), Decimal(amount), side, iso)


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def align(ts: int, step: int) -> int:
    return ts - ts % step


def iso(ts: int) -> str:
    return (
        (datetime(1970, 1, 1, tzinfo=UTC) + timedelta(milliseconds=ts))
        .isoformat()
        .replace("+00:00", "Z")
    )


def assert_is_current(open_time: int, step: int, before: int) -> None:
    """``open_time`` is the candle open at some moment of the request that began at ``before``
    (the server closes candles on a clock tick just after each boundary, so allow its lag)."""
    assert align(before - CLOCK_LAG_MS, step) <= open_time <= align(now_ms(), step)


def reference(trades: Sequence[RefTrade], step: int, start: int, end: int) -> list[dict[str, Any]]:
    """Every candle opening in ``[start, end]``, computed naively in ``Decimal``: group by
    open time, order by ``(ts, id)``, sum; empty intervals flat at the previous close; nothing
    before the first trade. Without ``closed``, which depends on the time of the request."""
    unique = {trade.id: trade for trade in reversed(trades)}  # the first of an id wins
    groups: dict[int, list[RefTrade]] = {}
    for trade in unique.values():
        groups.setdefault(align(trade.ts, step), []).append(trade)
    out: list[dict[str, Any]] = []
    close: Decimal | None = None
    for open_time in range(start, end + 1, step):
        group = sorted(groups.get(open_time, []), key=lambda x: (x.ts, x.id))
        if group:
            prices = [x.price for x in group]
            o, h, lo, c = group[0].price, max(prices), min(prices), group[-1].price
            volume = sum((x.amount for x in group), Decimal(0))
            quote = sum((x.price * x.amount for x in group), Decimal(0))
            buys = [x for x in group if x.side == "Buy"]
            buy_volume = sum((x.amount for x in buys), Decimal(0))
            buy_quote = sum((x.price * x.amount for x in buys), Decimal(0))
        elif close is not None:
            o = h = lo = c = close
            volume = quote = buy_volume = buy_quote = Decimal(0)
        else:
            continue
        close = c
        out.append(
            {
                "timestamp": open_time,
                "open": o,
                "high": h,
                "low": lo,
                "close": c,
                "volume": volume,
                "quote_volume": quote,
                "trades": len(group),
                "close_time": open_time + step - 1,
                "buy_volume": buy_volume,
                "buy_quote_volume": buy_quote,
            }
        )
    return out


def without_closed(candles: Sequence[dict[str, Any]]) -> list[dict[str, Any]]:
    return [{k: v for k, v in candle.items() if k != "closed"} for candle in candles]


def exact(response: httpx.Response) -> Any:
    """The JSON body with every non-integer number read as an exact ``Decimal``."""
    return json.loads(response.text, parse_float=Decimal)


def klines(client: httpx.Client, symbol: str, dialect: str = "v1", /, **params: Any) -> Any:
    prefix = "/api/v1/klines" if dialect == "v1" else "/api/klines"
    response = client.get(f"{prefix}/{symbol}", params=params)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/json")
    return exact(response)


def ingest_raw(client: httpx.Client, symbol: str, trades: Sequence[RefTrade]) -> dict[str, Any]:
    body = "[" + ",".join(trade.wire(symbol) for trade in trades) + "]"
    response = client.post(
        "/internal/trades",
        content=body,
        headers={**AUTH, "Content-Type": "application/json"},
    )
    assert response.status_code == 200, response.text
    answer: dict[str, Any] = response.json()
    return answer


# -- fixtures ----------------------------------------------------------------------------


@pytest.fixture(scope="module")
def rest_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    with running(tmp_path_factory.mktemp("rest"), SYMBOLS=SYMBOLS) as srv:
        yield srv


@pytest.fixture(scope="module")
def client(rest_server: Server) -> Iterator[httpx.Client]:
    with make_client(rest_server) as c:
        yield c


@dataclass(frozen=True)
class Ingested:
    base: int  # open time of the second of the first trade
    trades: tuple[RefTrade, ...]


@pytest.fixture(scope="module")
def testa(client: httpx.Client) -> Ingested:
    """TESTA's trades over six seconds just before now; seconds 1 and 4 have no trades."""
    base = align(now_ms() - 6_000, 1_000)
    trades = (
        t("ta-1", base + 100, "1.00", "0.1"),
        t("ta-2", base + 900, "1.05", "0.2", "Sell", iso=True),
        # Same millisecond: the id orders them, so ta-3a opens and ta-3b closes the second.
        t("ta-3b", base + 2_000, "0.99", "1.5"),
        t("ta-3a", base + 2_000, "0.98", "0.4", "Sell"),
        t("ta-4", base + 3_500, "1.10", "2.0", iso=True),
        t("ta-5", base + 3_999, "1.07", "0.1", "Sell"),
        t("ta-6", base + 5_200, "1.02", "0.3"),
    )
    # Arrival order is not time order: candles must not depend on it.
    scrambled = [trades[i] for i in (6, 0, 3, 1, 4, 2, 5)]
    assert ingest_raw(client, "TESTA", scrambled) == {"accepted": 7, "duplicates": 0}
    return Ingested(base, trades)


# -- operations --------------------------------------------------------------------------


def test_health_answers_plain_text_ok(client: httpx.Client) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.text == "OK"
    assert response.headers["content-type"].startswith("text/plain")


def test_ready_answers_json_when_storage_is_reachable(client: httpx.Client) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    assert response.json() == {"status": "ready"}


def test_metrics_are_prometheus_text_with_the_service_metrics(client: httpx.Client) -> None:
    client.get("/health")  # at least one timed request
    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    text = response.text
    for name in (
        "memetrade_trades_ingested",
        "memetrade_websocket_clients",
        "memetrade_candles_served",
        "memetrade_http_request_duration_seconds",
    ):
        assert f"# TYPE {name}" in text, name
    assert 'memetrade_http_request_duration_seconds_count{method="GET",route="/health"' in text


def test_candles_served_metric_counts_rest_candles(client: httpx.Client, testa: Ingested) -> None:
    def served() -> float:
        for line in client.get("/metrics").text.splitlines():
            if line.startswith("memetrade_candles_served_total "):
                return float(line.split()[1])
        raise AssertionError("memetrade_candles_served_total missing")

    before = served()
    data = klines(client, "TESTA", interval="1s", **{"from": testa.base, "to": testa.base + 3_000})
    assert len(data["data"]) == 4
    assert served() == before + 4


def test_docs_page_is_html(client: httpx.Client) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/html")
    assert "swagger" in response.text.lower()
    assert "/openapi.json" in response.text


def test_openapi_lists_every_rest_route(client: httpx.Client) -> None:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    paths = response.json()["paths"]
    expected = {
        "/health": "get",
        "/ready": "get",
        "/metrics": "get",
        "/api/v1/symbols": "get",
        "/api/klines/{symbol}": "get",
        "/api/v1/klines/{symbol}": "get",
        "/internal/trades": "post",
    }
    for path, method in expected.items():
        assert method in paths.get(path, {}), path
    v1_params = {p["name"] for p in paths["/api/v1/klines/{symbol}"]["get"]["parameters"]}
    assert {"symbol", "interval", "limit", "from", "to"} <= v1_params
    seed_params = {p["name"] for p in paths["/api/klines/{symbol}"]["get"]["parameters"]}
    assert {"symbol", "interval", "limit"} <= seed_params


def test_openapi_documents_the_ingest_request_body(client: httpx.Client) -> None:
    document = client.get("/openapi.json").json()
    body = document["paths"]["/internal/trades"]["post"]["requestBody"]
    assert body["required"] is True
    schema = body["content"]["application/json"]["schema"]
    # One trade object or an array of them, both referring to the documented trade schema.
    refs = json.dumps(schema)
    assert "#/components/schemas/TradeIn" in refs
    assert '"array"' in refs
    trade = document["components"]["schemas"]["TradeIn"]
    assert set(trade["properties"]) == {"id", "symbol", "price", "amount", "side", "timestamp"}
    assert set(trade["required"]) == {"id", "symbol", "price", "amount", "side", "timestamp"}


# -- symbols -----------------------------------------------------------------------------


def test_symbols_lists_every_symbol_with_tick_lot_and_intervals(client: httpx.Client) -> None:
    response = client.get("/api/v1/symbols")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/json")
    symbols = {item["symbol"]: item for item in response.json()["symbols"]}
    assert list(symbols) == [part.split(":")[0] for part in SYMBOLS.split(",")]
    assert symbols["PEPE"]["tick_size"] == "0.000000000001"
    assert symbols["PEPE"]["lot_size"] == "1"
    assert symbols["DOGE"]["tick_size"] == "0.000001"
    assert symbols["DOGE"]["lot_size"] == "0.01"
    assert symbols["TESTA"]["tick_size"] == "0.01"
    assert symbols["TESTA"]["lot_size"] == "0.1"
    for item in symbols.values():
        assert item["intervals"] == list(INTERVALS)


# -- klines: exact candles ---------------------------------------------------------------


@pytest.mark.parametrize("interval", list(INTERVALS))
@pytest.mark.parametrize("dialect", ["seed000", "v1"])
def test_klines_equal_a_decimal_reference_at_every_interval(
    client: httpx.Client, testa: Ingested, dialect: str, interval: str
) -> None:
    step = INTERVALS[interval]
    first_open = align(testa.trades[0].ts, step)
    before = now_ms()
    if dialect == "v1":
        body = klines(client, "TESTA", interval=interval, limit=1000, **{"from": first_open})
    else:
        body = klines(client, "TESTA", "seed000", interval=interval, limit=1000)
    data = body["data"]
    assert data, body
    # From the first trade's candle up to the open candle of now, and nothing before.
    assert data[0]["timestamp"] == first_open
    assert_is_current(data[-1]["timestamp"], step, before)
    expected = reference(testa.trades, step, first_open, data[-1]["timestamp"])
    assert without_closed(data) == expected


def test_volume_of_point_one_plus_point_two_is_served_as_0_3(
    client: httpx.Client, testa: Ingested
) -> None:
    response = client.get(
        "/api/v1/klines/TESTA",
        params={"interval": "1s", "from": testa.base, "to": testa.base},
    )
    assert response.status_code == 200
    # The raw text: a float sum would give 0.30000000000000004.
    assert '"volume":0.3,' in response.text, response.text
    assert '"quote_volume":0.31,' in response.text, response.text
    (candle,) = exact(response)["data"]
    assert candle["volume"] == Decimal("0.3")
    assert candle["quote_volume"] == Decimal("0.31")


def test_pepe_price_is_served_exactly_as_0_000001234(client: httpx.Client) -> None:
    ts = now_ms() - 2_000
    trade = t("pepe-exact-1", ts, "0.000001234", "1000000")
    assert ingest_raw(client, "PEPE", [trade]) == {"accepted": 1, "duplicates": 0}
    second = align(ts, 1_000)
    response = client.get(
        "/api/v1/klines/PEPE", params={"interval": "1s", "from": second, "to": second}
    )
    assert response.status_code == 200
    text = response.text
    for field in ("open", "high", "low", "close"):
        assert f'"{field}":0.000001234,' in text, text
    assert '"volume":1000000,' in text, text
    assert '"quote_volume":1.234,' in text, text
    assert "e-" not in text.lower(), text
    (candle,) = exact(response)["data"]
    assert candle["close"] == Decimal("0.000001234")


def test_klines_response_has_symbol_interval_seq_and_candle_fields(
    client: httpx.Client, testa: Ingested
) -> None:
    for dialect in ("seed000", "v1"):
        body = klines(client, "testa", dialect, interval="1m", limit=3)  # case-insensitive
        assert set(body) == {"symbol", "interval", "seq", "data"}
        assert body["symbol"] == "TESTA"
        assert body["interval"] == "1m"
        assert isinstance(body["seq"], int)
        assert body["seq"] > 0
        assert body["data"]
        for candle in body["data"]:
            assert set(candle) == CANDLE_FIELDS
            assert isinstance(candle["timestamp"], int)
            assert isinstance(candle["trades"], int)
            assert isinstance(candle["closed"], bool)


def test_klines_are_oldest_first_without_gaps(client: httpx.Client, testa: Ingested) -> None:
    for interval, step in INTERVALS.items():
        data = klines(client, "TESTA", interval=interval, limit=1000)["data"]
        times = [candle["timestamp"] for candle in data]
        assert times == list(range(times[0], times[-1] + 1, step)), interval
        assert all(c["close_time"] == c["timestamp"] + step - 1 for c in data)


def test_klines_limit_defaults_to_100(client: httpx.Client) -> None:
    # One trade 200 s ago gives TESTC about 200 one-second candles up to now.
    ts = now_ms() - 200_000
    assert ingest_raw(client, "TESTC", [t("tc-1", ts, "5.00", "1.0")])["accepted"] == 1
    for dialect in ("seed000", "v1"):
        before = now_ms()
        data = klines(client, "TESTC", dialect, interval="1s")["data"]
        assert len(data) == 100, dialect
        assert_is_current(data[-1]["timestamp"], 1_000, before)
        assert data[-1]["closed"] is False
        assert len(klines(client, "TESTC", dialect, interval="1s", limit=150)["data"]) == 150
    second = align(ts, 1_000)
    data = klines(client, "TESTC", interval="1s", **{"from": second})["data"]
    assert len(data) == 100
    assert data[0]["timestamp"] == second
    assert data[0]["trades"] == 1
    assert data[1]["volume"] == 0  # flat after it
    assert data[1]["close"] == Decimal("5")


def test_klines_from_and_to_in_epoch_milliseconds(client: httpx.Client, testa: Ingested) -> None:
    base = testa.base
    expected = reference(testa.trades, 1_000, base, base + 3_000)
    both = klines(client, "TESTA", interval="1s", **{"from": base, "to": base + 3_000})
    assert without_closed(both["data"]) == expected
    # ``to`` inside a candle includes that candle; ``from`` inside one starts at the next.
    assert (
        klines(client, "TESTA", interval="1s", **{"from": base, "to": base + 3_500})["data"]
        == both["data"]
    )
    later = klines(client, "TESTA", interval="1s", **{"from": base - 999, "to": base + 3_000})
    assert later["data"] == both["data"]
    # ``from`` alone: the first ``limit`` candles from it; ``to`` alone: the last up to it.
    first_two = klines(client, "TESTA", interval="1s", limit=2, **{"from": base})["data"]
    assert without_closed(first_two) == expected[:2]
    last_two = klines(client, "TESTA", interval="1s", limit=2, to=base + 3_000)["data"]
    assert without_closed(last_two) == expected[2:]
    # Before the first trade there are no candles at all.
    assert klines(client, "TESTA", interval="1s", to=base - 1_000)["data"] == []


@pytest.mark.parametrize(
    "render",
    [
        pytest.param(lambda ts: iso(ts), id="Z"),
        pytest.param(lambda ts: iso(ts).replace("Z", "+00:00"), id="utc-offset"),
        pytest.param(lambda ts: iso(ts).removesuffix("Z"), id="naive-is-utc"),
        pytest.param(
            lambda ts: datetime.fromtimestamp(ts / 1000, timezone(timedelta(hours=2))).isoformat(),
            id="plus-two-hours",
        ),
    ],
)
def test_klines_from_and_to_in_iso_8601(client: httpx.Client, testa: Ingested, render: Any) -> None:
    base = testa.base
    by_ms = klines(client, "TESTA", interval="1s", **{"from": base, "to": base + 3_000})
    by_iso = klines(
        client, "TESTA", interval="1s", **{"from": render(base), "to": render(base + 3_000)}
    )
    assert by_iso["data"] == by_ms["data"]
    assert len(by_iso["data"]) == 4


def test_empty_interval_is_a_flat_candle_at_the_previous_close(
    client: httpx.Client, testa: Ingested
) -> None:
    base = testa.base
    data = klines(client, "TESTA", interval="1s", **{"from": base, "to": base + 5_000})["data"]
    by_time = {candle["timestamp"]: candle for candle in data}
    for empty, previous in ((base + 1_000, base), (base + 4_000, base + 3_000)):
        candle, prev_close = by_time[empty], by_time[previous]["close"]
        assert candle["open"] == candle["high"] == candle["low"] == candle["close"] == prev_close
        assert candle["volume"] == 0
        assert candle["quote_volume"] == 0
        assert candle["trades"] == 0
        assert candle["closed"] is True


def test_open_candle_is_not_closed_and_ended_ones_are(
    client: httpx.Client, testa: Ingested
) -> None:
    for interval, step in INTERVALS.items():
        before = now_ms()
        data = klines(client, "TESTA", interval=interval, limit=1000)["data"]
        assert_is_current(data[-1]["timestamp"], step, before)
        assert data[-1]["closed"] is False, interval
        assert all(candle["closed"] is True for candle in data[:-1]), interval


def test_late_trade_revises_the_candles_it_falls_in(client: httpx.Client) -> None:
    base = align(now_ms() - 5_000, 1_000)
    first = [t("tb-1", base + 500, "2.00", "1.0"), t("tb-2", base + 2_500, "2.10", "1.0")]
    assert ingest_raw(client, "TESTB", first)["accepted"] == 2
    window = {"from": base, "to": base + 2_000}
    before = klines(client, "TESTB", interval="1s", **window)["data"]
    assert without_closed(before) == reference(first, 1_000, base, base + 2_000)
    assert before[1]["trades"] == 0  # second 1 is empty, flat at 2.00

    # Both seconds ended long ago, but are inside MAX_TRADE_AGE: a new open for second 0 and
    # a first trade for the empty second 1.
    late = [t("tb-0", base + 100, "1.90", "0.5", "Sell"), t("tb-9", base + 1_700, "2.20", "0.3")]
    assert ingest_raw(client, "TESTB", late) == {"accepted": 2, "duplicates": 0}
    after = klines(client, "TESTB", interval="1s", **window)["data"]
    assert after[0]["open"] == Decimal("1.90")
    assert after[0]["low"] == Decimal("1.90")
    assert after[0]["trades"] == 2
    assert after[1]["open"] == after[1]["close"] == Decimal("2.20")
    assert all(candle["closed"] for candle in after)
    everything = first + late
    for interval, step in INTERVALS.items():
        start = align(base, step)
        data = klines(client, "TESTB", interval=interval, limit=1000, **{"from": start})["data"]
        assert without_closed(data) == reference(everything, step, start, data[-1]["timestamp"])


def test_duplicate_trade_ids_change_nothing(client: httpx.Client) -> None:
    base = align(now_ms() - 3_000, 1_000)
    trades = [t("td-1", base + 200, "3.00", "1.0"), t("td-2", base + 1_200, "3.30", "0.5")]
    assert ingest_raw(client, "TESTD", trades) == {"accepted": 2, "duplicates": 0}

    def snapshot() -> list[list[dict[str, Any]]]:
        return [
            without_closed(
                klines(
                    client,
                    "TESTD",
                    interval=interval,
                    **{"from": align(base, step), "to": base + 1_000},
                )["data"]
            )
            for interval, step in INTERVALS.items()
        ]

    before = snapshot()
    assert ingest_raw(client, "TESTD", trades) == {"accepted": 0, "duplicates": 2}
    # The same ids with other values are still duplicates: the first version stands.
    changed = [t("td-1", base + 300, "9.00", "7.0"), t("td-2", base + 1_300, "0.01", "0.1")]
    assert ingest_raw(client, "TESTD", changed) == {"accepted": 0, "duplicates": 2}
    assert snapshot() == before
    assert before[0] == reference(trades, 1_000, base, base + 1_000)

    # Within one batch, the second copy of an id is the duplicate.
    twice = [t("td-3", base + 1_500, "3.10", "0.1"), t("td-3", base + 1_500, "3.10", "0.1")]
    assert ingest_raw(client, "TESTD", twice) == {"accepted": 1, "duplicates": 1}
    second = klines(client, "TESTD", interval="1s", **{"from": base + 1_000, "to": base + 1_000})
    assert second["data"][0]["trades"] == 2
    assert second["data"][0]["volume"] == Decimal("0.6")


# -- klines: bad queries -----------------------------------------------------------------


@pytest.mark.parametrize("path", ["/api/klines/NOPE", "/api/v1/klines/NOPE"])
def test_unknown_symbol_is_404(client: httpx.Client, path: str) -> None:
    assert_error(client.get(path, params={"interval": "1m"}), 404, "unknown_symbol")


@pytest.mark.parametrize("path", ["/api/klines/TESTA", "/api/v1/klines/TESTA"])
@pytest.mark.parametrize("interval", ["2m", "1H", "", "1d", "x" * 200])
def test_bad_interval_is_400(client: httpx.Client, path: str, interval: str) -> None:
    assert_error(client.get(path, params={"interval": interval}), 400, "unknown_interval")


@pytest.mark.parametrize("path", ["/api/klines/TESTA", "/api/v1/klines/TESTA"])
@pytest.mark.parametrize("limit", ["0", "-1", "abc", "1001", "1.5", "", "99999999999999999999"])
def test_bad_limit_is_400(client: httpx.Client, path: str, limit: str) -> None:
    assert_error(client.get(path, params={"limit": limit}), 400, "invalid_limit")


def test_limit_1000_is_the_documented_maximum(client: httpx.Client) -> None:
    assert client.get("/api/v1/klines/TESTA", params={"limit": "1000"}).status_code == 200


def test_from_after_to_is_400(client: httpx.Client) -> None:
    now = now_ms()
    response = client.get("/api/v1/klines/TESTA", params={"from": now, "to": now - 1})
    assert_error(response, 400, "invalid_range")
    response = client.get(
        "/api/v1/klines/TESTA", params={"from": iso(now), "to": iso(now - 60_000)}
    )
    assert_error(response, 400, "invalid_range")


@pytest.mark.parametrize("param", ["from", "to"])
@pytest.mark.parametrize(
    "value",
    ["yesterday", "", "12abc", "2024-13-01T00:00:00Z", "-5", "1e12", "99999999999999999999"],
)
def test_bad_from_or_to_is_400(client: httpx.Client, param: str, value: str) -> None:
    assert_error(client.get("/api/v1/klines/TESTA", params={param: value}), 400, "invalid_time")


def test_unknown_route_and_wrong_method_answer_json_errors(client: httpx.Client) -> None:
    assert_error(client.get("/api/v2/nothing"), 404)
    assert_error(client.delete("/api/v1/symbols"), 405)
    assert_error(client.get("/internal/trades"), 405)


# -- history older than memory -----------------------------------------------------------


def test_history_older_than_memory_is_served_from_storage_unchanged(tmp_path: Path) -> None:
    # Memory keeps max(HISTORY_LIMIT, late window + 2) one-second candles: with
    # MAX_TRADE_AGE=1 and 5 s allowed ahead that is 8, so the wait below stays short.
    with (
        running(tmp_path, SYMBOLS="HIST:0.01:0.1", HISTORY_LIMIT="5", MAX_TRADE_AGE="1") as srv,
        make_client(srv) as client,
    ):
        start = now_ms() - 600
        trades = []
        for k in range(6):
            ts = start + k * 1_000
            later = ts + (999 - ts % 1_000) // 3  # same second, a little later
            trades.append(t(f"h-{k}a", ts, f"{10 + k}.00", "1.0"))
            trades.append(t(f"h-{k}b", later, f"{10 + k}.{k}5", "0.2", "Sell"))
        assert ingest_raw(client, "HIST", trades)["accepted"] == 12
        first, last = align(start, 1_000), align(start + 5_000, 1_000)
        assert last - first == 5_000  # six one-second candles
        window = {"interval": "1s", "from": first, "to": last}
        from_memory = without_closed(klines(client, "HIST", **window)["data"])
        assert from_memory == reference(trades, 1_000, first, last)

        # Wait until the two oldest seconds have left memory (8 candles kept; the clock
        # moves the book on CLOCK_LAG_MS at most after each second boundary).
        time.sleep(max(0.0, (first + 9_000 + CLOCK_LAG_MS - now_ms()) / 1000))
        served = klines(client, "HIST", **window)["data"]
        assert without_closed(served) == from_memory
        assert all(candle["closed"] for candle in served)
        recent = klines(client, "HIST", interval="1s", limit=1000)["data"]
        assert without_closed(recent[: len(from_memory)]) == from_memory


# -- the mock market ---------------------------------------------------------------------


def test_mock_data_backfills_every_interval_and_keeps_trading(tmp_path: Path) -> None:
    started = time.monotonic()
    with (
        running(tmp_path, MOCK_DATA="1", MOCK_DATA_INTERVAL="20") as srv,
        make_client(srv) as client,
    ):
        # The service listens once backfill is done: an empty database has real depth fast.
        assert time.monotonic() - started < 15
        for symbol in ("PEPE", "DOGE", "SHIB", "FLOKI"):
            for interval in INTERVALS:
                data = klines(client, symbol, interval=interval, limit=1000)["data"]
                assert len(data) >= 300, (symbol, interval, len(data))
                assert sum(candle["trades"] for candle in data) > 0, (symbol, interval)
                assert data[-1]["closed"] is False

        # Live trades keep arriving: the open 1s candle's trade count grows.
        seen: dict[int, int] = {}
        deadline = time.monotonic() + 5
        while time.monotonic() < deadline:
            (candle,) = klines(client, "PEPE", interval="1s", limit=1)["data"]
            opened, count = candle["timestamp"], candle["trades"]
            if count > seen.get(opened, count):
                break
            seen[opened] = count
            time.sleep(0.05)
        else:
            raise AssertionError(f"the open 1s candle never grew: {seen}")
