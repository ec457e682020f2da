"""The check of an LMDB data file before it is mapped: a damaged file is refused with a message, never mapped.

Theory of operation
-------------------
LMDB maps data.mdb into memory and reads its pages as memory. A page the file no longer holds (the file was
truncated, a copy was cut short) is not an error LMDB can return: touching it raises SIGBUS and the process dies
with no log line. So before `lmdb.open` maps the file, `check_data_file` reads its head with pread and decides:

- no file, or 0 bytes: a new store (LMDB initialises it; whether a new store is welcome is `deployment`'s question);
- not an LMDB file (too short to hold the two meta pages, no meta page flag, wrong magic, wrong format version):
  `DamagedStore`;
- LMDB's two meta pages (pages 0 and 1; a commit writes the older one, so the valid one with the higher txnid is
  the current state) both valid: the current one's ``last_pg`` says how many pages the file must hold. LMDB itself
  refuses a file with either meta page damaged, so one damaged meta page is `DamagedStore` too, naming it.
- shorter than ``(last_pg + 1) * page size``: usually a truncation, but not always: LMDB does not write the pages a
  transaction allocated and freed again (its "loose" pages), so a healthy file can end a few pages early (measured:
  up to 3 pages, in 12 of 6,000 random transactions). Those pages are free, never read. So a short file is accepted
  when every missing page is in LMDB's free list (the free database, walked with pread, and every page it is made
  of inside the file); otherwise `DamagedStore`, naming how much is missing.

The layout read here is LMDB 0.9's (the mdb.c that py-lmdb bundles), in the machine's byte order, 64-bit::

    page header (16 bytes)  pgno u64 | pad u16 | flags u16 | lower u16 | upper u16   (overflow: pages u32 at 12)
    MDB_meta (after it)     magic u32 | version u32 | address u64 | mapsize u64 |
                            free db, main db: MDB_db (48 bytes each) | last_pg u64 | txnid u64
    MDB_db                  pad u32 | flags u16 | depth u16 | branch, leaf, overflow pages u64 | entries u64 |
                            root u64
    node                    lo u16 | hi u16 | flags u16 | ksize u16 | key | data
                            (branch: child pgno = lo | hi << 16 | flags << 32; leaf: data size = lo | hi << 16,
                            F_BIGDATA: data is the pgno of overflow pages)

The page size is the free db's ``pad`` (LMDB's ``mm_psize``). A free-db value is an ID list: a count, then that many
page numbers (u64 each).

The tops of the B-trees (`check_tree_tops`, run by every `Store` open after the frame check): LMDB follows a page
number it reads as an offset into the map, so a root page overwritten with garbage sends the first lookup of every
table (opening the named databases, at open) beyond the file: SIGBUS again. So the pages every open and every lookup
start from are read with pread and checked: the main database's root (and, if it is a branch, its children, down
to its leaves), the root of each named database its leaves record (the MDB_db of each F_SUBDATA node), and the free
database's root. Each such page must lie in the file below ``last_pg + 1`` (and not be a meta page), hold its own
page number in its header, have the type its tree's depth says (a branch above depth 1, a leaf at it; no other flag
bit), free-space bounds (lower, upper) inside the page, and nodes between ``upper`` and the page's end. The page
numbers a table's root names are not checked: LMDB checks a page number against ``last_pg`` itself before it maps
it (MDB_PAGE_NOTFOUND, an error its reader handles: `kefu.server.storage.store`); what it cannot check is a page
inside that bound but beyond the file (a file cut short: `check_data_file`) and a page that is not what it should be
(a header or node offsets of garbage, read as memory). The cost: one pread per table and one or two more, about 20
pages of 4 KiB for kefu's store.

Beside a running writer (a gateway or `kefu app` opening the store while the core commits) these reads hold no
reader slot, so a page of the state read may be reused by a later transaction while it is read. It cannot be before
a transaction after the next one commits (LMDB reuses a page freed by transaction T+1 from transaction T+2 on,
and writes a transaction's pages before its meta page), so a failing check is believed only when the current meta
page is still the one it started from; otherwise it is read again (TOP_TRIES times at most, then accepted: a store
committing that fast is being written by a server that opened it).

This checks the file's frame and the tops of its trees, not every page: damage deeper inside the file (a flipped
byte in a leaf page) is for the full check at a writer's open (`pagewalk`, `salvage`: [storage] check_at_open) and
`kefu verify`. What else can stop a start on a damaged store is in spec section 12.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Final

from .files import DISK_FULL

__all__ = [
    "DATA_FILE",
    "DamagedStore",
    "MetaPage",
    "OpenRefused",
    "check_data_file",
    "check_store_dir",
    "check_tree_tops",
    "read_meta",
]

DATA_FILE: Final = "data.mdb"
LOCK_FILE: Final = "lock.mdb"
LOCK_FILE_BYTES: Final = 8192
"""The size LMDB gives its lock file with py-lmdb's default 126 reader slots (a header and 64 bytes per slot)."""
MAGIC: Final = 0xBEEFC0DE
DATA_VERSION: Final = 1
"""MDB_DATA_VERSION of LMDB 0.9."""
P_BRANCH, P_LEAF, P_OVERFLOW, P_META = 0x01, 0x02, 0x04, 0x08
F_BIGDATA: Final = 0x01
F_SUBDATA: Final = 0x02
"""A main-db node whose data is a named database's MDB_db."""
PAGE_HEADER: Final = struct.Struct("=QHHHH")
"""pgno, pad, flags, lower, upper."""
DB: Final = "IHHQQQQQ"
"""An MDB_db: pad (page size, in the free db's), flags, depth, branch, leaf and overflow pages, entries, root."""
MDB_DB: Final = struct.Struct("=" + DB)
META: Final = struct.Struct("=IIQQ" + DB + DB + "QQ")
"""An MDB_meta, after the page header."""
NODE: Final = struct.Struct("=HHHH")
U64: Final = struct.Struct("=Q")
MIN_PAGE: Final = 512
MAX_PAGE: Final = 65536
"""The page sizes LMDB accepts (MDB_MINPAGE .. MAX_PAGESIZE)."""
NO_PAGE: Final = (1 << 64) - 1
"""P_INVALID: the root of an empty database."""
MAX_FREE_WALK: Final = 1 << 22
"""Pages of the free database read at most while accounting for a short file: a bound on the work at start (16 GiB
of 4 KiB pages); a free list larger than that is not walked and the short file is refused."""
MAX_MAIN_PAGES: Final = 64
"""Pages of the main database read at most: it holds one small record per named database (at most MAX_TABLES, which
fit one leaf page), so more means its branch pages are damaged."""
MAX_DEPTH: Final = 32
"""LMDB's CURSOR_STACK: no tree is deeper."""
TOP_TRIES: Final = 5
"""Reads of the tree tops while a writer commits under them (see the module docstring)."""


