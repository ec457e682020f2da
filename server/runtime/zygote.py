"""Worker processes forked from a process that has imported them already, instead of each starting Python afresh.

A worker started as ``python -m kefu.server.runtime.worker`` spends about 0.8 s of CPU importing kefu before it does
anything (0.8-4 s of wall time on a busy 2-vCPU host): three times per `kefu serve` start with two gateways, and once
more at every restart of a dead worker, the moment when its clients wait. So before its event loop exists the
supervisor forks a *zygote*: a process with no loop, no threads and no open store, which imports the workers' code
once and then forks a worker for each request, in a few milliseconds.

Theory of operation
-------------------
- `start` runs in the supervisor before anything else of the server exists (no thread, no loop, no lock, no
  socket): it makes the supervisor a child subreaper (PR_SET_CHILD_SUBREAPER) and forks the zygote, joined to it by
  a SOCK_SEQPACKET socketpair.
- `Zygote.spawn(argv, fds, name)` sends one request: the worker's arguments (`kefu.server.runtime.worker`'s), the
  descriptors it inherits (SCM_RIGHTS) with the numbers the arguments name, its process name, and the supervisor's
  environment as it is now (what a subprocess would inherit). The zygote forks twice: the middle process forks the
  worker, reports its PID on a pipe and exits, so that the worker is orphaned at once and adopted by the nearest
  subreaper, the supervisor, which thus waits for it (its exit status: a signal that killed it matters,
  `kefu.server.storage.verify_report.death_hint`) exactly as for a subprocess. `Forked` is the supervisor's handle,
  with the part of `subprocess.Popen`'s face the supervisor uses.
- A request also carries the read end of a pipe, the *go-ahead*: the worker reads one byte from it before it runs
  anything of its own, and the supervisor writes that byte only once the zygote's answer has come in time. A zygote
  that answers late (a host swapping, a slow `prepare`) has the supervisor start that worker as a subprocess, and
  without the go-ahead the late fork's worker sees end-of-file and exits at once: two copies of one worker (two
  cores on one store) never run.
- The worker puts its descriptors at the numbers the supervisor gave (as ``pass_fds`` does), closes every other,
  reads /dev/null as its standard input, names itself (``kefu-core``, ``kefu-gateway-0``: what ps and
  `kefu.server.runtime.launch` show), and runs `kefu.server.runtime.worker.main`.
- The zygote ends when the supervisor's end of the socket closes (the supervisor exited or was killed). A `Spawner`
  is what starts processes: it forks them from the zygote, and once the zygote is gone or a request failed
  (``zygote.fork_failed`` in the log) it starts them as subprocesses, as before; ``KEFU_ZYGOTE=0`` in the
  environment makes it do so always (an escape hatch, and the baseline of bench/bench_server_start.py).

What a fork shares and must not: randomness. Python's `random` reseeds in the child; OpenSSL (its DRBGs, which draw
the SM2 nonces and every key) reseeds when it sees a new PID; the store's nonce prefix is drawn again after a fork
(`kefu.server.storage.sealing`). `tests/server/test_zygote.py` checks the nonces of two forked workers differ.

Adopted processes are reaped too: a worker's own children (the indexer, the sentiment scorer) outlive a worker that
was killed and are then the supervisor's; `reap_strays` waits for those that ended, never for a tracked worker.

The core (and a server without worker processes) forks a zygote of its own the same way, before its loop, for the
store's indexer process (`forking(import_indexer, ...)`; shown as ``kefu-core-fork`` / ``kefu-fork`` and
``kefu-indexer``): it starts at every start of the core and again after a data-key rotation.
"""

from __future__ import annotations

import contextlib
import ctypes
import fcntl
import gc
import importlib
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import traceback
from collections.abc import Callable, Collection, Iterator, Mapping, Sequence
from pathlib import Path

from .. import log as logmod

__all__ = [
    "DISABLE_ENV", "MAX_FDS", "Forked", "Spawner", "Zygote", "forking", "import_indexer", "reap_strays", "start",
]  # fmt: skip

