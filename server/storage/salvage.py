"""The full check of the store at a writer's open, and the salvage of a store whose tables are damaged below their tops.

Theory of operation
-------------------
LMDB aborts the process (an assertion) or dies of SIGBUS on a damaged page it reads, and a restarted process reads
the same page again: a crash loop. So the process that opens the store for writing (`Store` not read-only, with
``[storage] check_at_open = "full"``) walks every page first (`pagewalk`, pread only: it cannot be killed by what
it reads), before LMDB maps the file. A store whose named tables are intact opens as before. Otherwise it is salvaged:

    data.mdb --walk--> the intact records of every table (key order) --> salvage.tmp/data.mdb (fsync'd)
    data.mdb --link--> DATA_DIR/damaged-<UTC time>/data.mdb (0600, directory 0700; kefu never deletes it)
    salvage.tmp/data.mdb --rename--> data.mdb, then the store directory fsync'd; LMDB then opens it as usual

A crash at any point leaves either the old file or the new one as data.mdb (the rename is atomic), and the next
open walks it again. Nothing else in the data directory changes (keys/, the log, the deployment marker): the log's
tail is replayed on top as at every start. The free database is rebuilt by the copy, so damage there costs nothing.
Damage to the main database (it names the tables), to the ``meta`` table (the schema version, the log position,
the deployment id: `VITAL`) or to a meta page is still refused (`preflight`).

What the copy cannot keep is reported (`storage.salvaged`, one log line per lost range: table, key range in hex,
page, reason, pages and records lost, records copied) and stands in the store as spec section 12 says of a damaged
record: a lost message becomes a damage EVENT (`values.placeholder`) at its seq, sealed like any message, and its
conversation is marked (``meta`` ``damaged``): streams stay gapless. Its seqs are the ones missing between the
conversation's first and last known seq (its record's floor, its last intact message) inside the lost key range;
messages lost after a conversation's last known seq are counted (the table's entry count says how many records the
tree held) and, when one conversation alone can own them, placed after it, so its next message does not reuse a seq
a client already has. A conversation whose record was lost is marked (seq 0). Lost ``user_convs`` entries are
written again from the conversation records' members (it is their index), lost ``expiry`` keys from the messages'
times and lost ``idem_expiry`` keys from the idempotency entries' (their indexes by time: without them retention and
the idempotency purge would never reach those records; a stand-in has no time and gets none). Lost cursors read as 0
(the stream is delivered again), lost idempotency entries as absent, lost apps do not authenticate: what a damaged
value does.

Other processes map the store too (gateways, `kefu app`, the indexer). The walk and the salvage run under an
exclusive fcntl lock on byte 0 of LMDB's lock file: LMDB itself takes a shared lock there in every open (before it
opens the data file, for a writer), so while it is held no process has the environment open, and one that opens
it meanwhile waits, then maps the new file. If the lock is not free, another process has the store open (a running
server beside `kefu app`, a gateway, the indexer): that process's own first open checked every page, a walk beside
its commits would read pages it is rewriting (LMDB reuses a page two transactions after freeing it) and report damage
that is not there, and a salvage must never replace a file a process maps. So such an open checks only the tops of the
trees (`preflight.check_tree_tops`), as "tops" does; damage that arose since is found at the next open alone (the
supervisor makes one after a core dies of a damaged page: `in_use` tells it when the other processes are gone).
"""

from __future__ import annotations

import contextlib
import fcntl
import functools
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import lmdb

from .. import log as logmod
from ..engine.audit import Action
from ..engine.messages import encode_message
from . import audit
from .files import disk_full, fsync_path
from .modes import DIR_MODE, FILE_MODE
from .pagewalk import FREE_DB, INTEGERKEY, Lost, Table, Walk, records, walk
from .preflight import DATA_FILE, LOCK_FILE, WHAT_TO_DO, DamagedStore, check_data_file, check_tree_tops
from .schema import CONV_SEQ, MAX_TABLES, SEALED_KEY, U64S, ConversationRecord, id_key, member_key
from .values import CONVERSATION_ITSELF, add_mark, placeholder

__all__ = ["CHECKS", "REPORT_KEY", "Salvaged", "audit_salvage", "check_at_open", "in_use", "salvage", "take_report"]

