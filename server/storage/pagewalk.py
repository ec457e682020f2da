"""Every page of an LMDB data file checked with pread, as LMDB's read paths assume it, before LMDB maps the file.

Theory of operation
-------------------
LMDB trusts its pages: a cursor that meets a page of the wrong type fails an assertion (``IS_LEAF(mp)`` in
mdb_cursor_next, ``NUMKEYS(mp) > 1`` in mdb_page_search_root: abort()), a node offset of garbage reads beyond the
page, and a page number beyond the file is a SIGBUS. `preflight` checks the frame and the tops of the trees; this
module walks everything below them, so that a damaged page anywhere is found before a process maps it, never by an
abort while reading it. It never maps the file: pread only, so nothing it reads can kill it.

`walk(path)` descends every tree of the current meta page (the main database, each named database it records, the
free database) in key order, and checks each page:

- the page number lies in 2..last_pg and inside the file, and no page is reached twice;
- the header holds its own page number, and the type its depth says (a branch above depth 1, a leaf at it, no other
  flag bit); a branch of a named or the main database has at least two nodes (LMDB asserts it);
- lower and upper lie inside the page, every node offset (even) lies in ``upper .. page end`` and every node (its
  key, and a leaf's inline data or overflow page number) ends inside the page; a key is at most 511 bytes;
- node flags: none but F_BIGDATA in a table's leaf, F_SUBDATA in the main database's;
- keys ascend within the page and lie inside the range its parent's separators give it (``low <= key < high``):
  garbage that happens to parse is still caught;
- an overflow value's first page lies in the file, holds its own number and P_OVERFLOW, and its page count covers
  the value and ends inside the file.

A page that fails is lost with everything below it: the walk records the table, the page, the reason and the key
range the parent gave it (`Lost`), and goes on with its siblings. A lost overflow value loses that record alone (its
key is known). Damage in the main database cannot be walked around (it names the tables): `DamagedTree`, as
`preflight`. `records(path, walk, table)` yields the intact records of one table, in key order, for `salvage`.

Kefu's tables use plain keys (no dupsort): a table with MDB_DUPSORT or MDB_REVERSEKEY is not walked below its top
(reported as `skipped`); MDB_INTEGERKEY keys (the free database's) are compared as integers, as LMDB does.
"""

from __future__ import annotations

import os
import struct
import sys
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from functools import reduce
from operator import add, or_
from pathlib import Path
from typing import Final

from .preflight import (
    F_BIGDATA,
    F_SUBDATA,
    MDB_DB,
    NO_PAGE,
    NODE,
    P_BRANCH,
    P_LEAF,
    P_OVERFLOW,
    PAGE_HEADER,
    TOP_TRIES,
    U64,
    DamagedTree,
    MetaPage,
    check_data_file,
)

__all__ = ["Lost", "Table", "Walk", "records", "walk"]

MAX_KEY: Final = 511
"""MDB_MAXKEYSIZE of the bundled LMDB."""
MAX_DEPTH: Final = 32
REVERSEKEY, DUPSORT, INTEGERKEY = 0x02, 0x04, 0x08
FREE_DB: Final = "(free list)"
MAIN_DB: Final = "(main database)"
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")

Key = bytes
_Head = tuple[int, int, int, int]
"""A node's header: lo, hi, flags, key size."""


@dataclass(frozen=True, slots=True)
class Lost:
    """A page that fails the walk, and what it covered: keys ``low <= key < high`` (None: unbounded) of `table`."""

    table: str
    pgno: int
    reason: str
    low: bytes | None
    high: bytes | None
    key: bytes | None = None
    """Set when one record alone is lost (its overflow pages)."""

    def describe(self) -> str:
        if self.key is not None:
            return f"record {self.key.hex()}"
        return f"keys [{'' if self.low is None else self.low.hex()}, {'' if self.high is None else self.high.hex()})"


@dataclass(slots=True)
class Table:
    """One database of the file and what the walk found in it."""

    name: str
    root: int
    depth: int
    flags: int
    entries: int
    """Records the database's MDB_db counts (what it held before any damage)."""
    pages: int
    """Pages it says it uses (branch, leaf and overflow)."""
    lost: list[Lost] = field(default_factory=list)
    records: int = 0
    """Intact records found."""
    walked: int = 0
    """Intact pages read (tree and overflow)."""
    skipped: bool = False

    @property
    def pages_lost(self) -> int:
        return max(self.pages - self.walked, len(self.lost))


@dataclass(slots=True)
class Walk:
    """The result of `walk`: the meta page walked, each named database (and the free one) with what it lost."""

    meta: MetaPage
    tables: dict[str, Table]
    free: Table
    pages: int = 0
    """Pages read, all trees together."""

    @property
    def damaged(self) -> list[Table]:
        return [t for t in (*self.tables.values(), self.free) if t.lost]


class _Bad(Exception):
    """The page being checked fails (the reason)."""


