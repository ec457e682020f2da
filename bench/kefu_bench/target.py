"""The server under test: spawned by the harness or already running, and what /proc says about it.

A spawned server gets a temporary data directory and the load environment (`LOAD_ENV`): the per-connection
and per-address limits that protect a production server from one client would otherwise throttle the
harness, which is thousands of clients on a handful of loopback addresses. Memory is VmRSS from
/proc/PID/status; CPU is utime+stime from /proc/PID/stat (all threads, so the committer's fsync thread
counts). A `Sampler` thread records both every half second for the plots and the peak.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from kefu.server.runtime.launch import ServeProcess, descendants

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
CLK_TCK = os.sysconf("SC_CLK_TCK")

LOAD_ENV = {
    "KEFU_LIMITS_CONN_FRAMES_PER_S": "1000000",
    "KEFU_LIMITS_CONN_FRAMES_BURST": "1000000",
    "KEFU_LIMITS_CONN_BYTES_PER_S": "1000000000",
    "KEFU_LIMITS_CONN_BYTES_BURST": "1000000000",
    "KEFU_LIMITS_APP_FRAMES_PER_S": "1000000",
    "KEFU_LIMITS_APP_FRAMES_BURST": "1000000",
    "KEFU_LIMITS_NEW_CONNS_PER_IP_PER_S": "1000000",
    "KEFU_LIMITS_NEW_CONNS_PER_IP_BURST": "1000000",
    "KEFU_LIMITS_MAX_HANDSHAKES_IN_PROGRESS": "100000",
    "KEFU_LIMITS_HANDSHAKE_CPU_SHARE": "0",
}
"""Limits out of the harness's way (the defaults are per client; the harness is thousands on few addresses)."""

NEWER_SETTINGS = frozenset({"KEFU_LIMITS_HANDSHAKE_CPU_SHARE"})
"""Settings an older kefu tree (run with PYTHONPATH, to compare) may not have: it refuses unknown ones, so they are
left out for it."""


def server_env(env: dict[str, str] | None = None) -> dict[str, str]:
    """LOAD_ENV with `env` over it, without the settings an older tree would refuse when PYTHONPATH names one."""
    merged = {**LOAD_ENV, **(env or {})}
    if os.environ.get("PYTHONPATH"):
        merged = {k: v for k, v in merged.items() if k not in NEWER_SETTINGS}
    return merged


BUCKETS_KEPT = (
    "kefu_fsync_seconds", "kefu_commit_batch_size", "kefu_event_loop_lag_seconds", "kefu_delivery_latency_seconds",
    "kefu_send_ack_latency_seconds",
)  # fmt: skip
"""Histograms whose buckets the run keeps (commit time, batch size, loop lag, server-side latencies): they tell
whether a latency tail comes from the commit or from the event loop."""


def rss_kb(pid: int) -> int:
    """VmRSS of `pid` in KiB (0 if it is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    except OSError:
        pass
    return 0


def _stat_fields(pid: int) -> list[str]:
    text = Path(f"/proc/{pid}/stat").read_text()
    return text[text.rindex(")") + 2 :].split()  # fields from 3 (state) on; the name may hold spaces


def cpu_s(pid: int) -> float:
    """utime + stime of `pid` in seconds (all its threads)."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / CLK_TCK


