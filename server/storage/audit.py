"""The audit trail: an append-only stream of who did what, in the store's ``audit`` table, chained with SM3.

Theory of operation
-------------------
An entry is the canonical JSON object (keys sorted, no spaces, UTF-8, integers only)::

    {"action": ..., "actor": ..., "details": {...}, "prev": hex, "result": ..., "seq": n, "target": ...,
     "time_ms": t}

and its hash is SM3 of exactly those bytes. ``prev`` is the hash of entry n-1; entry 1's is GENESIS, SM3 of
"kefu-audit/1". The stored value is the same object with ``"hash"`` added, under the key ``seq`` (u64, big-endian),
sealed like every other value (`kefu.server.storage.sealing`, AD bound to ("audit", key)); an exported line is that
object, so a SIEM can check each line and the links between lines with any SM3 implementation.

Appending reads the last entry and writes the next ones in the same LMDB write transaction (`Store.writing`), so
entries from every process that appends (the core, each gateway, `kefu app ...` beside a running server) form one
chain: LMDB's write lock orders them. Servers append through an `AuditWriter`, whose thread batches what the event
loop queued into one transaction; the loop never waits. Its queue is bounded (MAX_QUEUED): past it entries are
dropped and counted, and the count is itself the next entry written (``audit.dropped``). Floods (failed logins) are
tallied rather than queued: one entry per (actor, action, target, result) per TALLY_INTERVAL_S.

`verify` walks the chain and names the first entry that does not hold: one that does not open (damaged), a gap in
the keys (removed), an entry found at another's position (reordered, or removed with the later ones renumbered), an
entry whose content does not give its recorded hash (altered), or an entry re-hashed after it was altered (its
successor was chained to something else). A chain rewritten from some entry to its end, hashes and all, is
consistent; only an *anchor* catches it: the head (seq, hash) that the server logs every [audit] anchor_interval_s
and at stop, kept by the operator's log collector where the store cannot rewrite it. `verify(anchors=...)` checks
that the entry at each anchor's seq exists and has the anchor's hash (spec/PROTOCOL.md section 12).
"""

from __future__ import annotations

import asyncio
import json
import os
import struct
import threading
import time
from collections import deque
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final, NamedTuple

import lmdb

from kefu.protocol.crypto import hash_digest

from .. import log as logmod
from ..engine.audit import Action, Result

__all__ = [
    "GENESIS",
    "MAX_QUEUED",
    "TABLE",
    "Anchor",
    "AuditWriter",
    "Draft",
    "Entry",
    "Problem",
    "Report",
    "anchor_forever",
    "changes",
    "entries",
    "head",
    "log_anchor",
    "operator",
    "record",
    "verify",
]

TABLE: Final = "audit"
GENESIS: Final = hash_digest("sm3", b"kefu-audit/1")
"""The ``prev`` of entry 1: a fixed value, so that a chain cannot start anywhere else."""
_SEQ: Final = struct.Struct("!Q")
FIELDS: Final = ("action", "actor", "details", "prev", "result", "seq", "target", "time_ms")

MAX_QUEUED: Final = 10_000
"""Entries an `AuditWriter` holds for its thread; a few seconds of the busiest source (searches) stalled on a disk."""
MAX_BATCH: Final = 1000
"""Entries appended in one write transaction (each ~400 bytes sealed: well under a map page budget)."""
TALLY_INTERVAL_S: Final = 60.0
"""How often tallied events (failed logins) become entries: one per claimed id and interval."""
MAX_TALLIES: Final = 256
"""Distinct (actor, action, target, result) tallied in one interval; the rest are tallied under actor "*"."""
TALLY_NOTES: Final = 4
"""Distinct notes (reasons, addresses) an entry of a tally keeps."""
MAX_TEXT: Final = 1024
"""Characters of one string an entry keeps (a search query, a reason); longer ones are cut and marked."""
MAX_ITEMS: Final = 32
"""Items of one list or object in `details`; the rest are left out."""
_WARN_EVERY_S: Final = 60.0


# --- entries ----------------------------------------------------------------------------------------------


