"""The audit trail's costs (issue #14 point 5): appending, verifying and exporting, on real LMDB with SM4-GCM sealing.

- `record`: one entry per durable write transaction (`audit.record`, what an operator's command does): median cost.
- `writer`: entries queued from one thread into an `AuditWriter` (what the event loop does): the caller's cost per
  `record` call (median of 1,000-call rounds), and the entries per second the writer's thread appends in batches.
- `verify`, `export`: seconds and entries per second for a chain of --entries entries (searches with a query, the
  largest routine entry).

    .venv/bin/python bench/bench_audit.py --entries 100000
"""

from __future__ import annotations

import argparse
import io
import json
import os
import shutil
import statistics
import tempfile
import time
from pathlib import Path

from kefu.server.admin.audit import export
from kefu.server.storage import audit
from kefu.server.storage.sealing import DataKey, Sealer
from kefu.server.storage.store import Store

KEY = DataKey(1, "sm4-gcm", bytes(range(16)))
DETAILS = {"query": "信用卡账单 分期", "limit": 20}


def bench_record(store: Store, n: int) -> float:
    """Median seconds of one `audit.record` (its own fsync'd transaction)."""
    times = []
    for i in range(n):
        t0 = time.perf_counter()
        audit.record(store, actor="os:ops", action="app.add", target=f"app{i}")
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def bench_writer(store: Store, n: int) -> tuple[float, float]:
    """(median caller seconds per `record`, entries per second appended by the writer's thread)."""
    writer = audit.AuditWriter(store, name="bench", max_queued=n + 1)
    rounds = []
    t_start = time.perf_counter()
    for r in range(n // 1000):
        t0 = time.perf_counter()
        for i in range(1000):
            writer.record("a1", "service.search", "", "ok", DETAILS | {"n": r * 1000 + i})
        rounds.append((time.perf_counter() - t0) / 1000)
    writer.flush(600)
    elapsed = time.perf_counter() - t_start
    writer.close()
    return statistics.median(rounds), n / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--entries", type=int, default=100_000)
    parser.add_argument("--records", type=int, default=200, help="single-entry transactions timed")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-audit-"))
    try:
        store = Store(root / "store", sealer=Sealer([KEY]))
        record_s = bench_record(store, args.records)
        call_s, appended_per_s = bench_writer(store, args.entries)
        total = audit.head(store)[0]
        t0 = time.perf_counter()
        report = audit.verify(store)
        verify_s = time.perf_counter() - t0
        assert report.problem is None and report.checked == total
        out = io.StringIO()
        t0 = time.perf_counter()
        written, _ = export(store, out)
        export_s = time.perf_counter() - t0
        size = (store.path / "data.mdb").stat().st_size
        store.close()
        result = {
            "entries": total,
            "record_median_ms": round(record_s * 1000, 3),
            "writer_call_median_us": round(call_s * 1e6, 2),
            "writer_appended_per_s": round(appended_per_s),
            "verify_s": round(verify_s, 2),
            "verify_per_s": round(total / verify_s),
            "export_s": round(export_s, 2),
            "export_per_s": round(written / export_s),
            "export_bytes_per_entry": round(len(out.getvalue().encode()) / written),
            "store_bytes_per_entry": round(size / total),
            "cpus": os.cpu_count(),
        }
        print(json.dumps(result))
    finally:
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    main()
