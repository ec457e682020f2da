"""Sequencing: what each SendRequest of a batch becomes (a seq, a server_msg_id, a refusal, a duplicate), in memory.

Theory of operation
-------------------
One thread sequences (the group commit's writer; `Store.commit` for tools and tests). It reads the state the batch
starts from through a `Source` (LMDB, merged with the overlay of durable records not yet indexed) and keeps every
change of the batch in the batch (`_Run`), so a batch that is not made durable leaves nothing behind. Once the
caller has made the batch's records durable it calls `Sequencer.keep`: the conversations the batch touched go to
`cache`, the next server_msg_id moves on. A cached conversation costs no read at all, where a first one costs a
record read and a descent of ``messages`` for its last seq. The cache stays right because this sequencer is the only
one to change a conversation's last seq or members; retention only raises a record's floor to a seq the
conversation already has.

A batch produces one `records.Write` per stored request (its message, its membership change and its `puts`, all or
nothing) and at most one `records.Cursors` with the batch's cursor advances, coalesced per (user, conversation)
and applied after its sends (an acknowledgement may cover a message of the same batch).

Sealing (`kefu.server.storage.sealing`, spec section 12): each message is sealed here, once, as the ``messages`` table
will hold it, and so are the values of its `puts`; the log carries those sealed bytes and the indexer copies them
into LMDB unchanged. The clear message and puts stay in the `Write` for the overlay, which serves them from memory.
A conversation whose stored record does not open (`Damaged`, reported where it was read) takes no SEND: each one
gets STORAGE_UNAVAILABLE (NOT_FOUND would say it does not exist), and its cursor advances are dropped.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Final, Protocol

from kefu.protocol.errors import ErrorCode

from ..engine.messages import CursorUpdate, SendRequest, SendResult, StoredMessage, encode_message
from .records import CREATED, REPLACED, UNCHANGED, Cursors, Put, Write, encode_cursors, encode_write
from .schema import MAX_MEMBERS, U64_LIMIT, IdempotencyRecord, id_key, message_key
from .sealing import Damaged, Sealer

__all__ = ["Conversation", "Sequenced", "Sequencer", "Source"]

CONVERSATION_CACHE_SIZE: Final = 100_000  # conversations the sequencer keeps between batches (cleared when full)
MAX_METADATA: Final = 0xFF  # MetaEntry list<u8>, as in SEND
MAX_ID_BYTES: Final = 255


def _refused(code: ErrorCode) -> SendResult:
    return SendResult(int(code), False, None, ())


BAD_REQUEST: Final = _refused(ErrorCode.BAD_REQUEST)
FORBIDDEN: Final = _refused(ErrorCode.FORBIDDEN)
NOT_FOUND: Final = _refused(ErrorCode.NOT_FOUND)
UNAVAILABLE: Final = _refused(ErrorCode.STORAGE_UNAVAILABLE)
_OK: Final = int(ErrorCode.OK)


class Conversation:
    """A conversation as sequencing sees it: its last seq, members and creation time."""

    __slots__ = ("created_ms", "last_seq", "members")

    def __init__(self, last_seq: int, members: tuple[str, ...], created_ms: int) -> None:
        self.last_seq, self.members, self.created_ms = last_seq, members, created_ms


class Source(Protocol):
    """The state a batch starts from (durable: indexed in LMDB, or in the overlay)."""

    def conversation(self, conversation_id: int) -> Conversation | None:
        """A conversation's state, or None if it does not exist; raises `Damaged` (reported) if its record does
        not open."""

    def idempotency(self, key: bytes) -> IdempotencyRecord | None:
        """The entry of (sender + 0x00 + client_msg_id), or None (also if it does not open: reported)."""

    def message(self, conversation_id: int, seq: int) -> StoredMessage | None:
        """A stored message (None once retention deleted it, or if it does not open: reported)."""

    def next_server_msg_id(self) -> int:
        """The id the next stored message gets."""


@dataclass(slots=True)
class Sequenced:
    """A sequenced batch: results in request order, and the records to log (writes, then cursors if any)."""

    results: list[SendResult]
    records: list[Write | Cursors]
    payloads: list[bytes]
    messages: int
    conversations: dict[int, Conversation | None] = field(default_factory=dict)
    next_id: int = 0


def _valid_request(r: SendRequest, tables: frozenset[str]) -> bool:
    """Whether the values fit the stored layout (the gateway checks the product rules, such as empty bodies), and
    `puts` names only `tables` (those the layers above registered)."""
    return (
        len(r.client_msg_id) == 16
        and 0 <= r.conversation_id < U64_LIMIT
        and 0 <= r.content_type <= 0xFFFF
        and len(r.body) < 1 << 32
        and (not r.metadata or _valid_metadata(r.metadata))
        and (not r.puts or all(name in tables and len(key) <= 0xFFFF for name, key, _ in r.puts))
    )


def _valid_metadata(metadata: tuple[tuple[str, bytes], ...]) -> bool:
    return len(metadata) <= MAX_METADATA and all(
        0 < len(k.encode()) <= MAX_ID_BYTES and len(v) <= 0xFFFF for k, v in metadata
    )


def _members(names: Sequence[str]) -> tuple[str, ...] | None:
    """The members, each once in order, or None if one cannot be stored."""
    members = tuple(dict.fromkeys(names))
    if len(members) > MAX_MEMBERS or any(id_key(m) is None for m in members):
        return None
    return members


class Sequencer:
    """Sequences batches against a `Source`; keeps what durable batches left (see the module docstring)."""

    def __init__(
        self, *, tables: frozenset[str], window_ms: int, max_record: int = 1 << 62, sealer: Sealer | None = None
    ) -> None:
        """`sealer`: seals messages and puts as they are logged and stored (None: a plain store)."""
        self.tables, self.window_ms, self.max_record = tables, window_ms, max_record
        self.sealer = sealer
        self.cache: dict[int, Conversation] = {}
        self.next_id: int | None = None

    def sequence(
        self, requests: Sequence[SendRequest], cursors: Sequence[CursorUpdate], *, now_ms: int, source: Source
    ) -> Sequenced:
        """Sequence a batch; nothing is kept until `keep`."""
        run = _Run(self, source, now_ms)
        results = [run.send(r) for r in requests]
        run.cursors(cursors)
        return Sequenced(results, run.records, run.payloads, run.messages, run.conversations, run.next_id)

    def keep(self, batch: Sequenced) -> None:
        """The batch's records are durable: remember its conversations and ids for the next batches."""
        cache = self.cache
        if len(cache) + len(batch.conversations) > CONVERSATION_CACHE_SIZE:
            cache.clear()
        for conversation_id, conv in batch.conversations.items():
            if conv is not None:
                cache[conversation_id] = conv
        self.next_id = batch.next_id

    def forget(self) -> None:
        """Drop the cache (the store changed under it: a replay, a restore)."""
        self.cache.clear()
        self.next_id = None


