"""The audit trail (issue #14 point 5): one SM3 chain from every process that appends, and every kind of tampering
found in a copy of the store and named by its first bad entry. Real LMDB, real SM4-GCM sealing, real processes."""

from __future__ import annotations

import contextlib
import itertools
import json
import os
import secrets
import shutil
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from kefu.protocol.crypto import hash_digest
from kefu.server.config import load_config
from kefu.server.engine.audit import Action
from kefu.server.identity.datakeys import add_data_key, ensure_data_keys, load_data_keys
from kefu.server.storage import audit
from kefu.server.storage.sealing import DataKey, Sealer
from kefu.server.storage.store import Store
from kefu.server.wiring import open_store

Lines = dict[int, dict[str, Any]]
"""The audit table as a test edits it: key seq -> the stored object (`Entry.line`)."""


@pytest.fixture
def key() -> DataKey:
    return DataKey(1, "sm4-gcm", secrets.token_bytes(16))


@pytest.fixture
def sealed(tmp_path: Path, key: DataKey) -> Iterator[Store]:
    """A sealed store holding entries 1..20 (an app added, searches, a failed-login tally)."""
    store = Store(tmp_path / "store", sealer=Sealer([key]))
    audit.record(store, actor="os:ops", action=Action.APP_ADD, target="bank", details={"role": "integration"})
    for i in range(2, 20):
        audit.record(store, actor="a1", action=Action.SEARCH, details={"query": f"账单 {i}"})
    audit.record(store, actor="mallory", action=Action.AUTH_FAILED, result="AUTH_FAILED", details={"count": 7})
    yield store
    store.close()


