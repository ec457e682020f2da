"""Client worker processes and the messages between them and the harness.

Theory of operation: one process can hold at most ~18,000 sockets and one core, so a scenario runs its
clients in `Pool` worker processes (multiprocessing, spawn: a fresh interpreter with nothing of the
parent's threads or loop). Each worker runs one uvloop loop and a scenario coroutine that gets a `Channel`:

- worker -> harness, on one shared queue: ``progress`` (counts for the tqdm bars), ``phase`` (the worker
  reached a named point, with data), ``result`` (its final numbers) and ``failed`` (a traceback);
- harness -> worker, one queue each: commands such as ``("go", {...})`` or ``("stop", {})``.

Every wait is bounded: the harness gives each worker an absolute deadline; a worker past it stops, and the
harness terminates (by its own Process handles) any worker still alive after a grace period.
"""

from __future__ import annotations

import asyncio
import contextlib
import multiprocessing as mp
import os
import queue
import time
import traceback
from collections.abc import Awaitable, Callable
from typing import Any

from tqdm import tqdm

WorkerMain = Callable[["Channel", dict[str, Any]], Awaitable[dict[str, Any]]]
PROGRESS_EVERY_S = 0.2
"""Workers batch progress counts: a few messages a second per worker, not one per connection."""
GRACE_S = 15.0
"""How long the harness waits for workers to report after it told them to stop."""


class WorkerFailed(RuntimeError):
    """A worker raised; the message carries its traceback."""


class Channel:
    """A worker's end: report progress, phases and results; receive commands."""

    def __init__(self, wid: int, out: Any, inbox: Any, deadline: float) -> None:
        self.wid = wid
        self._out = out
        self._inbox = inbox
        self.deadline = deadline
        """time.time() by which the worker must be done."""
        self._progress: dict[str, int] = {}
        self._last_flush = 0.0

    def progress(self, kind: str, n: int = 1) -> None:
        """Count `n` units of `kind` (sent to the harness in batches)."""
        self._progress[kind] = self._progress.get(kind, 0) + n
        now = time.monotonic()
        if now - self._last_flush >= PROGRESS_EVERY_S:
            self.flush_progress()

    def flush_progress(self) -> None:
        """Send the counts gathered so far."""
        self._last_flush = time.monotonic()
        if self._progress:
            self._out.put(("progress", self.wid, self._progress))
            self._progress = {}

    def phase(self, name: str, **data: Any) -> None:
        """Tell the harness this worker reached `name`."""
        self.flush_progress()
        self._out.put(("phase", self.wid, {"name": name, **data}))

    async def command(self, timeout: float | None = None) -> tuple[str, dict[str, Any]]:
        """The next command from the harness; ("stop", {}) when the deadline or `timeout` passes first."""
        limit = self.deadline - time.time()
        if timeout is not None:
            limit = min(limit, timeout)
        end = time.monotonic() + max(0.0, limit)
        while True:
            self.flush_progress()
            with contextlib.suppress(queue.Empty):
                name, data = self._inbox.get_nowait()
                return str(name), dict(data)
            if time.monotonic() >= end:
                return "stop", {"reason": "deadline"}
            await asyncio.sleep(0.02)

    def poll(self) -> tuple[str, dict[str, Any]] | None:
        """A command if one is waiting, else None."""
        try:
            name, data = self._inbox.get_nowait()
        except queue.Empty:
            return None
        return str(name), dict(data)

    def past_deadline(self) -> bool:
        """True once the worker must wrap up."""
        return time.time() >= self.deadline


def _worker_entry(main: WorkerMain, wid: int, spec: dict[str, Any], out: Any, inbox: Any, deadline: float) -> None:
    import uvloop  # noqa: PLC0415 - only workers run a loop

    channel = Channel(wid, out, inbox, deadline)
    try:
        result = uvloop.run(main(channel, spec))
        channel.flush_progress()
        out.put(("result", wid, result))
    except BaseException:
        out.put(("failed", wid, {"traceback": traceback.format_exc()}))


