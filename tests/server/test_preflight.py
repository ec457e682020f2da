"""The checks at open (kefu.server.storage.preflight) on real LMDB files: cut short, overwritten, not LMDB at all."""

from __future__ import annotations

import os
import random
import signal
import struct
import subprocess
import sys
from pathlib import Path

import lmdb
import pytest

from kefu.server.storage.preflight import (
    PAGE_HEADER,
    DamagedStore,
    check_data_file,
    check_store_dir,
    check_tree_tops,
)
from kefu.server.storage.store import Store

READ_EVERYTHING = """
import sys, lmdb
env = lmdb.open(sys.argv[1], readonly=True, lock=False, max_dbs=32)
with env.begin() as txn:
    for name, _ in txn.cursor():
        db = env.open_db(name, txn=txn, create=False)
        for _ in txn.cursor(db=db):
            pass
print("read everything")
"""


def filled_store(path: Path, messages: int = 2000) -> Path:
    """A store with `messages` apps of ~1 KiB each (real pages across the file); returns its data.mdb."""
    store = Store(path)
    try:
        for i in range(0, messages, 200):
            store.writing(lambda txn, i=i: [txn.put(b"app-%06d" % n, os.urandom(1024), db=store.handle("apps"))
                                            for n in range(i, i + 200)])  # fmt: skip
    finally:
        store.close()
    return path / "data.mdb"


def cut(data: Path, size: int) -> None:
    os.truncate(data, size)


def test_a_healthy_store_passes_and_names_its_current_meta_page(tmp_path: Path) -> None:
    data = filled_store(tmp_path / "db")
    meta = check_store_dir(tmp_path / "db")
    assert meta is not None
    env = lmdb.open(str(tmp_path / "db"), readonly=True, lock=False)
    assert meta.page_size == env.stat()["psize"] and meta.last_page == env.info()["last_pgno"]
    assert meta.txnid == env.info()["last_txnid"] and meta.pages * meta.page_size <= data.stat().st_size
    env.close()


def test_no_file_and_an_empty_file_are_a_new_store(tmp_path: Path) -> None:
    assert check_data_file(tmp_path / "data.mdb") is None
    (tmp_path / "data.mdb").touch()
    assert check_data_file(tmp_path / "data.mdb") is None


