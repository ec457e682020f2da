"""What the scripts that compare two paths in the same run against one server share (bench/bench_websocket.py,
bench_http_api.py, bench_webhooks.py; bench_js_client.py takes the load limits from `target`): a `kefu serve` in a
temporary directory with bulk apps and their credentials (`bulk_server`), the event loop the load runs on (`runner`),
the CPU of the server's processes (`processes_cpu_s`), runs alternating between paths (`alternate`), the timed window
of a run (`timed_window`), the options of a paired run (`add_load_args`), and the result: medians (`median_of`,
`compare`), the lines printed (`print_run`, `print_comparison`) and the JSON file (`run_header`, `write_report`), all
at once (`conclude`).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Iterator, Mapping
from pathlib import Path
from typing import Any

from kefu.protocol.crypto import Suite
from kefu.server.identity.bulk import bulk_app_id, derive_secret
from kefu.server.runtime.launch import ServeProcess

from .peer import Credentials
from .target import LOAD_ENV, cpu_s

__all__ = [
    "KEYS", "add_load_args", "alternate", "bulk_server", "compare", "conclude", "median_of", "print_comparison",
    "print_run", "processes_cpu_s", "run_header", "runner", "timed_window", "write_report",
]  # fmt: skip

ROOT = Path(__file__).resolve().parents[2]
KEYS = ("messages_per_s", "server_cpu_us_per_msg", "client_cpu_us_per_msg")
"""What a paired run measures, per path."""


@contextlib.contextmanager
def bulk_server(
    prefix: str,
    count: int,
    *,
    workers: int,
    suite: str = "national",
    seed: str | None = None,
    role: str | None = None,
    env: Mapping[str, str] | None = None,
    temp_prefix: str = "kefu-bench-",
) -> Iterator[tuple[ServeProcess, list[Credentials], Path]]:
    """A started `kefu serve` with `[server] workers`, in a temporary data directory holding the bulk apps
    PREFIX0 .. PREFIX{count-1} (secrets derived from `seed`, a random one by default; `role`: `--role` of add-bulk);
    yields (server, their credentials for `suite`, the data directory) and stops the server after. `env` is the
    server's environment besides the workers: by default the harness's load limits and warning-level logs."""
    if env is None:
        env = {**LOAD_ENV, "KEFU_LOG_LEVEL": "warning"}
    with tempfile.TemporaryDirectory(prefix=temp_prefix) as tmp:
        data = Path(tmp) / "data"
        seed = seed if seed is not None else os.urandom(16).hex()
        roles = ["--role", role] if role else []
        subprocess.run(
            [sys.executable, "-m", "kefu.server.cli", "app", "add-bulk", prefix, str(count), "--secret-seed", seed,
             *roles, "--data-dir", str(data)],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip
        server = ServeProcess(data, env={**env, "KEFU_SERVER_WORKERS": str(workers)}, log_path=Path(tmp) / "server.log")
        server.start()
        try:
            pins = frozenset((data / "keys" / "pins.txt").read_text().split())
            chosen = Suite.NATIONAL if suite == "national" else Suite.INTERNATIONAL
            creds = [
                Credentials(app, derive_secret(seed.encode(), app), pins, chosen)
                for app in (bulk_app_id(prefix, i) for i in range(count))
            ]
            yield server, creds, data
        finally:
            server.stop()


def runner() -> Callable[[Coroutine[Any, Any, Any]], Any]:
    """uvloop.run where uvloop is installed, else asyncio.run."""
    try:
        import uvloop  # noqa: PLC0415
    except ImportError:
        return asyncio.run
    return uvloop.run


def processes_cpu_s(pids: list[int]) -> float:
    """User + system CPU seconds of these processes, summed (from /proc/PID/stat; a gone process counts 0)."""
    return sum(cpu_s(pid) for pid in pids)


async def timed_window(server: ServeProcess, seconds: float, delivered: Callable[[], int]) -> dict[str, float]:
    """Wait `seconds` and measure them: messages/s (`delivered()`: the count so far), and the CPU per message of the
    server's processes and of this one (NaN when no message arrived); "messages" is the count."""
    pids = server.processes()
    d0, c0, s0, w0 = delivered(), time.process_time(), processes_cpu_s(pids), time.perf_counter()
    await asyncio.sleep(seconds)
    d1, c1, s1, w1 = delivered(), time.process_time(), processes_cpu_s(pids), time.perf_counter()
    messages = d1 - d0
    return {
        "messages_per_s": messages / (w1 - w0),
        "server_cpu_us_per_msg": (s1 - s0) / messages * 1e6 if messages else float("nan"),
        "client_cpu_us_per_msg": (c1 - c0) / messages * 1e6 if messages else float("nan"),
        "messages": messages,
    }


