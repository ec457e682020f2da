"""The Java client beside the Python client, in the same run against the same local `kefu serve` (issue #15).

::

    .venv/bin/python bench/bench_java_client.py [--runs 5] [--messages 50000] [--window 1000] [--handshakes 500]

Measured per client, each run in a fresh process of its own (a JVM, or a Python interpreter on uvloop when it is
installed), the median of `--runs` runs reported:

- full handshakes/s: after as many untimed ones (the JVM's JIT needs a few hundred to settle), sequential
  connections, each a new client with a full handshake (SM2 signature, ECDHE), connect plus close (close waits for
  the server's CLOSE);
- resumed handshakes/s: the same, each resuming with the ticket the previous connection received;
- messages/s: one client over one connection sends `--messages` 64-byte messages closed-loop with at most `--window`
  waiting for their SEND_ACK (each durable on the server before it answers), after as many untimed ones (with a
  fifth as many, the JIT compiler thread still ran in the timed window and added about 3 us per message);
- CPU per message: the client process's CPU time (all its threads) over the timed section, divided by the messages.

The server (`--server-workers N` sets its `[server] workers`) runs with the per-connection rate limits out of the
way (tests/integration/conftest.py LOAD_LIMITS) on 127.0.0.1; the national suite unless `--suite international`.
Results go to stdout and, as JSON, to bench/out/java_client.json, with the issue's targets: the Java client sends at
least 20,000 acknowledged messages a second, and its CPU per message is below the Python client's. The Java classes
come from clients/java/build.sh (run first if missing; `--java-build DIR` uses another build directory).
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JAVA_DIR = ROOT / "clients" / "java"
BCPROV = "/usr/share/java/bcprov.jar"
LOAD_LIMITS = {
    "KEFU_LIMITS_CONN_FRAMES_PER_S": "1000000",
    "KEFU_LIMITS_CONN_FRAMES_BURST": "1000000",
    "KEFU_LIMITS_CONN_BYTES_PER_S": "1000000000",
    "KEFU_LIMITS_CONN_BYTES_BURST": "1000000000",
}
WORKER_TIMEOUT_S = 300.0


# --- the Python worker (run as a subprocess: `bench_java_client.py --python-worker MODE ...`) -------------------


async def _py_handshakes(options: dict[str, Any], resumed: bool, warmup: int, count: int) -> tuple[float, float]:
    from kefu.client import Client  # noqa: PLC0415

    ticket = None

    async def once() -> None:
        nonlocal ticket
        client = Client(**options)
        if resumed and ticket is not None:
            client._dialer.ticket = ticket  # the benchmark resumes across clients
        await client.connect()
        if resumed and ticket is not None and not client.resumed:
            raise RuntimeError("not resumed")
        if resumed:
            deadline = time.monotonic() + 5
            while client._dialer.ticket is None and time.monotonic() < deadline:
                await asyncio.sleep(0)
            ticket = client._dialer.ticket
        await client.close()

    for _ in range(warmup):
        await once()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    for _ in range(count):
        await once()
    return time.perf_counter() - wall0, time.process_time() - cpu0


async def _py_messages(options: dict[str, Any], warmup: int, count: int, window: int, to: str) -> tuple[float, float]:
    from kefu.client import Client, new_conversation_id  # noqa: PLC0415

    body = b"x" * 64
    async with Client(**options) as client:
        conv = new_conversation_id()
        await client.send(conv, body, to=[to])

        async def run(n: int) -> None:
            slots = asyncio.Semaphore(window)

            async def one() -> None:
                try:
                    await client.send(conv, body)
                finally:
                    slots.release()

            tasks = []
            for _ in range(n):
                await slots.acquire()
                tasks.append(asyncio.ensure_future(one()))
            await asyncio.gather(*tasks)

        await run(warmup)
        cpu0, wall0 = time.process_time(), time.perf_counter()
        await run(count)
        return time.perf_counter() - wall0, time.process_time() - cpu0


def python_worker(argv: list[str]) -> None:
    """Run one measurement of the Python client; print it as one JSON line."""
    from kefu.client import Suite  # noqa: PLC0415

    mode, rest = argv[0], argv[1:]
    o = dict(zip(rest[::2], rest[1::2], strict=True))
    options = {
        "host": o["--host"], "port": int(o["--port"]), "app_id": o["--app"], "app_secret": o["--secret"],
        "server_pins": o["--pins"].split(","), "suites": (Suite[o.get("--suite", "national").upper()],),
    }  # fmt: skip
    count, warmup = int(o.get("--count", "200")), int(o.get("--warmup", "50"))
    if mode == "messages":
        coro = _py_messages(options, warmup, count, int(o.get("--window", "1000")), o["--to"])
    else:
        coro = _py_handshakes(options, mode == "resumed", warmup, count)
    try:
        import uvloop  # noqa: PLC0415

        wall, cpu = uvloop.run(coro)
    except ImportError:
        wall, cpu = asyncio.run(coro)
    print(json.dumps({"mode": mode, "ops": count, "wall_s": wall, "cpu_s": cpu}))


# --- the driver ------------------------------------------------------------------------------------------------


TARGET_MESSAGES_PER_S = 20_000
"""Issue #15: a single Java client sends at least this many acknowledged messages a second to a local server."""