def disk_write_bytes(pid: int) -> int:
    """Bytes `pid` has caused to be sent to the storage layer (write_bytes of /proc/PID/io; 0 if unreadable)."""
    try:
        for line in Path(f"/proc/{pid}/io").read_text().splitlines():
            if line.startswith("write_bytes:"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def start_ticks(pid: int) -> int:
    """The process's start time in clock ticks since boot (tells a restarted PID from the same one)."""
    try:
        return int(_stat_fields(pid)[19])
    except OSError:
        return -1


@dataclass
class Sample:
    """One reading of the server's memory and CPU."""

    t: float
    """time.monotonic() of the reading."""
    rss_kb: int
    cpu_s: float


@dataclass
class Server:
    """A kefu server: its processes, port, data directory and pins; `spawned` if the harness started it.

    A server with worker processes is several processes (supervisor, core, gateways, the desk's sentiment scorer):
    memory, CPU and disk writes are summed over all of them (`pids`), and `per_worker` breaks them down."""

    port: int
    pid: int
    data_dir: Path
    spawned: bool
    env: dict[str, str] = field(default_factory=dict)
    metrics_port: int = 0
    launched: ServeProcess | None = None
    temp_dir: Path | None = None
    log_path: Path | None = None
    starts: int = 1
    cpus: frozenset[int] = frozenset()
    """CPUs a spawned server is pinned to (empty: not pinned)."""
    _start_ticks: int = -1

    @property
    def proc(self) -> subprocess.Popen[bytes] | None:
        """The spawned server's process (the supervisor's, with workers)."""
        return self.launched.proc if self.launched is not None else None

    @property
    def pins(self) -> frozenset[str]:
        """The server key pins it wrote."""
        return frozenset((self.data_dir / "keys" / "pins.txt").read_text().split())

    @classmethod
    def spawn(
        cls, *, data_dir: Path | None = None, port: int = 0, env: dict[str, str] | None = None,
        cpus: frozenset[int] = frozenset(),
    ) -> Server:  # fmt: skip
        """Start `kefu serve` on loopback with the load limits, in a temporary data directory by default,
        pinned to `cpus` if given."""
        temp = None
        if data_dir is None:
            temp = Path(tempfile.mkdtemp(prefix="kefu-bench-"))
            data_dir = temp / "data"
        server = cls(port, 0, data_dir, True, server_env(env), temp_dir=temp, cpus=cpus)
        server.log_path = (temp or data_dir.parent) / "server.log"
        server.start()
        return server

    @classmethod
    def attach(cls, port: int, pid: int, data_dir: Path) -> Server:
        """A server someone else started (pins and bulk apps go through its data directory)."""
        server = cls(port, pid, data_dir, False)
        server._start_ticks = start_ticks(pid)
        return server

    def start(self) -> float:
        """Start the (spawned) server; returns the time.monotonic() at which it said it was listening."""
        assert self.spawned and self.log_path is not None
        if self.launched is None:
            self.launched = ServeProcess(
                self.data_dir, env=self.env, port=self.port, metrics_port=self.metrics_port, log_path=self.log_path
            )
        self.launched.start(timeout=START_TIMEOUT_S)
        listening = time.monotonic()
        self.port, self.metrics_port, self.pid = self.launched.port, self.launched.metrics_port, self.launched.pid
        if self.cpus:
            self.pin(self.cpus)
        self._start_ticks = start_ticks(self.pid)
        return listening

    def pin(self, cpus: frozenset[int]) -> None:
        """Pin every thread of every process of the server to `cpus`."""
        for pid in self.pids():
            with contextlib.suppress(OSError):
                for task in Path(f"/proc/{pid}/task").iterdir():  # the loops and the writer threads alike
                    os.sched_setaffinity(int(task.name), cpus)

    def pids(self) -> list[int]:
        """The server's processes: itself and every process it started."""
        return [self.pid, *descendants(self.pid)] if self.pid else []

    def per_worker(self) -> dict[str, dict[str, float]]:
        """RSS (KiB), CPU (s) and disk writes (bytes) of each worker process, by name (a server with workers)."""
        names = self.launched.workers() if self.launched is not None else {}
        out = {name: {"rss_kb": rss_kb(pid), "cpu_s": cpu_s(pid), "disk_write_bytes": disk_write_bytes(pid)}
               for name, pid in names.items()}  # fmt: skip
        out["supervisor"] = {"rss_kb": rss_kb(self.pid), "cpu_s": cpu_s(self.pid)}
        return out

    def alive(self) -> bool:
        """The same server process is still running (not died, not restarted behind our back)."""
        if self.launched is not None:
            return self.launched.alive
        return start_ticks(self.pid) == self._start_ticks

    def rss_kb(self) -> int:
        """VmRSS in KiB, summed over every process of the server."""
        return sum(rss_kb(pid) for pid in self.pids())

    def cpu_s(self) -> float:
        """CPU seconds so far, summed over every process of the server that runs now."""
        return sum(cpu_s(pid) for pid in self.pids())

    def disk_write_bytes(self) -> int:
        """Bytes the server's processes have written to the disk so far (/proc/PID/io write_bytes)."""
        return sum(disk_write_bytes(pid) for pid in self.pids())

    def stop(self, timeout: float = STOP_TIMEOUT_S) -> int | None:
        """SIGTERM (graceful drain) and wait; SIGKILL if it does not exit in time. Spawned servers only."""
        if self.launched is None or self.launched.proc is None:
            return None
        if self.launched.alive:
            try:
                self.launched.stop(signal.SIGTERM, timeout)
            except subprocess.TimeoutExpired:
                self.launched.kill()
        return self.launched.proc.returncode

    def restart(self, between: Callable[[], object] | None = None) -> tuple[float, float]:
        """Stop, call `between`, start again on the same port and data directory; (stopped_at, listening_at),
        both time.monotonic()."""
        self.stop()
        stopped = time.monotonic()
        if between is not None:
            between()
        listening = self.start()
        self.starts += 1
        return stopped, listening

    def cleanup(self, *, keep: bool = False) -> None:
        """Stop a spawned server and remove its temporary directory (unless `keep`)."""
        self.stop()
        if self.temp_dir is not None and not keep:
            shutil.rmtree(self.temp_dir, ignore_errors=True)

    def metrics(self) -> dict[str, float]:
        """The server's own counters (/metrics), summed over labels; {} if it cannot be read."""
        if not self.metrics_port:
            return {}
        from kefu.server.admin.status import parse_exposition  # noqa: PLC0415 - only the harness reads metrics

        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{self.metrics_port}/metrics", timeout=5) as resp:
                text = resp.read().decode("utf-8", "replace")
        except OSError:
            return {}
        totals: dict[str, float] = {}
        for name, labels, value in parse_exposition(text):
            if name.startswith(BUCKETS_KEPT) and name.endswith("_bucket") and "le" in labels:
                key = f"{name}{{le={labels['le']}}}"  # cumulative counts: where the tail of each lies
                totals[key] = totals.get(key, 0.0) + value
            elif name.startswith("kefu_") and not name.endswith("_bucket") and "le" not in labels:
                key = name + ("" if "code" not in labels else f"{{{labels['code']}}}")
                totals[key] = totals.get(key, 0.0) + value
        return totals

    def add_bulk(self, prefix: str, count: int, seed: str) -> None:
        """`kefu app add-bulk` on the server's data directory (LMDB: safe while it runs)."""
        subprocess.run(
            [sys.executable, "-m", "kefu.server.cli", "app", "add-bulk", prefix, str(count), "--secret-seed", seed,
             "--data-dir", str(self.data_dir)],
            check=True, capture_output=True, timeout=600,
        )  # fmt: skip


class Sampler:
    """A thread reading the server's RSS and CPU every `period` seconds."""

    def __init__(self, server: Server, period: float = 0.5) -> None:
        self.server = server
        self.period = period
        self.samples: list[Sample] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> Sampler:
        """Start sampling."""
        self._thread.start()
        return self

    def sample(self) -> Sample:
        """Take (and keep) one reading now."""
        sample = Sample(time.monotonic(), self.server.rss_kb(), self.server.cpu_s())
        self.samples.append(sample)
        return sample

    def _run(self) -> None:
        while not self._stop.wait(self.period):
            self.sample()

    def stop(self) -> None:
        """Stop sampling."""
        self._stop.set()
        self._thread.join(timeout=5)

    def peak_rss_kb(self, since: float = 0.0) -> int:
        """The largest RSS read at or after `since` (monotonic)."""
        return max((s.rss_kb for s in self.samples if s.t >= since), default=0)
