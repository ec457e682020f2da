"""Group commit: the asyncio side of the write path, one writer thread, one log append and fdatasync per batch.

Theory of operation
-------------------
The event loop calls `GroupCommitter.submit` for each SEND (and `submit_cursor` for each cursor advance to log).
That appends to a deque; no task, future or lock is created per message. A single writer thread sleeps until an item
arrives and takes everything queued as one batch: it sequences the batch in memory (`sequencer.Sequencer`, against
the store merged with the overlay of durable records not yet indexed), appends its records to the log and
fdatasyncs once (`logfile.LogWriter`), and only then adds them to the overlay, where reads see them, and keeps the
sequencer's changes. The LMDB tables are written later, in larger batches, by the indexer process
(`indexer.IndexerProcess`). Commits start at most once per `window_s`: an item that arrives less than `window_s` after
the previous commit started waits, with whatever joins it, until that much has passed (or until `max_batch` SENDs are
queued). So an idle store commits a lone SEND at once, a busy one commits every `window_s` (or back to back, when a
commit takes longer than that), everything that arrived during a commit goes into the next one, and no item waits more
than `window_s` for its commit to start (plus the commit in progress when it arrived).

Why the spacing is measured from the previous commit's start, not from the first waiting item's arrival (the
first design): the items of the next batch start arriving just after a commit starts, so a window counted from
them added the commit's own duration to every cycle. At 5,000 SENDs/s over 10,000 connections that meant a commit
every ~3.2 ms with a 2 ms window, and committing at once instead (no spacing) tripled the commits and their fixed
cost (about 150-190 us of CPU each, mostly LMDB's two syncs: an fdatasync and an O_DSYNC meta-page write) on a
CPU the event loop needs. Counting from the start bounds the commit rate at 1/`window_s` and adds no wait at all
when the store is idle (bench/RESULTS.md, "third attempt").

After the commit, one ``loop.call_soon_threadsafe`` per batch runs every callback, in submission order, and then
`on_committed`. A batch whose records are all refusals and duplicates of durable messages appends nothing and is
answered at once; a duplicate of a message of the same batch is answered with it, once it is durable.

Failures. A failed log write or fdatasync is fatal (PostgreSQL's rule: after a failed fdatasync the kernel may have
dropped the dirty pages, so what the file holds is unknown): every SEND of the batch and every later one gets
STORAGE_UNAVAILABLE, nothing more is sequenced, and `on_fatal(exc)` runs once on the loop (the server then exits,
and start-up replays whatever records did reach the disk; a client's retry of one of them gets its DUPLICATE). While
the indexer lags by more than `max_unindexed_bytes` (it is failing: the map at max_map_size, a disk error), new
SENDs get STORAGE_UNAVAILABLE without being sequenced, so memory stays bounded; cursor advances are still logged
(at most one per user and conversation per commit). So do they while the indexer cannot write the store for want of
room (`hold_back`, from its first such failure until a batch succeeds): the log's spare segments could take more, but
what they take can only wait in memory and be replayed into it at every start until there is room, so the unindexed
tail is kept to what arrived before the indexer first found the disk full.

Waking the writer costs an Event.set only when the writer waits for that item: `_signal_at` is the queue length
at which `submit` must wake it (1 when idle, `max_batch` while gathering, never while committing). Because the
writer sets `_signal_at` before it re-checks the queue, and `submit` appends before it reads `_signal_at`, one of
the two always sees the other.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable
from typing import Final

from kefu.protocol.errors import ErrorCode

from ..engine.messages import CursorUpdate, SendRequest, SendResult
from .index import TreeDamaged, Unreadable
from .logfile import LogFull, LogWriter
from .overlay import Logged, Overlay
from .records import Kind, Write
from .sequencer import Sequenced, Sequencer
from .store import Store
from .view import SequencingSource

__all__ = ["REFUSALS_INTERVAL_S", "GroupCommitter", "Refusals"]

log = logging.getLogger(__name__)

_NEVER: Final = 1 << 62
REFUSALS_INTERVAL_S: Final = 10.0
"""Refused commits are logged once per this interval, with their count (a full disk refuses hundreds a second)."""
_UNAVAILABLE: Final = SendResult(int(ErrorCode.STORAGE_UNAVAILABLE), False, None, ())
MAX_UNREADABLE: Final = 64
"""Damaged parts one batch is sequenced around (a new read transaction each) before the whole batch is refused: a
store with more damage than this needs restoring, and the batch must not take that many tries."""

Callback = Callable[[SendResult], None]
Committed = Callable[[list[tuple[SendRequest | CursorUpdate, SendResult | None]]], None]
Written = Callable[[str, int, int], None]


class GroupCommitter:
    """Batches SENDs and cursor updates from the event loop into durable log appends on one thread."""

    def __init__(
        self,
        store: Store,
        log_writer: LogWriter,
        overlay: Overlay,
        loop: asyncio.AbstractEventLoop,
        *,
        window_s: float = 0.002,
        max_batch: int = 4096,
        nice: int = 0,
        max_unindexed_bytes: int = 256 << 20,
        on_committed: Committed | None = None,
        on_logged: Callable[[], None] | None = None,
        on_fatal: Callable[[BaseException], None] | None = None,
        clock: Callable[[], float] = time.time,
        observer: Callable[[int, float], None] | None = None,
        written: Written | None = None,
    ) -> None:
        """`clock` gives the messages' timestamps (seconds); `observer(writes, commit_seconds)` runs per batch,
        `written("log", nbytes, messages)` per append (writer thread); `on_logged()` after each batch reaches the
        overlay (writer thread: the indexer's wake-up); `on_fatal(exc)` once, on the loop, when the log fails."""
        self._store, self.log_writer, self._overlay, self._loop = store, log_writer, overlay, loop
        self._window, self._max_batch = window_s, max(1, max_batch)
        self._nice = nice
        self.max_unindexed_bytes = max_unindexed_bytes
        self.on_committed, self._clock, self._observer = on_committed, clock, observer
        """`on_committed(done)` runs on the loop after each batch's callbacks (settable after construction)."""
        self._on_logged, self._written = on_logged, written
        self.on_fatal = on_fatal
        """`on_fatal(exc)` runs once on the loop when the log fails (settable after construction)."""
        self.sequencer = Sequencer(
            tables=store.tables,
            window_ms=store.idempotency_window_ms,
            max_record=log_writer.max_record,
            sealer=store.sealer,
        )
        self.failure: BaseException | None = None
        """The log's fatal error, once it failed."""
        self.refusals = Refusals()
        """Commits refused without a fatal error (a full disk, a failing indexer): logged once per interval."""
        self.messages_logged = 0
        self.held_back: str | None = None
        """Why SENDs are refused though the log has room (the indexer finds no room: `hold_back`), or None."""
        self._sends: deque[tuple[SendRequest, Callback, float]] = deque()
        self._cursors: deque[CursorUpdate] = deque()
        self._wake = threading.Event()
        self._signal_at = _NEVER
        self._stopping = False
        self._last_start = -float(_NEVER)  # when the previous commit started (time.monotonic)
        self._thread: threading.Thread | None = None
        self._finished: asyncio.Future[None] | None = None

    @property
    def stopping(self) -> bool:
        """True once `stop()` was called: no more items are taken."""
        return self._stopping

    @property
    def queue_depth(self) -> int:
        """SENDs and cursor updates submitted and not yet in a commit."""
        return len(self._sends) + len(self._cursors)

    def submit(self, request: SendRequest, callback: Callback) -> None:
        """Queue a SEND (loop thread). `callback(result)` runs on the loop once the batch is durable (or failed)."""
        if self._stopping:
            raise RuntimeError("GroupCommitter is stopped")
        self._sends.append((request, callback, time.monotonic()))
        if len(self._sends) >= self._signal_at:
            self._wake.set()

    def submit_cursor(self, update: CursorUpdate) -> None:
        """Queue a cursor update for the next commit (loop thread); no callback."""
        if self._stopping:
            raise RuntimeError("GroupCommitter is stopped")
        self._cursors.append(update)
        if self._signal_at == 1:
            self._wake.set()

    def hold_back(self, reason: str | None) -> None:
        """Refuse SENDs for `reason` (the indexer finds no room), or take them again (None). Any thread."""
        self.held_back = reason

    def start(self) -> None:
        """Start the writer thread."""
        if self._thread is not None:
            raise RuntimeError("GroupCommitter already started")
        self._finished = self._loop.create_future()
        self._thread = threading.Thread(target=self._run, name="kefu-group-commit", daemon=True)
        self._thread.start()

    async def stop(self) -> None:
        """Refuse new items, commit and deliver every submitted one, then join the writer thread."""
        if self._thread is None:
            self.start()  # items submitted before start() are finished too
        assert self._thread is not None and self._finished is not None
        self._stopping = True
        self._wake.set()
        await self._finished
        self._thread.join()  # it has scheduled _set_finished as its last act: this returns at once

    # --- the writer thread ---------------------------------------------------------------------------------

    def _run(self) -> None:
        self._set_priority()
        try:
            while self._gather():
                sends = [self._sends.popleft() for _ in range(min(len(self._sends), self._max_batch))]
                cursors = [self._cursors.popleft() for _ in range(len(self._cursors))]
                self._commit(sends, cursors)
        except BaseException:
            log.exception("group commit writer thread failed")
            raise
        finally:
            with contextlib.suppress(RuntimeError):  # a closed loop has nobody waiting in stop()
                self._loop.call_soon_threadsafe(self._set_finished)

    def _set_priority(self) -> None:
        """Add `nice` to this thread's nice value (Linux keeps one per thread; other systems: per process, left
        alone). Why: the loop and this thread share a core at load, and with equal weights a writer whose fsync
        has finished often waited for the loop's current burst before it could hand the batch back; ahead of the
        loop it finishes the commit at once (bench/RESULTS.md, "fourth attempt")."""
        if not self._nice or not sys.platform.startswith("linux"):
            return
        tid = threading.get_native_id()
        try:
            os.setpriority(os.PRIO_PROCESS, tid, os.getpriority(os.PRIO_PROCESS, tid) + self._nice)
        except OSError as exc:
            log.warning(
                "group commit thread keeps the server's priority: nice %+d refused (%s); grant CAP_SYS_NICE or"
                " LimitNICE=, or set [delivery] commit_thread_nice = 0", self._nice, exc.strerror,
            )  # fmt: skip

    def _gather(self) -> bool:
        """Wait for a batch to be due; False when stopping with nothing left."""
        while not (self._sends or self._cursors):
            if self._stopping:
                return False
            self._sleep(1, None)
        deadline = self._last_start + self._window
        while len(self._sends) < self._max_batch and not self._stopping:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._sleep(self._max_batch, remaining)
        self._last_start = time.monotonic()
        return True

    def _sleep(self, signal_at: int, timeout: float | None) -> None:
        """Sleep until `signal_at` SENDs (or, when 1, any item) are queued, stop() is called, or `timeout`."""
        self._wake.clear()
        self._signal_at = signal_at
        queued = len(self._sends) + (len(self._cursors) if signal_at == 1 else 0)
        if queued < signal_at and not self._stopping:
            self._wake.wait(timeout)
        self._signal_at = _NEVER

    def _commit(self, sends: list[tuple[SendRequest, Callback, float]], cursors: list[CursorUpdate]) -> None:
        requests = [item[0] for item in sends]
        t0 = time.perf_counter()
        cursor_result: SendResult | None = None
        held_back = self.held_back
        refused = held_back is not None or self._overlay.size > self.max_unindexed_bytes  # the indexer is failing
        batch = None if self.failure is not None else self._logged(requests if not refused else [], cursors)
        if batch is None:
            results, cursor_result = [_UNAVAILABLE] * len(requests), _UNAVAILABLE
        else:
            results = [_UNAVAILABLE] * len(requests) if refused else batch.results
            if refused and requests:
                self.refusals.note(
                    held_back or f"{self._overlay.size} bytes wait for the indexer (max_unindexed_bytes)"
                )
            elif requests:
                self.refusals.flush()
        elapsed = time.perf_counter() - t0
        if self._observer is not None:
            try:
                self._observer(len(requests) + (0 if cursor_result else len(cursors)), elapsed)
            except Exception:
                log.exception("group commit observer failed")
        try:
            self._loop.call_soon_threadsafe(self._deliver, sends, results, cursors, cursor_result)
        except RuntimeError:  # the loop is closed: nobody is waiting for these callbacks any more
            log.warning("event loop closed; %d commit callbacks dropped", len(sends))

    def _logged(self, requests: list[SendRequest], cursors: list[CursorUpdate]) -> Sequenced | None:
        """The batch sequenced and made durable; None if it was refused (the reason logged, `refusals`) or the log
        failed (`_fail`)."""
        try:
            batch = self._sequence(requests, cursors)
        except Exception as exc:  # reading the store failed: nothing was sequenced, the next batch tries again
            self.refusals.note(f"sequencing failed: {exc!r}", exc)
            return None
        try:
            self._append(batch)
        except LogFull as exc:  # no room for the log: nothing was written, the next batch tries again
            self.refusals.note(f"the log has no room: {exc}", exc)
            return None
        except Exception as exc:  # the log's state on disk is unknown: fatal
            self._fail(exc)
            return None
        return batch

    def _sequence(self, requests: list[SendRequest], cursors: list[CursorUpdate]) -> Sequenced:
        """Sequence against one LMDB snapshot and the overlay, again if the indexer trimmed it meanwhile, and again
        without what a damaged page hid (`index.TreeDamaged`, reported: only the SENDs that need it are refused)."""
        now_ms = int(self._clock() * 1000)
        unreadable: set[Unreadable] = set()
        while True:
            generation = self._overlay.generation
            try:
                with self._store.snapshot(frozenset(unreadable)) as indexed:
                    source = SequencingSource(self._overlay, indexed)
                    batch = self.sequencer.sequence(requests, cursors, now_ms=now_ms, source=source)
            except TreeDamaged as exc:
                if exc.what in unreadable or len(unreadable) >= MAX_UNREADABLE or exc.what[0] == "meta":
                    raise  # the whole batch is refused (and tried again with the next one)
                unreadable.add(exc.what)
                continue
            if self._overlay.generation == generation:
                return batch

    def _append(self, batch: Sequenced) -> None:
        """Make the batch's records durable, then readable. Raises OSError (fatal) from the log."""
        if not batch.records:
            self.sequencer.keep(batch)
            return
        before = self.log_writer.written_bytes
        kinds = [Kind.WRITE if type(r) is Write else Kind.CURSORS for r in batch.records]
        first = self.log_writer.append(list(zip(kinds, batch.payloads, strict=True)))
        self.sequencer.keep(batch)
        records = tuple(enumerate(batch.records, first))
        size = sum(len(p) for p in batch.payloads)
        self._overlay.add(Logged(records, self.log_writer.position, size, batch.messages))
        self.messages_logged += batch.messages
        if self._written is not None:
            self._written("log", self.log_writer.written_bytes - before, batch.messages)
        if self._on_logged is not None:
            self._on_logged()

    def _fail(self, exc: BaseException) -> None:
        """The log failed: nothing more is sequenced; tell the loop once."""
        log.critical("the write-ahead log failed; refusing every SEND from now on: %r", exc, exc_info=exc)
        self.failure = exc
        if self.on_fatal is not None:
            with contextlib.suppress(RuntimeError):
                self._loop.call_soon_threadsafe(self.on_fatal, exc)

    # --- back on the loop ----------------------------------------------------------------------------------

    def _deliver(
        self,
        sends: list[tuple[SendRequest, Callback, float]],
        results: list[SendResult],
        cursors: list[CursorUpdate],
        cursor_result: SendResult | None,
    ) -> None:
        for (_, callback, _), result in zip(sends, results, strict=True):
            try:
                callback(result)
            except Exception as exc:
                self._loop.call_exception_handler({"message": "commit callback failed", "exception": exc})
        if self.on_committed is not None:
            done: list[tuple[SendRequest | CursorUpdate, SendResult | None]] = [
                (item[0], result) for item, result in zip(sends, results, strict=True)
            ]
            done.extend((update, cursor_result) for update in cursors)
            self.on_committed(done)

    def close(self) -> None:
        """Close the log's file (after `stop`)."""
        self.log_writer.close()

    def _set_finished(self) -> None:
        if self._finished is not None and not self._finished.done():
            self._finished.set_result(None)


class Refusals:
    """Refused commits, logged once per `interval_s` with their count: the first refusal with its traceback, then one
    line per interval ("N commits refused in the last 10 s: <reason>"), and a line when commits succeed again.
    Writer thread only."""

    def __init__(self, interval_s: float = REFUSALS_INTERVAL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.interval_s, self._clock = interval_s, clock
        self.total = 0
        """Commits refused since the start."""
        self._count = 0  # refused since the last line
        self._since = 0.0  # when the current interval started
        self._reason = ""
        self._first = True

    def note(self, reason: str, exc: BaseException | None = None) -> None:
        """One commit refused, for `reason` (`exc`: its error, whose traceback the first refusal logs)."""
        now = self._clock()
        self.total += 1
        if self._first:
            self._first, self._since = False, now
            log.error("commit refused (logged once per %g s from now on): %s", self.interval_s, reason, exc_info=exc)
            return
        if not self._count:
            self._since = max(self._since, now - self.interval_s)
        self._count, self._reason = self._count + 1, reason
        if now - self._since >= self.interval_s:
            self._log(now)

    def flush(self) -> None:
        """A commit succeeded: say how many were refused since the last line, and that commits succeed again."""
        if self._first or not (self._count or self.total):
            return
        if self._count:
            self._log(self._clock())
        log.warning("commits succeed again (%d refused in all)", self.total)
        self.total, self._first = 0, True

    def _log(self, now: float) -> None:
        log.error("%d commits refused in the last %.0f s: %s", self._count, now - self._since, self._reason)
        self._count, self._since = 0, now