def java_classpath(build: Path) -> str:
    """The classpath of the library and ClientBench in `build`, running build.sh (no javadoc) first if needed."""
    if not (build / "test-classes" / "io" / "kefu" / "client" / "ClientBench.class").is_file():
        env = {**os.environ, "KEFU_JAVA_BUILD": str(build)}
        subprocess.run(["bash", str(JAVA_DIR / "build.sh"), "--no-javadoc"], check=True, timeout=600, env=env)
    return os.pathsep.join([str(build / "classes"), str(build / "test-classes"), BCPROV])


def one(cmd: list[str]) -> dict[str, Any]:
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=WORKER_TIMEOUT_S, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"{cmd[:4]} failed:\n{done.stdout[-2000:]}\n{done.stderr[-2000:]}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--messages", type=int, default=50_000)
    p.add_argument("--window", type=int, default=1000)
    p.add_argument("--handshakes", type=int, default=500)
    p.add_argument("--suite", default="national", choices=("national", "international"))
    p.add_argument("--java-build", type=Path, default=JAVA_DIR / "build")
    p.add_argument(
        "--server-workers", type=int, default=-1,
        help="the server's [server] workers (0: one process, which has the most left for one connection on a"
        " small host); default: the server's own default",
    )  # fmt: skip
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "out" / "java_client.json")
    args = p.parse_args(argv)
    sys.path.insert(0, str(ROOT / "bench"))
    from benchlib import machine  # noqa: PLC0415

    from kefu.server.identity.bulk import bulk_app_id, derive_secret  # noqa: PLC0415
    from kefu.server.runtime.launch import ServeProcess  # noqa: PLC0415

    classpath = java_classpath(args.java_build)
    with tempfile.TemporaryDirectory(prefix="kefu-bench-java-") as tmp:
        data = Path(tmp) / "data"
        seed = os.urandom(16).hex()
        subprocess.run(
            [sys.executable, "-m", "kefu.server.cli", "app", "add-bulk", "b", "4", "--secret-seed", seed,
             "--data-dir", str(data)],
            check=True, capture_output=True, timeout=60,
        )  # fmt: skip
        apps = [bulk_app_id("b", i) for i in range(4)]
        secrets = {a: base64.urlsafe_b64encode(derive_secret(seed.encode(), a)).decode() for a in apps}
        env = LOAD_LIMITS | ({"KEFU_SERVER_WORKERS": str(args.server_workers)} if args.server_workers >= 0 else {})
        server = ServeProcess(data, env=env, args=["--host", "127.0.0.1"])
        server.start()
        try:
            pins = ",".join((data / "keys" / "pins.txt").read_text().split())
            results = run_all(args, server.port, pins, apps, secrets, classpath)
        finally:
            server.stop()
    java, python = results["java.messages"], results["python.messages"]
    targets = {
        "java_acked_messages_per_s": {
            "target": TARGET_MESSAGES_PER_S, "measured": java["ops_per_s_median"],
            "passed": java["ops_per_s_median"] >= TARGET_MESSAGES_PER_S,
        },
        "java_cpu_per_message_below_python": {
            "target": python["cpu_us_per_op_median"], "measured": java["cpu_us_per_op_median"],
            "passed": java["cpu_us_per_op_median"] < python["cpu_us_per_op_median"],
        },
    }  # fmt: skip
    report = {
        "machine": machine(), "args": {k: str(v) for k, v in vars(args).items()}, "results": results,
        "targets": targets,
    }  # fmt: skip
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2))
    print_table(results)
    for name, t in targets.items():
        print(f"{name}: measured {t['measured']:.1f}, target {t['target']:.1f}: {'met' if t['passed'] else 'MISSED'}")
    return 0