def walk(path: Path) -> Walk | None:
    """Walk every page of the LMDB file at `path` (see the module docstring); None for a new store (no file). Raises
    DamagedStore for a damaged frame (`preflight.check_data_file`) or main database. A walk that finds damage while a
    writer commits under it is done again (as `preflight.check_tree_tops`)."""
    path = Path(path)
    meta = check_data_file(path)
    if meta is None:
        return None
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        for _ in range(TOP_TRIES):
            result = _Walker(fd, meta).run(path)
            again = check_data_file(path)
            if again is None or again.txnid == meta.txnid or not result.damaged:
                return result
            meta = again
        return result
    finally:
        os.close(fd)


def records(path: Path, found: Walk, name: str) -> Iterator[tuple[bytes, bytes]]:
    """The intact records of table `name` of the file `path` as `found` walked it, in key order."""
    fd = os.open(path, os.O_RDONLY | os.O_CLOEXEC)
    try:
        walker = _Walker(fd, found.meta)
        table = found.tables[name]
        walker.seen.update(lost.pgno for lost in table.lost)  # lost: read as "reached twice", skipped again (a page
        # another table reached first is lost here, and must not be copied into this table)
        yield from walker.tree(Table(name, table.root, table.depth, table.flags, table.entries, table.pages), True)
    finally:
        os.close(fd)