WORKER_MAIN = "kefu.server.runtime.worker:main"
DISABLE_ENV = "KEFU_ZYGOTE"
"""Set to 0: no zygote, every worker starts as a subprocess."""
MAX_REQUEST = 1 << 20
"""Largest request (arguments and the environment) in bytes."""
MAX_FDS = 64
"""Most descriptors one request carries: the go-ahead and the worker's (the core: its control channel and one link
per gateway), so a worker inherits at most MAX_FDS - 1."""
GO = b"g"
"""The go-ahead byte."""
ANSWER_TIMEOUT_S = 2.0
"""How long the supervisor waits for the zygote's answer before it starts the worker as a subprocess instead."""
CLOSE_WAIT_S = 1.0
"""How long `Zygote.close` waits for the zygote to exit before it kills it."""
_PR_SET_NAME = 15
_PR_SET_CHILD_SUBREAPER = 36
_libc = ctypes.CDLL(None, use_errno=True)


def _prctl(option: int, arg: int | bytes) -> bool:
    return int(_libc.prctl(option, arg, 0, 0, 0)) == 0


class Forked:
    """A worker the zygote forked and the supervisor adopted: `pid`, `poll`, `wait`, `returncode`, `send_signal`, as
    `subprocess.Popen` has them (a negative returncode: the signal that ended it)."""

    def __init__(self, pid: int) -> None:
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit status once it exited (and reaps it), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its status is lost
                self.returncode = 255
                return self.returncode
            if pid:
                self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait for it to exit (subprocess.TimeoutExpired after `timeout` seconds)."""
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"worker {self.pid}", timeout or 0.0)
            time.sleep(0.01)
        return code

    def send_signal(self, sig: int) -> None:
        """Signal it, unless it has been reaped (its PID may be another process's by now)."""
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


class Zygote:
    """The supervisor's end of the zygote."""

    def __init__(self, sock: socket.socket, pid: int) -> None:
        self._sock, self.pid = sock, pid

    def spawn(self, argv: Sequence[str], fds: Sequence[int], name: str, entry: str = WORKER_MAIN) -> Forked:
        """Fork a process running `entry` ("module:function", called with `argv`, returning the exit status) with
        `fds` at their numbers (OSError when the zygote is gone or does not answer in ANSWER_TIMEOUT_S: the process
        it may still fork then exits without running `entry`; ValueError for more than MAX_FDS - 1 descriptors,
        which one request cannot carry: the kernel would drop the rest)."""
        if len(fds) >= MAX_FDS:
            raise ValueError(f"{len(fds)} descriptors: a fork request carries at most {MAX_FDS - 1}")
        request = {"argv": list(argv), "fds": list(fds), "name": name, "env": dict(os.environ), "entry": entry}
        go_read, go_write = os.pipe()
        try:
            self._sock.settimeout(ANSWER_TIMEOUT_S)
            socket.send_fds(self._sock, [json.dumps(request).encode()], [*fds, go_read])
            os.close(go_read)
            go_read = -1
            answer = self._sock.recv(256)
            if not answer:
                raise OSError("the zygote is gone")
            forked = Forked(int(json.loads(answer)["pid"]))
            with contextlib.suppress(OSError):  # a worker that died already: its exit is reaped as any other
                os.write(go_write, GO)
            return forked
        finally:
            if go_read >= 0:
                os.close(go_read)
            os.close(go_write)  # unwritten (no answer in time): end-of-file, and the late worker exits

    def close(self) -> None:
        """Let the zygote end (it exits when this end closes) and reap it, killing it after CLOSE_WAIT_S (a zygote
        that does not answer may be stopped); again, nothing."""
        if self._sock.fileno() < 0:
            return
        self._sock.close()
        zygote = Forked(self.pid)
        try:
            zygote.wait(CLOSE_WAIT_S)
        except subprocess.TimeoutExpired:
            zygote.kill()
            with contextlib.suppress(subprocess.TimeoutExpired):
                zygote.wait(CLOSE_WAIT_S)


def start(prepare: Callable[[], None] = lambda: None, name: bytes = b"kefu-zygote") -> Zygote | None:
    """Fork the zygote (`name`: its process name), which runs `prepare` (the imports the workers need) and then
    serves requests; None where it cannot be (a thread already runs, or no subreaper: the workers are then started
    as subprocesses)."""
    if os.environ.get(DISABLE_ENV) == "0" or threading.active_count() > 1:
        return None
    if not _prctl(_PR_SET_CHILD_SUBREAPER, 1):
        return None
    try:
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_SEQPACKET)
    except OSError:
        return None
    sys.stdout.flush()
    sys.stderr.flush()
    try:
        pid = os.fork()
    except OSError:  # no room for a process now (EAGAIN, ENOMEM): subprocesses, which will report their own failure
        mine.close()
        theirs.close()
        return None
    if pid == 0:  # the zygote
        code = 1
        try:
            mine.close()
            code = _serve(theirs, prepare, name)
        except BaseException:
            traceback.print_exc()
        finally:
            os._exit(code)
    theirs.close()
    return Zygote(mine, pid)


