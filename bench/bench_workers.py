"""The numbers of one host, every core (issue #12), measured with the C load generator (bench/cgen) against a spawned
`kefu serve`, with the server's memory, CPU and disk writes summed over every one of its processes.

    .venv/bin/python bench/bench_workers.py hold --sessions 100000 --hold 60 --workers 6
    .venv/bin/python bench/bench_workers.py handshake --workers 0,2
    .venv/bin/python bench/bench_workers.py throughput --connections 1000 --window 8 --workers 0,2
    .venv/bin/python bench/bench_workers.py chat --pairs 5000 --rate 5000 --duration 20 --workers 0,2
    .venv/bin/python bench/bench_workers.py seed --users 100000 --rate 2000 --duration 60 --workers 6
    .venv/bin/python bench/bench_workers.py throughput --workers 0 --seal on,off,aes-gcm --runs 3 \
        --out bench/results/issue14-sealing.jsonl

`--workers` takes a list: each value is a fresh server in the same run, one after the other (0 is the single-process
server, the baseline the ratio is taken against). `--runs K` repeats the list K times, interleaved. Each run prints one
JSON line and appends it to bench/out/workers.jsonl. The value `old` runs another kefu tree instead, the one whose
`kefu` namespace directory `--old-tree` names (for example a worktree of an earlier commit), to compare against the
code before a change in the same run; `old:N` runs that tree with `[server] workers = N` (a tree from issue #12 on,
which has the setting; plain `old` sets nothing, as the code before the issue refuses it, so a newer tree runs its
default, one gateway per core). `--old-tree` may be given more than once: `old2`, `old2:N`, ... run the second, ...
(to measure steps of a change in one run).

`--seal` (issue #14) takes a list too: `on` (the default cipher, SM4-GCM), `off` ([storage] seal = false: values in
clear), or a cipher (`sm4-gcm`, `aes-gcm`); each value is a fresh server (and data directory: the setting is fixed
when a store is made), alternated within each run, so that sealing's cost per message is measured against the same
machine's load at about the same time. With more than one value, the end prints the median of each and the ratio of
each to `off` (messages per server CPU-second for `throughput`).

What is measured where:

- the server's CPU (user + system, every thread of every process of the server: supervisor, core, gateways, the
  indexer, the sentiment scorer) over the timed phase only: sampled every 0.1 s and interpolated at the phase's start
  and end, which the generator's gates (or, for a handshake storm, each stage's own span) give;
- the server's memory: the sum of VmRSS over its processes, empty (after a warm-up of a few handshakes) and holding;
- the generator's CPU (getrusage of its processes), to show it is not the bottleneck;
- latencies from the generator (send to deliver at the receiver, send to SEND_ACK at the sender), from each message's
  scheduled time (open loop, no coordinated omission).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.kefu_bench import cgen
from bench.kefu_bench.target import Server

OUT = Path(__file__).resolve().parent / "out" / "workers.jsonl"


class Readings:
    """The server's total CPU and RSS, sampled on a thread."""

    def __init__(self, server: Server, period: float = 0.1) -> None:
        self.server, self.period = server, period
        self.samples: list[tuple[int, float, int]] = []  # (monotonic ns, cpu s, rss kB)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            self.samples.append((time.monotonic_ns(), self.server.cpu_s(), self.server.rss_kb()))
            self._stop.wait(self.period)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()
        self.samples.append((time.monotonic_ns(), self.server.cpu_s(), self.server.rss_kb()))  # covers the end

    def cpu_at(self, t_ns: int) -> float:
        """The server's cumulative CPU at `t_ns`, interpolated between samples."""
        before = max((s for s in self.samples if s[0] <= t_ns), default=self.samples[0])
        after = min((s for s in self.samples if s[0] >= t_ns), default=self.samples[-1])
        if after[0] == before[0]:
            return before[1]
        return before[1] + (after[1] - before[1]) * (t_ns - before[0]) / (after[0] - before[0])

    def rss_between(self, a_ns: int, b_ns: int) -> list[int]:
        return [s[2] for s in self.samples if a_ns <= s[0] <= b_ns]