class Pool:
    """`len(specs)` worker processes running `main(channel, spec)`."""

    def __init__(self, main: WorkerMain, specs: list[dict[str, Any]], deadline: float) -> None:
        ctx = mp.get_context("spawn")
        self.deadline = deadline
        self._out: Any = ctx.Queue()
        self._inboxes: list[Any] = [ctx.Queue() for _ in specs]
        self._procs = [
            ctx.Process(target=_worker_entry, args=(main, wid, spec, self._out, inbox, deadline), daemon=True)
            for wid, (spec, inbox) in enumerate(zip(specs, self._inboxes, strict=True))
        ]
        self.results: dict[int, dict[str, Any]] = {}
        self.failures: dict[int, str] = {}
        self.phases: dict[str, dict[int, dict[str, Any]]] = {}
        self.totals: dict[str, int] = {}
        self._bars: dict[str, tqdm[Any]] = {}

    def __len__(self) -> int:
        return len(self._procs)

    def start(self) -> Pool:
        """Start every worker."""
        for proc in self._procs:
            proc.start()
        return self

    @property
    def pids(self) -> list[int]:
        """The workers' process ids."""
        return [p.pid or 0 for p in self._procs]

    def bar(self, kind: str, total: int, desc: str) -> None:
        """Show a progress bar for `kind` counts (tqdm, on stderr)."""
        self._bars[kind] = tqdm(total=total, desc=desc, unit="", leave=True, dynamic_ncols=True, mininterval=0.5)

    def close_bars(self) -> None:
        """Close every progress bar."""
        for bar in self._bars.values():
            bar.close()
        self._bars.clear()

    def send(self, name: str, **data: Any) -> None:
        """Broadcast a command to every worker still running."""
        for inbox, proc in zip(self._inboxes, self._procs, strict=True):
            if proc.is_alive():
                inbox.put((name, data))

    def _pump(self, timeout: float) -> bool:
        """Handle one message from the workers; False if none came within `timeout`."""
        try:
            kind, wid, data = self._out.get(timeout=max(0.01, timeout))
        except queue.Empty:
            return False
        if kind == "progress":
            for name, n in data.items():
                self.totals[name] = self.totals.get(name, 0) + n
                if name in self._bars:
                    self._bars[name].update(n)
        elif kind == "phase":
            self.phases.setdefault(data["name"], {})[wid] = data
        elif kind == "result":
            self.results[wid] = data
        elif kind == "failed":
            self.failures[wid] = data["traceback"]
        return True

    def _alive(self, wid: int) -> bool:
        return wid not in self.results and wid not in self.failures and self._procs[wid].is_alive()

    def wait_phase(self, name: str, timeout: float | None = None) -> dict[int, dict[str, Any]]:
        """Wait until every live worker reached phase `name` (or the deadline/timeout); returns their data."""
        end = min(self.deadline, time.time() + timeout) if timeout is not None else self.deadline
        while time.time() < end:
            reached = self.phases.get(name, {})
            if all(wid in reached or not self._alive(wid) for wid in range(len(self._procs))):
                break
            self._pump(min(0.2, end - time.time()))
        self._raise_failures()
        return dict(self.phases.get(name, {}))

    def pump_for(self, seconds: float) -> None:
        """Keep the progress bars moving for `seconds`."""
        end = min(time.time() + seconds, self.deadline)
        while time.time() < end:
            self._pump(min(0.2, end - time.time()))

    def finish(self, grace: float = GRACE_S) -> list[dict[str, Any]]:
        """Tell the workers to stop and collect their results; terminate any that do not answer in time."""
        self.send("stop")
        end = time.time() + grace
        while time.time() < end and any(self._alive(w) for w in range(len(self._procs))):
            self._pump(0.2)
        while self._pump(0.05):
            pass
        for proc in self._procs:
            proc.join(timeout=max(0.1, end - time.time()))
            if proc.is_alive():
                proc.terminate()
                proc.join(timeout=5)
        self.close_bars()
        self._raise_failures()
        return [self.results[w] for w in sorted(self.results)]

    def _raise_failures(self) -> None:
        if self.failures:
            wid, text = next(iter(self.failures.items()))
            self.terminate()
            raise WorkerFailed(f"worker {wid} failed:\n{text}")

    def terminate(self) -> None:
        """Stop every worker now (our own processes, by handle)."""
        for proc in self._procs:
            if proc.is_alive():
                proc.terminate()
        for proc in self._procs:
            proc.join(timeout=5)
        self.close_bars()


def split(total: int, parts: int) -> list[int]:
    """`total` split into `parts` near-equal counts."""
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def cpu_count() -> int:
    """CPUs this process may run on."""
    return len(os.sched_getaffinity(0))
