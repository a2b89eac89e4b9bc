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
from pathlib import Path

from bench.common import PYTHON, RESULTS, Measure, Options, Result, Server

__all__ = ["run"]

KLINES = "/api/v1/klines/PEPE?interval=1m&limit=100"
TRIVIAL = "/bench/trivial"
TARGET = 0.80
CONNECTIONS = 32
DB = RESULTS / "rest.db"


def _wrk(url: str, seconds: int) -> tuple[float, float]:
    """Requests/s and p99 latency (ms) of one wrk run."""
    out = subprocess.run(
        ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{seconds}s", "--latency", url],
        capture_output=True, text=True, check=True,
    ).stdout
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))  # type: ignore[union-attr]
    m = re.search(r"99%\s+([\d.]+)(us|ms|s)\b", out)
    assert m is not None, out
    p99 = float(m.group(1)) * {"us": 1e-3, "ms": 1.0, "s": 1e3}[m.group(2)]
    if "Non-2xx" in out or "Socket errors" in out:
        raise RuntimeError(f"wrk saw errors on {url}:\n{out}")
    return rps, p99


def profile(server: Server, url: str, seconds: int, out: Path) -> list[str]:
    """Profile ``server`` with py-spy while wrk loads ``url``; return the top frames."""
    spy = shutil.which("py-spy") or str(Path(PYTHON).parent / "py-spy")
    raw = out.with_suffix(".txt")
    record = subprocess.Popen(
        [spy, "record", "-p", str(server.pid), "-d", str(seconds), "-r", "200", "-f", "raw",
         "-o", str(raw), "--nonblocking"],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    time.sleep(0.5)
    _wrk(url, seconds)
    record.wait(seconds + 30)
    if not raw.exists():
        return ["py-spy produced no profile (ptrace not permitted?)"]
    return summarize(raw)


def summarize(raw: Path, top: int = 12) -> list[str]:
    """Inclusive share of samples per frame (function + file), from py-spy's collapsed stacks."""
    inclusive: Counter[str] = Counter()
    own: Counter[str] = Counter()
    total = 0
    for line in raw.read_text().splitlines():
        stack, _, count_text = line.rpartition(" ")
        if not stack:
            continue
        count = int(count_text)
        total += count
        frames = [_short(f) for f in stack.split(";")]
        for frame in set(frames):
            inclusive[frame] += count
        own[frames[-1]] += count
    if not total:
        return []
    lines = [f"{100 * c / total:4.1f}% incl  {f}" for f, c in inclusive.most_common(top * 3)
             if "memetrade" in f or "starlette" in f or "fastapi" in f or "uvicorn" in f]
    lines = lines[:top]
    lines += [f"{100 * c / total:4.1f}% self  {f}" for f, c in own.most_common(8)]
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
        return [Result(name, Measure("klines", "req/s", [float("nan")]), target, None,
                       notes=["wrk is not installed: apt-get install -y wrk"])]
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
        for _ in range(rounds):
            rps, p99 = _wrk(srv.url + TRIVIAL, seconds)
            trivial_rps.append(rps)
            trivial_p99.append(p99)
            rps, p99 = _wrk(srv.url + KLINES, seconds)
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
        ]
        if ratio < TARGET or opts.quick is False:
            lines = profile(srv, srv.url + KLINES, seconds, RESULTS / "rest-profile")
            notes.append("py-spy profile of the server under klines load (raw stacks in "
                         "bench/results/rest-profile.txt):")
            notes.extend("    " + line for line in lines)
    return [
        Result(name, measure, target, ratio >= TARGET, reference=ref, ratio=ratio,
               extra=[f"p99 latency: klines {p99k.text()}; trivial {p99t.text()}"], notes=notes)
    ]