def _canonical(obj: Mapping[str, Any]) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def _text(value: str) -> str:
    """`value` cut at MAX_TEXT characters, with what UTF-8 cannot encode (lone surrogates) escaped."""
    if len(value) > MAX_TEXT:
        value = value[:MAX_TEXT] + "..."
    try:
        value.encode()
    except UnicodeEncodeError:
        value = value.encode("utf-8", "backslashreplace").decode()
    return value


def _jsonable(value: Any, depth: int = 0) -> Any:
    """`value` as the JSON an entry may hold: str (cut at MAX_TEXT), int, bool, None, lists and objects of them
    (MAX_ITEMS each, 4 deep); floats and anything else become strings, so that the encoding is canonical."""
    kind = type(value)
    if kind is str:
        return _text(value)
    if value is None or kind is int or kind is bool:
        return value
    if depth < 4:
        if kind is dict or isinstance(value, Mapping):
            return {_text(str(k)): _jsonable(v, depth + 1) for k, v in list(value.items())[:MAX_ITEMS]}
        if kind in (list, tuple, set, frozenset):
            return [_jsonable(v, depth + 1) for v in list(value)[:MAX_ITEMS]]
    if isinstance(value, str):  # a StrEnum
        return _text(str(value))
    return int(value) if isinstance(value, int) else _text(str(value))


class Draft(NamedTuple):
    """An entry before it is chained: what happened, when (Unix ms). (A tuple: the event loop makes one per entry.)"""

    time_ms: int
    actor: str
    action: str
    target: str
    result: str
    details: dict[str, Any]

    @classmethod
    def of(
        cls, actor: str, action: str, target: str = "", result: str = Result.OK,
        details: Mapping[str, Any] | None = None, *, now_ms: int | None = None,
    ) -> Draft:  # fmt: skip
        """A draft with its fields made canonical (strings cut, details JSON values only)."""
        when = int(time.time() * 1000) if now_ms is None else now_ms
        return cls(
            when, _text(str(actor)), str(action), _text(str(target)), str(result), _jsonable(dict(details or {}))
        )


@dataclass(frozen=True, slots=True)
class Entry:
    """One chained entry: `seq` (1, 2, ...), the draft's fields and `prev`, the hash of entry seq-1."""

    seq: int
    time_ms: int
    actor: str
    action: str
    target: str
    result: str
    details: dict[str, Any]
    prev: bytes

    def body(self) -> dict[str, Any]:
        """The hashed object (every field but the hash)."""
        return {
            "action": self.action, "actor": self.actor, "details": self.details, "prev": self.prev.hex(),
            "result": self.result, "seq": self.seq, "target": self.target, "time_ms": self.time_ms,
        }  # fmt: skip

    def digest(self) -> bytes:
        """SM3 of the canonical encoding of `body`: what the next entry's ``prev`` must be."""
        return hash_digest("sm3", _canonical(self.body()))

    def line(self) -> dict[str, Any]:
        """The stored and exported object: `body` with its ``hash``."""
        return {**self.body(), "hash": self.digest().hex()}

    def encode(self) -> tuple[bytes, bytes]:
        """(the stored bytes: the canonical `line`, the hash)."""
        body = self.body()
        digest = hash_digest("sm3", _canonical(body))
        return _canonical({**body, "hash": digest.hex()}), digest

    @classmethod
    def chained(cls, draft: Draft, seq: int, prev: bytes) -> Entry:
        return cls(seq, draft.time_ms, draft.actor, draft.action, draft.target, draft.result, draft.details, prev)

    @classmethod
    def decode(cls, raw: bytes) -> tuple[Entry, bytes]:
        """The entry and the hash it records; ValueError if `raw` is not an entry."""
        obj = json.loads(raw)
        if not isinstance(obj, dict) or set(obj) != {*FIELDS, "hash"}:
            raise ValueError("not an audit entry (fields missing or extra)")
        ints, texts = ("seq", "time_ms"), ("action", "actor", "target", "result")
        if not all(type(obj[k]) is int for k in ints) or not all(isinstance(obj[k], str) for k in texts):
            raise ValueError("a field has the wrong type")
        if not isinstance(obj["details"], dict):
            raise ValueError("details is not an object")
        prev, recorded = bytes.fromhex(obj["prev"]), bytes.fromhex(obj["hash"])
        fields = {k: obj[k] for k in FIELDS if k != "prev"}
        return cls(prev=prev, **fields), recorded


