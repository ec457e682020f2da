"""How fast `kefu verify` checks a store: records and MiB per second, on a store written by the real write path.

    .venv/bin/python bench/bench_verify.py [--messages 100000] [--runs 3] [--dir DIR]

Writes a sealed store (SM4-GCM, the default cipher) of --messages messages over 1,000 conversations through the log
and the indexer (as the server does), keeps it in --dir (reused when it holds one already), then runs
`verify_store` --runs times and prints one JSON line per run and the medians. The store is read from the page cache
after the first run (the first run's time includes reading the file from disk if it was not cached).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import resource
import statistics
import time
from pathlib import Path
from typing import Any

from kefu.server.engine.messages import SendRequest
from kefu.server.identity.datakeys import load_data_keys, sealer_of
from kefu.server.storage.conversations import LogSettings, open_conversations
from kefu.server.storage.store import Store
from kefu.server.storage.verify import verify_store

CONVERSATIONS = 1000
BATCH = 2000
BODY = b"x" * 120  # a short chat message


async def write(data: Path, messages: int) -> None:
    loop = asyncio.get_running_loop()
    store = Store(data / "store", sealer=sealer_of(data, "sm4-gcm"), map_size=1 << 30)
    log = open_conversations(store, loop, LogSettings(), data_dir=data)
    log.start()
    for start in range(0, messages, BATCH):
        futures = []
        for n in range(start, min(messages, start + BATCH)):
            conv = 1 + n % CONVERSATIONS
            request = SendRequest(f"user{conv}", n.to_bytes(16, "big"), conv, 1, BODY, (), create_members=("agent",))
            future = loop.create_future()
            log.submit(request, future.set_result)
            futures.append(future)
        await asyncio.gather(*futures)
    await log.close()
    store.close()


def _cpu() -> float:
    """CPU seconds of this process and its waited-for children (the walks run in child processes)."""
    own, children = resource.getrusage(resource.RUSAGE_SELF), resource.getrusage(resource.RUSAGE_CHILDREN)
    return own.ru_utime + own.ru_stime + children.ru_utime + children.ru_stime


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/kefu-bench-verify"))
    args = parser.parse_args()
    data = args.dir / f"data-{args.messages}"
    if not (data / "store" / "data.mdb").exists():
        started = time.monotonic()
        asyncio.run(write(data, args.messages))
        print(json.dumps({"wrote": args.messages, "seconds": round(time.monotonic() - started, 1)}))
    keys = load_data_keys(data)
    runs: list[dict[str, Any]] = []
    for _ in range(args.runs):
        cpu = _cpu()
        report = verify_store(data / "store", keys)
        cpu = _cpu() - cpu
        assert report.clean, [f.line() for f in report.findings[:5]]
        mib = report.bytes_read / 2**20
        run = {
            "seconds": round(report.seconds, 3), "cpu_s": round(cpu, 3), "records": report.records,
            "records_per_s": round(report.records / report.seconds), "records_per_cpu_s": round(report.records / cpu),
            "mib": round(mib, 1), "mib_per_s": round(mib / report.seconds, 1),
            "file_mib": round((data / "store" / "data.mdb").stat().st_size / 2**20, 1),
        }  # fmt: skip
        runs.append(run)
        print(json.dumps(run))
    medians = {k: statistics.median(r[k] for r in runs)
               for k in ("seconds", "cpu_s", "records_per_s", "records_per_cpu_s", "mib_per_s")}  # fmt: skip
    print(json.dumps({"messages": args.messages, "runs": len(runs), "median": medians, "cpus": os.cpu_count(),
                      "machine": platform.platform(), "python": platform.python_version(),
                      "load_average": os.getloadavg()}))  # fmt: skip


if __name__ == "__main__":
    main()