def canonical(obj: dict[str, Any]) -> bytes:
    """The encoding spec section 12 documents, written out again here: JSON, keys sorted, no spaces, UTF-8."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def rehash(line: dict[str, Any]) -> dict[str, Any]:
    """`line` with its hash made right for its content (what a forger who knows the algorithm does)."""
    body = {k: v for k, v in line.items() if k != "hash"}
    return {**body, "hash": hash_digest("sm3", canonical(body)).hex()}


def read_lines(store: Store) -> Lines:
    lines = {}
    for stored in audit.entries(store):
        assert stored.entry is not None, stored.error
        lines[stored.seq] = stored.entry.line()
    return lines


def tampered(store: Store, key: DataKey, edit: Callable[[Lines], Lines]) -> Store:
    """A copy of `store` whose audit table is `edit(lines)`, every value sealed again with the data key (so that only
    the chain can tell)."""
    original = read_lines(store)
    copy = store.path.with_name("copy")
    shutil.copytree(store.path, copy)
    forged = Store(copy, sealer=Sealer([key]))
    sealer = Sealer([key])

    def rewrite(txn: Any) -> None:
        db = forged.handle(audit.TABLE)
        txn.drop(db, delete=False)
        for seq, line in edit(dict(original)).items():
            k = audit.seq_key(seq)
            txn.put(k, sealer.seal(audit.TABLE, k, canonical(line)), db=db)

    forged.writing(rewrite)
    return forged


def first_problem(store: Store, anchors: tuple[audit.Anchor, ...] = ()) -> tuple[int, str]:
    report = audit.verify(store, anchors)
    assert report.problem is not None, "the tampering was not detected"
    return report.problem.seq, report.problem.kind


# --- the chain ---------------------------------------------------------------------------------------------


def test_entries_are_chained_with_sm3_from_the_genesis_value(sealed: Store) -> None:
    lines = read_lines(sealed)
    assert sorted(lines) == list(range(1, 21))
    prev = hash_digest("sm3", b"kefu-audit/1").hex()
    for seq, line in sorted(lines.items()):
        assert line["seq"] == seq and line["prev"] == prev
        assert line == rehash(line), "each hash is SM3 of the documented encoding of the rest"
        prev = line["hash"]
    report = audit.verify(sealed)
    assert report.problem is None and report.checked == 20
    assert report.head == (20, bytes.fromhex(prev)) == audit.head(sealed)


def test_entries_are_sealed_at_rest(sealed: Store) -> None:
    raw = (sealed.path / "data.mdb").read_bytes()
    assert "账单".encode() not in raw and b"mallory" not in raw and b"app.add" not in raw


# --- tampering, each found and named ----------------------------------------------------------------------------


def test_an_altered_field_is_named(sealed: Store, key: DataKey) -> None:
    def alter(lines: Lines) -> Lines:
        lines[7] = {**lines[7], "actor": "someone-else"}
        return lines

    assert first_problem(tampered(sealed, key, alter)) == (7, "altered")


def test_an_altered_and_rehashed_entry_is_named_by_the_link_after_it(sealed: Store, key: DataKey) -> None:
    def alter(lines: Lines) -> Lines:
        lines[7] = rehash({**lines[7], "details": {"query": "nothing to see"}})
        return lines

    assert first_problem(tampered(sealed, key, alter)) == (7, "altered")


def test_a_deleted_entry_is_named(sealed: Store, key: DataKey) -> None:
    def delete(lines: Lines) -> Lines:
        del lines[9]
        return lines

    assert first_problem(tampered(sealed, key, delete)) == (9, "removed")


def test_a_deleted_entry_with_the_later_ones_renumbered_is_named(sealed: Store, key: DataKey) -> None:
    def delete(lines: Lines) -> Lines:
        return {seq if seq < 9 else seq - 1: line for seq, line in lines.items() if seq != 9}

    assert first_problem(tampered(sealed, key, delete)) == (9, "removed")


def test_swapped_entries_are_named(sealed: Store, key: DataKey) -> None:
    def swap(lines: Lines) -> Lines:
        lines[5], lines[12] = lines[12], lines[5]
        return lines

    assert first_problem(tampered(sealed, key, swap)) == (5, "reordered")


def test_a_damaged_entry_is_named(sealed: Store) -> None:
    with sealed.reading() as txn:
        value = bytearray(txn.get(audit.seq_key(4), db=sealed.handle(audit.TABLE)))
    value[-1] ^= 1
    sealed.writing(lambda txn: txn.put(audit.seq_key(4), bytes(value), db=sealed.handle(audit.TABLE)))
    assert first_problem(sealed) == (4, "damaged")


def test_a_tail_truncated_after_an_anchor_is_found_only_with_the_anchor(sealed: Store, key: DataKey) -> None:
    anchor = audit.Anchor(*audit.head(sealed))

    def truncate(lines: Lines) -> Lines:
        return {seq: line for seq, line in lines.items() if seq < 15}

    forged = tampered(sealed, key, truncate)
    assert audit.verify(forged).problem is None, "without an anchor a shorter chain is a valid chain"
    assert first_problem(forged, (anchor,)) == (15, "truncated")
    assert audit.verify(sealed, (anchor,)).anchors_matched == 1


def test_a_chain_rewritten_after_an_anchor_is_found_with_the_anchor(sealed: Store, key: DataKey) -> None:
    seq, digest = audit.head(sealed)
    anchor = audit.Anchor.parse(f"{seq}:{digest.hex()}")

    def rewrite(lines: Lines) -> Lines:
        lines[10] = rehash({**lines[10], "actor": "nobody"})
        for n in range(11, 21):
            lines[n] = rehash({**lines[n], "prev": lines[n - 1]["hash"]})
        return lines

    forged = tampered(sealed, key, rewrite)
    assert audit.verify(forged).problem is None, "a rewrite to the end, hashes and all, is a consistent chain"
    assert first_problem(forged, (anchor,)) == (20, "rewritten")


# --- appending ----------------------------------------------------------------------------------------------

APPENDER = """
import sys
from pathlib import Path
from kefu.server.storage import audit
from kefu.server.storage.sealing import DataKey, Sealer
from kefu.server.storage.store import Store

path, secret, name, count = sys.argv[1:5]
store = Store(Path(path), sealer=Sealer([DataKey(1, "sm4-gcm", bytes.fromhex(secret))]))
writer = audit.AuditWriter(store, name=name)
print("ready", flush=True)
sys.stdin.readline()  # every process starts appending at once (the test writes a line to all of them)
for i in range(int(count)):
    writer.record(name, "test.queued", str(i))
    if i % 10 == 0:
        audit.record(store, actor=name, action="test.direct", target=str(i))
