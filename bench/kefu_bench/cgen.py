"""The C load generator (bench/cgen) driven from Python: build it, split the load over processes, merge.

Theory of operation: `bench/cgen/build/cgen` is one single-threaded epoll process that speaks the protocol
itself (see bench/cgen/README.md). A run here starts K of them, each with its share: consecutive user,
pair or connector ranges, and its own loopback source addresses (127.0.0.2, 127.0.0.3, ...; at most
`CONNECTIONS_PER_ADDRESS` sockets on each). Every process is started with --wait-start: when it reaches a
timed phase it prints one JSON line ``{"ready": PHASE, ...}`` and waits; once all K are ready, the driver
writes ``start T0_NS`` (CLOCK_MONOTONIC, common to every process on the host) to each, so open-loop
schedules and holds start together. Each process ends by printing its results as its last stdout line.
Latency histograms travel as HdrHistogram buckets (lowest equivalent value in microseconds, count) and are
rebuilt exactly with `record_value(value, count)`; counts, errors and per-second series are added up.

    python -m bench.kefu_bench.cgen chat --pairs 1000 --rate 2000 --duration 20
    python -m bench.kefu_bench.cgen hold --sessions 15000 --hold 30 --processes 2
    python -m bench.kefu_bench.cgen chat ... --generator python   # the same load from the Python harness

Against a running server give --port and --data-dir (pins and bulk apps live there); otherwise a server is
spawned in a temporary directory as target.py does.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import queue
import resource
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from hdrh.histogram import HdrHistogram

from . import stats

CGEN_DIR = Path(__file__).resolve().parents[1] / "cgen"
BINARY = CGEN_DIR / "build" / "cgen"
VECTORS_DIR = Path(__file__).resolve().parents[2] / "spec" / "vectors"
SESSIONS_PER_PROCESS = 18_000
"""A process may hold 20,000 descriptors here; keep a margin for epoll, the timerfd and the pipes."""
CONNECTIONS_PER_ADDRESS = 10_000
"""Each loopback source address has ~28k ephemeral ports; a third of that leaves room for TIME_WAIT."""
READY_TIMEOUT_S = 600.0
"""A ramp of 100,000 national handshakes on this machine takes minutes, not more."""
START_DELAY_S = 1.0
"""T0 is this far after the start command, so that every process is waiting for it when it comes."""
MARGIN_S = 30.0
"""Processes get the run's deadline minus this, so that the driver still collects their numbers."""
HIST_KEYS = ("handshake", "deliver", "ack", "latency")


