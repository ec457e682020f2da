"""`kefu verify` for the operator, and the check `kefu restore` makes of a backup before it replaces the store.

`kefu verify [PATH]` checks a store directory or a backup (default: the data directory's store, and then its
archives too) with the data keys of the data directory (or `--keys DIR`), prints every damaged record and a
summary, and exits 0 when everything was read and is intact, 1 when anything is damaged or could not be checked (a
table LMDB could not read to its end, values sealed under a data key not given), 2 on a usage error (no store at
PATH, no data keys for a sealed store). The check itself is `kefu.server.storage.verify`.

Restore (`restore_check`): the staged copy of the backup is verified with the data directory's keys. A backup with
values sealed under a data key the data directory does not hold is refused, naming the key ids (restoring it would
make those records unreadable); a damaged backup is refused unless `--force` (then the damaged records are reported
at restore and, once serving, never served: spec section 12).
"""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TextIO

from .. import log as logmod
from ..identity.datakeys import DataKeyError, load_data_keys
from ..storage.datadir import RestoreError, migrate_store_dir
from ..storage.sealing import DataKey
from ..storage.verify import Report, verify_store
from .errors import AdminError

__all__ = ["USAGE", "command", "load_keys", "print_report", "restore_check"]

USAGE = 2
"""The exit status of a usage error (as argparse's)."""


def load_keys(data_dir: Path, keys_dir: Path | None = None) -> list[DataKey]:
    """The data keys of `data_dir`, or of `keys_dir` (a data directory, or a keys directory named ``keys``)."""
    where = Path(data_dir) if keys_dir is None else Path(keys_dir)
    if keys_dir is not None and not (where / "keys").is_dir():
        if where.name != "keys" or not where.is_dir():
            raise AdminError(f"--keys {where}: not a data directory (with keys/) nor a directory named keys")
        where = where.parent
    try:
        return load_data_keys(where)
    except DataKeyError as exc:
        raise AdminError(str(exc)) from None


def command(args: Any, config: Any) -> int:
    """Run `kefu verify`; the exit status."""
    path = Path(args.path) if args.path else migrate_store_dir(Path(config.store_path), readonly=True)
    if not (path / "data.mdb").is_file():
        print(f"kefu: {path}: no data.mdb: not a store directory nor a backup made by kefu backup", file=sys.stderr)
        return USAGE
    keys = load_keys(config.data_path, Path(args.keys) if args.keys else None)
    archives = Path(args.archives) if args.archives else None
    if archives is None and not args.path and Path(config.archive_path).is_dir():
        archives = Path(config.archive_path)
    report = verify_store(path, keys, archive_dir=archives)
    if report.sealed and not keys:
        where = args.keys or config.keys_path
        print(f"kefu: {path} is sealed and {where} holds no data keys: give the keys it was sealed with "
              "(--keys DIR)", file=sys.stderr)  # fmt: skip
        return USAGE
    if args.json:
        json.dump(report.as_json(), sys.stdout, indent=1)
        print()
    else:
        print_report(report, sys.stdout)
    return 0 if report.clean else 1


def print_report(report: Report, out: TextIO) -> None:
    """The human form: one line per damaged record, then what was read and the verdict."""
    for finding in report.findings:
        print(f"DAMAGED {finding.line()}", file=out)
    for key_id, n in sorted(report.missing_keys.items()):
        print(f"NOT CHECKED {n} values sealed under data key {key_id}, which was not given (data-{key_id}.key)",
              file=out)  # fmt: skip
    for key_id in report.wrong_keys():
        print(f"WRONG KEY none of the {report.key_ids[key_id]} values sealed under data key {key_id} opens with the "
              f"data-{key_id}.key given: it is another key under the same id", file=out)  # fmt: skip
    for conversation, seqs in sorted(report.marked.items()):
        what = ", ".join("the conversation record" if s == 0 else f"seq {s}" for s in seqs)
        print(f"MARKED conversation {conversation}: the server found damaged: {what}", file=out)
    unread = [f"{name} ({t.entries} read)" for name, t in report.tables.items() if not t.complete]
    if unread:
        print(f"NOT READ TO THE END: {', '.join(unread)}", file=out)
    state = "sealed" if report.sealed else "plain" if report.sealed is False else "unknown"
    mib = report.bytes_read / (1 << 20)
    print(f"kefu verify: {report.path}: {len(report.tables)} tables ({state} values), {report.records} records, "
          f"{mib:.1f} MiB in {report.seconds:.2f} s; {report.skipped} cross-checks skipped", file=out)  # fmt: skip
    verdict = "clean" if report.clean else f"{len(report.findings)} damaged"
    print(f"kefu verify: {verdict}", file=out)


def restore_check(data_dir: Path, *, force: bool) -> Callable[[Path], None]:
    """What `datadir.restore` runs on the staged copy of a backup (see the module docstring); raises RestoreError."""
    keys = load_keys(data_dir)

    def check(staged: Path) -> None:
        report = verify_store(staged, keys)
        missing = sorted(report.missing_keys)
        if missing:
            files = ", ".join(f"data-{k}.key" for k in missing)
            raise RestoreError(
                f"the backup's values are sealed under data key(s) {', '.join(map(str, missing))}, which "
                f"{Path(data_dir) / 'keys'} does not hold: copy {files} from your key backup there (mode 0600), "
                "then restore again"
            )
        wrong = report.wrong_keys()
        if wrong:
            names = ", ".join(f"data-{k}.key" for k in wrong)
            raise RestoreError(
                f"none of the backup's values sealed under data key(s) {', '.join(map(str, wrong))} opens with "
                f"{names} in {Path(data_dir) / 'keys'}: those are other keys under the same id (another "
                "deployment's?); put the backup's own key files there, then restore again"
            )
        if report.clean:
            return
        first = report.findings[0].line() if report.findings else "a table could not be read to its end"
        if not force:
            raise RestoreError(
                f"the backup is damaged ({len(report.findings)} damaged; first: {first}): `kefu verify BACKUP` "
                "lists them; `kefu restore --force` restores it anyway (damaged records are then never served)"
            )
        logmod.warning("restore.damaged", damaged=len(report.findings), first=first, forced=True)

    return check
