"""Crash loop (issue #14 point 1): how many DELIVER frames a kill -9 loop costs per message delivered.

    .venv/bin/python bench/bench_crashloop.py --runs 3 [--old-tree /tmp/redelivery-old]

A real `kefu serve` (its default worker layout: a supervisor, one gateway process per core and a core process, in a
fresh temporary data directory, the harness's LOAD_ENV limits) carries steady load from `--conversations`
conversations of `--senders` users each who send (closed loop: a message every 1/`--rate` s per user, each waiting
for its SEND_ACK) and one observer each who only reads; every user is one `kefu.client.Client`, all in this process.
Every `--min-up`..`--max-up` s (uniformly at random, seeded) every process of the server gets SIGKILL, and the server
is started again on the same port and data directory at once, `--cycles` times. The senders' clients reconnect and
resume by themselves, with what they know (their per-conversation positions); each observer is replaced after every
kill by a new client that knows nothing, so it resumes from its stored cursors alone (SYNC 0). After the last restart
the senders stop and the clients get what is left (at most `--drain` s).

Measured, per run:
- raw DELIVER frames received per distinct delivered (conversation, seq, receiver): `frames_per_delivery`, overall
  and for the senders' and the observers' clients apart. Target: at most 1.5 overall.
- DELIVERs of a message to its own sender (raw frames): target 0.
- nothing acknowledged was lost: every message whose SEND_ACK a sender got reached every other member.
- the crash cost of cursors: after each kill, per receiver, the DELIVERs of messages it had already handled (and so
  acknowledged) before the kill, received after the restart: their median and worst, per kind of client. For the
  observers (no state of their own) this is what the stored cursors lost; for the senders' clients, what a resume
  sends again despite the positions they stated.

Each run prints one JSON line and appends it to bench/results/issue14-crashloop.jsonl (`--out`). `--old-tree` runs the
same command against another kefu tree, the code before a fix (`git worktree add /tmp/redelivery-old COMMIT`): the
script runs itself again with `PYTHONPATH` naming that tree, so the server and the clients are both the old ones.
`--server-env KEFU_DELIVERY_CURSOR_SAVE_DELAY_MS=5000` puts back the 5 s write-behind of cursors the issue was
measured with. A run of the defaults (50 cycles) takes about 4 minutes on 2 vCPUs.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import random
import statistics
import subprocess
import sys
import time
from collections import defaultdict
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.benchlib import machine
from bench.kefu_bench.target import Server
from kefu.client import Client, ClientError, ConnectError
from kefu.protocol.frames import Deliver
from kefu.server.identity.bulk import bulk_app_id, derive_secret

OUT = Path(__file__).resolve().parent / "results" / "issue14-crashloop.jsonl"
SEED = "kefu-crashloop"
PREFIX = "crash"
TARGET_FRAMES_PER_DELIVERY = 1.5
NOT_PARAMS = ("runs", "old_tree", "under", "tree", "out")
"""Options that choose what runs and where it is written, not what is measured."""
SEND_TIMEOUT_S = 120.0
"""A SEND not acknowledged in this time (across every restart) is reported as a failure of the run."""
CONNECT_TIMEOUT_S = 30.0


@dataclass
class Tally:
    """What the receivers saw, and what the senders were told."""

    frames: int = 0
    own_frames: int = 0
    frames_by_kind: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    delivered: set[tuple[int, int, str]] = field(default_factory=set)
    acked: dict[tuple[int, int], str] = field(default_factory=dict)
    """(conversation, seq) -> sender, for every OK SEND_ACK."""
    handled: dict[str, dict[int, int]] = field(default_factory=lambda: defaultdict(dict))
    """Per receiver, per conversation, the highest seq its app finished with (in order: a cumulative position)."""
    before_kill: dict[str, dict[int, int]] = field(default_factory=dict)
    """`handled` as it was at the last kill."""
    again: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    """Per receiver, DELIVERs since the last kill of messages it had handled before it."""
    crash_costs: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    """Per kind of client, `again` of each receiver after each kill."""

    def frame(self, kind: str, receiver: str, deliver: Deliver) -> None:
        """A DELIVER reached `receiver`'s client."""
        self.frames += 1
        self.frames_by_kind[kind] += 1
        if deliver.sender == receiver:
            self.own_frames += 1
        if deliver.seq <= self.before_kill.get(receiver, {}).get(deliver.conversation_id, 0):
            self.again[receiver] += 1

    def killed(self, kinds: dict[str, str]) -> None:
        """The server was just killed: close the last interval's count and start the next."""
        if self.before_kill:
            for receiver, kind in kinds.items():
                self.crash_costs[kind].append(self.again.get(receiver, 0))
        self.before_kill = {receiver: dict(positions) for receiver, positions in self.handled.items()}
        self.again.clear()


