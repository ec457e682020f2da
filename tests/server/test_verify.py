"""kefu verify (kefu.server.storage.verify) on real stores: written by the real write path (log, indexer, sealing
under a real SM4-GCM data key), copied, then damaged on disk the ways a disk or an operator damages them; each
damage must be reported by table and key, and none may end the check."""

from __future__ import annotations

import asyncio
import base64
import gzip
import json
import os
import shutil
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import lmdb
import pytest

from kefu.server.admin.verify import restore_check
from kefu.server.engine.messages import SendRequest
from kefu.server.identity.datakeys import load_data_keys, sealer_of
from kefu.server.storage import maintenance
from kefu.server.storage.conversations import LogSettings, open_conversations
from kefu.server.storage.datadir import RestoreError
from kefu.server.storage.logfile import read_log, segment_name
from kefu.server.storage.preflight import P_BRANCH, P_LEAF, PAGE_HEADER, DamagedTree, check_store_dir
from kefu.server.storage.schema import LOG_DIR, LOG_POSITION_KEY, MAX_TABLES, LogPosition, message_key
from kefu.server.storage.store import Store
from kefu.server.storage.verify import Report, verify_store
from kefu.server.storage.verify_tables import PROGRESS_EVERY

CONVERSATIONS = 6
INDEXED = 600  # messages indexed into LMDB
LOGGED = 40  # messages left in the log only (the indexer never ran over them)


def req(n: int) -> SendRequest:
    conv = 1 + n % CONVERSATIONS
    return SendRequest(
        f"user{conv}", n.to_bytes(16, "big"), conv, 1, f"card lost, message {n}".encode(), (), create_members=("agent",)
    )


async def _write(data: Path) -> None:
    loop = asyncio.get_running_loop()
    sealer = sealer_of(data, "sm4-gcm")
    store = Store(data / "store", sealer=sealer)
    log = open_conversations(store, loop, LogSettings(index_interval_s=0.05), data_dir=data)
    log.start()
    await _send(log, range(INDEXED))
    await log.close()  # indexes everything
    store.close()
    store = Store(data / "store", sealer=sealer)
    used = maintenance.store_stats(store)["used_bytes"]
    now_ms = int(time.time() * 1000)
    maintenance.expire(store, now_ms=now_ms, max_age_s=None, max_bytes=used - (16 << 10), archive_dir=data / "archive")
    log = open_conversations(store, loop, LogSettings(index_interval_s=3600.0), data_dir=data)
    log.start()
    await _send(log, range(INDEXED, INDEXED + LOGGED))
    await log.committer.stop()  # logged, never indexed: as if killed now
    await log.indexer.stop_async(index_rest=False)
    store.close()