SEAL_ENV = {
    "on": {"KEFU_STORAGE_SEAL": "true", "KEFU_STORAGE_SEAL_CIPHER": "sm4-gcm"},
    "sm4-gcm": {"KEFU_STORAGE_SEAL": "true", "KEFU_STORAGE_SEAL_CIPHER": "sm4-gcm"},
    "aes-gcm": {"KEFU_STORAGE_SEAL": "true", "KEFU_STORAGE_SEAL_CIPHER": "aes-gcm"},
    "off": {"KEFU_STORAGE_SEAL": "false"},
}
"""What each `--seal` value puts in the environment of the server and of the admin commands (`app add-bulk`)."""


def spawn(workers: int, extra_env: dict[str, str] | None = None, *, settings: bool = True) -> Server:
    env = {"KEFU_LOG_LEVEL": "warning", **(extra_env or {})}
    if settings:  # the tree before issue #12 (`--workers old`) has no such settings
        env["KEFU_SERVER_WORKERS"] = str(workers)
        # These scenarios measure capacity: the handshake budget (issue #13, bench_hostile.py measures it) would cap
        # the ramps and the storms at a quarter of the host's cores, so it is off here, as it was for their numbers.
        env.setdefault("KEFU_LIMITS_HANDSHAKE_CPU_SHARE", "0")
    return Server.spawn(env=env)


def target_of(server: Server) -> cgen.Target:
    return cgen.Target(server.port, server.data_dir, pid=server.pid)


def worker_shares(server: Server, before: dict[str, dict[str, float]]) -> dict[str, float]:
    """CPU seconds each worker process used since `before` (`Server.per_worker`)."""
    now = server.per_worker()
    return {name: round(now[name]["cpu_s"] - before.get(name, {}).get("cpu_s", 0.0), 3) for name in now}


def hdr(h: Any) -> dict[str, float]:
    """p50/p99/p99.9/max in ms of a merged HdrHistogram (microsecond values)."""
    if h is None or h.get_total_count() == 0:
        return {}
    return {
        "p50_ms": h.get_value_at_percentile(50) / 1000,
        "p99_ms": h.get_value_at_percentile(99) / 1000,
        "p99.9_ms": h.get_value_at_percentile(99.9) / 1000,
        "max_ms": h.get_max_value() / 1000,
    }


# --- the runs -----------------------------------------------------------------------------------------------------