def build() -> Path:
    """Build (or bring up to date) the generator with make; returns the binary's path."""
    proc = subprocess.run(["make", "-s", "-C", str(CGEN_DIR)], capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not BINARY.exists():
        raise RuntimeError(f"building bench/cgen failed:\n{proc.stdout}{proc.stderr}")
    return BINARY


def selftest(vectors: Path = VECTORS_DIR) -> dict[str, Any]:
    """Run `cgen selftest` on the vector files; its JSON (checks, failures, groups)."""
    proc = subprocess.run([str(build()), "selftest", str(vectors)], capture_output=True, text=True, check=False)
    result: dict[str, Any] = json.loads(proc.stdout)
    result["returncode"] = proc.returncode
    return result


@dataclass(frozen=True)
class Target:
    """The server under load: where it listens and its data directory (pins, bulk apps)."""

    port: int
    data_dir: Path
    host: str = "127.0.0.1"
    pid: int = 0

    @property
    def pins_file(self) -> Path:
        """The server's key pins (`kefu serve` writes them)."""
        return self.data_dir / "keys" / "pins.txt"

    def add_bulk(self, prefix: str, count: int, seed: str) -> None:
        """Make sure apps PREFIX0..PREFIX{count-1} exist (`kefu app add-bulk`, idempotent)."""
        subprocess.run(
            [sys.executable, "-m", "kefu.server.cli", "app", "add-bulk", prefix, str(count), "--secret-seed", seed,
             "--data-dir", str(self.data_dir)],
            check=True, capture_output=True, timeout=900,
        )  # fmt: skip


def split(total: int, parts: int) -> list[range]:
    """Consecutive ranges of near-equal size covering range(total)."""
    out, start = [], 0
    for i in range(parts):
        n = total // parts + (1 if i < total % parts else 0)
        out.append(range(start, start + n))
        start += n
    return out


def address_blocks(sessions: Sequence[int]) -> list[list[str]]:
    """Distinct loopback source addresses per process, enough for its sessions (127.0.0.2 upward)."""
    blocks, next_index = [], 2
    for n in sessions:
        count = max(1, math.ceil(n / CONNECTIONS_PER_ADDRESS))
        blocks.append([f"127.{i // 65536}.{i // 256 % 256}.{i % 256}" for i in range(next_index, next_index + count)])
        next_index += count
    return blocks


class Generators:
    """K generator processes of one run, their stdout lines gathered by reader threads."""

    def __init__(self, argvs: list[list[str]], log_dir: Path) -> None:
        self.lines: queue.Queue[tuple[int, str | None]] = queue.Queue()
        self.procs: list[subprocess.Popen[str]] = []
        self.logs = [log_dir / f"cgen-{i}.log" for i in range(len(argvs))]
        for i, argv in enumerate(argvs):
            with self.logs[i].open("w") as log:
                proc = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=log, text=True)
            self.procs.append(proc)
            threading.Thread(target=self._read, args=(i, proc), daemon=True).start()
        self.last: list[dict[str, Any] | None] = [None] * len(argvs)

    def _read(self, i: int, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            self.lines.put((i, line))
        self.lines.put((i, None))

    def wait_all(self, key: str, timeout: float) -> list[dict[str, Any]]:
        """The next JSON line with `key` from every process (ready lines, or final results)."""
        got: dict[int, dict[str, Any]] = {}
        ended: set[int] = set()
        end = time.monotonic() + timeout
        while len(got) + len(ended - set(got)) < len(self.procs):
            try:
                i, line = self.lines.get(timeout=max(0.01, end - time.monotonic()))
            except queue.Empty:
                break
            if line is None:
                ended.add(i)
                continue
            try:
                doc = json.loads(line)
            except json.JSONDecodeError:
                continue
            if key in doc:
                got[i] = doc
        missing = [i for i in range(len(self.procs)) if i not in got]
        if missing:
            tails = {i: self.logs[i].read_text()[-500:] for i in missing}
            raise RuntimeError(f"generator processes {missing} sent no {key!r} line: {tails}")
        return [got[i] for i in range(len(self.procs))]

    def start(self, t0_ns: int) -> None:
        """Release every process waiting at a gate, on a common T0."""
        for proc in self.procs:
            assert proc.stdin is not None
            proc.stdin.write(f"start {t0_ns}\n")
            proc.stdin.flush()

    def close(self) -> None:
        """Wait for the processes (they stop by themselves), killing any still alive after a while."""
        for proc in self.procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            for pipe in (proc.stdin, proc.stdout):
                if pipe is not None:
                    pipe.close()


def _run(mode: str, target: Target, shares: list[dict[str, Any]], common: list[str], gates: int,
         max_seconds: float, on_start: Callable[[int], object] | None = None) -> list[dict[str, Any]]:  # fmt: skip
    """Run one generator process per share, release each of `gates` gates together, return their results.
    `on_start(t0_ns)` is called as each gate is released (T0 is START_DELAY_S later): a caller starts other load
    with the timed phase."""
    binary = build()
    deadline = max(10.0, max_seconds - MARGIN_S)
    argvs = []
    for wid, share in enumerate(shares):
        argvs.append([
            str(binary), mode, "--port", str(target.port), "--host", target.host, "--pins-file", str(target.pins_file),
            "--first", str(share["first"]), "--count", str(share["count"]), "--src", ",".join(share["src"]),
            "--wid", str(wid), "--deadline", f"{deadline:g}", "--wait-start", *common, *share.get("extra", []),
        ])  # fmt: skip
    gate_t0: list[int] = []
    with tempfile.TemporaryDirectory(prefix="cgen-") as tmp:
        gens = Generators(argvs, Path(tmp))
        try:
            for _ in range(gates):
                gens.wait_all("ready", READY_TIMEOUT_S)
                gate_t0.append(time.monotonic_ns() + int(START_DELAY_S * 1e9))
                gens.start(gate_t0[-1])
                if on_start is not None:
                    on_start(gate_t0[-1])
            results = gens.wait_all("mode", deadline + MARGIN_S / 2)
        finally:
            gens.close()
    for result in results:  # when each timed phase began (CLOCK_MONOTONIC ns), for the caller's server readings
        result["gate_t0_ns"] = gate_t0
    return results


# --- merging ------------------------------------------------------------------------------------------------


def histogram(doc: dict[str, Any] | None) -> HdrHistogram:
    """An HdrHistogram from a generator's bucket list."""
    h = stats.new_histogram()
    for value, count in (doc or {}).get("buckets", []):
        h.record_value(value, count)
    return h


def merge_histograms(docs: list[dict[str, Any]]) -> HdrHistogram:
    """One histogram holding every process's samples (exact: the buckets are HdrHistogram's own)."""
    total = stats.new_histogram()
    for doc in docs:
        total.add(histogram(doc))
    return total


def add_counts(docs: list[dict[str, Any]]) -> dict[str, int]:
    """Per-code (or per-name) counts added up."""
    out: dict[str, int] = {}
    for doc in docs:
        for k, v in doc.items():
            out[k] = out.get(k, 0) + v
    return out


def merge(parts: list[dict[str, Any]]) -> dict[str, Any]:
    """The processes' results as one: numbers added, histograms merged, dicts of counts added up."""
    merged: dict[str, Any] = {"processes": len(parts)}
    for key, value in parts[0].items():
        values = [p.get(key) for p in parts]
        if key in HIST_KEYS:
            merged[key] = merge_histograms([v for v in values if v])
        elif key in (
            "max_sender_lag_ms",
            "elapsed_s",
            "ramp_s",
            "hold_s",
            "window_s",
            "phase_reached",
            "refusal_wait_ms_max",
        ):
            merged[key] = max(v for v in values if v is not None)
        elif key in ("sent_per_s", "delivered_per_s", "answered_per_s", "refused_per_s"):
            merged[key] = stats.add_series([v for v in values if v])
        elif key == "gate_t0_ns":
            merged[key] = value
        elif key == "start_ns":  # a stage's span over every process (CLOCK_MONOTONIC ns)
            merged[key] = min(v for v in values if v is not None)
        elif key == "end_ns":
            merged[key] = max(v for v in values if v is not None)
        elif key in ("fail_codes", "drop_codes", "errors", "goaway_codes"):
            merged[key] = add_counts([v for v in values if v])
        elif key == "setup":
            merged[key] = {k: sum(p[key][k] for p in parts) for k in value}
        elif key == "stages":
            merged[key] = [_merge_stage([p["stages"][i] for p in parts]) for i in range(len(value))]
        elif isinstance(value, bool):
            merged[key] = any(values)
        elif isinstance(value, (int, float)) and key not in ("wid", "t0_ns", "pairs_per_process"):
            merged[key] = sum(v for v in values if v is not None)
    merged["per_process"] = [{k: p.get(k) for k in ("wid", "cpu_s", "maxrss_kb", "connected")} for p in parts]
    return merged


def _merge_stage(stages: list[dict[str, Any]]) -> dict[str, Any]:
    out = merge(stages)
    out.update(suite=stages[0]["suite"], mode=stages[0]["mode"])
    out["per_s"] = out["handshakes"] / out["elapsed_s"] if out.get("elapsed_s") else 0.0
    out["cpu_ms_per_handshake"] = 1000 * out["cpu_s"] / out["handshakes"] if out.get("handshakes") else 0.0
    del out["per_process"]
    return out


# --- the runs -------------------------------------------------------------------------------------------------


def _common(suite: str, prefix: str, seed: str, concurrency: int) -> list[str]:
    return ["--suite", suite, "--prefix", prefix, "--seed", seed, "--concurrency", str(concurrency)]


def _processes(sessions: int, requested: int) -> int:
    return max(requested or 1, math.ceil(sessions / SESSIONS_PER_PROCESS))


def run_hold(target: Target, sessions: int, hold_s: float, *, processes: int = 0, suite: str = "national",
             prefix: str = "benchc", seed: str = "kefu-bench", concurrency: int = 128, first: int = 0,
             max_seconds: float = 900.0, add_users: bool = True, keepalive_ms: int = 0) -> dict[str, Any]:  # fmt: skip
    """Open `sessions` sessions (apps PREFIX<first..>), hold them `hold_s` seconds; merged results. `keepalive_ms`:
    the keepalive each session asks for (0: the generator's default, the protocol's maximum, so idle sessions
    send no PING during a short hold)."""
    procs = _processes(sessions, processes)
    if add_users:
        target.add_bulk(prefix, first + sessions, seed)
    ranges = split(sessions, procs)
    src = address_blocks([len(r) for r in ranges])
    shares = [{"first": first + r.start, "count": len(r), "src": a} for r, a in zip(ranges, src, strict=True)]
    common = [*_common(suite, prefix, seed, concurrency), "--hold", f"{hold_s:g}"]
    if keepalive_ms:
        common += ["--keepalive-ms", str(keepalive_ms)]
    result = merge(_run("hold", target, shares, common, 1, max_seconds + hold_s))
    result["rss_per_session_kb"] = (result["rss_after_ramp_kb"] - result["rss_before_ramp_kb"]) / max(
        1, result["connected"]
    )
    result["cpu_ms_per_handshake"] = 1000 * result["cpu_ramp_s"] / max(1, result["connected"])
    return result


def run_chat(target: Target, pairs: int, rate: float, duration: float, *, processes: int = 0,
             suite: str = "national", prefix: str = "benchcm", seed: str = "kefu-bench", concurrency: int = 128,
             body_bytes: int = 200, drain_s: float = 15.0, closed_window: int = 0, warmup: float = 0.0,
             max_seconds: float = 900.0, add_users: bool = True,
             on_start: Callable[[int], object] | None = None) -> dict[str, Any]:  # fmt: skip
    """`chat` at an aggregate `rate` (open loop), or with `closed_window` > 0 `throughput` (closed loop).
    `on_start(t0_ns)`: called when the timed phase is released, before it begins (see `_run`)."""
    procs = _processes(2 * pairs, processes or 2)
    procs = min(procs, pairs)
    if add_users:
        target.add_bulk(prefix, 2 * pairs, seed)
    ranges = split(pairs, procs)
    src = address_blocks([2 * len(r) for r in ranges])
    base = int.from_bytes(os.urandom(3), "big") << 32  # a fresh conversation id range per run, as traffic.py
    shares: list[dict[str, Any]] = [
        {"first": r.start, "count": len(r), "src": a} for r, a in zip(ranges, src, strict=True)
    ]
    common = [
        *_common(suite, prefix, seed, concurrency),
        "--duration", f"{duration:g}", "--body-bytes", str(body_bytes), "--drain", f"{drain_s:g}",
        "--conv-base", str(base), "--warmup", f"{warmup:g}",
    ]  # fmt: skip
    mode = "throughput" if closed_window else "chat"
    if closed_window:
        common += ["--window", str(closed_window)]
    for share in shares:  # each process sends its pairs' share of the rate
        share["extra"] = ["--rate", f"{rate * share['count'] / pairs:.6f}"] if not closed_window else []
    result = merge(_run(mode, target, shares, common, 1, max_seconds + duration + drain_s, on_start))
    result["rate"] = rate
    result["duration_s"] = duration
    if not closed_window:
        result["undelivered"] = result.get("undelivered", 0)
    else:
        result["acked_per_s"] = result["acked_in_window"] / duration if duration else 0.0
    return result


def run_handshake(target: Target, connectors: int, per_connector: int, *, processes: int = 2,
                  suites: str = "national,international", prefix: str = "benchch", seed: str = "kefu-bench",
                  max_seconds: float = 900.0, add_users: bool = True) -> dict[str, Any]:  # fmt: skip
    """Handshake storms: per suite, full then resumed; merged per stage."""
    procs = max(1, min(processes, connectors))
    if add_users:
        target.add_bulk(prefix, connectors, seed)
    ranges = split(connectors, procs)
    src = address_blocks([len(r) * per_connector for r in ranges])
    shares = [{"first": r.start, "count": len(r), "src": a} for r, a in zip(ranges, src, strict=True)]
    nsuites = len([s for s in suites.split(",") if s.strip()])
    common = ["--suite", suites, "--prefix", prefix, "--seed", seed, "--per-connector", str(per_connector)]
    return merge(_run("handshake", target, shares, common, 2 * nsuites, max_seconds))


def run_flood(target: Target, sources: Sequence[str], sockets: int, duration: float, *, processes: int = 1,
              suite: str = "national", prefix: str = "benchfl", seed: str = "kefu-bench", hellos: int = 16,
              max_seconds: float = 120.0, add_users: bool = True) -> dict[str, Any]:  # fmt: skip
    """A handshake flood (`cgen flood`) from `sources` with `sockets` connections at a time, for `duration` s:
    each process takes its share of the addresses and sockets and replays `hellos` CLIENT_HELLOs of apps
    PREFIX0..; merged counts, per-second series and the time to the server's flight (`latency`)."""
    procs = max(1, min(processes, len(sources), sockets))
    if add_users:
        target.add_bulk(prefix, hellos, seed)
    blocks = split(len(sources), procs)
    socket_shares = split(sockets, procs)
    shares: list[dict[str, Any]] = [
        {"first": 0, "count": hellos, "src": [sources[i] for i in block],
         "extra": ["--concurrency", str(len(share))]}
        for block, share in zip(blocks, socket_shares, strict=True)
    ]  # fmt: skip
    common = ["--suite", suite, "--prefix", prefix, "--seed", seed, "--duration", f"{duration:g}"]
    result = merge(_run("flood", target, shares, common, 1, max_seconds + duration))
    result["duration_s"] = duration
    return result


# --- command line ---------------------------------------------------------------------------------------------


def _summary(result: dict[str, Any]) -> dict[str, Any]:
    """The result with histograms turned into summaries (for printing)."""
    out: dict[str, Any] = {}
    for k, v in result.items():
        if isinstance(v, HdrHistogram):
            out[k] = stats.summary_ms(v)
        elif k == "stages":
            out[k] = [_summary(s) for s in v]
        else:
            out[k] = v
    return out


def _python_generator(args: argparse.Namespace, target: Target, pid: int) -> dict[str, Any]:
    """The same load from the Python harness (attached to the same server); its CPU from RUSAGE_CHILDREN."""
    scenario = {"hold": "connect", "chat": "chat", "throughput": "throughput", "handshake": "handshake"}[args.mode]
    argv = [sys.executable, "-m", "bench.kefu_bench", scenario, "--port", str(target.port), "--pid", str(pid),
            "--data-dir", str(target.data_dir), "--suite", args.suite.split(",")[0], "--no-pin",
            "--max-seconds", f"{args.max_seconds:g}"]  # fmt: skip
    if args.processes:
        argv += ["--processes", str(args.processes)]
    if args.mode == "chat":
        argv += ["--pairs", str(args.pairs), "--rate", f"{args.rate:g}", "--duration", f"{args.duration:g}"]
    elif args.mode == "hold":
        argv += ["--connections", str(args.sessions), "--hold", f"{args.hold:g}"]
    elif args.mode == "throughput":
        argv += ["--connections", str(2 * args.pairs), "--window", str(args.window), "--duration",
                 f"{args.duration:g}"]  # fmt: skip
    else:
        argv += ["--connectors", str(args.connectors), "--per-connector", str(args.per_connector)]
    with tempfile.TemporaryDirectory(prefix="cgen-py-") as out:
        before = resource.getrusage(resource.RUSAGE_CHILDREN)
        started = time.monotonic()
        with subprocess.Popen(
            [*argv, "--out", out], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True
        ) as proc:
            peak = _peak_rss_kb(proc, exclude=pid)
            stderr = proc.stderr.read() if proc.stderr else ""
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        reports = sorted(Path(out).glob("*.json"))
        report = json.loads(reports[-1].read_text()) if reports else {}
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return {
        "generator": "python",
        "returncode": proc.returncode,
        "cpu_s": cpu,
        "peak_rss_kb": peak,
        "elapsed_s": time.monotonic() - started,
        "summary": report.get("summary", {}),
        "stderr_tail": stderr[-800:] if proc.returncode else "",
    }


def _descendants(root: int) -> list[int]:
    """PIDs of `root` and every process below it (from /proc)."""
    parents: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                text = (entry / "stat").read_text()
            except OSError:
                continue
            parents.setdefault(int(text[text.rindex(")") + 2 :].split()[1]), []).append(int(entry.name))
    out, todo = [], [root]
    while todo:
        pid = todo.pop()
        out.append(pid)
        todo += parents.get(pid, [])
    return out


def _peak_rss_kb(proc: subprocess.Popen[str], exclude: int) -> int:
    """Poll the summed VmRSS of `proc` and its descendants (not `exclude`) until it exits; the peak."""
    from .target import rss_kb  # noqa: PLC0415

    peak = 0
    while proc.poll() is None:
        peak = max(peak, sum(rss_kb(p) for p in _descendants(proc.pid) if p != exclude))
        time.sleep(0.5)
    return peak


def build_parser() -> argparse.ArgumentParser:
    """The argparse tree of `python -m bench.kefu_bench.cgen`."""
    p = argparse.ArgumentParser(prog="python -m bench.kefu_bench.cgen", description="Drive the C load generator.")
    p.add_argument("mode", choices=("hold", "chat", "throughput", "handshake", "selftest"))
    p.add_argument("--generator", choices=("c", "python"), default="c", help="who generates the load")
    p.add_argument("--port", type=int, default=0, help="a running server (else one is spawned)")
    p.add_argument("--data-dir", help="the running server's data directory (pins, bulk apps)")
    p.add_argument("--pid", type=int, default=0, help="the running server's PID (for --generator python)")
    p.add_argument("--processes", type=int, default=0, help="generator processes (default: by the load)")
    p.add_argument("--suite", default="national", help="national, international (handshake: both, comma list)")
    p.add_argument("--prefix", default="", help="prefix of the bulk app ids (default per mode)")
    p.add_argument("--seed", default="kefu-bench", help="secret seed of the bulk apps")
    p.add_argument("--concurrency", type=int, default=128, help="handshakes in flight per process while ramping")
    p.add_argument("--sessions", type=int, default=1000, help="hold: sessions")
    p.add_argument("--hold", type=float, default=10.0, help="hold: seconds")
    p.add_argument("--pairs", type=int, default=100, help="chat, throughput: visitor/agent pairs")
    p.add_argument("--rate", type=float, default=200.0, help="chat: messages per second in all")
    p.add_argument("--duration", type=float, default=10.0, help="chat, throughput: seconds")
    p.add_argument("--window", type=int, default=8, help="throughput: unacknowledged SENDs per connection")
    p.add_argument("--warmup", type=float, default=0.0, help="throughput: seconds before the measured window")
    p.add_argument("--connectors", type=int, default=16, help="handshake: concurrent connectors")
    p.add_argument("--per-connector", type=int, default=20, help="handshake: handshakes per connector per stage")
    p.add_argument("--max-seconds", type=float, default=600.0, help="hard deadline of the run")
    p.add_argument("--out", help="write the merged results (with histogram summaries) to this JSON file")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run one mode against a running or spawned server and print the merged summary as JSON."""
    args = build_parser().parse_args(argv)
    if args.mode == "selftest":
        result = selftest()
        print(json.dumps(result, indent=1))
        return int(result["returncode"] != 0)
    from .target import Server  # noqa: PLC0415 - spawning needs the server package

    if args.port:
        if not args.data_dir:
            raise SystemExit("--port needs --data-dir (pins and bulk apps live there)")
        server = Server.attach(args.port, args.pid, Path(args.data_dir))
    else:
        server = Server.spawn()
    target = Target(server.port, server.data_dir)
    try:
        if args.generator == "python":
            result = _python_generator(args, target, server.pid)
        else:
            result = _summary(_run_mode(args, target))
    finally:
        server.cleanup()
    text = json.dumps(result, indent=1, default=str)
    if args.out:
        Path(args.out).write_text(text + "\n")
    print(text)
    return 0


def _run_mode(args: argparse.Namespace, target: Target) -> dict[str, Any]:
    common = {"processes": args.processes, "seed": args.seed, "max_seconds": args.max_seconds}
    if args.mode == "hold":
        return run_hold(target, args.sessions, args.hold, suite=args.suite, prefix=args.prefix or "benchc",
                        concurrency=args.concurrency, **common)  # fmt: skip
    if args.mode in ("chat", "throughput"):
        return run_chat(target, args.pairs, args.rate, args.duration, suite=args.suite, concurrency=args.concurrency,
                        prefix=args.prefix or "benchcm", closed_window=args.window if args.mode == "throughput" else 0,
                        warmup=args.warmup, **common)  # fmt: skip
    return run_handshake(target, args.connectors, args.per_connector, suites=args.suite if "," in args.suite else
                         "national,international", prefix=args.prefix or "benchch", processes=args.processes or 2,
                         seed=args.seed, max_seconds=args.max_seconds)  # fmt: skip


if __name__ == "__main__":
    sys.exit(main())