CHECKS: Final = ("full", "tops")
TMP_DIR: Final = "salvage.tmp"
REPORT_KEY: Final = b"salvage_report"
"""``meta`` key of the last salvage's summary (JSON: set_aside, lost records per table), until a process with
metrics counts it (`take_report`): the supervisor salvages before the core that keeps the metrics starts."""
VITAL: Final = ("meta",)
"""Tables whose loss the salvage cannot stand in for (the schema version, the log position, the deployment id): their
damage is refused, as the main database's."""
CHUNK: Final = 20_000
"""Records copied per write transaction: a bound on LMDB's dirty pages (and memory) in one transaction."""

Seal = Callable[[str, bytes, bytes], bytes]
Opener = Callable[[bytes, bytes], ConversationRecord | None]
"""A stored ``conversations`` record opened (None if it does not open)."""
Timed = Callable[[str, bytes, bytes], int | None]
"""The timestamp_ms of a stored ``messages`` or ``idempotency`` value (table, key, stored; None if it does not
open)."""
TIME_INDEXES: Final = {"expiry": "messages", "idem_expiry": "idempotency"}
"""The tables indexed by time, and the table each indexes (`_times_again`)."""


@dataclass(slots=True)
class Salvaged:
    """What a salvage did: where the damaged file went, and per table the records lost and copied."""

    aside: Path
    lost: dict[str, int] = field(default_factory=dict)
    copied: dict[str, int] = field(default_factory=dict)
    placeholders: int = 0


def check_at_open(
    path: Path, check: str, *, seal: Seal | None, conversation: Opener, timed: Timed | None = None
) -> Salvaged | None:
    """The check of the store directory `path` at a writer's open (`check`: "full" walks every page and salvages,
    "tops" is `preflight`'s); the salvage done, if one was. `seal` seals a message placeholder (None: plain values),
    `conversation` opens a conversation record (None if it does not open), `timed` reads a record's time (None: lost
    time index keys are not written again). Raises DamagedStore."""
    data = Path(path) / DATA_FILE
    with _exclusive(Path(path)) as alone:
        if check != "full" or not alone:  # not alone: the first opener checked every page (the module docstring)
            if check_data_file(data) is not None:
                check_tree_tops(data)
            return None
        found = walk(data)
        if found is None or not found.damaged:
            return None
        vital = [t for t in found.damaged if t.name in VITAL]
        if vital:
            raise DamagedStore(
                f"{data}: table 'meta' (the store's schema, log position and deployment) is damaged at page "
                f"{vital[0].lost[0].pgno} ({vital[0].lost[0].reason}): it cannot be salvaged. {WHAT_TO_DO}"
            )
        return salvage(Path(path), found, seal=seal, conversation=conversation, timed=timed)


def in_use(path: Path) -> bool:
    """Whether another process has the store in the directory `path` open (LMDB's lock byte is held)."""
    with _exclusive(Path(path)) as alone:
        return not alone


@contextlib.contextmanager
def _exclusive(path: Path) -> Iterator[bool]:
    """Hold LMDB's lock byte exclusively if no process has the environment open (see the module docstring)."""
    try:
        fd = os.open(path / LOCK_FILE, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, FILE_MODE)
    except OSError:
        yield False
        return
    try:
        try:
            fcntl.lockf(fd, fcntl.LOCK_EX | fcntl.LOCK_NB, 1, 0)
            alone = True
        except OSError:
            alone = False
        yield alone
    finally:
        os.close(fd)  # drops the lock, before LMDB (in this process) takes its own


