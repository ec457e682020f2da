"""The write path at "5,000 messages/s over 10,000 connections", against the write path of an earlier commit.

    .venv/bin/python bench/bench_wal.py [--seconds 20] [--runs 3] [--baseline 8277303] [--index-interval 2]

The load, open loop: 5,000 two-member conversations between 10,000 senders; every 2 ms, 10 SENDs of 200-byte
bodies from random senders; for each acknowledged message, the cursor advances of its receiver (the DELIVER_ACK) and
of its sender (its own message absorbed by its stream), through `MessageLog.advance_cursor`, as the engine does.
Conversations are created first, outside the measured window.

Each run is a fresh subprocess with a fresh data directory on the temp directory's disk. Reported per durable
message: the bytes the store counts itself (new: log appends, whole pages, + the indexer's LMDB writes, its thread's
wchar; old: the group-commit thread's wchar, read by its observer on that thread), the process's /proc/self/io
write_bytes (inflated where the kernel's page cache holds large folios: a one-page write counts the whole folio),
what the block device wrote meanwhile (/sys/dev/block/*/stat: the journal and any other writer included), the
process's CPU time; and the SEND-to-acknowledgement and commit latencies (p50, p99). The baseline is the
storage layer of `--baseline` (a `git worktree`, put first on PYTHONPATH as the package `kefu`), measured in the
same session, alternating with the new one; the medians of `--runs` runs are compared as ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

CONVERSATIONS = 5_000
TICK_S = 0.002
PER_TICK = 10
BODY = b"x" * 200


def io_write_bytes(path: str = "/proc/self/io") -> int:
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(b"write_bytes:"):
                return int(line.split()[1])
    return 0


def io_wchar(path: str) -> int:
    with open(path, "rb") as f:
        for line in f:
            if line.startswith(b"wchar:"):
                return int(line.split()[1])
    return 0


def disk_written_bytes(path: Path) -> int:
    """Bytes the block device holding `path` has written (all writers, the filesystem's journal included)."""
    dev = os.stat(path).st_dev
    with open(f"/sys/dev/block/{os.major(dev)}:{os.minor(dev)}/stat") as f:
        return int(f.read().split()[6]) * 512


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))] if values else 0.0


# --- the child: one run ------------------------------------------------------------------------------------------


def open_log(data: Path, loop: asyncio.AbstractEventLoop, interval_s: float, commits: list[float]) -> tuple[Any, Any]:
    """(the MessageLog, a function returning the store's own byte count) of whichever code is on the path."""
    from kefu.server.storage.store import Store  # noqa: PLC0415 - the code under test is chosen by PYTHONPATH

    store = Store(data / "store", map_size=256 << 20)
    try:
        from kefu.server.storage.conversations import LogSettings, open_conversations  # noqa: PLC0415
    except ImportError:
        return _open_old(store, loop, commits)
    settings = LogSettings(index_interval_s=interval_s, cursor_delay_s=0.0)
    log = open_conversations(store, loop, settings, observer=lambda n, s: commits.append(s))
    counters = log.counters
    return log, lambda: counters()["log_written_bytes"] + counters()["index_written_bytes"]


def _open_old(store: Any, loop: asyncio.AbstractEventLoop, commits: list[float]) -> tuple[Any, Any]:
    from kefu.server.storage.committer import GroupCommitter  # noqa: PLC0415
    from kefu.server.storage.conversations import Conversations  # noqa: PLC0415

    written = [0, -1]

    def observe(n: int, seconds: float) -> None:  # on the writer thread: its own write_bytes
        commits.append(seconds)
        now = io_wchar("/proc/thread-self/io")
        if written[1] >= 0:
            written[0] += now - written[1]
        written[1] = now

    committer = GroupCommitter(store, loop, observer=observe)
    return Conversations(store, committer, loop, cursor_delay_s=5.0), lambda: written[0]


async def child(seconds: float, interval_s: float) -> dict[str, Any]:
    loop = asyncio.get_running_loop()
    with tempfile.TemporaryDirectory(prefix="kefu-bench-wal-") as tmp:
        commits: list[float] = []
        log, store_bytes = open_log(Path(tmp), loop, interval_s, commits)
        log.start()
        await _create(log)
        await asyncio.sleep(max(1.0, interval_s * 1.5))  # past the creations' indexing
        latencies: list[float] = []
        acked = [0]
        rng = random.Random(1)
        counter = [1 << 20]

        def submit() -> None:
            c = rng.randrange(CONVERSATIONS)
            sender, receiver = (f"u{2 * c}", f"u{2 * c + 1}") if rng.random() < 0.5 else (f"u{2 * c + 1}", f"u{2 * c}")
            counter[0] += 1
            from kefu.server.engine.messages import SendRequest  # noqa: PLC0415

            request = SendRequest(sender, counter[0].to_bytes(16, "big"), c + 1, 1, BODY, ())
            t0 = time.perf_counter()

            def done(result: Any) -> None:
                if result.message is None:
                    return
                latencies.append(time.perf_counter() - t0)
                acked[0] += 1
                log.advance_cursor(receiver, c + 1, result.message.seq)
                log.advance_cursor(sender, c + 1, result.message.seq)

            log.submit(request, done)

        commits.clear()
        bytes0, io0, cpu0, acked0 = store_bytes(), io_write_bytes(), time.process_time(), acked[0]
        disk0 = disk_written_bytes(Path(tmp))
        start = time.monotonic()
        ticks = 0
        while (now := time.monotonic()) < start + seconds:
            due = start + ticks * TICK_S
            if now >= due:
                for _ in range(PER_TICK):
                    submit()
                ticks += 1
                continue
            await asyncio.sleep(due - now)
        await asyncio.sleep(0.05)
        messages = acked[0] - acked0
        cpu = time.process_time() - cpu0
        written, io = store_bytes() - bytes0, io_write_bytes() - io0
        disk = disk_written_bytes(Path(tmp)) - disk0
        await log.close()
        log.store.close()
    return {
        "messages": messages,
        "messages_per_s": messages / seconds,
        "store_bytes_per_message": written / messages,
        "io_bytes_per_message": io / messages,
        "disk_bytes_per_message": disk / messages,
        "cpu_us_per_message": cpu / messages * 1e6,
        "ack_p50_ms": percentile(latencies, 0.5) * 1e3,
        "ack_p99_ms": percentile(latencies, 0.99) * 1e3,
        "commit_p50_ms": percentile(commits, 0.5) * 1e3,
        "commit_p99_ms": percentile(commits, 0.99) * 1e3,
        "commits": len(commits),
    }


