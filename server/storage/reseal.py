"""Sealing values again: the one-time upgrade of a plain store (`migrate`), and the reseal after a key rotation.

Theory of operation
-------------------
Both walk the sealed tables (`sealed_tables`: every table of spec section 12 whose values are sealed) in key order,
in bounded batches, each one durable LMDB write transaction that also records in ``meta`` how far it got. A batch
and its progress commit together, so a process killed at any instant resumes exactly after the last batch that
committed: no value is left out, and none is treated twice.

`migrate` (schema 2 to 3, once, at start-up, before anything is served, `kefu.server.storage.store`): a version-2
store holds plain values, which carry no marker to tell them from sealed ones (a plain value may happen to start
like a sealed one). What tells them apart is the position alone: ``meta`` ``seal_migration`` = (table, last key
sealed); every value before it is sealed, every value after it is plain. The last batch deletes that key and runs
the caller's `finish` (the schema version becomes 3) in the same transaction, so the upgrade either has not
finished or has finished and will not run again.

The background reseal (`Resealer`, in the running server, on a thread of its own): after `kefu data-key rotate`
and a restart or SIGHUP, new values are sealed under the new key at once, and the values under older keys are
sealed again here. Each step *reads* up to `RESEAL_SCAN_VALUES` values in a read transaction (no lock held) and
notes the keys whose value names an older key (`Sealer.needs_reseal`); only if there are some does it take the
write lock, for at most `RESEAL_BATCH_VALUES` of them. Inside that write transaction every value is read again
and resealed only if it still needs it: the indexer process writes the same tables, and a value it wrote since
the read (sealed under the new key, or newer content) must never be overwritten by a stale copy. Between steps the
thread sleeps as long as the step took divided by the duty cycle (`RESEAL_DUTY`), so that it uses at most about
half a core and the event loop and the indexer keep the interpreter lock and the write lock most of the time.
``meta`` ``reseal_progress`` = (active key id, table, last key) lets a restarted server go on where it stopped
(only the write steps record it; a read-only stretch is simply read again).

A pass that resealed anything is followed by another: records logged under the old key before the switch may
have been indexed behind the pass. Passes stop when one finds nothing to reseal; that last pass counts the values
per key id (`kefu_storage_sealed_records{key_id}`). A value that does not open (`Damaged`) is left as it is,
logged and counted under the key id it names: it keeps that key from being retired until an operator looks at it
(`kefu verify`).

The log keeps records sealed under an old key until its segments are recycled, and archives keep theirs for good:
`kefu data-key status` counts them too (`kefu.server.admin.datakeys`), and an old key is retired only when
nothing anywhere names it.
"""

from __future__ import annotations

import functools
import struct
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, Protocol, TypeAlias, TypeVar

import lmdb

from .. import log as logmod
from .sealing import Damaged, Sealer, index_entry, key_id_of

__all__ = [
    "MIGRATION_KEY",
    "RESEAL_KEY",
    "SEALED_CORE_TABLES",
    "MigrationError",
    "Resealer",
    "count_sealed",
    "finished_under",
    "migrate",
    "sealed_tables",
]

SEALED_CORE_TABLES: Final = ("messages", "conversations", "cursors", "idempotency", "apps", "audit")
"""The core tables whose values are sealed (spec section 12.1); `meta` and the key-only indexes are not. Tables
the store does not have are passed over."""
MIGRATION_KEY: Final = b"seal_migration"
"""``meta``: how far the upgrade of a plain store got, (table, last key sealed)."""
RESEAL_KEY: Final = b"reseal_progress"
"""``meta``: how far the reseal under the active key got, (key id, table, last key resealed)."""

