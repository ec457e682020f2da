"""Hostile peers (issue #13): what unauthenticated connections cost a spawned `kefu serve`, in memory and in the
service its established sessions and new clients get.

    .venv/bin/python bench/bench_hostile.py preauth-memory --old-tree /tmp/hostile-old --runs 3
    .venv/bin/python bench/bench_hostile.py flood --duration 30 --runs 3

`preauth-memory`: `--connections` connections (2,000) from a few loopback addresses (127.0.3.x) each send a header
declaring a 1 MiB body before authenticating, then as much of the body as the sockets take (all but its last
byte, so the frame never completes): (a) a plaintext SEND header, (b) a valid CLIENT_HELLO followed by a RECORD
header; and as a control, as many connections that send nothing (what unauthenticated connections cost anyway,
until the handshake deadline closes them). Reported per variant: the server's RSS (summed over its processes)
before, its peak while the connections stay open (sampled every 0.1 s), the growth, how many connections the
server closed and how soon after they opened, and how many body bytes were written (the kernel's socket buffers
take about 1 MiB a connection whatever the server does). Target: growth under 16 MiB. With `--old-tree` the same
variants also run against another kefu tree, the code before a fix (`git worktree add /tmp/hostile-old 4fa8431`):
a worktree (its `kefu` namespace directory of symlinks is made beside it) or a namespace directory as
bench_workers.py's `--old-tree`.

`flood`: per configuration a fresh server; `--pairs` established pairs exchange `--rate` messages per second for
`--duration` s (cgen chat, open loop: latency from each message's scheduled time) while
  - a handshake flood (cgen flood) from `--flood-addresses` loopback addresses (127.0.1.1 ...), `--per-address`
    sockets each, sends valid national CLIENT_HELLOs, closes on the server's flight and reconnects at once
    (never verifying, ignoring any GOAWAY's delay);
  - a legitimate new client logs in every `--legit-every` s, each from an address of its own (127.0.2.1,
    127.0.2.2, ...: a teller or a visitor the server has not heard from; `--legit-same-address` makes them all
    come from 127.0.2.1, a client that logs in again and again): a full national handshake with a registered
    app, the protocol core over asyncio; its time is from its first attempt's connect to the server's NEW_TICKET
    (the server took its Finished); on a GOAWAY it waits the delay with the jitter and tries again, on any other
    failure it backs off as section 4.8's defaults say.
The configurations: `no-flood` (the baseline, legitimate client included), `admission-off` (flood,
KEFU_LIMITS_HANDSHAKE_CPU_SHARE=0) and `admission-on` (flood, the server's default), the latter two only where
the tree has the setting (`server/config.py` handshake_cpu_share). Targets: deliver p99 under flood within 2x
the baseline's; the legitimate handshake within 1 s.

Servers run with their default worker layout and their production limits (not the harness's LOAD_ENV: a hostile
peer meets the limits a deployment has); the environment each got is in the output. Each run prints one JSON line
and appends it to bench/out/hostile.jsonl; `--runs K` repeats and then prints (and appends) the medians.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import errno
import hashlib
import hmac
import json
import os
import random
import selectors
import socket
import statistics
import sys
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.bench_workers import Readings, hdr
from bench.kefu_bench import cgen
from bench.kefu_bench.target import LOAD_ENV, Server
from kefu.protocol import frames
from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.crypto import Suite
from kefu.protocol.events import ConnectionClosed, ConnectionTerminated, TicketReceived
from kefu.protocol.frames import HEADER, HEADER_LEN, TYPE_OFFSET, FrameType
from kefu.protocol.handshake import ClientConfig

OUT = Path(__file__).resolve().parent / "out" / "hostile.jsonl"
MIB = 1 << 20
SEED = "kefu-bench"
PREAUTH_SOURCES = 8
"""127.0.3.1..8: 250 connections each, well inside the server's default burst of new connections per address."""
TARGET_GROWTH_MIB = 16
TARGET_P99_RATIO = 2.0
TARGET_LOGIN_S = 1.0
LEGIT_SOURCE = "127.0.2.1"
ATTEMPT_TIMEOUT_S = 10.0
"""A legitimate attempt that got nothing for the server's handshake deadline is given up (and retried)."""
LOGIN_GIVE_UP_S = 30.0
BACKOFF_INITIAL_MS, BACKOFF_MAX_MS, JITTER_PERMILLE, RECONNECT_FLOOR_MS = 500, 30_000, 200, 100
"""Section 4.8: a client's reconnect policy until a GOAWAY says otherwise (the server's defaults), and its floor."""