def test_a_store_cut_to_half_is_refused_before_lmdb_maps_it(tmp_path: Path) -> None:
    data = filled_store(tmp_path / "db")
    cut(data, data.stat().st_size // 2 // 4096 * 4096)
    child = subprocess.run([sys.executable, "-c", READ_EVERYTHING, str(tmp_path / "db")],
                           capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    assert child.returncode == -signal.SIGBUS, "without the check, LMDB reads the missing pages as memory: SIGBUS"
    with pytest.raises(DamagedStore, match=r"cut short \(\d+ pages missing"):
        check_store_dir(tmp_path / "db")
    with pytest.raises(DamagedStore):
        Store(tmp_path / "db")
    with pytest.raises(DamagedStore):
        Store(tmp_path / "db", readonly=True)


def test_a_store_cut_by_its_last_page_is_refused(tmp_path: Path) -> None:
    data = filled_store(tmp_path / "db")
    cut(data, data.stat().st_size - 4096)
    with pytest.raises(DamagedStore, match="cut short"):
        check_store_dir(tmp_path / "db")


def test_a_store_cut_to_one_page_is_not_an_lmdb_file(tmp_path: Path) -> None:
    data = filled_store(tmp_path / "db", messages=200)
    cut(data, 4096)
    with pytest.raises(DamagedStore, match="shorter than LMDB's two meta pages"):
        Store(tmp_path / "db")


@pytest.mark.parametrize("page", [0, 1])
def test_a_flipped_magic_in_one_meta_page_is_named(tmp_path: Path, page: int) -> None:
    data = filled_store(tmp_path / "db", messages=200)
    with data.open("r+b") as f:
        f.seek(page * 4096 + PAGE_HEADER.size)
        magic = f.read(4)
        f.seek(page * 4096 + PAGE_HEADER.size)
        f.write(bytes(b ^ 0xFF for b in magic))
    with pytest.raises(lmdb.InvalidError):  # what LMDB itself says: no SIGBUS here, but no clue what is wrong
        lmdb.open(str(tmp_path / "db"), readonly=True, lock=False).close()
    with pytest.raises(DamagedStore, match=rf"meta page {page} is damaged \(not an LMDB meta page"):
        Store(tmp_path / "db")


def test_a_file_that_is_not_lmdb_is_refused(tmp_path: Path) -> None:
    (tmp_path / "db").mkdir()
    (tmp_path / "db" / "data.mdb").write_bytes(b"card lost, please block it\n" * 1000)
    with pytest.raises(DamagedStore, match="not an LMDB file"):
        Store(tmp_path / "db")
    assert (tmp_path / "db" / "data.mdb").read_bytes().startswith(b"card lost"), "nothing was written"


def test_a_file_short_only_by_free_pages_is_accepted(tmp_path: Path) -> None:
    """LMDB does not write pages a transaction allocated and freed again: a healthy file can end before last_pg.
    Random puts and deletes of mixed sizes make such files (with LMDB 0.9.x, within a few dozen transactions)."""
    path = tmp_path / "db"
    env = lmdb.open(str(path), map_size=1 << 30, max_dbs=4)
    dbs = [env.open_db(name) for name in (b"a", b"b")]
    rnd = random.Random(1)
    shorts = 0
    for _ in range(600):
        with env.begin(write=True) as txn:
            for _ in range(rnd.randint(1, 50)):
                db, key = rnd.choice(dbs), rnd.randbytes(rnd.randint(1, 20))
                if rnd.random() < 0.6:
                    txn.put(key, rnd.randbytes(rnd.choice([10, 100, 3000, 9000])), db=db)
                elif (cur := txn.cursor(db)).set_range(key):
                    cur.delete()
            if rnd.random() < 0.02:
                txn.drop(rnd.choice(dbs), delete=False)
        if (path / "data.mdb").stat().st_size < (env.info()["last_pgno"] + 1) * 4096:
            shorts += 1
            assert check_store_dir(path) is not None, "every page it lacks is free: not damage"
            if shorts == 1:  # and it is healthy indeed: every page read back, no SIGBUS
                child = subprocess.run([sys.executable, "-c", READ_EVERYTHING, str(path)],
                                       capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
                assert child.returncode == 0 and "read everything" in child.stdout
    env.close()
    assert shorts, "the workload made no short file: the acceptance above was not exercised"


# --- the tops of the B-trees --------------------------------------------------------------------------------------

OPEN_STORE = """
import sys
from kefu.server.storage.store import Store
Store(sys.argv[1], check_at_open="tops").close()  # the tops check itself (the full one: test_salvage)
print("opened")
"""


def open_in_child(path: Path) -> subprocess.CompletedProcess[str]:
    """`Store(path)` in a child process: a SIGBUS there is a failed test here, not a dead test runner."""
    return subprocess.run([sys.executable, "-c", OPEN_STORE, str(path)],
                          capture_output=True, text=True, timeout=60, check=False)  # fmt: skip


def named_root(data: Path, table: bytes) -> int:
    """The root page of `table`, read from the main database's root leaf (written out here, not preflight's walk)."""
    raw = data.read_bytes()
    metas = [struct.unpack_from("=IIQQ" + "IHHQQQQQ" * 2 + "QQ", raw, i * 4096 + 16) for i in (0, 1)]
    page_no = max(metas, key=lambda m: m[-1])[19]
    page = raw[page_no * 4096 : (page_no + 1) * 4096]
    for i in range((PAGE_HEADER.unpack_from(page)[3] - PAGE_HEADER.size) // 2):
        node = struct.unpack_from("=H", page, PAGE_HEADER.size + 2 * i)[0]
        ksize = struct.unpack_from("=H", page, node + 6)[0]
        if page[node + 8 : node + 8 + ksize] == table:
            return int(struct.unpack_from("=Q", page, node + 8 + ksize + 40)[0])
    raise AssertionError(f"no table {table!r}")


@pytest.mark.parametrize(("where", "offset"), [("main", 0), ("main", 16), ("apps", 0), ("apps", 16)])
def test_random_bytes_over_a_root_page_are_refused_at_open(tmp_path: Path, where: str, offset: int) -> None:
    """64 random bytes over the main database's root page, or over a table's: its header (offset 0), or its node
    pointers (16). LMDB alone reads such a page as memory (a garbage node offset or count reads beyond the page, and
    beyond the file near its end: SIGBUS)."""
    data = filled_store(tmp_path / "db")
    meta = check_data_file(data)
    assert meta is not None
    page = meta.main_root if where == "main" else named_root(data, b"apps")
    with data.open("r+b") as f:
        f.seek(page * 4096 + offset)
        f.write(random.Random(page + offset).randbytes(64))
    child = open_in_child(tmp_path / "db")
    assert child.returncode == 1, (child.returncode, child.stderr[-2000:])
    assert "DamagedTree" in child.stderr and f"the store's B-tree is damaged at page {page} (" in child.stderr
    assert "restore a backup, or run kefu verify" in child.stderr and "opened" not in child.stdout


def test_the_tops_of_a_store_after_many_transactions_are_accepted(tmp_path: Path) -> None:
    """Random puts (values from 10 bytes to overflow pages), deletes and drops over several tables, checked every
    few transactions: never refused; a few pages read."""
    path = tmp_path / "db"
    env = lmdb.open(str(path), map_size=1 << 30, max_dbs=16)
    dbs = [env.open_db(b"t%d" % i) for i in range(12)]
    rnd = random.Random(7)
    read = []
    for n in range(800):
        with env.begin(write=True) as txn:
            for _ in range(rnd.randint(1, 60)):
                db, key = rnd.choice(dbs), rnd.randbytes(rnd.randint(1, 40))
                if rnd.random() < 0.7:
                    txn.put(key, rnd.randbytes(rnd.choice([10, 100, 1000, 3000, 9000])), db=db)
                elif (cur := txn.cursor(db)).set_range(key):
                    cur.delete()
            if rnd.random() < 0.01:
                txn.drop(rnd.choice(dbs), delete=False)
        if n % 8 == 0:
            read.append(check_tree_tops(path / "data.mdb"))
    env.close()
    assert check_store_dir(path) is not None
    assert max(read) <= 16, "the free list's root, the main database's root, a root per table"
    child = open_in_child(path)
    assert child.returncode == 0 and "opened" in child.stdout, child.stderr


def test_the_tops_are_accepted_while_another_process_commits(tmp_path: Path) -> None:
    """Opening beside a running writer (a gateway, kefu app add): the pages read may be reused while they are read,
    which must never be taken for damage."""
    filled_store(tmp_path / "db", messages=400)
    writer = subprocess.Popen([sys.executable, "-c", WRITE_FOREVER, str(tmp_path / "db")], stdout=subprocess.PIPE)
    try:
        assert writer.stdout is not None and writer.stdout.readline() == b"writing\n"
        for _ in range(300):
            assert check_store_dir(tmp_path / "db") is not None
    finally:
        writer.kill()
        writer.wait()
        if writer.stdout is not None:
            writer.stdout.close()


WRITE_FOREVER = """
import os, sys, lmdb
env = lmdb.open(sys.argv[1], max_dbs=32, map_size=1 << 30)
dbs = [env.open_db(name) for name in (b"apps", b"w1", b"w2")]
print("writing", flush=True)
n = 0
while True:
    with env.begin(write=True) as txn:
        for db in dbs:
            txn.put(b"k%d" % (n % 5000), os.urandom(n % 3000), db=db)
    n += 1
"""
