"""The supervisor of `kefu serve` with worker processes: one core, N gateways, kept running (spec section 14).

Theory of operation
-------------------
The supervisor does no client work. At start it takes the data directory's lock (held until it exits), prepares
what every worker shares (the store created or migrated, the keys, with the ticket keys rotated once, pins.txt, the
table of claimed tickets, kept across restarts), holds the listening port, and starts the core and the gateways as
``python -m kefu.server.runtime.worker``. Every pair of core and gateway is joined by a link, one end of a socketpair
each; every worker has a control channel to the supervisor (`control.Control`).

- **Ready**: once every worker said ``ready``, it prints the listening line and sends READY=1.
- **Watchdog**: every second it pings every worker; WATCHDOG=1 goes out only while every worker answered the last
  ping. A worker silent for HUNG_AFTER_S is killed (and restarted).
- **Restarts**: a dead worker is started again at once (within a second; later only when it keeps dying). A new
  gateway gets a new link to the core (the core gets the other end over its control channel); a new core gets new
  links to every gateway, and each gateway then tells it what it holds and sends again what went unanswered
  (`kefu.server.link.gateway_side`).
- **SIGTERM/SIGINT**: STOPPING=1; every gateway drains (GOAWAY, no more accepting, waits for the core's answers to
  what its clients asked, closes); then the core finishes every write and closes the store; then the supervisor
  exits. Bounded by [server] drain_timeout_s (a worker still alive after it is killed).
- **SIGHUP**: the supervisor reloads its configuration and tells every worker to reload theirs.
- **/metrics and /healthz**: served by the supervisor from the workers' own expositions (each series labelled with
  its worker) and health.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, ProcessCollector
from prometheus_client.exposition import generate_latest

from .. import log as logmod
from .. import wiring
from ..identity import keys as keymod
from ..identity.tickets import open_claims
from ..metrics import MetricsServer, merge_expositions, version
from ..storage import salvage
from ..storage.datadir import lock_data_dir
from ..storage.modes import private_dir, tighten
from ..storage.verify_report import death_hint
from ..web.port import announce as announce_web
from ..web.port import bind as bind_port
from . import reload, sdnotify, zygote
from .control import Control, control_pair
from .process import worker_count

__all__ = ["Supervisor", "supervise"]

PING_INTERVAL_S = 1.0
HUNG_AFTER_S = 10.0
"""A worker that answers no ping for this long is stuck (a stalled loop): it is killed and started again."""
START_TIMEOUT_S = 60.0
"""How long the first start of the workers may take (the core loads the store and the desk's rules)."""
METRICS_TIMEOUT_S = 2.0
QUICK_DEATH_S = 5.0
"""A worker that dies sooner than this after starting is restarted after a pause (doubling to 1 s), not at once."""
STORE_CHECK_TRIES = 10
"""Opens of the store the supervisor tries after the core died of a damaged page (`_check_store`), 0.5 s apart."""
GATEWAYS_DRAIN_SHARE = 0.7
"""The share of [server] drain_timeout_s the gateways get to drain at a stop; the core has the rest."""
CORE_STOP_MIN_S = 1.0
"""The least the core gets to finish its writes at a stop, even when the gateways used the whole budget."""
KILLED_WAIT_S = 5.0
"""How long a stop waits for a worker it killed (past its time) to be gone."""
RESTART_RETRY_S = 1.0
"""A restart that could not start the process (no room for a process or a descriptor now: EAGAIN, ENOMEM, EMFILE)
is tried again after this long, until it succeeds or the server stops."""


class Worker:
    """A worker process as the supervisor sees it."""

    def __init__(self, role: str, index: int) -> None:
        self.role, self.index = role, index
        self.proc: subprocess.Popen[bytes] | zygote.Forked | None = None
        self.control: Control | None = None
        self.ready = False
        self.started = 0.0
        self.answered = 0.0
        """When it last answered a ping (time.monotonic)."""
        self.health: dict[str, Any] = {}
        self.restarts = 0
        self.backoff = 0.0

    @property
    def name(self) -> str:
        """ "core" or "gateway-N"."""
        return self.role if self.role == "core" else f"gateway-{self.index}"

    @property
    def alive(self) -> bool:
        """The process runs."""
        return self.proc is not None and self.proc.poll() is None


class Supervisor:
    """Starts, watches, restarts and stops the worker processes of one server."""

    def __init__(
        self,
        config: Any,
        reload: Callable[[], Any] | None,
        argv: Sequence[str],
        spawn: zygote.Spawner | None = None,
    ) -> None:
        """`spawn`: what starts the workers (forked from the zygote, `kefu.server.runtime.zygote`); default: a
        Spawner without a zygote (subprocesses)."""
        self.config = config
        self.spawn = spawn if spawn is not None else zygote.Spawner(None)
        self.adopting = self.spawn.forker is not None
        """This process is a child subreaper (`zygote.start`): it reaps the orphans it adopts."""
        self._reload_config = reload
        self.argv = list(argv)
        self.loop = asyncio.get_event_loop()
        self._store_check: asyncio.Task[None] | None = None
        self.salvaging = False
        """The store is being checked after the core died of a damaged page: no worker starts meanwhile."""
        self.gateways = [Worker("gateway", i) for i in range(worker_count(config))]
        self.core = Worker("core", 0)
        self.stopping = False
        self.port = 0
        self._listen: socket.socket | None = None
        self.web_port = -1
        """The web port the gateways serve ([web]; -1: none), held like the client port (`hold_http_ports`)."""
        self.api_port = -1
        """The HTTP API's port ([api]; -1: none), held like the web port: the core serves it, and every worker is told
        the port (the web port's pages need it even when [api] port is 0)."""
        self._held: list[socket.socket] = []
        """The web and API ports' sockets, bound and never listened on (`hold_http_ports`)."""
        self._shared = False
        self._pings = 0
        self._waiters: dict[tuple[str, int], asyncio.Future[dict[str, Any]]] = {}
        self._pidfds: dict[int, int] = {}
        """The pidfd of each worker process by pid: readable once it exits."""
        self._tasks: list[asyncio.Task[Any]] = []
        self.started = time.time()
        self.pins: list[str] = []
        """The server key pins at start: what the workers sign with until a restart."""
        self.newest_keys = ""
        """The signing keys of this start (`Keyring.newest`): a gateway restarted later signs with the same ones."""
        self.registry = CollectorRegistry()
        ProcessCollector(registry=self.registry)
        self._restarts = Counter("kefu_worker_restarts", "Worker processes started again.", ["role"],
                                 registry=self.registry)  # fmt: skip
        self._up = Gauge("kefu_workers_up", "Worker processes running and ready.", ["role"], registry=self.registry)

    @property
    def workers(self) -> list[Worker]:
        """The core, then the gateways."""
        return [self.core, *self.gateways]

    # --- start ----------------------------------------------------------------------------------------------

    def prepare(self) -> None:
        """What every worker shares, made once: the store, the keys (ticket keys rotated), pins, ticket claims (kept
        across restarts, the expired ones purged)."""
        data_dir = Path(self.config.server.data_dir)
        store = wiring.open_store(self.config)
        try:
            keyring = keymod.load_or_create(data_dir, store)
            self.pins, self.newest_keys = keyring.pins, keyring.newest
        finally:
            store.close()
        keymod.write_pins(data_dir)
        open_claims(data_dir)

    def hold_port(self, inherited: socket.socket | None) -> None:
        """The port the gateways serve: the socket systemd passed (shared by all), or one bound here with
        SO_REUSEPORT and never listened on, so that the port stays ours while gateways come and go."""
        if inherited is not None:
            self._listen, self._shared = inherited, True
            self.port = inherited.getsockname()[1]
            return
        self._listen = bind_port(self.config.server.host, self.config.server.port, reuse_port=True, listen=False)
        self.port = self._listen.getsockname()[1]

    def hold_http_ports(self) -> None:
        """The web port ([web], served by the gateways) and the HTTP API's ([api], served by the core), held as the
        client port is: bound with SO_REUSEPORT, never listened on."""
        self.web_port = self._hold(self.config.web)
        self.api_port = self._hold(self.config.api)

    def _hold(self, section: Any) -> int:
        """The port of `section` ([web] or [api]) held (`hold_http_ports`); -1 when the section is off."""
        if not section.enabled:
            return -1
        sock = bind_port(section.host, section.port, reuse_port=True, listen=False)
        self._held.append(sock)
        port: int = sock.getsockname()[1]
        return port

    async def start(self) -> None:
        """Start every worker and wait until each is ready (RuntimeError if one dies or is too slow)."""
        links = {g.index: socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for g in self.gateways}
        self._spawn(self.core, links=[(i, pair[0]) for i, pair in links.items()])
        for gateway in self.gateways:
            self._spawn(gateway, link=links[gateway.index][1])
        deadline = time.monotonic() + START_TIMEOUT_S
        while not all(w.ready for w in self.workers):
            dead = [w.name for w in self.workers if not w.alive]
            if dead:
                raise RuntimeError(f"worker {', '.join(dead)} exited during start-up (see the log above)")
            if time.monotonic() > deadline:
                raise RuntimeError("workers did not start in time")
            await asyncio.sleep(0.02)

    def _spawn(
        self, worker: Worker, *, link: socket.socket | None = None, links: Sequence[tuple[int, socket.socket]] = ()
    ) -> None:
        """Start `worker`'s process with its control channel and links (the descriptors it inherits)."""
        mine, theirs = control_pair()
        args = ["--control-fd", str(theirs.fileno()),
                "--web-port", str(self.web_port), "--api-port", str(self.api_port)]  # fmt: skip
        fds = [theirs.fileno()]
        if worker.role == "gateway":
            assert link is not None and self._listen is not None
            args += ["--index", str(worker.index), "--link-fd", str(link.fileno()), "--port", str(self.port),
                     "--keys", self.newest_keys]  # fmt: skip
            fds.append(link.fileno())
            if self._shared:
                args += ["--listen-fd", str(self._listen.fileno())]
                fds.append(self._listen.fileno())
        else:
            args += ["--links", ",".join(f"{i}:{sock.fileno()}" for i, sock in links)]
            fds += [sock.fileno() for _, sock in links]
        command = [sys.executable, "-m", "kefu.server.runtime.worker", *args, worker.role, "--", *self.argv]
        try:
            proc = self.spawn(command, fds, f"kefu-{worker.name}")
        except BaseException:
            mine.close()
            raise
        finally:
            for sock in [theirs, *([link] if link is not None else []), *(s for _, s in links)]:
                sock.close()
        try:
            pidfd = os.pidfd_open(proc.pid)
        except OSError:  # it runs, but its exit could not be watched: stop it, and let the restart be tried again
            proc.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                proc.wait(1.0)
            mine.close()
            raise
        worker.proc = proc
        worker.ready = False
        worker.started = worker.answered = time.monotonic()
        worker.control = Control(mine, self.loop, lambda m, f: self._on_message(worker, m, f), lambda: None)
        self._pidfds[proc.pid] = pidfd
        self.loop.add_reader(pidfd, self._reaped, worker, proc)
        logmod.event("worker.started", worker=worker.name, pid=worker.proc.pid)

    # --- messages from the workers ------------------------------------------------------------------------------

    def _on_message(self, worker: Worker, message: dict[str, Any], fds: list[int]) -> None:
        for fd in fds:
            os.close(fd)
        op = message.get("op")
        if op == "ready":
            worker.ready = True
            worker.answered = time.monotonic()
            self._up.labels(worker.role).set(sum(w.ready for w in self.workers if w.role == worker.role))
            logmod.event("worker.ready", worker=worker.name, pid=message.get("pid"))
        elif op == "pong":
            worker.answered = time.monotonic()
            worker.health = dict(message.get("health") or {})
            waiter = self._waiters.pop((worker.name, int(message.get("n", 0))), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
        elif op == "metrics":
            waiter = self._waiters.pop((worker.name, int(message.get("n", 0))), None)
            if waiter is not None and not waiter.done():
                waiter.set_result(message)
        elif op == "link_lost" and worker.role == "gateway" and self.core.ready and not self.stopping:
            # The link broke while the core lives (the core gave it up): join them again.
            self._link(worker)

    def _link(self, gateway: Worker) -> None:
        """A new link between a running gateway and the running core."""
        core_end, gateway_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        if self.core.control is not None and gateway.control is not None:
            self.core.control.send({"op": "link", "gateway": gateway.index}, [core_end.fileno()])
            gateway.control.send({"op": "link"}, [gateway_end.fileno()])
        core_end.close()
        gateway_end.close()

    # --- deaths and restarts ----------------------------------------------------------------------------------

    def _reaped(self, worker: Worker, proc: subprocess.Popen[bytes] | zygote.Forked) -> None:
        """The process's pidfd became readable: it exited."""
        if proc.poll() is None:
            return
        fd = self._pidfds.pop(proc.pid, None)
        if fd is not None:
            self.loop.remove_reader(fd)
            os.close(fd)
        if proc is not worker.proc:
            return
        code = proc.returncode
        if worker.control is not None:
            worker.control.close()
            worker.control = None
        was_ready, worker.ready = worker.ready, False
        self._up.labels(worker.role).set(sum(w.ready for w in self.workers if w.role == worker.role))
        if self.stopping:
            logmod.event("worker.exited", worker=worker.name, code=code)
            return
        logmod.error("worker.died", worker=worker.name, pid=proc.pid, code=code, ready=was_ready)
        if (hint := death_hint(code)) is not None:  # SIGABRT, SIGBUS, SIGSEGV: how LMDB ends a reader of a bad page
            logmod.error("worker.store_damaged", worker=worker.name, pid=proc.pid, hint=hint)
            if worker.role == "core" and self.config.storage.check_at_open == "full" and not self.salvaging:
                self.salvaging = True
                self._store_check = self.loop.create_task(self._check_store())
                return
        quick = time.monotonic() - worker.started < QUICK_DEATH_S
        worker.backoff = min(1.0, max(0.05, worker.backoff * 2)) if quick else 0.0
        self.loop.call_later(worker.backoff, self._restart, worker)

    async def _check_store(self) -> None:
        """The core died as LMDB kills a reader of a damaged page, and its restart would read it again (or find it
        and be refused: the gateways map the file). So the gateways are stopped (killed: none may map the file
        while it is replaced, spec section 12.8), the store is opened here as at the start (the full check; a damaged
        table is salvaged), and the core and the gateways start again."""
        logmod.error("worker.store_check", reason="the core died as a damaged store kills it: stopping the gateways"
                     " to check the store at open")  # fmt: skip
        for gateway in self.gateways:
            self._kill(gateway)
        while any(g.alive for g in self.gateways):
            await asyncio.sleep(0.05)
        for _ in range(STORE_CHECK_TRIES):  # the core's indexer process may hold the store a moment longer
            if salvage.in_use(Path(self.config.store_path)):  # an open now would check the tops only
                await asyncio.sleep(0.5)
                continue
            try:
                await asyncio.to_thread(lambda: wiring.open_store(self.config).close())
                break
            except Exception as exc:  # the core's own open says the rest again
                logmod.error("worker.store_check_failed", error=f"{type(exc).__name__}: {exc}")
                await asyncio.sleep(0.5)
        self.salvaging = False
        for worker in self.workers:
            self._restart(worker)

    def _restart(self, worker: Worker) -> None:
        if self.stopping or worker.alive or self.salvaging:
            return
        try:
            self._start_again(worker)
        except OSError as exc:  # nothing started: no exit will be reaped to restart it, so try again later
            logmod.error("worker.restart_failed", worker=worker.name, reason=f"{type(exc).__name__}: {exc}",
                         retry_in_s=RESTART_RETRY_S)  # fmt: skip
            self.loop.call_later(RESTART_RETRY_S, self._restart, worker)
            return
        worker.restarts += 1
        self._restarts.labels(worker.role).inc()

    def _start_again(self, worker: Worker) -> None:
        """Start a dead worker's process anew with new links (OSError if it could not be started)."""
        if worker.role == "core":
            links = {g.index: socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM) for g in self.gateways if g.alive}
            try:
                self._spawn(worker, links=[(i, pair[0]) for i, pair in links.items()])
                for gateway in self.gateways:
                    if gateway.index in links and gateway.control is not None:
                        gateway.control.send({"op": "link"}, [links[gateway.index][1].fileno()])
            finally:
                for pair in links.values():
                    pair[1].close()
        else:
            core_end, gateway_end = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                self._spawn(worker, link=gateway_end)
                if self.core.control is not None:
                    self.core.control.send({"op": "link", "gateway": worker.index}, [core_end.fileno()])
            finally:
                core_end.close()
                gateway_end.close()

    # --- watchdog, health and metrics ---------------------------------------------------------------------------

    async def ping_forever(self) -> None:
        """Ping every worker each second; kill one that has been silent for HUNG_AFTER_S."""
        while True:
            await asyncio.sleep(PING_INTERVAL_S)
            self._pings += 1
            now = time.monotonic()
            if self.adopting:  # the subreaper's chore: children of dead workers (and a dead zygote), adopted here
                tracked = {w.proc.pid for w in self.workers if w.proc is not None}
                forker = self.spawn.forker
                zygote.reap_strays(tracked | ({forker.pid} if forker is not None else set()))
            for worker in self.workers:
                if worker.control is not None:
                    worker.control.send({"op": "ping", "n": self._pings})
                if worker.alive and worker.ready and now - worker.answered > HUNG_AFTER_S and not self.stopping:
                    logmod.error("worker.hung", worker=worker.name, silent_s=round(now - worker.answered, 1))
                    self._kill(worker)

    def healthy(self) -> bool:
        """Every worker is up and answered within the last two ping intervals (what WATCHDOG=1 vouches for)."""
        now = time.monotonic()
        return all(w.ready and now - w.answered < 2 * PING_INTERVAL_S + 0.5 for w in self.workers)

    def health(self) -> dict[str, Any]:
        """The /healthz payload: the host's connections and each worker's state."""
        gateways = [w.health for w in self.gateways]
        return {
            "status": "draining" if self.stopping else "ok" if self.healthy() else "degraded",
            "connections": sum(int(h.get("connections", 0)) for h in gateways),
            "uptime_s": round(time.time() - self.started, 1),
            "workers": {
                w.name: {"pid": w.proc.pid if w.proc else None, "ready": w.ready, "restarts": w.restarts, **w.health}
                for w in self.workers
            },
        }

    def fresh_health(self) -> dict[str, Any]:
        """/healthz (from the HTTP thread): every worker asked now, so the numbers are current."""
        future = asyncio.run_coroutine_threadsafe(self._ask_all("pong"), self.loop)
        with contextlib.suppress(Exception):
            future.result(timeout=METRICS_TIMEOUT_S + 1)
        return self.health()

    def exposition(self) -> bytes:
        """/metrics: the host's totals over every worker and the supervisor (from the HTTP thread)."""
        return merge_expositions(self._parts())

    def worker_exposition(self) -> bytes:
        """/metrics/workers: every worker's own series, labelled with its name."""
        return merge_expositions(self._parts(), per_worker=True)

    def _parts(self) -> list[tuple[str, str]]:
        future = asyncio.run_coroutine_threadsafe(self._collect(), self.loop)
        try:
            parts = future.result(timeout=METRICS_TIMEOUT_S + 1)
        except Exception:
            parts = []
        parts.append(("supervisor", generate_latest(self.registry).decode()))
        return parts

    async def _collect(self) -> list[tuple[str, str]]:
        return [(name, str(answer.get("text", ""))) for name, answer in await self._ask_all("metrics")]

    async def _ask_all(self, op: str) -> list[tuple[str, dict[str, Any]]]:
        """Send `op` ("metrics", or "pong" for a ping) to every ready worker and wait for the answers (bounded)."""
        self._pings += 1
        n = self._pings
        waiters = []
        for worker in self.workers:
            if worker.control is not None and worker.ready:
                future: asyncio.Future[dict[str, Any]] = self.loop.create_future()
                self._waiters[(worker.name, n)] = future
                worker.control.send({"op": "ping" if op == "pong" else op, "n": n})
                waiters.append((worker.name, future))
        answers = []
        for name, future in waiters:
            try:
                answers.append((name, await asyncio.wait_for(future, METRICS_TIMEOUT_S)))
            except TimeoutError:
                self._waiters.pop((name, n), None)
        return answers

    # --- reload and stop ------------------------------------------------------------------------------------------

    def reload(self) -> None:
        """SIGHUP: reload here (logging what changes and what needs a restart, once for the whole server), and tell
        every worker to reload (the core reloads the service directory and logs it: `kefu.server.runtime.reload`)."""
        details: dict[str, Any] = {}
        if self._reload_config is not None:
            fresh = reload.load_fresh(self._reload_config)
            if fresh is None:
                return
            details = reload.config_details(self.config, fresh)
            self.config = self.config.reload_from(fresh)
            logmod.set_level(self.config.log.level)
        for worker in self.workers:
            if worker.control is not None:
                worker.control.send({"op": "reload"})
        details["new_keys"] = reload.server_keys(self.config.data_path, self.pins)
        reload.log_reloaded(details)

    async def stop(self) -> None:
        """Drain the gateways, then stop the core: all of it within drain_timeout_s (the gateways get at most
        GATEWAYS_DRAIN_SHARE of it, the core what is left, at least CORE_STOP_MIN_S), then what still runs is
        killed."""
        self.stopping = True
        if self._store_check is not None and not self._store_check.done():
            # The store is being opened (and maybe salvaged) in a thread, which a cancel would not stop: wait for it,
            # so that the data directory's lock is released only once nothing of this server uses the store.
            logmod.event("server.stop_waits_for_store_check")
            with contextlib.suppress(Exception):
                await asyncio.shield(self._store_check)
        budget = self.config.server.drain_timeout_s
        end = time.monotonic() + budget
        logmod.event("server.draining", connections=self.health()["connections"])
        for gateway in self.gateways:
            if gateway.control is not None:
                gateway.control.send({"op": "drain"})
        await self._wait_exit(self.gateways, budget * GATEWAYS_DRAIN_SHARE)
        if self.core.control is not None:
            self.core.control.send({"op": "stop"})
        await self._wait_exit([self.core], max(CORE_STOP_MIN_S, end - time.monotonic()))
        if self._listen is not None:
            self._listen.close()
        for sock in self._held:
            sock.close()
        logmod.event("server.stopped")

    async def _wait_exit(self, workers: Sequence[Worker], timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while any(w.alive for w in workers) and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        late = [w for w in workers if w.alive]
        for worker in late:
            logmod.error("worker.stop_timeout", worker=worker.name)
            self._kill(worker)
        deadline = time.monotonic() + KILLED_WAIT_S
        while any(w.alive for w in late) and time.monotonic() < deadline:  # killed: gone in a moment, loop serving
            await asyncio.sleep(0.02)

    def _kill(self, worker: Worker) -> None:
        if worker.proc is not None and worker.proc.poll() is None:
            worker.proc.send_signal(signal.SIGKILL)


async def _run(config: Any, reload: Callable[[], Any] | None, argv: Sequence[str], spawn: zygote.Spawner) -> int:
    loop = asyncio.get_running_loop()
    data_dir = private_dir(Path(config.server.data_dir))
    lock = lock_data_dir(data_dir)
    tighten(data_dir)  # after the lock: a second server refused never touches it
    supervisor = Supervisor(config, reload, argv, spawn)
    supervisor.loop = loop
    try:
        inherited = sdnotify.listen_socket()
        notifier = sdnotify.Notifier.from_environment()
        stop = asyncio.Event()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        loop.add_signal_handler(signal.SIGINT, stop.set)
        loop.add_signal_handler(signal.SIGHUP, supervisor.reload)
        sdnotify.install_debug_stall(loop)
        supervisor.prepare()
        supervisor.hold_port(inherited)
        supervisor.hold_http_ports()
        if not await _started_unless_stopped(supervisor, stop):
            if not stop.is_set():
                return 1
            await supervisor.stop()  # SIGTERM while the workers started: stop what started, never say READY
            return 0
        host = config.server.host if inherited is None else inherited.getsockname()[0]
        logmod.event("server.listening", host=host, port=supervisor.port, inherited=inherited is not None,
                     workers=len(supervisor.gateways), version=version())  # fmt: skip
        if supervisor.web_port >= 0:
            announce_web(config.web.host, supervisor.web_port)
        print(f"kefu: listening on {host}:{supervisor.port}", flush=True)
        exporter = None
        if config.metrics.enabled:
            exporter = MetricsServer(
                supervisor, config.metrics.host, config.metrics.port, supervisor.fresh_health
            ).start()
            print(f"kefu: metrics on http://{config.metrics.host}:{exporter.port}/metrics", flush=True)
        pinger = loop.create_task(supervisor.ping_forever())
        notifier.ready(_status(supervisor))
        watchdog = loop.create_task(notifier.run(lambda: _status(supervisor), supervisor.healthy))
        await stop.wait()
        notifier.stopping(_status(supervisor, "draining"))
        await supervisor.stop()
        pinger.cancel()
        watchdog.cancel()
        notifier.close()
        if exporter is not None:
            exporter.stop()
        return 0
    finally:
        lock.release()


async def _started_unless_stopped(supervisor: Supervisor, stop: asyncio.Event) -> bool:
    """Start the workers (True once every one is ready), unless a SIGTERM comes first (False, `stop` set; the start is
    abandoned): a stop during a long start (the core replaying its log) is not kept waiting for it. False also when
    the start fails (said on standard error, and every worker killed)."""
    starting = asyncio.ensure_future(supervisor.start())
    stopping = asyncio.ensure_future(stop.wait())
    await asyncio.wait({starting, stopping}, return_when=asyncio.FIRST_COMPLETED)
    stopping.cancel()
    if not starting.done():
        starting.cancel()
        with contextlib.suppress(asyncio.CancelledError, RuntimeError):
            await starting
        return False
    try:
        starting.result()
    except RuntimeError as exc:
        print(f"kefu: {exc}", file=sys.stderr)
        supervisor.stopping = True
        for worker in supervisor.workers:
            supervisor._kill(worker)
        return False
    return True


def _status(supervisor: Supervisor, state: str | None = None) -> str:
    """systemd's STATUS= line: what `systemctl status kefu` shows."""
    health = supervisor.health()
    return f"{state or health['status']}: {health['connections']} connections"


def supervise(config: Any, reload: Callable[[], Any] | None, argv: Sequence[str]) -> int:
    """Run the supervisor and its workers until SIGTERM/SIGINT; returns the exit status."""
    import uvloop  # noqa: PLC0415 - the server extra

    # first: the zygote forks from a process with no loop, thread or store
    with zygote.forking(_import_workers, b"kefu-zygote", "kefu-worker") as spawn:
        return uvloop.run(_run(config, reload, argv, spawn))


def _import_workers() -> None:
    """What a worker imports, imported once in the zygote (`kefu.server.runtime.worker` itself, a few lines over the
    CLI this process has loaded, is imported at each fork)."""
    from . import core_process, gateway_process  # noqa: F401, PLC0415
