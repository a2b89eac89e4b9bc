"""Scale-out vs embedded: ingest throughput and trade -> WebSocket latency (issue 4).

Part of ``make bench`` (``python -m bench scaleout``); standalone, as a table::

    .venv/bin/python -m bench.scaleout [--seconds 5] [--out docs/scaleout-bench.md]

Embedded: one ``ROLE=all`` process on SQLite. Scale-out: ``ROLE=ingest`` + ``ROLE=aggregate``
+ ``ROLE=api`` processes on the local NATS JetStream and a scratch PostgreSQL database.
Throughput: 4 threads POSTing batches of 1000 trades for ``--seconds``; "acked" counts
trades answered 200, "aggregated" the trades stored per second until the aggregator caught
up. Latency: one trade every 20 ms POSTed to the ingest endpoint, timed until a WebSocket
client of the API process receives it (both in this process, one clock).
"""

import argparse
import json
import secrets
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
from websockets.sync.client import connect

ROOT = Path(__file__).resolve().parents[1]
for sub in ("tests/e2e", "tests/contract"):
    sys.path.insert(0, str(ROOT / sub))

from e2e_server import TOKEN, Server, start_server  # noqa: E402

AUTH = {"Authorization": f"Bearer {TOKEN}"}


def now_ms() -> int:
    return time.time_ns() // 1_000_000


def batch(symbol: str, prefix: str, n: int) -> list[dict[str, Any]]:
    ts = now_ms()
    return [
        {
            "id": f"{prefix}-{i}",
            "symbol": symbol,
            "price": f"1.{i % 97:02d}",
            "amount": f"{1 + i % 9}.5",
            "side": "Buy" if i % 2 else "Sell",
            "timestamp": ts,
        }
        for i in range(n)
    ]