MIGRATE_BATCH_VALUES: Final = 20_000
"""Values sealed per transaction by the upgrade: nothing is served meanwhile, so batches are large (fewer commits)
but bounded, so that the dirty pages of one transaction stay a few tens of MiB."""
MIGRATE_BATCH_BYTES: Final = 16 << 20
"""Plain bytes sealed per upgrade transaction, whichever bound comes first."""
RESEAL_BATCH_VALUES: Final = 500
"""Values resealed per write transaction in the running server: about 5 ms of sealing (SM4-GCM), so the indexer
never waits long for the write lock."""
RESEAL_SCAN_VALUES: Final = 5_000
"""Values looked at per read step of the reseal (a read transaction, no lock)."""
RESEAL_DUTY: Final = 0.5
"""Share of the time the reseal thread works: it sleeps (1 - duty) / duty times as long as each step took."""
RETRY_S: Final = 30.0
"""Pause after a failed reseal step (a disk error, a full map) before the reseal tries again."""
_DONE: Final = b"\xff"
_KEY_ID: Final = struct.Struct("!I")


def finished_under(key_id: int) -> bytes:
    """The ``reseal_progress`` value that says every value is sealed under data key `key_id` (a new store's, whose
    values are all sealed under its first key; and a finished pass's)."""
    return _KEY_ID.pack(key_id) + _DONE


T = TypeVar("T")
Txn: TypeAlias = "lmdb.Transaction[bytes]"


class MigrationError(Exception):
    """The upgrade's recorded progress names a table this store does not have."""


class Tables(Protocol):
    """What the walks need of a store: a durable write transaction and the named dbs (`Store` has both)."""

    def writing(self, work: Callable[[Txn], T]) -> T: ...

    def handle(self, name: str) -> Any: ...


def sealed_tables(store: Any) -> list[str]:
    """The tables of `store` whose values are sealed, in the order the walks take them."""
    present = {name for name, _ in store.handles()}
    return [t for t in SEALED_CORE_TABLES if t in present] + sorted(set(store.tables) - set(SEALED_CORE_TABLES))


# --- progress in meta -------------------------------------------------------------------------------------------


def _position(table: str, after: bytes) -> bytes:
    name = table.encode()
    return bytes((len(name),)) + name + after


def _parse_position(raw: bytes) -> tuple[str, bytes]:
    return raw[1 : 1 + raw[0]].decode(), raw[1 + raw[0] :]


def _scan(txn: Txn, db: Any, after: bytes | None, limit: int) -> list[tuple[bytes, bytes]]:
    """Up to `limit` (key, value) pairs after `after` (None or b"": from the first; LMDB keys are never empty)."""
    out: list[tuple[bytes, bytes]] = []
    with txn.cursor(db) as cur:
        found = cur.first() if after is None else cur.set_range(after)
        if found and after is not None and cur.key() == after:
            found = cur.next()
        while found and len(out) < limit:
            out.append((cur.key(), cur.value()))
            found = cur.next()
    return out


# --- the upgrade of a plain store ---------------------------------------------------------------------------------


class _Environment:
    """`Tables` over a bare environment and its handles (a store being upgraded, before `Store` is built on it):
    one write transaction, the map doubled and the batch retried when it does not fit. Only while no other
    transaction of this process is open (set_mapsize), as at start-up."""

    def __init__(self, env: lmdb.Environment, handles: Mapping[str, Any]) -> None:
        self.env, self.handles_ = env, handles

    def writing(self, work: Callable[[Txn], T]) -> T:
        while True:
            try:
                with self.env.begin(write=True) as txn:
                    return work(txn)
            except lmdb.MapFullError:
                self.env.set_mapsize(self.env.info()["map_size"] * 2)

    def handle(self, name: str) -> Any:
        return self.handles_[name]


