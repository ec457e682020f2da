"""`kefu verify`: every record of a store (or a backup, or archives) checked, every damaged one reported.

Theory of operation
-------------------
A store is checked in four passes, each one reading what the one before proved safe to read:

1. **The frame** (`preflight.check_store_dir`): the data file against LMDB's meta pages, read with pread. A file
   that fails is not mapped (a page past its end would be SIGBUS) and nothing else is read. The tops of its
   B-trees are checked too (`preflight.check_tree_tops`: what a server's open refuses), and reported, but the
   check goes on: the passes below read the file as bytes, or in child processes.
2. **The structure** (``lmdb.verify``, py-lmdb's offline verifier: pure Python over the file's bytes, never the
   engine): every page reachable from the current meta page, each table's B-tree, and the free list. A table with
   a problem here is "unsafe": no lookup from another table descends into it.
3. **The records**, through the engine, in a child process (`verify_tables`): every value of every table opened,
   decoded and cross-checked. LMDB raises on some damaged pages and aborts the process on others (an assert() in
   ``mdb_cursor_next`` / ``mdb_cursor_sibling``, or SIGBUS): when the child dies, the table it was walking is
   reported as "the B-tree is damaged" with what LMDB said, and another child goes on with the next table. So a
   damaged page costs the rest of its table, never the rest of the check.
4. **The files beside it** (`verify_files`): the write-ahead log after the indexed position as a chain, with every
   sealed value inside, and the archive files.

Beside a running server: the environment is opened read-only, sharing the server's lock file (a reader slot, so
that the pages of the snapshot being checked are not reused while it is read); the log is pinned against recycling
as a backup pins it (`logfile.pinned_for_backup`). A backup has no lock file and none is made in it.

Reports are `Finding`s (table, key, reason) and, per table, how many entries were read and whether all of them.
"""

from __future__ import annotations

import contextlib
import json
import re
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, Final

from . import verify_files
from .preflight import DATA_FILE, DamagedStore, DamagedTree, check_data_file, check_tree_tops
from .sealing import DataKey, Sealer
from .verify_report import STRUCTURE, Finding, Report, TableRead, death_hint
from .verify_tables import PROGRESS_EVERY, describe_key

__all__ = ["Finding", "Report", "TableRead", "death_hint", "verify_store"]

STRUCTURE_LINES: Final = 20
"""Structural problems reported per table at most (then how many more): they describe pages, not records."""
MAX_CHILDREN: Final = 64
"""Child processes one check starts at most (one per table that kills its walker, and one more)."""


# --- the check ------------------------------------------------------------------------------------------------


def verify_store(
    path: Path, keys: Sequence[DataKey], *, log_dir: Path | None = None, archive_dir: Path | None = None
) -> Report:
    """Check the store (or backup) at `path` with the data `keys`; `log_dir`: its write-ahead log (default
    path/log, if present); `archive_dir`: archive files to check too. Never raises for damage: it is reported."""
    path, start = Path(path), time.monotonic()
    report = Report(path)
    sealer = Sealer(keys) if keys else None
    try:
        check_data_file(path / DATA_FILE)  # not check_store_dir: it would make a lock file in a backup
    except DamagedStore as exc:
        report.add(STRUCTURE, b"", "data.mdb", str(exc))
        report.seconds = time.monotonic() - start
        return report
    try:
        check_tree_tops(path / DATA_FILE)
    except DamagedTree as exc:  # what a server's open refuses; the walks below go on (in child processes)
        report.add(
            STRUCTURE, b"", f"page {exc.pgno}", f"the B-tree is damaged ({exc.detail}): a server refuses to open it"
        )
    log_dir = path / "log" if log_dir is None else log_dir
    with verify_files.log_pinned(log_dir), _reader(path):
        unsafe = _structure(path, report)
        _walk(path, keys, unsafe, report)
        _counts(report)
        if report.log_position and log_dir.is_dir():
            verify_files.check_log(log_dir, report, sealer)
    if archive_dir is not None:
        verify_files.check_archives(Path(archive_dir), report, sealer if report.sealed is not False else None)
    report.seconds = time.monotonic() - start
    return report


@contextlib.contextmanager
def _reader(path: Path) -> Iterator[None]:
    """Beside a running server (a lock file): a read transaction held for the whole check, so that LMDB reuses no
    page of the snapshot being checked. A backup (no lock file) gets none, and nothing is created in it."""
    if not (path / "lock.mdb").exists():
        yield
        return
    import lmdb  # noqa: PLC0415

    from .schema import MAX_TABLES  # noqa: PLC0415

    env = lmdb.open(str(path), readonly=True, max_dbs=MAX_TABLES, create=False)
    try:
        with env.begin():  # reads only the meta pages, which preflight checked
            yield
    finally:
        env.close()


