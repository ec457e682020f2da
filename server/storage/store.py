"""The indexed message store: one LMDB environment, brought up to date from the write-ahead log in batches.

Theory of operation
-------------------
The server's write path is the log (`kefu.server.storage.committer`, `kefu.server.storage.logfile`): a SEND is
acknowledged once its record is fdatasync'd there. This environment holds the same data indexed for reading (the
tables of `kefu.server.storage.schema`), written behind by the indexer process (`kefu.server.storage.indexer`) in
larger batches, each one durable transaction that also stores the log position it covers (``meta`` key
``log_position``). LMDB is copy-on-write with two meta pages, so a kill -9 or a power loss at any instant leaves
either the previous or the new batch, with its position: start-up replays the log from there (`Store.apply`).
Nothing else is scanned at start-up: the next `server_msg_id` is stored, and a conversation's `last_seq` is the
larger of the floor in its record and the seq of its last stored message (one B-tree descent, when the conversation
is first needed; the sequencer then keeps it).

A message does not rewrite its conversation's record: the record's `last_seq` is only a floor, written when the
record is created or its members change, and raised by retention before it deletes a conversation's last messages.

`Store.commit` sequences and indexes a batch in one transaction without a log, for tools and tests on a store whose
log is fully indexed; the server never calls it. The other processes that open the store while the server runs
(`kefu app add`, `kefu backup`) touch only ``apps`` (and the session orders in ``meta``) or read.

Map growth and the resize guard
-------------------------------
LMDB's map is a fixed address range; a write that does not fit raises MapFullError. `Store` then aborts the
transaction, doubles the map (up to ``max_map_size``) and retries the whole batch; after a commit that leaves the
file more than 80% of the map it grows ahead of time. ``set_mapsize`` must run while no transaction of this process
is open (py-lmdb >= 2.2 aborts every open transaction, any thread's, when it is called), and the writer thread, the
event loop and maintenance all open transactions. `_ResizeGuard` is a shared/exclusive lock: every transaction
holds it shared, a resize holds it exclusive. A plain Lock around reads would serialise the loop behind a backup,
so it is a reader/writer scheme: reads share it freely; a resize that must happen (after MapFullError) holds back
new transactions until the open ones close (reads take microseconds), except while a backup (a long shared hold)
runs: then reads go on and the resize waits for the backup. The ahead-of-time growth only *tries*: it never waits,
so the writer never stalls behind a backup unless the map is actually full. Write transactions (commits, apps,
retention; any thread) queue on a plain lock before they take the guard, so no thread holds the guard while it
waits for LMDB's write lock, which a failed transaction keeps until its abort under the exclusive guard.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import lmdb

from ..engine.messages import MAX_ID_BYTES, CursorUpdate, SendRequest, SendResult, StoredMessage, decode_message
from . import index, preflight
from .modes import FILE_MODE, private_dir
from .records import Cursors, Write
from .schema import (
    CORE_TABLES,
    LOG_ID_KEY,
    LOG_POSITION_KEY,
    MAX_TABLES,
    NEXT_ID_KEY,
    SCHEMA_KEY,
    SCHEMA_VERSION,
    U32,
    U64_LIMIT,
    U64S,
    ConversationRecord,
    LogPosition,
    conversation_last_seq,
    decode_conversation,
    id_key,
    member_key,
    message_key,
    new_log_id,
)
from .sequencer import Sequenced, Sequencer

__all__ = [
    "CORE_TABLES",
    "SCHEMA_KEY",
    "SCHEMA_VERSION",
    "SchemaError",
    "StorageError",
    "StorageFull",
    "Store",
]

GROW_AT: Final = 0.8  # grow the map ahead of time once the file's high-water mark passes this share of it
_U64_LIMIT: Final = U64_LIMIT
T = TypeVar("T")


APP_ORDERS_KEY: Final = b"app_orders"
"""``meta`` key of the session orders (`Store.change_app`)."""


class StorageError(Exception):
    """Root of the store's own errors (LMDB's, such as a disk error, propagate as ``lmdb.Error``).

    ::

        StorageError
        ├── SchemaError     the environment was written by a newer kefu, or is not a kefu store
        └── StorageFull     a write needs more than max_map_size
    """


class SchemaError(StorageError):
    """The environment's schema version is unknown to this build; it is left untouched."""


class StorageFull(StorageError):
    """The map reached max_map_size and the write still does not fit."""


