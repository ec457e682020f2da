"""Sealed values in the store (issue #14 points 3 and 4), on real LMDB files, log segments and crypto.

Nothing of a message, a desk record or an app is in clear at rest (data.mdb, the log, a backup, an archive), in
either cipher, while a plain store holds the same bytes findable (so the search can fail). A value copied under
another key or with flipped bytes is found on read, reported (log line, count, marks) and never served, and each
reader goes on as spec section 12 ("Damage found on read") says. A store is refused when opened with the other
[storage] seal or with keys that open none of it, and a version-2 store (plain values, old log records) is upgraded
in place.
"""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import logging
import struct
import time
from collections.abc import Callable
from pathlib import Path

import lmdb
import pytest

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import SYSTEM_SENDER, ContentType
from kefu.server.engine.messages import CursorUpdate, SendRequest, StoredMessage, encode_message
from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage import maintenance
from kefu.server.storage.conversations import LOG_DIR, LogSettings, open_conversations
from kefu.server.storage.logfile import LogWriter, SegmentFiles
from kefu.server.storage.records import Kind, Write, encode_write_v2
from kefu.server.storage.schema import SCHEMA_KEY, SEALED_KEY, U32, message_key
from kefu.server.storage.sealing import DataKey, Sealer
from kefu.server.storage.store import SCHEMA_VERSION, SealingMismatch, StorageDamaged, Store

NOW = 1_700_000_000_000
CARD = b"I lost my bank card 6222 0212 3456 7890 yesterday, please block it"
NOTE = b"card-loss-case-7788"
DESK = b"desk record: VIP customer, card-loss escalation"
SECRETS = (CARD, NOTE, DESK, b"6222 0212")
TABLES = ("service",)


def req(sender: str, n: int, conv: int, *, body: bytes = CARD, **kw: object) -> SendRequest:
    meta = (("kefu.note", NOTE),)
    return SendRequest(sender, n.to_bytes(16, "big"), conv, 1, body, meta, create_members=("agent",), **kw)  # type: ignore[arg-type]


def found(path: Path) -> list[bytes]:
    """The secrets in the bytes of `path` (every file under it; in archives, the stored values their lines carry)."""
    files = [path] if path.is_file() else [p for p in sorted(path.rglob("*")) if p.is_file()]
    data = b"".join(_archived(p) if p.suffix == ".gz" else p.read_bytes() for p in files)
    return [s for s in SECRETS if s in data]


def _archived(path: Path) -> bytes:
    lines = gzip.decompress(path.read_bytes()).splitlines()
    return b"".join([*lines, *(base64.b64decode(json.loads(line)["value"]) for line in lines)])


async def write_through_the_log(store: Store, n: int) -> None:
    """`n` card-loss messages (and a desk record) through the server's write path: group commit, log, indexer."""
    loop = asyncio.get_running_loop()
    log = open_conversations(store, loop, LogSettings(index_interval_s=0.05))
    log.start()
    futures = [loop.create_future() for _ in range(n)]
    for i, future in enumerate(futures):
        puts = (("service", b"case-1", DESK),) if i == 0 else ()
        log.submit(req("alice", i, 1, puts=puts), future.set_result)
    results = await asyncio.gather(*futures)
    assert all(r.status == ErrorCode.OK for r in results)
    assert log.get_record("service", b"case-1") == DESK and log.read_range(1, 0, 0, 10)[0].body == CARD
    await log.close()


@pytest.mark.asyncio
@pytest.mark.parametrize("cipher", ["sm4-gcm", "aes-gcm", "plain"])
async def test_no_message_text_at_rest(tmp_path: Path, cipher: str) -> None:
    sealer = None if cipher == "plain" else sealer_of(tmp_path, cipher)
    store = Store(tmp_path / "store", tables=TABLES, sealer=sealer)
    await write_through_the_log(store, 20)
    store.put_app("bank-app", b"app record " + NOTE)
    maintenance.backup(store, tmp_path / "backup")
    expired = maintenance.expire(store, now_ms=int(time.time() * 1000) + 10_000, max_age_s=1, max_bytes=None,
                                 archive_dir=tmp_path / "archive")  # fmt: skip
    assert expired.messages_expired == 20 and expired.archives
    archived = [m for p in expired.archives for m in maintenance.read_archive(p, store.values)]
    assert [m.body for m in archived] == [CARD] * 20, "the archive reads back with the data key"
    store.close()
    places = {
        "data.mdb": tmp_path / "store" / "data.mdb",
        "log segments": tmp_path / "store" / LOG_DIR,
        "backup": tmp_path / "backup",
        "archive": tmp_path / "archive",
    }
    seen = {name: found(path) for name, path in places.items()}
    if cipher == "plain":  # the control: the same search finds them where nothing is sealed
        assert all(CARD in hits for name, hits in seen.items()), seen
    else:
        assert seen == {name: [] for name in places}