writer.close()
store.close()
"""


def test_several_processes_append_one_chain(sealed: Store, key: DataKey) -> None:
    count, names = 200, ("p1", "p2", "p3", "p4")
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(subprocess.Popen(
                [sys.executable, "-c", APPENDER, str(sealed.path), key.secret.hex(), name, str(count)],
                stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
            ))
            for name in names
        ]  # fmt: skip
        assert [p.stdout.readline() if p.stdout else "" for p in procs] == ["ready\n"] * len(names)
        for p in procs:  # all of them opened their store: go
            assert p.stdin is not None
            p.stdin.write("go\n")
            p.stdin.flush()
        assert [p.wait(timeout=60) for p in procs] == [0] * len(names)
    report = audit.verify(sealed)
    assert report.problem is None
    assert report.checked == 20 + len(names) * (count + count // 10)
    lines = [line for seq, line in sorted(read_lines(sealed).items()) if seq > 20]
    runs = sum(1 for before, after in itertools.pairwise(lines) if before["actor"] != after["actor"])
    assert runs >= len(names), "the processes appended at the same time"
    for name in names:
        for action, step in (("test.queued", 1), ("test.direct", 10)):
            targets = [int(line["target"]) for line in lines if line["actor"] == name and line["action"] == action]
            assert targets == list(range(0, count, step)), "each entry once, in the order each process made them"


def test_a_full_queue_drops_with_a_count_that_is_itself_recorded(sealed: Store) -> None:
    writer = audit.AuditWriter(sealed, name="t", max_queued=5)
    held = threading.Event()
    release = threading.Event()

    def hold(txn: Any) -> None:  # LMDB's write lock held: the writer's thread waits for it
        held.set()
        release.wait(10)

    holder = threading.Thread(target=sealed.writing, args=(hold,))
    holder.start()
    held.wait(5)
    for i in range(50):
        writer.record("x", "test.flood", str(i))
    release.set()
    holder.join()
    writer.close()
    lines = [line for seq, line in sorted(read_lines(sealed).items()) if seq > 20]
    kept = [line for line in lines if line["action"] == "test.flood"]
    dropped = [line for line in lines if line["action"] == Action.DROPPED]
    assert 5 <= len(kept) < 50 and len(dropped) == 1
    assert dropped[0]["details"]["count"] == 50 - len(kept) == writer.lost
    assert audit.verify(sealed).problem is None


def test_tallies_make_one_entry_per_actor_and_interval_and_are_bounded(sealed: Store) -> None:
    writer = audit.AuditWriter(sealed, name="t", tally_interval_s=3600)
    for i in range(1000):
        writer.tally("mallory", Action.AUTH_FAILED, "", "AUTH_FAILED", note=f"bad proof from 10.0.0.{i % 7}")
    for i in range(audit.MAX_TALLIES + 100):
        writer.tally(f"guess{i}", Action.AUTH_FAILED, "", "AUTH_FAILED")
    writer.close()
    lines = [line for seq, line in read_lines(sealed).items() if seq > 20]
    assert len(lines) == audit.MAX_TALLIES + 1, "the distinct ids past the bound are one entry, under '*'"
    by_actor = {line["actor"]: line["details"] for line in lines}
    assert by_actor["mallory"]["count"] == 1000 and len(by_actor["mallory"]["notes"]) == audit.TALLY_NOTES
    assert by_actor["*"]["count"] == 101
    assert sum(d["count"] for d in by_actor.values()) == 1000 + audit.MAX_TALLIES + 100


# --- the commands, as the operator runs them ----------------------------------------------------------------------


def kefu(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", *args], capture_output=True, text=True, timeout=60, check=False,
        env={**os.environ, "KEFU_CONFIG": ""},
    )  # fmt: skip


def test_verify_and_export_commands_on_the_store_and_on_a_tampered_copy(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = load_config(overrides={"server.data_dir": str(data_dir)})
    ensure_data_keys(data_dir, "sm4-gcm")
    store = open_store(config)
    for i in range(10):
        audit.record(store, actor="os:ops", action=Action.APP_ADD, target=f"app{i}")
    (key,) = load_data_keys(data_dir)
    forged = tampered(store, key, lambda lines: {seq: line for seq, line in lines.items() if seq != 6})
    forged.close()
    store.close()

    intact = kefu("audit", "verify", "--data-dir", str(data_dir))
    assert intact.returncode == 0 and "intact: 10 entries" in intact.stdout, intact.stderr
    broken = kefu("audit", "verify", "--data-dir", str(data_dir), "--store", str(forged.path))
    assert broken.returncode == 1 and "entry 6 removed" in broken.stdout, broken.stderr
    head = intact.stdout.split("head ")[1].split()[0]
    short = kefu("audit", "verify", "--data-dir", str(data_dir), "--anchor", "11:" + head.split(":")[1])
    assert short.returncode == 1 and "entry 11 truncated" in short.stdout

    out = tmp_path / "audit.jsonl"
    exported = kefu("audit", "export", "--data-dir", str(data_dir), "--since", "4", "--output", str(out))
    assert exported.returncode == 0, exported.stderr
    lines = [json.loads(text) for text in out.read_text().splitlines()]
    assert [line["seq"] for line in lines] == list(range(4, 11))
    assert all(line == rehash(line) for line in lines) and lines[-1]["hash"] == head.split(":")[1]


def exported(data_dir: Path, *more: str) -> list[dict[str, Any]]:
    done = kefu("audit", "export", "--data-dir", str(data_dir), *more)
    assert done.returncode == 0, done.stderr
    return [json.loads(text) for text in done.stdout.splitlines()]


def test_data_key_rotate_and_retire_backup_and_restore_are_recorded_with_the_operator(tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    config = load_config(overrides={"server.data_dir": str(data_dir)})
    ensure_data_keys(data_dir, "sm4-gcm")
    add_data_key(data_dir, "sm4-gcm")  # key 2 seals from the start: nothing is ever sealed under key 1
    open_store(config).close()
    me = audit.operator()

    steps = [
        ("data-key", "retire", "1"),  # nothing under it: retired
        ("data-key", "rotate"),  # key 3
        ("data-key", "retire", "2"),  # refused: the store is sealed under it
        ("backup", str(tmp_path / "backup")),
        ("restore", str(tmp_path / "nowhere")),  # refused: not a backup
    ]
    outcomes = [kefu(*step, "--data-dir", str(data_dir)).returncode for step in steps]
    assert outcomes == [0, 0, 1, 0, 1]
    before = exported(data_dir)
    assert [(e["actor"], e["action"], e["target"], e["result"]) for e in before] == [
        (me, "data_key.retire", "data-1", "ok"),
        (me, "data_key.rotate", "data-3", "ok"),
        (me, "data_key.retire", "data-2", "failed"),
        (me, "store.backup", str(tmp_path / "backup"), "ok"),
        (me, "store.restore", str(tmp_path / "nowhere"), "failed"),
    ]
    assert before[1]["details"]["cipher"] == "sm4-gcm" and before[2]["details"]["store"] > 0
    assert "still sealed under data key 2" in before[2]["details"]["reason"]

    restored = kefu("restore", str(tmp_path / "backup"), "--data-dir", str(data_dir))
    assert restored.returncode == 0, restored.stderr
    after = exported(data_dir)  # the restored store: the backup's chain (made before its own entry), then the restore
    assert [e["hash"] for e in after[:3]] == [e["hash"] for e in before[:3]]
    (restore,) = after[3:]
    assert (restore["actor"], restore["action"], restore["target"], restore["result"]) == (
        me, "store.restore", str(tmp_path / "backup"), "ok"
    )  # fmt: skip
    aside = Path(restore["details"]["set_aside"])
    assert aside.is_dir() and aside != Path(config.store_path) and restore["prev"] == after[2]["hash"]
    assert kefu("audit", "verify", "--data-dir", str(data_dir)).returncode == 0
    in_aside = exported(data_dir, "--store", str(aside))  # the store set aside keeps its own trail
    assert [e["action"] for e in in_aside][-2:] == ["store.backup", "store.restore"]
