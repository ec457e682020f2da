"""Data keys, for the operator: `kefu data-key rotate`, `kefu data-key status`, `kefu data-key retire N`.

Rotation writes key N+1 (`kefu.server.identity.datakeys.add_data_key`, [storage] seal_cipher). Every process that
opens the store takes the keys at start; a running server takes them on SIGHUP (`systemctl reload kefu`), seals
new values under the new key from then on and reseals the older ones in the background
(`kefu.server.storage.reseal.Resealer`). `status` counts, per key id, the values sealed under it in the store, the
log and the archives; it only reads, beside a running server. `retire` deletes an old key once nothing anywhere
names it (a value sealed under a deleted key can never be opened again).

The log's count: every record the store has not indexed yet (read from the indexed position, as a replay would),
and the records before it still in segments the server has not recycled (it recycles a segment once its writes
move to the next one: when the segment fills, or after a restart at the first write). The archives' count: every
message line of data_dir/archive (archives are kept until the operator deletes them: an archive sealed under an
old key needs that key for as long as it is kept).
"""

from __future__ import annotations

import base64
import gzip
import json
import os
import signal
import sys
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..engine.audit import Action
from ..identity.datakeys import DataKeyError, add_data_key, load_data_keys, retire_data_key
from ..storage.datadir import holder
from ..storage.logfile import HEADER, HEADER_SIZE, SUFFIX, read_log, segment_name
from ..storage.preflight import DATA_FILE
from ..storage.records import Cursors, decode_record
from ..storage.reseal import count_sealed
from ..storage.schema import LogPosition
from ..storage.sealing import DataKey, key_id_of
from ..wiring import open_store
from .apps import store_of
from .audit import audited, record_failure, record_if_store
from .errors import AdminError

__all__ = ["KeyCounts", "command", "count_archives", "count_log", "reload_server", "retire", "rotate", "status"]

LOG_DIR = "log"  # kefu.server.storage.conversations.LOG_DIR


@dataclass(slots=True)
class KeyCounts:
    """What names each key id: values in the store (per table), records' values in the log, archived messages;
    and the keys on disk (the last one seals)."""

    keys: list[DataKey]
    store: dict[str, Counter[int]] = field(default_factory=dict)
    log: Counter[int] = field(default_factory=Counter)
    archives: Counter[int] = field(default_factory=Counter)

    def in_store(self, key_id: int) -> int:
        """Values of the store sealed under `key_id`."""
        return sum(c[key_id] for c in self.store.values())

    def total(self, key_id: int) -> int:
        """Everything sealed under `key_id`, wherever it is."""
        return self.in_store(key_id) + self.log[key_id] + self.archives[key_id]

    def key_ids(self) -> list[int]:
        """Every key id on disk or named by a value (0: values too short to be sealed)."""
        named = {k for c in self.store.values() for k in c} | set(self.log) | set(self.archives)
        return sorted(named | {k.key_id for k in self.keys})


def rotate(config: Any) -> tuple[DataKey, int | None]:
    """Write the next data key with [storage] seal_cipher; returns it and the pid of the server running on the data
    directory (None if none), which takes the key on SIGHUP. Recorded in the audit trail, sealed under the keys as
    they were: an entry under the new key would have a running server meet (and take) the key before its reload,
    which then finds nothing new and starts no reseal."""
    if not (Path(config.store_path) / DATA_FILE).is_file():
        key = _add_data_key(config)  # no store yet: no trail to record in
    else:
        keys = load_data_keys(config.data_path)
        target = f"data-{(keys[-1].key_id if keys else 0) + 1}"
        with store_of(config) as store, audited(store, Action.DATA_KEY_ROTATE, target) as details:
            details["cipher"] = config.storage.seal_cipher
            key = _add_data_key(config)
            details["server_pid"] = pid = _server_pid(config)
        return key, pid
    return key, _server_pid(config)


def _add_data_key(config: Any) -> DataKey:
    try:
        return add_data_key(config.data_path, config.storage.seal_cipher)
    except DataKeyError as exc:
        raise AdminError(str(exc)) from None


def _server_pid(config: Any) -> int | None:
    running = holder(config.data_path)
    return running[0] if running else None


def reload_server(pid: int) -> None:
    """SIGHUP to the server (`kefu data-key rotate --reload`)."""
    try:
        os.kill(pid, signal.SIGHUP)
    except OSError as exc:
        raise AdminError(f"could not signal the server (pid {pid}): {exc}") from None


def status(config: Any) -> KeyCounts:
    """Per key id, what is sealed under it (read-only: beside a running server too)."""
    try:
        counts = KeyCounts(load_data_keys(config.data_path))
    except DataKeyError as exc:
        raise AdminError(str(exc)) from None
    store = open_store(config, readonly=True)
    try:
        counts.store = count_sealed(store)
        _, position = store.log_state()
        directory = store.path / LOG_DIR
    finally:
        store.close()
    counts.log = count_log(directory, position)
    counts.archives = count_archives(Path(config.archive_path))
    return counts


def retire(config: Any, key_id: int) -> KeyCounts:
    """Delete data key `key_id`, refused while anything is sealed under it (or if it is the newest)."""
    counts = status(config)
    target = f"data-{key_id}"
    details = {"store": counts.in_store(key_id), "log": counts.log[key_id], "archives": counts.archives[key_id]}
    try:
        retire_data_key(config.data_path, key_id, still_sealed=counts.total(key_id))
    except DataKeyError as exc:
        where = f" (store {counts.in_store(key_id)}, log {counts.log[key_id]}, archives {counts.archives[key_id]})"
        error = AdminError(str(exc) + (where if counts.total(key_id) else ""))
        record_failure(config, Action.DATA_KEY_RETIRE, target, error, details)
        raise error from None
    record_if_store(config, Action.DATA_KEY_RETIRE, target, details)
    return counts