class _ResizeGuard:
    """Shared (any transaction) / exclusive (set_mapsize) lock; see "Map growth" in the module docstring."""

    def __init__(self) -> None:
        self._cond = threading.Condition(threading.Lock())
        self._active = 0  # open transactions
        self._long = 0  # of which long ones (backups)
        self._wanted = 0  # resizes waiting for the transactions to close
        self._resizing = False

    @contextmanager
    def shared(self, *, long: bool = False) -> Iterator[None]:
        """Hold while a transaction is open; never nest (a waiting resize would deadlock with the outer hold)."""
        with self._cond:
            while self._resizing or (self._wanted and not self._long):
                self._cond.wait()
            self._active += 1
            self._long += long
        try:
            yield
        finally:
            with self._cond:
                self._active -= 1
                self._long -= long
                if not self._active:
                    self._cond.notify_all()

    @contextmanager
    def exclusive(self, *, wait: bool = True) -> Iterator[bool]:
        """Hold while no transaction is open. With wait=False, yields False at once if one is."""
        with self._cond:
            held = not (self._active or self._resizing or self._wanted)
            if wait and not held:
                self._wanted += 1
                while self._active or self._resizing:
                    self._cond.wait()
                self._wanted -= 1
                held = True
            self._resizing = held
        try:
            yield held
        finally:
            if held:
                with self._cond:
                    self._resizing = False
                    self._cond.notify_all()


