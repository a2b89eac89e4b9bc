"""Benchmark 4: WebSocket fan-out of live trades to 1,000 / 5,000 / 10,000 clients.

One ``memetrade serve`` (mock data off, MAX_CONNECTIONS 20000, fd limit raised) and two client
processes (``bench/fanout_client.py``, half the connections each, fd limit raised) on
loopback, all subscribed to ``/ws/PEPE``. This process is the producer: it POSTs trades to
``/internal/trades`` at a fixed rate, one trade every 100 ms (10 trades/s) and, for the
throughput run, batches every 20 ms. Each trade id carries its send time (``b<ns>-<seq>``), so
a client computes trade -> client latency from the id: it includes the ingest request, the
fsync'd commit (trades are announced only once durable), the fan-out and the client's own
receive path. Measurement runs in rounds; per round: deliveries/s seen by the clients,
latency p50/p99, and the server's CPU seconds, from which deliveries per server CPU-second
(the "per core" figure). Server RSS is read with all clients connected, after the rounds.
"""

from __future__ import annotations

import http.client
import json
import subprocess
import time
from dataclasses import dataclass

import numpy as np

from bench.common import (
    INGEST_TOKEN,
    PYTHON,
    RESULTS,
    Measure,
    Options,
    Result,
    Server,
    cpu_seconds,
    fmt,
    raise_fd_limit,
    rss_mb,
)

__all__ = ["run"]

CLIENT_PROCESSES = 2


@dataclass
class Round:
    start_ns: int
    end_ns: int
    cpu: float
    client_cpu: float


class Producer:
    def __init__(self, port: int) -> None:
        self.conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        self.seq = 0
        self.acks: list[float] = []

    def post(self, count: int) -> None:
        now = time.time_ns()
        items = []
        for _ in range(count):
            self.seq += 1
            items.append(
                {
                    "id": f"b{now}-{self.seq}",
                    "symbol": "PEPE",
                    "price": "0.000001234",
                    "amount": "1000",
                    "side": "Buy",
                    "timestamp": now // 1_000_000,
                }
            )
        body = json.dumps(items).encode()
        self.conn.request(
            "POST",
            "/internal/trades",
            body,
            {"Authorization": f"Bearer {INGEST_TOKEN}", "Content-Type": "application/json"},
        )
        response = self.conn.getresponse()
        response.read()
        if response.status != 200:
            raise RuntimeError(f"ingest answered {response.status}")
        self.acks.append((time.time_ns() - now) / 1e6)

    def run(self, seconds: float, period: float, per_post: int) -> None:
        start = time.perf_counter()
        k = 0
        while (t := time.perf_counter() - start) < seconds:
            self.post(per_post)
            k += 1
            time.sleep(max(0.0, k * period - (time.perf_counter() - start)))
            del t