def seq_key(seq: int) -> bytes:
    """The ``audit`` key of entry `seq`."""
    return _SEQ.pack(seq)


# --- the store: sealing, appending, reading ---------------------------------------------------------------


def _sealer(store: Any) -> Any:
    """The store's `Sealer`, or None for a store whose values are not sealed."""
    return getattr(store, "sealer", None)


def _seal(store: Any, key: bytes, value: bytes) -> bytes:
    sealer = _sealer(store)
    return value if sealer is None else bytes(sealer.seal(TABLE, key, value))


def _open(store: Any, key: bytes, raw: bytes) -> bytes:
    """The plain value; raises the sealer's `Damaged` if it does not open."""
    sealer = _sealer(store)
    return raw if sealer is None else bytes(sealer.open(TABLE, key, raw))


def _tail(store: Any, txn: lmdb.Transaction[bytes]) -> tuple[int, bytes]:
    """(seq, hash) of the last entry, or (0, GENESIS). A last entry that does not open or parse is chained to by the
    SM3 of its stored bytes (verify reports it; appending goes on)."""
    with txn.cursor(store.handle(TABLE)) as cur:
        if not cur.last():
            return 0, GENESIS
        key, raw = cur.key(), cur.value()
    seq = _SEQ.unpack(key)[0] if len(key) == _SEQ.size else 0
    try:
        return seq, Entry.decode(_open(store, key, raw))[0].digest()
    except Exception as exc:
        logmod.error("audit.tail_unreadable", seq=seq, reason=str(exc))
        return seq, hash_digest("sm3", raw)


def append(store: Any, drafts: Sequence[Draft]) -> list[Entry]:
    """Chain `drafts` after the last entry, in one durable write transaction; the entries as chained."""

    def work(txn: lmdb.Transaction[bytes]) -> list[Entry]:
        seq, prev = _tail(store, txn)
        db, chained = store.handle(TABLE), list[Entry]()
        for draft in drafts:
            entry = Entry.chained(draft, seq + len(chained) + 1, prev)
            key = seq_key(entry.seq)
            raw, prev = entry.encode()
            txn.put(key, _seal(store, key, raw), db=db)
            chained.append(entry)
        return chained

    return store.writing(work)  # type: ignore[no-any-return]


def record(
    store: Any, *, actor: str, action: str, target: str = "", result: str = Result.OK,
    details: Mapping[str, Any] | None = None,
) -> Entry:  # fmt: skip
    """Append one entry now, in its own write transaction (the operator's commands: `kefu app add`, `kefu data-key
    rotate`, ...); the entry as chained. `actor` of a command run by a person: `operator()`."""
    return append(store, [Draft.of(actor, action, target, result, details)])[0]


def operator() -> str:
    """The actor of a command run by a person: ``os:<login>`` of the process's user, ``os:<login>(sudo:<who>)`` when
    run through sudo."""
    try:
        import pwd  # noqa: PLC0415 - POSIX only

        name = pwd.getpwuid(os.getuid()).pw_name
    except (ImportError, KeyError):
        name = str(os.getuid()) if hasattr(os, "getuid") else "?"
    sudo = os.environ.get("SUDO_USER")
    return f"os:{name}(sudo:{sudo})" if sudo else f"os:{name}"


def _has_table(store: Any) -> bool:
    try:
        store.handle(TABLE)
    except KeyError:  # a read-only open of a store that never had the table
        return False
    return True


def head(store: Any) -> tuple[int, bytes]:
    """The chain's head: (seq, hash) of the last entry, or (0, GENESIS) if there is none."""
    if not _has_table(store):
        return 0, GENESIS
    with store.reading() as txn:
        return _tail(store, txn)


class Stored(NamedTuple):
    """One stored entry as read: its key's seq, and the entry with its recorded hash, or why it is unreadable."""

    seq: int
    entry: Entry | None
    recorded: bytes
    error: str