# --- servers ------------------------------------------------------------------------------------------------


def production_limits() -> dict[str, str]:
    """The server's own defaults for every limit the harness's LOAD_ENV lifts (Server.spawn applies LOAD_ENV)."""
    from kefu.server.config import LimitsSection  # noqa: PLC0415

    defaults = LimitsSection()
    return {name: str(getattr(defaults, name.removeprefix("KEFU_LIMITS_").lower())) for name in LOAD_ENV}


def has_admission_control() -> bool:
    from kefu.server.config import LimitsSection  # noqa: PLC0415

    return "handshake_cpu_share" in LimitsSection.__dataclass_fields__


def namespace_dir(tree: str) -> str:
    """A PYTHONPATH that imports `kefu` from `tree`: a namespace directory as is, a worktree through symlinks."""
    root = Path(tree).resolve()
    if (root / "kefu").is_dir():
        return str(root)
    ns = Path(f"{root}-ns")
    (ns / "kefu").mkdir(parents=True, exist_ok=True)
    for name, sub in (("protocol", "protocol"), ("server", "server"), ("client", "clients/python")):
        link = ns / "kefu" / name
        if not link.exists():
            link.symlink_to(root / sub)
    return str(ns)


@contextlib.contextmanager
def tree(pythonpath: str) -> Any:
    """Servers and admin commands started inside import `kefu` from `pythonpath` ("": this tree)."""
    os.environ.pop("PYTHONPATH", None)
    if pythonpath:
        os.environ["PYTHONPATH"] = pythonpath
    try:
        yield
    finally:
        os.environ.pop("PYTHONPATH", None)


def spawn(extra: dict[str, str] | None = None) -> tuple[Server, dict[str, Any]]:
    """A fresh server with production limits; and the configuration to print."""
    env = {"KEFU_LOG_LEVEL": "warning", **production_limits(), **(extra or {})}
    server = Server.spawn(env=env)
    config = {"env": env, "pythonpath": os.environ.get("PYTHONPATH", ""), "processes": sorted(server.per_worker())}
    return server, config


SETTLE_S, SETTLE_KIB, SETTLE_MAX_S = 2.0, 1024, 60.0
"""A fresh server's processes grow for a few seconds after it listens (the desk's scorer loads its model: about
400 MiB): the baseline is read once the total moved less than SETTLE_KIB over SETTLE_S."""


def settled_rss_kb(server: Server) -> int:
    """The server's total RSS once it stopped growing by itself."""
    end, last = time.monotonic() + SETTLE_MAX_S, server.rss_kb()
    while time.monotonic() < end:
        time.sleep(SETTLE_S)
        now = server.rss_kb()
        if abs(now - last) < SETTLE_KIB:
            return now
        last = now
    return last


def secret_of(app_id: str) -> bytes:
    """server/bulk.py: a bulk app's secret is HMAC-SHA256(seed, app id)."""
    return hmac.new(SEED.encode(), app_id.encode(), hashlib.sha256).digest()


def client_config(server: Server, app_id: str) -> ClientConfig:
    return ClientConfig(app_id, server.pins, (Suite.NATIONAL,), app_secret=secret_of(app_id))


# --- preauth-memory -----------------------------------------------------------------------------------------


@dataclass
class Hostile:
    """One connection that declares 1 MiB and sends it short of its last byte."""

    sock: socket.socket
    prefix: bytes
    total: int
    sent: int = 0
    opened: float = 0.0
    closed: float = 0.0
    connect_failed: bool = False


ZEROS = memoryview(bytes(256 * 1024))


