"""The durable message store: one LMDB environment, one write transaction per group commit.

Theory of operation
-------------------
Every acknowledged SEND is in the LMDB environment before its SEND_ACK leaves (spec/PROTOCOL.md section 4.10). The
writer thread (`kefu.server.storage.committer.GroupCommitter`) hands `Store.commit` a whole batch: one write
transaction holds every message, idempotency entry, sequence number and cursor of the batch, and its commit is the
one fdatasync (``sync=True, metasync=True``) that makes them durable together. LMDB is copy-on-write with two meta
pages, so a kill -9 or a power loss at any instant leaves either the previous or the new commit: start-up recovery is
LMDB's own (nothing to replay) plus an O(1) check of the schema version. Nothing is ever scanned at start-up:
the next `server_msg_id` is stored, and a conversation's `last_seq` is the larger of the floor in its record and the
seq of its last stored message (one B-tree descent, when the conversation is first needed; the writer then keeps it
between commits, see `_Batch`).

Layout (schema version 1). Integers are unsigned big-endian; ``user`` and ``app_id`` are UTF-8 without 0x00, at
most 255 bytes, so ``user + 0x00`` is an unambiguous key prefix. Values named like ``StoredMessage`` are the
`wire_struct` declarations below (spec/PROTOCOL.md section 3.3 encoding).

================  =========================================  ==================================================
named db          key                                        value
================  =========================================  ==================================================
``meta``          ``b"schema_version"``                      u32: 1
``meta``          ``b"next_server_msg_id"``                  u64: the id the next stored message gets (from 1)
``messages``      conv u64 + seq u64                         `StoredMessage` (conv, seq, server_msg_id,
                                                             timestamp_ms, sender, client_msg_id, content_type,
                                                             body, metadata)
``conversations`` conv u64                                   `ConversationRecord` (last_seq u64: a floor, see
                                                             below; created_ms u64; members: utf8<u8> list<u16>)
``cursors``       user + 0x00 + conv u64                     u64: the user has received every seq <= this
``user_convs``    user + 0x00 + conv u64                     empty: the user is a member of the conversation
``idempotency``   sender + 0x00 + client_msg_id (16 bytes)   `IdempotencyRecord` (conv u64, seq u64,
                                                             server_msg_id u64, timestamp_ms u64)
``idem_expiry``   timestamp_ms u64 + idempotency key         empty: purge order of ``idempotency``
``expiry``        timestamp_ms u64 + conv u64 + seq u64      empty: retention order of ``messages``
``apps``          app_id                                     opaque record owned by the gateway
``service``       conv u64                                   JSON record of a service conversation (state,
                                                             owner, group, participants, tags, routing trace)
``service_open``  conv u64                                   empty: the conversation is not closed (start-up
                                                             reads only these)
``visitors``      visitor key (UTF-8)                        JSON: conversations, last agent, sentiment sums
``agent_convs``   agent + 0x00 + conv u64                    empty: the agent has owned the conversation
``meta``          ``b"next_service_conversation"``           u64: the next service conversation id
================  =========================================  ==================================================

A message does not rewrite its conversation's record: the record's `last_seq` is only a floor, written when the
record is created or its members change, and raised by retention before it deletes a conversation's last messages.
The last seq is max(that floor, the seq of the conversation's last key in ``messages``). Rewriting the record with
every message cost one more randomly placed page per message in each commit, and a commit's fdatasync time grows
with its pages (bench/RESULTS.md, "third attempt").

The customer-service layer writes its records through `SendRequest.puts`, in the same transaction as the system
message that announces the change, so a record and its announcement are durable together or not at all.

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

import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, Any, Final, TypeVar

import lmdb

from kefu.protocol.errors import ErrorCode
from kefu.protocol.wire import U64, Seq, Text, Truncated, to_construct, wire_struct

from ..engine.messages import (
    MAX_ID_BYTES,
    CursorUpdate,
    SendRequest,
    SendResult,
    StoredMessage,
    decode_message,
    encode_message,
)

__all__ = [
    "CORE_TABLES",
    "SchemaError",
    "StorageError",
    "StorageFull",
    "Store",
]

SCHEMA_VERSION: Final = 1
CORE_TABLES: Final = (
    "meta", "messages", "conversations", "cursors", "user_convs", "idempotency", "idem_expiry", "expiry", "apps",
)  # fmt: skip
"""The named dbs of delivery itself; the layers above register their own (`Store(tables=...)`)."""
MAX_TABLES: Final = 32
"""Named dbs an environment may hold (LMDB's max_dbs: a small fixed table in the environment's header)."""
MAX_MEMBERS: Final = 0xFFFF  # the members list has a u16 count
MAX_METADATA: Final = 0xFF  # MetaEntry list<u8>, as in SEND
CONVERSATION_CACHE_SIZE: Final = 100_000  # conversations the writer keeps between commits (cleared when full)
GROW_AT: Final = 0.8  # grow the map ahead of time once the file's high-water mark passes this share of it

SCHEMA_KEY: Final = b"schema_version"
_NEXT_ID_KEY: Final = b"next_server_msg_id"
_U32 = struct.Struct("!I")
_U64 = struct.Struct("!Q")
_CONV_SEQ = struct.Struct("!QQ")
_TS_CONV_SEQ = struct.Struct("!QQQ")
_U64_LIMIT: Final = 1 << 64


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


# --- stored values, declared once --------------------------------------------------------------------------


class _NameItem:
    """`Seq` item codec: one user id as utf8<u8>, held as a plain str."""

    CONSTRUCT = to_construct(Text(1))

    @staticmethod
    def _wire_parse(b: bytes, o: int, end: int) -> tuple[str, int]:
        if o >= end or o + 1 + b[o] > end:
            raise Truncated
        n = b[o]
        try:
            return b[o + 1 : o + 1 + n].decode(), o + 1 + n
        except UnicodeDecodeError:
            raise Truncated from None

    @staticmethod
    def _wire_build(name: str) -> bytes:
        raw = name.encode()
        return bytes((len(raw),)) + raw


Members = Annotated[tuple[str, ...], Seq(2, _NameItem)]


@wire_struct
@dataclass(frozen=True, slots=True)
class ConversationRecord:
    """The ``conversations`` value. `last_seq` must stay the first field: a commit rewrites only those 8 bytes."""

    last_seq: U64
    created_ms: U64
    members: Members


@wire_struct
@dataclass(frozen=True, slots=True)
class IdempotencyRecord:
    """The ``idempotency`` value. Built straight from a `StoredMessage`, whose field names it shares."""

    conversation_id: U64
    seq: U64
    server_msg_id: U64
    timestamp_ms: U64


T = TypeVar("T")


def _decoder(cls: type[T]) -> Callable[[bytes], T]:
    parse = cls._wire_parse  # type: ignore[attr-defined]

    def decode(raw: bytes) -> T:
        return parse(raw, 0, len(raw))[0]  # type: ignore[no-any-return]

    return decode


_decode_conversation = _decoder(ConversationRecord)
decode_idempotency = _decoder(IdempotencyRecord)
_encode_conversation: Callable[[ConversationRecord], bytes] = ConversationRecord._wire_build  # type: ignore[attr-defined]
_encode_idempotency: Callable[[Any], bytes] = IdempotencyRecord._wire_build  # type: ignore[attr-defined]


def message_key(conversation_id: int, seq: int) -> bytes:
    """The ``messages`` key."""
    return _CONV_SEQ.pack(conversation_id, seq)


def conversation_last_seq(cur: lmdb.Cursor[bytes], conversation_id: int, record: bytes | None) -> int:
    """A conversation's last seq from its ``conversations`` `record` (None: it does not exist, 0) and `cur`, a
    cursor on ``messages``: the larger of the record's floor and the seq of its last stored message."""
    if record is None:
        return 0
    return max(int(_U64.unpack_from(record)[0]), last_message_seq(cur, conversation_id))


