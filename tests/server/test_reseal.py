"""The one-time sealing of a plain store and the reseal after a rotation (kefu.server.storage.reseal), on real LMDB
with real SM4-GCM / AES-GCM keys."""

from __future__ import annotations

import sys
import textwrap
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from kefu.server.engine.messages import SendRequest
from kefu.server.identity.datakeys import add_data_key, sealer_of
from kefu.server.runtime.datakeys import changed_keys
from kefu.server.storage.reseal import MIGRATION_KEY, RESEAL_KEY, Resealer, count_sealed, migrate, sealed_tables
from kefu.server.storage.sealing import INDEXED_TABLES, DataKey, Sealer, index_entry, key_id_of
from kefu.server.storage.store import Store

from .children import lines_until_killed

KEY1 = DataKey(1, "sm4-gcm", bytes(range(16)))
KEY2 = DataKey(2, "aes-gcm", bytes(range(32)))
TABLES = ("svc",)


def _fill(store: Store, conversations: int = 30, per_conversation: int = 10) -> None:
    """Messages (so conversations, cursors, idempotency entries and the key-only indexes), apps and a registered
    table with empty values too, as the code that writes plain values writes them."""
    for c in range(1, conversations + 1):
        requests = [
            SendRequest("alice", (c * 1000 + n).to_bytes(16, "big"), c, 1, f"card lost {c}/{n}".encode(),
                        (("k", b"v"),), create_members=("bob",),
                        puts=(("svc", f"s{c}-{n}".encode(), b"" if n % 2 else b"x" * n),))
            for n in range(per_conversation)
        ]  # fmt: skip
        store.commit(requests, [], now_ms=1_700_000_000_000 + c)
    for a in range(5):
        store.put_app(f"app{a}", f"verifier {a}".encode())


def _raw(store: Store, table: str) -> list[tuple[bytes, bytes]]:
    """A table's keys and values as stored (sealed or not)."""
    with store.reading() as txn, txn.cursor(store.handle(table)) as cur:
        return list(cur)


def _get(store: Store, table: str, key: bytes) -> bytes:
    with store.reading() as txn:
        return txn.get(key, db=store.handle(table)) or b""


def _meta(store: Store, key: bytes) -> bytes | None:
    with store.reading() as txn:
        return txn.get(key, db=store.handle("meta"))


def _values(store: Store) -> dict[tuple[str, bytes], bytes]:
    return {(table, key): value for table in sealed_tables(store) for key, value in _raw(store, table)}


@pytest.fixture
def plain(tmp_path: Path) -> Iterator[Store]:
    s = Store(tmp_path / "db", tables=TABLES)
    _fill(s)
    yield s
    s.close()


def test_migrate_seals_every_value_once_and_leaves_the_key_only_tables(plain: Store) -> None:
    before = _values(plain)
    user_convs = _raw(plain, "user_convs")
    sealer = Sealer([KEY1])
    finished = []
    sealed = migrate(plain, sealer, batch_values=37, finish=lambda txn: finished.append(True))
    assert sealed == len(before) > 300
    assert finished == [True]
    after = _values(plain)
    assert after.keys() == before.keys()
    for (table, key), value in after.items():
        assert key_id_of(value) == 1 or (table in INDEXED_TABLES and value[:1] == b"\x03")  # an index entry: no key
        assert sealer.open(table, key, value) == before[table, key]
    assert _raw(plain, "user_convs") == user_convs
    assert _meta(plain, MIGRATION_KEY) is None  # `finish` ends it (the caller's schema version says)


def test_migrate_without_finish_records_completion_and_does_not_run_twice(plain: Store) -> None:
    before = _values(plain)
    sealer = Sealer([KEY1])
    assert migrate(plain, sealer, batch_values=100) == len(before)
    assert migrate(plain, sealer, batch_values=100) == 0
    for (table, key), value in _values(plain).items():
        assert sealer.open(table, key, value) == before[table, key]


_MIGRATE_SLOWLY = textwrap.dedent(
    """
    import sys, time
    from kefu.server.storage.reseal import migrate
    from kefu.server.storage.sealing import DataKey, Sealer
    from kefu.server.storage.store import Store
    store = Store(sys.argv[1], tables=("svc",))
    def batch(table, sealed):
        print(table, sealed, flush=True)
        time.sleep(0.01)
    migrate(store, Sealer([DataKey(1, "sm4-gcm", bytes(range(16)))]), batch_values=20, on_batch=batch)
    print("done", flush=True)
    """
)