def scenario(clients: int, rate: int, seconds: float, rounds: int) -> dict[str, object]:
    """Run ``rounds`` rounds of ``seconds`` at ``rate`` trades/s with ``clients`` clients."""
    period, per_post = (0.1, max(1, rate // 10)) if rate <= 100 else (0.02, rate // 50)
    env = {"MOCK_DATA": "0", "DATABASE_URL": f"sqlite:///{RESULTS / 'fanout.db'}"}
    for suffix in ("", "-wal", "-shm"):
        (RESULTS / f"fanout.db{suffix}").unlink(missing_ok=True)
    with Server(env=env, log=RESULTS / "fanout-server.log") as srv:
        procs = []
        outs = []
        for i in range(CLIENT_PROCESSES):
            out = RESULTS / f"fanout-client-{i}.npy"
            outs.append(out)
            procs.append(
                subprocess.Popen(
                    [
                        PYTHON,
                        "-m",
                        "bench.fanout_client",
                        f"ws://127.0.0.1:{srv.port}/ws/PEPE",
                        str(clients // CLIENT_PROCESSES),
                        str(out),
                    ],
                    stdin=subprocess.PIPE,
                    stdout=subprocess.PIPE,
                    text=True,
                    cwd=RESULTS.parent.parent,
                )
            )
        connect_start = time.perf_counter()
        opened = failed = 0
        for p in procs:
            assert p.stdout is not None
            line = p.stdout.readline().split()
            if not line or line[0] != "ready":
                raise RuntimeError(f"client process failed: {line}")
            opened += int(line[1])
            failed += int(line[2])
        connect_s = time.perf_counter() - connect_start
        producer = Producer(srv.port)
        producer.run(1.0, period, per_post)  # Warm-up.
        time.sleep(0.5)
        done: list[Round] = []
        for _ in range(rounds):
            ccpu0 = sum(cpu_seconds(p.pid) for p in procs)
            cpu0, t0 = cpu_seconds(srv.pid), time.time_ns()
            producer.run(seconds, period, per_post)
            t1 = time.time_ns()
            time.sleep(0.3)  # Let the last deliveries land (counted by send time).
            done.append(
                Round(
                    t0,
                    t1,
                    cpu_seconds(srv.pid) - cpu0,
                    sum(cpu_seconds(p.pid) for p in procs) - ccpu0,
                )
            )
        rss = rss_mb(srv.pid)
        summaries = []
        for p in procs:
            assert p.stdin is not None
            assert p.stdout is not None
            p.stdin.close()
            summaries.append(json.loads(p.stdout.readline()))
            p.wait(60)
        pairs = np.concatenate([np.load(o) for o in outs], axis=1)
    send, recv = pairs
    deliveries, p50, p99, per_cpu, loads = [], [], [], [], []
    for r in done:
        mask = (send >= r.start_ns) & (send < r.end_ns)
        lat = (recv[mask] - send[mask]) / 1e6
        n = int(mask.sum())
        wall = (r.end_ns - r.start_ns) / 1e9
        deliveries.append(n / wall)
        p50.append(float(np.percentile(lat, 50)) if n else float("nan"))
        p99.append(float(np.percentile(lat, 99)) if n else float("nan"))
        per_cpu.append(n / r.cpu if r.cpu > 0 else float("nan"))
        # Cores busy during the round (0.3 s drain included): server, then both clients.
        loads.append((r.cpu / (wall + 0.3), r.client_cpu / (wall + 0.3)))
    expected = rate * opened
    return {
        "clients": clients,
        "opened": opened,
        "failed": failed,
        "connect_s": connect_s,
        "rate": rate,
        "deliveries": deliveries,
        "expected": expected,
        "p50": p50,
        "p99": p99,
        "per_cpu": per_cpu,
        "rss": rss,
        "loads": loads,
        "summaries": summaries,
        "ack_p99": float(np.percentile(producer.acks, 99)),
    }


def run(opts: Options) -> list[Result]:
    raise_fd_limit()
    seconds = opts.n(4, 2)
    rounds = opts.n(3, 2)
    runs = [scenario(c, 10, seconds, rounds) for c in (1000, 5000, 10000)]
    burst = scenario(1000, opts.n(200, 100), seconds, rounds)
    extra = []
    for r in [*runs, burst]:
        deliveries = Measure("", "/s", r["deliveries"])  # type: ignore[arg-type]
        extra.append(
            f"{r['clients']:,} clients ({r['opened']:,} open, {r['failed']} refused, connected "
            f"in {r['connect_s']:.1f} s), {r['rate']} trades/s: deliveries "
            f"{deliveries.text()} of {fmt(r['expected'])}/s expected; latency p50 "  # type: ignore[arg-type]
            f"{Measure('', 'ms', r['p50']).text()}, p99 {Measure('', 'ms', r['p99']).text()}; "  # type: ignore[arg-type]
            f"{Measure('', '', r['per_cpu']).text()} deliveries per server CPU-second; "  # type: ignore[arg-type]
            f"server RSS {r['rss']:.0f} MiB; cores busy (server / clients): "
            + ", ".join(f"{a:.2f} / {b:.2f}" for a, b in r["loads"])  # type: ignore[attr-defined]
            + f"; ingest ack p99 {r['ack_p99']:.0f} ms"
        )
    at5k = runs[1]
    at10k = runs[2]
    p99 = Measure(
        "p99 trade->client at 5,000 clients x 10 trades/s",
        "ms",
        at5k["p99"],
        higher_is_better=False,
    )  # type: ignore[arg-type]
    per_core = [x for r in [*runs, burst] for x in r["per_cpu"]]  # type: ignore[attr-defined]
    best = max(([*runs, burst]), key=lambda r: float(np.median(r["per_cpu"])))  # type: ignore[arg-type]
    per_core_m = Measure(
        f"deliveries per server CPU-second ({best['clients']:,} clients, {best['rate']} trades/s)",
        "/s",
        best["per_cpu"],
    )  # type: ignore[arg-type]
    held = Measure("clients held by one server", "clients", [float(at10k["opened"])])  # type: ignore[arg-type]
    notes = [
        f"Clients: {CLIENT_PROCESSES} processes (bare asyncio protocols on uvloop) sharing "
        "the 2 cores with "
        "the server and this producer; rounds of "
        f"{seconds} s. Latency includes the producer's ingest request and fsync'd commit "
        "(trades are announced only once durable).",
        f"All scenarios, per-CPU-second medians: {', '.join(fmt(x) for x in per_core)}.",
    ]
    if p99.median > 50:
        per_delivery_us = 1e6 / float(np.median(at5k["per_cpu"]))  # type: ignore[arg-type]
        notes.append(
            "What limits 4b: the server writes each trade to every client one socket at a "
            f"time, about {per_delivery_us:.1f} µs per client here (with py-spy --native, "
            "the write(2) system call is most of it; Python's share is small since frames go "
            "straight to the transport), so the last of 5,000 clients gets a trade about "
            f"{5000 * per_delivery_us / 1000:.0f} ms after the first, on top of the fsync'd "
            "commit. One process cannot shorten that; spreading the connections over "
            "several API processes (memetrade serve --role api, docs/deploy.md) divides it."
        )
    return [
        Result(
            "4a. WS fan-out: 10,000 clients",
            held,
            ">= 10,000 clients held by one process",
            int(at10k["opened"]) >= 10_000 and at10k["summaries"] is not None,  # type: ignore[call-overload]
            extra=extra,
            notes=notes,
        ),
        Result(
            "4b. WS fan-out: p99 latency",
            p99,
            "p99 <= 50 ms at 5,000 clients x 10 trades/s",
            p99.median <= 50,
        ),
        Result(
            "4c. WS fan-out: throughput",
            per_core_m,
            ">= 100,000 deliveries/s per server core",
            per_core_m.median >= 100_000,
        ),
    ]