def last_message_seq(cur: lmdb.Cursor[bytes], conversation_id: int) -> int:
    """The seq of the conversation's last key in ``messages`` (`cur` is a cursor on it); 0 if it has none."""
    if cur.set_range(_CONV_SEQ.pack(conversation_id, _U64_LIMIT - 1)):
        found = cur.key()
        if _CONV_SEQ.unpack(found)[0] == conversation_id:
            return _U64_LIMIT - 1
        if not cur.prev():
            return 0
    elif not cur.last():
        return 0
    conv, seq = _CONV_SEQ.unpack(cur.key())
    return seq if conv == conversation_id else 0


def id_key(name: str) -> bytes | None:
    """The UTF-8 key of a user or app id, or None if the id is empty, too long or holds 0x00."""
    try:
        raw = name.encode()
    except UnicodeEncodeError:
        return None
    return raw if 0 < len(raw) <= MAX_ID_BYTES and b"\0" not in raw else None


# --- the API's values ----------------------------------------------------------------------------------


def _refused(code: ErrorCode) -> SendResult:
    return SendResult(int(code), False, None, ())


_BAD_REQUEST: Final = _refused(ErrorCode.BAD_REQUEST)
_FORBIDDEN: Final = _refused(ErrorCode.FORBIDDEN)
_NOT_FOUND: Final = _refused(ErrorCode.NOT_FOUND)
_OK: Final = int(ErrorCode.OK)