async def _create(log: Any) -> None:
    from kefu.server.engine.messages import SendRequest  # noqa: PLC0415

    loop = asyncio.get_running_loop()
    left = [CONVERSATIONS]
    finished = loop.create_future()

    def done(result: Any) -> None:
        left[0] -= 1
        if not left[0]:
            finished.set_result(None)

    for c in range(CONVERSATIONS):
        log.submit(SendRequest(f"u{2 * c}", os.urandom(16), c + 1, 1, BODY, (), (f"u{2 * c + 1}",)), done)
        if c % 500 == 0:
            await asyncio.sleep(0)
    await finished


# --- the parent: runs and the table ------------------------------------------------------------------------------


def baseline_tree(commit: str, work: Path) -> Path:
    """A tree where the package `kefu` is the code of `commit` (as .ci/typecheck links it)."""
    repo = Path(__file__).resolve().parents[1]
    checkout = work / "checkout"
    subprocess.run(["git", "-C", str(repo), "worktree", "add", "--detach", "-f", str(checkout), commit],
                   check=True, capture_output=True)  # fmt: skip
    tree = work / "tree" / "kefu"
    tree.mkdir(parents=True)
    for name, folder in (("protocol", "protocol"), ("server", "server"), ("client", "clients/python")):
        (tree / name).symlink_to(checkout / folder)
    return tree.parent


def run(variant: str, path: Path | None, args: argparse.Namespace) -> dict[str, Any]:
    env = dict(os.environ)
    if path is not None:
        env["PYTHONPATH"] = str(path)
    cmd = [sys.executable, __file__, "--child", "--seconds", str(args.seconds), "--index-interval",
           str(args.index_interval)]  # fmt: skip
    out = subprocess.run(cmd, env=env, check=True, capture_output=True, text=True, timeout=args.seconds * 10 + 120)
    result: dict[str, Any] = json.loads(out.stdout.strip().splitlines()[-1])
    result["variant"] = variant
    print(json.dumps(result), file=sys.stderr, flush=True)
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--seconds", type=float, default=20.0)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--baseline", default="8277303", help="the commit whose write path is the baseline")
    parser.add_argument("--index-interval", type=float, default=2.0, help="[storage] index_interval_ms / 1000")
    parser.add_argument("--no-baseline", action="store_true")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(asyncio.run(child(args.seconds, args.index_interval))))
        return
    with tempfile.TemporaryDirectory(prefix="kefu-bench-base-") as tmp:
        base = None if args.no_baseline else baseline_tree(args.baseline, Path(tmp))
        rows: dict[str, list[dict[str, Any]]] = {"new": [], "old": []}
        try:
            for _ in range(args.runs):
                rows["new"].append(run("new", None, args))
                if base is not None:
                    rows["old"].append(run("old", base, args))
        finally:
            if base is not None:
                subprocess.run(["git", "worktree", "remove", "--force", str(Path(tmp) / "checkout")], check=False,
                               cwd=Path(__file__).resolve().parents[1], capture_output=True)  # fmt: skip
    keys = ["messages_per_s", "store_bytes_per_message", "io_bytes_per_message", "disk_bytes_per_message",
            "cpu_us_per_message",
            "ack_p50_ms", "ack_p99_ms", "commit_p50_ms", "commit_p99_ms"]  # fmt: skip
    print(f"| medians of {args.runs} runs of {args.seconds:.0f} s | " + " | ".join(k for k in rows if rows[k]) +
          (" | new/old |" if rows["old"] else " |"))  # fmt: skip
    print("|---" * (2 + bool(rows["old"]) + bool(rows["new"])) + "|")
    for key in keys:
        medians = {k: statistics.median(r[key] for r in v) for k, v in rows.items() if v}
        cells = " | ".join(f"{m:,.2f}" for m in medians.values())
        ratio = f" | {medians['new'] / medians['old']:.3f}" if medians.get("old") else ""
        print(f"| {key} | {cells}{ratio} |")


if __name__ == "__main__":
    main()