async def _send(log: object, numbers: range) -> None:
    loop = asyncio.get_running_loop()
    futures = []
    for n in numbers:
        future = loop.create_future()
        log.submit(req(n), future.set_result)  # type: ignore[attr-defined]
        futures.append(future)
    results = await asyncio.gather(*futures)
    assert all(r.status == 0 for r in results)


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A data directory written once by the real write path: messages indexed, some archived, a log tail."""
    data = tmp_path_factory.mktemp("pristine") / "data"
    asyncio.run(_write(data))
    return data


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    """A copy of `pristine` for one test to damage."""
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    (copy / "store" / "lock.mdb").unlink(missing_ok=True)
    return copy


def check(data: Path) -> Report:
    return verify_store(data / "store", load_data_keys(data), archive_dir=data / "archive")


def where(report: Report) -> set[tuple[str, bytes]]:
    return {(f.table, f.key) for f in report.findings}


@pytest.fixture
def env(data: Path) -> Iterator[lmdb.Environment]:
    e = lmdb.open(str(data / "store"), max_dbs=MAX_TABLES, map_size=1 << 30)
    yield e
    e.close()


def values(env: lmdb.Environment, table: str) -> list[tuple[bytes, bytes]]:
    with env.begin() as txn:
        return list(txn.cursor(env.open_db(table.encode(), txn=txn, create=False)))


def flip_in_file(data: Path, value: bytes, at: int) -> None:
    """Flip a byte of `value` where the data file holds it (the bytes a disk error would change): at every place,
    since copy-on-write may have left stale copies of its page in free pages."""
    path = data / "store" / "data.mdb"
    raw = path.read_bytes()
    offset = raw.find(value)
    assert offset >= 0
    with path.open("r+b") as f:
        while offset >= 0:
            f.seek(offset + at)
            f.write(bytes([raw[offset + at] ^ 0x5A]))
            offset = raw.find(value, offset + 1)


def log_tail(data: Path) -> Path:
    """The log segment holding the records after the indexed position (where the first of them is)."""
    e = lmdb.open(str(data / "store"), max_dbs=MAX_TABLES, readonly=True, lock=False)
    try:
        with e.begin() as txn:
            raw = txn.get(LOG_POSITION_KEY, db=e.open_db(b"meta", txn=txn, create=False))
    finally:
        e.close()
    _, _, after = next(read_log(data / "store" / LOG_DIR, LogPosition.decode(raw)))
    return data / "store" / LOG_DIR / segment_name(after.segment)


# --- clean ---------------------------------------------------------------------------------------------------------


def test_a_clean_store_and_its_backup_verify_clean(data: Path, tmp_path: Path) -> None:
    report = check(data)
    assert report.clean, [f.line() for f in report.findings]
    assert report.sealed is True and set(report.key_ids) == {1}
    assert all(t.complete for t in report.tables.values())
    messages = report.tables["messages"].entries
    assert 0 < messages < INDEXED, "some messages were archived"
    archive_lines = sum(len(gzip.decompress(p.read_bytes()).splitlines()) for p in (data / "archive").iterdir())
    assert messages + archive_lines == INDEXED
    assert report.records > 4 * messages + LOGGED, "every table, the log tail and the archives were read"
    store = Store(data / "store", sealer=sealer_of(data, "sm4-gcm"))
    try:
        maintenance.backup(store, tmp_path / "backup")
    finally:
        store.close()
    files = sorted((tmp_path / "backup").iterdir())
    backup = verify_store(tmp_path / "backup", load_data_keys(data))
    assert backup.clean and backup.tables["messages"].entries == messages + LOGGED, "the log tail is in the backup"
    assert sorted((tmp_path / "backup").iterdir()) == files, "nothing is created in a backup"


# --- damaged values -----------------------------------------------------------------------------------------------


def test_flipped_bytes_in_message_values_are_reported_by_key(data: Path, env: lmdb.Environment) -> None:
    stored = values(env, "messages")
    env.close()
    damaged = [stored[3], stored[100], stored[-1]]
    for i, (_, value) in enumerate(damaged):
        flip_in_file(data, value, 40 + i)  # inside the ciphertext or the tag
    report = check(data)
    assert {(t, k) for t, k in where(report) if t == "messages"} == {("messages", k) for k, _ in damaged}
    assert all("tag does not match" in f.reason for f in report.findings), [f.line() for f in report.findings]
    assert report.skipped >= 3, "the idempotency entries of the damaged messages were not checked against them"
    assert all(t.complete for t in report.tables.values())
    conversation, seq = struct.unpack("!QQ", damaged[0][0])
    store = Store(data / "store", sealer=sealer_of(data, "sm4-gcm"))
    try:  # the server reads it: a placeholder is served, and the message is marked in meta
        assert store.read_range(conversation, seq - 1, seq, 1)[0].sender != f"user{conversation}"
    finally:
        store.close()
    assert check(data).marked == {conversation: [seq]}


def test_a_value_swapped_between_two_keys_is_reported_at_both(data: Path, env: lmdb.Environment) -> None:
    (k1, v1), (k2, v2) = values(env, "messages")[10:12]
    with env.begin(write=True) as txn:
        db = env.open_db(b"messages", txn=txn, create=False)
        txn.put(k1, v2, db=db)
        txn.put(k2, v1, db=db)
    env.close()
    report = check(data)
    assert where(report) == {("messages", k1), ("messages", k2)}
    assert [f.where for f in report.findings] == ["conversation {} seq {}".format(*struct.unpack("!QQ", k)) for k in
                                                  (k1, k2)]  # fmt: skip


def test_a_damaged_idempotency_entry_is_reported(data: Path, env: lmdb.Environment) -> None:
    key, value = values(env, "idempotency")[7]
    env.close()
    flip_in_file(data, value, len(value) - 1)  # the tag's last byte
    report = check(data)
    assert where(report) == {("idempotency", key)}
    assert report.findings[0].where.startswith("sender 'user")


def test_an_idempotency_entry_pointing_at_another_message_is_reported(data: Path, env: lmdb.Environment) -> None:
    """An entry sealed correctly (so the tag cannot tell) but naming another sender's message: the cross-check."""
    (key, _), (other_key, other) = values(env, "idempotency")[-2:]  # the newest: still stored, not archived
    sealer = sealer_of(data, "sm4-gcm")
    plain = sealer.open("idempotency", other_key, other)
    with env.begin(write=True) as txn:
        txn.put(key, sealer.seal("idempotency", key, plain), db=env.open_db(b"idempotency", txn=txn, create=False))
    env.close()
    report = check(data)
    assert where(report) == {("idempotency", key)} and "points at conversation" in report.findings[0].reason


