"""The audit trail for the operator: verify it, export it for a SIEM, show its tail (`kefu audit ...`), and record the
operator's own commands (`audited`).

The commands read the store read-only, so they run beside a running server and on a backup (``--store DIR``); the
data keys that open the entries are the configured data directory's (a backup needs the keys it was sealed with).
"""

from __future__ import annotations

import datetime as dt
import json
import sys
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import IO, Any

import lmdb

from ..engine.audit import Result
from ..storage import audit
from ..storage.store import StorageError, Store
from ..wiring import open_store
from .errors import AdminError

__all__ = [
    "audited",
    "export",
    "open_for_reading",
    "parse_since",
    "record_failure",
    "record_if_store",
    "tail",
    "verify",
]


@contextmanager
def audited(store: Any, action: str, target: str, details: Mapping[str, Any] | None = None) -> Iterator[dict[str, Any]]:
    """Record the operator's command run in the block: ``ok``, or ``failed`` with the error's text if it raises (the
    error goes on). The block may add to the yielded details (e.g. what was created)."""
    more: dict[str, Any] = dict(details or {})
    try:
        yield more
    except Exception as exc:
        more["reason"] = str(exc)
        audit.record(store, actor=audit.operator(), action=action, target=target, result=Result.FAILED, details=more)
        raise
    audit.record(store, actor=audit.operator(), action=action, target=target, details=more)


def record_if_store(
    config: Any, action: str, target: str, details: Mapping[str, Any] | None = None, *, result: str = Result.OK
) -> bool:
    """Record a command that does not otherwise open the store (server keys, data keys, a restore), if the store
    exists; whether it did. A data directory without a store yet (the first keygen of a new install) has no trail to
    record in."""
    if not (Path(config.store_path) / "data.mdb").is_file():
        return False
    store = open_store(config)
    try:
        audit.record(store, actor=audit.operator(), action=action, target=target, result=result, details=details)
    finally:
        store.close()
    return True


def record_failure(config: Any, action: str, target: str, error: BaseException, details: Mapping[str, Any]) -> None:
    """Record a command that failed with `error` (``failed``, with its text), if the store exists. The command's own
    error is what the operator must see: a store that cannot be opened to record it (the very store being replaced,
    say) is said on stderr, not raised."""
    try:
        record_if_store(config, action, target, {**details, "reason": str(error)}, result=Result.FAILED)
    except Exception as exc:  # any failure to open or write it: the command's own error goes on
        print(f"kefu: the audit entry of this failure could not be written: {exc}", file=sys.stderr)


@contextmanager
def open_for_reading(config: Any, store_dir: str | None = None) -> Iterator[Store]:
    """The configured store (or the store or backup at `store_dir`, opened with the configured data keys),
    read-only."""
    path = Path(store_dir) if store_dir is not None else Path(config.store_path)
    if not (path / "data.mdb").is_file():
        raise AdminError(f"{path}: no data.mdb: not a store or a backup")
    try:
        if store_dir is None:
            store = open_store(config, readonly=True)
        else:
            from ..wiring import store_sealer  # noqa: PLC0415 - the data keys are read only for another store

            store = Store(path, readonly=True, sealer=store_sealer(config, readonly=True))
    except (StorageError, lmdb.Error) as exc:
        raise AdminError(f"{path}: cannot be read: {exc}") from None
    try:
        yield store
    finally:
        store.close()


def verify(store: Any, anchors: Sequence[str] = ()) -> audit.Report:
    """Check the chain (and each ``SEQ:HASH`` anchor); AdminError for an anchor that does not parse."""
    try:
        parsed = [audit.Anchor.parse(a) for a in anchors]
    except ValueError as exc:
        raise AdminError(str(exc)) from None
    return audit.verify(store, parsed)


def parse_since(text: str | None) -> tuple[int, int]:
    """``--since``: a seq (``1234``) or a UTC time (``2025-01-31``, ``2025-01-31T08:00:00``); (after_seq, from_ms)."""
    if text is None:
        return 0, 0
    if text.isdigit():
        return max(0, int(text) - 1), 0
    try:
        when = dt.datetime.fromisoformat(text)
    except ValueError:
        raise AdminError(f"--since {text!r}: neither an entry number nor an ISO time (2025-01-31T08:00:00)") from None
    if when.tzinfo is None:
        when = when.replace(tzinfo=dt.UTC)
    return 0, int(when.timestamp() * 1000)


def export(store: Any, out: IO[str], since: str | None = None) -> tuple[int, list[str]]:
    """Write JSON Lines, one stored entry per line with its hash (`Entry.line`), from `since`; (lines written, the
    entries that could not be read, which are left out)."""
    after, from_ms = parse_since(since)
    written, unreadable = 0, []
    for stored in audit.entries(store, after):
        if stored.entry is None:
            unreadable.append(f"entry {stored.seq}: {stored.error}")
            continue
        if stored.entry.time_ms < from_ms:
            continue
        out.write(json.dumps(stored.entry.line(), ensure_ascii=False, separators=(",", ":")) + "\n")
        written += 1
    return written, unreadable


def tail(store: Any, count: int) -> list[str]:
    """The last `count` entries, one line each: seq, UTC time, actor, action, target, result, details."""
    last, _ = audit.head(store)
    lines = []
    for stored in audit.entries(store, max(0, last - count)):
        entry = stored.entry
        if entry is None:
            lines.append(f"{stored.seq:>8}  (unreadable: {stored.error})")
            continue
        when = dt.datetime.fromtimestamp(entry.time_ms / 1000, dt.UTC).strftime("%Y-%m-%d %H:%M:%S")
        details = json.dumps(entry.details, ensure_ascii=False, separators=(",", ":")) if entry.details else ""
        lines.append(
            f"{entry.seq:>8}  {when}  {entry.actor}  {entry.action}  {entry.target or '-'}  {entry.result}  {details}"
        )
    return lines