def throughput(ingest: Server, symbol: str, seconds: float) -> float:
    acked = [0]
    lock = threading.Lock()
    deadline = time.monotonic() + seconds

    def worker(w: int) -> None:
        with httpx.Client(base_url=ingest.base_url, headers=AUTH, timeout=30) as client:
            k = 0
            while time.monotonic() < deadline:
                trades = batch(symbol, f"t{w}-{k}", 1000)
                k += 1
                if client.post("/internal/trades", json=trades).status_code == 200:
                    with lock:
                        acked[0] += len(trades)

    threads = [threading.Thread(target=worker, args=(w,)) for w in range(4)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return acked[0] / (time.monotonic() - started)


def trade_count(api: Server, symbol: str) -> int:
    r = httpx.get(f"{api.base_url}/api/v1/klines/{symbol}", params={"interval": "1h"})
    return sum(c["trades"] for c in r.json()["data"])


def latency(ingest: Server, api: Server, symbol: str, count: int) -> list[float]:
    out: list[float] = []
    with (
        connect(f"{api.ws_url}/ws/{symbol}", open_timeout=10) as ws,
        httpx.Client(base_url=ingest.base_url, headers=AUTH, timeout=10) as client,
    ):
        time.sleep(0.3)
        for i in range(count):
            sent = time.perf_counter()
            assert client.post("/internal/trades", json=batch(symbol, f"l{i}", 1)).is_success
            while json.loads(ws.recv(timeout=10))["id"] != f"l{i}-0":
                pass
            out.append((time.perf_counter() - sent) * 1000)
            time.sleep(0.02)
    return out


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def measure(
    name: str,
    start: Callable[[str], tuple[Server, Server, list[Server]]],
    seconds: float,
) -> dict[str, Any]:
    symbol = "B" + secrets.token_hex(3).upper()
    ingest, api, servers = start(symbol)
    try:
        before = time.monotonic()
        rate = throughput(ingest, symbol, seconds)
        total = round(rate * seconds)
        # Scale-out acknowledges before aggregation: wait for the candles to hold it all.
        while trade_count(api, symbol) < total * 0.999 and time.monotonic() - before < 120:
            time.sleep(0.1)
        aggregated = trade_count(api, symbol) / (time.monotonic() - before)
        lat = latency(ingest, api, symbol, 200)
    finally:
        for s in servers:
            s.stop()
    return {
        "name": name,
        "acked": rate,
        "aggregated": aggregated,
        "p50": statistics.median(lat),
        "p99": percentile(lat, 0.99),
    }


def _topologies(
    scratch: Path, drops: list[Callable[[], None]]
) -> tuple[Callable[[str], tuple[Server, Server, list[Server]]], ...]:
    import bus_backends
    import store_backends

    def embedded(symbol: str) -> tuple[Server, Server, list[Server]]:
        s = start_server(scratch / symbol, SYMBOLS=f"{symbol}:0.01:0.1", MOCK_DATA="0")
        return s, s, [s]

    def scaleout(symbol: str) -> tuple[Server, Server, list[Server]]:
        url, drop = store_backends.postgres_database()
        drops.append(drop)
        env = {
            "DATABASE_URL": url,
            "BUS_URL": bus_backends.NATS_URL,
            "SYMBOLS": f"{symbol}:0.01:0.1",
            "MOCK_DATA": "0",
        }
        agg = start_server(scratch / symbol, ROLE="aggregate", **env)
        ing = start_server(scratch / symbol, ROLE="ingest", **env)
        api = start_server(scratch / symbol, ROLE="api", **env)
        return ing, api, [ing, api, agg]

    return embedded, scaleout


def run(opts: Any) -> list[Any]:
    """``python -m bench``'s entry: one row per topology, latency as the figure, the embedded
    process as the reference of the scale-out row."""
    from bench.common import Measure, Result

    seconds = 2.0 if opts.quick else 5.0
    scratch = Path(tempfile.mkdtemp(prefix="scaleout-bench-"))
    drops: list[Callable[[], None]] = []
    embedded, scaleout = _topologies(scratch, drops)
    try:
        rows = [measure("embedded", embedded, seconds), measure("scale-out", scaleout, seconds)]
    finally:
        for drop in drops:
            drop()
    measures = [
        Measure(
            f"{r['name']}: trade->WebSocket p50 (p99 {r['p99']:.1f} ms)",
            "ms",
            [r["p50"]],
            higher_is_better=False,
        )
        for r in rows
    ]
    return [
        Result(
            "Scale-out latency",
            measures[1],
            "report only",
            None,
            reference=measures[0],
            extra=[
                f"{r['name']}: ingest acknowledged {r['acked']:,.0f} trades/s, aggregated "
                f"{r['aggregated']:,.0f} trades/s; latency p50 {r['p50']:.1f} ms, "
                f"p99 {r['p99']:.1f} ms"
                for r in rows
            ]
            + [
                "scale-out: ROLE=ingest + ROLE=aggregate + ROLE=api on NATS JetStream and "
                "PostgreSQL; embedded: one ROLE=all process on SQLite; all on this machine"
            ],
        )
    ]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--out", type=Path)
    opts = parser.parse_args()
    scratch = Path(tempfile.mkdtemp(prefix="scaleout-bench-"))
    drops: list[Callable[[], None]] = []
    embedded, scaleout = _topologies(scratch, drops)

    try:
        rows = [
            measure("embedded (ROLE=all, SQLite)", embedded, opts.seconds),
            measure("scale-out (ingest+aggregate+api, NATS, PostgreSQL)", scaleout, opts.seconds),
        ]
    finally:
        for drop in drops:
            drop()
    lines = [
        "| topology | ingest acked (trades/s) | aggregated (trades/s) | "
        "trade->WS p50 (ms) | p99 (ms) |",
        "|---|---|---|---|---|",
        *(
            f"| {r['name']} | {r['acked']:,.0f} | {r['aggregated']:,.0f} | "
            f"{r['p50']:.1f} | {r['p99']:.1f} |"
            for r in rows
        ),
    ]
    text = "\n".join(lines)
    print(text)
    if opts.out:
        opts.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