def test_migrate_killed_midway_goes_on_where_it_stopped(plain: Store) -> None:
    before = _values(plain)
    path = plain.path
    plain.close()
    lines = lines_until_killed([sys.executable, "-c", _MIGRATE_SLOWLY, str(path)], 5.0, 6)
    assert "done\n" not in lines and len(lines) >= 6  # six batches committed at least, then the kill
    store = Store(path, tables=TABLES)
    try:
        sealer = Sealer([KEY1])
        partial = _values(store)
        done_already = sum((key_id_of(v) == 1 and sealer.opens(t, k, v)) or index_entry(t, v) is not None
                           for (t, k), v in partial.items())  # fmt: skip
        assert 6 * 20 <= done_already < len(before)  # the kill came midway
        rest = migrate(store, sealer, batch_values=50)
        assert rest == len(before) - done_already  # nothing sealed twice, nothing left out
        for (table, key), value in _values(store).items():
            assert sealer.open(table, key, value) == before[table, key]
    finally:
        store.close()


def _sealed_store(path: Path) -> tuple[Store, dict[tuple[str, bytes], bytes]]:
    """A store whose values are sealed under KEY1; returns it and the plain values."""
    store = Store(path, tables=TABLES)
    _fill(store)
    before = _values(store)
    migrate(store, Sealer([KEY1]), finish=lambda txn: None)
    return store, before


def test_reseal_moves_every_value_to_the_new_key(tmp_path: Path) -> None:
    store, before = _sealed_store(tmp_path / "db")
    observed: list[dict[int, int]] = []
    rotated = Sealer([KEY1, KEY2])
    resealer = Resealer(store, rotated, observe=lambda counts: observed.append(dict(counts)), batch_values=40,
                        scan_values=150, duty=1.0)  # fmt: skip
    try:
        resealer.start()
        assert resealer.done.wait(30)
    finally:
        resealer.stop()
    keyed = sum(table not in INDEXED_TABLES for table, _ in before)  # index entries name no key: never resealed
    assert 0 < keyed < len(before)
    totals = {k: sum(c[k] for c in count_sealed(store).values()) for k in (1, 2)}
    assert totals == {1: 0, 2: keyed}
    assert observed[-1] == {2: keyed}
    for (table, key), value in _values(store).items():
        assert rotated.open(table, key, value) == before[table, key]
    assert _meta(store, RESEAL_KEY) == b"\x00\x00\x00\x02\xff"
    store.close()


def test_a_start_walks_nothing_once_everything_is_under_the_sealing_key(tmp_path: Path) -> None:
    """A new store is all under its first key, and a finished pass says so: a start makes no pass over the store
    (it would cost every start a walk of every value); a rotated key makes one."""
    store = Store(tmp_path / "db", tables=TABLES, sealer=Sealer([KEY1]))
    _fill(store)
    assert _meta(store, RESEAL_KEY) == b"\x00\x00\x00\x01\xff"
    observed: list[dict[int, int]] = []
    idle = Resealer(store, Sealer([KEY1]), observe=lambda counts: observed.append(dict(counts)), duty=1.0)
    idle.start()
    try:
        assert idle.done.is_set() and idle.last is None
        time.sleep(0.2)
        assert observed == [], "no pass was made"
    finally:
        idle.stop()
    rotated = Resealer(store, Sealer([KEY1, KEY2]), observe=lambda counts: observed.append(dict(counts)), duty=1.0)
    rotated.start()
    try:
        assert rotated.done.wait(30) and observed and set(observed[-1]) == {2}
    finally:
        rotated.stop()
    store.close()


def test_reseal_never_overwrites_a_value_written_meanwhile(tmp_path: Path) -> None:
    """A writer (as the indexer process) rewrites values under the new key while the reseal runs: each keeps the
    last value written, never an older one sealed again."""
    store, _ = _sealed_store(tmp_path / "db")
    rotated = Sealer([KEY1, KEY2])
    keys = [key for key, _ in _raw(store, "svc")]
    latest: dict[bytes, bytes] = {}
    stop = threading.Event()

    def indexer() -> None:
        n = 0
        while not stop.is_set():
            key = keys[n % len(keys)]
            value = f"rewritten {n}".encode()
            store.writing(lambda txn, k=key, v=value: txn.put(k, rotated.seal("svc", k, v), db=store.handle("svc")))
            latest[key] = value
            n += 1

    writer = threading.Thread(target=indexer)
    resealer = Resealer(store, rotated, batch_values=7, scan_values=20, duty=1.0)
    writer.start()
    try:
        resealer.start()
        assert resealer.done.wait(30)
    finally:
        stop.set()
        writer.join()
        resealer.stop()
    assert len(latest) > 10
    for key, value in _raw(store, "svc"):
        assert key_id_of(value) == 2
        if key in latest:
            assert rotated.open("svc", key, value) == latest[key]
    store.close()