def entries(store: Any, after: int = 0) -> Iterator[Stored]:
    """Every stored entry with seq > `after`, in key order, read in one read transaction."""
    if not _has_table(store):
        return
    with store.reading() as txn, txn.cursor(store.handle(TABLE)) as cur:
        if not cur.set_range(seq_key(after + 1)):
            return
        for key, raw in cur:
            seq = _SEQ.unpack(key)[0] if len(key) == _SEQ.size else -1
            try:
                entry, recorded = Entry.decode(_open(store, key, raw))
            except Exception as exc:  # Damaged, or not an entry
                yield Stored(seq, None, b"", str(exc))
                continue
            yield Stored(seq, entry, recorded, "")


def log_anchor(store: Any) -> tuple[int, bytes]:
    """Log the chain's head at info (``audit.anchor``): the copy that `kefu audit verify --anchor` checks against."""
    seq, digest = head(store)
    logmod.event("audit.anchor", seq=seq, hash=digest.hex(), anchor=f"{seq}:{digest.hex()}")
    return seq, digest


# --- verifying ----------------------------------------------------------------------------------------------


class Anchor(NamedTuple):
    """A chain head as logged (``audit.anchor``): entry `seq` had hash `digest`."""

    seq: int
    digest: bytes

    @classmethod
    def parse(cls, text: str) -> Anchor:
        """``SEQ:HASH`` (the ``anchor`` field of the log line); ValueError if it is not one."""
        seq, sep, digest = text.strip().partition(":")
        if not sep or not seq.isdigit() or int(seq) < 1 or len(digest) != 64:
            raise ValueError(f"not an anchor (SEQ:HASH, HASH 64 hex digits): {text!r}")
        return cls(int(seq), bytes.fromhex(digest))


@dataclass(frozen=True, slots=True)
class Problem:
    """The first entry that does not hold: its seq, what is wrong (`kind`), and what was expected instead."""

    seq: int
    kind: str
    """damaged | removed | reordered | altered | truncated | rewritten"""
    detail: str


@dataclass(slots=True)
class Report:
    """What `verify` found: entries checked, the head of the intact part, anchors matched, the first problem."""

    checked: int = 0
    head: tuple[int, bytes] = (0, GENESIS)
    anchors_matched: int = 0
    problem: Problem | None = None


def _short(digest: bytes) -> str:
    return digest.hex()[:16]


def _check(current: Stored, following: Stored | None, expected: int, prev: bytes) -> Problem | None:
    """What is wrong with `current`, the stored entry after a chain intact up to entry expected-1 with hash `prev`
    (`following`, the one after it, tells a removal with renumbering from a reordering, and which side of a broken
    link was re-hashed)."""
    return _check_place(current, following, expected) or _check_link(current, following, prev)


def _check_place(current: Stored, following: Stored | None, expected: int) -> Problem | None:
    """Is `current` entry `expected`, where it should be, and readable?"""
    seq, entry = current.seq, current.entry
    if seq != expected:
        missing = f"entry {expected}" if seq == expected + 1 else f"entries {expected}..{seq - 1}"
        return Problem(expected, "removed", f"{missing} missing: entry {expected - 1} is followed by entry {seq}")
    if entry is None:
        return Problem(seq, "damaged", f"entry {seq} does not open: {current.error}")
    if entry.seq == seq:
        return None
    nxt = following.entry if following is not None else None
    if entry.seq > seq and (nxt is None or nxt.seq == entry.seq + 1):
        detail = f"position {seq} holds entry {entry.seq}: entries {seq}..{entry.seq - 1} removed, later renumbered"
        return Problem(seq, "removed", detail)
    return Problem(seq, "reordered", f"position {seq} holds entry {entry.seq}, where entry {seq} was expected")


def _check_link(current: Stored, following: Stored | None, prev: bytes) -> Problem | None:
    """Does `current` (in its place) hash to what it records, and follow the entry before it (hash `prev`)?"""
    entry = current.entry
    assert entry is not None
    seq = entry.seq
    if current.recorded != entry.digest():
        detail = f"entry {seq} does not hash to its recorded hash {_short(current.recorded)}...: altered after writing"
        return Problem(seq, "altered", detail)
    if entry.prev == prev:
        return None
    if seq == 1:
        return Problem(1, "altered", f"entry 1 is chained to {_short(entry.prev)}..., not to the genesis value")
    nxt = following.entry if following is not None else None
    if nxt is not None and nxt.prev != current.recorded:  # the link after it breaks too: this one was re-hashed
        return Problem(seq, "altered", f"entry {seq} was altered and re-hashed: it no longer follows entry {seq - 1}")
    detail = (
        f"entry {seq - 1} hashes to {_short(prev)}... but entry {seq} was chained to {_short(entry.prev)}...: "
        f"entry {seq - 1} was altered (and re-hashed) or replaced"
    )
    return Problem(seq - 1, "altered", detail)


