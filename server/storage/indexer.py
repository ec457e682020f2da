"""Indexing behind the log: the LMDB tables brought up to date from durable records, in large batches.

Theory of operation
-------------------
The group commit makes a SEND durable in the log (one sequential append and fdatasync); the tables a read needs are
written here later, by the indexer's own process (`index_worker`), many group commits at once: every `interval_s`, or
as soon as `batch_bytes` of records wait. Each batch is one durable LMDB transaction (`Store.apply`) that also stores
the log position after its last record; only then are its records trimmed from the overlay and the segments before
that position recycled.
Why behind and in bulk: a transaction's cost is its B-tree pages, nearly one per message per randomly keyed table when
it holds a handful of messages (every 2 ms), and one per conversation or key-page when it holds seconds of them
(bench/RESULTS.md, "write-ahead log").

A failed batch (the map at max_map_size, a disk error) leaves the overlay as it was; the indexer tries again every
`RETRY_S` and logs the failures once per `FAILURES_INTERVAL_S` with their count (the first at once). The overlay then
grows, and past `[storage] max_unindexed_mb` the group commit refuses new SENDs with STORAGE_UNAVAILABLE
(`GroupCommitter`), until a batch succeeds again (retention freed pages, the operator raised the map's cap). A batch
that failed for want of room (a full disk, the map at its cap) makes the group commit refuse SENDs at once
(`GroupCommitter.hold_back`) until one succeeds. A batch that failed on a damaged page (`index.TreeDamaged`) is damage:
reported as such (the table, counted), and its lines tell the operator to run `kefu verify` and restore a backup;
it is tried again all the same (the overlay keeps every record, nothing is lost meanwhile), and SENDs are refused once
max_unindexed_mb waits. Damage the indexer process finds in the values it rewrites is counted in this process's
metric from the counts its answers carry.

`replay` is the same work at start-up, before anything is served: every valid record after the stored position is
indexed, so the desk and the engine start from a complete store, and the overlay starts empty. When the store has no
room for them (a full disk, the map at its cap), the records not indexed go into the overlay instead
(`replay_into_overlay`, `conversations.open_conversations`): the server starts as a running one whose indexer lags,
serves them from memory and refuses SENDs until the indexer gets them into the store.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import json
import logging
import socket
import struct
import subprocess
import sys
import threading
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final, Protocol

from ..engine.messages import decode_message
from .logfile import SegmentFiles, read_log
from .overlay import Logged, Overlay
from .records import REPLACED, Cursors, Write, decode_record
from .schema import LogPosition, message_key
from .sealing import Damaged
from .store import StorageDamaged, Store
from .values import placeholder
from .verify_report import death_hint

__all__ = [
    "FRAME",
    "Child",
    "IndexerProcess",
    "Spawn",
    "decode_messages",
    "frame",
    "replay",
    "replay_into_overlay",
    "subprocess_spawn",
]


class Child(Protocol):
    """A started process as `subprocess.Popen` shows it (the part used here)."""

    @property
    def pid(self) -> int: ...

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def kill(self) -> None: ...


Spawn = Callable[[Sequence[str], Sequence[int]], Child]
"""Start ``python -m MODULE ARGS`` (the argv) with these descriptors inherited at their numbers; the process (the
runtime's `kefu.server.runtime.zygote.Spawner`, or `subprocess_spawn`)."""


def subprocess_spawn(argv: Sequence[str], fds: Sequence[int]) -> Child:
    """A `Spawn` that starts a new interpreter (what the indexer uses when it is given none)."""
    return subprocess.Popen(argv, pass_fds=fds, stdin=subprocess.DEVNULL)  # noqa: S603


log = logging.getLogger(__name__)

FAILURES_INTERVAL_S: Final = 10.0
"""Failed batches are logged once per this interval, with their count (one is tried every RETRY_S)."""
RETRY_S: Final = 1.0
"""Pause after a failed batch: long enough not to spin on a full map, short enough to catch up soon after."""
OVERLAY_CHUNK: Final = 256
"""Records per overlay batch when a replay goes into the overlay: the overlay is trimmed a whole batch at a time, so
small ones free memory as the indexer catches up."""
REPLAY_CHUNK_BYTES: Final = 64 << 20
"""Record payloads indexed per transaction at start-up (bounds the memory of a long replay)."""

STOP_TIMEOUT_S: Final = 60.0
"""How long `IndexerProcess.stop` waits for the worker to index what is left (the rest is replayed at next start)."""
FRAME: Final = struct.Struct("!I")

Written = Callable[[str, int, int], None]


def frame(payload: bytes) -> bytes:
    """One message on the indexer process's socket."""
    return FRAME.pack(len(payload)) + payload


def decode_messages(buf: bytearray) -> list[bytes]:
    """Split the complete messages off the front of `buf`."""
    out = []
    while len(buf) >= FRAME.size:
        (length,) = FRAME.unpack_from(buf)
        if len(buf) < FRAME.size + length:
            break
        out.append(bytes(buf[FRAME.size : FRAME.size + length]))
        del buf[: FRAME.size + length]
    return out


"""`written(part, nbytes, messages)`: bytes made durable by a part of the store ("log" or "index") for messages."""


def thread_write_bytes() -> int | None:
    """Bytes this thread has passed to write calls so far (``wchar`` of Linux's /proc/thread-self/io), or None.

    LMDB writes a transaction's dirty pages and its meta page with pwrite, whole pages, so this is what a batch
    makes the disk write. ``write_bytes`` in the same file would count the page-cache folios the writes dirty, and
    on kernels with large folios a one-page write into a file written in large chunks counts as a whole folio (up to
    a MiB), many times what the disk then writes."""
    try:
        with open("/proc/thread-self/io", "rb") as f:
            for line in f:
                if line.startswith(b"wchar:"):
                    return int(line.split()[1])
    except OSError:
        return None
    return None


def replay(store: Store, directory: Path) -> tuple[LogPosition, int]:
    """Index every valid record after the store's position; returns (the position after the last, records)."""
    _, position = store.log_state()
    pending: list[Write | Cursors] = []
    size = count = 0
    for kind, payload, end in read_log(directory, position):
        pending.append(decode_record(kind, payload))
        size += len(payload)
        count += 1
        position = end
        if size >= REPLAY_CHUNK_BYTES:
            store.apply(pending, position)
            pending, size = [], 0
    if pending:
        store.apply(pending, position)
    return position, count


def replay_into_overlay(store: Store, directory: Path, overlay: Overlay) -> tuple[LogPosition, int]:
    """Put every valid record after the store's position into `overlay`, as the group commit would have (a start
    whose store has no room for them); returns (the position after the last, the next server_msg_id they leave)."""
    _, position = store.log_state()
    chunk: list[tuple[int, Write | Cursors]] = []
    size = messages = next_id = 0
    for kind, payload, end in read_log(directory, position):
        record = decode_record(kind, payload)
        if type(record) is Write:
            _in_clear(store, overlay, record)
            if record.message is not None:
                next_id, messages = max(next_id, record.server_msg_id + 1), messages + 1
        chunk.append((end.lsn - 1, record))
        size, position = size + len(payload), end
        if len(chunk) >= OVERLAY_CHUNK:
            overlay.add(Logged(tuple(chunk), position, size, messages))
            chunk, size, messages = [], 0, 0
    if chunk:
        overlay.add(Logged(tuple(chunk), position, size, messages))
    return position, next_id


def _in_clear(store: Store, overlay: Overlay, w: Write) -> None:
    """Give a logged Write what the overlay serves: its message and puts opened, the members a replacement ends."""
    values = store.values
    if w.message_raw:
        key = message_key(w.conversation_id, w.last_seq)
        try:
            w.message = decode_message(values.open("messages", key, w.message_raw))
        except Exception:  # reported (Damaged) or not a message: the sender's index fields with a damage EVENT
            stand_in = placeholder(w.conversation_id, w.last_seq)
            stand_in.server_msg_id, stand_in.timestamp_ms = w.server_msg_id, w.timestamp_ms
            stand_in.sender, stand_in.client_msg_id = w.sender, w.client_msg_id
            w.message = stand_in
    clear = []
    for table, key, value in w.puts:
        try:
            clear.append((table, key, None if value is None else values.open(table, key, value)))
        except Damaged:  # reported: the overlay leaves it to the store
            continue
    w.clear_puts = tuple(clear)
    if w.membership == REPLACED:
        held = overlay.conversation(w.conversation_id)
        try:
            members = held[1] if held is not None and held[1] is not None else store.members(w.conversation_id)
        except StorageDamaged:  # reported: indexing reads the members it replaces again, and reports them there
            members = ()
        w.previous = members or ()


class IndexerProcess:
    """The indexer in a process of its own (`kefu.server.storage.index_worker`), seen from the serving process.

    The writer thread tells it how far the log is durable after every append (`notify`); its answers arrive on the
    event loop, where the indexed batches are trimmed from the overlay and old segments recycled, both on one
    maintenance thread (in chunks, so that the loop keeps the interpreter lock). Its face: `position`, `failure`,
    `written_bytes`, `messages_indexed`, `start`, `notify`, `stop`."""

    def __init__(
        self,
        store: Store,
        overlay: Overlay,
        files: SegmentFiles,
        current_segment: Callable[[], int],
        loop: asyncio.AbstractEventLoop,
        *,
        interval_s: float,
        batch_bytes: int,
        position: LogPosition,
        written: Written | None = None,
        data_dir: Path | None = None,
        spawn: Spawn | None = None,
    ) -> None:
        """`data_dir`: where the worker finds the data keys of a sealed store (default: the store's parent, as in
        data_dir/store); `spawn`: how the worker process is started (default: a subprocess)."""
        self._spawn = spawn if spawn is not None else subprocess_spawn
        self._store, self._overlay, self._files = store, overlay, files
        self._data_dir = data_dir if data_dir is not None else store.path.parent
        self._current_segment, self._loop = current_segment, loop
        self.interval_s, self.batch_bytes = interval_s, batch_bytes
        self.position = position
        """The log position indexed up to."""
        self._written = written
        self.written_bytes = 0
        self.messages_indexed = 0
        self.failure: str | None = None
        """The last batch's error, None once one succeeds."""
        self.on_room: Callable[[str | None], None] | None = None
        """Called (on the loop) with the reason when a batch fails for want of room, and with None when a batch
        succeeds after that (`GroupCommitter.hold_back`)."""
        self._failed = 0  # batches failed since the last success
        self._failed_logged = (0.0, 0)  # (when the last line about failures was logged, its count)
        self._held_back = False
        self._proc: Child | None = None
        self._sock: socket.socket | None = None
        self._send_lock = threading.Lock()
        self._buf = bytearray()
        self._maintenance = concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="kefu-log-maintenance")
        self._stopped: asyncio.Future[LogPosition] | None = None
        self._stopping = False
        self._closing = False

    def start(self) -> None:
        """Start the worker process (its store is this one's, on disk), and recycle what replay indexed."""
        mine, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        store = self._store
        argv = [
            sys.executable, "-m", "kefu.server.storage.index_worker", "--store", str(store.path),
            "--fd", str(theirs.fileno()), "--tables", ",".join(sorted(store.tables)),
            "--map-size", str(store.env.info()["map_size"]), "--max-map-size", str(store.max_map_size),
            "--idempotency-window-s", str(store.idempotency_window_ms // 1000), "--interval-s", str(self.interval_s),
            "--batch-bytes", str(self.batch_bytes), "--log-dir", str(self._files.directory),
            "--data-dir", str(self._data_dir), *(["--sealed"] if store.sealer is not None else []),
        ]  # fmt: skip
        self._proc = self._spawn(argv, [theirs.fileno()])
        theirs.close()
        mine.setblocking(False)
        self._sock = mine
        self._loop.add_reader(mine.fileno(), self._readable)
        self._maintenance.submit(self._maintain)
        self.notify()  # what the overlay holds already (a start whose replay went into it)

    def notify(self) -> None:
        """A group commit is durable and in the overlay (writer thread): tell the worker how far it may index."""
        end = self._overlay.newest_end()
        if end is not None:
            self._post(b"D" + end.encode())

    def _post(self, payload: bytes) -> None:
        sock = self._sock
        if sock is None:
            return
        with self._send_lock, contextlib.suppress(BlockingIOError, OSError):
            sock.send(frame(payload))  # a full socket drops this one: a later position says more

    def _readable(self) -> None:
        sock = self._sock
        if sock is None:
            return
        try:
            data = sock.recv(1 << 16)
        except BlockingIOError:
            return
        except OSError:
            data = b""
        if not data:
            self._lost()
            return
        self._buf += data
        for raw in decode_messages(self._buf):
            self._answer(json.loads(raw))

    def _answer(self, message: dict[str, Any]) -> None:
        if "damaged" in message:  # logged and marked by the worker: counted here, where the metric is
            self._store.damage.add_counts({str(t): int(n) for t, n in message["damaged"].items()})
        if "indexed" in message:
            position = LogPosition.decode(bytes.fromhex(message["indexed"]))
            self._succeeded()
            self.written_bytes += int(message.get("bytes", 0))
            self.messages_indexed += int(message.get("messages", 0))
            if self._written is not None:
                self._written("index", int(message.get("bytes", 0)), int(message.get("messages", 0)))
            self.position = position
            self._maintenance.submit(self._trim_and_maintain, position)
        elif "error" in message:
            self._failed_batch(message)
        elif "stopped" in message and self._stopped is not None and not self._stopped.done():
            self._stopped.set_result(LogPosition.decode(bytes.fromhex(message["stopped"])))

    def hold_back(self, reason: str) -> None:
        """SENDs are refused for `reason` (a start whose store had no room for the log's tail) until a batch is
        indexed."""
        self._held_back = True
        if self.on_room is not None:
            self.on_room(reason)

    def _failed_batch(self, message: dict[str, Any]) -> None:
        """A batch failed: log it (once per FAILURES_INTERVAL_S, with the count), hold SENDs back if it found no
        room."""
        error = str(message["error"])
        self.failure, self._failed = error, self._failed + 1
        if message.get("full") and not self._held_back and self.on_room is not None:
            self._held_back = True
            self.on_room(f"the indexer finds no room for the log's records: {error}")
        hint = ""
        if message.get("damage"):
            hint = (f" -- the store is damaged (table {message['damage']}): run kefu verify, then restore a backup"
                    " (kefu restore); SENDs are refused once [storage] max_unindexed_mb waits")  # fmt: skip
        now = self._loop.time()
        logged, count = self._failed_logged
        if self._failed == 1:
            log.error("indexing failed; retrying every %.0f s: %s%s", RETRY_S, error, hint)
            self._failed_logged = (now, 1)
        elif now - logged >= FAILURES_INTERVAL_S:
            log.error("indexing failed %d times in the last %.0f s: %s%s", self._failed - count, now - logged, error,
                      hint)  # fmt: skip
            self._failed_logged = (now, self._failed)

    def _succeeded(self) -> None:
        if self._failed:
            log.warning("indexing succeeds again (%d batches failed)", self._failed)
        self.failure, self._failed = None, 0
        if self._held_back:
            self._held_back = False
            if self.on_room is not None:
                self.on_room(None)

    def _trim_and_maintain(self, position: LogPosition) -> None:
        batches = self._overlay.indexed_by(position)
        if batches:
            self._overlay.trim(batches)
        self._maintain()

    def _maintain(self) -> None:
        try:
            self._files.maintain(self.position, self._current_segment())
        except OSError as exc:  # no spare segment made: the writer makes one when it needs it (or fails then)
            log.warning("log segments not recycled or preallocated: %s", exc)

    def _lost(self) -> None:
        """The worker died (or closed its end): start another, unless stopping."""
        if self._sock is not None:
            self._loop.remove_reader(self._sock.fileno())
            self._sock.close()
            self._sock = None
        if self._stopping:
            if self._stopped is not None and not self._stopped.done():
                self._stopped.set_result(self.position)
            return
        if self._proc is not None:
            code = self._proc.wait()
            self._proc = None
            log.error("the indexer process exited (status %s); starting another", code)
            if (hint := death_hint(code)) is not None:  # how LMDB ends a process that reads a damaged page
                log.error("the indexer process %s", hint)
            self._loop.call_later(RETRY_S, self._restart)

    def _restart(self) -> None:
        if not self._stopping and self._proc is None:
            self.start()
            self.notify()

    async def stop_async(self, *, index_rest: bool = True) -> None:
        """Have the worker index what is durable (`index_rest`) and exit; then stop the maintenance thread."""
        self._closing = True
        await self._stop_worker(index_rest=index_rest)
        await self._loop.run_in_executor(None, self._maintenance.shutdown)

    async def restart_async(self) -> None:
        """Have the worker index what is durable and exit, then start another, which loads the data keys again (a
        rotation: `kefu.server.runtime.datakeys`). Nothing waits meanwhile: the overlay serves what is not indexed."""
        if self._stopping or self._closing or self._proc is None:
            return
        await self._stop_worker(index_rest=True)
        if not self._closing:
            self._stopping = False
            self.start()
            self.notify()

    async def _stop_worker(self, *, index_rest: bool) -> None:
        self._stopping = True
        proc, self._proc = self._proc, None
        if proc is not None:
            if index_rest and self._sock is not None:
                end = self._overlay.newest_end() or self.position
                self._stopped = self._loop.create_future()
                self._post(b"S" + end.encode())
                with contextlib.suppress(TimeoutError):
                    position = await asyncio.wait_for(self._stopped, STOP_TIMEOUT_S)
                    self._maintenance.submit(self._trim_and_maintain, position)
            else:
                proc.kill()
            if self._sock is not None:
                self._loop.remove_reader(self._sock.fileno())
                self._sock.close()
                self._sock = None
            with contextlib.suppress(subprocess.TimeoutExpired):
                await self._loop.run_in_executor(None, proc.wait, STOP_TIMEOUT_S)
            if proc.poll() is None:
                proc.kill()
                proc.wait()

    def stop(self, *, index_rest: bool = True) -> None:
        """Blocking form of `stop_async` for a thread other than the loop's (tests)."""
        asyncio.run_coroutine_threadsafe(self.stop_async(index_rest=index_rest), self._loop).result()

    @property
    def pid(self) -> int | None:
        """The worker process's id (while it runs)."""
        return self._proc.pid if self._proc is not None else None
