"""The full check at a writer's open and the salvage (kefu.server.storage.pagewalk, kefu.server.storage.salvage) on
real stores written by the real Store under a real SM4-GCM data key, then damaged on disk by hand: before, LMDB
aborts the process that reads the damaged page (shown in a child process); after, the store opens, every intact
record reads back, lost messages read as damage EVENTs and the damaged file is kept aside."""

from __future__ import annotations

import json
import os
import random
import shutil
import signal
import struct
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from kefu.protocol.frames import SYSTEM_SENDER
from kefu.server.engine.messages import CursorUpdate, SendRequest
from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage import pagewalk
from kefu.server.storage.maintenance import purge_idempotency
from kefu.server.storage.preflight import P_BRANCH, P_LEAF, P_OVERFLOW, PAGE_HEADER, DamagedStore
from kefu.server.storage.salvage import in_use
from kefu.server.storage.schema import CONV_SEQ
from kefu.server.storage.store import Store

CONVERSATIONS = 8
PER_CONVERSATION = 150
APPS = 60
BIG_EVERY = 25  # every 25th message has a body on overflow pages
PSIZE = 4096
DAMAGED_COPIES = 24  # random damages per run: each costs two opens and reads (~0.15 s), under ~10 s in all

READ_ALL = """
import sys
from pathlib import Path
from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage.store import Store
data = Path(sys.argv[1])
store = Store(data / "store", sealer=sealer_of(data, "sm4-gcm"), check_at_open=sys.argv[2])
for conv in range(1, CONVERSATIONS + 1):
    store.read_range(conv, 0, 0, 100000)
    store.cursor(f"user{conv}", conv)
for app in store.list_apps():
    store.get_app(app)
for name, _ in store.handles():
    store.scan(name)
store.close()
print("read everything")
""".replace("CONVERSATIONS", str(CONVERSATIONS))


def body(conv: int, seq: int) -> bytes:
    size = 6000 if seq % BIG_EVERY == 0 else 40
    return (f"conversation {conv} message {seq} ".encode() * 200)[:size]


def build(data: Path) -> Path:
    """A data directory with a sealed store: conversations of messages (some on overflow pages), cursors, apps."""
    sealer = sealer_of(data, "sm4-gcm")
    store = Store(data / "store", sealer=sealer)
    try:
        for seq in range(1, PER_CONVERSATION + 1, 50):
            requests = [
                SendRequest(f"user{c}", (c * 100000 + s).to_bytes(16, "big"), c, 1, body(c, s), (),
                            create_members=("agent",))
                for c in range(1, CONVERSATIONS + 1) for s in range(seq, seq + 50)
            ]  # fmt: skip
            store.commit(requests, [CursorUpdate(f"user{c}", c, seq) for c in range(1, CONVERSATIONS + 1)], now_ms=1)
        for n in range(APPS):
            store.put_app(f"app-{n:03d}", b"secret %d" % n * 20)
    finally:
        store.close()
    return data


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return build(tmp_path_factory.mktemp("pristine"))


@pytest.fixture
def data(pristine: Path, tmp_path: Path) -> Path:
    copy = tmp_path / "data"
    shutil.copytree(pristine, copy)
    return copy


def read_all(data: Path, check: str = "full") -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-c", READ_ALL, str(data), check], capture_output=True, text=True,
                          timeout=60, check=False)  # fmt: skip


