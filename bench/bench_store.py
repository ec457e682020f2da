"""Benchmark of the durable write path: `Store.commit` alone, and through the `GroupCommitter`.

Run ``.venv/bin/python bench/bench_store.py`` (``--quick`` for a short run). The target: at least 20,000 durable
messages per server CPU-second, everything included; the store's share must stay well below that budget (50 us).

Each run opens a fresh store (``sync=True``: every commit is an fdatasync) in a temporary directory, creates
`conversations` two-member conversations, then stores `n` messages with 200-byte bodies round-robin over them.
``bench_commit`` calls ``Store.commit`` with batches of `batch` messages from this thread; ``bench_group_commit``
submits from an asyncio loop in bursts, as the gateway does, and lets the committer batch. Reported: messages/s
and commits/s (wall clock) and the process CPU time per message (``time.process_time``, all threads).
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import tempfile
import time
from pathlib import Path
from typing import Any

from kefu.server.storage.committer import GroupCommitter
from kefu.server.storage.store import SendRequest, SendResult, Store

BODY = b"x" * 200


def _requests(n: int, conversations: int, *, start: int = 0) -> list[SendRequest]:
    return [
        SendRequest(f"user{c}", (start + i).to_bytes(16, "big"), c, 1, BODY, ())
        for i in range(n)
        for c in [1 + (start + i) % conversations]
    ]


def _prepare(path: Path, conversations: int) -> Store:
    store = Store(path, map_size=256 << 20)
    create = [
        SendRequest(f"user{c}", os.urandom(16), c, 1, BODY, (), create_members=(f"agent{c % 50}",))
        for c in range(1, conversations + 1)
    ]
    store.commit(create, [], now_ms=int(time.time() * 1000))
    return store


def _result(name: str, batch: int, n: int, commits: int, wall: float, cpu: float) -> dict[str, Any]:
    return {
        "path": name,
        "batch": batch,
        "messages_per_s": n / wall,
        "commits_per_s": commits / wall,
        "cpu_us_per_message": cpu / n * 1e6,
    }


def bench_commit(n: int, batch: int, *, conversations: int = 1000) -> dict[str, Any]:
    """Store `n` messages with `Store.commit` in batches of `batch`; returns the rates."""
    with tempfile.TemporaryDirectory(prefix="kefu-bench-") as tmp:
        store = _prepare(Path(tmp) / "db", conversations)
        requests = _requests(n, conversations)
        batches = [requests[i : i + batch] for i in range(0, n, batch)]
        gc.disable()
        wall, cpu = time.perf_counter(), time.process_time()
        for chunk in batches:
            store.commit(chunk, [], now_ms=int(time.time() * 1000))
        wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
        gc.enable()
        store.close()
    return _result("Store.commit", batch, n, len(batches), wall, cpu)


def bench_group_commit(n: int, burst: int = 256, *, conversations: int = 1000) -> dict[str, Any]:
    """Submit `n` messages from a loop in bursts of `burst` per loop iteration; the committer batches them."""
    with tempfile.TemporaryDirectory(prefix="kefu-bench-") as tmp:
        store = _prepare(Path(tmp) / "db", conversations)
        requests = _requests(n, conversations)
        commits = 0

        def observe(writes: int, seconds: float) -> None:
            nonlocal commits
            commits += 1

        async def run() -> tuple[float, float]:
            loop = asyncio.get_running_loop()
            committer = GroupCommitter(store, loop, observer=observe)
            committer.start()
            done = loop.create_future()
            left = n

            def callback(result: SendResult) -> None:
                nonlocal left
                left -= 1
                if not left:
                    done.set_result(None)

            wall, cpu = time.perf_counter(), time.process_time()
            for i in range(0, n, burst):
                for request in requests[i : i + burst]:
                    committer.submit(request, callback)
                await asyncio.sleep(0)
            await done
            wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
            await committer.stop()
            return wall, cpu

        wall, cpu = asyncio.run(run())
        store.close()
    return _result("GroupCommitter", burst, n, commits, wall, cpu)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--quick", action="store_true", help="fewer messages")
    args = parser.parse_args()
    scale = 1 if args.quick else 4
    rows = [bench_commit(2_000 * scale if batch == 1 else 25_000 * scale, batch) for batch in (1, 32, 256)]
    rows.append(bench_group_commit(25_000 * scale))
    print(f"{'path':<16} {'batch':>6} {'messages/s':>12} {'commits/s':>10} {'CPU us/msg':>11}")
    for r in rows:
        print(
            f"{r['path']:<16} {r['batch']:>6} {r['messages_per_s']:>12,.0f} {r['commits_per_s']:>10,.0f}"
            f" {r['cpu_us_per_message']:>11.1f}"
        )


if __name__ == "__main__":
    main()
