"""A loaded kefu scraped by a real Prometheus, then the dashboard drawn from it (systemd/grafana/dashboard.png).

Run ``.venv/bin/python -m bench.monitoring_demo`` from the repository root (needs Debian's ``prometheus`` package:
``apt-get install prometheus``). It starts, on loopback only and each bounded by --minutes:

- ``kefu serve`` with 2 worker processes and the service directory of the integration tests (tenant bank: groups
  general, overflowing after 30 s to backup, and cards; agents a1 and a2 with room for one conversation each, b1 on
  backup), sentiment scoring off;
- Prometheus (``/usr/bin/prometheus``) scraping it every 5 s as job "kefu", with systemd/prometheus/kefu-alerts.yml
  loaded;
- a customer-service load: five bank visitors each open a conversation after another (some with the cards
  channel), wait with a patience of 10 to 70 s and give up (end it) when it runs out, or, once an agent is assigned,
  exchange a few messages and end it; the agents answer 2 to 12 s after an assignment and reply to each message; a2
  steps away for the middle third of the run; a wrong secret and an unknown app try to log in every 15 s.

Then it draws every panel (systemd/grafana/render.py) and stops what it started (by PID).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import random
import socket
import subprocess
import tempfile
import time
from pathlib import Path
from typing import Any

from kefu.client import AgentState, Client, ClientError, Message
from kefu.server.runtime.launch import ServeProcess
from tests.integration.service_harness import add_apps, write_directory

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("render", ROOT / "systemd" / "grafana" / "render.py")
assert _spec is not None and _spec.loader is not None
render = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(render)
RULES = ROOT / "systemd" / "prometheus" / "kefu-alerts.yml"
VISITORS = ("v1", "v2", "v3", "v4", "v5")
AGENTS = ("a1", "a2", "b1")
SCRAPE_S = 5


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def event_of(message: Message) -> dict[str, Any] | None:
    return json.loads(message.body) if message.is_system_event else None


class Person:
    """A connected client whose deliveries are sorted into per-conversation queues."""

    def __init__(self, client: Client) -> None:
        self.client = client
        self.inbox: dict[int, asyncio.Queue[Message]] = {}
        self.assigned: asyncio.Queue[int] = asyncio.Queue()
        self.reader = asyncio.ensure_future(self._read())

    def queue(self, conversation_id: int) -> asyncio.Queue[Message]:
        return self.inbox.setdefault(conversation_id, asyncio.Queue())

    async def _read(self) -> None:
        while (message := await self.client.receive()) is not None:
            event = event_of(message)
            kind, to = (event.get("event"), event.get("agent")) if event is not None else (None, None)
            if kind in ("assigned", "transferred") and to == self.client.app_id:
                self.assigned.put_nowait(message.conversation_id)
            self.queue(message.conversation_id).put_nowait(message)


async def connect(port: int, pins: frozenset[str], name: str, secret: bytes) -> Client:
    client = Client("127.0.0.1", port, app_id=name, app_secret=secret, server_pins=pins, reconnect=False)
    await client.connect()
    return client


async def visitor(person: Person, rng: random.Random, until: float) -> None:
    me = person.client.app_id
    while time.monotonic() < until - 15:
        attributes = {"channel": "cards"} if rng.random() < 0.25 else {}
        opened = await person.client.service.open(attributes=attributes, first_message="您好，我想咨询一下")
        conv = opened.conversation_id
        inbox = person.queue(conv)
        patience = time.monotonic() + rng.uniform(10, 70)
        assigned = bool(opened.agent)
        while not assigned and time.monotonic() < patience:
            with contextlib.suppress(TimeoutError):
                message = await asyncio.wait_for(inbox.get(), max(0.1, patience - time.monotonic()))
                event = event_of(message)
                assigned = event is not None and event.get("event") in ("assigned", "transferred")
        if assigned:
            for i in range(rng.randint(1, 3)):
                await asyncio.sleep(rng.uniform(2, 6))
                await person.client.send(conv, f"{me} 的第 {i + 1} 个问题")
        await person.client.service.end(conv, "done" if assigned else "gave up")
        await asyncio.sleep(rng.uniform(1, 8))


async def agent(person: Person, rng: random.Random, until: float) -> None:
    async def serve(conv: int) -> None:
        await asyncio.sleep(rng.uniform(2, 12))
        with contextlib.suppress(ClientError):
            await person.client.send(conv, "您好，我是客服，请讲")
        inbox = person.queue(conv)
        while time.monotonic() < until:
            message = await inbox.get()
            event = event_of(message)
            if event is not None and event.get("event") == "closed":
                return
            if event is None and message.sender != person.client.app_id:
                await asyncio.sleep(rng.uniform(0.5, 3))
                with contextlib.suppress(ClientError):
                    await person.client.send(conv, "好的，已为您处理")

    tasks = set()
    while time.monotonic() < until:
        with contextlib.suppress(TimeoutError):
            conv = await asyncio.wait_for(person.assigned.get(), 1)
            task = asyncio.ensure_future(serve(conv))
            tasks.add(task)
            task.add_done_callback(tasks.discard)
    for task in tasks:
        task.cancel()


async def step_away(person: Person, start: float, until: float) -> None:
    third = (until - start) / 3
    await asyncio.sleep(third)
    await person.client.service.set_status(AgentState.AWAY)
    await asyncio.sleep(third)
    await person.client.service.set_status(AgentState.ONLINE)


async def intruders(port: int, pins: frozenset[str], until: float) -> None:
    while time.monotonic() < until:
        for name in ("v1", "nobody"):
            with contextlib.suppress(ClientError, OSError):
                client = await connect(port, pins, name, bytes(32))
                await client.close()
        await asyncio.sleep(15)


async def load(server: ServeProcess, secrets: dict[str, bytes], seconds: float) -> None:
    start = time.monotonic()
    until = start + seconds
    pins = frozenset((server.data_dir / "keys" / "pins.txt").read_text().split())
    people = {n: Person(await connect(server.port, pins, n, secrets[n])) for n in (*AGENTS, *VISITORS)}
    for name in AGENTS:
        await people[name].client.service.set_status(AgentState.ONLINE)
    rng = random.Random(16)
    jobs = [visitor(people[n], random.Random(rng.random()), until) for n in VISITORS]
    jobs += [agent(people[n], random.Random(rng.random()), until) for n in AGENTS]
    jobs += [step_away(people["a2"], start, until), intruders(server.port, pins, until)]
    try:
        async with asyncio.timeout(seconds + 30):
            await asyncio.gather(*jobs)
    finally:
        for person in people.values():
            person.reader.cancel()
            await person.client.close()


def prometheus(workdir: Path, metrics_port: int, port: int) -> subprocess.Popen[bytes]:
    config = workdir / "prometheus.yml"
    config.write_text(
        f"global:\n  scrape_interval: {SCRAPE_S}s\n  evaluation_interval: 15s\n"
        f"rule_files:\n  - {RULES}\n"
        f"scrape_configs:\n  - job_name: kefu\n    static_configs:\n      - targets: ['127.0.0.1:{metrics_port}']\n"
    )
    log = (workdir / "prometheus.log").open("wb")
    return subprocess.Popen(
        ["/usr/bin/prometheus", f"--config.file={config}", f"--storage.tsdb.path={workdir / 'tsdb'}",
         f"--web.listen-address=127.0.0.1:{port}"],
        stdout=log, stderr=log,
    )  # fmt: skip


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=5.0)
    parser.add_argument("--out", type=Path, default=ROOT / "systemd" / "grafana" / "dashboard.png")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="kefu-monitoring-") as tmp:
        work = Path(tmp)
        data = work / "data"
        write_directory(data, overflow_after_s=30)
        secrets = add_apps(data)
        env = {"KEFU_SERVICE_DIRECTORY": "service.toml", "KEFU_SERVICE_SENTIMENT": "false",
               "KEFU_SERVER_WORKERS": "2"}  # fmt: skip
        server = ServeProcess(data, env=env, metrics_port=free_port()).start()
        prom_port = free_port()
        prom = prometheus(work, server.metrics_port, prom_port)
        try:
            started = time.time()
            asyncio.run(load(server, secrets, 60 * args.minutes))
            time.sleep(2 * SCRAPE_S)
            dashboard = json.loads((ROOT / "systemd" / "grafana" / "kefu-dashboard.json").read_text())
            url = f"http://127.0.0.1:{prom_port}"
            drawn = render.render(dashboard, url, started, time.time(), args.out, rate_interval="30s")
            print(f"{args.out}: {drawn} series over {args.minutes:g} minutes")
        finally:
            prom.terminate()
            with contextlib.suppress(subprocess.TimeoutExpired):
                prom.wait(30)
            if prom.poll() is None:
                prom.kill()
            with contextlib.suppress(Exception):
                server.stop()
            server.kill()


if __name__ == "__main__":
    main()