def verify(store: Any, anchors: Sequence[Anchor] = ()) -> Report:
    """Walk the chain from entry 1 and report the first entry that does not hold (see the module docstring), checking
    each of `anchors` on the way and that none lies past the end."""
    wanted = {a.seq: a.digest for a in anchors}
    report = Report()
    expected, prev = 1, GENESIS
    stream = entries(store)
    current = next(stream, None)
    while current is not None:
        following = next(stream, None)
        problem = _check(current, following, expected, prev)
        if problem is None and (digest := wanted.get(expected)) is not None:
            if digest != current.recorded:
                detail = (
                    f"entry {expected} hashes to {_short(current.recorded)}..., the anchor logged {_short(digest)}...: "
                    f"the chain up to entry {expected} was rewritten"
                )
                problem = Problem(expected, "rewritten", detail)
            else:
                report.anchors_matched += 1
        if problem is not None:
            report.problem = problem
            return report
        prev = current.recorded
        report.checked, report.head = expected, (expected, prev)
        expected += 1
        current = following
    beyond = sorted(seq for seq in wanted if seq >= expected)
    if beyond:
        detail = (
            f"the chain ends at entry {expected - 1}, but an anchor says entry {beyond[0]} existed "
            f"(hash {_short(wanted[beyond[0]])}...): entries {expected}..{beyond[0]} at least were removed"
        )
        report.problem = Problem(expected, "truncated", detail)
    return report


# --- the servers' writer -------------------------------------------------------------------------------------


@dataclass(slots=True)
class _Tally:
    count: int
    first_ms: int
    last_ms: int
    notes: list[str] = field(default_factory=list)


