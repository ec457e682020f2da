"""Webhook events per second, and what subscribing costs the message path, in the same run (issue #17, point 7).

::

    .venv/bin/python bench/bench_webhooks.py [--visitors 40] [--messages 50] [--runs 3] [--server-workers 0]

One `kefu serve` (the default service directory: tenant "", group "general"), `--visitors` visitor apps (`kefu app
add-bulk --role visitor`), and a receiver in a process of its own (aiohttp on loopback, answering 200 at once and
counting distinct event ids). Each run, every visitor opens a service conversation and sends `--messages` TEXT
messages one after the other (each waiting for its SEND_ACK, i.e. durable), all visitors at once. Runs alternate
between no subscription ("off") and one subscription to `message.committed` and `conversation.opened` ("on", made
with `kefu webhook add` before the run and removed after it), `--runs` of each:

- sends/s: SEND_ACKs received per second of the sending phase (the message path, with and without the webhooks
  watching the group commit);
- server CPU per message: every server process's CPU over the run (from /proc), divided by the messages sent; in "on"
  runs it includes the deliveries, which go on after the sends until every event has arrived;
- events/s ("on"): distinct events the receiver got (one per conversation opened and per message), divided by the
  time from the first send to the last event's arrival;
- lag: from the last SEND_ACK to the last event's arrival.

The load generator, the receiver and the server share this machine's cores: the absolute figures are this machine's,
the on/off ratio is the figure to read. Medians go to stdout and, with every run, as JSON to
bench/results/issue17-webhooks.json (`--out`).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

SEED = "kefu-bench-webhooks"
PREFIX = "wv"
EVENTS = "conversation.opened,message.committed"
RELOAD_WAIT_S = 1.5
"""Longer than the server's re-read of the subscriptions (RELOAD_S = 1 s)."""


# --- the receiver (its own process) --------------------------------------------------------------------------------


def receiver_main(port_file: str) -> None:
    """Serve POST /hook (count distinct ids, note the last arrival) and GET /count; write the port to `port_file`."""
    from aiohttp import web  # noqa: PLC0415

    seen: set[str] = set()
    last = [0.0]

    async def hook(request: web.Request) -> web.Response:
        seen.add(request.headers.get("Kefu-Webhook-Id", ""))
        last[0] = time.time()
        await request.read()
        return web.Response(status=200)

    async def count(request: web.Request) -> web.Response:
        return web.json_response({"events": len(seen), "last": last[0]})

    async def serve() -> None:
        app = web.Application()
        app.router.add_post("/hook", hook)
        app.router.add_get("/count", count)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        site = web.TCPSite(runner, "127.0.0.1", 0)
        await site.start()
        Path(port_file).write_text(str(runner.addresses[0][1]))
        await asyncio.Event().wait()

    asyncio.run(serve())


class ReceiverProcess:
    def __init__(self, tmp: Path) -> None:
        port_file = tmp / "receiver.port"
        self.proc = subprocess.Popen([sys.executable, __file__, "--receiver", str(port_file)])
        deadline = time.monotonic() + 30
        while not port_file.exists() or not port_file.read_text():
            if time.monotonic() > deadline or self.proc.poll() is not None:
                raise RuntimeError("the receiver did not start")
            time.sleep(0.05)
        self.port = int(port_file.read_text())

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/hook"

    async def count(self, session: Any) -> tuple[int, float]:
        async with session.get(f"http://127.0.0.1:{self.port}/count") as response:
            data = await response.json()
        return int(data["events"]), float(data["last"])

    def stop(self) -> None:
        self.proc.kill()
        self.proc.wait()


# --- the runs ------------------------------------------------------------------------------------------------------


def kefu(data_dir: Path, *args: str) -> str:
    out = subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", *args, "--data-dir", str(data_dir)],
        capture_output=True, text=True, check=True, timeout=120,
    )  # fmt: skip
    return out.stdout


