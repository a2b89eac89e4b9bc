"""Render results as docs/benchmarks.md."""

from __future__ import annotations

import datetime
import os
import platform
from collections.abc import Sequence
from pathlib import Path

from bench.common import ROOT, Result, fmt

__all__ = ["machine", "render", "write"]

DOC = ROOT / "docs" / "benchmarks.md"


def machine() -> list[str]:
    cpu = "unknown CPU"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    ram = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                ram = f"{int(line.split()[1]) / 2**20:.1f} GiB"
    except OSError:
        pass
    return [
        f"CPU: {cpu}, {os.cpu_count()} logical cores",
        f"RAM: {ram}",
        f"Python {platform.python_version()} ({platform.python_implementation()}), "
        f"{platform.system()} {platform.release()}",
    ]


def _status(r: Result) -> str:
    return "n/a" if r.passed is None else ("PASS" if r.passed else "**MISS**")


def render(
    results: Sequence[Result],
    command: str,
    started: datetime.datetime,
    seconds: float,
    preface: Sequence[str] = (),
) -> str:
    lines = [
        "# Benchmarks",
        "",
        "Written by `make bench` (`python -m bench`); do not edit by hand. Targets come from "
        "issue 3 and are never lowered here: a miss is reported with its figure and what "
        "limits it.",
        "",
        *preface,
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; the suite took {seconds / 60:.1f} min",
        f"- Command: `{command}`",
        *(f"- {m}" for m in machine()),
        "- Every figure is the median over repeated runs, with min/max and the number of runs; "
        "each reference is measured in the same run, and the ratio is ours / reference.",
        "",
        "| Benchmark | Measured (median) | Spread | Reference (median, same run) | Ratio "
        "| Target | Result |",
        "|---|---|---|---|---|---|---|",
    ]
    for r in results:
        m = r.measure
        ref = (
            f"{r.reference.label}: {fmt(r.reference.median)} {r.reference.unit}"
            if r.reference
            else "—"
        )
        ratio = f"{r.ratio:.2f}x" if r.ratio is not None else "—"
        spread = f"{fmt(min(m.samples))} to {fmt(max(m.samples))} (n={len(m.samples)})"
        lines.append(
            f"| {r.name} | {m.label}: **{fmt(m.median)} {m.unit}** | {spread} | {ref} | "
            f"{ratio} | {r.target} | {_status(r)} |"
        )
    lines += ["", "## Details", ""]
    for r in results:
        lines += [f"### {r.name}", "", f"- Measured: {r.measure.label}: {r.measure.text()}"]
        if r.reference:
            lines.append(f"- Reference: {r.reference.label}: {r.reference.text()}")
        if r.ratio is not None:
            lines.append(f"- Ratio: {r.ratio:.2f}x")
        lines.append(f"- Target: {r.target} — {_status(r)}")
        lines += [f"- {x}" for x in r.extra]
        for note in r.notes:
            if note.startswith("    "):
                lines.append("      " + note.strip())
            else:
                lines.append(f"- {note}")
        lines.append("")
    return "\n".join(lines)


def write(text: str, path: Path = DOC) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