def salvage(
    path: Path, found: Walk, *, seal: Seal | None, conversation: Opener, timed: Timed | None = None
) -> Salvaged:
    """Copy the intact records of the file in `path` that `found` walked into a new file, set the damaged one aside
    and put the new one in its place (see the module docstring)."""
    data, tmp = path / DATA_FILE, path / TMP_DIR
    skipped = [t.name for t in found.tables.values() if t.skipped]
    if skipped:
        raise DamagedStore(f"{data}: damaged, and tables {skipped} are of a kind the salvage cannot copy. {WHAT_TO_DO}")
    need = found.meta.pages * found.meta.page_size
    room = os.statvfs(path)
    if room.f_bavail * room.f_frsize < need:
        raise DamagedStore(_no_room(data, need))
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(mode=DIR_MODE)
    try:
        done = _copy(data, tmp, found, seal=seal, conversation=conversation, timed=timed, aside=_aside_name(data))
    except (lmdb.Error, OSError) as exc:  # the original is untouched: refuse with one line
        shutil.rmtree(tmp, ignore_errors=True)
        reason = "no room" if disk_full(exc, path) else f"{type(exc).__name__}: {exc}"
        raise DamagedStore(
            f"{data}: damaged below the tops of its tables, and the salvaged copy could not be written ({reason}; it "
            f"needs up to {need >> 20} MiB): free some space and start again, or restore a backup. {WHAT_TO_DO}"
        ) from None
    _set_aside(data, done.aside)
    os.replace(tmp / DATA_FILE, data)
    fsync_path(path)
    shutil.rmtree(tmp, ignore_errors=True)
    _report(found, done)
    return done


def _no_room(data: Path, need: int) -> str:
    return (
        f"{data}: damaged below the tops of its tables, and the disk has no room for the salvaged copy ({need >> 20} "
        f"MiB): free some space and start again, or restore a backup. {WHAT_TO_DO}"
    )


def _copy(
    data: Path, tmp: Path, found: Walk, *, seal: Seal | None, conversation: Opener, timed: Timed | None, aside: Path
) -> Salvaged:
    done = Salvaged(aside)
    env = lmdb.open(
        str(tmp), subdir=True, map_size=max(found.meta.map_size, 2 * found.meta.pages * found.meta.page_size),
        max_dbs=MAX_TABLES, lock=False, mode=FILE_MODE, sync=False, metasync=False,
    )  # fmt: skip
    try:
        handles = {}
        for name, table in sorted(found.tables.items()):
            handles[name] = env.open_db(name.encode(), integerkey=bool(table.flags & INTEGERKEY))
            done.copied[name] = _copy_table(env, handles[name], records(data, found, name))
            if table.lost:
                done.lost[name] = max(0, table.entries - table.records)
        if "messages" in found.tables and "meta" in handles:
            done.placeholders = _stand_ins(env, handles, found.tables["messages"], seal, conversation)
        if found.tables.get("user_convs", Table("", 0, 0, 0, 0, 0)).lost and "conversations" in handles:
            _members_again(env, handles, conversation)
        for index, source in TIME_INDEXES.items():
            if timed is not None and index in handles and source in handles and found.tables[index].lost:
                _times_again(env, handles[index], handles[source], functools.partial(timed, source))
        if "meta" in handles:
            with env.begin(write=True) as txn:
                txn.put(
                    REPORT_KEY, json.dumps({"set_aside": str(aside), "lost": done.lost}).encode(), db=handles["meta"]
                )
        env.sync(True)
    finally:
        env.close()
    fsync_path(tmp / DATA_FILE)
    return done


def _copy_table(env: lmdb.Environment, db: Any, items: Iterator[tuple[bytes, bytes]]) -> int:
    copied = 0
    while True:
        chunk = [item for _, item in zip(range(CHUNK), items, strict=False)]
        if not chunk:
            return copied
        with env.begin(write=True) as txn, txn.cursor(db) as cur:
            copied += cur.putmulti(chunk, append=True)[1]