def run_hold(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    server = spawn(workers, dict(e.split("=", 1) for e in args.env), settings=args.settings)
    try:
        target = target_of(server)
        cgen.run_hold(target, 50, 1.0, processes=1, prefix="benchw", add_users=True)  # warm-up: caches, imports
        target.add_bulk("benchh", args.sessions, "kefu-bench")
        time.sleep(2.0)
        empty = server.rss_kb()
        empty_by_worker = server.per_worker()
        readings = Readings(server)
        result = cgen.run_hold(
            target, args.sessions, args.hold, prefix="benchh", add_users=False, concurrency=args.concurrency,
            max_seconds=args.max_seconds, keepalive_ms=args.keepalive_ms,
        )  # fmt: skip
        readings.stop()
        pings = _frames_in(server, "ping")
        t0 = result["gate_t0_ns"][-1]
        holding = readings.rss_between(t0 + int(args.hold * 0.5e9), t0 + int(args.hold * 1e9))
        held = statistics.median(holding) if holding else server.rss_kb()
        return {
            "connected": result.get("connected"), "failed": result.get("failed"), "dropped": result.get("dropped"),
            "pings_received": pings,
            "fail_codes": result.get("fail_codes"), "drop_codes": result.get("drop_codes"),
            "server_rss_empty_mb": round(empty / 1024, 1), "server_rss_holding_mb": round(held / 1024, 1),
            "per_session_kib": round((held - empty) / max(1, result.get("connected") or 1), 3),
            "server_cpu_ms_per_handshake_ramp": round(
                1000 * (readings.cpu_at(t0) - readings.samples[0][1]) / max(1, result.get("connected") or 1), 3
            ),
            "generator_cpu_s": result.get("cpu_s"), "generator_rss_mb": round((result.get("maxrss_kb") or 0) / 1024),
            "per_worker_rss_mb": {k: round(v["rss_kb"] / 1024, 1) for k, v in server.per_worker().items()},
            "per_worker_rss_empty_mb": {k: round(v["rss_kb"] / 1024, 1) for k, v in empty_by_worker.items()},
        }  # fmt: skip
    finally:
        server.cleanup()


def run_handshake(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    server = spawn(workers, settings=args.settings)
    try:
        target = target_of(server)
        target.add_bulk("benchch", args.connectors, "kefu-bench")
        readings = Readings(server)
        before = server.per_worker()
        result = cgen.run_handshake(
            target, args.connectors, args.per_connector, processes=2, suites=args.suites, add_users=False
        )
        readings.stop()
        shares = worker_shares(server, before)
        stages = []
        gates = result["gate_t0_ns"]
        for i, stage in enumerate(result.get("stages", [])):
            # the stage's own span when the generator reports it, else from its gate to the next one
            start = stage.get("start_ns") or gates[i]
            end = stage.get("end_ns") or (gates[i + 1] if i + 1 < len(gates) else readings.samples[-1][0])
            cpu = readings.cpu_at(end) - readings.cpu_at(start)
            n = stage.get("handshakes") or 0
            stages.append({
                "suite": stage.get("suite"), "mode": stage.get("mode"), "handshakes": n,
                "server_cpu_ms_per_handshake": round(1000 * cpu / n, 3) if n else None,
                "per_s": round(stage.get("per_s", 0.0), 1), "failed": stage.get("failed"),
                "generator_cpu_ms_per_handshake": round(stage.get("cpu_ms_per_handshake", 0.0), 3),
            })  # fmt: skip
        workers_health = json.loads(_get(server, "/healthz")).get("workers")  # a count (0) for a single process
        handshakes = {
            name: int(info.get("handshakes", 0))
            for name, info in (workers_health if isinstance(workers_health, dict) else {}).items()
            if name.startswith("gateway")
        }
        return {"stages": stages, "worker_cpu_s": shares, "handshakes_by_gateway": handshakes}
    finally:
        server.cleanup()


def _get(server: Server, path: str) -> str:
    import urllib.request  # noqa: PLC0415

    with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}{path}", timeout=10) as resp:
        return str(resp.read().decode())


def _frames_in(server: Server, frame_type: str) -> int:
    """Frames of `frame_type` the server received so far (kefu_frames_total, summed over the gateways)."""
    from kefu.server.admin.status import parse_exposition  # noqa: PLC0415

    return int(
        sum(
            value
            for name, labels, value in parse_exposition(_get(server, "/metrics"))
            if name == "kefu_frames_total" and labels.get("direction") == "in" and labels.get("type") == frame_type
        )
    )


def _store_counts(server: Server) -> dict[tuple[str, str], float]:
    """The store's own counters: bytes written and messages, by part (log, index)."""
    from kefu.server.admin.status import parse_exposition  # noqa: PLC0415

    wanted = ("kefu_store_written_bytes_total", "kefu_store_messages_total")
    out: dict[tuple[str, str], float] = {}
    for name, labels, value in parse_exposition(_get(server, "/metrics")):
        if name in wanted:
            key = (name, labels.get("part", ""))
            out[key] = out.get(key, 0.0) + value
    return out


def _store_per_message(before: dict[tuple[str, str], float], after: dict[tuple[str, str], float],
                       disk_bytes: int, sent: int) -> dict[str, Any]:  # fmt: skip
    """Bytes written per durable message over a run: by the store's count (log, index) and by /proc write_bytes,
    per message the store counted and per message the generator sent (a server without the store's counters, such
    as `--workers old`, has only the latter)."""

    def delta(name: str, part: str) -> float:
        return after.get((name, part), 0.0) - before.get((name, part), 0.0)

    out: dict[str, Any] = {"disk_write_bytes_per_sent": round(disk_bytes / sent)} if sent else {}
    messages = delta("kefu_store_messages_total", "log")
    if not messages:
        return out
    return out | {
        "store_messages": int(messages),
        "store_log_bytes_per_message": round(delta("kefu_store_written_bytes_total", "log") / messages),
        "store_index_bytes_per_message": round(delta("kefu_store_written_bytes_total", "index") / messages),
        "disk_write_bytes_per_message": round(disk_bytes / messages),
    }


def run_messages(args: argparse.Namespace, workers: int, *, closed: bool) -> dict[str, Any]:
    server = spawn(workers, settings=args.settings)
    try:
        target = target_of(server)
        pairs = args.connections // 2 if closed else args.pairs
        target.add_bulk("benchcm", 2 * pairs, "kefu-bench")
        readings = Readings(server)
        before = server.per_worker()
        store_before, disk_before = _store_counts(server), server.disk_write_bytes()
        if closed:
            result = cgen.run_chat(
                target, pairs, 0.0, args.duration, closed_window=args.window, warmup=args.warmup, add_users=False
            )
        else:
            result = cgen.run_chat(target, pairs, args.rate, args.duration, add_users=False)
        readings.stop()
        store_after, disk_after = _store_counts(server), server.disk_write_bytes()
        t0 = result["gate_t0_ns"][-1]
        start = t0 + int((args.warmup if closed else 0.0) * 1e9)
        end = t0 + int((args.warmup + args.duration if closed else args.duration) * 1e9)
        cpu = readings.cpu_at(end) - readings.cpu_at(start)
        seconds = (end - start) / 1e9
        out: dict[str, Any] = {
            "server_cpu_share": round(cpu / seconds, 3),
            "generator_cpu_share": round((result.get("cpu_run_s") or 0.0) / seconds, 3),
            "worker_cpu_s": worker_shares(server, before),
            "sent": result.get("sent"), "acked": result.get("acked"), "delivered": result.get("delivered"),
            "undelivered": result.get("undelivered"), "duplicates": result.get("duplicates"),
            "errors": result.get("errors"),
            **_store_per_message(store_before, store_after, disk_after - disk_before, result.get("sent") or 0),
        }  # fmt: skip
        if closed:
            acked = result.get("acked_in_window") or 0
            out["acked_in_window"] = acked
            out["messages_per_server_cpu_s"] = round(acked / cpu) if cpu else None
        else:
            out["deliver"] = hdr(result.get("deliver"))
            out["ack"] = hdr(result.get("ack"))
            out["max_sender_lag_ms"] = result.get("max_sender_lag_ms")
        return out
    finally:
        server.cleanup()


def run_seed(args: argparse.Namespace, workers: int) -> dict[str, Any]:
    args.pairs = args.users // 2
    server = spawn(workers, settings=args.settings)
    try:
        target = target_of(server)
        target.add_bulk("benchcm", args.users, "kefu-bench")
        readings = Readings(server)
        result = cgen.run_chat(
            target, args.pairs, args.rate, args.duration, add_users=False, concurrency=args.concurrency,
            max_seconds=args.max_seconds,
        )  # fmt: skip
        readings.stop()
        t0 = result["gate_t0_ns"][-1]
        end = t0 + int(args.duration * 1e9)
        cpu = readings.cpu_at(end) - readings.cpu_at(t0)
        rss = readings.rss_between(t0, end)
        return {
            "users": args.users, "rate": args.rate, "connected": result.get("connected"),
            "deliver": hdr(result.get("deliver")), "ack": hdr(result.get("ack")),
            "server_cpu_share": round(cpu / args.duration, 3), "server_rss_peak_mb": round(max(rss) / 1024, 1),
            "sent": result.get("sent"), "delivered": result.get("delivered"), "errors": result.get("errors"),
            "undelivered": result.get("undelivered"), "crashed": int(not server.alive()),
            "generator_cpu_share": round((result.get("cpu_run_s") or 0.0) / args.duration, 3),
        }  # fmt: skip
    finally:
        server.cleanup()


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=("hold", "handshake", "throughput", "chat", "seed"))
    p.add_argument("--workers", default="2", help="comma list of [server] workers, one fresh server each")
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--sessions", type=int, default=100_000)
    p.add_argument("--hold", type=float, default=60.0)
    p.add_argument("--keepalive-ms", type=int, default=30_000, help="hold: the keepalive sessions ask for")
    p.add_argument("--concurrency", type=int, default=128)
    p.add_argument("--connectors", type=int, default=64)
    p.add_argument("--per-connector", type=int, default=120)
    p.add_argument("--suites", default="national")
    p.add_argument("--connections", type=int, default=1000)
    p.add_argument("--window", type=int, default=8)
    p.add_argument("--warmup", type=float, default=5.0)
    p.add_argument("--pairs", type=int, default=5000)
    p.add_argument("--rate", type=float, default=5000.0)
    p.add_argument("--duration", type=float, default=20.0)
    p.add_argument("--users", type=int, default=100_000)
    p.add_argument("--max-seconds", type=float, default=900.0)
    p.add_argument("--env", action="append", default=[], help="NAME=VALUE for the server's environment (hold)")
    p.add_argument(
        "--old-tree",
        action="append",
        default=[],
        help="PYTHONPATH of the kefu tree `--workers old` runs (again for old2, old3, ...)",
    )
    p.add_argument("--seal", default="", help="comma list of on, off, sm4-gcm, aes-gcm: one fresh server each")
    p.add_argument("--out", default=str(OUT), help="the JSON Lines file each run's line is appended to")
    args = p.parse_args(argv)
    seals = [s for s in args.seal.split(",") if s] or [""]
    if bad := [s for s in seals if s and s not in SEAL_ENV]:
        p.error(f"--seal: unknown {', '.join(bad)} (one of {', '.join(SEAL_ENV)})")
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    lines: list[dict[str, Any]] = []
    for run in range(args.runs):
        for seal in seals:
            for token in args.workers.split(","):
                if token.startswith("old") and len(args.old_tree) < old_index(token):
                    p.error(f"--workers {token} needs {old_index(token)} --old-tree")
                line = run_one(args, token, seal, run)
                lines.append(line)
                print(json.dumps(line), flush=True)
                with out.open("a") as f:
                    f.write(json.dumps(line) + "\n")
    if len(seals) > 1:
        print(json.dumps(seal_summary(lines)), flush=True)
    return 0


