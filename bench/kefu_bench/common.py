"""What every scenario shares: the harness side (`Harness`: server, users, pool, deadline, report) and the
worker side (`WorkerSpec` fields and `ramp`, which opens many connections a bounded number at a time).
"""

from __future__ import annotations

import argparse
import asyncio
import math
import os
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from kefu.protocol.crypto import Suite
from kefu.server.identity.bulk import bulk_app_id, derive_secret

from . import stats
from .peer import BenchPeer, Credentials, Sink, open_peer, source_addresses
from .pool import Channel, Pool, WorkerMain, split
from .report import Report
from .target import Sampler, Server

FDS_PER_PROCESS = 18_000
"""A process may hold 20,000 descriptors here; keep a margin for the loop, pipes and libraries."""
CONNECTIONS_PER_ADDRESS = 10_000
"""Each loopback source address has ~28k ephemeral ports; a third of that leaves room for TIME_WAIT."""
WORKER_MARGIN_S = 20.0
"""Workers must be done this long before the run's deadline, so that the harness still gets their numbers."""


# --- harness side -----------------------------------------------------------------------------------------


class Harness:
    """One run: the server (spawned or attached), its sampler, the deadline and the report."""

    def __init__(self, args: argparse.Namespace, scenario: str, params: dict[str, Any]) -> None:
        self.args = args
        self.started = time.time()
        self.deadline = self.started + args.max_seconds
        self.worker_deadline = max(self.started + 5, self.deadline - WORKER_MARGIN_S)
        if args.port:
            if not args.pid or not args.data_dir:
                raise SystemExit("kefu_bench: --port needs --pid and --data-dir (pins and bulk apps live there)")
            self.server = Server.attach(args.port, args.pid, Path(args.data_dir))
        else:
            env = {"KEFU_LOG_LEVEL": args.server_log_level}
            data_dir = Path(args.data_dir) if args.data_dir else None
            self.server = Server.spawn(data_dir=data_dir, env=env, cpus=self.server_cpus())
        self.sampler = Sampler(self.server).start()
        pinned = sorted(self.server.cpus) if self.server.cpus else "no"
        self.report = Report(scenario, {**params, "spawned_server": self.server.spawned, "server_cpu": pinned})
        self.pool: Pool | None = None

    def server_cpus(self) -> frozenset[int]:
        """--pin: the server gets the first CPU to itself, the harness and its workers the others."""
        cpus = sorted(os.sched_getaffinity(0))
        if not self.args.pin or len(cpus) < 2:
            return frozenset()
        os.sched_setaffinity(0, cpus[1:])  # workers are spawned from here and inherit it
        return frozenset(cpus[:1])

    def time_left(self) -> float:
        """Seconds before the hard deadline."""
        return self.deadline - time.time()

    def users(self, prefix: str, count: int) -> None:
        """Make sure apps PREFIX0..PREFIX{count-1} exist (kefu app add-bulk; idempotent)."""
        self.server.add_bulk(prefix, count, self.args.seed)

    def base_spec(self) -> dict[str, Any]:
        """What every worker needs to reach and authenticate to the server."""
        return {
            "host": "127.0.0.1",
            "port": self.server.port,
            "pins": sorted(self.server.pins),
            "seed": self.args.seed,
            "suite": int(Suite[self.args.suite.upper()]),
            "concurrency": self.args.concurrency,
        }

    def start_pool(self, main: WorkerMain, specs: list[dict[str, Any]]) -> Pool:
        """Start the workers."""
        self.pool = Pool(main, specs, self.worker_deadline + WORKER_MARGIN_S / 2).start()
        return self.pool

    def finish(self) -> int:
        """Collect the crash verdict, stop everything, save and print the report; the exit status."""
        crashed = not self.server.alive()
        if not crashed:
            self.report.server_metrics = self.server.metrics()
        self.report.summary["server_crashed"] = int(crashed)
        if crashed and self.server.proc is not None:
            self.report.notes.append(f"server exited with status {self.server.proc.returncode}")
        self.sampler.stop()
        self.report.samples = self.sampler.samples
        if self.pool is not None:
            self.pool.terminate()
        self.server.cleanup(keep=self.args.keep_data)
        if time.time() > self.deadline:
            self.report.notes.append(f"hard deadline of {self.args.max_seconds:g} s reached: partial results")
        paths = self.report.save(Path(self.args.out))
        print(Path(paths["markdown"]).read_text())
        print("outputs: " + ", ".join(paths.values()))
        return 1 if crashed else 0