PREAUTH_VARIANTS = ("idle", "send", "hello-record")
"""`idle` is the control: connections that send nothing, what 2,000 unauthenticated connections cost anyway."""


def preauth_prefixes(variant: str, server: Server, count: int) -> list[bytes]:
    """What each connection sends before the body: (a) a SEND header, (b) a CLIENT_HELLO and a RECORD header;
    nothing (and no body) for the control."""
    if variant == "idle":
        return [b""] * count
    if variant == "send":
        return [HEADER.pack(MIB, 1, FrameType.SEND, 0, 0)] * count
    config = client_config(server, "benchpa0")
    out = []
    for _ in range(count):
        conn = ClientConnection(config, now=time.time())
        conn.connect(now=time.time())
        out.append(conn.data_to_send() + HEADER.pack(MIB, 1, FrameType.RECORD, 0, 0))
    return out


def _pump(h: Hostile, now: float) -> bool:
    """Write what the socket takes; False once the server is gone."""
    if not h.opened:
        h.opened = now
    try:
        while h.sent < h.total:
            if h.sent < len(h.prefix):
                n = h.sock.send(h.prefix[h.sent :])
            else:
                n = h.sock.send(ZEROS[: min(len(ZEROS), h.total - h.sent)])
            h.sent += n
    except BlockingIOError:
        return True
    except OSError:
        return False
    return True


def _drain(h: Hostile) -> bool:
    """Read what the server says (its flight, its ERROR); False at the end of the stream or a reset."""
    try:
        while chunk := h.sock.recv(65536):
            del chunk
    except BlockingIOError:
        return True
    except OSError:
        return False
    return False


def attack(port: int, prefixes: list[bytes], body: int, hold_s: float) -> list[Hostile]:
    """Open every connection at once, push each one's bytes, until the server closed all or `hold_s` passed."""
    sel = selectors.DefaultSelector()
    conns = []
    for i, prefix in enumerate(prefixes):
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setblocking(False)
        sock.bind((f"127.0.3.{1 + i % PREAUTH_SOURCES}", 0))
        h = Hostile(sock, prefix, len(prefix) + body)
        if sock.connect_ex(("127.0.0.1", port)) not in (0, errno.EINPROGRESS):
            h.connect_failed, h.closed = True, time.monotonic()
            sock.close()
            continue
        sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE, h)
        conns.append(h)
    open_count, end = len(conns), time.monotonic() + hold_s
    while open_count and time.monotonic() < end:
        for key, events in sel.select(timeout=0.05):
            h, now = key.data, time.monotonic()
            alive = _pump(h, now) if events & selectors.EVENT_WRITE else True
            alive = alive and (_drain(h) if events & selectors.EVENT_READ else True)
            if not alive:
                h.closed = h.closed or now
                sel.unregister(h.sock)
                h.sock.close()
                open_count -= 1
            elif h.sent >= h.total and events & selectors.EVENT_WRITE:
                sel.modify(h.sock, selectors.EVENT_READ, h)
    for key in list(sel.get_map().values()):
        key.fileobj.close()  # type: ignore[union-attr]
    sel.close()
    return conns


def preauth_variant(variant: str, connections: int, hold_s: float) -> dict[str, Any]:
    server, config = spawn()
    try:
        server.add_bulk("benchpa", 1, SEED)
        asyncio.run(login(server.port, client_config(server, "benchpa0")))  # warm-up: imports, caches
        prefixes = preauth_prefixes(variant, server, connections)
        before = settled_rss_kb(server)
        readings = Readings(server)
        started = time.monotonic_ns()
        conns = attack(server.port, prefixes, 0 if variant == "idle" else MIB - 1, hold_s)
        ended = time.monotonic_ns()
        readings.stop()
        peak = max(readings.rss_between(started, ended), default=before)
        return {"server": config, "alive": server.alive(), **_attack_summary(conns, connections, before, peak)}
    finally:
        server.cleanup()


