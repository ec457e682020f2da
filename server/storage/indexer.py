"""Indexing behind the log: the LMDB tables brought up to date from durable records, in large batches.

Theory of operation
-------------------
The group commit makes a SEND durable in the log (one sequential append and fdatasync); the tables a read needs are
written here later, by one thread, many group commits at once: every `interval_s`, or as soon as `batch_bytes` of
records wait. Each batch is one durable LMDB transaction (`Store.apply`) that also stores the log position after its
last record; only then are its records trimmed from the overlay and the segments before that position recycled.
Why behind and in bulk: a transaction's cost is its B-tree pages, nearly one per message per randomly keyed table when
it holds a handful of messages (every 2 ms), and one per conversation or key-page when it holds seconds of them
(bench/RESULTS.md, "write-ahead log").

A failed batch (the map at max_map_size, a disk error) leaves the overlay as it was; the indexer logs it and tries
again every `RETRY_S`. The overlay then grows, and past `[storage] max_unindexed_mb` the group commit refuses new
SENDs with STORAGE_UNAVAILABLE (`GroupCommitter`), until a batch succeeds again (retention freed pages, the operator
raised the map's cap).

`replay` is the same work at start-up, before anything is served: every valid record after the stored position is
indexed, so the desk and the engine start from a complete store, and the overlay starts empty.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Final

from .logfile import SegmentFiles, read_log
from .overlay import Logged, Overlay
from .records import Cursors, Write, decode_record
from .schema import LogPosition
from .store import Store

__all__ = ["Indexer", "replay"]

log = logging.getLogger(__name__)

RETRY_S: Final = 1.0
"""Pause after a failed batch: long enough not to spin on a full map, short enough to catch up soon after."""
REPLAY_CHUNK_BYTES: Final = 64 << 20
"""Record payloads indexed per transaction at start-up (bounds the memory of a long replay)."""

Written = Callable[[str, int, int], None]
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


class Indexer:
    """The thread that indexes the overlay's batches into the store."""

    def __init__(
        self,
        store: Store,
        overlay: Overlay,
        files: SegmentFiles,
        current_segment: Callable[[], int],
        *,
        interval_s: float,
        batch_bytes: int,
        position: LogPosition,
        written: Written | None = None,
    ) -> None:
        self._store, self._overlay, self._files = store, overlay, files
        self._current_segment = current_segment
        self.interval_s, self.batch_bytes = interval_s, batch_bytes
        self.position = position
        """The log position indexed up to."""
        self._written = written
        self.written_bytes = 0
        """Bytes the indexer's LMDB transactions wrote (this thread's wchar around them)."""
        self.messages_indexed = 0
        self.failure: BaseException | None = None
        """The last batch's error, None once one succeeds."""
        self._wake = threading.Event()
        self._stopping = False
        self._index_rest = True
        self._thread: threading.Thread | None = None

    def start(self) -> None:
        """Start the thread (first, it recycles what start-up replay indexed)."""
        self._thread = threading.Thread(target=self._run, name="kefu-indexer", daemon=True)
        self._thread.start()

    def notify(self) -> None:
        """A group commit was added to the overlay (writer thread): wake up if a batch is due by size."""
        if self._overlay.size >= self.batch_bytes:
            self._wake.set()

    def stop(self, *, index_rest: bool = True) -> None:
        """Index what is left (`index_rest`; what fails stays in the log for the next start), then join. Blocks."""
        self._index_rest = index_rest
        self._stopping = True
        self._wake.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        self._maintain()
        due = time.monotonic() + self.interval_s
        while True:
            stopping = self._stopping
            if stopping and not self._index_rest:
                return
            if not stopping and self._overlay.size < self.batch_bytes:
                remaining = due - time.monotonic()
                if remaining > 0 or not len(self._overlay):
                    self._wake.wait(remaining if remaining > 0 else self.interval_s)
                    self._wake.clear()
                    continue
            ok = self.index_once()
            due = time.monotonic() + (self.interval_s if ok else RETRY_S)
            if stopping:
                while ok and len(self._overlay):
                    ok = self.index_once()
                return
            if ok:
                self._maintain()

    def index_once(self) -> bool:
        """Index up to `batch_bytes` of the oldest held records in one transaction; False if it failed."""
        batches = self._overlay.unindexed(self.batch_bytes)
        if not batches:
            return True
        before = thread_write_bytes()
        try:
            stored = self._store.apply(_records(batches), batches[-1].end)
        except Exception as exc:
            if self.failure is None:
                log.exception("indexing %d group commits failed; retrying every %.0f s", len(batches), RETRY_S)
            self.failure = exc
            return False
        after = thread_write_bytes()
        written = after - before if before is not None and after is not None else 0
        self.failure = None
        self.written_bytes += written
        self.messages_indexed += stored
        self._overlay.trim(batches)
        self.position = batches[-1].end
        if self._written is not None:
            self._written("index", written, stored)
        return True

    def _maintain(self) -> None:
        try:
            self._files.maintain(self.position, self._current_segment())
        except OSError as exc:  # no spare segment made: the writer makes one when it needs it (or fails then)
            log.warning("log segments not recycled or preallocated: %s", exc)


def _records(batches: list[Logged]) -> list[Write | Cursors]:
    return [record for batch in batches for _, record in batch.records]