class Spawner:
    """Starts ``python -m MODULE ARGS`` (an argv, with descriptors inherited at their numbers): forked from the
    zygote as MODULE's ``main(ARGS)`` while there is one, else as that subprocess. A fork that fails (the zygote
    gone, too many descriptors) is logged, the zygote closed, and subprocesses started from then on. A
    `kefu.server.storage.indexer.Spawn`."""

    def __init__(self, forker: Zygote | None, name: str = "kefu") -> None:
        self.forker = forker
        self.name = name
        """The process name of what it forks, unless a call names one."""

    def __call__(
        self, argv: Sequence[str], fds: Sequence[int], name: str | None = None
    ) -> Forked | subprocess.Popen[bytes]:
        if self.forker is not None and len(argv) > 2 and argv[1] == "-m":
            try:
                return self.forker.spawn(argv[3:], fds, name or self.name, entry=f"{argv[2]}:main")
            except (OSError, ValueError) as exc:
                logmod.error("zygote.fork_failed", process=name or self.name, reason=str(exc) or type(exc).__name__)
                self.close()
        return subprocess.Popen(argv, pass_fds=fds, stdin=subprocess.DEVNULL)  # noqa: S603

    def close(self) -> None:
        """End the zygote (subprocesses from now on); again, nothing."""
        if self.forker is not None:
            self.forker.close()
            self.forker = None


@contextlib.contextmanager
def forking(prepare: Callable[[], None], name: bytes, process: str) -> Iterator[Spawner]:
    """A Spawner over a zygote started now (`start(prepare, name)`: call it before the event loop, no thread
    running) that forks processes named `process`; the zygote is closed on exit."""
    spawner = Spawner(start(prepare, name), process)
    try:
        yield spawner
    finally:
        spawner.close()


def import_indexer() -> None:
    """What the indexer process imports (`kefu.server.storage.index_worker`), for a zygote that forks it."""
    importlib.import_module("kefu.server.storage.index_worker")
    importlib.import_module("kefu.server.identity.datakeys")  # a sealed store's


def reap_strays(tracked: Collection[int]) -> list[int]:
    """Reap the ended children of this process that are not in `tracked` (processes adopted as subreaper): their
    PIDs."""
    reaped = []
    for pid in _children():
        if pid in tracked:
            continue
        with contextlib.suppress(ChildProcessError):
            found = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG)
            if found is not None:
                reaped.append(pid)
    return reaped


def _children() -> list[int]:
    pids: list[int] = []
    for task in Path("/proc/self/task").iterdir():
        with contextlib.suppress(OSError):
            pids += [int(p) for p in (task / "children").read_text().split()]
    return pids


# --- the zygote's side --------------------------------------------------------------------------------------------


def _ignore(signum: int, frame: object) -> None:
    """SIGINT, SIGTERM and SIGHUP belong to the supervisor (a Ctrl-C reaches the whole process group)."""


