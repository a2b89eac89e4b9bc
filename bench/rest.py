"""Benchmark 3: REST klines vs a trivial endpoint of the same stack, with ``wrk``.

The server is ``bench/rest_server.py`` (the real app plus ``/bench/trivial``), one uvicorn
worker, default settings: mock data on (the live generator keeps changing the open candle, as
in production), a database backfilled with generated history. ``wrk`` (one thread, 32
connections, its own process on the same 2-core machine) alternates between the two URLs for
several rounds; the trivial route answers exactly the bytes of a klines response.

If klines is under target, the server is profiled with py-spy during an extra klines run and
the heaviest frames are listed.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import time
import urllib.request
from collections import Counter
from collections.abc import Callable
from pathlib import Path

from bench.common import PYTHON, RESULTS, Measure, Options, Result, Server, cpu_seconds

__all__ = ["run"]

KLINES = "/api/v1/klines/PEPE?interval=1m&limit=100"
TRIVIAL = "/bench/trivial"
TARGET = 0.80
CONNECTIONS = 32
DB = RESULTS / "rest.db"


def _wrk(
    url: str, seconds: int, pid: int | None = None, busy: list[float] | None = None
) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) of one wrk run; with ``pid``, append the cores that
    process kept busy to ``busy``."""
    cpu0, t0 = (cpu_seconds(pid), time.perf_counter()) if pid else (0.0, 0.0)
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert m is not None, out
    p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    if pid and busy is not None:
        busy.append((cpu_seconds(pid) - cpu0) / (time.perf_counter() - t0))
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {url}:\n{out}")
    return rps, p99


