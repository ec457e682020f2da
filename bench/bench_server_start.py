"""What a start of `kefu serve` (two gateways and a core) and a restart of a killed worker cost, with the workers
forked from the zygote (`kefu.server.runtime.zygote`) and, as the baseline in the same run, started as fresh
interpreters (``KEFU_ZYGOTE=0``).

    .venv/bin/python bench/bench_server_start.py [--runs 5] [--workers 2]

Each run, in alternating order of the two modes, on a data directory that served once before (keys made, store
created): the seconds from the command to its listening line; the seconds from a SIGKILL of gateway-0 and of the core
to /healthz reporting it ready again; and the CPU seconds of the whole server (every process, the start, both
restarts and the SIGTERM drain), from this process's RUSAGE_CHILDREN. One JSON line per run, then the medians and
the ratios.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import signal
import statistics
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

from benchlib import machine

from kefu.server.runtime.launch import ServeProcess


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _ready(server: ServeProcess, name: str, old: int) -> bool:
    pid = server.workers().get(name)
    if pid is None or pid == old:
        return False
    try:
        with urllib.request.urlopen(f"http://127.0.0.1:{server.metrics_port}/healthz", timeout=2) as answer:
            return bool(json.load(answer)["workers"][name]["ready"])
    except (OSError, ValueError, KeyError):
        return False


def _restart(server: ServeProcess, name: str) -> float:
    """Seconds from a SIGKILL of worker `name` to its successor reported ready."""
    old = server.workers()[name]
    started = time.monotonic()
    os.kill(old, signal.SIGKILL)
    while not _ready(server, name, old):
        if time.monotonic() - started > 60:
            raise RuntimeError(f"{name} not ready again within 60 s")
        time.sleep(0.01)
    return time.monotonic() - started


def run_once(data_dir: Path, zygote: bool, workers: int) -> dict[str, Any]:
    env = {"KEFU_ZYGOTE": "1" if zygote else "0", "KEFU_SERVER_WORKERS": str(workers)}
    server = ServeProcess(data_dir, env=env)
    cpu0 = _children_cpu()
    t0 = time.monotonic()
    server.start()
    start_s = time.monotonic() - t0
    time.sleep(0.5)  # the processes settle (the first ping, the indexer's start)
    gateway_s = _restart(server, "gateway-0")
    core_s = _restart(server, "core")
    server.stop(timeout=60)
    cpu_s = _children_cpu() - cpu0
    seconds = {"start_s": start_s, "gateway_restart_s": gateway_s, "core_restart_s": core_s, "cpu_s": cpu_s}
    return {"mode": "zygote" if zygote else "exec", **{k: round(v, 3) for k, v in seconds.items()}}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--runs", type=int, default=5)
    parser.add_argument("--workers", type=int, default=2, help="gateways ([server] workers)")
    args = parser.parse_args()
    print(json.dumps({"machine": machine()}))
    rows: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="kefu-start-") as tmp:
        dirs = {mode: Path(tmp) / mode / "data" for mode in ("zygote", "exec")}
        for mode, data_dir in dirs.items():  # the first start makes keys and the store: not measured
            data_dir.parent.mkdir()
            ServeProcess(data_dir, env={"KEFU_ZYGOTE": "1" if mode == "zygote" else "0"}).start().stop()
        for n in range(args.runs):
            for zygote in (True, False) if n % 2 == 0 else (False, True):
                row = run_once(dirs["zygote" if zygote else "exec"], zygote, args.workers)
                rows.append(row)
                print(json.dumps(row), flush=True)
    summary: dict[str, Any] = {}
    for key in ("start_s", "gateway_restart_s", "core_restart_s", "cpu_s"):
        medians = {m: statistics.median(r[key] for r in rows if r["mode"] == m) for m in ("zygote", "exec")}
        summary[key] = {**medians, "zygote/exec": round(medians["zygote"] / medians["exec"], 3)}
    print(json.dumps({"medians": summary, "runs": args.runs, "workers": args.workers}))


if __name__ == "__main__":
    main()