def _serve(sock: socket.socket, prepare: Callable[[], None], name: bytes) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _ignore)
    _close_all_but({0, 1, 2, sock.fileno()})
    _prctl(_PR_SET_NAME, name)
    prepare()
    gc.collect()
    gc.freeze()  # what the workers inherit stays out of their collections (and their pages shared longer)
    while True:
        try:
            data, fds, _, _ = socket.recv_fds(sock, MAX_REQUEST, MAX_FDS)
        except OSError:
            return 0
        if not data:
            return 0
        try:
            request = json.loads(data)
            pid = _fork_worker(request, fds)
        finally:
            for fd in fds:
                os.close(fd)
        try:
            sock.send(json.dumps({"pid": pid}).encode())
        except OSError:  # the supervisor gave up waiting and closed its end: that worker gets no go-ahead
            return 0


def _fork_worker(request: Mapping[str, object], fds: Sequence[int]) -> int:
    """Fork twice (the worker is orphaned, and adopted by the supervisor); the worker's PID."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(read_end)
        worker = os.fork()
        if worker == 0:
            os.close(write_end)
            _run_worker(request, fds)  # never returns
        os.write(write_end, worker.to_bytes(8, "big"))
        os._exit(0)
    os.close(write_end)
    try:
        data = b""
        while len(data) < 8 and (chunk := os.read(read_end, 8 - len(data))):
            data += chunk
    finally:
        os.close(read_end)
        os.waitpid(middle, 0)
    if len(data) != 8:
        raise OSError("the worker's fork failed")
    return int.from_bytes(data, "big")


def _run_worker(request: Mapping[str, object], fds: Sequence[int]) -> None:
    code = 1
    try:
        *fds, go = fds
        answered = os.read(go, 1) == GO  # the supervisor had the zygote's answer in time (see Zygote.spawn)
        os.close(go)
        if not answered:
            code = 0
            return
        targets = [int(fd) for fd in request["fds"]]  # type: ignore[attr-defined]
        _place_fds(fds, targets)
        devnull = os.open(os.devnull, os.O_RDONLY)
        os.dup2(devnull, 0)
        os.close(devnull)
        os.environ.clear()
        os.environ.update(request["env"])  # type: ignore[call-overload]
        _prctl(_PR_SET_NAME, str(request["name"]).encode()[:15])
        # The zygote's objects stay frozen (gc.freeze in `_serve`): no collection here touches (and copies) their pages.
        module, function = str(request["entry"]).split(":")
        main = getattr(importlib.import_module(module), function)  # the workers': imported by `prepare` already
        code = _exit_status(main(list(request["argv"])))  # type: ignore[call-overload]
    except SystemExit as exc:
        code = _exit_status(exc.code)
    except BaseException:
        traceback.print_exc()
    finally:
        with contextlib.suppress(Exception):
            import logging  # noqa: PLC0415

            logging.shutdown()
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _exit_status(code: object) -> int:
    """The status the interpreter exits with for `sys.exit(code)` (or a main returning `code`): None is 0, an
    integer itself, anything else printed on standard error and 1 (os._exit takes integers only)."""
    if code is None:
        return 0
    if isinstance(code, int):
        return code
    with contextlib.suppress(Exception):
        print(code, file=sys.stderr)
    return 1


def _place_fds(received: Sequence[int], targets: Sequence[int]) -> None:
    """Put each received descriptor at its target number (inheritable, as `pass_fds` leaves them) and close every
    other descriptor above 2."""
    base = max([*received, *targets, 2]) + 1
    moved = [fcntl.fcntl(fd, fcntl.F_DUPFD_CLOEXEC, base) for fd in received]
    _close_all_but({0, 1, 2, *moved})
    for fd, target in zip(moved, targets, strict=True):
        os.dup2(fd, target, inheritable=True)
        os.close(fd)


def _close_all_but(keep: Collection[int]) -> None:
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        if fd not in keep:
            with contextlib.suppress(OSError):
                os.close(fd)
