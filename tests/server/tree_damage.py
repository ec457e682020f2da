"""Damage one B-tree page of a stopped store so that LMDB raises (never aborts) on the reads that cross it.

A child pointer of a table's root branch page is set to a page number past the file's last page: LMDB checks a page
number against the transaction's next page before it maps it, so every read that descends into that child, or steps
into it from a sibling, fails with MDB_PAGE_NOTFOUND (`lmdb.PageNotFoundError`) and reads elsewhere in the table go
on (kefu verify's notes list which damages raise and which abort). Shared by the unit and the end-to-end tests.
"""

from __future__ import annotations

import struct
from pathlib import Path

from kefu.server.storage.preflight import P_BRANCH, P_LEAF, PAGE_HEADER

_NODE = struct.Struct("=HHHH")  # lo, hi, flags, key size: a branch node's child page is lo | hi << 16 | flags << 32
_META = struct.Struct("=IIQQ" + "IHHQQQQQ" * 2 + "QQ")


def _u64(key: bytes) -> int:
    return int(struct.unpack_from(">Q", key)[0]) if len(key) >= 8 else 0


def _nodes(page: bytes) -> list[int]:
    lower = PAGE_HEADER.unpack_from(page)[3]
    return [struct.unpack_from("=H", page, PAGE_HEADER.size + 2 * i)[0] for i in range((lower - PAGE_HEADER.size) // 2)]


def _table_root(raw: bytes, psize: int, pgno: int, table: bytes) -> int:
    page = raw[pgno * psize : (pgno + 1) * psize]
    flags = PAGE_HEADER.unpack_from(page)[2]
    for node in _nodes(page):
        lo, hi, node_flags, ksize = _NODE.unpack_from(page, node)
        if flags & P_BRANCH:
            with_table = _table_root(raw, psize, lo | hi << 16 | node_flags << 32, table)
            if with_table >= 0:
                return with_table
        elif flags & P_LEAF and page[node + 8 : node + 8 + ksize] == table:
            return int(struct.unpack_from("=Q", page, node + 8 + ksize + 40)[0])
    return -1


def break_child(path: Path, table: bytes, *, apart: int = 0) -> tuple[bytes, bytes]:
    """Point a child of `table`'s root branch page (in data.mdb at `path`) past the end of the file: the first from
    the middle on whose bounding keys' leading u64s (a conversation id, for ``messages``) are at least `apart` apart.
    Returns the keys that bound what it held: [low, high)."""
    raw = bytearray(path.read_bytes())
    psize = struct.unpack_from("=I", raw, 16 + 24)[0]
    meta = max((_META.unpack_from(raw, i * psize + 16) for i in (0, 1)), key=lambda m: m[-1])
    root = _table_root(bytes(raw), psize, meta[19], table)
    page = raw[root * psize : (root + 1) * psize]
    assert root > 1 and PAGE_HEADER.unpack_from(page)[2] & P_BRANCH, f"{table!r}: its root is not a branch page"
    nodes = _nodes(bytes(page))
    assert len(nodes) >= 4, f"{table!r}: too few children"

    def key(i: int) -> bytes:
        ksize = _NODE.unpack_from(page, nodes[i])[3]
        return bytes(page[nodes[i] + 8 : nodes[i] + 8 + ksize])

    k = next(i for i in range(len(nodes) // 2, len(nodes) - 1) if _u64(key(i + 1)) - _u64(key(i)) >= apart)
    keys = [key(k), key(k + 1)]
    missing = meta[20] + 1000  # past the last page the transaction knows
    at = root * psize + nodes[k]
    struct.pack_into("=HHH", raw, at, missing & 0xFFFF, missing >> 16 & 0xFFFF, missing >> 32)
    with path.open("r+b") as f:
        f.seek(at)
        f.write(raw[at : at + 6])
    return keys[0], keys[1]