# --- the log ----------------------------------------------------------------------------------------------------


def count_log(directory: Path, indexed: LogPosition) -> Counter[int]:
    """Values per key id in the log's records: those after `indexed` (checked as a replay reads them) and those
    before it in segments not yet recycled."""
    counts: Counter[int] = Counter()
    for kind, payload in _indexed_records(directory, indexed):
        _count_record(counts, kind, payload)
    for kind, payload, _ in read_log(directory, indexed):
        _count_record(counts, kind, payload)
    return counts


def _count_record(counts: Counter[int], kind: int, payload: bytes) -> None:
    try:
        record = decode_record(kind, payload)
    except ValueError:
        return
    if isinstance(record, Cursors):
        return
    if record.message_raw:
        counts[key_id_of(record.message_raw) or 0] += 1
    counts.update(key_id_of(value) or 0 for _, _, value in record.puts if value is not None)


def _indexed_records(directory: Path, indexed: LogPosition) -> Iterator[tuple[int, bytes]]:
    """(kind, payload) of the records already indexed that are still in the segments up to `indexed`'s: each
    segment from its start, while the records' lsns follow one another (a recycled segment's older content, or
    zeros, ends the run). Their checksums chain from the segment before, which may be gone, so the lsn run is the
    check; a stale record counted by mistake only delays a retirement."""
    numbers = sorted(
        int(p.name[: -len(SUFFIX)], 16) for p in directory.glob("*" + SUFFIX) if _hex(p.name[: -len(SUFFIX)])
    )
    for number in (n for n in numbers if n <= indexed.segment):
        try:
            data = (directory / segment_name(number)).read_bytes()
        except FileNotFoundError:
            continue  # recycled meanwhile
        end = indexed.offset if number == indexed.segment else len(data)
        offset, lsn = 0, None
        while offset + HEADER_SIZE <= end:
            _, length, record_lsn, kind = HEADER.unpack_from(data, offset)
            if record_lsn == 0 or (lsn is not None and record_lsn != lsn + 1) or offset + HEADER_SIZE + length > end:
                break
            yield kind, data[offset + HEADER_SIZE : offset + HEADER_SIZE + length]
            offset, lsn = offset + HEADER_SIZE + length, record_lsn


def _hex(text: str) -> bool:
    try:
        int(text, 16)
    except ValueError:
        return False
    return True


# --- the archives -----------------------------------------------------------------------------------------------


ARCHIVE_VALUE_FIELD = "value"
"""The field of an archive line holding the message as stored, sealed (base64, `maintenance.write_archive`); a line
of an archive written before sealing has none (counted under 0: in clear)."""


def count_archives(directory: Path) -> Counter[int]:
    """Archived messages per key id (0: archived in clear, before sealing)."""
    counts: Counter[int] = Counter()
    if not directory.is_dir():
        return counts
    for path in sorted(directory.glob("*.jsonl.gz")):
        with gzip.open(path, "rt") as lines:
            for line in lines:
                sealed = json.loads(line).get(ARCHIVE_VALUE_FIELD)
                counts[key_id_of(base64.b64decode(sealed)) or 0 if sealed else 0] += 1
    return counts


# --- the commands' output -----------------------------------------------------------------------------------------


def command(action: str, args: Any, config: Any) -> int:
    """Run `kefu data-key ACTION` and print its outcome; the exit status."""
    if action == "rotate":
        return _print_rotate(config, reload=args.reload)
    if action == "status":
        return _print_status(status(config))
    counts = retire(config, args.key_id)
    print(f"kefu: data key {args.key_id} retired ({counts.total(args.key_id)} values were sealed under it)")
    print(
        "kefu: backups made while it sealed still need it: keep a copy of data-"
        f"{args.key_id}.key with them, under your key-management procedure, for as long as you keep them.",
        file=sys.stderr,
    )
    return 0


def _print_rotate(config: Any, *, reload: bool) -> int:
    key, pid = rotate(config)
    print(f"data-{key.key_id}.key  {key.cipher}  seals from the server's next reload or start")
    if pid is not None and reload:
        reload_server(pid)
        what = f"kefu: SIGHUP sent to the server (pid {pid}):"
    elif pid is not None:
        what = f"kefu: reload the server (systemctl reload kefu, or kill -HUP {pid}):"
    else:
        what = "kefu: no server is running on this data directory; at its next start"
    print(
        f"{what} new values are sealed under key {key.key_id} and older ones are resealed in the background\n"
        "(log lines storage.reseal_started / storage.reseal_finished; kefu data-key status shows the counts).\n"
        "Retire an old key with `kefu data-key retire N` once nothing is sealed under it. Back up the new key\n"
        f"file ({config.data_path / 'keys' / f'data-{key.key_id}.key'}) now: what it seals is lost without it.",
        file=sys.stderr,
    )
    return 0


def _print_status(counts: KeyCounts) -> int:
    on_disk = {k.key_id: k for k in counts.keys}
    newest = counts.keys[-1].key_id if counts.keys else None
    print(f"{'KEY':<5} {'CIPHER':<8} {'STATE':<8} {'STORE':>10} {'LOG':>8} {'ARCHIVES':>9}")
    for key_id in counts.key_ids():
        key = on_disk.get(key_id)
        state = "seals" if key_id == newest else "opens" if key else "plain" if key_id == 0 else "MISSING"
        cipher = key.cipher if key else "-"
        label = str(key_id) if key_id else "-"
        print(f"{label:<5} {cipher:<8} {state:<8} {counts.in_store(key_id):>10} {counts.log[key_id]:>8} "
              f"{counts.archives[key_id]:>9}")  # fmt: skip
    return 0