def profile(server: Server, load: Callable[[], object], seconds: int, out: Path) -> list[str]:
    """Profile ``server`` with py-spy for ``seconds`` while ``load()`` runs; return the top
    frames."""
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    raw = out.with_suffix(".txt")
    record = subprocess.Popen(
        [
            spy,
            "record",
            "-p",
            str(server.pid),
            "-d",
            str(seconds),
            "-r",
            "200",
            "-f",
            "raw",
            "-o",
            str(raw),
            "--nonblocking",
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    load()
    record.wait(seconds + 30)
    if not raw.exists():
        return ["py-spy produced no profile (ptrace not permitted?)"]
    return summarize(raw)


def summarize(raw: Path, top: int = 12, *, include_threads: bool = False) -> list[str]:
    """Inclusive share of samples per frame (function + file), from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = threads = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        if not include_threads and "threading.py" in stack.split(";")[0]:
            threads += count  # Worker threads (thread pool, SQLite); the loop is what we rank.
            continue
        total += count
        frames = [_short(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    if not total:
        return []
    lines = [
        f"{100 * c / total:4.1f}% incl  {f}"
        for f, c in inclusive.most_common(top * 3)
        if "memetrade" in f or "sqlite" in f or "msgspec" in f
    ]
    lines = lines[:top]
    lines += [f"{100 * c / total:4.1f}% self  {f}" for f, c in own.most_common(8)]
    lines.append(f"({total} event-loop samples; {threads} more in worker threads)")
    return lines


def _short(frame: str) -> str:
    # "func (path/to/file.py:123)" -> "func (pkg/file.py)"
    m = re.match(r"(.*) \((.*?):\d+\)$", frame)
    if not m:
        return frame
    func, path = m.groups()
    parts = path.split("/")
    if "site-packages" in parts:
        parts = parts[parts.index("site-packages") + 1 :]
    elif "src" in parts:
        parts = parts[parts.index("src") + 1 :]
    return f"{func} ({'/'.join(parts[-3:])})"


def run(opts: Options) -> list[Result]:
    name = "3. REST klines"
    target = f"klines >= {TARGET:.0%} of trivial req/s"
    if shutil.which("wrk") is None:
        return [
            Result(
                name,
                Measure("klines", "req/s", [float("nan")]),
                target,
                None,
                notes=["wrk is not installed: apt-get install -y wrk"],
            )
        ]
    seconds = opts.n(5, 2)
    rounds = opts.n(opts.repeats, 2)
    env = {"MOCK_DATA": "1", "BACKFILL": "1", "DATABASE_URL": f"sqlite:///{DB}"}
    with Server([PYTHON, "-m", "bench.rest_server"], env, log=RESULTS / "rest-server.log") as srv:
        with urllib.request.urlopen(srv.url + KLINES) as response:
            body = response.read()
        request = urllib.request.Request(srv.url + TRIVIAL, data=body, method="PUT")
        urllib.request.urlopen(request).close()
        _wrk(srv.url + KLINES, 1)  # Warm-up of both paths.
        _wrk(srv.url + TRIVIAL, 1)
        klines_rps, klines_p99, trivial_rps, trivial_p99 = [], [], [], []
        busy_t: list[float] = []
        busy_k: list[float] = []
        for _ in range(rounds):
            rps, p99 = _wrk(srv.url + TRIVIAL, seconds, srv.pid, busy_t)
            trivial_rps.append(rps)
            trivial_p99.append(p99)
            rps, p99 = _wrk(srv.url + KLINES, seconds, srv.pid, busy_k)
            klines_rps.append(rps)
            klines_p99.append(p99)
        measure = Measure("klines 1m limit=100", "req/s", klines_rps)
        ref = Measure("trivial, same bytes", "req/s", trivial_rps)
        ratio = measure.median / ref.median
        p99k = Measure("klines p99", "ms", klines_p99, higher_is_better=False)
        p99t = Measure("trivial p99", "ms", trivial_p99, higher_is_better=False)
    notes = [
        f"Body {len(body):,} bytes; wrk -t1 -c{CONNECTIONS} -d{seconds}s, {rounds} "
        "alternating rounds; mock generator running (live open candle).",
        "wrk shares the 2 cores with the server; both figures carry that equally.",
        f"Server cores busy: trivial {Measure('', '', busy_t).text()}, klines "
        f"{Measure('', '', busy_k).text()}.",
    ]
    # A server that idles while wrk waits is not measuring the framework's ceiling: both
    # routes are then bound by something else (such as Nagle + delayed ACK on the sockets),
    # and their ratio says nothing about klines.
    latency_bound = Measure("", "", busy_t).median < 0.6
    if latency_bound:
        notes.insert(
            0,
            "**Not a valid comparison in this run:** the server was mostly idle "
            "under the trivial route's load, so both routes were bound by per-request "
            "latency, not CPU (see the p99 and the profile); the ratio is not "
            "evidence for the target.",
        )
    if ratio < TARGET:
        # Quantify the first proposal: the same server with its sync ``context`` dependency
        # swapped for an async one (FastAPI runs sync dependencies in a thread pool).
        env2 = {**env, "BENCH_ASYNC_CONTEXT": "1"}
        with Server(
            [PYTHON, "-m", "bench.rest_server"], env2, log=RESULTS / "rest-server-async.log"
        ) as srv2:
            _wrk(srv2.url + KLINES, 1)
            fast = [_wrk(srv2.url + KLINES, seconds)[0] for _ in range(rounds)]
        notes.append(
            "Experiment: with the `context` dependency overridden by an `async def` "
            f"(bench server only), klines serve {Measure('', 'req/s', fast).text()}, "
            f"{Measure('', '', fast).median / ref.median:.0%} of trivial."
        )
    with Server([PYTHON, "-m", "bench.rest_server"], env, log=RESULTS / "rest-server.log") as srv:
        _wrk(srv.url + KLINES, 1)
        if ratio < TARGET or opts.quick is False:
            lines = profile(
                srv, lambda: _wrk(srv.url + KLINES, seconds), seconds, RESULTS / "rest-profile"
            )
            notes.append(
                "py-spy profile of the server under klines load (raw stacks in "
                "bench/results/rest-profile.txt):"
            )
            notes.extend("    " + line for line in lines)
    return [
        Result(
            name,
            measure,
            target,
            None if latency_bound else ratio >= TARGET,
            reference=ref,
            ratio=ratio,
            extra=[f"p99 latency: klines {p99k.text()}; trivial {p99t.text()}"],
            notes=notes,
        )
    ]