class _Run:
    """One batch being sequenced: every change it makes stays here until `Sequencer.keep`."""

    def __init__(self, sequencer: Sequencer, source: Source, now_ms: int) -> None:
        self.sequencer, self.source, self.now_ms = sequencer, source, now_ms
        self.conversations: dict[int, Conversation | None] = {}
        self.damaged: set[int] = set()  # conversations whose record does not open
        self.idempotency: dict[bytes, tuple[IdempotencyRecord, StoredMessage | None]] = {}
        self.records: list[Write | Cursors] = []
        self.payloads: list[bytes] = []
        self.messages = 0
        self.next_id = sequencer.next_id if sequencer.next_id is not None else source.next_server_msg_id()

    def conversation(self, conversation_id: int) -> Conversation | None:
        if conversation_id in self.conversations:
            return self.conversations[conversation_id]
        cached = self.sequencer.cache.get(conversation_id)
        try:
            conv = cached if cached is not None else self.source.conversation(conversation_id)
        except Damaged:  # reported where it was read; refused below, never taken for a new conversation
            self.damaged.add(conversation_id)
            conv = None
        if conv is not None:
            conv = Conversation(conv.last_seq, conv.members, conv.created_ms)  # a copy: kept only if durable
        self.conversations[conversation_id] = conv
        return conv

    def send(self, r: SendRequest) -> SendResult:
        sender = id_key(r.sender)
        if sender is None or not _valid_request(r, self.sequencer.tables):
            return BAD_REQUEST
        idem_key = sender + b"\0" + r.client_msg_id
        earlier = self.idempotency.get(idem_key)
        record = earlier[0] if earlier else self.source.idempotency(idem_key)
        if record is not None and self.now_ms - record.timestamp_ms < self.sequencer.window_ms:
            return self.duplicate(r, record, earlier[1] if earlier else None)
        target = self.target(r)
        if isinstance(target, SendResult):
            return target
        return self.store(r, idem_key, *target)

    def target(self, r: SendRequest) -> SendResult | tuple[Conversation, tuple[str, ...], int]:
        """The conversation `r` writes to (new if it creates one), its members after `r`, and the kind of
        membership change (`records.UNCHANGED`, CREATED, REPLACED); or the refusal."""
        conv = self.conversation(r.conversation_id)
        membership = UNCHANGED
        if conv is None:
            if r.conversation_id in self.damaged:
                return UNAVAILABLE
            if r.silent or not r.create_members:
                return NOT_FOUND
            created = _members(r.create_members if r.system else (r.sender, *r.create_members))
            if created is None:
                return BAD_REQUEST
            conv, membership = Conversation(0, created, self.now_ms), CREATED
        elif r.sender not in conv.members and not r.system and not r.silent:
            return FORBIDDEN
        if r.set_members is None:
            return conv, conv.members, membership
        replaced = _members(r.set_members)
        return BAD_REQUEST if replaced is None else (conv, replaced, membership or REPLACED)

    def store(
        self, r: SendRequest, idem_key: bytes, conv: Conversation, members: tuple[str, ...], membership: int
    ) -> SendResult:
        """Build the request's record (sealing its message and puts); if it fits in the log, take its seq and id and
        keep its changes."""
        message, raw, seq, sealer = None, b"", conv.last_seq, self.sequencer.sealer
        if not r.silent:
            seq += 1
            message = StoredMessage(
                r.conversation_id, seq, self.next_id, self.now_ms, r.sender, r.client_msg_id, r.content_type,
                r.body, r.metadata,
            )  # fmt: skip
            raw = encode_message(message)
            if sealer is not None:
                raw = sealer.seal("messages", message_key(r.conversation_id, seq), raw)
        puts = r.puts if sealer is None or not r.puts else _sealed(sealer, r.puts)
        logged = members if membership else ()  # a message alone does not repeat the members in the log
        previous = conv.members if membership == REPLACED else ()
        write = Write(r.conversation_id, seq, membership, conv.created_ms, logged, message, raw, puts, previous)
        write.clear_puts = r.puts
        if message is not None:
            write.server_msg_id, write.timestamp_ms, write.sender, write.client_msg_id = (
                message.server_msg_id, self.now_ms, r.sender, r.client_msg_id
            )  # fmt: skip
        payload = encode_write(write)
        if len(payload) > self.sequencer.max_record:
            return BAD_REQUEST  # more than a log segment holds: the store cannot represent it
        recipients = tuple(dict.fromkeys((*conv.members, *members)))  # a replacement: the old and the new members
        conv.last_seq, conv.members = seq, members
        self.conversations[r.conversation_id] = conv
        self.records.append(write)
        self.payloads.append(payload)
        if message is not None:
            self.next_id += 1
            self.messages += 1
            record = IdempotencyRecord(r.conversation_id, seq, message.server_msg_id, self.now_ms)
            self.idempotency[idem_key] = (record, message)
        return SendResult(_OK, False, message, recipients if not r.silent else members)

    def duplicate(self, r: SendRequest, earlier: IdempotencyRecord, message: StoredMessage | None) -> SendResult:
        """The original message; rebuilt from the idempotency record if retention already deleted it."""
        if message is None:
            message = self.source.message(earlier.conversation_id, earlier.seq)
        if message is None:
            message = StoredMessage(
                earlier.conversation_id, earlier.seq, earlier.server_msg_id, earlier.timestamp_ms, r.sender,
                r.client_msg_id, r.content_type, r.body, r.metadata,
            )  # fmt: skip
        conv = self.conversation(earlier.conversation_id)
        return SendResult(_OK, True, message, conv.members if conv else ())

    def cursors(self, updates: Sequence[CursorUpdate]) -> None:
        """The batch's cumulative acks, one per (user, conversation), clamped to the last seq; a non-member's, or
        one of an unknown conversation, is dropped."""
        latest: dict[tuple[str, int], int] = {}
        for u in updates:
            conv = self.conversation(u.conversation_id) if 0 <= u.conversation_id < U64_LIMIT else None
            if conv is None or id_key(u.user) is None or u.user not in conv.members:
                continue
            seq = min(u.seq, conv.last_seq)
            key = (u.user, u.conversation_id)
            if seq > latest.get(key, 0):
                latest[key] = seq
        if latest:
            record = Cursors(tuple((user, conv, seq) for (user, conv), seq in latest.items()))
            self.records.append(record)
            self.payloads.append(encode_cursors(record))


def _sealed(sealer: Sealer, puts: tuple[Put, ...]) -> tuple[Put, ...]:
    """`puts` with each value sealed under its (table, key); deletions stay None."""
    return tuple((table, key, None if value is None else sealer.seal(table, key, value)) for table, key, value in puts)