def _stand_ins(
    env: lmdb.Environment, handles: dict[str, Any], messages: Table, seal: Seal | None, floor: Opener
) -> int:
    """Put a sealed damage EVENT at each lost message's seq and mark its conversation (see the module docstring);
    mark the conversations whose record was lost. How many EVENTs were put."""
    put = 0
    with env.begin(write=True) as txn:
        sealed = txn.get(SEALED_KEY, db=handles["meta"]) == b"\x01"
        known = _conversations(txn, handles)
        missing: dict[int, set[int]] = {}
        tails: set[int] = set()
        for lost in messages.lost:
            for conv, (last, present) in _in_range(txn, handles, known, lost, floor).items():
                seqs = {s for s in range(1, last + 1) if s not in present and _inside(lost, conv, s)}
                missing.setdefault(conv, set()).update(seqs)
                if lost.key is None and (lost.high is None or CONV_SEQ.pack(conv, last + 1) < lost.high):
                    tails.add(conv)
        unplaced = max(0, messages.entries - messages.records - sum(map(len, missing.values())))
        if unplaced and len(tails) == 1:  # the lost messages after the last known seq are this conversation's
            conv = tails.pop()
            last = max(max(missing.get(conv, ()), default=0), _last_present(txn, handles, conv))
            last = max(last, _floor_of(txn, handles, conv, floor))
            missing.setdefault(conv, set()).update(range(last + 1, last + unplaced + 1))
            unplaced = 0
        for conv, seqs in sorted(missing.items()):
            for seq in sorted(seqs):
                key = CONV_SEQ.pack(conv, seq)
                raw = encode_message(placeholder(conv, seq))
                txn.put(key, seal("messages", key, raw) if sealed and seal is not None else raw, db=handles["messages"])
                add_mark(txn, handles["meta"], conv, seq)
                put += 1
        for conv in _without_record(txn, handles, known):
            add_mark(txn, handles["meta"], conv, CONVERSATION_ITSELF)
        if unplaced:
            logmod.warning("storage.salvage_unplaced", table="messages", records=unplaced,
                           reason="lost after the last known seq of several conversations")  # fmt: skip
    return put


def _conversations(txn: lmdb.Transaction[bytes], handles: dict[str, Any]) -> set[int]:
    """The ids of the conversations whose record survived."""
    if "conversations" not in handles:
        return set()
    keys = txn.cursor(handles["conversations"]).iternext(values=False)
    return {U64S.unpack(key)[0] for key in keys if len(key) == U64S.size}


def _floor_of(txn: lmdb.Transaction[bytes], handles: dict[str, Any], conv: int, floor: Opener) -> int:
    key = U64S.pack(conv)
    raw = txn.get(key, db=handles["conversations"]) if "conversations" in handles else None
    record = None if raw is None else floor(key, raw)
    return 0 if record is None else record.last_seq


def _members_again(env: lmdb.Environment, handles: dict[str, Any], conversation: Opener) -> None:
    """``user_convs`` lost entries: written again from the members of every conversation record (an index of them)."""
    with env.begin(write=True) as txn:
        for key, raw in txn.cursor(handles["conversations"]):
            record = conversation(key, raw) if len(key) == U64S.size else None
            for user in record.members if record is not None else ():
                if (name := id_key(user)) is not None:
                    txn.put(member_key(name, U64S.unpack(key)[0]), b"", db=handles["user_convs"])


def _times_again(env: lmdb.Environment, index: Any, source: Any, time_of: Callable[[bytes, bytes], int | None]) -> None:
    """A time index (``expiry``, ``idem_expiry``: the record's timestamp_ms, then its key) written again from every
    record of the table it indexes, CHUNK records a transaction; a record without a time (a stand-in: 0, or one that
    does not open) gets none."""
    after: bytes | None = None
    while True:
        with env.begin(write=True) as txn, txn.cursor(source) as cur:
            found = cur.first() if after is None else cur.set_range(after)
            if found and after is not None and cur.key() == after:
                found = cur.next()
            puts = 0
            while found and puts < CHUNK:
                key, raw = cur.item()
                if ts := time_of(key, raw):
                    txn.put(U64S.pack(ts) + key, b"", db=index)
                puts, after = puts + 1, key
                found = cur.next()
        if not found:
            return


def _last_present(txn: lmdb.Transaction[bytes], handles: dict[str, Any], conv: int) -> int:
    seqs = _present(txn, handles, conv)
    return max(seqs, default=0)


def _present(txn: lmdb.Transaction[bytes], handles: dict[str, Any], conv: int) -> set[int]:
    out = set()
    cur = txn.cursor(handles["messages"])
    if cur.set_range(CONV_SEQ.pack(conv, 0)):
        for key in cur.iternext(values=False):
            if len(key) != CONV_SEQ.size or CONV_SEQ.unpack(key)[0] != conv:
                break
            out.add(CONV_SEQ.unpack(key)[1])
    return out


