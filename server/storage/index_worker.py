"""`python -m kefu.server.storage.index_worker`: the indexer's own process (started by `indexer.IndexerProcess`).

It writes the log's durable records into the LMDB tables behind the group commit, in large batches, as the indexer
thread did, but in a process of its own: a batch is seconds of records turned into B-tree writes by Python, and in the
serving process that held the interpreter lock for tens of milliseconds at a time (the event loop stalled, and the
delivery latency's tail with it). The serving process tells it, over a socketpair, how far the log is durable; it
reads the records from the segment files (the page cache has them), applies them up to there, and answers with the
position it indexed to, what its transaction wrote and how many messages it stored.

Messages on the socket, each ``length u32 | payload``:

- parent to worker: ``D`` + position (the log is durable up to there), ``S`` + position (index everything up to
  there, say so, and exit);
- worker to parent: a JSON object ``{"indexed": position hex, "bytes": n, "messages": m}``, or ``{"error": text}``
  for a batch that failed (retried RETRY_S later; with ``"full": true`` for want of room, ``"damage": table`` for a
  damaged page), or ``{"stopped": position hex}``; any of them with ``"damaged": {table: n}``, the values this
  process found damaged since its last answer (it logs and marks them; the parent counts them in its metric).

When the socket closes (the parent died), it indexes what it was told is durable and exits.

Sealed stores (spec section 12): the messages and puts arrive sealed in the log and are copied as they are; the
conversation records, cursors and idempotency entries built here are sealed here, so this process builds its own
`Sealer` from the data keys in ``--data-dir``/keys (`--sealed`): the keys never pass on a command line.
"""

from __future__ import annotations

import argparse
import json
import select
import socket
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .index import TreeDamaged
from .indexer import RETRY_S, decode_messages, frame, thread_write_bytes
from .logfile import read_log
from .records import Cursors, Write, decode_record
from .schema import LogPosition
from .sealing import Sealer
from .store import Store, no_room

__all__ = ["Worker", "main"]


class Worker:
    """The indexing loop of the child process."""

    def __init__(self, store: Store, directory: Path, sock: socket.socket, *, interval_s: float, batch_bytes: int):
        self.store, self.directory, self.sock = store, directory, sock
        self.interval_s, self.batch_bytes = interval_s, batch_bytes
        _, self.indexed = store.log_state()
        self.durable = self.indexed
        self._buf = bytearray()
        self._stop_at: LogPosition | None = None
        self._parent_gone = False
        self._counted: dict[str, int] = {}  # damage counts already sent

    def run(self) -> None:
        """Index until told to stop (or orphaned)."""
        due = time.monotonic() + self.interval_s
        while True:
            self._receive(max(0.0, due - time.monotonic()))
            finishing = self._stop_at is not None or self._parent_gone
            if self._stop_at is not None:
                self.durable = max(self.durable, self._stop_at, key=lambda p: p.lsn)
            if finishing or time.monotonic() >= due or self._pending_bytes() >= self.batch_bytes:
                ok = self._index()
                due = time.monotonic() + (self.interval_s if ok else RETRY_S)
                if finishing:
                    if self._stop_at is not None:
                        self._send({"stopped": self.indexed.encode().hex()})
                    return

    def _pending_bytes(self) -> int:
        """About how much of the log waits (segment-wise distance), to index early when much is waiting."""
        d, i = self.durable, self.indexed
        return (d.segment - i.segment) * (1 << 24) + d.offset - i.offset

    def _receive(self, timeout: float) -> None:
        if self._parent_gone:
            return
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return
        try:
            data = self.sock.recv(1 << 16)
        except OSError:
            data = b""
        if not data:
            self._parent_gone = True
            return
        self._buf += data
        for message in decode_messages(self._buf):
            position = LogPosition.decode(message[1:])
            if position.lsn > self.durable.lsn:
                self.durable = position
            if message[:1] == b"S":
                self._stop_at = position

    def _index(self) -> bool:
        """Index the records from `indexed` up to `durable`, in transactions of about `batch_bytes`."""
        if self.durable.lsn <= self.indexed.lsn:
            return True
        pending: list[Write | Cursors] = []
        size = 0
        end = self.indexed
        try:
            for kind, payload, after in read_log(self.directory, self.indexed):
                if after.lsn > self.durable.lsn:  # the record (lsn after.lsn - 1) is past what is durable
                    break
                pending.append(decode_record(kind, payload))
                size += len(payload)
                end = after
                if size >= self.batch_bytes:
                    self._apply(pending, end)
                    pending, size = [], 0
            if pending:
                self._apply(pending, end)
        except Exception as exc:  # the map at its cap, a disk error: the parent keeps the overlay; retry later
            answer: dict[str, Any] = {"error": f"{type(exc).__name__}: {exc}"}
            if isinstance(exc, TreeDamaged):
                answer["damage"] = exc.table
            elif no_room(exc, self.store.path):
                answer["full"] = True
            self._send(answer)
            return False
        return True

    def _apply(self, records: Sequence[Write | Cursors], end: LogPosition) -> None:
        before = thread_write_bytes()
        stored = self.store.apply(records, end)
        after = thread_write_bytes()
        self.indexed = end
        written = after - before if before is not None and after is not None else 0
        self._send({"indexed": end.encode().hex(), "bytes": written, "messages": stored})

    def _send(self, message: dict[str, Any]) -> None:
        if self._parent_gone:
            return
        counts = dict(self.store.damage.counts)
        damaged = {t: n - self._counted.get(t, 0) for t, n in counts.items() if n > self._counted.get(t, 0)}
        if damaged:
            message["damaged"] = damaged
            self._counted = counts
        try:
            self.sock.sendall(frame(json.dumps(message).encode()))
        except OSError:
            self._parent_gone = True


def main(argv: Sequence[str] | None = None) -> int:
    """Run the indexer process; returns its exit status."""
    p = argparse.ArgumentParser(prog="kefu-indexer", description="The indexer of a kefu store (internal).")
    p.add_argument("--store", required=True)
    p.add_argument("--fd", type=int, required=True)
    p.add_argument("--tables", default="")
    p.add_argument("--map-size", type=int, required=True)
    p.add_argument("--max-map-size", type=int, required=True)
    p.add_argument("--idempotency-window-s", type=int, required=True)
    p.add_argument("--interval-s", type=float, required=True)
    p.add_argument("--batch-bytes", type=int, required=True)
    p.add_argument("--log-dir", required=True)
    p.add_argument("--data-dir", help="where keys/ holds the data keys (with --sealed)")
    p.add_argument("--sealed", action="store_true", help="the store's values are sealed")
    args = p.parse_args(argv)
    import signal  # noqa: PLC0415

    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)  # the parent says when to stop (or goes away)
    sealer = None
    if args.sealed:
        from ..identity.datakeys import load_data_keys  # noqa: PLC0415 - 0.3 s of imports a plain store does without

        sealer = Sealer(load_data_keys(Path(args.data_dir)))
    store = Store(
        Path(args.store), map_size=args.map_size, max_map_size=args.max_map_size,
        idempotency_window_s=args.idempotency_window_s, tables=[t for t in args.tables.split(",") if t],
        sealer=sealer, check_at_open="tops",  # the core that starts this process checked the whole file
    )  # fmt: skip
    try:
        worker = Worker(
            store, Path(args.log_dir), socket.socket(fileno=args.fd), interval_s=args.interval_s,
            batch_bytes=args.batch_bytes,
        )  # fmt: skip
        worker.run()
    finally:
        store.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