def tamper(store: Store, table: str, key: bytes, change: Callable[[bytes], bytes]) -> None:
    """Rewrite one stored value (as damage on disk, or someone with write access to the file, would)."""
    db = store.handle(table)
    store.writing(lambda txn: txn.put(key, change(txn.get(key, db=db)), db=db))


def flip(value: bytes) -> bytes:
    damaged = bytearray(value)
    damaged[len(damaged) // 2] ^= 0x40
    return bytes(damaged)


def damaged_lines(caplog: pytest.LogCaptureFixture) -> list[dict[str, object]]:
    return [r.kefu_fields for r in caplog.records if r.msg == "storage.damaged"]  # type: ignore[attr-defined]


def test_a_copied_or_flipped_message_is_reported_and_an_event_takes_its_place(
    store: Store, caplog: pytest.LogCaptureFixture
) -> None:
    sent = [r.message for r in store.commit([req("alice", i, 1, body=b"m%d" % i) for i in range(6)], [], now_ms=NOW)]
    counted: list[str] = []
    store.damage.on_damaged = counted.append
    second = _raw(store, 1, 2)
    tamper(store, "messages", message_key(1, 3), lambda _: second)  # a whole sealed value, under another key
    tamper(store, "messages", message_key(1, 5), flip)
    with caplog.at_level(logging.WARNING, logger="kefu"):
        got = store.read_range(1, 0, 0, 100)
        again = store.read_range(1, 2, 4, 100)
    assert [m.seq for m in got] == [1, 2, 3, 4, 5, 6], "gapless: the stream goes on"
    assert [got[i] for i in (0, 1, 3, 5)] == [sent[i] for i in (0, 1, 3, 5)], "the others are intact"
    for message in (got[2], got[4], again[0]):
        assert message.sender == SYSTEM_SENDER and message.content_type == ContentType.EVENT
        assert json.loads(message.body) == {"event": "damaged", "conversation_id": 1, "seq": message.seq}
        assert CARD not in message.body and message.body != b"m2"
    assert counted == ["messages"] * 3 and store.damage.counts == {"messages": 3}
    [line] = damaged_lines(caplog)  # one line per table per interval; the rest are counted
    assert line["table"] == "messages" and line["record"] == message_key(1, 3).hex()
    assert "tag" in str(line["reason"])
    store.close()  # waits for the marks' thread
    reopened = Store(store.path, sealer=store.sealer)
    assert reopened.damage_marks() == {1: [3, 5]}
    reopened.close()


def _raw(store: Store, conv: int, seq: int) -> bytes:
    with store.reading() as txn:
        raw = txn.get(message_key(conv, seq), db=store.handle("messages"))
    assert raw is not None
    return raw


def test_each_kind_of_damage_has_its_outcome_and_nothing_stops(store: Store) -> None:
    store.commit([req("alice", i, 1) for i in range(3)], [CursorUpdate("agent", 1, 2)], now_ms=NOW)
    store.put_app("web", b"app record")
    assert store.cursor("agent", 1) == 2 and store.get_app("web") == b"app record"
    tamper(store, "cursors", b"agent\0" + struct.pack("!Q", 1), flip)
    tamper(store, "idempotency", b"alice\0" + (1).to_bytes(16, "big"), flip)
    tamper(store, "apps", b"web", flip)
    assert store.cursor("agent", 1) == 0, "a damaged cursor: 0, the stream is delivered again"
    assert store.pending("agent") == [(1, 0, 3)] and store.positions("agent") == [(1, 0, 3)]
    [again] = store.commit([req("alice", 1, 1)], [], now_ms=NOW + 1)
    assert not again.duplicate and again.message is not None and again.message.seq == 4, "stored again, not lost"
    assert store.get_app("web") is None and store.list_apps() == ["web"], "a damaged app does not authenticate"
    assert store.damage.counts == {"cursors": 3, "idempotency": 1, "apps": 1}
    tamper(store, "conversations", struct.pack("!Q", 1), flip)
    store.close()
    store = Store(store.path, sealer=store.sealer)  # a writer that has not seen the conversation since
    with pytest.raises(StorageDamaged):  # it exists: refused (STORAGE_UNAVAILABLE), not absent (NOT_FOUND)
        store.members(1)
    assert store.last_seq(1) == 4 and store.positions("agent") == [(1, 0, 4)], "its messages still count"
    [refused, elsewhere] = store.commit(
        [req("agent", 9, 1), req("bob", 10, 2)], [CursorUpdate("agent", 1, 4)], now_ms=NOW
    )
    assert refused.status == ErrorCode.STORAGE_UNAVAILABLE, "not NOT_FOUND: the conversation exists"
    assert elsewhere.status == ErrorCode.OK, "the rest of the batch goes on"
    assert [m.seq for m in store.read_range(1, 0, 0, 10)] == [1, 2, 3, 4]
    assert store.damage.counts.keys() >= {"conversations"}
    store.close()
    reopened = Store(store.path, sealer=store.sealer)
    assert reopened.damage_marks() == {1: [0]}, "the conversation record itself"
    reopened.close()


def test_a_damaged_desk_record_reads_as_absent(tmp_path: Path) -> None:
    store = Store(tmp_path / "db", tables=TABLES, sealer=sealer_of(tmp_path, "sm4-gcm"))
    puts = (("service", b"a", b"one"), ("service", b"b", b"two"))
    store.commit([req("system", 0, 1, puts=puts)], [], now_ms=NOW)
    assert store.scan("service") == [(b"a", b"one"), (b"b", b"two")]
    b_value = _sealed_value(store, "service", b"b")
    tamper(store, "service", b"a", lambda _: b_value)  # b's value under a's key
    assert store.get_record("service", b"a") is None and store.scan("service") == [(b"b", b"two")]
    store.close()


def _sealed_value(store: Store, table: str, key: bytes) -> bytes:
    with store.reading() as txn:
        raw = txn.get(key, db=store.handle(table))
    assert raw is not None
    return raw


def test_a_store_opens_only_as_it_was_made(tmp_path: Path) -> None:
    sealer = sealer_of(tmp_path, "sm4-gcm")
    sealed = Store(tmp_path / "sealed", sealer=sealer)
    sealed.commit([req("alice", i, 1 + i) for i in range(3)], [], now_ms=NOW)
    sealed.close()
    with pytest.raises(SealingMismatch, match="seal is false"):
        Store(tmp_path / "sealed")
    Store(tmp_path / "plain").close()
    with pytest.raises(SealingMismatch, match="seal = false"):
        Store(tmp_path / "plain", sealer=sealer)
    stranger = Sealer([DataKey(1, "sm4-gcm", bytes(16))])  # same id, another secret: a replaced keys directory
    with pytest.raises(SealingMismatch, match="lost or replaced"):
        Store(tmp_path / "sealed", sealer=stranger)
    with pytest.raises(SealingMismatch, match=r"data key\(s\) 1"):
        Store(tmp_path / "sealed", sealer=Sealer([DataKey(2, "aes-gcm", bytes(32))]))
    assert [m.body for m in Store(tmp_path / "sealed", sealer=sealer).read_range(1, 0, 0, 5)] == [CARD]


def test_a_version_2_store_is_upgraded_in_place(tmp_path: Path) -> None:
    path = tmp_path / "store"
    old = Store(path)  # plain values, as schema 2 kept them
    old.commit([req("alice", i, 1) for i in range(3)], [CursorUpdate("agent", 1, 2)], now_ms=NOW)
    old.put_app("web", b"app record")
    _, position = old.log_state()
    meta = old.handle("meta")
    old.writing(lambda txn: (txn.put(SCHEMA_KEY, U32.pack(2), db=meta), txn.delete(SEALED_KEY, db=meta)))
    old.close()
    tail = StoredMessage(1, 4, 4, NOW, "alice", (99).to_bytes(16, "big"), 1, CARD, ())
    writer = LogWriter(SegmentFiles(path / LOG_DIR, 1 << 20), position)  # a record of the old layout, not indexed
    writer.append([(Kind.WRITE_V2, encode_write_v2(Write(1, 4, 0, 0, (), tail, encode_message(tail), ())))])
    writer.close()
    assert any(CARD in p.read_bytes() for p in (path / LOG_DIR).glob("*.wal"))

    sealer = sealer_of(tmp_path, "sm4-gcm")
    store = Store(path, sealer=sealer)
    assert [m.body for m in store.read_range(1, 0, 0, 10)] == [CARD] * 4, "the old log's tail was replayed"
    assert store.cursor("agent", 1) == 2 and store.get_app("web") == b"app record" and store.members(1)
    assert not list((path / LOG_DIR).glob("*.wal")), "the old segments, messages in clear, are gone"
    with store.reading() as txn:
        assert U32.unpack(txn.get(SCHEMA_KEY, db=store.handle("meta")))[0] == SCHEMA_VERSION
        assert txn.get(SEALED_KEY, db=store.handle("meta")) == b"\x01"
        for table in ("messages", "conversations", "cursors", "idempotency", "apps"):
            with txn.cursor(store.handle(table)) as cur:
                for key, value in cur:
                    sealer.open(table, key, value)  # every value is sealed under its own key
    [new] = store.commit([req("alice", 100, 1)], [], now_ms=NOW)
    assert new.message is not None and new.message.seq == 5
    store.close()
    with pytest.raises(SealingMismatch):
        Store(path)


def test_a_read_only_open_of_a_sealed_store_opens_its_values(tmp_path: Path) -> None:
    sealer = sealer_of(tmp_path, "aes-gcm")
    writer = Store(tmp_path / "db", sealer=sealer)
    writer.put_app("web", b"app record")
    writer.close()
    reader = Store(tmp_path / "db", readonly=True, sealer=sealer)  # as a gateway reads the apps
    assert reader.get_app("web") == b"app record"
    reader.close()
    with lmdb.open(str(tmp_path / "db"), readonly=True, max_dbs=32, lock=False) as env, env.begin() as txn:
        stored = txn.get(b"web", db=env.open_db(b"apps", txn=txn, create=False))
    assert stored is not None and b"app record" not in stored


def _entry_field(index: int, delta: int) -> Callable[[bytes], bytes]:
    """Change one u64 field of an idempotency entry (0 conversation, 1 seq, 2 server_msg_id, 3 time) by `delta`,
    keeping its one-byte header: a well-formed entry that says something else."""

    def change(value: bytes) -> bytes:
        fields = list(struct.unpack("!4Q", value[1:]))
        fields[index] += delta
        return value[:1] + struct.pack("!4Q", *fields)

    return change


@pytest.mark.parametrize(
    ("field", "delta", "reason"),
    [
        (1, -1, "holds another message"),  # the sender's earlier message
        (1, 40, "never stored"),  # past the conversation's last seq
        (0, 1, "never stored"),  # a conversation that does not exist
        (2, 1, "holds another message"),  # the right message, another server_msg_id
        (3, 1, "no idem_expiry key"),  # another time
    ],
)
def test_an_idempotency_entry_is_checked_against_what_it_repeats(
    store: Store, caplog: pytest.LogCaptureFixture, field: int, delta: int, reason: str
) -> None:
    """An idempotency entry carries no tag (sealing.INDEXED_TABLES): a well-formed entry altered in any field is
    found by the reads it repeats, reported, and taken as absent (the retried SEND is stored again, not answered
    with another message's seq); an unaltered one answers the retry as a duplicate."""
    store.commit([req("alice", i, 1) for i in range(1, 4)], [], now_ms=NOW)
    [same] = store.commit([req("alice", 2, 1)], [], now_ms=NOW + 1)
    assert same.duplicate and same.message is not None and same.message.seq == 2, "the control"
    key = b"alice\0" + (2).to_bytes(16, "big")
    assert store.handle("idempotency") is not None
    with store.reading() as txn:
        assert (txn.get(key, db=store.handle("idempotency")) or b"")[:1] == b"\x03", "stored as an index entry"
    tamper(store, "idempotency", key, _entry_field(field, delta))
    store.close()
    store = Store(store.path, sealer=store.sealer)  # a writer that has not seen the entry since (no cache)
    try:
        with caplog.at_level(logging.WARNING):
            [again] = store.commit([req("alice", 2, 1)], [], now_ms=NOW + 2)
        assert not again.duplicate and again.message is not None and again.message.seq == 4, "stored again"
        assert store.damage.counts == {"idempotency": 1}
        assert any(reason in str(line.get("reason")) for line in damaged_lines(caplog)), damaged_lines(caplog)
    finally:
        store.close()


def test_an_idempotency_entry_whose_message_retention_deleted_still_answers_the_retry(store: Store) -> None:
    store.commit([req("alice", i, 1) for i in range(1, 4)], [], now_ms=NOW)
    message = store.handle("messages")
    store.writing(lambda txn: txn.delete(message_key(1, 2), db=message))  # as retention deletes it
    store.close()
    store = Store(store.path, sealer=store.sealer)
    try:
        [same] = store.commit([req("alice", 2, 1)], [], now_ms=NOW + 1)
        assert same.duplicate and same.message is not None and same.message.seq == 2
        assert store.damage.counts == {}
    finally:
        store.close()