class _Walker:
    def __init__(self, fd: int, meta: MetaPage) -> None:
        self.fd, self.meta, self.psize = fd, meta, meta.page_size
        self.have = min(os.fstat(fd).st_size // self.psize, meta.pages)
        self.seen: set[int] = set()

    def run(self, path: Path) -> Walk:
        tables = self.named(path)
        free = Table(FREE_DB, self.meta.free_root, self.meta.free_depth, INTEGERKEY, 0, 0)
        for table in (*tables.values(), free):
            for _ in self.tree(table, False):
                pass
        if free.lost:
            free.pages = free.walked + len(free.lost)
        return Walk(self.meta, tables, free, len(self.seen))

    def named(self, path: Path) -> dict[str, Table]:
        main = Table(MAIN_DB, self.meta.main_root, self.meta.main_depth, 0, self.meta.named_dbs, 0)
        tables: dict[str, Table] = {}
        for key, value in self.tree(main, True, main=True):
            _, flags, depth, branch, leaf, overflow, entries, root = MDB_DB.unpack(value)
            name = key.decode(errors="replace")
            tables[name] = Table(name, root, depth, flags, entries, branch + leaf + overflow)
        if main.lost:
            bad = main.lost[0]
            raise DamagedTree(path, bad.pgno, f"the main database (which names the tables): {bad.reason}")
        return tables

    def tree(self, table: Table, collect: bool, *, main: bool = False) -> Iterator[tuple[bytes, bytes]]:
        """Walk `table` (recording its damage in it); its intact records when `collect`."""
        if table.root == NO_PAGE:
            return
        if table.flags & (DUPSORT | REVERSEKEY):
            table.skipped = True
            return
        order: Callable[[bytes], Key] = _int_key if table.flags & INTEGERKEY else _bytes_key
        stack: list[tuple[int, int, bytes | None, bytes | None]] = [(table.root, table.depth, None, None)]
        if not 1 <= table.depth <= MAX_DEPTH:
            table.lost.append(Lost(table.name, table.root, f"its tree's depth is {table.depth}", None, None))
            return
        while stack:
            pgno, depth, low, high = stack.pop()
            try:
                page, nodes, heads = self.page(pgno, depth, table.name)
                keys = _keys(page, nodes, heads, order, low=low, high=high, branch=depth > 1)
            except _Bad as exc:
                table.lost.append(Lost(table.name, pgno, str(exc), low, high))
                continue
            table.walked += 1
            if depth > 1:
                last = len(nodes) - 1
                for i in range(last, -1, -1):
                    lo, hi, flags, _ = heads[i]
                    child_low = low if i == 0 else keys[i]
                    child_high = high if i == last else keys[i + 1]
                    stack.append((lo | hi << 16 | flags << 32, depth - 1, child_low, child_high))
                continue
            yield from self.leaf(table, page, nodes, heads, keys, collect=collect, main=main)

    def leaf(
        self, table: Table, page: bytes, nodes: list[int], heads: list[_Head], keys: list[bytes], *, collect: bool,
        main: bool,
    ) -> Iterator[tuple[bytes, bytes]]:  # fmt: skip
        if not main and not collect and not reduce(or_, (h[2] for h in heads)):  # the usual leaf: values inline
            table.records += len(nodes)
            return
        for node, (lo, hi, flags, ksize), key in zip(nodes, heads, keys, strict=True):
            size, start = lo | hi << 16, node + NODE.size + ksize
            if main:
                if flags != F_SUBDATA or size != MDB_DB.size:
                    table.lost.append(Lost(table.name, 0, f"record {key!r} is not a table's", key, None, key))
                    continue
                yield key, page[start : start + size]
            elif flags & F_BIGDATA:
                (first,) = U64.unpack_from(page, start)
                try:
                    value, pages = self.overflow(first, size, collect)
                except _Bad as exc:
                    table.lost.append(Lost(table.name, first, str(exc), key, None, key))
                    continue
                table.walked += pages
                table.records += 1
                if collect:
                    yield key, value
            else:
                table.records += 1
                if collect:
                    yield key, page[start : start + size]

    def page(self, pgno: int, depth: int, name: str) -> tuple[bytes, list[int], list[_Head]]:
        """The page `pgno` at `depth` of a tree, checked, with its node offsets and node headers."""
        page = self.read(pgno)
        _, _, flags, lower, upper = PAGE_HEADER.unpack_from(page)
        branch = depth > 1
        if flags != (P_BRANCH if branch else P_LEAF):
            raise _Bad(f"type flags {flags:#06x}, not a {'branch' if branch else 'leaf'} page as its depth says")
        if not PAGE_HEADER.size <= lower <= upper <= self.psize or lower & 1:
            raise _Bad(f"its free space ({lower}, {upper}) is not inside the page")
        count = (lower - PAGE_HEADER.size) // 2
        if count < (2 if branch and name != FREE_DB else 1):
            raise _Bad(f"{count} nodes")
        nodes = list(struct.unpack_from(f"={count}H", page, PAGE_HEADER.size))
        if min(nodes) < upper or max(nodes) > self.psize - NODE.size or reduce(or_, nodes) & 1:
            raise _Bad(f"a node lies outside the page's node space ({upper}..{self.psize - NODE.size})")
        unpack = NODE.unpack_from
        heads: list[_Head] = [unpack(page, n) for n in nodes]
        los, his, flags_of, ksizes = zip(*heads, strict=True)
        if max(ksizes) > MAX_KEY:
            raise _Bad(f"a key of more than {MAX_KEY} bytes")
        ends: Iterable[int] = map(add, nodes, ksizes)  # where each node's key ends (its header before it)
        if not branch:
            node_flags = reduce(or_, flags_of)
            if node_flags & ~(F_SUBDATA if name == MAIN_DB else F_BIGDATA):
                raise _Bad("a node's flags are not a table's")
            if node_flags or max(his):  # values on overflow pages, or of 64 KiB and more: each node on its own
                ends = (
                    e + (U64.size if h[2] & F_BIGDATA else h[0] | h[1] << 16) for e, h in zip(ends, heads, strict=True)
                )
            else:
                ends = map(add, ends, los)
        if max(ends) + NODE.size > self.psize:
            raise _Bad("a node ends beyond the page")
        return page, nodes, heads

    def read(self, pgno: int) -> bytes:
        if not 2 <= pgno < self.meta.pages:
            raise _Bad(f"page number {pgno} is not one of the tree's (2..{self.meta.pages - 1})")
        if pgno >= self.have:
            raise _Bad(f"page {pgno} is beyond the end of the file ({self.have} pages)")
        if pgno in self.seen:
            raise _Bad(f"page {pgno} is reached twice")
        self.seen.add(pgno)
        page = os.pread(self.fd, self.psize, pgno * self.psize)
        if len(page) < self.psize:
            raise _Bad("cut short")
        held = PAGE_HEADER.unpack_from(page)[0]
        if held != pgno:
            raise _Bad(f"its header names page {held}")
        return page

    def overflow(self, first: int, size: int, collect: bool) -> tuple[bytes, int]:
        """The value of `size` bytes on overflow pages from `first` (b"" unless `collect`), checked, and how many
        pages it takes."""
        head = self.read(first)
        flags = PAGE_HEADER.unpack_from(head)[2]
        (pages,) = _U32.unpack_from(head, 12)
        if flags != P_OVERFLOW:
            raise _Bad(f"overflow page {first}: type flags {flags:#06x}")
        if pages * self.psize - PAGE_HEADER.size < size or first + pages > self.have:
            raise _Bad(f"overflow page {first}: {pages} pages do not hold {size} bytes inside the file")
        value = os.pread(self.fd, size, first * self.psize + PAGE_HEADER.size) if collect else b""
        return value, pages


def _bytes_key(key: bytes) -> Key:
    return key


def _int_key(key: bytes) -> Key:
    """An MDB_INTEGERKEY key (native byte order, 4 or 8 bytes) as bytes that compare as its number."""
    return int.from_bytes(key, sys.byteorder).to_bytes(max(8, len(key)), "big")


def _keys(
    page: bytes, nodes: list[int], heads: list[_Head], order: Callable[[bytes], Key], *, low: bytes | None,
    high: bytes | None, branch: bool,
) -> list[bytes]:  # fmt: skip
    """The keys of a checked page, checked: ascending, and inside ``low <= key < high`` (a branch's first key is
    empty: its lower bound is the parent's)."""
    keys = [page[n + NODE.size : n + NODE.size + h[3]] for n, h in zip(nodes, heads, strict=True)]
    ordered = keys[1:] if branch else keys
    if order is not _bytes_key:
        ordered = [order(k) for k in ordered]
    if not ordered:
        return keys
    if ordered != sorted(ordered) or len(set(ordered)) != len(ordered):
        raise _Bad("its keys are out of order")
    if low is not None and ordered[0] < order(low):
        raise _Bad(f"key {ordered[0].hex()} is below its parent's separator")
    if high is not None and ordered[-1] >= order(high):
        raise _Bad(f"key {ordered[-1].hex()} is not below its parent's next separator")
    return keys
