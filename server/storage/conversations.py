"""The engine's `MessageLog`: sequenced, durable conversations over a write-ahead log and an indexed store.

Theory of operation: SENDs go to the group committer (`committer.GroupCommitter`), whose writer thread sequences each
batch in memory, appends its records to the log (`logfile`) and fdatasyncs once; a result reaches the engine only then.
The indexer (`indexer.IndexerProcess`, a process of its own) writes the records into the LMDB tables behind, in larger
batches. Reads merge the tables with the overlay of records logged and not yet indexed (`view.View`), and so see exactly
what is durable. Cursor advances go into the log with the next group commit (`cursors.PendingCursors`).

`open_conversations` puts the parts together: it replays the log's tail into the store first, so everything built
after it (the desk, the engine) starts from a complete store. When the store has no room for the tail (a full disk,
the map at max_map_size), the tail goes into the overlay instead (`indexer.replay_into_overlay`): reads serve it from
memory, SENDs are refused with STORAGE_UNAVAILABLE until the indexer has written it into the store (it tries every
`indexer.RETRY_S`), and the server starts and serves (issue #14 point 6) instead of refusing to start.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..engine.messages import SendRequest, StoredMessage
from ..engine.ports import Done, LogClosed
from .committer import GroupCommitter
from .cursors import PendingCursors
from .indexer import IndexerProcess, Spawn, Written, replay, replay_into_overlay
from .logfile import LogWriter, SegmentFiles
from .overlay import Overlay
from .schema import LOG_DIR, LogPosition
from .store import Store, no_room
from .view import View

__all__ = ["LOG_DIR", "Conversations", "LogSettings", "open_conversations"]

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class LogSettings:
    """How the write path is shaped ([delivery] and [storage] settings, see kefu.server.config)."""

    window_s: float = 0.002
    max_batch: int = 4096
    nice: int = 0
    cursor_delay_s: float = 0.0
    segment_bytes: int = 16 << 20
    index_interval_s: float = 2.0
    index_batch_bytes: int = 16 << 20
    max_unindexed_bytes: int = 256 << 20


def open_conversations(
    store: Store,
    loop: asyncio.AbstractEventLoop,
    settings: LogSettings = LogSettings(),
    *,
    observer: Callable[[int, float], None] | None = None,
    written: Written | None = None,
    on_fatal: Callable[[BaseException], None] | None = None,
    data_dir: Path | None = None,
    spawn: Spawn | None = None,
) -> Conversations:
    """Replay the log's tail into `store`, then build the log over it (not started).

    `observer(writes, seconds)` runs per group commit, `written(part, nbytes, messages)` per log append ("log") and
    per indexed batch ("index"), both on their threads; `on_fatal(exc)` on the loop when the log fails. `data_dir`:
    where the indexer process finds the data keys of a sealed store (default: the store's parent); `spawn`: how the
    indexer process starts (default: a subprocess)."""
    files = SegmentFiles(store.path / LOG_DIR, settings.segment_bytes)
    overlay = Overlay()
    end, next_id, no_room_reason = _replay(store, files, overlay)
    writer = LogWriter(files, end)
    indexer = IndexerProcess(
        store, overlay, files, lambda: writer.segment, loop, interval_s=settings.index_interval_s,
        batch_bytes=settings.index_batch_bytes, position=end, written=written, data_dir=data_dir, spawn=spawn,
    )  # fmt: skip
    committer = GroupCommitter(
        store, writer, overlay, loop, window_s=settings.window_s, max_batch=settings.max_batch, nice=settings.nice,
        max_unindexed_bytes=settings.max_unindexed_bytes, on_logged=indexer.notify, observer=observer,
        written=written,
    )  # fmt: skip
    indexer.on_room = committer.hold_back
    if no_room_reason is not None:
        with store.snapshot() as indexed:
            committer.sequencer.next_id = max(next_id, indexed.next_server_msg_id())
        indexer.hold_back(no_room_reason)
    return Conversations(View(store, overlay), committer, indexer, loop, cursor_delay_s=settings.cursor_delay_s,
                         on_fatal=on_fatal)  # fmt: skip


def _replay(store: Store, files: SegmentFiles, overlay: Overlay) -> tuple[LogPosition, int, str | None]:
    """Replay the log's tail into the store, or, when it has no room, into `overlay`: (the position after the tail,
    the next server_msg_id the overlay's records leave (0: none), why SENDs wait (None: the store took the tail))."""
    try:
        end, _ = replay(store, files.directory)
    except Exception as exc:
        if not no_room(exc, store.path):
            raise
        end, next_id = replay_into_overlay(store, files.directory, overlay)
        reason = f"the store has no room for the log's tail ({exc})"
        log.error(
            "%s: %d bytes of records held in memory and served from there; SENDs are refused until the indexer has "
            "written them (retried every second): free space under the data directory", reason, overlay.size,
        )  # fmt: skip
        return end, next_id, reason
    return end, 0, None


CURSOR_CACHE = 1 << 18
"""(user, conversation) cursors kept in memory: one per active device stream of a busy host, about 40 MiB at most."""


class Conversations:
    """Sequenced, durable conversations (the engine's `MessageLog`). Runs on the event loop."""

    def __init__(
        self,
        view: View,
        committer: GroupCommitter,
        indexer: IndexerProcess,
        loop: asyncio.AbstractEventLoop,
        *,
        cursor_delay_s: float = 0.0,
        on_fatal: Callable[[BaseException], None] | None = None,
    ) -> None:
        self.view, self.store = view, view.store
        self.committer, self.indexer = committer, indexer
        self._loop = loop
        self._on_fatal = on_fatal
        committer.on_fatal = self._fatal
        self.cursors = PendingCursors(view, committer, cursor_delay_s, loop.time)
        committer.on_committed = self.cursors.committed
        self._saver: asyncio.TimerHandle | None = None
        self._known: dict[tuple[str, int], int] = {}
        """Cursors read lately, kept up to date by every advance (they all come through here): the engine reads a
        member's cursor for every message it publishes, and a store read is a transaction (CURSOR_CACHE)."""

    def start(self) -> None:
        """Start the indexer and the writer thread."""
        self.indexer.start()
        self.committer.start()

    async def close(self) -> None:
        """Log every pending cursor, finish every write submitted (no more are taken), index what is left, stop the
        threads."""
        if self._saver is not None:
            self._saver.cancel()
            self._saver = None
        if self.committer.failure is None:
            self.cursors.save_due(everything=True)
        await self.committer.stop()
        await self.indexer.stop_async()
        self.committer.close()

    def _fatal(self, exc: BaseException) -> None:
        if self._on_fatal is not None:
            self._on_fatal(exc)

    # --- writes --------------------------------------------------------------------------------------------

    def submit(self, request: SendRequest, done: Done) -> None:
        """Sequence and log `request`; `done(result)` runs on the loop once it is durable (or refused)."""
        try:
            self.committer.submit(request, done)
        except RuntimeError:  # stopped: the server is draining
            raise LogClosed from None

    def advance_cursor(self, user: str, conversation_id: int, seq: int) -> None:
        """`user` has everything up to `seq`: readable now, logged with the next group commit (or within the
        configured delay)."""
        self.cursors.advance(user, conversation_id, seq)
        key = (user, conversation_id)
        if seq > self._known.get(key, seq):
            self._known[key] = seq
        if self._saver is None and not self.committer.stopping and self.committer.failure is None:
            self._saver = self._loop.call_later(self.cursors.delay_s, self._save_due)

    def _save_due(self) -> None:
        self._saver = None
        if self.committer.stopping or self.committer.failure is not None:
            return
        self.cursors.save_due()
        if self.cursors.unsaved:
            self._saver = self._loop.call_later(self.cursors.delay_s, self._save_due)

    def reconfigure(self, config: Any) -> None:
        """SIGHUP: a new cursor delay."""
        self.cursors.delay_s = config.delivery.cursor_save_delay_ms / 1000

    # --- reads ---------------------------------------------------------------------------------------------

    def cursor(self, user: str, conversation_id: int) -> int:
        """The user's cursor: the durable one, or a later advance not yet logged."""
        key = (user, conversation_id)
        seq = self._known.get(key)
        if seq is None:
            seq = self.cursors.read(user, conversation_id)
            known = self._known
            if len(known) >= CURSOR_CACHE:
                for old in list(itertools.islice(known, CURSOR_CACHE // 4)):  # the oldest quarter
                    del known[old]
            known[key] = seq
        return seq

    def pending(self, user: str) -> list[tuple[int, int, int]]:
        """(conversation_id, cursor, last_seq) of each conversation of `user` with unacknowledged messages."""
        return self.cursors.pending(user)

    def read_range(self, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> list[StoredMessage]:
        """Messages with after_seq < seq <= until_seq (0: the latest), at most `limit`, in seq order."""
        return self.view.read_range(conversation_id, after_seq, until_seq, limit)

    def last_seq(self, conversation_id: int) -> int:
        """The conversation's last durable seq."""
        return self.view.last_seq(conversation_id)

    def members(self, conversation_id: int) -> tuple[str, ...] | None:
        """The conversation's members; None if it does not exist."""
        return self.view.members(conversation_id)

    def get_record(self, table: str, key: bytes) -> bytes | None:
        """One record of a registered table."""
        return self.view.get_record(table, key)

    def scan(self, table: str, prefix: bytes = b"", *, limit: int = 1 << 62) -> list[tuple[bytes, bytes]]:
        """Records of a registered table by key prefix, in key order."""
        return self.view.scan(table, prefix, limit=limit)

    def last_key(self, table: str) -> bytes | None:
        """The greatest key of a registered table, or None if it is empty."""
        return self.view.last_key(table)

    @property
    def queue_depth(self) -> int:
        """Writes submitted and not yet durable."""
        return self.committer.queue_depth

    def counters(self) -> dict[str, int]:
        """What the write path wrote: log_written_bytes (page-granular appends), log_prealloc_bytes (zero-filled new
        segments), index_written_bytes (the indexer's LMDB transactions), messages_logged, messages_indexed,
        unindexed_bytes (the overlay)."""
        writer = self.committer.log_writer
        return {
            "log_written_bytes": writer.written_bytes,
            "log_prealloc_bytes": writer.files.prealloc_bytes,
            "index_written_bytes": self.indexer.written_bytes,
            "messages_logged": self.committer.messages_logged,
            "messages_indexed": self.indexer.messages_indexed,
            "unindexed_bytes": self.view.overlay.size,
        }