_TABLE_OF: Final = re.compile(r"main/(\S+) DB")


def _structure(path: Path, report: Report) -> set[str]:
    """Pass 2 (see the module docstring): the tables with a structural problem."""
    import lmdb.verify  # noqa: PLC0415

    try:
        problems: list[str] = lmdb.verify.verify(str(path))  # type: ignore[no-untyped-call]
    except (lmdb.verify.VerifyError, OSError) as exc:
        report.add(STRUCTURE, b"", "data.mdb", f"the structural check could not run: {exc}")
        return set()
    unsafe, shown = set[str](), dict[str, int]()
    for problem, times in Counter(problems).items():  # one damaged page can be met hundreds of times
        match = _TABLE_OF.search(problem)
        table = match.group(1) if match else STRUCTURE
        unsafe.add(table)
        shown[table] = shown.get(table, 0) + 1
        if shown[table] <= STRUCTURE_LINES:
            report.add(table, b"", "B-tree", problem + (f" ({times} times)" if times > 1 else ""))
    for table, n in shown.items():
        if n > STRUCTURE_LINES:
            report.add(table, b"", "B-tree", f"and {n - STRUCTURE_LINES} more structural problems")
    return unsafe


def _counts(report: Report) -> None:
    """A message has exactly one expiry key, so once both tables were read whole and every expiry key names a stored
    message (the walks checked), more keys than messages means some message has a second key with another time."""
    messages, expiry = report.tables.get("messages"), report.tables.get("expiry")
    if messages is None or expiry is None or not (messages.complete and expiry.complete):
        return
    if any(f.table == "expiry" for f in report.findings):
        return
    if (extra := expiry.entries - messages.entries) > 0:
        report.add("expiry", b"", "", f"{extra} keys more than messages: a message has a second key, with another "
                   "time (retention would archive it then)")  # fmt: skip


def _walk(path: Path, keys: Sequence[DataKey], unsafe: set[str], report: Report) -> None:
    """Pass 3: children walk the tables forward; a table whose walk fails (LMDB raised, or aborted the child) is
    walked again backward from its last key down to where the forward walk stopped, so that a damaged page costs
    only the entries it holds. A child that dies is followed by another for the walks left."""
    walks = _Walks(path, keys, unsafe, report)
    for _ in range(MAX_CHILDREN):
        if not walks.run_child():
            return
    report.add(STRUCTURE, b"", "data.mdb", f"gave up after {MAX_CHILDREN} walks died")


Walk = tuple[str, bool, str]
"""(table, backward, the key to stop at when backward, hex)."""


