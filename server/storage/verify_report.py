"""What `kefu verify` found (`kefu.server.storage.verify`): the damaged records, and how much of each table was read."""

from __future__ import annotations

import signal
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

__all__ = ["STRUCTURE", "Finding", "Report", "TableRead", "death_hint"]

STRUCTURE: Final = "structure"
"""The `Finding.table` of damage to the file's frame or free list rather than to one table."""


@dataclass(frozen=True, slots=True)
class Finding:
    """One damaged record (or structure): its table, key (bytes, b"" when none), the key in words, and why."""

    table: str
    key: bytes
    where: str
    reason: str

    def line(self) -> str:
        """The human form: ``table [where]: reason``."""
        return f"{self.table} [{self.where}]: {self.reason}" if self.where else f"{self.table}: {self.reason}"

    def as_json(self) -> dict[str, str]:
        return {"table": self.table, "key": self.key.hex(), "where": self.where, "reason": self.reason}


@dataclass(slots=True)
class TableRead:
    """How much of a table was read: `entries` checked, and whether that was all of them (`complete`)."""

    entries: int = 0
    complete: bool = False
    error: str = ""


@dataclass(slots=True)
class Report:
    """What one `verify_store` found."""

    path: Path
    findings: list[Finding] = field(default_factory=list)
    tables: dict[str, TableRead] = field(default_factory=dict)
    sealed: bool | None = None
    """Whether the store's values are sealed (None: not known, the meta table could not be read)."""
    key_ids: dict[int, int] = field(default_factory=dict)
    """Sealed values per data key id (the store's tables, the log and the archives)."""
    missing_keys: dict[int, int] = field(default_factory=dict)
    """Of those, the values under a data key id that was not given: not checked (see `clean`)."""
    failed_keys: dict[int, int] = field(default_factory=dict)
    """Of those, the values that did not open (each one a finding). All of a key id's: the key given under that id is
    not the one they were sealed with (another deployment's data key N, say)."""
    marked: dict[int, list[int]] = field(default_factory=dict)
    """The damage marks the server left in ``meta``: conversation -> seqs (0: the conversation record itself)."""
    records: int = 0
    """Entries, log records and archive lines checked."""
    bytes_read: int = 0
    """Bytes of keys and values, log records and archive lines checked."""
    skipped: int = 0
    """Cross-checks not made because the table to look in was unsafe or the entry looked at was damaged."""
    log_position: bytes = b""
    log_id: bytes = b""
    seconds: float = 0.0
    _seen: set[Finding] = field(default_factory=set, repr=False)

    @property
    def clean(self) -> bool:
        """Nothing damaged, every table read in full, and every sealed value checked (no data key missing)."""
        return not self.findings and not self.missing_keys and all(t.complete for t in self.tables.values())

    def add(self, table: str, key: bytes, where: str, reason: str) -> None:
        """Report one damaged record (once: a walk back over a table may meet what the walk forward met)."""
        finding = Finding(table, key, where, reason)
        if finding not in self._seen:
            self._seen.add(finding)
            self.findings.append(finding)

    def count(self, key_ids: dict[str, int], missing: dict[str, int], failed: dict[str, int]) -> None:
        """Add a child's counts of sealed values per data key id (JSON: ids as strings)."""
        for into, counts in ((self.key_ids, key_ids), (self.missing_keys, missing), (self.failed_keys, failed)):
            for key_id, n in counts.items():
                into[int(key_id)] = into.get(int(key_id), 0) + n

    def wrong_keys(self) -> list[int]:
        """The key ids given none of whose values opened: the key under that id is not the one that sealed them."""
        return sorted(k for k, n in self.failed_keys.items() if n == self.key_ids.get(k) and k not in self.missing_keys)

    def as_json(self) -> dict[str, Any]:
        return {
            "path": str(self.path), "clean": self.clean, "sealed": self.sealed,
            "findings": [f.as_json() for f in self.findings],
            "tables": {n: {"entries": t.entries, "complete": t.complete, "error": t.error}
                       for n, t in self.tables.items()},
            "key_ids": {str(k): n for k, n in sorted(self.key_ids.items())},
            "missing_keys": {str(k): n for k, n in sorted(self.missing_keys.items())},
            "failed_keys": {str(k): n for k, n in sorted(self.failed_keys.items())},
            "marked": {str(c): seqs for c, seqs in sorted(self.marked.items())}, "records": self.records,
            "bytes": self.bytes_read, "skipped": self.skipped, "seconds": round(self.seconds, 3),
        }  # fmt: skip


def death_hint(returncode: int | None) -> str | None:
    """For a process exit status: what to tell the operator if it died the way a damaged store kills (None if not)."""
    if returncode is None or returncode >= 0:
        return None
    if -returncode in (signal.SIGABRT, signal.SIGBUS, signal.SIGSEGV):
        name = signal.Signals(-returncode).name
        return (
            f"died by {name}, which is how LMDB ends a process that meets a damaged page: "
            "the store may be damaged: run `kefu verify`"
        )
    return None