class CountingClient(Client):
    """A `kefu.client.Client` that counts every DELIVER frame its connection hands it, duplicates included."""

    def __init__(self, *args: Any, tally: Tally, kind: str, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tally, self.kind = tally, kind

    def link_event(self, link: Any, event: Any) -> None:
        if type(event) is Deliver and not event.request_id:
            self.tally.frame(self.kind, self.app_id, event)
        super().link_event(link, event)


@dataclass
class User:
    app_id: str
    conversation: int
    members: tuple[str, ...]
    sends: bool
    client: CountingClient | None = None
    reader: asyncio.Task[None] | None = None


class Loop:
    """One run: the server, the users, the kill loop."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        self.rng = random.Random(args.seed)
        self.tally = Tally()
        self.users: list[User] = []
        size = args.senders + 1
        for c in range(args.conversations):
            names = tuple(bulk_app_id(PREFIX, c * size + i) for i in range(size))
            for i, name in enumerate(names):  # the last member only reads
                self.users.append(User(name, 1000 + c, names, sends=i < args.senders))
        self.server: Server | None = None
        self.stop_sending = asyncio.Event()
        self.errors: list[str] = []
        self.send_failures = 0
        self.restart_s: list[float] = []

    def kinds(self) -> dict[str, str]:
        return {u.app_id: "sender" if u.sends else "observer" for u in self.users}

    # --- clients ------------------------------------------------------------------------------------------------

    def _client(self, user: User) -> CountingClient:
        assert self.server is not None
        return CountingClient(
            "127.0.0.1", self.server.port, app_id=user.app_id, server_pins=self.server.pins,
            app_secret=derive_secret(SEED.encode(), user.app_id), tally=self.tally,
            kind="sender" if user.sends else "observer", connect_timeout=CONNECT_TIMEOUT_S,
        )  # fmt: skip

    async def open(self, user: User) -> None:
        """A new client for `user`, connected (its first connection retried while the server comes up)."""
        client = self._client(user)
        deadline = time.monotonic() + CONNECT_TIMEOUT_S
        while True:  # the first connection is not retried by the client itself
            try:
                await client.connect()
                break
            except ConnectError as exc:
                if time.monotonic() > deadline:
                    raise
                self.errors.append(f"{user.app_id}: first connection after a restart failed: {exc}")
                client = self._client(user)
                await asyncio.sleep(0.2)
        user.client = client
        user.reader = asyncio.create_task(self.read(user, client))

    async def read(self, user: User, client: Client) -> None:
        """Take every message in order; a message is acknowledged when the next one is asked for."""
        handled = self.tally.handled[user.app_id]
        delivered = self.tally.delivered
        with contextlib.suppress(ClientError):
            async for message in client.deliveries():
                delivered.add((message.conversation_id, message.seq, user.app_id))
                if message.seq > handled.get(message.conversation_id, 0):
                    handled[message.conversation_id] = message.seq

    async def write(self, user: User) -> None:
        """Send a message every 1/rate s until told to stop, each retried (same client_msg_id) until acknowledged."""
        others = tuple(m for m in user.members if m != user.app_id)
        period = 1.0 / self.args.rate
        await asyncio.sleep(self.rng.random() * period)
        n = 0
        while not self.stop_sending.is_set():
            cmid = os.urandom(16)
            started = time.monotonic()
            assert user.client is not None
            try:
                receipt = await user.client.send(
                    user.conversation, f"{user.app_id} {n}", to=others, client_msg_id=cmid, timeout=SEND_TIMEOUT_S
                )
            except ClientError as exc:
                self.send_failures += 1
                client = user.client
                state = f"connected={client.connected} reconnects={client.reconnects}"
                self.errors.append(f"{user.app_id} after {time.monotonic() - started:.0f} s ({state}): {exc!r}")
                return
            self.tally.acked[(receipt.conversation_id, receipt.seq)] = user.app_id
            n += 1
            await asyncio.sleep(max(0.0, period - (time.monotonic() - started)))

    async def renew_observers(self) -> None:
        """Replace every observer's client by one that knows nothing (it resumes from the stored cursors)."""
        for user in self.users:
            if user.sends:
                continue
            old, task = user.client, user.reader
            if old is not None:
                await old._shutdown(ack_in_hand=False)  # as a crashed app: nothing more acknowledged
            if task is not None:
                await task
        await asyncio.gather(*(self.open(u) for u in self.users if not u.sends))

    # --- the loop -----------------------------------------------------------------------------------------------

    async def run(self) -> dict[str, Any]:
        args = self.args
        env = dict(item.split("=", 1) for item in args.server_env)
        self.server = await asyncio.to_thread(lambda: Server.spawn(env=env))
        keep = args.keep
        try:
            await asyncio.to_thread(self.server.add_bulk, PREFIX, len(self.users), SEED)
            return await self._run()
        except BaseException:
            keep = True
            print(f"bench_crashloop: failed; the server's log: {self.server.log_path}", file=sys.stderr)
            raise
        finally:
            await self._close_all()
            await asyncio.to_thread(self.server.cleanup, keep=keep)

    async def _run(self) -> dict[str, Any]:
        args = self.args
        assert self.server is not None and self.server.launched is not None
        launched = self.server.launched
        await asyncio.gather(*(self.open(u) for u in self.users))
        writers = [asyncio.create_task(self.write(u)) for u in self.users if u.sends]
        started = time.monotonic()
        up_s: list[float] = []
        for _ in range(args.cycles):
            up = self.rng.uniform(args.min_up, args.max_up)
            up_s.append(up)
            await asyncio.sleep(up)
            if not launched.alive:
                self.errors.append(f"cycle {len(up_s)}: the server had exited by itself: {launched.log_tail(500)}")
            await asyncio.to_thread(launched.kill)
            self.tally.killed(self.kinds())
            t0 = time.monotonic()
            await asyncio.to_thread(launched.start)
            self.restart_s.append(time.monotonic() - t0)
            await self.renew_observers()
            if time.monotonic() - started > args.max_seconds:
                self.errors.append(f"stopped after {len(up_s)} cycles: --max-seconds {args.max_seconds}")
                break
        await asyncio.sleep(args.min_up)
        self.tally.killed(self.kinds())  # the last restart's count closes; no kill follows
        self.stop_sending.set()
        await asyncio.gather(*writers)
        drained = await self.drain()
        elapsed = time.monotonic() - started
        return self.report(len(up_s), elapsed, drained, up_s)

    def expected(self) -> set[tuple[int, int, str]]:
        members = {u.conversation: u.members for u in self.users}
        return {
            (conversation, seq, member)
            for (conversation, seq), sender in self.tally.acked.items()
            for member in members[conversation]
            if member != sender
        }

    async def drain(self) -> bool:
        deadline = time.monotonic() + self.args.drain
        while time.monotonic() < deadline:
            if self.expected() <= self.tally.delivered:
                return True
            await asyncio.sleep(0.1)
        return False

    async def _close_all(self) -> None:
        for user in self.users:
            if user.client is not None:
                with contextlib.suppress(Exception):
                    await asyncio.wait_for(user.client.close(), 5)
            if user.reader is not None:
                user.reader.cancel()

    def report(self, cycles: int, elapsed: float, drained: bool, up_s: list[float]) -> dict[str, Any]:
        tally = self.tally
        expected = self.expected()
        lost = expected - tally.delivered
        by_kind: dict[str, dict[str, Any]] = {}
        kinds = self.kinds()
        for kind in ("sender", "observer"):
            distinct = sum(1 for d in tally.delivered if kinds.get(d[2]) == kind)
            costs = tally.crash_costs.get(kind, [])
            by_kind[kind] = {
                "frames": tally.frames_by_kind.get(kind, 0),
                "distinct_deliveries": distinct,
                "frames_per_delivery": round(tally.frames_by_kind.get(kind, 0) / distinct, 3) if distinct else None,
                "redelivered_after_kill_median": statistics.median(costs) if costs else None,
                "redelivered_after_kill_worst": max(costs) if costs else None,
                "redelivered_after_kill_mean": round(statistics.fmean(costs), 2) if costs else None,
            }
        distinct = len(tally.delivered)
        ratio = tally.frames / distinct if distinct else float("inf")
        return {
            "bench": "crashloop",
            "tree": self.args.tree,
            "pythonpath": os.environ.get("PYTHONPATH", ""),
            "commit": _commit(),
            "params": {
                k: v for k, v in vars(self.args).items() if k not in ("runs", "old_tree", "under", "tree", "out")
            },
            "cycles": cycles,
            "up_s_median": round(statistics.median(up_s), 2) if up_s else None,
            "restart_s_median": round(statistics.median(self.restart_s), 2) if self.restart_s else None,
            "seconds": round(elapsed, 1),
            "acknowledged_sends": len(tally.acked),
            "send_failures": self.send_failures,
            "frames": tally.frames,
            "distinct_deliveries": distinct,
            "frames_per_delivery": round(ratio, 3),
            "own_sender_frames": tally.own_frames,
            "lost": len(lost),
            "drained": drained,
            "by_kind": by_kind,
            "passed": ratio <= TARGET_FRAMES_PER_DELIVERY and tally.own_frames == 0 and not lost and drained,
            "errors": self.errors[:10],
            "machine": machine(),
        }


def _commit() -> str:
    tree = os.environ.get("PYTHONPATH") or str(Path(__file__).resolve().parents[1])
    with contextlib.suppress(OSError, subprocess.CalledProcessError):
        root = Path(tree).resolve()
        root = (root / "kefu" / "server").resolve().parent if (root / "kefu").is_dir() else root
        return subprocess.run(
            ["git", "-C", str(root), "rev-parse", "--short", "HEAD"], capture_output=True, text=True, check=True
        ).stdout.strip()
    return "unknown"


def run_once(args: argparse.Namespace) -> dict[str, Any]:
    result = asyncio.run(Loop(args).run())
    line = json.dumps(result)
    print(line, flush=True)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    with args.out.open("a") as out:
        out.write(line + "\n")
    return result


def run_under(tree: str, label: str, argv: list[str], seed: int) -> dict[str, Any]:
    """This command again (one run), under PYTHONPATH naming `tree`: its server and its client."""
    from bench.bench_hostile import namespace_dir  # noqa: PLC0415 - only for runs of another tree

    child: list[str] = []
    skip = False
    for arg in argv:  # drop the options that choose trees and runs; the child gets its own
        if skip:
            skip = False
        elif arg in ("--old-tree", "--under", "--runs", "--seed", "--tree"):
            skip = True
        elif not arg.startswith(("--old-tree=", "--under=", "--runs=", "--seed=", "--tree=")):
            child.append(arg)
    env = {**os.environ, "PYTHONPATH": namespace_dir(tree)}
    command = [sys.executable, __file__, *child, "--seed", str(seed), "--tree", label, "--runs", "1"]
    done = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
    sys.stderr.write(done.stderr[-2000:])
    lines = done.stdout.strip().splitlines()
    if done.returncode not in (0, 1) or not lines or not lines[0].startswith("{"):
        raise RuntimeError(f"the run under {tree} failed ({done.returncode}): {done.stderr[-2000:]}")
    return json.loads(lines[0])  # type: ignore[no-any-return]


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--conversations", type=int, default=12)
    p.add_argument("--senders", type=int, default=3, help="sending users per conversation (plus one observer)")
    p.add_argument("--rate", type=float, default=4.0, help="messages per second per sender")
    p.add_argument("--cycles", type=int, default=50)
    p.add_argument("--min-up", type=float, default=0.5)
    p.add_argument("--max-up", type=float, default=5.0)
    p.add_argument("--drain", type=float, default=60.0, help="seconds the clients get, at most, after the last cycle")
    p.add_argument("--max-seconds", type=float, default=900.0, help="no new cycle after this long")
    p.add_argument("--seed", type=int, default=14)
    p.add_argument(
        "--server-env", action="append", default=[], metavar="KEY=VALUE",
        help="a setting for the server (e.g. KEFU_DELIVERY_CURSOR_SAVE_DELAY_MS=5000, the write-behind of old)",
    )  # fmt: skip
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--old-tree", default="", help="also run against this kefu tree (a worktree of older code)")
    p.add_argument("--under", default="", help="run against this kefu tree (a worktree) rather than this one")
    p.add_argument("--tree", default="current", help="the label of this run's tree in the output")
    p.add_argument("--out", type=Path, default=OUT)
    p.add_argument("--keep", action="store_true", help="keep the data directory and the server log")
    return p.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    results: dict[str, list[dict[str, Any]]] = defaultdict(list)
    first_seed = args.seed
    for i in range(args.runs):
        args.seed = first_seed + i
        if args.under:
            results[args.tree].append(run_under(args.under, args.tree, argv, args.seed))
        else:
            results[args.tree].append(run_once(args))
        if args.old_tree:
            results["old"].append(run_under(args.old_tree, "old", argv, args.seed))
    for tree, runs in results.items():
        ratios = [r["frames_per_delivery"] for r in runs]
        own = [r["own_sender_frames"] for r in runs]
        print(f"{tree}: frames per delivery {ratios} (median {statistics.median(ratios)}), own-sender frames {own}")
    return 0 if all(r["passed"] for r in results[args.tree]) else 1


if __name__ == "__main__":
    sys.exit(main())
