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

Values are sealed at rest (schema 3, spec section 12): the store is given a `sealing.Sealer` by whoever opens it
(built from the data keys in data_dir/keys: `kefu.server.identity.datakeys.sealer_of`; the storage layer never reads a
key file), or None for a plain store ([storage] seal = false, fixed at creation in ``meta`` ``sealed``; opening a
store with the other setting is refused). Every read opens what it returns (`values.Values`); a value that does not
open is reported and never served (`values` says what each reader puts in its place), and messages and conversations
found damaged are marked in ``meta`` by a thread of their own (`damage_marks` lists them). At open, a sealed store
whose sampled values none of the given keys open is refused (the keys directory was lost or replaced).

A version-2 store (plain values, the old log layout) is upgraded when first opened for writing: its log tail is
replayed with the old record layout, its values are sealed in place (`kefu.server.storage.reseal.migrate`, resumable
after a kill), its old log segments (which hold messages in clear) are deleted, and the schema becomes 3 with a new
log.

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

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, Final, TypeVar

import lmdb

from .. import log as logmod
from ..engine.messages import MAX_ID_BYTES, CursorUpdate, SendRequest, SendResult, StoredMessage
from ..engine.ports import Unreadable
from . import index, preflight, salvage
from .files import disk_full
from .logfile import SUFFIX, read_log
from .modes import FILE_MODE, private_dir
from .records import Cursors, Write, decode_record
from .reseal import RESEAL_KEY, finished_under
from .schema import (
    CONV_SEQ,
    CORE_TABLES,
    LOG_DIR,
    LOG_ID_KEY,
    LOG_POSITION_KEY,
    MAX_TABLES,
    NEXT_ID_KEY,
    SCHEMA_KEY,
    SCHEMA_VERSION,
    SEALED_KEY,
    U32,
    U64_LIMIT,
    U64S,
    ConversationRecord,
    LogPosition,
    conversation_last_seq,
    decode_idempotency,
    id_key,
    member_key,
    message_key,
    new_log_id,
)
from .sealing import Damaged, Sealer, key_id_of
from .sequencer import Sequenced, Sequencer
from .values import (
    DAMAGED_PREFIX,
    TREE_ERRORS,
    DamageReport,
    Values,
    add_mark,
    decode_marks,
    open_conversation,
    open_message,
    placeholder,
    tree_damaged,
)

__all__ = [
    "CORE_TABLES",
    "SCHEMA_KEY",
    "SCHEMA_VERSION",
    "SchemaError",
    "SealingMismatch",
    "StorageDamaged",
    "StorageError",
    "StorageFull",
    "Store",
    "no_room",
]

GROW_AT: Final = 0.8  # grow the map ahead of time once the file's high-water mark passes this share of it
UPGRADE_CHUNK_BYTES: Final = 64 << 20
"""Record payloads of an old log replayed per transaction at the upgrade (as `indexer.REPLAY_CHUNK_BYTES`)."""
SAMPLED_TABLES: Final = ("apps", "conversations", "messages", "cursors", "idempotency")
"""Where the check at open takes one value each (the first) to see that the data keys open the store."""
MAX_MARKS: Final = 100_000
"""Damage marks one process remembers having written (each is written once): a bound on memory, not on marks."""
_U64_LIMIT: Final = U64_LIMIT
T = TypeVar("T")


APP_ORDERS_KEY: Final = b"app_orders"
"""``meta`` key of the session orders (`Store.change_app`)."""


class StorageError(Exception):
    """Root of the store's own errors (LMDB's, such as a disk error, propagate as ``lmdb.Error``).

    ::

        StorageError
        ├── SchemaError         the environment was written by a newer kefu, or is not a kefu store
        ├── SealingMismatch     sealed store without data keys (or the reverse), or keys that do not open it
        ├── StorageFull         a write needs more than max_map_size
        └── StorageDamaged      a read met a damaged B-tree page (also the engine's `ports.Unreadable`)
    """


class SchemaError(StorageError):
    """The environment's schema version is unknown to this build; it is left untouched."""


class SealingMismatch(StorageError):
    """The store's values are sealed and no sealer was given, or plain and one was, or the data keys given do not
    open it (the keys directory lost or replaced); it is left untouched."""


class StorageFull(StorageError):
    """The map reached max_map_size and the write still does not fit."""