def tree_pages(data: Path, table: str) -> dict[int, tuple[int, int]]:
    """Every page of `table`'s tree: pgno -> (depth, flags), as the walker saw them (pristine copy)."""
    found = pagewalk.walk(data / "store" / "data.mdb")
    assert found is not None
    info = found.tables[table]
    out: dict[int, tuple[int, int]] = {}
    raw = (data / "store" / "data.mdb").read_bytes()
    stack = [(info.root, info.depth)]
    while stack:
        pgno, depth = stack.pop()
        page = raw[pgno * PSIZE : (pgno + 1) * PSIZE]
        flags, lower = PAGE_HEADER.unpack_from(page)[2:4]
        out[pgno] = (depth, flags)
        if depth > 1:
            for i in range((lower - 16) // 2):
                node = struct.unpack_from("=H", page, 16 + 2 * i)[0]
                lo, hi, nflags = struct.unpack_from("=HHH", page, node)
                stack.append((lo | hi << 16 | nflags << 32, depth - 1))
    return out


def leaves(data: Path, table: str) -> list[int]:
    return sorted(p for p, (d, _) in tree_pages(data, table).items() if d == 1)


def overflow_pages(data: Path) -> list[int]:
    raw = (data / "store" / "data.mdb").read_bytes()
    return [p for p in range(2, len(raw) // PSIZE) if PAGE_HEADER.unpack_from(raw, p * PSIZE)[2] == P_OVERFLOW]


def poke(data: Path, offset: int, raw: bytes) -> None:
    with (data / "store" / "data.mdb").open("r+b") as f:
        f.seek(offset)
        f.write(raw)


def leaf_as_branch(data: Path) -> None:
    page = leaves(data, "messages")[len(leaves(data, "messages")) // 2]
    poke(data, page * PSIZE + 10, struct.pack("=H", P_BRANCH))


def branch_child_garbage(data: Path) -> None:
    branches = [p for p, (d, _) in tree_pages(data, "messages").items() if d > 1]
    page = branches[0]
    raw = (data / "store" / "data.mdb").read_bytes()[page * PSIZE : (page + 1) * PSIZE]
    node = struct.unpack_from("=H", raw, 16 + 2 * 1)[0]
    poke(data, page * PSIZE + node, struct.pack("=HHH", 0xFFF0, 0x0000, 0))  # child pgno 65520, beyond the file


def node_offsets_garbage(data: Path) -> None:
    page = leaves(data, "messages")[1]
    poke(data, page * PSIZE + 16, random.Random(3).randbytes(24))


def overflow_header(data: Path) -> None:
    page = overflow_pages(data)[3]
    poke(data, page * PSIZE + 10, struct.pack("=H", P_LEAF))


def leaf_zeroed(data: Path) -> None:
    page = leaves(data, "messages")[2]
    poke(data, page * PSIZE, bytes(PSIZE))


def cursors_leaf_zeroed(data: Path) -> None:
    poke(data, leaves(data, "cursors")[0] * PSIZE, bytes(PSIZE))


def apps_leaf_as_branch(data: Path) -> None:
    page = leaves(data, "apps")[0]
    poke(data, page * PSIZE + 10, struct.pack("=H", P_BRANCH))


DAMAGES = {  # what LMDB alone does when it reads the damaged page: abort (or SIGBUS), or refuse the read
    "leaf-flags-of-a-branch": (leaf_as_branch, "dies"),
    "branch-child-into-garbage": (branch_child_garbage, "refuses"),
    "leaf-node-offsets-garbage": (node_offsets_garbage, "refuses"),
    "overflow-header-flipped": (overflow_header, "refuses"),
    "leaf-zeroed": (leaf_zeroed, "dies"),
}


@pytest.mark.parametrize("damage", DAMAGES)
def test_lmdb_alone_dies_of_the_damage_and_the_full_check_salvages_it(data: Path, damage: str) -> None:
    make, lmdb_alone = DAMAGES[damage]
    make(data)
    before = read_all(data, "tops")
    if lmdb_alone == "dies":
        assert before.returncode in (-signal.SIGABRT, -signal.SIGBUS), (before.returncode, before.stderr[-2000:])
    else:  # reported, and every read of that table's range refused (STORAGE_UNAVAILABLE) until restored
        assert before.returncode == 1 and "the B-tree is damaged (LMDB:" in before.stderr, before.stderr[-2000:]
    after = read_all(data, "full")
    assert after.returncode == 0 and "read everything" in after.stdout, after.stderr[-3000:]
    assert "storage.salvaged" in after.stderr
    aside = list(data.glob("damaged-*/data.mdb"))
    assert len(aside) == 1 and aside[0].stat().st_mode & 0o777 == 0o600
    assert aside[0].parent.stat().st_mode & 0o777 == 0o700
    check_contents(data)


def check_contents(data: Path) -> None:
    """Every message reads back as written or as a damage EVENT at its seq (gapless, each EVENT marked); apps,
    cursors: as written or absent / 0."""
    store = Store(data / "store", sealer=sealer_of(data, "sm4-gcm"))
    try:
        marks = store.damage_marks()
        lost = 0
        for conv in range(1, CONVERSATIONS + 1):
            got = store.read_range(conv, 0, 0, 100000)
            assert [m.seq for m in got] == list(range(1, PER_CONVERSATION + 1)), conv
            for m in got:
                if m.sender == SYSTEM_SENDER:
                    event = json.loads(m.body)
                    assert event == {"event": "damaged", "conversation_id": conv, "seq": m.seq}
                    assert m.seq in marks.get(conv, []), (conv, m.seq)
                    lost += 1
                else:
                    assert m.body == body(conv, m.seq)
            assert store.cursor(f"user{conv}", conv) in (0, PER_CONVERSATION - 49)
        for n in range(APPS):
            assert store.get_app(f"app-{n:03d}") in (None, b"secret %d" % n * 20)
        assert store.salvaged is None  # salvaged once, by the child
    finally:
        store.close()
    assert not list(data.glob("store/salvage.tmp"))


def test_a_healthy_store_is_walked_and_not_touched(data: Path) -> None:
    before = (data / "store" / "data.mdb").read_bytes()
    found = pagewalk.walk(data / "store" / "data.mdb")
    assert found is not None and not found.damaged
    assert found.tables["messages"].records == CONVERSATIONS * PER_CONVERSATION
    assert found.tables["messages"].walked == found.tables["messages"].pages
    check_contents(data)
    assert not list(data.glob("damaged-*"))
    assert (data / "store" / "data.mdb").read_bytes()[: 2 * PSIZE] != b"" and before


def test_lost_cursors_read_as_0_and_lost_apps_do_not_authenticate(data: Path) -> None:
    cursors_leaf_zeroed(data)
    apps_leaf_as_branch(data)
    store = Store(data / "store", sealer=sealer_of(data, "sm4-gcm"))
    try:
        assert store.salvaged is not None
        assert {"cursors", "apps"} <= set(store.salvaged.lost)
        assert any(store.cursor(f"user{c}", c) == 0 for c in range(1, CONVERSATIONS + 1))
        assert sum(store.get_app(f"app-{n:03d}") is None for n in range(APPS)) == store.salvaged.lost["apps"] > 0
    finally:
        store.close()
    check_contents(data)


def test_beside_another_process_a_writer_checks_the_tops_and_salvages_only_when_alone(data: Path) -> None:
    """Another process has the store open (a running server beside `kefu app`): its own open checked every page, and
    a walk beside its commits would read pages it is rewriting, so this open checks the tops only and never replaces
    the file it maps (in_use); the next open alone salvages."""
    DAMAGES["leaf-zeroed"][0](data)
    holder = subprocess.Popen(
        [sys.executable, "-c", "import lmdb, sys; e = lmdb.open(sys.argv[1], max_dbs=32); print('open', flush=True);"
         " sys.stdin.read()", str(data / "store")],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        assert in_use(data / "store")
        beside = Store(data / "store", sealer=sealer_of(data, "sm4-gcm"))
        assert beside.salvaged is None
        beside.close()
    finally:
        holder.communicate("", timeout=10)
    assert not in_use(data / "store")
    assert not list(data.glob("damaged-*"))
    Store(data / "store", sealer=sealer_of(data, "sm4-gcm")).close()  # alone now: salvaged
    check_contents(data)


READ_EACH = """
import json, os, sys
from pathlib import Path
from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage.store import Store
check, paths, status = sys.argv[1], sys.argv[2:], {}
for path in paths:
    pid = os.fork()
    if pid == 0:  # the child opens the store and reads everything; a refusal is exit code 1, never a signal
        os.dup2(os.open(os.devnull, os.O_WRONLY), 2)
        try:
            data = Path(path)
            store = Store(data / "store", sealer=sealer_of(data, "sm4-gcm"), check_at_open=check)
            for conv in range(1, CONVERSATIONS + 1):
                try:
                    store.read_range(conv, 0, 0, 100000)
                except Exception:
                    pass
            for name, _ in store.handles():
                try:
                    store.scan(name)
                except Exception:
                    pass
            store.close()
        except BaseException:
            os._exit(1)
        os._exit(0)
    status[path] = os.waitpid(pid, 0)[1]
print(json.dumps(status))
""".replace("CONVERSATIONS", str(CONVERSATIONS))


def read_each(check: str, paths: list[Path]) -> dict[str, int]:
    """Each store opened and read by a process of its own (forked from one that imported kefu): its wait status."""
    child = subprocess.run([sys.executable, "-c", READ_EACH, check, *map(str, paths)], capture_output=True, text=True,
                           timeout=120, check=True)  # fmt: skip
    return dict(json.loads(child.stdout))


def test_random_damage_never_kills_the_reader(pristine: Path, tmp_path: Path) -> None:
    """24 random damages (64 random bytes, or a page of them, anywhere past the meta pages), each store opened by a
    process that reads everything: with the tops check alone LMDB kills some; with the full check none dies by a
    signal (a refusal, DamagedStore, is an exit code)."""
    rnd = random.Random(int(os.environ.get("KEFU_SALVAGE_SEED", "14")))
    size = (pristine / "store" / "data.mdb").stat().st_size
    copies = []
    for i in range(DAMAGED_COPIES):
        copy = tmp_path / f"d{i}"
        shutil.copytree(pristine, copy)
        length = rnd.choice([64, PSIZE])
        poke(copy, rnd.randrange(2 * PSIZE, size - length), rnd.randbytes(length))
        copies.append(copy)
    before = read_each("tops", [shutil.copytree(c, tmp_path / f"t{i}") for i, c in enumerate(copies)])
    after = read_each("full", copies)
    killed = {p: os.WTERMSIG(s) for p, s in after.items() if os.WIFSIGNALED(s)}
    assert not killed, killed
    print(f"tops alone: {sum(os.WIFSIGNALED(s) for s in before.values())} of {DAMAGED_COPIES} killed; full: 0;",
          f"salvaged: {len(list(tmp_path.glob('d*/damaged-*')))}")  # fmt: skip


def test_the_salvage_keeps_every_record_order_and_table(data: Path) -> None:
    """Damage in one table only: every other table is copied record for record."""
    leaf_zeroed(data)
    found = pagewalk.walk(data / "store" / "data.mdb")
    assert found is not None and [t.name for t in found.damaged] == ["messages"]
    want = {name: list(pagewalk.records(data / "store" / "data.mdb", found, name)) for name in found.tables}
    Store(data / "store", sealer=sealer_of(data, "sm4-gcm")).close()
    after = pagewalk.walk(data / "store" / "data.mdb")
    assert after is not None and not after.damaged
    for name, items in want.items():
        got = list(pagewalk.records(data / "store" / "data.mdb", after, name))
        if name == "messages":
            assert set(items) <= set(got) and len(got) == CONVERSATIONS * PER_CONVERSATION
            assert all(len(k) == CONV_SEQ.size for k, _ in got)
        elif name == "audit":  # and the salvage's own entry (store.salvage)
            assert got[: len(items)] == items and len(got) == len(items) + 1
        elif name != "meta":
            assert got == items, name


def test_damage_to_meta_is_refused_not_salvaged(data: Path) -> None:
    """``meta`` holds the schema version, the log position and the deployment id: nothing can stand in for them."""
    before = (data / "store" / "data.mdb").read_bytes()
    poke(data, leaves(data, "meta")[0] * PSIZE, bytes(PSIZE))
    with pytest.raises(DamagedStore, match=r"table 'meta' .* is damaged at page .* it cannot be salvaged"):
        Store(data / "store", sealer=sealer_of(data, "sm4-gcm"))
    assert not list(data.glob("damaged-*")) and (data / "store" / "data.mdb").stat().st_size == len(before)


def test_healthy_stores_after_random_transactions_pass_the_walk(tmp_path: Path) -> None:
    """Random puts (10 bytes to overflow pages), deletes and drops over several tables, walked every few
    transactions: never a damaged page (LMDB's own trees pass every check), every record counted."""
    env = lmdb.open(str(tmp_path / "db"), map_size=1 << 30, max_dbs=16)
    rnd = random.Random(7)
    dbs = [env.open_db(b"t%d" % i) for i in range(4)]
    for round_ in range(60):
        with env.begin(write=True) as txn:
            for _ in range(rnd.randrange(1, 300)):
                db, key = rnd.choice(dbs), b"k%05d" % rnd.randrange(3000)
                if rnd.random() < 0.7:
                    txn.put(key, rnd.randbytes(rnd.choice([10, 100, 1000, 3000, 9000])), db=db)
                else:
                    txn.delete(key, db=db)
            if rnd.random() < 0.03:
                txn.drop(rnd.choice(dbs), delete=False)
        if round_ % 5 == 4:
            found = pagewalk.walk(tmp_path / "db" / "data.mdb")
            assert found is not None and not found.damaged, [t.lost for t in found.damaged]
            with env.begin() as txn:
                for i, db in enumerate(dbs):
                    assert found.tables[f"t{i}"].records == txn.stat(db)["entries"]
    env.close()


NO_ROOM = """
import resource, signal, sys
from pathlib import Path
from kefu.server.identity.datakeys import sealer_of
from kefu.server.storage.preflight import OpenRefused
from kefu.server.storage.store import Store
data = Path(sys.argv[1])
sealer = sealer_of(data, "sm4-gcm")
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG, as on a full disk
resource.setrlimit(resource.RLIMIT_FSIZE, (200_000, 200_000))
try:
    Store(data / "store", sealer=sealer)
except OpenRefused as exc:
    print(exc)
    sys.exit(1)
"""


def test_no_room_for_the_copy_is_refused_with_one_line_and_changes_nothing(data: Path) -> None:
    """The new file cannot be written (RLIMIT_FSIZE: EFBIG, one of the errors of a full disk): the open is refused
    with one line, the damaged file stays in place and nothing is left behind."""
    leaf_zeroed(data)
    before = (data / "store" / "data.mdb").read_bytes()
    child = subprocess.run([sys.executable, "-c", NO_ROOM, str(data)], capture_output=True, text=True, timeout=60,
                           check=False)  # fmt: skip
    assert child.returncode == 1 and "Traceback" not in child.stderr, child.stderr[-2000:]
    assert "the salvaged copy could not be written (" in child.stdout, child.stdout
    assert len(child.stdout.strip().splitlines()) == 1
    assert (data / "store" / "data.mdb").read_bytes() == before
    assert not list(data.glob("damaged-*")) and not (data / "store" / "salvage.tmp").exists()


def test_lost_user_convs_are_written_again_and_lost_idempotency_entries_read_as_absent(data: Path) -> None:
    """``user_convs`` is an index of the conversation records' members: written again. A lost idempotency entry is
    absent: the same SEND again is stored again (a possible duplicate beats a silent loss)."""
    poke(data, leaves(data, "user_convs")[0] * PSIZE, bytes(PSIZE))
    poke(data, leaves(data, "idempotency")[0] * PSIZE, bytes(PSIZE))
    store = Store(data / "store", sealer=sealer_of(data, "sm4-gcm"))
    try:
        assert store.salvaged is not None and {"user_convs", "idempotency"} <= set(store.salvaged.lost)
        for c in range(1, CONVERSATIONS + 1):
            assert store.conversations_of(f"user{c}") == [c] and c in store.conversations_of("agent")
        again = [SendRequest(f"user{c}", (c * 100000 + s).to_bytes(16, "big"), c, 1, body(c, s), ())
                 for c in range(1, CONVERSATIONS + 1) for s in range(1, PER_CONVERSATION + 1)]  # fmt: skip
        results = store.commit(again, [], now_ms=2)
        stored_again = sum(not r.duplicate for r in results)
        assert all(r.status == 0 for r in results) and stored_again == store.salvaged.lost["idempotency"] > 0
    finally:
        store.close()


def entries(store: Store, table: str) -> int:
    with store.reading() as txn:
        return int(txn.stat(store.handle(table))["entries"])


def test_lost_time_index_keys_are_written_again_so_retention_and_the_purge_reach_every_record(data: Path) -> None:
    """``expiry`` and ``idem_expiry`` index messages and idempotency entries by time: a lost key would leave its
    record to retention's or the purge's reach for ever. They are written again from the records' times."""
    poke(data, leaves(data, "expiry")[1] * PSIZE, bytes(PSIZE))
    poke(data, leaves(data, "idem_expiry")[1] * PSIZE, bytes(PSIZE))
    store = Store(data / "store", sealer=sealer_of(data, "sm4-gcm"))
    try:
        assert store.salvaged is not None and {"expiry", "idem_expiry"} <= set(store.salvaged.lost)
        messages = CONVERSATIONS * PER_CONVERSATION
        assert entries(store, "expiry") == entries(store, "messages") == messages
        assert entries(store, "idem_expiry") == entries(store, "idempotency") == messages
        assert purge_idempotency(store, before_ms=1) == messages, "the purge reaches every entry"
        assert entries(store, "idempotency") == entries(store, "idem_expiry") == 0
    finally:
        store.close()