def _attack_summary(conns: list[Hostile], connections: int, before: int, peak: int) -> dict[str, Any]:
    opened = [h for h in conns if h.opened]
    closed = [1000 * (h.closed - h.opened) for h in opened if h.closed]
    body = sorted(max(0, h.sent - len(h.prefix)) for h in opened)
    return {
        "connections": connections, "connected": len(opened),
        "connect_failed": connections - len(opened),
        "closed_by_server": len(closed), "closed_within_1s": sum(1 for ms in closed if ms <= 1000),
        "close_ms": _quantiles(closed),
        "body_mib_written": round(sum(body) / MIB, 1),
        "body_kib_written_median": round(statistics.median(body) / 1024, 1) if body else 0,
        "rss_before_mib": round(before / 1024, 1), "rss_peak_mib": round(peak / 1024, 1),
        "growth_mib": round((peak - before) / 1024, 1), "pass": (peak - before) / 1024 < TARGET_GROWTH_MIB,
    }  # fmt: skip


def _quantiles(values: list[float]) -> dict[str, float]:
    if not values:
        return {}
    v = sorted(values)
    return {"p50": round(v[len(v) // 2], 1), "p90": round(v[int(0.9 * (len(v) - 1))], 1), "max": round(v[-1], 1)}


def run_preauth(args: argparse.Namespace) -> dict[str, Any]:
    trees = [("current", "")] + ([("old", namespace_dir(args.old_tree))] if args.old_tree else [])
    out: dict[str, Any] = {}
    for name, pythonpath in trees:
        with tree(pythonpath):
            for variant in PREAUTH_VARIANTS:
                out[f"{name}/{variant}"] = preauth_variant(variant, args.connections, args.hold)
    return out


# --- the legitimate client ------------------------------------------------------------------------------------


class Attempt(asyncio.Protocol):
    """One handshake attempt over the protocol core; `outcome` is ("ok" | "refused" | "failed", detail)."""

    def __init__(self, config: ClientConfig) -> None:
        self.conn = ClientConnection(config, now=time.time())
        self.outcome: asyncio.Future[tuple[str, Any]] = asyncio.get_running_loop().create_future()
        self.head = bytearray()
        self.fed = False
        self.transport: asyncio.Transport | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.conn.connect(now=time.time())
        transport.write(self.conn.data_to_send())

    def data_received(self, data: bytes) -> None:
        if not self.fed:  # a refusal is one plaintext GOAWAY in place of SERVER_HELLO
            self.head += data
            if len(self.head) < HEADER_LEN:
                return
            if self.head[TYPE_OFFSET] == FrameType.GOAWAY:
                raw = frames.FrameDecoder().feed(bytes(self.head))
                if raw:
                    self._done("refused", frames.decode_frame(raw[0]))
                return
            self.fed, data = True, bytes(self.head)
        self.conn.receive_data(data)
        for event in self.conn.events_received():
            match event:
                case TicketReceived():
                    self._done("ok", None)
                case frames.Goaway():
                    self._done("refused", event)
                case ConnectionTerminated() | ConnectionClosed():
                    self._done("failed", event.code.name)
        if self.transport is not None and (out := self.conn.data_to_send()):
            self.transport.write(out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._done("failed", "eof" if exc is None else type(exc).__name__)

    def _done(self, kind: str, detail: Any) -> None:
        if not self.outcome.done():
            self.outcome.set_result((kind, detail))


async def attempt(port: int, config: ClientConfig, source: str = LEGIT_SOURCE) -> tuple[str, Any]:
    loop = asyncio.get_running_loop()
    try:
        transport, proto = await asyncio.wait_for(
            loop.create_connection(lambda: Attempt(config), "127.0.0.1", port, local_addr=(source, 0)),
            ATTEMPT_TIMEOUT_S,
        )
    except (OSError, TimeoutError) as exc:
        return "failed", type(exc).__name__
    try:
        return await asyncio.wait_for(proto.outcome, ATTEMPT_TIMEOUT_S)
    except TimeoutError:
        return "failed", "timeout"
    finally:
        transport.abort()


def jittered_s(ms: float, permille: int) -> float:
    """Section 4.8: a wait of ms +- jitter, never under the floor."""
    j = min(permille, 1000) / 1000
    return max(RECONNECT_FLOOR_MS, ms * (1 - j + 2 * j * random.random())) / 1000


async def login(port: int, config: ClientConfig, source: str = LEGIT_SOURCE) -> dict[str, Any]:
    """Attempts until the server accepts the handshake; the time from the first connect, attempts, refusals."""
    started, attempts, refused, failures = time.monotonic(), 0, 0, []
    while time.monotonic() - started < LOGIN_GIVE_UP_S:
        attempts += 1
        kind, detail = await attempt(port, config, source)
        if kind == "ok":
            return {"ms": round(1000 * (time.monotonic() - started), 1), "attempts": attempts, "refused": refused,
                    "failures": failures}  # fmt: skip
        if kind == "refused":
            refused += 1
            wait = jittered_s(detail.reconnect_delay_ms, detail.jitter_permille)
        else:
            failures.append(detail)
            wait = jittered_s(min(BACKOFF_MAX_MS, BACKOFF_INITIAL_MS * 2 ** len(failures)), JITTER_PERMILLE)
        await asyncio.sleep(wait)
    return {"ms": None, "attempts": attempts, "refused": refused, "failures": failures}


async def logins(
    port: int, config: ClientConfig, t0_ns: int, duration: float, every: float, *, same_address: bool = False
) -> list[dict[str, Any]]:
    """A login every `every` s from T0 (CLOCK_MONOTONIC, as the generators') for `duration` s, one at a time, each
    from an address of its own (127.0.2.1, 127.0.2.2, ...) unless `same_address`."""
    out = []
    k = 0
    while (at := t0_ns / 1e9 + k * every) < t0_ns / 1e9 + duration:
        await asyncio.sleep(max(0.0, at - time.monotonic()))
        source = LEGIT_SOURCE if same_address else f"127.0.2.{k % 250 + 1}"
        out.append({**await login(port, config, source), "source": source})
        k += 1
    return out


# --- flood ----------------------------------------------------------------------------------------------------


@dataclass
class Background:
    """Load started with the chat's timed phase, on threads: the flood and the legitimate logins."""

    args: argparse.Namespace
    target: cgen.Target
    config: ClientConfig
    flood: bool
    results: dict[str, Any] = field(default_factory=dict)
    threads: list[threading.Thread] = field(default_factory=list)

    def start(self, t0_ns: int) -> None:
        jobs = {"legit": lambda: asyncio.run(self._logins(t0_ns))}
        if self.flood:
            jobs["flood"] = self._flood
        for name, job in jobs.items():
            thread = threading.Thread(target=self._keep, args=(name, job), daemon=True)
            thread.start()
            self.threads.append(thread)

    def join(self) -> dict[str, Any]:
        for thread in self.threads:
            thread.join()
        return self.results

    def _keep(self, name: str, job: Any) -> None:
        try:
            self.results[name] = job()
        except Exception as exc:  # reported in the run's line; the run goes on
            self.results[name] = {"error": repr(exc)}

    async def _logins(self, t0_ns: int) -> list[dict[str, Any]]:
        return await logins(
            self.target.port,
            self.config,
            t0_ns,
            self.args.duration,
            self.args.legit_every,
            same_address=self.args.legit_same_address,
        )

    def _flood(self) -> dict[str, Any]:
        sources = [f"127.0.1.{i}" for i in range(1, self.args.flood_addresses + 1)]
        sockets = self.args.flood_addresses * self.args.per_address
        return cgen._summary(
            cgen.run_flood(self.target, sources, sockets, self.args.duration + 1.0, processes=self.args.flood_processes,
                           hellos=self.args.hellos, add_users=False)
        )  # fmt: skip


def flood_config(args: argparse.Namespace, name: str) -> dict[str, Any]:
    shares = {"admission-off": "0", "admission-on": args.handshake_share}
    share = shares.get(name, "") if has_admission_control() else ""
    extra = {"KEFU_LIMITS_HANDSHAKE_CPU_SHARE": share} if share else {}
    server, config = spawn(extra)
    try:
        target = cgen.Target(server.port, server.data_dir, pid=server.pid)
        target.add_bulk("benchcm", 2 * args.pairs, SEED)
        target.add_bulk("benchfl", args.hellos, SEED)
        target.add_bulk("benchlegit", 1, SEED)
        background = Background(args, target, client_config(server, "benchlegit0"), flood=name != "no-flood")
        readings = Readings(server)
        chat = cgen.run_chat(target, args.pairs, args.rate, args.duration, add_users=False, on_start=background.start)
        extra_results = background.join()
        readings.stop()
        t0 = chat["gate_t0_ns"][-1]
        cpu = readings.cpu_at(t0 + int(args.duration * 1e9)) - readings.cpu_at(t0)
        return {
            "server": config, "alive": server.alive(), "server_cpu_share": round(cpu / args.duration, 3),
            "deliver": hdr(chat.get("deliver")), "ack": hdr(chat.get("ack")), "sent": chat.get("sent"),
            "delivered": chat.get("delivered"), "undelivered": chat.get("undelivered"), "errors": chat.get("errors"),
            "max_sender_lag_ms": chat.get("max_sender_lag_ms"),
            # the chat's own sessions: how many set up (and why any did not), and any lost and brought back
            "chat_connected": chat.get("connected"), "chat_failed": chat.get("failed"),
            "chat_fail_codes": chat.get("fail_codes"), "chat_reconnects": chat.get("reconnects"),
            "chat_lost_in_ramp": chat.get("lost_in_ramp"), "chat_goaways": chat.get("goaways"),
            "legit": _legit_summary(extra_results.get("legit", [])),
            **({"flood": _flood_summary(extra_results["flood"])} if "flood" in extra_results else {}),
        }  # fmt: skip
    finally:
        server.cleanup()


def _legit_summary(results: Any) -> dict[str, Any]:
    if not isinstance(results, list):
        return {"error": results}
    ms = [r["ms"] for r in results if r["ms"] is not None]
    return {
        "logins": len(results), "gave_up": len(results) - len(ms),
        "p50_ms": statistics.median(ms) if ms else None, "max_ms": max(ms) if ms else None,
        "attempts": [r["attempts"] for r in results], "max_attempts": max((r["attempts"] for r in results), default=0),
        "refused": sum(r["refused"] for r in results), "failures": [f for r in results for f in r["failures"]],
        "within_1s": sum(1 for m in ms if m <= 1000 * TARGET_LOGIN_S),
    }  # fmt: skip


def _flood_summary(flood: dict[str, Any]) -> dict[str, Any]:
    if "error" in flood:
        return flood
    seconds = flood.get("duration_s") or 1.0
    keys = ("attempts", "answered", "refused", "error_frames", "eof", "resets", "timeouts", "errors", "goaway_codes",
            "sockets", "addresses", "cpu_s", "answered_per_s", "refused_per_s")  # fmt: skip
    out = {k: flood.get(k) for k in keys}
    out["answered_per_s_mean"] = round((flood.get("answered") or 0) / seconds, 1)
    out["refused_per_s_mean"] = round((flood.get("refused") or 0) / seconds, 1)
    out["answer_latency"] = {k: flood.get("latency", {}).get(k) for k in ("p50_ms", "p99_ms", "max_ms")}
    refused = flood.get("refused") or 0
    out["goaway_delay_ms_mean"] = round(flood.get("goaway_delay_ms_sum", 0) / refused) if refused else None
    return out


def run_flood(args: argparse.Namespace) -> dict[str, Any]:
    names = [n for n in args.configs.split(",") if n != "admission-on" or has_admission_control()]
    out: dict[str, Any] = {"admission_control_in_tree": has_admission_control(), "configs": {}}
    for name in names:
        out["configs"][name] = flood_config(args, name)
    base = out["configs"].get("no-flood", {}).get("deliver", {}).get("p99_ms")
    for name, result in out["configs"].items():
        p99 = result.get("deliver", {}).get("p99_ms")
        if name != "no-flood" and base and p99 is not None:
            result["p99_ratio"] = round(p99 / base, 2)
            result["p99_pass"] = p99 / base <= TARGET_P99_RATIO
        legit_max = result["legit"].get("max_ms")
        result["legit_pass"] = legit_max is not None and legit_max <= 1000 * TARGET_LOGIN_S
    return out


# --- runs and medians -----------------------------------------------------------------------------------------


def headline(scenario: str, result: dict[str, Any]) -> dict[str, float | None]:
    """The numbers whose medians are printed over runs."""
    out: dict[str, float | None] = {}
    if scenario == "preauth-memory":
        for name, r in result.items():
            out |= {
                f"{name}/growth_mib": r["growth_mib"],
                f"{name}/closed_by_server": r["closed_by_server"],
                f"{name}/close_ms_p50": r["close_ms"].get("p50"),
                f"{name}/close_ms_max": r["close_ms"].get("max"),
            }
        return out  # fmt: skip
    for name, r in result["configs"].items():
        out |= {f"{name}/deliver_p99_ms": r["deliver"].get("p99_ms"), f"{name}/p99_ratio": r.get("p99_ratio"),
                f"{name}/legit_p50_ms": r["legit"].get("p50_ms"), f"{name}/legit_max_ms": r["legit"].get("max_ms"),
                f"{name}/legit_max_attempts": r["legit"].get("max_attempts")}  # fmt: skip
        if "flood" in r:
            out |= {f"{name}/answered_per_s": r["flood"].get("answered_per_s_mean"),
                    f"{name}/refused_per_s": r["flood"].get("refused_per_s_mean")}  # fmt: skip
    return out


def medians(lines: list[dict[str, float | None]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key in lines[0]:
        values = [line[key] for line in lines if line.get(key) is not None]
        out[key] = {"median": statistics.median(values) if values else None, "runs": [line.get(key) for line in lines]}
    return out


def machine() -> dict[str, Any]:
    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), "")  # fmt: skip
    return {"nproc": os.cpu_count(), "cpu_model": model}


def emit(line: dict[str, Any]) -> None:
    print(json.dumps(line), flush=True)
    with OUT.open("a") as f:
        f.write(json.dumps(line) + "\n")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("scenario", choices=("preauth-memory", "flood"))
    p.add_argument("--runs", type=int, default=1)
    p.add_argument("--connections", type=int, default=2000, help="preauth-memory: hostile connections")
    p.add_argument("--hold", type=float, default=15.0, help="preauth-memory: longest wait for the server to close")
    p.add_argument("--old-tree", default="", help="preauth-memory: a worktree (or kefu namespace dir) to compare")
    p.add_argument("--duration", type=float, default=30.0, help="flood: seconds")
    p.add_argument("--pairs", type=int, default=500)
    p.add_argument("--rate", type=float, default=1000.0, help="flood: messages per second between the pairs")
    p.add_argument("--flood-addresses", type=int, default=240)
    p.add_argument("--per-address", type=int, default=4, help="flood: sockets per address at a time")
    p.add_argument("--flood-processes", type=int, default=1)
    p.add_argument("--hellos", type=int, default=16, help="flood: distinct CLIENT_HELLOs replayed")
    p.add_argument("--legit-every", type=float, default=2.0)
    p.add_argument("--legit-same-address", action="store_true", help="every login from 127.0.2.1")
    p.add_argument("--configs", default="no-flood,admission-off,admission-on")
    p.add_argument("--handshake-share", default="", help="flood: [limits] handshake_cpu_share of admission-on")
    args = p.parse_args(argv)
    OUT.parent.mkdir(parents=True, exist_ok=True)
    heads = []
    for run in range(args.runs):
        started = time.time()
        result = run_preauth(args) if args.scenario == "preauth-memory" else run_flood(args)
        emit({"scenario": args.scenario, "run": run, "at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(started)),
              "argv": sys.argv[1:], "machine": machine(), **result})  # fmt: skip
        heads.append(headline(args.scenario, result))
    if args.runs > 1:
        emit({"scenario": args.scenario, "medians_of": args.runs, "argv": sys.argv[1:], **medians(heads)})
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
