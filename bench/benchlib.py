"""Measurement and reporting shared by kefu's micro-benchmarks.

A benchmark is a `Trial`: a function that does its own untimed set-up, times one or more sections of work
on a `Stopwatch`, checks the outcome untimed, and returns how many operations it timed. `measure` runs a
trial once to warm up and then `runs` times, and keeps the per-operation wall and CPU time of every run.
Each section is timed as a whole batch (timeit-style) with the garbage collector off, so the clock is
read twice per batch, never per operation; per-operation times include the loop's own overhead.
"""

from __future__ import annotations

import gc
import os
import platform
import ssl
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any


class Stopwatch:
    """Accumulates the wall and CPU time of named sections of one run."""

    def __init__(self) -> None:
        self.wall_ns: dict[str, int] = {}
        self.cpu_ns: dict[str, int] = {}

    @contextmanager
    def timing(self, section: str = "total") -> Iterator[None]:
        """Time the block with `perf_counter_ns` (wall) and `process_time_ns` (CPU), the collector off."""
        gc.collect()
        was_enabled = gc.isenabled()
        gc.disable()
        cpu0 = time.process_time_ns()
        wall0 = time.perf_counter_ns()
        try:
            yield
        finally:
            wall1 = time.perf_counter_ns()
            cpu1 = time.process_time_ns()
            if was_enabled:
                gc.enable()
            self.wall_ns[section] = self.wall_ns.get(section, 0) + wall1 - wall0
            self.cpu_ns[section] = self.cpu_ns.get(section, 0) + cpu1 - cpu0


Trial = Callable[[Stopwatch], int]
"""One run: set up untimed, time sections on the stopwatch, check untimed, return the operations timed."""


@dataclass(slots=True)
class Result:
    """Per-operation times of one benchmark over its runs, in microseconds."""

    name: str
    group: str
    description: str
    ops_per_run: int
    wall_us: list[float]
    cpu_us: list[float]
    sections_us: dict[str, list[float]] = field(default_factory=dict)
    target_us: float | None = None
    baseline: str | None = None
    ratio: float | None = None
    """Median over the sum of the baselines' medians, from the same run of the program."""

    @property
    def median(self) -> float:
        """Median wall time per operation."""
        return statistics.median(self.wall_us)

    @property
    def passed(self) -> bool | None:
        """Whether the median meets the target (None when there is no target)."""
        return None if self.target_us is None else self.median <= self.target_us

    def summary(self) -> dict[str, Any]:
        """A JSON-ready record: every run's numbers, the medians and the ranges."""
        data = asdict(self)
        data |= {
            "wall_median_us": self.median,
            "wall_min_us": min(self.wall_us),
            "wall_max_us": max(self.wall_us),
            "cpu_median_us": statistics.median(self.cpu_us),
            "sections_median_us": {k: statistics.median(v) for k, v in self.sections_us.items()},
            "passed": self.passed,
        }
        return data


def measure(name: str, group: str, description: str, trial: Trial, runs: int) -> Result:
    """Run `trial` once to warm up, then `runs` times; per-operation wall and CPU time of each run."""
    trial(Stopwatch())
    wall: list[float] = []
    cpu: list[float] = []
    sections: dict[str, list[float]] = {}
    ops = 0
    for _ in range(runs):
        watch = Stopwatch()
        ops = trial(watch)
        wall.append(sum(watch.wall_ns.values()) / ops / 1000)
        cpu.append(sum(watch.cpu_ns.values()) / ops / 1000)
        if len(watch.wall_ns) > 1:
            for section, ns in watch.wall_ns.items():
                sections.setdefault(section, []).append(ns / ops / 1000)
    return Result(name, group, description, ops, wall, cpu, sections)


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    from cryptography.hazmat.backends.openssl import backend  # noqa: PLC0415 - reporting only

    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count(),
        "cpu_model": model,
        "platform": platform.platform(),
        "python": sys.version.split()[0],
        "openssl_system": ssl.OPENSSL_VERSION,
        "openssl_cryptography": backend.openssl_version_text(),
        "cryptography": _version("cryptography"),
        "gmssl_pyx": _version("gmssl_pyx"),
        "loadavg": os.getloadavg(),
    }


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def table(results: list[Result]) -> str:
    """The human-readable table: medians, ranges, CPU, targets, verdicts, baselines and ratios."""
    head = (
        f"{'benchmark':40} {'median us':>10} {'min..max us':>19} {'cpu us':>9} {'target':>7}  {'pass':4}  "
        "ratio to baseline (same run)"
    )
    lines = [head, "-" * len(head)]
    group = ""
    for r in results:
        if r.group != group:
            group = r.group
            lines.append(f"[{group}]")
        target = "" if r.target_us is None else f"{r.target_us:g}"
        verdict = {None: "", True: "yes", False: "NO"}[r.passed]
        ratio = "" if r.ratio is None else f"{r.ratio:.2f}x {r.baseline}"
        span = f"{min(r.wall_us):.3f}..{max(r.wall_us):.3f}"
        cpu = statistics.median(r.cpu_us)
        lines.append(f"{r.name:40} {r.median:10.3f} {span:>19} {cpu:9.3f} {target:>7}  {verdict:4}  {ratio}".rstrip())
        for section, values in r.sections_us.items():
            lines.append(f"  {'- ' + section:38} {statistics.median(values):10.3f}")
    return "\n".join(lines)
