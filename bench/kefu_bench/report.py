"""What every run leaves behind: JSON results, a Markdown summary, and PNG plots, side by side in bench/out/.

`Report` gathers a run's parameters, headline numbers (`summary`), optional table rows, latency
histograms, per-second series and server samples; `save` writes <scenario>-<timestamp>.json, .md,
-latency.png (HdrHistogram percentile distribution, the x axis stretched towards the tail as HdrHistogram's
own plots do) and -throughput.png (events per second, with the server's RSS and CPU under it).
"""

from __future__ import annotations

import itertools
import math
import os
import platform
import shlex
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from . import stats
from .target import Sample

OUT_DIR = Path(__file__).resolve().parents[1] / "out"


def machine() -> dict[str, Any]:
    """What the numbers were measured on."""
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    mem_kb = next(
        (int(ln.split()[1]) for ln in Path("/proc/meminfo").read_text().splitlines() if ln.startswith("MemTotal:")), 0
    )
    return {
        "date_utc": datetime.now(UTC).isoformat(timespec="seconds"),
        "nproc": os.cpu_count(),
        "harness_cpus": sorted(os.sched_getaffinity(0)),
        "cpu_model": model,
        "memory_gib": round(mem_kb / (1 << 20), 1),
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "loadavg_at_end": os.getloadavg(),
        "git": _git(),
    }


def _git() -> str:
    root = Path(__file__).resolve().parents[2]
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=10, check=False).stdout.strip()  # fmt: skip
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=root,
                               capture_output=True, text=True, timeout=10, check=False).stdout.strip()  # fmt: skip
    except OSError:
        return "unknown"
    return f"{head}{' (with uncommitted changes)' if dirty else ''}"


@dataclass
class Report:
    """One run's results."""

    scenario: str
    params: dict[str, Any]
    summary: dict[str, Any] = field(default_factory=dict)
    rows: list[dict[str, Any]] = field(default_factory=list)
    latency: dict[str, HdrHistogram] = field(default_factory=dict)
    series: dict[str, list[int]] = field(default_factory=dict)
    samples: list[Sample] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    command: str = field(default_factory=lambda: shlex.join([Path(sys.executable).name, "-m", "bench.kefu_bench",
                                                            *sys.argv[1:]]))  # fmt: skip
    paths: dict[str, str] = field(default_factory=dict)
    server_metrics: dict[str, float] = field(default_factory=dict)
    phase_metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    """Per measured phase: how much each of the server's counters and histogram buckets grew during it."""

    def document(self) -> dict[str, Any]:
        """The JSON document."""
        t0 = self.samples[0].t if self.samples else 0.0
        return {
            "scenario": self.scenario,
            "command": self.command,
            "machine": machine(),
            "params": self.params,
            "summary": self.summary,
            "rows": self.rows,
            "latency": {
                name: {"summary": stats.summary_ms(h), "hdr": stats.encode(h)} for name, h in self.latency.items()
            },
            "series_per_second": self.series,
            "server_samples": [[round(s.t - t0, 3), s.rss_kb, round(s.cpu_s, 3)] for s in self.samples],
            "notes": self.notes,
            "server_metrics": self.server_metrics,
            "phase_metrics": self.phase_metrics,
        }

    def save(self, out_dir: Path = OUT_DIR) -> dict[str, str]:
        """Write JSON, Markdown and PNGs; returns their paths."""
        out_dir.mkdir(parents=True, exist_ok=True)
        stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
        stem = out_dir / f"{self.scenario}-{stamp}"
        self.paths = {"json": f"{stem}.json", "markdown": f"{stem}.md"}
        if self.latency:
            self.paths["latency_png"] = f"{stem}-latency.png"
        if self.series or self.samples:
            self.paths["throughput_png"] = f"{stem}-throughput.png"
        doc = self.document()
        doc["outputs"] = self.paths
        import json  # noqa: PLC0415

        Path(self.paths["json"]).write_text(json.dumps(doc, indent=1, default=str) + "\n")
        Path(self.paths["markdown"]).write_text(markdown(doc))
        if "latency_png" in self.paths:
            plot_latency(self.latency, Path(self.paths["latency_png"]), self.scenario)
        if "throughput_png" in self.paths:
            plot_throughput(self.series, self.samples, Path(self.paths["throughput_png"]), self.scenario)
        return self.paths


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        if value == 0 or abs(value) >= 100:
            return f"{value:,.0f}"
        return f"{value:.3g}" if abs(value) < 1 else f"{value:,.2f}"
    if isinstance(value, int) and not isinstance(value, bool):
        return f"{value:,}"
    return str(value)


def _table(rows: list[dict[str, Any]]) -> list[str]:
    if not rows:
        return []
    keys = list(dict.fromkeys(k for row in rows for k in row))
    lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
    lines += ["| " + " | ".join(_fmt(row.get(k, "")) for k in keys) + " |" for row in rows]
    return lines