def run_all(
    args: argparse.Namespace, port: int, pins: str, apps: list[str], secrets: dict[str, str], classpath: str
) -> dict[str, Any]:
    results: dict[str, Any] = {}
    plan = [
        ("full", args.handshakes, args.handshakes),  # the JIT needs a few hundred handshakes to settle
        ("resumed", args.handshakes, args.handshakes),
        ("messages", args.messages, args.messages),  # as many untimed first: the JIT settles (a fifth did not)
    ]
    for language, sender in (("java", apps[0]), ("python", apps[1])):
        common = ["--host", "127.0.0.1", "--port", str(port), "--app", sender, "--secret", secrets[sender],
                  "--pins", pins, "--suite", args.suite]  # fmt: skip
        for mode, count, warmup in plan:
            extra = ["--count", str(count), "--warmup", str(warmup), "--window", str(args.window), "--to", apps[2]]
            if language == "java":
                cmd = ["java", "-cp", classpath, "io.kefu.client.ClientBench", mode, *common, *extra]
            else:
                cmd = [sys.executable, __file__, "--python-worker", mode, *common, *extra]
            runs = [one(cmd) for _ in range(args.runs)]
            rates = [r["ops"] / r["wall_s"] for r in runs]
            cpu_us = [r["cpu_s"] / r["ops"] * 1e6 for r in runs]
            results[f"{language}.{mode}"] = {
                "ops_per_s_median": statistics.median(rates), "ops_per_s_runs": rates,
                "cpu_us_per_op_median": statistics.median(cpu_us), "cpu_us_per_op_runs": cpu_us, "ops": count,
            }  # fmt: skip
            rate, cpu = statistics.median(rates), statistics.median(cpu_us)
            runs_text = [round(x) for x in rates]
            print(f"{language:6} {mode:9} {rate:10.0f}/s  cpu {cpu:8.1f} us/op  runs {runs_text}", flush=True)
    return results


def print_table(results: dict[str, Any]) -> None:
    print(f"\n{'':22} {'Java':>14} {'Python':>14}")
    for mode, label in (
        ("full", "full handshakes/s"),
        ("resumed", "resumed handshakes/s"),
        ("messages", "acked msgs/s"),
    ):
        j, y = results[f"java.{mode}"], results[f"python.{mode}"]
        print(f"{label:22} {j['ops_per_s_median']:14.0f} {y['ops_per_s_median']:14.0f}")
        print(f"{'  CPU us per op':22} {j['cpu_us_per_op_median']:14.1f} {y['cpu_us_per_op_median']:14.1f}")


if __name__ == "__main__":
    if len(sys.argv) > 1 and sys.argv[1] == "--python-worker":
        python_worker(sys.argv[2:])
    else:
        sys.exit(main())