def plan_processes(connections: int, requested: int) -> int:
    """Processes for `connections` sockets: as asked, but at least enough for the descriptor limit."""
    return max(requested or 1, math.ceil(connections / FDS_PER_PROCESS))


def plan_addresses(connections: int, requested: int) -> int:
    """Loopback source addresses for `connections` sockets."""
    return max(requested or 1, math.ceil(connections / CONNECTIONS_PER_ADDRESS))


def partition(total: int, processes: int) -> list[range]:
    """Consecutive index ranges, one per process."""
    ranges, start = [], 0
    for n in split(total, processes):
        ranges.append(range(start, start + n))
        start += n
    return ranges


# --- worker side ------------------------------------------------------------------------------------------


def credentials(spec: dict[str, Any], prefix: str, index: int) -> Credentials:
    """The bulk app PREFIX<index>, its derived secret, the pins and the suite of this run."""
    app_id = bulk_app_id(prefix, index)
    return Credentials(app_id, derive_secret(spec["seed"].encode(), app_id), spec["pin_set"], Suite(spec["suite"]))


class Ramp:
    """Opens connections with at most `concurrency` handshakes in flight, retrying a failed one twice."""

    ATTEMPTS = 3

    def __init__(self, channel: Channel, spec: dict[str, Any], sink: Sink) -> None:
        self.channel = channel
        self.spec = spec
        self.sink = sink
        self.addresses = source_addresses(spec["addresses"])
        self.handshakes = stats.new_histogram()
        self.failures: dict[str, int] = {}
        self.per_second: stats.PerSecond | None = None
        """When set, connections completed per second (for the throughput plot)."""

    async def open_all(self, creds: list[Credentials], *, bar: str = "connected") -> list[BenchPeer | None]:
        """One peer per credential (None where every attempt failed), in order."""
        semaphore = asyncio.Semaphore(self.spec["concurrency"])
        peers: list[BenchPeer | None] = [None] * len(creds)
        offset = self.spec.get("address_offset", 0)

        async def one(i: int) -> None:
            async with semaphore:
                for _ in range(self.ATTEMPTS):
                    if self.channel.past_deadline():
                        return
                    peer = BenchPeer(creds[i], self.sink, i)
                    t0 = time.monotonic_ns()
                    try:
                        await open_peer(peer, self.spec["host"], self.spec["port"],
                                        self.addresses[(i + offset) % len(self.addresses)])  # fmt: skip
                    except (OSError, ConnectionError, TimeoutError) as exc:
                        self._fail(exc)
                        peer.abort()
                        continue
                    now = time.monotonic_ns()
                    stats.record_ns(self.handshakes, now - t0)
                    if self.per_second is not None:
                        self.per_second.add(now)
                    peers[i] = peer
                    self.channel.progress(bar)
                    return
                self.channel.progress("failed")

        await asyncio.gather(*(one(i) for i in range(len(creds))))
        return peers

    def _fail(self, exc: BaseException) -> None:
        name = type(exc).__name__ if not isinstance(exc, ConnectionError) or not exc.args else str(exc.args[0])
        self.failures[name[:60]] = self.failures.get(name[:60], 0) + 1


def prepare(spec: dict[str, Any]) -> None:
    """Turn the JSON-friendly spec into what workers use (pins as a frozenset)."""
    spec["pin_set"] = frozenset(spec["pins"])


async def wait_until(predicate: Callable[[], bool], timeout: float, step: float = 0.02) -> bool:
    """Poll `predicate` until true or `timeout` seconds pass."""
    end = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() >= end:
            return False
        await asyncio.sleep(step)
    return True