def test_index_keys_that_point_nowhere_are_reported(data: Path, env: lmdb.Environment) -> None:
    with env.begin(write=True) as txn:
        txn.put(struct.pack("!QQQ", 5, 99, 1), b"", db=env.open_db(b"expiry", txn=txn, create=False))
        txn.put(b"ghost\0" + struct.pack("!Q", 99), b"", db=env.open_db(b"user_convs", txn=txn, create=False))
    env.close()
    report = check(data)
    assert where(report) == {("expiry", struct.pack("!QQQ", 5, 99, 1)), ("user_convs", b"ghost\0" + bytes(7) + b"c")}


def test_a_second_expiry_key_with_another_time_is_found_by_the_counts(data: Path, env: lmdb.Environment) -> None:
    key, _ = values(env, "messages")[0]
    with env.begin(write=True) as txn:
        txn.put(struct.pack("!Q", 1) + key, b"", db=env.open_db(b"expiry", txn=txn, create=False))  # time 1 ms
    env.close()
    [finding] = check(data).findings
    assert finding.table == "expiry" and finding.reason.startswith("1 keys more than messages")


# --- the log and the archives -------------------------------------------------------------------------------------


def test_a_truncated_log_segment_is_reported(data: Path) -> None:
    tail = log_tail(data)
    raw = tail.read_bytes()
    used = len(raw.rstrip(b"\0"))
    os.truncate(tail, used // 2)  # cut inside the records
    report = check(data)
    logged = [f for f in report.findings if f.table == "log"]
    assert logged and any(tail.name in f.where for f in logged), [f.line() for f in report.findings]
    assert {f.table for f in report.findings} == {"log"}


def test_a_flipped_byte_inside_the_log_is_reported_with_what_follows(data: Path) -> None:
    tail = log_tail(data)
    raw = bytearray(tail.read_bytes())
    raw[len(raw.rstrip(b"\0")) // 3] ^= 0x01  # a record in the middle of the tail
    tail.write_bytes(bytes(raw))
    report = check(data)
    [finding] = [f for f in report.findings if f.table == "log"]
    assert tail.name in finding.where and "follows" in finding.reason


def test_a_damaged_archive_line_and_a_cut_archive_are_reported(data: Path) -> None:
    first, *_ = archives = sorted((data / "archive").glob("*.jsonl.gz"))
    lines = gzip.decompress(first.read_bytes()).splitlines(keepends=True)
    line = json.loads(lines[2])
    value = bytearray(base64.b64decode(line["value"]))
    value[-3] ^= 0x10
    lines[2] = json.dumps({"key": line["key"], "value": base64.b64encode(bytes(value)).decode()}).encode() + b"\n"
    first.write_bytes(gzip.compress(b"".join(lines)))
    report = check(data)
    assert [(f.table, f.where) for f in report.findings] == [("archive", f"{first.name} line 3")]
    assert "tag does not match" in report.findings[0].reason
    if len(archives) > 1 or len(lines) > 1:
        raw = first.read_bytes()
        first.write_bytes(raw[: len(raw) - 20])  # cut: the gzip trailer and some data gone
        assert any("gzip stream" in f.reason for f in check(data).findings)


# --- LMDB's structure ---------------------------------------------------------------------------------------------


def table_pages(path: Path, table: bytes, flag: int) -> list[int]:
    """The pages of `table` with page flag `flag`, found by walking the file from its current meta page."""
    raw = path.read_bytes()
    psize = struct.unpack_from("=I", raw, 16 + 24)[0]
    metas = [struct.unpack_from("=IIQQ" + "IHHQQQQQ" * 2 + "QQ", raw, i * psize + 16) for i in (0, 1)]
    main_root = max(metas, key=lambda m: m[-1])[19]
    found: list[int] = []

    def walk(pgno: int, inside: bytes | None) -> None:
        page = raw[pgno * psize : (pgno + 1) * psize]
        _, _, flags, lower, _ = PAGE_HEADER.unpack_from(page)
        if inside == table and flags & flag:
            found.append(pgno)
        for i in range((lower - PAGE_HEADER.size) // 2):
            node = struct.unpack_from("=H", page, PAGE_HEADER.size + 2 * i)[0]
            lo, hi, node_flags, ksize = struct.unpack_from("=HHHH", page, node)
            if flags & P_BRANCH:
                walk(lo | hi << 16 | node_flags << 32, inside)
            elif flags & P_LEAF and inside is None:  # the main db: one node per table
                root = struct.unpack_from("=Q", page, node + 8 + ksize + 40)[0]
                if root != (1 << 64) - 1:
                    walk(root, page[node + 8 : node + 8 + ksize])

    walk(main_root, None)
    return found


@pytest.mark.parametrize("leaf", ["second", "before-middle", "middle"])
def test_a_damaged_b_tree_page_is_reported_without_ending_the_check(
    pristine: Path, data: Path, leaf: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A leaf page of messages with its type flags flipped: LMDB aborts whatever walks onto it (an assert() in
    mdb_cursor_next): verify reports the table, reads it from both ends, and checks every other table. Wherever the
    page lies (the store's layout shifts with the write path's batching): only that page's entries and at most
    PROGRESS_EVERY - 1 before it go unread, even when the child dies before its first progress line. The children
    run with their stdout buffered as in production (the tests' environment may set PYTHONUNBUFFERED)."""
    monkeypatch.delenv("PYTHONUNBUFFERED", raising=False)
    path = data / "store" / "data.mdb"
    leaves = table_pages(path, b"messages", P_LEAF)
    assert len(leaves) > 4
    page = leaves[{"second": 1, "before-middle": len(leaves) // 2 - 1, "middle": len(leaves) // 2}[leaf]]
    with path.open("r+b") as f:
        f.seek(page * 4096)  # 4 KiB pages on this platform
        lower = PAGE_HEADER.unpack(f.read(PAGE_HEADER.size))[3]
        f.seek(page * 4096 + 10)  # the page header's flags
        f.write(struct.pack("=H", P_BRANCH))
    on_page = (lower - PAGE_HEADER.size) // 2
    report = check(data)
    messages = report.tables["messages"]
    assert not messages.complete and not report.clean
    assert any(f.table == "messages" and "B-tree is damaged" in f.reason for f in report.findings)
    incomplete = {name for name, t in report.tables.items() if not t.complete}
    assert incomplete == {"messages"} and len(report.tables) > 8, report.findings
    stored = sum(1 for _ in values_of(pristine, "messages"))
    assert stored - on_page - (PROGRESS_EVERY - 1) <= messages.entries <= stored - on_page, report.findings


def test_a_damaged_table_root_is_named_as_the_server_refuses_it_and_the_check_goes_on(data: Path) -> None:
    """The header of a table's root page overwritten: a server's open refuses the store (preflight's check of the
    trees' tops); verify names the same page, and still reads every other table."""
    path = data / "store" / "data.mdb"
    (root,) = table_pages(path, b"user_convs", P_LEAF)  # a small table: its root is its one leaf
    with path.open("r+b") as f:
        f.seek(root * 4096)
        f.write(b"\xa5" * 64)
    with pytest.raises(DamagedTree, match=f"damaged at page {root} "):
        check_store_dir(data / "store")
    report = check(data)
    assert any(f.where == f"page {root}" and "a server refuses to open it" in f.reason for f in report.findings)
    assert {name for name, t in report.tables.items() if not t.complete} <= {"user_convs"} and not report.clean
    assert report.tables["messages"].complete and report.tables["idempotency"].complete


def values_of(data: Path, table: str) -> Iterator[bytes]:
    e = lmdb.open(str(data / "store"), max_dbs=MAX_TABLES, readonly=True, lock=False)
    try:
        with e.begin() as txn:
            yield from (k for k, _ in txn.cursor(e.open_db(table.encode(), txn=txn, create=False)))
    finally:
        e.close()


def test_values_under_a_data_key_not_given_are_counted_not_reported(data: Path) -> None:
    report = verify_store(data / "store", [])
    assert not report.findings and not report.clean
    assert report.missing_keys[1] == report.key_ids[1] > INDEXED // 2  # idempotency entries name no key
    assert message_key(1, 1)  # the keys themselves were still checked


def test_restore_check_names_a_missing_key_and_a_wrong_key_under_the_same_id(data: Path, tmp_path: Path) -> None:
    """The check `kefu restore` makes of a staged backup (kefu.server.admin.verify.restore_check)."""
    staged = data / "store"
    other = tmp_path / "other"
    with pytest.raises(RestoreError, match=r"sealed under data key\(s\) 1, which .* does not hold: copy data-1.key"):
        restore_check(other, force=True)(staged)  # no keys at all: even --force refuses
    sealer_of(other, "sm4-gcm")  # another deployment's data key 1
    with pytest.raises(RestoreError, match=r"under data key\(s\) 1 opens with data-1.key .* same id"):
        restore_check(other, force=True)(staged)
    restore_check(data, force=False)(staged)  # its own keys: clean, nothing raised
