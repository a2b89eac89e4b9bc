"""Shared pieces of the benchmark suite: results, statistics, options and server processes."""

from __future__ import annotations

import contextlib
import os
import resource
import signal
import socket
import statistics
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

__all__ = [
    "RESULTS",
    "ROOT",
    "Measure",
    "Options",
    "Result",
    "Server",
    "free_port",
    "percentile",
    "raise_fd_limit",
    "rss_mb",
    "spread",
]

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results"  # gitignored: cached databases, raw logs
PYTHON = sys.executable
# A token that passes the server's length check; only ever used on loopback.
INGEST_TOKEN = "bench-token-0123456789abcdef"


@dataclass(frozen=True, slots=True)
class Options:
    quick: bool = False
    repeats: int = 5

    def n(self, full: int, quick: int) -> int:
        return quick if self.quick else full


@dataclass(slots=True)
class Measure:
    """One figure measured over repeated runs (``samples``), higher or lower is better."""

    label: str
    unit: str
    samples: list[float]
    higher_is_better: bool = True

    @property
    def median(self) -> float:
        return statistics.median(self.samples)

    def text(self) -> str:
        return f"{fmt(self.median)} {self.unit} ({spread(self.samples)})"


@dataclass(slots=True)
class Result:
    """One benchmark's row in docs/benchmarks.md."""

    name: str
    measure: Measure
    target: str
    passed: bool | None  # None: could not be measured
    reference: Measure | None = None
    ratio: float | None = None
    extra: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)


def fmt(x: float) -> str:
    if x != x:  # NaN
        return "n/a"
    ax = abs(x)
    if ax >= 1e6:
        return f"{x / 1e6:.2f} M"
    if ax >= 1e4:
        return f"{x / 1e3:.1f} k"
    if ax >= 100:
        return f"{x:.0f}"
    if ax >= 1:
        return f"{x:.2f}"
    return f"{x:.3g}"


def spread(samples: Sequence[float]) -> str:
    """The spread of ``samples`` as ``min-max, n=..`` (what a reader needs to judge noise)."""
    if len(samples) < 2:
        return "n=1"
    return f"min {fmt(min(samples))}, max {fmt(max(samples))}, n={len(samples)}"


def percentile(values: Sequence[float], q: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    k = min(len(ordered) - 1, max(0, round(q / 100 * (len(ordered) - 1))))
    return ordered[k]


def raise_fd_limit() -> int:
    """Raise this process's open-file limit to its hard limit; return the new soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = hard if hard != resource.RLIM_INFINITY else 1_048_576
    if soft < target:
        with contextlib.suppress(ValueError, OSError):
            resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def rss_mb(pid: int) -> float:
    """Resident set size of ``pid`` in MiB (from /proc)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds ``pid`` has used (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return (int(fields[11]) + int(fields[12])) / ticks


def _preexec() -> None:
    raise_fd_limit()


class Server:
    """A server process (``memetrade serve`` or a bench variant) on a free loopback port."""

    def __init__(
        self,
        argv: Sequence[str] | None = None,
        env: Mapping[str, str] | None = None,
        *,
        log: Path | None = None,
    ) -> None:
        self.port = free_port()
        self.argv = list(argv) if argv else [PYTHON, "-m", "memetrade", "serve"]
        base = {
            "PORT": str(self.port),
            "MOCK_DATA": "0",
            "INGEST_TOKEN": INGEST_TOKEN,
            "LOG_LEVEL": "warning",
            "MAX_CONNECTIONS": "20000",
        }
        self.env = {**os.environ, **base, **(env or {})}
        self.log = log or RESULTS / "server.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self.started_at = 0.0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def pid(self) -> int:
        assert self.proc is not None
        return self.proc.pid

    def start(self) -> None:
        RESULTS.mkdir(parents=True, exist_ok=True)
        out = self.log.open("wb")
        self.started_at = time.perf_counter()
        self.proc = subprocess.Popen(
            self.argv,
            env=self.env,
            cwd=ROOT,
            stdout=out,
            stderr=subprocess.STDOUT,
            preexec_fn=_preexec,
        )
        out.close()

    def wait_ready(self, timeout: float = 120.0, path: str = "/ready") -> float:
        """Poll ``path`` until it answers 200; return seconds since ``start``."""
        deadline = time.perf_counter() + timeout
        while time.perf_counter() < deadline:
            assert self.proc is not None
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited ({self.proc.returncode}); see {self.log}")
            try:
                with urllib.request.urlopen(self.url + path, timeout=1) as response:
                    if response.status == 200:
                        return time.perf_counter() - self.started_at
            except OSError:
                pass
            time.sleep(0.005)
        raise TimeoutError(f"server not ready after {timeout} s; see {self.log}")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def __enter__(self) -> Server:
        self.start()
        try:
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


@contextlib.contextmanager
def timed() -> Iterator[list[float]]:
    """``with timed() as t: ...`` then ``t[0]`` is the elapsed seconds."""
    box: list[float] = []
    start = time.perf_counter()
    try:
        yield box
    finally:
        box.append(time.perf_counter() - start)