@dataclass(slots=True)
class _Migration:
    tables: Sequence[str]
    sealer: Sealer
    batch_values: int
    batch_bytes: int
    finish: Callable[[Txn], None] | None
    sealed: int = 0

    def step(self, target: Tables, txn: Txn) -> tuple[str, bool]:
        """Seal one batch; returns (the table it worked in, whether the upgrade is complete)."""
        meta = target.handle("meta")
        raw = txn.get(MIGRATION_KEY, db=meta)
        if raw == _DONE:
            return "", True
        table, after = _parse_position(raw) if raw else (self.tables[0], b"")
        if table not in self.tables:
            raise MigrationError(f"the upgrade stopped in table {table!r}, which this store does not have")
        index = self.tables.index(table)
        batch = _scan(txn, target.handle(table), after, self.batch_values)
        size = 0
        for n, (key, value) in enumerate(batch):
            txn.put(key, self.sealer.seal(table, key, value), db=target.handle(table))
            size += len(value)
            if size >= self.batch_bytes:
                batch = batch[: n + 1]
                break
        self.sealed += len(batch)
        if batch and (len(batch) == self.batch_values or size >= self.batch_bytes):
            txn.put(MIGRATION_KEY, _position(table, batch[-1][0]), db=meta)  # more may follow in this table
        elif index + 1 < len(self.tables):
            txn.put(MIGRATION_KEY, _position(self.tables[index + 1], b""), db=meta)  # b"": from the first key
        else:
            txn.delete(MIGRATION_KEY, db=meta)
            if self.finish is not None:
                self.finish(txn)
            else:
                txn.put(MIGRATION_KEY, _DONE, db=meta)
            return table, True
        return table, False


def migrate(
    target: Any,
    sealer: Sealer,
    *,
    handles: Mapping[str, Any] | None = None,
    tables: Iterable[str] | None = None,
    finish: Callable[[Txn], None] | None = None,
    batch_values: int = MIGRATE_BATCH_VALUES,
    batch_bytes: int = MIGRATE_BATCH_BYTES,
    on_batch: Callable[[str, int], None] | None = None,
) -> int:
    """Seal in place every value of the sealed tables of a plain (schema 2) store; returns how many this call
    sealed. Safe to run again after a kill at any point: it goes on after the last batch that committed.

    `target`: a `Store`, or a bare ``lmdb.Environment`` with `handles` (name -> handle, ``meta`` and each table
    named). `tables`: the tables to seal (default `sealed_tables` of the store; required with an environment).
    `finish(txn)` runs in the last batch's transaction (the caller makes the schema version 3 there); without it,
    the completion is recorded in ``meta`` and later calls do nothing. `on_batch(table, sealed so far)` after each
    committed batch."""
    if handles is not None:
        store: Tables = _Environment(target, handles)
        names = list(tables) if tables is not None else [t for t in SEALED_CORE_TABLES if t in handles]
    else:
        store = target
        names = list(tables) if tables is not None else sealed_tables(target)
    if not names:
        return 0
    work = _Migration(names, sealer, batch_values, batch_bytes, finish)
    started, last_log = time.monotonic(), 0.0
    logmod.event("storage.seal_migration_started", tables=",".join(names), datakey=sealer.active)
    while True:
        table, complete = store.writing(lambda txn: work.step(store, txn))
        if on_batch is not None:
            on_batch(table, work.sealed)
        if complete:
            break
        if time.monotonic() - last_log >= 1.0:
            last_log = time.monotonic()
            logmod.event("storage.seal_migration_progress", table=table, sealed=work.sealed)
    seconds = round(time.monotonic() - started, 3)
    logmod.event("storage.seal_migration_finished", sealed=work.sealed, seconds=seconds)
    return work.sealed


# --- counting ---------------------------------------------------------------------------------------------------


def count_sealed(store: Any, tables: Iterable[str] | None = None) -> dict[str, Counter[int]]:
    """Per table, how many values name each key id (0: a value too short to be sealed; index entries, which name
    none, are not counted: `sealing.INDEXED_TABLES`). Reads only: in a read
    transaction per table, beside a running server."""
    out: dict[str, Counter[int]] = {}
    for table in tables if tables is not None else sealed_tables(store):
        counts: Counter[int] = Counter()
        with store.reading() as txn, txn.cursor(store.handle(table)) as cur:
            for value in cur.iternext(keys=False, values=True):
                if index_entry(table, value) is None:  # an index entry names no key: nothing to reseal
                    counts[key_id_of(value) or 0] += 1
        out[table] = counts
    return out


# --- the background reseal ----------------------------------------------------------------------------------------


@dataclass(slots=True)
class PassStats:
    """What one reseal pass did: values resealed, values that did not open, values per key id it read (exact for a
    pass that resealed nothing), and whether it walked everything from the start."""

    resealed: int = 0
    damaged: int = 0
    counts: Counter[int] = field(default_factory=Counter)
    whole: bool = True


