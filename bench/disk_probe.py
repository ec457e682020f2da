"""What a commit costs on this disk, without LMDB: N random 4 KiB page writes, fdatasync, one meta page, fdatasync.

That is the shape of an LMDB commit with sync and metasync (kefu's store): the dirty pages, then the meta page, each
made durable. A commit's time, and its tail, grow with the pages it writes; run this on the data directory's disk.

    .venv/bin/python -m bench.disk_probe [--dir DATA_DIR] [--pages 1,30,100] [--rounds 400]
"""

from __future__ import annotations

import argparse
import os
import random
import tempfile
import time

PAGE = 4096
FILE_PAGES = 25_600  # a 100 MiB file, written out first so that no write extends it


def probe(fd: int, pages: int, rounds: int) -> list[float]:
    """Milliseconds per commit-shaped write, sorted."""
    page = os.urandom(PAGE)
    times = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(pages):
            os.pwrite(fd, page, random.randrange(1, FILE_PAGES) * PAGE)
        os.fdatasync(fd)
        os.pwrite(fd, page, 0)  # the meta page
        os.fdatasync(fd)
        times.append((time.perf_counter() - t0) * 1000)
    return sorted(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dir", default=None, help="directory on the disk to probe (default: the temp directory)")
    parser.add_argument("--pages", default="1,30,100", help="comma-separated page counts per commit")
    parser.add_argument("--rounds", type=int, default=400, help="commits per page count")
    args = parser.parse_args()
    with tempfile.NamedTemporaryFile(dir=args.dir, prefix="kefu-disk-probe-") as f:
        fd = f.fileno()
        os.write(fd, bytes(FILE_PAGES * PAGE))
        os.fsync(fd)
        print("| pages per commit | p50 ms | p90 ms | p99 ms | max ms |\n|---|---|---|---|---|")
        for pages in (int(p) for p in args.pages.split(",")):
            t = probe(fd, pages, args.rounds)
            n = len(t)
            print(f"| {pages} | {t[n // 2]:.2f} | {t[n * 9 // 10]:.2f} | {t[n * 99 // 100]:.2f} | {t[-1]:.2f} |")


if __name__ == "__main__":
    main()