class AuditWriter:
    """An `AuditTrail` (`kefu.server.engine.audit`) over `store` for a server process: `record` and `tally` queue on
    the caller's thread (the event loop) and return; the writer's thread appends in batches (see the module
    docstring). `close` writes what is queued and stops the thread."""

    def __init__(
        self, store: Any, *, name: str = "audit", max_queued: int = MAX_QUEUED,
        tally_interval_s: float = TALLY_INTERVAL_S, clock: Callable[[], float] = time.time,
    ) -> None:  # fmt: skip
        self.store = store
        self.max_queued = max_queued
        self.tally_interval_s = tally_interval_s
        self._clock = clock
        self._cond = threading.Condition(threading.Lock())
        self._queue: deque[Draft] = deque()
        self._tallies: dict[tuple[str, str, str, str], _Tally] = {}
        self._tally_due = clock() + tally_interval_s
        self._dropped = 0
        self._busy = False
        self._closing = False
        self.written = 0
        """Entries appended by this writer."""
        self.lost = 0
        """Entries dropped (queue full) or whose write failed; each loss is also recorded by `audit.dropped`."""
        self._warned = 0.0
        self._thread = threading.Thread(target=self._run, name=f"{name}-audit", daemon=True)
        self._thread.start()

    def record(
        self, actor: str, action: str, target: str = "", result: str = Result.OK,
        details: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """Queue one entry (dropped and counted if MAX_QUEUED are waiting)."""
        draft = Draft.of(actor, action, target, result, details, now_ms=int(self._clock() * 1000))
        with self._cond:
            if self._closing or len(self._queue) >= self.max_queued:
                self._dropped += 1
                return
            self._queue.append(draft)
            self._cond.notify()

    def tally(self, actor: str, action: str, target: str = "", result: str = Result.OK, note: str = "") -> None:
        """Count an event into this interval's entry for (actor, action, target, result)."""
        now_ms = int(self._clock() * 1000)
        ident = (_text(actor), str(action), _text(target), str(result))
        with self._cond:
            found = self._tallies.get(ident)
            if found is None:
                if len(self._tallies) >= MAX_TALLIES:
                    ident = ("*", ident[1], "", ident[3])
                    found = self._tallies.get(ident)
                if found is None:
                    found = self._tallies[ident] = _Tally(0, now_ms, now_ms)
            found.count += 1
            found.last_ms = now_ms
            if note and len(found.notes) < TALLY_NOTES and note not in found.notes:
                found.notes.append(_text(note))

    def flush(self, timeout: float = 10.0) -> bool:
        """Write everything queued and tallied so far; False if that took longer than `timeout`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            self._tally_due = 0.0
            self._cond.notify()
            while self._queue or self._tallies or self._dropped or self._busy:
                left = deadline - time.monotonic()
                if left <= 0 or not self._thread.is_alive():
                    return False
                self._cond.wait(min(left, 0.05))
        return True

    def close(self, timeout: float = 10.0, *, last: Draft | None = None) -> None:
        """Write what is queued and tallied, then `last` (the process's stop: the chain's head at stop), then stop
        the thread (entries recorded later are dropped)."""
        self.flush(timeout)
        if last is not None:
            with self._cond:
                self._queue.append(last)
                self._cond.notify()
            self.flush(timeout)
        with self._cond:
            self._closing = True
            self._cond.notify()
        self._thread.join(timeout)

    def _take(self) -> list[Draft] | None:
        """The next batch, waiting for one; None once closing and nothing is left. Holds the lock."""
        while True:
            now, batch = self._clock(), []
            if self._tallies and now >= self._tally_due:  # first: they counted what happened before now
                batch += self._tally_drafts()
            if now >= self._tally_due:
                self._tally_due = now + self.tally_interval_s
            if self._dropped:
                details = {"count": self._dropped, "reason": "queue full or write failed"}
                batch.append(Draft.of("kefu", Action.DROPPED, "", Result.FAILED, details, now_ms=int(now * 1000)))
                self.lost += self._dropped
                self._dropped = 0
            batch += [self._queue.popleft() for _ in range(min(len(self._queue), MAX_BATCH))]
            if batch:
                self._busy = True
                return batch
            self._cond.notify_all()  # flush() waits for an empty, idle writer
            if self._closing:
                return None
            self._cond.wait(max(0.01, self._tally_due - now))

    def _tally_drafts(self) -> list[Draft]:
        drafts = []
        for (actor, action, target, result), t in self._tallies.items():
            details: dict[str, Any] = {"count": t.count, "first_ms": t.first_ms, "last_ms": t.last_ms, "notes": t.notes}
            drafts.append(Draft.of(actor, action, target, result, details, now_ms=t.last_ms))
        self._tallies.clear()
        return drafts

    def _run(self) -> None:
        while True:
            with self._cond:
                batch = self._take()
            if batch is None:
                return
            try:
                append(self.store, batch)
                written, failed = len(batch), 0
            except Exception as exc:  # a full or failing disk: counted, recorded once it works again, never fatal
                written, failed = 0, len(batch)
                self._warn(exc, len(batch))
            with self._cond:
                self.written += written
                self._dropped += failed
                self._busy = False
                self._cond.notify_all()

    def _warn(self, exc: Exception, count: int) -> None:
        now = time.monotonic()
        if now - self._warned >= _WARN_EVERY_S:
            self._warned = now
            logmod.error("audit.write_failed", entries=count, reason=repr(exc))


async def anchor_forever(store: Any, interval_s: float) -> None:
    """Log the chain's head every `interval_s` (`log_anchor`, read in a worker thread); cancel to stop."""
    loop = asyncio.get_running_loop()
    while True:
        await asyncio.sleep(interval_s)
        try:
            await loop.run_in_executor(None, log_anchor, store)
        except Exception as exc:  # a failed read is logged; the next interval tries again
            logmod.error("audit.anchor_failed", reason=repr(exc))


def changes(applied: Sequence[Any], ignored: Sequence[Any] = ()) -> dict[str, Any]:
    """The details of a configuration reload: {"applied": {setting: [old, new]}, "ignored": [setting, ...]}
    (`kefu.server.config.Change`s)."""
    return {"applied": {c.name: [c.old, c.new] for c in applied}, "ignored": [c.name for c in ignored]}
