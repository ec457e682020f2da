"""Backups of the store (made while serving) and restores (with the server stopped)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ..engine.audit import Action
from ..storage import maintenance
from ..storage.datadir import BackupInfo, DataDirBusy, RestoreError
from ..storage.datadir import restore as restore_store
from .apps import store_of
from .audit import audited, record_failure, record_if_store
from .errors import AdminError
from .verify import restore_check

__all__ = ["backup", "restore"]


def backup(config: Any, dest: Path) -> None:
    """A consistent, compacted copy of the store in `dest` (a new directory), made while the server runs. Keys are
    not in it: they are secrets to back up separately."""
    if dest.exists():
        raise AdminError(f"{dest} exists: a backup goes to a new directory")
    with store_of(config) as store, audited(store, Action.STORE_BACKUP, str(dest.absolute())):
        maintenance.backup(store, dest)


def restore(config: Any, source: Path, *, force: bool = False) -> tuple[BackupInfo, Path | None]:
    """Replace the store by a backup (the server must be stopped); returns what was restored and where the previous
    store was set aside (None if there was none). The staged copy is verified first (`verify.restore_check`: a backup
    sealed under data keys not here is refused; a damaged one unless `force`).

    Recorded in the audit trail with the operator: a restore into the restored store, after it (the store set aside
    keeps its own trail, and the restored one's chain goes on from the backup's head); a refused restore into the
    store that stays, if it can be opened."""
    target, details = str(source.absolute()), dict[str, Any](force=force)
    try:
        check = restore_check(config.data_path, force=force)
        info, aside = restore_store(source, config.data_path, config.store_path, check=check)
    except (DataDirBusy, RestoreError) as exc:
        record_failure(config, Action.STORE_RESTORE, target, exc, details)
        raise AdminError(str(exc)) from None
    details |= {"set_aside": str(aside) if aside else "", "schema_version": info.schema_version}
    try:
        record_if_store(config, Action.STORE_RESTORE, target, details)
    except Exception as exc:  # the store was replaced: say so with the reason the entry is missing
        raise AdminError(f"the store was restored, but its audit entry could not be written: {exc}") from exc
    return info, aside
