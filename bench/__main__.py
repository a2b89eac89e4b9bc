"""``python -m bench [names...] [--quick] [--repeats N] [--out PATH]``: run the benchmarks.

Names: aggregation, batch, rest, fanout, ingest, recovery, indicators, engine, engine_journal,
exchange_http, exchange_recovery, scaleout (default: all, in that order).
``--quick`` runs smaller inputs and fewer rounds, for checking the harness, not for figures.
"""

from __future__ import annotations

import argparse
import datetime
import importlib
import shlex
import sys
import time
import traceback
from pathlib import Path

from bench.common import Measure, Options, Result, raise_fd_limit
from bench.report import DOC, render, write

NAMES = (
    "aggregation",
    "batch",
    "rest",
    "fanout",
    "ingest",
    "recovery",
    "indicators",
    "engine",
    "engine_journal",
    "exchange_http",
    "exchange_recovery",
    "scaleout",
)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m bench", description=__doc__)
    parser.add_argument(
        "names",
        nargs="*",
        metavar="NAME",
        help=f"benchmarks to run: {', '.join(NAMES)} (default: all)",
    )
    parser.add_argument("--quick", action="store_true", help="small inputs, few rounds")
    parser.add_argument("--repeats", type=int, default=5, help="runs per figure (default 5)")
    parser.add_argument(
        "--note", action="append", default=[], help="a line to print above the table (repeatable)"
    )
    parser.add_argument("--out", type=Path, default=DOC, help=f"report path (default {DOC})")
    args = parser.parse_args(argv)
    names = args.names or list(NAMES)
    unknown = sorted(set(names) - set(NAMES))
    if unknown:
        parser.error(f"unknown benchmark {', '.join(unknown)}; choose from {', '.join(NAMES)}")
    opts = Options(quick=args.quick, repeats=args.repeats)
    raise_fd_limit()
    started = datetime.datetime.now(datetime.UTC)
    t0 = time.perf_counter()
    results: list[Result] = []
    for name in names:
        print(f"== {name}", file=sys.stderr, flush=True)
        t = time.perf_counter()
        try:
            got = importlib.import_module(f"bench.{name}").run(opts)
        except Exception as exc:
            traceback.print_exc()
            got = [
                Result(
                    name,
                    Measure("failed", "", [float("nan")]),
                    "—",
                    None,
                    notes=[f"the benchmark failed: {exc!r}"],
                )
            ]
        for r in got:
            print(
                f"   {r.name}: {r.measure.text()}"
                + (f" vs {r.reference.text()}" if r.reference else "")
                + f" -> {'n/a' if r.passed is None else 'PASS' if r.passed else 'MISS'}",
                file=sys.stderr,
                flush=True,
            )
        print(f"   ({time.perf_counter() - t:.0f} s)", file=sys.stderr, flush=True)
        results += got
    command = "python -m bench" + "".join(f" {shlex.quote(a)}" for a in (argv or sys.argv[1:]))
    preface = (
        ["**Quick mode: small inputs and few rounds; not figures to quote.**"] if opts.quick else []
    )
    preface += args.note
    write(render(results, command, started, time.perf_counter() - t0, preface), args.out)
    print(f"wrote {args.out}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