WHAT_TO_DO: Final = (
    "The store was not opened and nothing was written to it: restore a backup (kefu restore BACKUP sets this store "
    "aside, systemd/OPERATIONS.md)"
)


class OpenRefused(Exception):
    """The store is not opened, for a reason the operator must act on (the message says which and what to do).

    ::

        OpenRefused
        ├── DamagedStore            the data file fails the checks at open (this module)
        │   └── DamagedTree         a page at the top of a B-tree (`check_tree_tops`)
        └── DeploymentMismatch      the store is not the data directory's deployment's (`deployment`)
    """


class DamagedStore(OpenRefused):
    """The data file fails the checks at open: it is not mapped, and the store is not opened."""


@dataclass(frozen=True, slots=True)
class MetaPage:
    """One of LMDB's two meta pages, as read from the file."""

    index: int
    page_size: int
    map_size: int
    last_page: int
    txnid: int
    free_root: int
    main_root: int
    named_dbs: int
    """Entries of the main db: the named databases."""
    free_depth: int = 0
    main_depth: int = 0

    @property
    def pages(self) -> int:
        """Pages the file must hold for this state (``last_pg + 1``)."""
        return self.last_page + 1


def read_meta(head: bytes, index: int) -> MetaPage | str:
    """Meta page `index` parsed from `head` (the bytes of that page, at least its first 168), or why it is not one."""
    if len(head) < PAGE_HEADER.size + META.size:
        return "cut short"
    _, _, flags, _, _ = PAGE_HEADER.unpack_from(head)
    fields = META.unpack_from(head, PAGE_HEADER.size)
    magic, version, _, map_size = fields[:4]
    free, main = fields[4:12], fields[12:20]
    last_page, txnid = fields[20:22]
    if not flags & P_META or magic != MAGIC:
        return "not an LMDB meta page (wrong magic)"
    if version != DATA_VERSION:
        return f"LMDB format version {version}, not {DATA_VERSION}"
    page_size = free[0]
    if not MIN_PAGE <= page_size <= MAX_PAGE or page_size & (page_size - 1):
        return f"page size {page_size} is not one LMDB uses"
    return MetaPage(index, page_size, map_size, last_page, txnid, free[7], main[7], main[6], free[2], main[2])