class StorageDamaged(StorageError, Unreadable):
    """LMDB refused a read of `table` (`values.TREE_ERRORS`: a damaged page), reported already (log, count, marks).
    The request that needed it is refused (STORAGE_UNAVAILABLE); nothing else fails. `read`: the messages a range
    read got before the damage (`failed_seq`: the first it could not read)."""

    def __init__(self, table: str, key: bytes, reason: str, *, read: Sequence[StoredMessage] = (), failed_seq: int = 0):
        super().__init__(f"{table} [{key.hex()}]: {reason}")
        self.table, self.key, self.reason = table, key, reason
        self.read, self.failed_seq = read, failed_seq


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
        sealer: Sealer | None = None,
        check_at_open: str = "full",
    ) -> None:
        """`readonly`: only read, from another process than the one writing (the store must exist). `sealer`: seals
        and opens the values (None only for a plain store, [storage] seal = false). `check_at_open` ([storage]):
        "full" walks every page before a writer maps the file and salvages damaged tables (`salvage`), "tops" checks
        the tops of the trees only (`preflight`)."""
        self.path = Path(path)
        if set(tables) & set(CORE_TABLES) or len(CORE_TABLES) + len(set(tables)) > MAX_TABLES:
            raise ValueError(f"tables must be new names, at most {MAX_TABLES - len(CORE_TABLES)}: {tables}")
        self.tables = frozenset(tables)
        """The registered tables of the layers above."""
        self.max_map_size = max(map_size, max_map_size)
        self.idempotency_window_ms = idempotency_window_s * 1000
        self.guard = _ResizeGuard()
        self.readonly = readonly
        self.damage = DamageReport(on_mark=None if readonly else self._mark)
        """What damaged values this process found (its counts, and the metric's hook `on_damaged`)."""
        self.values = Values(sealer, self.damage)
        self._salvage_values = Values(sealer, DamageReport())
        """What the salvage opens records with (`_conversation_record`, `_stored_time`): what it finds damaged is its
        own report, not this process's counts and marks."""
        self.sealer = sealer
        """Seals and opens this store's values; None for a plain store."""
        self.sequencer = Sequencer(tables=self.tables, window_ms=self.idempotency_window_ms, sealer=sealer)
        """Sequences `commit`'s batches (the server's writer has its own, over the log)."""
        self._marks_lock = threading.Lock()
        self._marks: list[tuple[int, int]] = []
        self._marked: set[tuple[int, int]] = set()
        self._marker: threading.Thread | None = None
        self._writing = threading.Lock()  # one write transaction at a time, taken before the guard: see _write
        self.maintenance_lock = threading.Lock()
        """Held by retention (`maintenance.expire`), which is not reentrant: one archive per batch of deletions."""
        self.salvaged: salvage.Salvaged | None = None
        """What the check at open salvaged (None: nothing was damaged, or no full check)."""
        if readonly:
            preflight.check_store_dir(self.path)  # a damaged file is refused here, before LMDB maps it (SIGBUS)
        else:
            private_dir(self.path)
            preflight.reserve_lock_file(self.path)
            self.salvaged = salvage.check_at_open(self.path, check_at_open, seal=sealer.seal if sealer else None,
                                                  conversation=self._conversation_record,
                                                  timed=self._stored_time)  # fmt: skip
        self.env = lmdb.open(
            str(self.path), subdir=True, map_size=map_size, max_dbs=MAX_TABLES, sync=sync, metasync=sync,
            readonly=readonly, create=not readonly, mode=FILE_MODE,
        )  # fmt: skip
        try:
            self.env.reader_check()  # free reader slots left behind by a killed process
            self.page_size = self.env.stat()["psize"]
            self._db: dict[str, Any] = self._existing_databases() if readonly else self.writing(self._open_databases)
            if self._schema_version() < SCHEMA_VERSION and not readonly:
                self._upgrade(sealer)
            self._check_sealing(sealer)
            if self.salvaged is not None:
                salvage.audit_salvage(self, self.salvaged)
        except BaseException:
            self.env.close()
            raise

    def _conversation_record(self, key: bytes, stored: bytes) -> ConversationRecord | None:
        """A stored conversation record opened; None if it does not open (for the salvage)."""
        try:
            return open_conversation(self._salvage_values, key, stored)
        except Damaged:
            return None

    def _stored_time(self, table: str, key: bytes, stored: bytes) -> int | None:
        """The timestamp_ms of a stored message or idempotency entry; None if it does not open (for the salvage)."""
        values = self._salvage_values
        try:
            if table == "messages":
                return open_message(values, key, stored).timestamp_ms
            return int(decode_idempotency(values.open(table, key, stored)).timestamp_ms)
        except Exception:  # does not open, or does not decode: no time
            return None

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
        meta = db["meta"]
        raw = txn.get(SCHEMA_KEY, db=meta)
        if raw is None:
            if any(txn.stat(handle)["entries"] for handle in db.values()):
                raise SchemaError(f"{self.path}: data without a schema version: not a kefu store")
            txn.put(NEXT_ID_KEY, U64S.pack(1), db=meta)
            txn.put(SCHEMA_KEY, U32.pack(SCHEMA_VERSION), db=meta)
            txn.put(SEALED_KEY, bytes((self.sealer is not None,)), db=meta)
            if self.sealer is not None:  # nothing here is under an older key: no reseal to make at start
                txn.put(RESEAL_KEY, finished_under(self.sealer.active), db=meta)
            self._new_log(txn, db)
        elif (version := U32.unpack(raw)[0]) > SCHEMA_VERSION:
            raise SchemaError(f"{self.path}: schema version {version}, newer than {SCHEMA_VERSION}: upgrade kefu")
        elif version == 1:  # no log yet: a new one, then the upgrade from version 2
            txn.put(SCHEMA_KEY, U32.pack(2), db=meta)
            self._new_log(txn, db)
        return db

    def _schema_version(self) -> int:
        with self.reading() as txn:
            raw = txn.get(SCHEMA_KEY, db=self._db["meta"])
        return int(U32.unpack(raw)[0]) if raw is not None else 0

    def _upgrade(self, sealer: Sealer | None) -> None:
        """Version 2 to 3 (see the module docstring). Every step is safe to run again after a kill."""
        self.values = Values(None, self.damage)  # the replay writes the plain values of version 2
        self.sealer = self.sequencer.sealer = None
        log_dir = self.path / LOG_DIR
        _, position = self.log_state()
        pending: list[Write | Cursors] = []
        size = 0
        for kind, payload, end in read_log(log_dir, position):
            pending.append(decode_record(kind, payload))
            size, position = size + len(payload), end
            if size >= UPGRADE_CHUNK_BYTES:
                self.apply(pending, position)
                pending, size = [], 0
        if pending:
            self.apply(pending, position)
        for segment in sorted(log_dir.glob("*" + SUFFIX)) if log_dir.is_dir() else ():
            segment.unlink()  # indexed; they hold messages in clear
        if sealer is None:
            self.writing(self._finish_upgrade)
        else:
            try:
                from .reseal import migrate  # noqa: PLC0415 - only at an upgrade
            except ImportError:
                raise SchemaError(f"{self.path}: schema version 2 (values not sealed), and this build cannot seal it "
                                  "in place: run a kefu with `kefu.server.storage.reseal`") from None  # fmt: skip
            logmod.event("storage.upgrade", path=str(self.path), to_version=SCHEMA_VERSION, sealed=True)
            self.sealer = self.sequencer.sealer = sealer
            migrate(self, sealer, finish=self._finish_upgrade)
        self.values = Values(self.sealer, self.damage)

    def _finish_upgrade(self, txn: lmdb.Transaction[bytes]) -> None:
        meta = self._db["meta"]
        txn.put(SCHEMA_KEY, U32.pack(SCHEMA_VERSION), db=meta)
        txn.put(SEALED_KEY, bytes((self.sealer is not None,)), db=meta)
        self._new_log(txn, self._db)

    def _check_sealing(self, sealer: Sealer | None) -> None:
        """Refuse a store sealed otherwise than `sealer` says, or whose sampled values none of its keys open."""
        with self.reading() as txn:
            flag = txn.get(SEALED_KEY, db=self._db["meta"])
            samples = [(t, cur.key(), cur.value()) for t in SAMPLED_TABLES if t in self._db
                       for cur in [txn.cursor(self._db[t])] if cur.first()]  # fmt: skip
        sealed = flag == b"\x01"
        if flag is None:  # a read-only open of a version-2 store: plain values
            self.sealer = self.sequencer.sealer = None
            self.values = Values(None, self.damage)
            return
        if sealed and sealer is None:
            raise SealingMismatch(f"{self.path}: the store's values are sealed, and [storage] seal is false")
        if not sealed and sealer is not None:
            raise SealingMismatch(f"{self.path}: the store's values are not sealed ([storage] seal = false when it "
                                  "was made): set [storage] seal = false to open it")  # fmt: skip
        if sealer is None or len(samples) < 2:
            return
        unknown = {k for _, _, v in samples if (k := key_id_of(v)) is not None and k not in sealer.key_ids}
        if not any(sealer.opens(*sample) for sample in samples):
            have = ", ".join(map(str, sorted(sealer.key_ids)))
            missing = f"; they name data key(s) {', '.join(map(str, sorted(unknown)))}" if unknown else ""
            raise SealingMismatch(
                f"{self.path}: none of the values sampled opens with the data keys in the keys directory (ids "
                f"{have}){missing}: the keys directory was lost or replaced; restore it from its backup"
            )

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
    def snapshot(self, unreadable: frozenset[index.Unreadable] = frozenset()) -> Iterator[index.TxnSource]:
        """The state sequencing reads, in one read transaction held for the block (`unreadable`: what not to read
        again, `index.TxnSource`)."""
        with self.reading() as txn:
            yield index.TxnSource(txn, self._db, self.values, unreadable)

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
            source = index.TxnSource(txn, self._db, self.values)
            batch = self.sequencer.sequence(requests, cursors, now_ms=now_ms, source=source)
            index.apply(txn, self._db, batch.records, self.values)
            return batch

        batch = self.writing(work)
        self.sequencer.keep(batch)
        return batch.results

    def apply(self, records: Iterable[Write | Cursors], position: LogPosition) -> int:
        """Index logged records in one durable transaction that also stores `position`, the log position after
        them; returns how many messages they stored."""

        def work(txn: lmdb.Transaction[bytes]) -> int:
            stored = index.apply(txn, self._db, records, self.values)
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
        sealed = self.values.seal("apps", key, record)
        self.writing(lambda txn: txn.put(key, sealed, db=self._db["apps"]))

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
            record = change(self._open_app(key, txn.get(key, db=apps)))
            if record is None:
                txn.delete(key, db=apps)
            else:
                txn.put(key, self.values.seal("apps", key, record), db=apps)
            txn.put(APP_ORDERS_KEY, note(txn.get(APP_ORDERS_KEY, db=meta)), db=meta)

        self.writing(work)

    def app_orders(self) -> bytes | None:
        """The session orders that app changes left (`change_app`); every gateway reads them a few times a second."""
        with self.reading() as txn:
            return txn.get(APP_ORDERS_KEY, db=self._db["meta"])

    def _open_app(self, key: bytes, stored: bytes | None) -> bytes | None:
        """An app's record; None if there is none, or if it does not open (reported: the app does not
        authenticate)."""
        if stored is None:
            return None
        try:
            return self.values.open("apps", key, stored)
        except Damaged:
            return None

    @staticmethod
    def _app_key(app_id: str) -> bytes:
        key = id_key(app_id)
        if key is None:
            raise ValueError(f"invalid app id {app_id!r}: 1 to {MAX_ID_BYTES} UTF-8 bytes without 0x00")
        return key

    # --- reads (any thread) ------------------------------------------------------------------------------

    def read_range(self, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> list[StoredMessage]:
        """Messages with after_seq < seq <= until_seq (0: the latest), at most `limit`, in seq order; a message that
        does not open is reported and an EVENT takes its place (`values.placeholder`)."""
        out: list[StoredMessage] = []
        if limit <= 0 or after_seq >= _U64_LIMIT - 1:
            return out
        end = message_key(conversation_id, until_seq if until_seq else _U64_LIMIT - 1)
        values = self.values
        try:
            with self.reading() as txn, txn.cursor(self._db["messages"]) as cur:
                if not cur.set_range(message_key(conversation_id, after_seq + 1)):
                    return out
                for key, value in cur:
                    if key > end or len(out) >= limit:
                        break
                    try:
                        out.append(open_message(values, key, value))
                    except Damaged:
                        out.append(placeholder(*CONV_SEQ.unpack(key)))
        except TREE_ERRORS as exc:
            failed = (out[-1].seq if out else after_seq) + 1
            key = message_key(conversation_id, failed)
            raise self._tree("messages", key, exc, read=out, failed_seq=failed) from exc
        return out

    def last_seq(self, conversation_id: int) -> int:
        """The conversation's latest seq; 0 if it has none or does not exist."""
        with self._table("messages", U64S.pack(conversation_id)), self.reading() as txn:
            return self._last_seq(txn, conversation_id)

    def _last_seq(self, txn: lmdb.Transaction[bytes], conversation_id: int) -> int:
        """The larger of the record's floor (0 if the record does not open: its messages still count) and the last
        stored message's seq; 0 if the conversation does not exist."""
        key = U64S.pack(conversation_id)
        table = "conversations"
        try:  # a try, not `with self._table(...)`: 2 us a with, on a read positions makes per conversation
            raw = txn.get(key, db=self._db[table])
            floor = None
            if raw is not None:
                try:
                    floor = open_conversation(self.values, key, raw).last_seq
                except Damaged:
                    floor = 0
            table = "messages"
            with txn.cursor(self._db[table]) as cur:
                return conversation_last_seq(cur, conversation_id, floor)
        except TREE_ERRORS as exc:
            raise self._tree(table, key, exc) from exc

    def members(self, conversation_id: int) -> tuple[str, ...] | None:
        """The conversation's members; None if it does not exist. A record that does not open (reported) raises
        `StorageDamaged`: the conversation exists, so a SYNC of it is refused STORAGE_UNAVAILABLE, not NOT_FOUND."""
        conv = self._conversation(conversation_id)
        return conv.members if conv else None

    def _conversation(self, conversation_id: int) -> ConversationRecord | None:
        key = U64S.pack(conversation_id)
        with self._table("conversations", key), self.reading() as txn:
            raw = txn.get(key, db=self._db["conversations"])
        if raw is None:
            return None
        try:
            return open_conversation(self.values, key, raw)
        except Damaged as exc:
            raise StorageDamaged("conversations", key, exc.reason) from None

    def cursor(self, user: str, conversation_id: int) -> int:
        """The highest seq `user` acknowledged in the conversation; 0 if none (or if it does not open: reported)."""
        key = id_key(user)
        if key is None:
            return 0
        try:
            with self.reading() as txn:
                return self._cursor(txn, member_key(key, conversation_id))
        except StorageDamaged:  # reported: as a cursor that does not open, 0 (the stream is delivered again)
            return 0

    def _cursor(self, txn: lmdb.Transaction[bytes], key: bytes) -> int:
        try:
            raw = txn.get(key, db=self._db["cursors"])
        except TREE_ERRORS as exc:
            raise self._tree("cursors", key, exc) from exc
        return 0 if raw is None else index.open_cursor(self.values, key, raw)

    def conversations_of(self, user: str) -> list[int]:
        """The ids of every conversation `user` is a member of, ascending."""
        with self._table("user_convs", id_key(user) or b""), self.reading() as txn:
            return list(self._user_conversations(txn, user))

    def pending(self, user: str) -> list[tuple[int, int, int]]:
        """(conversation_id, cursor, last_seq) of every conversation of `user` with unacknowledged messages."""
        return [p for p in self.positions(user) if p[1] < p[2]]

    def positions(self, user: str, also: Iterable[int] = ()) -> list[tuple[int, int, int]]:
        """(conversation_id, cursor, last_seq) of every conversation `user` is a member of here, and of `also`."""
        prefix = id_key(user) or b""
        with self._table("user_convs", prefix), self.reading() as txn:
            ids = sorted({*self._user_conversations(txn, user), *also})
        out: list[tuple[int, int, int]] = []
        while ids:  # a conversation whose pages are damaged is left out (reported), the rest read in a new transaction
            with contextlib.suppress(StorageDamaged), self.reading() as txn:
                while ids:
                    conversation_id = ids.pop(0)
                    acked = self._cursor(txn, prefix + b"\0" + U64S.pack(conversation_id))
                    out.append((conversation_id, acked, self._last_seq(txn, conversation_id)))
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
        """One value of a named db (the service layer's records), or None (also if it does not open or its page is
        damaged: reported)."""
        try:
            with self._table(name, key), self.reading() as txn:
                raw = txn.get(key, db=self._db[name])
        except StorageDamaged:
            return None
        if raw is None:
            return None
        try:
            return self.values.open(name, key, raw)
        except Damaged:
            return None

    def scan(self, name: str, prefix: bytes = b"", *, limit: int = 1 << 62) -> list[tuple[bytes, bytes]]:
        """The (key, value) pairs of a named db whose key starts with `prefix`, in key order, at most `limit`; a value
        that does not open is left out (reported)."""
        out: list[tuple[bytes, bytes]] = []
        values = self.values
        with (
            contextlib.suppress(StorageDamaged),  # a damaged page: what was read before it (reported)
            self._table(name, prefix),
            self.reading() as txn,
            txn.cursor(self._db[name]) as cur,
        ):
            if not cur.set_range(prefix):
                return out
            for key, value in cur:
                if not key.startswith(prefix) or len(out) >= limit:
                    break
                try:
                    out.append((key, values.open(name, key, value)))
                except Damaged:
                    continue
        return out

    def last_key(self, name: str, *, skip: frozenset[bytes] = frozenset()) -> bytes | None:
        """The greatest key of a named db not in `skip`, or None if there is none."""
        with self._table(name, b""), self.reading() as txn, txn.cursor(self._db[name]) as cur:
            found = cur.last()
            while found and cur.key() in skip:
                found = cur.prev()
            return cur.key() if found else None

    def get_app(self, app_id: str) -> bytes | None:
        """An app's record, or None (also if it does not open: reported, and the app does not authenticate)."""
        key = self._app_key(app_id)
        try:
            with self._table("apps", key), self.reading() as txn:
                raw = txn.get(key, db=self._db["apps"])
        except StorageDamaged:  # reported: the app does not authenticate
            return None
        return self._open_app(key, raw)

    def list_apps(self) -> list[str]:
        """Every app id with a record, sorted by UTF-8 bytes."""
        with self._table("apps", b""), self.reading() as txn, txn.cursor(self._db["apps"]) as cur:
            return [key.decode() for key in cur.iternext(values=False)]

    @contextmanager
    def _table(self, table: str, key: bytes) -> Iterator[None]:
        """Turn LMDB's refusal of a read of `table` (a damaged page) into a reported `StorageDamaged`."""
        try:
            yield
        except TREE_ERRORS as exc:
            raise self._tree(table, key, exc) from exc

    def _tree(self, table: str, key: bytes, exc: BaseException, **kw: Any) -> StorageDamaged:
        return StorageDamaged(table, key, tree_damaged(self.damage, table, key, exc).reason, **kw)

    # --- damage marks ------------------------------------------------------------------------------------------

    def _mark(self, conversation_id: int, seq: int) -> None:
        """Mark a damaged message (or, seq 0, conversation record) in ``meta``, from a thread of its own."""
        with self._marks_lock:
            if (conversation_id, seq) in self._marked or len(self._marked) >= MAX_MARKS:
                return
            self._marked.add((conversation_id, seq))
            self._marks.append((conversation_id, seq))
            if self._marker is None:
                self._marker = threading.Thread(target=self._write_marks, name="kefu-damage-marks", daemon=True)
                self._marker.start()

    def _write_marks(self) -> None:
        while True:
            with self._marks_lock:
                marks, self._marks = self._marks, []
                if not marks:
                    self._marker = None
                    return
            try:
                self.writing(lambda txn: self._add_marks(txn, marks))  # noqa: B023 - called at once
            except Exception as exc:  # a closed store, a full disk: the log line and the metric remain
                logmod.warning("storage.damage_mark_failed", marks=len(marks), error=repr(exc))

    def _add_marks(self, txn: lmdb.Transaction[bytes], marks: list[tuple[int, int]]) -> None:
        for conversation_id, seq in marks:
            add_mark(txn, self._db["meta"], conversation_id, seq)

    def damage_marks(self) -> dict[int, list[int]]:
        """The damage marks in ``meta``: conversation id -> seqs found damaged (0: the conversation record)."""
        out = {}
        with self.reading() as txn, txn.cursor(self._db["meta"]) as cur:
            if cur.set_range(DAMAGED_PREFIX):
                for key, value in cur:
                    if not key.startswith(DAMAGED_PREFIX):
                        break
                    out[U64S.unpack_from(key, len(DAMAGED_PREFIX))[0]] = decode_marks(value)
        return out

    # --- for the maintenance functions (kefu.server.storage.maintenance) ---------------------------------------

    def handle(self, name: str) -> Any:
        """The LMDB handle of a named db (a core table or a registered one)."""
        return self._db[name]

    def handles(self) -> list[tuple[str, Any]]:
        """(name, handle) of every open named db."""
        return list(self._db.items())

    def close(self) -> None:
        """Close the environment (waits for open transactions and the marks being written). Every later call
        fails."""
        marker = self._marker
        if marker is not None:
            marker.join()
        with self._writing, self.guard.exclusive():
            self.env.close()


def no_room(exc: BaseException, where: Path | None = None) -> bool:
    """Whether a write failed for want of room: the map at max_map_size, or the disk full (`files.disk_full`)."""
    return isinstance(exc, StorageFull | lmdb.MapFullError) or disk_full(exc, where)