def _valid_request(r: SendRequest, tables: frozenset[str]) -> bool:
    """Whether the values fit the stored layout (the gateway checks the product rules, such as empty bodies), and
    `puts` names only `tables` (those the layers above registered)."""
    return (
        len(r.client_msg_id) == 16
        and 0 <= r.conversation_id < _U64_LIMIT
        and 0 <= r.content_type <= 0xFFFF
        and len(r.body) < 1 << 32
        and (not r.metadata or _valid_metadata(r.metadata))
        and (not r.puts or all(name in tables for name, _, _ in r.puts))
    )


def _valid_metadata(metadata: tuple[tuple[str, bytes], ...]) -> bool:
    return len(metadata) <= MAX_METADATA and all(
        0 < len(k.encode()) <= MAX_ID_BYTES and len(v) <= 0xFFFF for k, v in metadata
    )


class _Conversation:
    """A conversation during one commit: its `last_seq`, members, and the record's bytes after `last_seq`."""

    __slots__ = ("last_seq", "members", "tail")

    def __init__(self, last_seq: int, members: tuple[str, ...], tail: bytes) -> None:
        self.last_seq, self.members, self.tail = last_seq, members, tail


class _Batch:
    """The work of one `Store.commit`, inside its write transaction (rebuilt from scratch on a retry).

    `cache` holds the conversations as earlier commits left them (`Store.commit` adds this batch's once its
    transaction is durable): a cached conversation costs no read at all, where a first one costs the record's read
    and a descent of ``messages`` for its last seq. It stays right because the writer thread is the only one to
    change a conversation's last seq, members or record tail; retention only raises the record's floor to a seq
    the conversation already has. created_ms never changes, so a commit that rewrites a ConversationRecord (a new
    conversation, new members) keeps its `tail` after `last_seq`.
    """

    def __init__(
        self, txn: lmdb.Transaction[bytes], db: dict[str, Any], now_ms: int, window_ms: int, *,
        cache: dict[int, _Conversation], tables: frozenset[str],
    ) -> None:  # fmt: skip
        self.txn, self.db, self.now_ms, self.window_ms = txn, db, now_ms, window_ms
        self.cache, self.tables = cache, tables
        self.conversations: dict[int, _Conversation | None] = {}
        self.dirty: set[int] = set()
        self._messages: lmdb.Cursor[bytes] | None = None
        raw = txn.get(_NEXT_ID_KEY, db=db["meta"])
        self.next_id = _U64.unpack(raw)[0] if raw else 1
        self.ts_key = _U64.pack(now_ms)

    def conversation(self, conversation_id: int) -> _Conversation | None:
        if conversation_id in self.conversations:
            return self.conversations[conversation_id]
        cached = self.cache.get(conversation_id)
        if cached is not None:
            conv: _Conversation | None = _Conversation(cached.last_seq, cached.members, cached.tail)
        else:
            conv = None
            raw = self.txn.get(_U64.pack(conversation_id), db=self.db["conversations"])
            if raw is not None:
                if self._messages is None:
                    self._messages = self.txn.cursor(db=self.db["messages"])
                last_seq = conversation_last_seq(self._messages, conversation_id, raw)
                conv = _Conversation(last_seq, _decode_conversation(raw).members, raw[_U64.size :])
        self.conversations[conversation_id] = conv
        return conv

    def keep(self) -> None:
        """The transaction is durable: remember its conversations for the next commits."""
        cache = self.cache
        if len(cache) + len(self.conversations) > CONVERSATION_CACHE_SIZE:
            cache.clear()
        for conversation_id, conv in self.conversations.items():
            if conv is not None:
                cache[conversation_id] = conv

    def send(self, r: SendRequest) -> SendResult:
        sender = id_key(r.sender)
        if sender is None or not _valid_request(r, self.tables):
            return _BAD_REQUEST
        idem_key = sender + b"\0" + r.client_msg_id
        raw = self.txn.get(idem_key, db=self.db["idempotency"])
        if raw is not None:
            earlier = decode_idempotency(raw)
            if self.now_ms - earlier.timestamp_ms < self.window_ms:
                return self.duplicate(r, earlier)
        if r.silent:
            return self.silent(r, self.conversation(r.conversation_id))
        conv = self.target(r)
        if isinstance(conv, SendResult):
            return conv
        recipients = conv.members
        if r.set_members is not None:
            if not self.set_members(r.conversation_id, conv, r.set_members):
                return _BAD_REQUEST
            recipients = tuple(dict.fromkeys((*recipients, *conv.members)))
        seq = conv.last_seq = conv.last_seq + 1
        msg = StoredMessage(
            r.conversation_id, seq, self.next_id, self.now_ms, r.sender, r.client_msg_id, r.content_type, r.body,
            r.metadata,
        )  # fmt: skip
        self.next_id += 1
        put, db = self.txn.put, self.db
        put(_CONV_SEQ.pack(r.conversation_id, seq), encode_message(msg), db=db["messages"])
        put(idem_key, _encode_idempotency(msg), db=db["idempotency"])
        put(self.ts_key + idem_key, b"", db=db["idem_expiry"])
        put(_TS_CONV_SEQ.pack(self.now_ms, r.conversation_id, seq), b"", db=db["expiry"])
        for name, key, value in r.puts:
            if value is None:
                self.txn.delete(key, db=db[name])
            else:
                put(key, value, db=db[name])
        return SendResult(_OK, False, msg, recipients)

    def target(self, r: SendRequest) -> _Conversation | SendResult:
        """The conversation `r` posts to (created if asked), or the refusal."""
        conv = self.conversation(r.conversation_id)
        if conv is None:
            if not r.create_members:
                return _NOT_FOUND
            conv = self.create(r.conversation_id, r.create_members if r.system else (r.sender, *r.create_members))
            return _BAD_REQUEST if conv is None else conv
        if r.sender not in conv.members and not r.system:
            return _FORBIDDEN
        return conv

    def silent(self, r: SendRequest, conv: _Conversation | None) -> SendResult:
        """A membership change and records without a message."""
        if conv is None:
            return _NOT_FOUND
        if r.set_members is not None and not self.set_members(r.conversation_id, conv, r.set_members):
            return _BAD_REQUEST
        for name, key, value in r.puts:
            if value is None:
                self.txn.delete(key, db=self.db[name])
            else:
                self.txn.put(key, value, db=self.db[name])
        return SendResult(_OK, False, None, conv.members)

    def set_members(self, conversation_id: int, conv: _Conversation, names: tuple[str, ...]) -> bool:
        """Replace the members (and their ``user_convs`` entries); the stored record is rebuilt by finish()."""
        members = tuple(dict.fromkeys(names))
        keys = [id_key(m) for m in members]
        if len(members) > MAX_MEMBERS or None in keys:
            return False
        conv_key = _U64.pack(conversation_id)
        for gone in set(conv.members) - set(members):
            self.txn.delete(id_key(gone) + b"\0" + conv_key, db=self.db["user_convs"])  # type: ignore[operator]
        for key in keys:
            self.txn.put(key + b"\0" + conv_key, b"", db=self.db["user_convs"])  # type: ignore[operator]
        created_ms = _U64.unpack_from(conv.tail)[0]
        conv.tail = _encode_conversation(ConversationRecord(0, created_ms, members))[_U64.size :]
        conv.members = members
        self.dirty.add(conversation_id)
        return True

    def duplicate(self, r: SendRequest, earlier: IdempotencyRecord) -> SendResult:
        """The original message; rebuilt from the idempotency record if retention already deleted it."""
        raw = self.txn.get(message_key(earlier.conversation_id, earlier.seq), db=self.db["messages"])
        msg = decode_message(raw) if raw else StoredMessage(
            earlier.conversation_id, earlier.seq, earlier.server_msg_id, earlier.timestamp_ms, r.sender,
            r.client_msg_id, r.content_type, r.body, r.metadata,
        )  # fmt: skip
        conv = self.conversation(earlier.conversation_id)
        return SendResult(_OK, True, msg, conv.members if conv else ())

    def create(self, conversation_id: int, names: tuple[str, ...]) -> _Conversation | None:
        members = tuple(dict.fromkeys(names))
        keys = [id_key(m) for m in members]
        if len(members) > MAX_MEMBERS or None in keys:
            return None
        conv_key = _U64.pack(conversation_id)
        for key in keys:
            self.txn.put(key + b"\0" + conv_key, b"", db=self.db["user_convs"])  # type: ignore[operator]
        raw = _encode_conversation(ConversationRecord(0, self.now_ms, members))
        conv = _Conversation(0, members, raw[_U64.size :])
        self.conversations[conversation_id] = conv
        self.dirty.add(conversation_id)
        return conv

    def cursor(self, u: CursorUpdate) -> None:
        """Apply one cumulative ack; ignored for a non-member or an unknown conversation."""
        user = id_key(u.user)
        conv = self.conversation(u.conversation_id) if 0 <= u.conversation_id < _U64_LIMIT else None
        if user is None or conv is None or u.user not in conv.members:
            return
        key = user + b"\0" + _U64.pack(u.conversation_id)
        raw = self.txn.get(key, db=self.db["cursors"])
        seq = min(u.seq, conv.last_seq)
        if seq > (_U64.unpack(raw)[0] if raw else 0):
            self.txn.put(key, _U64.pack(seq), db=self.db["cursors"])

    def finish(self) -> None:
        put, conversations = self.txn.put, self.db["conversations"]
        for conversation_id in self.dirty:
            conv = self.conversations[conversation_id]
            assert conv is not None
            put(_U64.pack(conversation_id), _U64.pack(conv.last_seq) + conv.tail, db=conversations)
        put(_NEXT_ID_KEY, _U64.pack(self.next_id), db=self.db["meta"])


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
        self._conversations: dict[int, _Conversation] = {}  # used by the writer only, see _Batch
        self._writing = threading.Lock()  # one write transaction at a time, taken before the guard: see _write
        self.maintenance_lock = threading.Lock()
        """Held by retention (`maintenance.expire`), which is not reentrant: one archive per batch of deletions."""
        if not readonly:
            self.path.mkdir(parents=True, exist_ok=True)
        self.env = lmdb.open(
            str(self.path), subdir=True, map_size=map_size, max_dbs=MAX_TABLES, sync=sync, metasync=sync,
            readonly=readonly, create=not readonly,
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
            txn.put(SCHEMA_KEY, _U32.pack(SCHEMA_VERSION), db=db["meta"])
            txn.put(_NEXT_ID_KEY, _U64.pack(1), db=db["meta"])
        elif (version := _U32.unpack(raw)[0]) > SCHEMA_VERSION:
            raise SchemaError(f"{self.path}: schema version {version}, newer than {SCHEMA_VERSION}: upgrade kefu")
        return db

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
        """Store a batch in one durable transaction: results in request order, cursors applied after the sends."""

        def work(txn: lmdb.Transaction[bytes]) -> tuple[list[SendResult], _Batch]:
            batch = _Batch(
                txn, self._db, now_ms, self.idempotency_window_ms, cache=self._conversations, tables=self.tables
            )
            results = [batch.send(r) for r in requests]
            for update in cursors:
                batch.cursor(update)
            batch.finish()
            return results, batch

        results, batch = self.writing(work)
        batch.keep()
        return results

    def put_app(self, app_id: str, record: bytes) -> None:
        """Store (or replace) an app's record, durably."""
        key = self._app_key(app_id)
        self.writing(lambda txn: txn.put(key, record, db=self._db["apps"]))

    def delete_app(self, app_id: str) -> bool:
        """Remove an app's record durably; False if there was none."""
        key = self._app_key(app_id)
        return self.writing(lambda txn: txn.delete(key, db=self._db["apps"]))

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
            raw = txn.get(_U64.pack(conversation_id), db=self._db["conversations"])
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
            raw = txn.get(_U64.pack(conversation_id), db=self._db["conversations"])
        return _decode_conversation(raw) if raw else None

    def cursor(self, user: str, conversation_id: int) -> int:
        """The highest seq `user` acknowledged in the conversation; 0 if none."""
        key = id_key(user)
        if key is None:
            return 0
        with self.reading() as txn:
            raw = txn.get(key + b"\0" + _U64.pack(conversation_id), db=self._db["cursors"])
        return _U64.unpack(raw)[0] if raw else 0

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
                key = _U64.pack(conversation_id)
                raw = txn.get(prefix + b"\0" + key, db=self._db["cursors"])
                acked = _U64.unpack(raw)[0] if raw else 0
                last = self._last_seq(txn, conversation_id, txn.get(key, db=self._db["conversations"]))
                if acked < last:
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
                    yield _U64.unpack_from(k, len(prefix))[0]

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

    def last_key(self, name: str) -> bytes | None:
        """The greatest key of a named db, or None if it is empty."""
        with self.reading() as txn, txn.cursor(self._db[name]) as cur:
            return cur.key() if cur.last() else None

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