class _Walks:
    """The walks left to do and what the children said of them (`_walk`)."""

    def __init__(self, path: Path, keys: Sequence[DataKey], unsafe: set[str], report: Report) -> None:
        self.path, self.keys, self.unsafe, self.report = path, keys, unsafe, report
        self.pending: list[Walk] | None = None  # None: every table forward (the first child lists them)
        self.current: Walk | None = None
        self.progress = (0, "")  # (entries, last key reported) of the current walk

    def run_child(self) -> bool:
        """Run one child over the pending walks; True if walks are left (it died, or a walk failed)."""
        request = {
            "path": str(self.path), "lock": (self.path / "lock.mdb").exists(), "walks": self.pending,
            "unsafe": sorted(self.unsafe), "keys": [[k.key_id, k.cipher, k.secret.hex()] for k in self.keys],
        }  # fmt: skip
        self.current = None
        with tempfile.TemporaryFile() as err:
            with subprocess.Popen(
                [sys.executable, "-m", "kefu.server.storage.verify"], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                stderr=err, text=True,
            ) as proc:  # fmt: skip
                assert proc.stdin is not None and proc.stdout is not None
                proc.stdin.write(json.dumps(request))
                proc.stdin.close()
                for line in proc.stdout:
                    self._event(json.loads(line))
            code = proc.returncode
            err.seek(0)
            stderr = err.read().decode(errors="replace")
        if code == 0:
            return bool(self.pending)
        what = _death(code, stderr)
        if self.current is None:
            self.report.add(STRUCTURE, b"", "data.mdb", f"the environment could not be read: {what}")
            return False
        self._failed(self.current, self.progress[0], f"{what}; {self._read_words()}")
        return bool(self.pending)

    def _read_words(self) -> str:
        entries, last = self.progress
        if not last:
            return f"fewer than {PROGRESS_EVERY} entries read"
        assert self.current is not None
        words = describe_key(self.current[0], bytes.fromhex(last))
        return f"at least {entries} entries read, the last one reported: {words}"

    def _failed(self, walk: Walk, entries: int, what: str) -> None:
        """A walk that ended on damage: reported, its table unsafe, and a forward walk followed by a backward one."""
        table, backward, _ = walk
        read = self.report.tables.setdefault(table, TableRead())
        read.entries += entries
        read.complete, read.error = False, what
        self.report.records += entries
        self.unsafe.add(table)
        direction = "walking back from its last key" if backward else "reading"
        self.report.add(table, b"", "B-tree", f"the B-tree is damaged (LMDB, {direction}: {what})")
        assert self.pending is not None
        self.pending.remove(walk)
        if not backward:
            self.pending.append((table, True, self.progress[1]))

    def _event(self, event: dict[str, Any]) -> None:
        report = self.report
        if "tables" in event:
            if self.pending is None:
                self.pending = [(t, False, "") for t in event["tables"]]
        elif "start" in event:
            self.current, self.progress = (event["start"], event["backward"], event["stop"]), (0, "")
        elif "finding" in event:
            table, key, where, reason = event["finding"]
            report.add(table, bytes.fromhex(key), where, reason)
        elif "at" in event:
            self.progress = (event["n"], event["key"])
        elif "done" in event or "broken" in event:
            assert self.current is not None and self.pending is not None
            report.bytes_read += event["bytes"]
            report.skipped += event["skipped"]
            report.count(event["key_ids"], event["missing"], event["failed"])
            if "broken" in event:
                self._failed(self.current, event["n"], event["broken"])
            else:
                read = report.tables.setdefault(self.current[0], TableRead(complete=True))
                read.entries += event["n"]
                report.records += event["n"]
                self.pending.remove(self.current)
            self.current = None
        elif "meta" in event:
            setattr(report, event["meta"], bytes.fromhex(event["value"]))
        elif "sealed" in event:
            report.sealed = event["sealed"]
        elif "marked" in event:
            report.marked[event["marked"]] = event["seqs"]


def _death(code: int, stderr: str) -> str:
    said = [line.strip() for line in stderr.splitlines() if line.strip()]
    assertion = next((line for line in reversed(said) if "Assertion" in line), said[-1] if said else "")
    if code < 0:
        how = f"the reading process was killed by {signal.Signals(-code).name}"
    else:
        how = f"the reading process failed (status {code})"
    return f"{how}: {assertion}" if assertion else how


# --- the child ----------------------------------------------------------------------------------------------------


def _child() -> int:
    """The walks (`verify_tables`), asked for on stdin; events on stdout."""
    import lmdb  # noqa: PLC0415

    from .schema import CORE_TABLES, MAX_TABLES  # noqa: PLC0415
    from .verify_tables import Walker, store_is_sealed  # noqa: PLC0415

    request = json.load(sys.stdin)
    keys = [DataKey(i, cipher, bytes.fromhex(secret)) for i, cipher, secret in request["keys"]]
    env = lmdb.open(request["path"], readonly=True, lock=request["lock"], max_dbs=MAX_TABLES, create=False)
    with env.begin() as txn:
        names = [k.decode() for k, _ in txn.cursor()]
    db = {name: env.open_db(name.encode(), create=False) for name in names}
    order = [t for t in CORE_TABLES if t in db] + sorted(set(db) - set(CORE_TABLES))
    txn = env.begin()
    sealed = store_is_sealed(txn, db.get("meta"))
    walker = Walker(txn, db, sealed, Sealer(keys) if keys else None, frozenset(db) - set(request["unsafe"]))
    walker.emit(tables=order)
    walker.emit(sealed=sealed)
    for table, backward, stop in request["walks"] or [(t, False, "") for t in order]:
        try:
            walker.walk(table, backward=backward, stop=bytes.fromhex(stop))
        except lmdb.Error as exc:  # a damaged page LMDB noticed: this walk ends here, the transaction with it
            walker.end(table, f"{type(exc).__name__}: {exc}")
            txn.abort()
            walker.txn = txn = env.begin()
            walker.safe -= {table}
    txn.abort()
    return 0


if __name__ == "__main__":
    sys.exit(_child())
