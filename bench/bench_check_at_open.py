"""What the full check of the store at open costs (`[storage] check_at_open = "full"`, spec section 12.9): pages per
second and milliseconds of `pagewalk.walk` over a store written by the real write path, beside the tops check
(`preflight`, "tops") and a salvage of the same store with one leaf of ``messages`` zeroed.

    .venv/bin/python bench/bench_check_at_open.py [--messages 100000] [--runs 3] [--dir DIR]

The store is bench_verify's (SM4-GCM, 1,000 conversations, 120-byte bodies, written through the log and the
indexer), kept in --dir and reused. Each run reads the file from the page cache (warm after the first). One JSON line
per run, then the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import statistics
import struct
import time
from pathlib import Path
from typing import Any

from bench_verify import write

from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage import pagewalk
from kefu.server.storage.preflight import check_data_file, check_tree_tops
from kefu.server.storage.store import Store


def zero_a_leaf(data: Path) -> None:
    """Zero the first leaf under the root of ``messages`` (a copy's)."""
    found = pagewalk.walk(data)
    assert found is not None
    table, psize = found.tables["messages"], found.meta.page_size
    with data.open("r+b") as f:
        pgno = table.root
        for _ in range(table.depth - 1):
            page = os.pread(f.fileno(), psize, pgno * psize)
            node = struct.unpack_from("=H", page, 16)[0]
            lo, hi, flags = struct.unpack_from("=HHH", page, node)
            pgno = lo | hi << 16 | flags << 32
        f.seek(pgno * psize)
        f.write(bytes(psize))


def one_run(data: Path, scratch: Path) -> dict[str, Any]:
    file = data / "store" / "data.mdb"
    started, cpu = time.perf_counter(), time.process_time()
    found = pagewalk.walk(file)
    walk_s, walk_cpu = time.perf_counter() - started, time.process_time() - cpu
    assert found is not None and not found.damaged
    started = time.perf_counter()
    check_data_file(file)
    check_tree_tops(file)
    tops_s = time.perf_counter() - started
    shutil.rmtree(scratch, ignore_errors=True)
    shutil.copytree(data, scratch)
    zero_a_leaf(scratch / "store" / "data.mdb")
    started = time.perf_counter()
    store = Store(scratch / "store", sealer=sealer_of(scratch, "sm4-gcm"), map_size=1 << 30)
    salvage_s = time.perf_counter() - started
    assert store.salvaged is not None
    store.close()
    shutil.rmtree(scratch)
    return {
        "pages": found.pages, "file_mib": round(file.stat().st_size / 2**20, 1), "walk_ms": round(walk_s * 1000, 1),
        "walk_cpu_ms": round(walk_cpu * 1000, 1),
        "pages_per_s": round(found.pages / walk_s), "tops_ms": round(tops_s * 1000, 2),
        "salvaged_open_ms": round(salvage_s * 1000, 1),
    }  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--dir", type=Path, default=Path("/tmp/kefu-bench-verify"))
    args = parser.parse_args()
    data = args.dir / f"data-{args.messages}"
    if not (data / "store" / "data.mdb").exists():
        asyncio.run(write(data, args.messages))
    runs = []
    for _ in range(args.runs):
        run = one_run(data, args.dir / "salvage-scratch")
        runs.append(run)
        print(json.dumps(run))
    keys = ("walk_ms", "walk_cpu_ms", "pages_per_s", "tops_ms", "salvaged_open_ms")
    medians = {k: statistics.median(r[k] for r in runs) for k in keys}
    print(json.dumps({"messages": args.messages, "runs": len(runs), "median": medians, "cpus": os.cpu_count(),
                      "machine": platform.platform(), "python": platform.python_version(),
                      "load_average": os.getloadavg()}))  # fmt: skip


if __name__ == "__main__":
    main()
