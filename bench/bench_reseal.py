"""The reseal after a data key rotation, and the one-time sealing of a plain store (issue #14 point 4).

Two measurements:

- `throughput`: values per second of `kefu.server.storage.reseal.migrate` (a plain store sealed in place) and of the
  background `Resealer` (key 1 -> key 2), on a store of --messages messages (each makes a message, an idempotency
  entry; plus conversations and cursors), at the default duty cycle (0.5) and at 1.0; real LMDB, SM4-GCM.
- `latency`: a real `kefu serve` on a data directory whose --messages messages are sealed under key 1, started after
  `kefu data-key rotate` so that it reseals from its start; alice sends to bob at --rate msg/s and the delivery latency
  (send to receipt, one loop, loopback) is taken while the reseal runs and after it finished, in the same run.

    .venv/bin/python bench/bench_reseal.py throughput --messages 200000
    .venv/bin/python bench/bench_reseal.py latency --messages 200000 --rate 200
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from kefu.server.engine.messages import SendRequest
from kefu.server.storage.reseal import Resealer, count_sealed, migrate
from kefu.server.storage.sealing import DataKey, Sealer
from kefu.server.storage.store import Store

KEY1 = DataKey(1, "sm4-gcm", bytes(range(16)))
KEY2 = DataKey(2, "sm4-gcm", bytes(range(1, 17)))
PER_CONVERSATION = 50
BODY = "您好，我的银行卡丢失了，请帮我挂失。卡号尾号 1234，谢谢。".encode()  # a typical ~100-byte message


def fill(store: Store, messages: int, *, users: tuple[str, ...] = ("alice", "bob")) -> None:
    """`messages` messages in conversations of PER_CONVERSATION, through `Store.commit` (plain or sealed, as the
    store is), 1,000 per transaction."""
    n = 0
    while n < messages:
        batch = []
        for _ in range(min(1000, messages - n)):
            conv = n // PER_CONVERSATION + 1
            batch.append(SendRequest(users[0], n.to_bytes(16, "big"), conv, 1, BODY, (),
                                     create_members=users[1:]))  # fmt: skip
            n += 1
        store.commit(batch, [], now_ms=int(time.time() * 1000))


def total(store: Store) -> int:
    return sum(sum(c.values()) for c in count_sealed(store).values())


def throughput(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kefu-reseal-"))
    out: dict[str, Any] = {"messages": args.messages}
    try:
        store = Store(work / "db", map_size=1 << 30)
        fill(store, args.messages)
        values = total(store)
        out["values"] = values
        t0 = time.perf_counter()
        migrate(store, Sealer([KEY1]))
        out["migrate_values_per_s"] = round(values / (time.perf_counter() - t0))
        for duty in (0.5, 1.0):
            key = KEY2 if duty == 0.5 else DataKey(3, "sm4-gcm", bytes(range(2, 18)))
            keys = [KEY1, KEY2] if duty == 0.5 else [KEY1, KEY2, key]
            resealer = Resealer(store, Sealer(keys), duty=duty)
            t0 = time.perf_counter()
            resealer.start()
            resealer.done.wait()
            seconds = time.perf_counter() - t0
            resealer.stop()
            counts = count_sealed(store)
            assert sum(c[key.key_id] for c in counts.values()) == values
            out[f"reseal_duty_{duty}_values_per_s"] = round(values / seconds)
            out[f"reseal_duty_{duty}_seconds"] = round(seconds, 2)
        store.close()
    finally:
        shutil.rmtree(work)
    return out


# --- delivery latency while the server reseals ------------------------------------------------------------------


def _kefu(data_dir: Path, *args: str) -> str:
    import subprocess  # noqa: PLC0415

    return subprocess.run([sys.executable, "-m", "kefu.server.cli", *args, "--data-dir", str(data_dir)],
                          capture_output=True, text=True, check=True, timeout=120).stdout  # fmt: skip


def _seed(data_dir: Path, messages: int) -> dict[str, bytes]:
    """A data directory with apps alice and bob and `messages` messages sealed under data key 1."""
    import base64  # noqa: PLC0415

    from kefu.server.config import load_config  # noqa: PLC0415
    from kefu.server.identity.datakeys import sealer_of  # noqa: PLC0415
    from kefu.server.wiring import open_store  # noqa: PLC0415

    secrets = {}
    for app in ("alice", "bob"):
        line = [x for x in _kefu(data_dir, "app", "add", app).splitlines() if x.strip()][-1].strip()
        secrets[app] = base64.urlsafe_b64decode(line + "=" * (-len(line) % 4))
    config = load_config(None, overrides={"server.data_dir": str(data_dir)})
    store = open_store(config)
    assert store.sealer is not None and store.sealer.active == sealer_of(data_dir, "sm4-gcm").active == 1
    fill(store, messages, users=("alice", "bob"))
    store.close()
    _kefu(data_dir, "data-key", "rotate")
    return secrets


async def _latency(args: argparse.Namespace, data_dir: Path, secrets: dict[str, bytes]) -> dict[str, Any]:
    from kefu.client import Client  # noqa: PLC0415
    from kefu.server.runtime.launch import ServeProcess  # noqa: PLC0415

    server = ServeProcess(data_dir)
    await asyncio.to_thread(server.start)
    try:
        pins = frozenset((data_dir / "keys" / "pins.txt").read_text().split())
        alice, bob = (Client("127.0.0.1", server.port, app_id=a, server_pins=pins, app_secret=secrets[a],
                             connect_timeout=5) for a in ("alice", "bob"))  # fmt: skip
        await alice.connect()
        await bob.connect()
        during: list[float] = []
        after: list[float] = []
        conv = 10_000_000
        finished_at: float | None = None
        started = time.monotonic()
        while time.monotonic() - started < args.max_seconds:
            log = server.log_path.read_text()
            if finished_at is None and "storage.reseal_finished" in log:
                finished_at = time.monotonic()
            if finished_at is not None and len(after) >= args.after_samples:
                break
            t0 = time.perf_counter()
            await alice.send(conv, b"ping", to=("bob",), timeout=10)
            message = await bob.receive(timeout=10)
            assert message is not None
            (after if finished_at is not None else during).append(time.perf_counter() - t0)
            await asyncio.sleep(max(0.0, 1 / args.rate - (time.perf_counter() - t0)))
        line = re.search(r"storage\.reseal_finished.*", server.log_path.read_text())
        await alice.close()
        await bob.close()
    finally:
        server.stop()
    return {
        "reseal_log_line": line.group(0) if line else None,
        "during": _summary(during),
        "after": _summary(after),
    }


def _summary(samples: list[float]) -> dict[str, Any]:
    if not samples:
        return {"n": 0}
    ordered = sorted(samples)
    return {
        "n": len(samples),
        "median_ms": round(statistics.median(samples) * 1000, 3),
        "p99_ms": round(ordered[min(len(ordered) - 1, int(len(ordered) * 0.99))] * 1000, 3),
    }


def latency(args: argparse.Namespace) -> dict[str, Any]:
    work = Path(tempfile.mkdtemp(prefix="kefu-reseal-"))
    try:
        secrets = _seed(work / "data", args.messages)
        out = asyncio.run(_latency(args, work / "data", secrets))
    finally:
        shutil.rmtree(work)
    return {"messages": args.messages, "rate": args.rate, **out}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("throughput", "latency"))
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--rate", type=float, default=200.0, help="pings per second (latency)")
    p.add_argument("--after-samples", type=int, default=2000, help="pings after the reseal finished (latency)")
    p.add_argument("--max-seconds", type=float, default=300.0)
    args = p.parse_args()
    result = throughput(args) if args.what == "throughput" else latency(args)
    print(json.dumps(result, indent=1))


if __name__ == "__main__":
    main()