class Store:
    """The LMDB environment at `path`. Thread-safe; `commit` is meant for one writer thread.

    `tables`: the named dbs of the layers above delivery (the customer-service desk's records), which a
    `SendRequest`'s `puts` may write and `get_record` / `scan` read. The store knows nothing of what they hold.
    """

    def __init__(
        self,
        path: Path,
        *,
        map_size: int = 64 << 20,
        max_map_size: int = 1 << 40,
        sync: bool = True,
        idempotency_window_s: int = 7 * 86400,
        tables: Sequence[str] = (),
        readonly: bool = False,
    ) -> None:
        """`readonly`: only read, from another process than the one writing (the store must exist)."""
        self.path = Path(path)
        if set(tables) & set(CORE_TABLES) or len(CORE_TABLES) + len(set(tables)) > MAX_TABLES:
            raise ValueError(f"tables must be new names, at most {MAX_TABLES - len(CORE_TABLES)}: {tables}")
        self.tables = frozenset(tables)
        """The registered tables of the layers above."""
        self.max_map_size = max(map_size, max_map_size)
        self.idempotency_window_ms = idempotency_window_s * 1000
        self.guard = _ResizeGuard()
        self.sequencer = Sequencer(tables=self.tables, window_ms=self.idempotency_window_ms)
        """Sequences `commit`'s batches (the server's writer has its own, over the log)."""
        self._writing = threading.Lock()  # one write transaction at a time, taken before the guard: see _write
        self.maintenance_lock = threading.Lock()
        """Held by retention (`maintenance.expire`), which is not reentrant: one archive per batch of deletions."""
        if not readonly:
            private_dir(self.path)
        preflight.check_store_dir(self.path)  # a damaged file is refused here, before LMDB maps it (SIGBUS)
        self.env = lmdb.open(
            str(self.path), subdir=True, map_size=map_size, max_dbs=MAX_TABLES, sync=sync, metasync=sync,
            readonly=readonly, create=not readonly, mode=FILE_MODE,
        )  # fmt: skip
        try:
            self.env.reader_check()  # free reader slots left behind by a killed process
            self.page_size = self.env.stat()["psize"]
            self._db: dict[str, Any] = self._existing_databases() if readonly else self.writing(self._open_databases)
        except BaseException:
            self.env.close()
            raise

    def _existing_databases(self) -> dict[str, Any]:
        """The named dbs that exist, in a read-only environment (each opened by py-lmdb's own transaction: a handle
        opened in a read transaction of ours would close with it)."""
        db = {}
        for name in (*CORE_TABLES, *sorted(self.tables)):
            try:
                db[name] = self.env.open_db(name.encode(), create=False)
            except lmdb.NotFoundError:
                continue
        return db

    def _open_databases(self, txn: lmdb.Transaction[bytes]) -> dict[str, Any]:
        db = {name: self.env.open_db(name.encode(), txn=txn) for name in (*CORE_TABLES, *sorted(self.tables))}
        raw = txn.get(SCHEMA_KEY, db=db["meta"])
        if raw is None:
            if any(txn.stat(handle)["entries"] for handle in db.values()):
                raise SchemaError(f"{self.path}: data without a schema version: not a kefu store")
            txn.put(NEXT_ID_KEY, U64S.pack(1), db=db["meta"])
        elif (version := U32.unpack(raw)[0]) > SCHEMA_VERSION:
            raise SchemaError(f"{self.path}: schema version {version}, newer than {SCHEMA_VERSION}: upgrade kefu")
        if raw is None or U32.unpack(raw)[0] < SCHEMA_VERSION:  # new, or version 1 (no log yet): a new log
            txn.put(SCHEMA_KEY, U32.pack(SCHEMA_VERSION), db=db["meta"])
            self._new_log(txn, db)
        return db

    @staticmethod
    def _new_log(txn: lmdb.Transaction[bytes], db: dict[str, Any]) -> None:
        log_id = new_log_id()
        txn.put(LOG_ID_KEY, U64S.pack(log_id), db=db["meta"])
        txn.put(LOG_POSITION_KEY, LogPosition.first(log_id).encode(), db=db["meta"])

    # --- transactions and map growth -------------------------------------------------------------------

    @contextmanager
    def reading(self) -> Iterator[lmdb.Transaction[bytes]]:
        while True:
            with self.guard.shared():
                try:
                    txn = self.env.begin()
                except lmdb.MapResizedError:
                    pass
                else:
                    with txn:
                        yield txn
                    return
            self._adopt_resize()

    @contextmanager
    def snapshot(self) -> Iterator[index.TxnSource]:
        """The state sequencing reads, in one read transaction held for the block."""
        with self.reading() as txn:
            yield index.TxnSource(txn, self._db)

    def _adopt_resize(self) -> None:
        """Another process (`kefu app add`, `kefu backup`) grew the map: adopt its size (set_mapsize(0))."""
        with self.guard.exclusive():
            self.env.set_mapsize(0)

    def writing(self, work: Callable[[lmdb.Transaction[bytes]], T]) -> T:
        """Run `work` in one durable write transaction, growing the map and retrying while it does not fit.

        A failed transaction is aborted only once no other is open: py-lmdb 3.0 stalls an abort for as long as
        other threads keep opening transactions (seconds to minutes with two busy readers). `_writing` queues
        writers before they take the guard, so no thread holds the guard while it waits for LMDB's write lock (a
        resize waiting for it would wait forever).
        """
        with self._writing:
            while True:
                map_size = self.env.info()["map_size"]
                with self.guard.shared():
                    try:
                        txn = self.env.begin(write=True)
                    except lmdb.MapResizedError:
                        txn = None  # another process grew the map: adopt its size, then retry
                    error: BaseException | None = None
                    if txn is not None:
                        try:
                            result = work(txn)
                            txn.commit()
                            break
                        except BaseException as exc:
                            error = exc
                if txn is None:
                    self._adopt_resize()
                    continue
                with self.guard.exclusive():
                    txn.abort()
                    if not isinstance(error, lmdb.MapFullError):
                        raise error  # type: ignore[misc]
                    self._double_map(map_size, required=True)
            if (self.env.info()["last_pgno"] + 1) * self.page_size > GROW_AT * map_size:
                with self.guard.exclusive(wait=False) as held:
                    if held:
                        self._double_map(map_size, required=False)
        return result

    def _double_map(self, seen: int, *, required: bool) -> None:
        """Double the map from `seen`, unless another thread already grew it. Hold the guard exclusive."""
        current = self.env.info()["map_size"]
        if current > seen:
            return
        if current >= self.max_map_size:
            if required:
                raise StorageFull(f"{self.path}: the map is at max_map_size ({self.max_map_size} bytes)")
            return
        self.env.set_mapsize(min(current * 2, self.max_map_size))

    # --- writes --------------------------------------------------------------------------------------------

    def commit(
        self, requests: Sequence[SendRequest], cursors: Sequence[CursorUpdate], *, now_ms: int
    ) -> list[SendResult]:
        """Sequence and index a batch in one durable transaction, without the log (tools and tests; see the module
        docstring): results in request order, cursors applied after the sends."""

        def work(txn: lmdb.Transaction[bytes]) -> Sequenced:
            batch = self.sequencer.sequence(requests, cursors, now_ms=now_ms, source=index.TxnSource(txn, self._db))
            index.apply(txn, self._db, batch.records)
            return batch

        batch = self.writing(work)
        self.sequencer.keep(batch)
        return batch.results

    def apply(self, records: Iterable[Write | Cursors], position: LogPosition) -> int:
        """Index logged records in one durable transaction that also stores `position`, the log position after
        them; returns how many messages they stored."""

        def work(txn: lmdb.Transaction[bytes]) -> int:
            stored = index.apply(txn, self._db, records)
            txn.put(LOG_POSITION_KEY, position.encode(), db=self._db["meta"])
            return stored

        return self.writing(work)

    def log_state(self) -> tuple[int, LogPosition]:
        """(log id, position indexed up to) of the log this store is indexed from."""
        with self.reading() as txn:
            log_id = txn.get(LOG_ID_KEY, db=self._db["meta"])
            position = txn.get(LOG_POSITION_KEY, db=self._db["meta"])
        if log_id is None or position is None:  # a read-only open of a version-1 store
            return 0, LogPosition.first(0)
        return U64S.unpack(log_id)[0], LogPosition.decode(position)

    def new_log(self) -> None:
        """Start a new log (a backup's copy, indexed completely, has none to replay)."""
        self.writing(lambda txn: self._new_log(txn, self._db))
        self.sequencer.forget()

    def put_app(self, app_id: str, record: bytes) -> None:
        """Store (or replace) an app's record, durably."""
        key = self._app_key(app_id)
        self.writing(lambda txn: txn.put(key, record, db=self._db["apps"]))

    def delete_app(self, app_id: str) -> bool:
        """Remove an app's record durably; False if there was none."""
        key = self._app_key(app_id)
        return self.writing(lambda txn: txn.delete(key, db=self._db["apps"]))

    def change_app(
        self, app_id: str, change: Callable[[bytes | None], bytes | None], note: Callable[[bytes | None], bytes]
    ) -> None:
        """In one durable transaction: an app's record becomes `change(record or None)` (None deletes it; an exception
        aborts everything) and the session orders become `note(orders or None)` (`kefu.server.identity.orders`), so
        that a gateway that sees the order sees the change too."""
        key = self._app_key(app_id)

        def work(txn: lmdb.Transaction[bytes]) -> None:
            apps, meta = self._db["apps"], self._db["meta"]
            record = change(txn.get(key, db=apps))
            if record is None:
                txn.delete(key, db=apps)
            else:
                txn.put(key, record, db=apps)
            txn.put(APP_ORDERS_KEY, note(txn.get(APP_ORDERS_KEY, db=meta)), db=meta)

        self.writing(work)

    def app_orders(self) -> bytes | None:
        """The session orders that app changes left (`change_app`); every gateway reads them a few times a second."""
        with self.reading() as txn:
            return txn.get(APP_ORDERS_KEY, db=self._db["meta"])

    @staticmethod
    def _app_key(app_id: str) -> bytes:
        key = id_key(app_id)
        if key is None:
            raise ValueError(f"invalid app id {app_id!r}: 1 to {MAX_ID_BYTES} UTF-8 bytes without 0x00")
        return key

    # --- reads (any thread) ------------------------------------------------------------------------------

    def read_range(self, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> list[StoredMessage]:
        """Messages with after_seq < seq <= until_seq (0: the latest), at most `limit`, in seq order."""
        out: list[StoredMessage] = []
        if limit <= 0 or after_seq >= _U64_LIMIT - 1:
            return out
        end = message_key(conversation_id, until_seq if until_seq else _U64_LIMIT - 1)
        with self.reading() as txn, txn.cursor(self._db["messages"]) as cur:
            if not cur.set_range(message_key(conversation_id, after_seq + 1)):
                return out
            for key, value in cur:
                if key > end or len(out) >= limit:
                    break
                out.append(decode_message(value))
        return out

    def last_seq(self, conversation_id: int) -> int:
        """The conversation's latest seq; 0 if it has none or does not exist."""
        with self.reading() as txn:
            raw = txn.get(U64S.pack(conversation_id), db=self._db["conversations"])
            return self._last_seq(txn, conversation_id, raw)

    def _last_seq(self, txn: lmdb.Transaction[bytes], conversation_id: int, record: bytes | None) -> int:
        with txn.cursor(self._db["messages"]) as cur:
            return conversation_last_seq(cur, conversation_id, record)

    def members(self, conversation_id: int) -> tuple[str, ...] | None:
        """The conversation's members; None if it does not exist."""
        conv = self._conversation(conversation_id)
        return conv.members if conv else None

    def _conversation(self, conversation_id: int) -> ConversationRecord | None:
        with self.reading() as txn:
            raw = txn.get(U64S.pack(conversation_id), db=self._db["conversations"])
        return decode_conversation(raw) if raw else None

    def cursor(self, user: str, conversation_id: int) -> int:
        """The highest seq `user` acknowledged in the conversation; 0 if none."""
        key = id_key(user)
        if key is None:
            return 0
        with self.reading() as txn:
            raw = txn.get(member_key(key, conversation_id), db=self._db["cursors"])
        return U64S.unpack(raw)[0] if raw else 0

    def conversations_of(self, user: str) -> list[int]:
        """The ids of every conversation `user` is a member of, ascending."""
        with self.reading() as txn:
            return list(self._user_conversations(txn, user))

    def pending(self, user: str) -> list[tuple[int, int, int]]:
        """(conversation_id, cursor, last_seq) of every conversation of `user` with unacknowledged messages."""
        out = []
        with self.reading() as txn:
            prefix = id_key(user) or b""
            for conversation_id in self._user_conversations(txn, user):
                key = U64S.pack(conversation_id)
                raw = txn.get(prefix + b"\0" + key, db=self._db["cursors"])
                acked = U64S.unpack(raw)[0] if raw else 0
                last = self._last_seq(txn, conversation_id, txn.get(key, db=self._db["conversations"]))
                if acked < last:
                    out.append((conversation_id, acked, last))
        return out

    def positions(self, user: str, also: Iterable[int] = ()) -> list[tuple[int, int, int]]:
        """(conversation_id, cursor, last_seq) of every conversation `user` is a member of here, and of `also`."""
        out = []
        prefix = id_key(user) or b""
        with self.reading() as txn:
            for conversation_id in sorted({*self._user_conversations(txn, user), *also}):
                key = U64S.pack(conversation_id)
                raw = txn.get(prefix + b"\0" + key, db=self._db["cursors"])
                acked = U64S.unpack(raw)[0] if raw else 0
                last = self._last_seq(txn, conversation_id, txn.get(key, db=self._db["conversations"]))
                out.append((conversation_id, acked, last))
        return out

    def _user_conversations(self, txn: lmdb.Transaction[bytes], user: str) -> Iterator[int]:
        key = id_key(user)
        if key is None:
            return
        prefix = key + b"\0"
        with txn.cursor(self._db["user_convs"]) as cur:
            if cur.set_range(prefix):
                for k in cur.iternext(values=False):
                    if not k.startswith(prefix):
                        break
                    yield U64S.unpack_from(k, len(prefix))[0]

    def get_record(self, name: str, key: bytes) -> bytes | None:
        """One value of a named db (the service layer's records), or None."""
        with self.reading() as txn:
            return txn.get(key, db=self._db[name])

    def scan(self, name: str, prefix: bytes = b"", *, limit: int = 1 << 62) -> list[tuple[bytes, bytes]]:
        """The (key, value) pairs of a named db whose key starts with `prefix`, in key order, at most `limit`."""
        out: list[tuple[bytes, bytes]] = []
        with self.reading() as txn, txn.cursor(self._db[name]) as cur:
            if not cur.set_range(prefix):
                return out
            for key, value in cur:
                if not key.startswith(prefix) or len(out) >= limit:
                    break
                out.append((key, value))
        return out

    def last_key(self, name: str, *, skip: frozenset[bytes] = frozenset()) -> bytes | None:
        """The greatest key of a named db not in `skip`, or None if there is none."""
        with self.reading() as txn, txn.cursor(self._db[name]) as cur:
            found = cur.last()
            while found and cur.key() in skip:
                found = cur.prev()
            return cur.key() if found else None

    def get_app(self, app_id: str) -> bytes | None:
        """An app's record, or None."""
        key = self._app_key(app_id)
        with self.reading() as txn:
            return txn.get(key, db=self._db["apps"])

    def list_apps(self) -> list[str]:
        """Every app id with a record, sorted by UTF-8 bytes."""
        with self.reading() as txn, txn.cursor(self._db["apps"]) as cur:
            return [key.decode() for key in cur.iternext(values=False)]

    # --- for the maintenance functions (kefu.server.storage.maintenance) ---------------------------------------

    def handle(self, name: str) -> Any:
        """The LMDB handle of a named db (a core table or a registered one)."""
        return self._db[name]

    def handles(self) -> list[tuple[str, Any]]:
        """(name, handle) of every open named db."""
        return list(self._db.items())

    def close(self) -> None:
        """Close the environment (waits for open transactions). Every later call fails."""
        with self._writing, self.guard.exclusive():
            self.env.close()