def check_store_dir(path: Path) -> MetaPage | None:
    """`check_data_file` and `check_tree_tops` of the data file in the LMDB environment directory `path`, after
    `reserve_lock_file` (when the directory is writable)."""
    path = Path(path)
    if os.access(path, os.W_OK):
        reserve_lock_file(path)
    meta = check_data_file(path / DATA_FILE)
    if meta is not None:
        check_tree_tops(path / DATA_FILE)
    return meta


def reserve_lock_file(directory: Path) -> None:
    """Make sure LMDB's lock file in `directory` has its blocks (posix_fallocate), creating it if missing. LMDB sizes
    it with ftruncate, a sparse file, and maps it: on a full disk, its first write to a page without a block is a
    SIGBUS. Allocated here, a full disk is an OSError (ENOSPC) instead. Best effort otherwise (a file system that
    cannot allocate ahead is left to LMDB)."""
    fd = os.open(Path(directory) / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        st = os.fstat(fd)
        size = max(st.st_size, LOCK_FILE_BYTES)
        if st.st_blocks * 512 < size:
            try:
                os.posix_fallocate(fd, 0, size)
            except OSError as exc:
                if exc.errno in DISK_FULL:
                    raise
    finally:
        os.close(fd)


def check_data_file(path: Path) -> MetaPage | None:
    """The current meta page of the LMDB file at `path`, checked against the file (see the module docstring); None
    when there is no file or it is empty (a new store). Raises DamagedStore."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    except FileNotFoundError:
        return None
    try:
        size = os.fstat(fd).st_size
        if size == 0:
            return None
        meta = _current_meta(fd, size, path)
        if size < meta.pages * meta.page_size:
            # A writer may have grown the file and committed this meta page since the first look (LMDB writes a
            # transaction's pages before its meta page): only the size seen after reading the meta page counts.
            size = os.fstat(fd).st_size
        if size < meta.pages * meta.page_size:
            _account_for_short_file(fd, size, meta, path)
        return meta
    except DamagedStore as exc:
        raise DamagedStore(f"{exc}. {WHAT_TO_DO}") from None
    finally:
        os.close(fd)


def _current_meta(fd: int, size: int, path: Path) -> MetaPage:
    first = read_meta(os.pread(fd, PAGE_HEADER.size + META.size, 0), 0)
    page_size = first.page_size if isinstance(first, MetaPage) else os.sysconf("SC_PAGE_SIZE")
    if size < 2 * page_size:
        raise DamagedStore(f"{path}: {size} bytes, shorter than LMDB's two meta pages ({2 * page_size} bytes)")
    second = read_meta(os.pread(fd, PAGE_HEADER.size + META.size, page_size), 1)
    if isinstance(first, str) and isinstance(second, str):
        raise DamagedStore(f"{path}: not an LMDB file: meta page 0: {first}; meta page 1: {second}")
    for bad, good in ((first, second), (second, first)):
        if isinstance(bad, str):
            assert isinstance(good, MetaPage)
            raise DamagedStore(
                f"{path}: meta page {1 - good.index} is damaged ({bad}); meta page {good.index} is valid "
                f"(transaction {good.txnid}), but LMDB opens a file only with both"
            )
    assert isinstance(first, MetaPage) and isinstance(second, MetaPage)
    if first.page_size != second.page_size:
        raise DamagedStore(f"{path}: the meta pages disagree on the page size ({first.page_size}, {second.page_size})")
    return max(first, second, key=lambda m: m.txnid)


def _account_for_short_file(fd: int, size: int, meta: MetaPage, path: Path) -> None:
    """Accept a file that ends before page `last_pg` only if every page it lacks is free (see the module docstring)."""
    have = size // meta.page_size
    missing = set(range(have, meta.pages))
    problem = (
        f"{path}: {size} bytes, but its last transaction ({meta.txnid}) uses {meta.pages} pages of {meta.page_size}:"
        f" the file is cut short ({meta.pages - have} pages missing"
    )
    if meta.main_root != NO_PAGE and meta.main_root >= have:
        raise DamagedStore(f"{problem}, the main database's root among them)")
    try:
        for page in _FreeList(fd, meta.page_size, have).pages(meta.free_root):
            missing.discard(page)
            if not missing:
                return
    except _Unreadable as exc:
        raise DamagedStore(f"{problem}; {exc})") from None
    raise DamagedStore(f"{problem}, {len(missing)} of them not free)")


class _Unreadable(Exception):
    """A page the walk needs is outside the file or not what it should be."""


@dataclass(frozen=True, slots=True)
class _FreeList:
    """LMDB's free database in the file `fd` of `have` whole pages, read with pread."""

    fd: int
    page_size: int
    have: int

    def pages(self, root: int) -> Iterator[int]:
        """Every page number listed in the free database whose root is `root` (NO_PAGE: empty)."""
        stack = [] if root == NO_PAGE else [root]
        read = 0
        while stack:
            pgno = stack.pop()
            read += 1
            if read > MAX_FREE_WALK:
                raise _Unreadable("the free list is too large to walk at start")
            page = self._page(pgno)
            _, _, flags, lower, _ = PAGE_HEADER.unpack_from(page)
            for node in _nodes(page, lower):
                lo, hi, node_flags, ksize = NODE.unpack_from(page, node)
                if flags & P_BRANCH:
                    stack.append(lo | hi << 16 | node_flags << 32)
                elif flags & P_LEAF:
                    yield from self._id_list(page, node + NODE.size + ksize, lo | hi << 16, node_flags)
                else:
                    raise _Unreadable(f"page {pgno} of the free database is neither a branch nor a leaf")

    def _id_list(self, page: bytes, start: int, size: int, flags: int) -> Iterator[int]:
        """The page numbers of one free-db record (its value: a count, then the numbers), in `page` or overflow."""
        if flags & F_BIGDATA:
            (first,) = U64.unpack_from(page, start)
            pages = struct.unpack_from("=I", self._page(first), 12)[0]
            if first + pages > self.have:
                raise _Unreadable(f"the free list's overflow pages {first}..{first + pages - 1} are outside the file")
            data = os.pread(self.fd, size, first * self.page_size + PAGE_HEADER.size)
        else:
            data = page[start : start + size]
        if len(data) < U64.size:
            raise _Unreadable("a free list is cut short")
        (count,) = U64.unpack_from(data)
        if (count + 1) * U64.size > len(data):
            raise _Unreadable("a free list is longer than its record")
        yield from struct.unpack_from(f"={count}Q", data, U64.size)

    def _page(self, pgno: int) -> bytes:
        if pgno >= self.have:
            raise _Unreadable(f"page {pgno} is outside the file ({self.have} pages)")
        page = os.pread(self.fd, self.page_size, pgno * self.page_size)
        if len(page) < self.page_size or PAGE_HEADER.unpack_from(page)[0] != pgno:
            raise _Unreadable(f"page {pgno} does not hold itself")
        return page


def _nodes(page: bytes, lower: int) -> Iterator[int]:
    """The offsets of a page's nodes."""
    count = (lower - PAGE_HEADER.size) // 2
    if not 0 <= count <= (len(page) - PAGE_HEADER.size) // 2:
        raise _Unreadable("a page of the free database has a bad node count")
    for i in range(count):
        offset = struct.unpack_from("=H", page, PAGE_HEADER.size + 2 * i)[0]
        if offset + NODE.size > len(page):
            raise _Unreadable("a node of the free database lies outside its page")
        yield offset


# --- the tops of the B-trees --------------------------------------------------------------------------------------


def check_tree_tops(path: Path) -> int:
    """Check the pages every lookup starts from (see the module docstring) in the LMDB file at `path`, which
    `check_data_file` accepted; the number of pages read. Raises DamagedTree, naming the page."""
    path = Path(path)
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for _ in range(TOP_TRIES):
            meta = _current_meta(fd, os.fstat(fd).st_size, path)
            tops = _Tops(fd, meta.page_size, os.fstat(fd).st_size // meta.page_size, meta.pages)
            try:
                tops.check(meta)
                return tops.read
            except _TreeDamage as exc:
                damage = exc
            if _current_meta(fd, os.fstat(fd).st_size, path).txnid == meta.txnid:
                raise DamagedTree(path, damage.pgno, f"{damage.what}: {damage.reason}")
        return tops.read  # a writer committed under every try: it opened this store, whose tops it just wrote
    finally:
        os.close(fd)


class DamagedTree(DamagedStore):
    """A page at the top of a B-tree fails `check_tree_tops`: `pgno`, and what is wrong with it (`detail`)."""

    def __init__(self, path: Path, pgno: int, detail: str) -> None:
        super().__init__(
            f"{path}: the store's B-tree is damaged at page {pgno} ({detail}): restore a backup, or run kefu verify "
            "to see what it reaches. The store was not opened and nothing was written to it (kefu restore BACKUP "
            "sets this store aside, systemd/OPERATIONS.md)"
        )
        self.pgno, self.detail = pgno, detail


class _TreeDamage(Exception):
    def __init__(self, pgno: int, what: str, reason: str) -> None:
        super().__init__(f"page {pgno} ({what}): {reason}")
        self.pgno, self.what, self.reason = pgno, what, reason


class _Tops:
    """The tops of the trees of one state (a meta page) of the file `fd`, holding `have` whole pages."""

    def __init__(self, fd: int, page_size: int, have: int, pages: int) -> None:
        self.fd, self.page_size, self.have, self.pages = fd, page_size, have, pages
        self.read = 0

    def check(self, meta: MetaPage) -> None:
        self.tree(meta.free_root, meta.free_depth, "the free list's root")
        for name, root, depth in self.named_dbs(meta):
            self.tree(root, depth, f"the root of table {name!r}")

    def named_dbs(self, meta: MetaPage) -> Iterator[tuple[str, int, int]]:
        """(name, root, depth) of each named database the main database records, its pages checked on the way."""
        if meta.main_root == NO_PAGE:
            return
        stack = [(meta.main_root, meta.main_depth, "the main database's root")]
        while stack:
            pgno, depth, what = stack.pop()
            if self.read >= MAX_MAIN_PAGES:
                raise _TreeDamage(pgno, what, f"the main database spans more than {MAX_MAIN_PAGES} pages")
            page = self.tree(pgno, depth, what)
            for node in self.nodes(page, pgno, what):
                lo, hi, flags, ksize = NODE.unpack_from(page, node)
                if depth > 1:
                    stack.append((lo | hi << 16 | flags << 32, depth - 1, "a page of the main database"))
                elif flags & F_SUBDATA:
                    name = page[node + NODE.size : node + NODE.size + ksize].decode(errors="replace")
                    if lo | hi << 16 != MDB_DB.size:
                        raise _TreeDamage(pgno, what, f"table {name!r}'s record is {lo | hi << 16} bytes")
                    record = MDB_DB.unpack_from(page, node + NODE.size + ksize)
                    yield name, record[7], record[2]

    def tree(self, pgno: int, depth: int, what: str) -> bytes:
        """The top page of a tree of `depth` at `pgno`, checked (b"" for an empty tree)."""
        if pgno == NO_PAGE:
            return b""
        if not 1 <= depth <= MAX_DEPTH:
            raise _TreeDamage(pgno, what, f"its tree's depth is {depth}")
        if not 2 <= pgno < self.pages:
            raise _TreeDamage(pgno, what, f"not a page of the tree (its pages are 2..{self.pages - 1})")
        if pgno >= self.have:
            raise _TreeDamage(pgno, what, f"beyond the end of the file ({self.have} pages)")
        page = os.pread(self.fd, self.page_size, pgno * self.page_size)
        self.read += 1
        held, _, flags, lower, upper = PAGE_HEADER.unpack_from(page)
        if held != pgno:
            raise _TreeDamage(pgno, what, f"its header names page {held}")
        if flags != (P_BRANCH if depth > 1 else P_LEAF):
            kind = "branch" if depth > 1 else "leaf"
            raise _TreeDamage(pgno, what, f"type flags {flags:#06x}, not a {kind} page as its tree's depth says")
        if not PAGE_HEADER.size <= lower <= upper <= self.page_size or (lower - PAGE_HEADER.size) % 2:
            raise _TreeDamage(pgno, what, f"its free space ({lower}, {upper}) is not inside the page")
        for node in self.nodes(page, pgno, what):
            lo, hi, flags, ksize = NODE.unpack_from(page, node)
            end = node + NODE.size + ksize + (0 if depth > 1 else U64.size if flags & F_BIGDATA else lo | hi << 16)
            if end > self.page_size:
                raise _TreeDamage(pgno, what, f"a node at offset {node} ends beyond the page")
        return page

    def nodes(self, page: bytes, pgno: int, what: str) -> Iterator[int]:
        """The offsets of `page`'s nodes (its header's bounds checked)."""
        _, _, _, lower, upper = PAGE_HEADER.unpack_from(page)
        for i in range((lower - PAGE_HEADER.size) // 2):
            offset = struct.unpack_from("=H", page, PAGE_HEADER.size + 2 * i)[0]
            if not upper <= offset <= self.page_size - NODE.size:
                raise _TreeDamage(pgno, what, f"node {i} lies at offset {offset}, outside the page's node space")
            yield offset