class Resealer:
    """Reseals, on a thread of its own, every value of `store` under a key older than the active one.

    `start()` once the store is open; `update(sealer)` when the keys change (SIGHUP: a rotation), which starts over
    under the new active key; `stop()` before the store closes. `observe(counts)` gets the values per key id at the
    end of each reseal (the metric). Its face: `start`, `update`, `stop`, `running`, `last`."""

    def __init__(
        self,
        store: Any,
        sealer: Sealer,
        *,
        observe: Callable[[Mapping[int, int]], None] | None = None,
        batch_values: int = RESEAL_BATCH_VALUES,
        scan_values: int = RESEAL_SCAN_VALUES,
        duty: float = RESEAL_DUTY,
    ) -> None:
        self.store, self.sealer = store, sealer
        self._observe = observe
        self._report: Callable[[Damaged], None] = getattr(store, "damage", _log_damaged)
        """The store's damage report (log line, metric, mark), or a log line for a store without one."""
        self.batch_values, self.scan_values = batch_values, scan_values
        self._pause = (1 - duty) / duty
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.running = False
        """True while values are being resealed (from the first found until a pass finds none)."""
        self.last: PassStats | None = None
        """The last pass that found nothing to reseal: its counts per key id are the store's."""
        self.done = threading.Event()
        """Set when a reseal under the current keys is complete (cleared by `update`)."""

    def start(self) -> None:
        """Start the thread: it makes a pass now (a reseal left unfinished before a restart goes on), unless the last
        pass finished under the sealing key (nothing to do: a start does not walk the whole store for nothing)."""
        with self.store.reading() as txn:
            finished = txn.get(RESEAL_KEY, db=self.store.handle("meta")) == finished_under(self.sealer.active)
        if finished:
            self.done.set()
        else:
            self._wake.set()
        self._thread = threading.Thread(target=self._run, name="kefu-reseal", daemon=True)
        self._thread.start()

    def update(self, sealer: Sealer) -> None:
        """New keys: reseal under `sealer`'s active key (any thread)."""
        self.done.clear()
        self.sealer = sealer
        self._wake.set()

    def stop(self, timeout: float = 10.0) -> None:
        """Stop after the current step (a batch is milliseconds); the progress is in meta for the next start."""
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(timeout)
            self._thread = None

    def _run(self) -> None:
        while not self._stopping.is_set():
            self._wake.wait()
            self._wake.clear()
            try:
                self._reseal(self.sealer)
            except Exception as exc:  # a disk error, a full map: try again later, never take the server down
                logmod.error("storage.reseal_failed", reason=repr(exc))
                self._stopping.wait(RETRY_S)
                self._wake.set()

    def _reseal(self, sealer: Sealer) -> None:
        """Passes under `sealer` until a whole one reseals nothing (or the keys change again, or stop)."""
        started, passes, total = time.monotonic(), 0, PassStats()
        while not self._stopping.is_set() and self.sealer is sealer:
            stats = self._pass(sealer)
            if stats is None:
                return  # interrupted: stop, or new keys (the wake is set)
            passes += 1
            total.resealed += stats.resealed
            total.damaged += stats.damaged
            if stats.resealed and not self.running:
                self.running = True
                logmod.event("storage.reseal_started", datakey=sealer.active, resealed_first_pass=stats.resealed)
            if stats.whole and not stats.resealed:
                self._finished(sealer, stats, total, passes, time.monotonic() - started)
                return

    def _finished(self, sealer: Sealer, stats: PassStats, total: PassStats, passes: int, seconds: float) -> None:
        self.last = stats
        stats.counts[sealer.active] += 0
        older = sum(n for k, n in stats.counts.items() if k != sealer.active)
        if self._observe is not None:
            self._observe(dict(stats.counts))
        if self.running or total.resealed:
            self.running = False
            logmod.event(
                "storage.reseal_finished", datakey=sealer.active, resealed=total.resealed, damaged=total.damaged,
                passes=passes, seconds=round(seconds, 3), left_under_older=older,
            )  # fmt: skip
        if older:
            keys = ",".join(str(k) for k in sorted(stats.counts) if k != sealer.active)
            logmod.warning("storage.reseal_left", datakeys=keys, values=older, reason="they do not open: kefu verify")
        self.done.set()

    def _pass(self, sealer: Sealer) -> PassStats | None:
        """One walk over every sealed table (from where a stopped one left off); None if interrupted."""
        tables = sealed_tables(self.store)
        if not tables:
            return PassStats()
        table, after = self._progress(sealer)
        start = tables.index(table) if table in tables else 0
        stats = PassStats(whole=start == 0 and not after)
        for n, name in enumerate(tables[start:]):
            if not self._walk(sealer, name, after if n == 0 else None, stats):
                return None
        meta = self.store.handle("meta")
        self.store.writing(lambda txn: txn.put(RESEAL_KEY, finished_under(sealer.active), db=meta))
        return stats

    def _progress(self, sealer: Sealer) -> tuple[str, bytes | None]:
        """Where a pass under `sealer`'s key stopped before (a restart), or ("", None): the start."""
        with self.store.reading() as txn:
            raw = txn.get(RESEAL_KEY, db=self.store.handle("meta"))
        if raw is None or len(raw) <= _KEY_ID.size or _KEY_ID.unpack_from(raw)[0] != sealer.active:
            return "", None
        rest = raw[_KEY_ID.size :]
        return ("", None) if rest == _DONE else _parse_position(rest)

    def _walk(self, sealer: Sealer, table: str, after: bytes | None, stats: PassStats) -> bool:
        """Reseal `table` from after `after`, step by step; False if interrupted."""
        db = self.store.handle(table)
        while True:
            if self._stopping.is_set() or self.sealer is not sealer:
                return False
            began = time.monotonic()
            with self.store.reading() as txn:
                seen, stale = self._look(txn, db, after, sealer)
            if not seen:
                return True
            if stale:
                resealed, damaged = self.store.writing(
                    functools.partial(self._batch, sealer=sealer, table=table, keys=stale)
                )
                stats.resealed += resealed
                stats.damaged += damaged
            stats.counts.update(key_id_of(value) or 0 for _, value in seen if index_entry(table, value) is None)
            if len(seen) < self.scan_values and len(stale) < self.batch_values:
                return True
            after = seen[-1][0]
            self._stopping.wait((time.monotonic() - began) * self._pause)

    def _look(
        self, txn: Txn, db: Any, after: bytes | None, sealer: Sealer
    ) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        """The values after `after` up to `scan_values` of them, or up to the `batch_values`-th that needs a reseal
        (each value is then read once per pass however many need it); and the keys of those that do."""
        seen: list[tuple[bytes, bytes]] = []
        stale: list[bytes] = []
        with txn.cursor(db) as cur:
            found = cur.first() if after is None else cur.set_range(after)
            if found and after is not None and cur.key() == after:
                found = cur.next()
            while found and len(seen) < self.scan_values:
                key, value = cur.item()
                seen.append((key, value))
                if sealer.needs_reseal(value):
                    stale.append(key)
                    if len(stale) == self.batch_values:
                        break
                found = cur.next()
        return seen, stale

    def _batch(self, txn: Txn, *, sealer: Sealer, table: str, keys: Sequence[bytes]) -> tuple[int, int]:
        """Read-check-write, in one write transaction: each value still under an older key is sealed again."""
        db = self.store.handle(table)
        resealed = damaged = 0
        for key in keys:
            value = txn.get(key, db=db)
            if value is None or not sealer.needs_reseal(value):
                continue  # deleted or rewritten since the read (the indexer): the newer value stays
            try:
                plain = sealer.open(table, key, value)
            except Damaged as exc:
                damaged += 1
                self._report(exc)
                continue
            txn.put(key, sealer.seal(table, key, plain), db=db)
            resealed += 1
        txn.put(RESEAL_KEY, _KEY_ID.pack(sealer.active) + _position(table, keys[-1]), db=self.store.handle("meta"))
        return resealed, damaged


def _log_damaged(exc: Damaged) -> None:
    logmod.warning("storage.damaged", table=exc.table, record=exc.key.hex(), reason=exc.reason)