async def one_run(
    mode: str, server: Any, creds: list[Any], receiver: ReceiverProcess, args: argparse.Namespace
) -> dict[str, float]:
    import aiohttp  # noqa: PLC0415

    from bench.kefu_bench.paired import processes_cpu_s  # noqa: PLC0415
    from kefu.client import Client  # noqa: PLC0415

    sub_id = ""
    if mode == "on":
        sub_id = kefu(server.data_dir, "webhook", "add", receiver.url, "--events", EVENTS).split()[0]
        await asyncio.sleep(RELOAD_WAIT_S)
    clients = []
    for c in creds:
        client = Client("127.0.0.1", server.port, app_id=c.app_id, app_secret=c.secret, server_pins=c.pins,
                        reconnect=False)  # fmt: skip
        await client.connect()
        clients.append(client)
    async with aiohttp.ClientSession() as session:
        before, _ = await receiver.count(session)
        pids = server.processes()
        cpu0, t0 = processes_cpu_s(pids), time.time()

        async def visitor(client: Any) -> None:
            opened = await client.service.open()
            for n in range(args.messages):
                await client.send(opened.conversation_id, f"message {n}")

        await asyncio.gather(*(visitor(c) for c in clients))
        t_sent = time.time()
        expected = args.visitors * (args.messages + 1)
        received, last = before, 0.0
        if mode == "on":
            deadline = time.monotonic() + 120
            while received - before < expected and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
                received, last = await receiver.count(session)
        cpu1 = processes_cpu_s(pids)
    await asyncio.gather(*(c.close() for c in clients))
    if sub_id:
        kefu(server.data_dir, "webhook", "remove", sub_id)
        await asyncio.sleep(RELOAD_WAIT_S)
    messages = args.visitors * args.messages
    result = {
        "sends_per_s": messages / (t_sent - t0),
        "server_cpu_us_per_msg": (cpu1 - cpu0) / messages * 1e6,
    }
    if mode == "on":
        result.update(
            events=received - before,
            events_per_s=(received - before) / (last - t0),
            lag_s=max(0.0, last - t_sent),
        )
    return result


async def run_all(
    server: Any, creds: list[Any], receiver: ReceiverProcess, args: argparse.Namespace
) -> dict[str, list[dict[str, float]]]:
    runs: dict[str, list[dict[str, float]]] = {"off": [], "on": []}
    for n in range(args.runs):
        for mode in ("off", "on"):
            result = await one_run(mode, server, creds, receiver, args)
            runs[mode].append(result)
            extra = (f", {result['events_per_s']:7,.0f} events/s ({result['events']:.0f}), lag "
                     f"{result['lag_s']:.2f} s") if mode == "on" else ""  # fmt: skip
            print(f"run {n + 1} {mode:>3}: {result['sends_per_s']:7,.0f} sends/s, server "
                  f"{result['server_cpu_us_per_msg']:6.1f} us/msg{extra}", flush=True)  # fmt: skip
    return runs


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--visitors", type=int, default=40, help="visitors, each with its own conversation")
    p.add_argument("--messages", type=int, default=50, help="messages each visitor sends per run")
    p.add_argument("--runs", type=int, default=3, help="runs of each mode (alternating)")
    p.add_argument("--server-workers", type=int, default=0, help="[server] workers of the server")
    p.add_argument("--out", default=str(ROOT / "bench" / "results" / "issue17-webhooks.json"))
    p.add_argument("--receiver", help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.receiver:
        receiver_main(args.receiver)
        return 0
    from bench.kefu_bench.paired import bulk_server, median_of  # noqa: PLC0415 - not in the receiver's process

    env = {"KEFU_SERVICE_SENTIMENT": "false"}
    with bulk_server(PREFIX, args.visitors, workers=args.server_workers, seed=SEED, role="visitor", env=env,
                     temp_prefix="kefu-bench-webhooks-") as (server, creds, data_dir):  # fmt: skip
        receiver = ReceiverProcess(data_dir.parent)
        try:
            runs = asyncio.run(run_all(server, creds, receiver, args))
        finally:
            receiver.stop()
    off, on = runs["off"], runs["on"]
    summary = {
        "sends_per_s_off": median_of(off, "sends_per_s"),
        "sends_per_s_on": median_of(on, "sends_per_s"),
        "server_cpu_us_per_msg_off": median_of(off, "server_cpu_us_per_msg"),
        "server_cpu_us_per_msg_on": median_of(on, "server_cpu_us_per_msg"),
        "events_per_s": median_of(on, "events_per_s"),
        "lag_s": median_of(on, "lag_s"),
    }
    print(
        f"median of {args.runs}: sends/s off {summary['sends_per_s_off']:,.0f}, on {summary['sends_per_s_on']:,.0f}"
        f" (on/off {summary['sends_per_s_on'] / summary['sends_per_s_off']:.2f}); server CPU per message off"
        f" {summary['server_cpu_us_per_msg_off']:.1f} us, on {summary['server_cpu_us_per_msg_on']:.1f} us; webhook"
        f" events/s {summary['events_per_s']:,.0f}, lag after the last send {summary['lag_s']:.2f} s"
    )
    record = {
        "bench": "webhooks", "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "args": vars(args),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version()}, "summary": summary, "runs": runs,
    }  # fmt: skip
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(json.dumps(record, indent=1) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