def run_one(args: argparse.Namespace, token: str, seal: str, run: int) -> dict[str, Any]:
    """One fresh server of `--workers` value `token` and `--seal` value `seal`; its JSON line."""
    started = time.time()
    old = token.startswith("old")
    os.environ.pop("PYTHONPATH", None)
    if old:  # the server and the admin commands the generator runs (add-bulk) import the other tree
        os.environ["PYTHONPATH"] = args.old_tree[old_index(token) - 1]
    for name in SEAL_ENV["on"]:
        os.environ.pop(name, None)
    os.environ.update(SEAL_ENV.get(seal, {}))  # the server's and add-bulk's: they open the same store
    workers = int(token.partition(":")[2] or 0) if old else int(token)
    args.settings = ":" in token or not old  # what spawn() may set: the tree before issue #12 has no [server] workers
    try:
        match args.scenario:
            case "hold":
                result = run_hold(args, workers)
            case "handshake":
                result = run_handshake(args, workers)
            case "throughput":
                result = run_messages(args, workers, closed=True)
            case "chat":
                result = run_messages(args, workers, closed=False)
            case _:
                result = run_seed(args, workers)
    finally:
        os.environ.pop("PYTHONPATH", None)
    at = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started))
    line = {"scenario": args.scenario, "workers": token if old else workers, "run": run, "at": at,
            "argv": sys.argv[1:], **result}  # fmt: skip
    return line | ({"seal": seal} if seal else {})


def old_index(token: str) -> int:
    """Which --old-tree a `--workers` value names: 1 for `old` and `old:N`, K for `oldK` and `oldK:N`."""
    return int(token.partition(":")[0].removeprefix("old") or 1)


def seal_summary(lines: list[dict[str, Any]]) -> dict[str, Any]:
    """The median of each `--seal` value's runs and its ratio to `off` (messages per server CPU-second, or server CPU
    share for the open-loop scenarios, where less is better)."""
    metric = "messages_per_server_cpu_s" if lines[0]["scenario"] == "throughput" else "server_cpu_share"
    by: dict[str, list[float]] = {}
    for line in lines:
        if line.get(metric) is not None:
            by.setdefault(line["seal"], []).append(float(line[metric]))
    medians = {seal: statistics.median(values) for seal, values in by.items()}
    base = medians.get("off")
    ratios = {seal: round(m / base, 4) for seal, m in medians.items() if base and seal != "off"}
    return {"summary": "seal", "metric": metric, "runs": by, "medians": medians, "ratio_to_off": ratios}


if __name__ == "__main__":
    raise SystemExit(main())