def _in_range(
    txn: lmdb.Transaction[bytes], handles: dict[str, Any], known: set[int], lost: Lost, floor: Opener
) -> dict[int, tuple[int, set[int]]]:
    """Each conversation a lost range of ``messages`` may hold messages of: (its last known seq, its seqs present)."""
    low = _conv_of(lost.low if lost.key is None else lost.key, 0)
    high = _conv_of(lost.high if lost.key is None else lost.key, 1 << 64)
    convs = {c for c in known if low <= c <= high}
    for edge in (lost.low, lost.high, lost.key):
        if edge is not None and len(edge) == CONV_SEQ.size:
            convs.add(CONV_SEQ.unpack(edge)[0])
    out = {}
    for conv in convs:
        present = _present(txn, handles, conv)
        out[conv] = (max(max(present, default=0), _floor_of(txn, handles, conv, floor)), present)
    return out


def _conv_of(key: bytes | None, default: int) -> int:
    return U64S.unpack_from(key)[0] if key is not None and len(key) >= U64S.size else default


def _inside(lost: Lost, conv: int, seq: int) -> bool:
    key = CONV_SEQ.pack(conv, seq)
    if lost.key is not None:
        return key == lost.key
    return (lost.low is None or lost.low <= key) and (lost.high is None or key < lost.high)


def _without_record(txn: lmdb.Transaction[bytes], handles: dict[str, Any], known: set[int]) -> list[int]:
    """Conversations with messages and no record (their record was lost)."""
    out = []
    cur = txn.cursor(handles["messages"])
    conv = -1
    while cur.set_range(CONV_SEQ.pack(conv + 1, 0)) if conv + 1 < 1 << 64 else False:
        key = cur.key()
        if len(key) != CONV_SEQ.size:
            break
        conv = CONV_SEQ.unpack(key)[0]
        if conv not in known:
            out.append(conv)
    return out


def _aside_name(data: Path) -> Path:
    """A new DATA_DIR/damaged-<UTC time>/ (the store directory's parent) for the damaged file."""
    stamp = time.strftime("%Y%m%dT%H%M%SZ", time.gmtime())
    aside = data.parent.parent / f"damaged-{stamp}"
    n = 1
    while aside.exists():
        n += 1
        aside = data.parent.parent / f"damaged-{stamp}-{n}"
    return aside


def _set_aside(data: Path, aside: Path) -> None:
    """Link the damaged file into `aside`."""
    aside.mkdir(mode=DIR_MODE)
    os.link(data, aside / DATA_FILE)
    os.chmod(aside / DATA_FILE, FILE_MODE)
    fsync_path(aside)
    fsync_path(aside.parent)


def _report(found: Walk, done: Salvaged) -> None:
    for table in found.damaged:
        for lost in table.lost:
            logmod.warning(
                "storage.salvaged", table=table.name, range=lost.describe(), page=lost.pgno, reason=lost.reason,
                pages_lost=table.pages_lost, records_lost=done.lost.get(table.name, 0),
                records_copied=done.copied.get(table.name, 0), set_aside=str(done.aside),
            )  # fmt: skip
    if found.free.lost:
        logmod.event("storage.salvage_free_list", table=FREE_DB, rebuilt=True)
    logmod.warning("storage.salvage_done", set_aside=str(done.aside), placeholders=done.placeholders,
                   records_lost=sum(done.lost.values()))  # fmt: skip


def audit_salvage(store: Any, done: Salvaged) -> None:
    """Record the salvage in the store's audit trail (the store just opened), if it has one."""
    if "audit" in dict(store.handles()):
        audit.record(store, actor="kefu", action=Action.STORE_SALVAGE, target=str(done.aside),
                     details={"lost": done.lost, "placeholders": done.placeholders})  # fmt: skip


def take_report(store: Any) -> dict[str, int]:
    """The records lost per table by a salvage not counted yet (`REPORT_KEY`), and forget it: for the metric
    kefu_storage_damaged_records_total of the process that serves."""

    def work(txn: lmdb.Transaction[bytes]) -> bytes | None:
        raw = txn.get(REPORT_KEY, db=store.handle("meta"))
        if raw is not None:
            txn.delete(REPORT_KEY, db=store.handle("meta"))
        return raw

    with store.reading() as txn:
        if txn.get(REPORT_KEY, db=store.handle("meta")) is None:
            return {}
    raw = store.writing(work)
    try:
        lost = json.loads(raw)["lost"] if raw else {}
        return {str(table): int(n) for table, n in lost.items()}
    except (ValueError, KeyError, TypeError, AttributeError):
        return {}