def test_reseal_after_a_restart_goes_on_and_reads_work_meanwhile(tmp_path: Path) -> None:
    store, before = _sealed_store(tmp_path / "db")
    rotated = Sealer([KEY1, KEY2])
    first = Resealer(store, rotated, batch_values=25, scan_values=25, duty=1.0)
    first.start()
    reads = 0
    while _meta(store, RESEAL_KEY) is None:  # reads go on while it runs
        for (table, key), value in list(before.items())[:50]:
            assert rotated.open(table, key, _get(store, table, key)) == value
            reads += 1
    first.stop()
    counts = count_sealed(store)
    left = sum(c[1] for c in counts.values())
    assert 0 < left < len(before)
    again = Resealer(store, rotated, duty=1.0)
    again.start()
    assert again.done.wait(30)
    again.stop()
    assert sum(c[1] for c in count_sealed(store).values()) == 0
    assert reads > 0
    store.close()


_MIGRATE_ENV_SLOWLY = textwrap.dedent(
    """
    import sys, time
    import lmdb
    from kefu.server.storage.reseal import migrate
    from kefu.server.storage.sealing import DataKey, Sealer
    tables = sys.argv[2].split(",")
    env = lmdb.open(sys.argv[1], max_dbs=32)
    with env.begin(write=True) as txn:
        handles = {name: env.open_db(name.encode(), txn=txn) for name in ["meta", *tables]}
    def batch(table, sealed):
        print(table, sealed, flush=True)
        time.sleep(0.01)
    migrate(env, Sealer([DataKey(1, "sm4-gcm", bytes(range(16)))]), handles=handles, tables=tables, batch_values=20,
            on_batch=batch)
    print("done", flush=True)
    """
)


def test_a_version_2_store_killed_midway_is_sealed_when_first_opened(plain: Store) -> None:
    """A schema-2 store (plain values, no "sealed" flag), half sealed by an upgrade killed with SIGKILL, is finished
    by the store's own upgrade at its next open for writing; it then reads as before, through the sealed path."""
    from kefu.server.storage.schema import SCHEMA_KEY, SEALED_KEY, U32  # noqa: PLC0415

    before = _values(plain)
    conversation_1 = plain.read_range(1, 0, 0, 100)
    tables = sealed_tables(plain)
    meta = plain.handle("meta")
    plain.writing(lambda txn: (txn.put(SCHEMA_KEY, U32.pack(2), db=meta), txn.delete(SEALED_KEY, db=meta)))
    path = plain.path
    plain.close()
    lines = lines_until_killed([sys.executable, "-c", _MIGRATE_ENV_SLOWLY, str(path), ",".join(tables)], 5.0, 4)
    assert "done\n" not in lines and len(lines) >= 4
    store = Store(path, tables=TABLES, sealer=Sealer([KEY1]))
    try:
        assert _meta(store, SCHEMA_KEY) == U32.pack(3) and _meta(store, SEALED_KEY) == b"\x01"
        assert _meta(store, MIGRATION_KEY) is None
        sealer = Sealer([KEY1])
        after = _values(store)
        assert after.keys() == before.keys()
        for (table, key), value in after.items():
            assert sealer.open(table, key, value) == before[table, key]  # sealed once: opens to the plain value
        assert store.read_range(1, 0, 0, 100) == conversation_1
    finally:
        store.close()


def test_a_reload_takes_a_rotated_key_that_a_read_already_met(tmp_path: Path) -> None:
    """`kefu data-key rotate`, then `kefu app add` (sealed under the new key) before the SIGHUP: the running core's
    sealer opens the app's record at once (it reads the key files again), and the SIGHUP must still switch its
    sealing key and so start the reseal."""
    running = sealer_of(tmp_path, "sm4-gcm")
    add_data_key(tmp_path, "sm4-gcm")
    app_add = sealer_of(tmp_path, "sm4-gcm")
    assert running.open("apps", b"a", app_add.seal("apps", b"a", b"record")) == b"record"
    assert running.key_ids == {1, 2} and running.active == 1
    reloaded = changed_keys(tmp_path, running)
    assert reloaded is not None and reloaded.active == 2
    assert changed_keys(tmp_path, reloaded) is None