def markdown(doc: dict[str, Any]) -> str:
    """The human summary of a JSON document."""
    m = doc["machine"]
    lines = [
        f"# kefu bench: {doc['scenario']}",
        "",
        f"`{doc['command']}`",
        "",
        f"{m['date_utc']}, {m['nproc']} CPUs ({m['cpu_model']}), {m['memory_gib']} GiB, Python {m['python']}, "
        f"git {m['git']}",
        "",
        "Parameters: " + ", ".join(f"{k}={v}" for k, v in doc["params"].items()),
        "",
        "| result | value |",
        "|---|---|",
        *(f"| {k} | {_fmt(v)} |" for k, v in doc["summary"].items()),
    ]
    if doc["rows"]:
        lines += ["", *_table(doc["rows"])]
    lat = [{"latency": name, **v["summary"]} for name, v in doc["latency"].items()]
    if lat:
        lines += ["", *_table(lat)]
    if doc["notes"]:
        lines += ["", *(f"- {note}" for note in doc["notes"])]
    wanted = ("kefu_retries_total", "kefu_refused_connections_total", "kefu_errors_total")
    picked = {k: v for k, v in doc.get("server_metrics", {}).items() if k.startswith(wanted) and v}
    if picked:
        lines += ["", "Server counters: " + ", ".join(f"{k} {v:g}" for k, v in sorted(picked.items()))]
    return "\n".join(lines) + "\n"


def _matplotlib() -> Any:
    import matplotlib  # noqa: PLC0415 - plotting loads only when a run is saved

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt  # noqa: PLC0415

    return plt


def plot_latency(histograms: dict[str, HdrHistogram], path: Path, title: str) -> None:
    """HdrHistogram-style percentile distribution: latency against 1/(1-percentile), log x."""
    plt = _matplotlib()
    fig, ax = plt.subplots(figsize=(8, 4.5))
    for name, histogram in histograms.items():
        points = [(p, v) for p, v in stats.distribution_ms(histogram) if p < 100.0]
        if points:
            ax.plot([1 / (1 - p / 100) for p, _ in points], [v for _, v in points], label=name)
    ax.set_xscale("log")
    peaks = [h.get_max_value() for h in histograms.values() if h.get_total_count()]
    if peaks and max(peaks) > 100 * max(1, min(peaks)):
        ax.set_yscale("log")  # rates far apart (a seed table): keep the fast one readable
    ticks = [0.0, 90.0, 99.0, 99.9, 99.99, 99.999]
    ax.set_xticks([1 / (1 - t / 100) for t in ticks], [f"{t:g}%" for t in ticks])
    ax.set_xlabel("percentile")
    ax.set_ylabel("latency (ms)")
    ax.set_title(f"kefu {title}: latency by percentile")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend()
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def plot_throughput(series: dict[str, list[int]], samples: list[Sample], path: Path, title: str) -> None:
    """Events per second of each series; the server's RSS and CPU share below."""
    plt = _matplotlib()
    if series:
        fig, (top, bottom) = plt.subplots(2, 1, figsize=(8, 6), sharex=False)
    else:
        fig, bottom = plt.subplots(figsize=(8, 3.5))
        top = None
    for name, counts in series.items():
        top.plot(range(len(counts)), counts, label=name, drawstyle="steps-post")
    if top is not None:
        top.set_ylabel("per second")
        top.set_xlabel("seconds since the phase started")
        top.set_title(f"kefu {title}: throughput")
        top.grid(True, alpha=0.3)
        top.legend()
    else:
        bottom.set_title(f"kefu {title}: server")
    if len(samples) > 1:
        t0 = samples[0].t
        ts = [s.t - t0 for s in samples]
        bottom.plot(ts, [s.rss_kb / 1024 for s in samples], color="tab:red", label="server RSS (MiB)")
        bottom.set_ylabel("RSS (MiB)")
        cpu = bottom.twinx()
        shares = [0.0] + [
            100 * (b.cpu_s - a.cpu_s) / (b.t - a.t) if b.t > a.t else 0.0 for a, b in itertools.pairwise(samples)
        ]
        cpu.plot(ts, shares, color="tab:blue", alpha=0.6, label="server CPU (%)")
        cpu.set_ylabel("CPU (% of one core)")
        bottom.set_xlabel("seconds since the run started")
        bottom.grid(True, alpha=0.3)
        bottom.legend(loc="upper left")
        cpu.legend(loc="upper right")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def per_session_kb(rss_hold_kb: int, rss_empty_kb: int, sessions: int) -> float:
    """(RSS holding - RSS empty) / sessions, in KiB; nan without sessions."""
    return (rss_hold_kb - rss_empty_kb) / sessions if sessions else math.nan