def median_of(runs: list[dict[str, float]], key: str) -> float:
    """The median of `key` over `runs`."""
    return statistics.median(r[key] for r in runs)


def add_load_args(
    parser: argparse.ArgumentParser, *, pairs: int, pairs_help: str, runs_of: str, window_help: str
) -> None:
    """The options of a paired closed-loop run, in this order: --pairs, --seconds, --runs (of each `runs_of`,
    alternating), --size, --window and --server-workers."""
    options: list[tuple[str, type, object, str]] = [
        ("--pairs", int, pairs, pairs_help),
        ("--seconds", float, 5.0, "timed window of each run"),
        ("--runs", int, 5, f"runs of each {runs_of} (alternating)"),
        ("--size", int, 100, "message body bytes"),
        ("--window", int, 4, window_help),
        ("--server-workers", int, 1, "[server] workers of the server (0: one process)"),
    ]
    for flag, kind, default, text in options:
        parser.add_argument(flag, type=kind, default=default, help=text)


def compare(
    runs: dict[str, list[dict[str, float]]], base: str, other: str
) -> tuple[dict[str, dict[str, float]], dict[str, float]]:
    """The medians of KEYS over each path's runs (`base` first), and the ratios `other` / `base`."""
    summary = {path: {key: median_of(runs[path], key) for key in KEYS} for path in (base, other)}
    return summary, {key: summary[other][key] / summary[base][key] for key in KEYS}


async def alternate(
    count: int, measures: dict[str, Callable[[], Awaitable[dict[str, float]]]], more: Callable[[dict[str, float]], str]
) -> dict[str, list[dict[str, float]]]:
    """`count` runs of each path in `measures` (by name), alternating so that all see the same machine; each run's
    line printed as it ends (with `more(result)` after it). The results by path, in order."""
    runs: dict[str, list[dict[str, float]]] = {path: [] for path in measures}
    width = max(len(path) for path in measures)
    for n in range(count):
        for path, measure in measures.items():
            result = await measure()
            runs[path].append(result)
            print_run(n, path, width, result, more(result))
    return runs


def print_run(n: int, path: str, width: int, result: dict[str, float], more: str = "") -> None:
    """The line of run `n` (from 0) over `path` (right-aligned to `width`), with `more` after it."""
    print(f"run {n + 1} {path:>{width}}: {result['messages_per_s']:9,.0f} msg/s, server "
          f"{result['server_cpu_us_per_msg']:6.1f} us/msg, client {result['client_cpu_us_per_msg']:6.1f} us/msg{more}",
          flush=True)  # fmt: skip


def print_comparison(summary: dict[str, dict[str, float]], ratio: dict[str, float], base: str, other: str) -> None:
    """A line of medians per path, then the ratios."""
    width = max(len(base), len(other))
    for path in (base, other):
        s = summary[path]
        print(f"  {path:>{width}}: {s['messages_per_s']:9,.0f} msg/s, server {s['server_cpu_us_per_msg']:6.1f} us/msg,"
              f" client {s['client_cpu_us_per_msg']:6.1f} us/msg")  # fmt: skip
    print(f"  {other}/{base}: messages/s x{ratio['messages_per_s']:.2f}, server CPU/msg"
          f" x{ratio['server_cpu_us_per_msg']:.2f}, client CPU/msg x{ratio['client_cpu_us_per_msg']:.2f}")  # fmt: skip


def conclude(
    bench: str,
    argv: list[str] | None,
    args: argparse.Namespace,
    runs: dict[str, list[dict[str, float]]],
    base: str,
    other: str,
    headline: str,
) -> None:
    """The end of a paired run: `headline`, the medians and ratios printed, and the JSON report (header, "median",
    "OTHER_over_BASE", "runs") written to `args.out`."""
    summary, ratio = compare(runs, base, other)
    report = {**run_header(bench, argv, args), "median": summary, f"{other}_over_{base}": ratio, "runs": runs}
    print(headline)
    print_comparison(summary, ratio, base, other)
    write_report(args.out, report)


def run_header(bench: str, argv: list[str] | None, args: argparse.Namespace, *, commit: bool = True) -> dict[str, Any]:
    """The opening of a result file: the bench, the command line, the parameters, the machine and (`commit`) the
    commit checked out."""
    header = {
        "bench": bench,
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(argv if argv is not None else sys.argv[1:])]),
        "parameters": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
    }
    if commit:
        header["commit"] = subprocess.run(
            ["git", "-C", str(ROOT), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=False
        ).stdout.strip()
    return header


def write_report(path: Path, report: dict[str, Any]) -> None:
    """`report` as JSON to `path` (its folder made if need be), and where it went to stdout."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(report, indent=2) + "\n")
    print(f"raw results: {path}")
