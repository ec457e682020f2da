"""The deployment marker (kefu.server.storage.deployment): every row of its table, on real stores and files."""

from __future__ import annotations

import logging
import stat
from collections.abc import Callable
from pathlib import Path

import pytest

from kefu.server.storage import datadir
from kefu.server.storage.deployment import (
    DEPLOYMENT_KEY,
    DeploymentMismatch,
    marker_path,
    open_checked,
    read_marker,
    write_marker,
)
from kefu.server.storage.store import Store


def opener(data_dir: Path) -> tuple[Path, Callable[[], Store]]:
    store_path = data_dir / "store"
    return store_path, lambda: Store(store_path)


def open_store(data_dir: Path) -> Store:
    store_path, opened = opener(data_dir)
    return open_checked(data_dir, store_path, opened)


def stored_id(store: Store) -> str | None:
    raw = store.get_record("meta", DEPLOYMENT_KEY)
    return raw.hex() if raw else None


def deployed(data_dir: Path, app: str = "alice") -> str:
    """A data directory initialised with one app; its deployment id."""
    store = open_store(data_dir)
    store.put_app(app, b"record")
    deployment = stored_id(store)
    store.close()
    assert deployment is not None
    return deployment


def test_a_fresh_install_stores_the_id_then_writes_the_marker(tmp_path: Path) -> None:
    deployment = deployed(tmp_path)
    marker = read_marker(tmp_path)
    assert marker is not None and marker.id == deployment
    assert stat.S_IMODE(marker_path(tmp_path).stat().st_mode) == 0o600
    store = open_store(tmp_path)
    assert store.list_apps() == ["alice"] and stored_id(store) == deployment, "the same deployment opens again"
    store.close()


@pytest.mark.parametrize("damage", ["truncated", "deleted", "store dir removed"])
def test_an_emptied_store_is_refused_and_nothing_is_created(tmp_path: Path, damage: str) -> None:
    deployment = deployed(tmp_path)
    data = tmp_path / "store" / "data.mdb"
    if damage == "truncated":
        data.write_bytes(b"")
    elif damage == "deleted":
        data.unlink()
    else:
        for path in sorted((tmp_path / "store").rglob("*"), reverse=True):
            path.rmdir() if path.is_dir() else path.unlink()
        (tmp_path / "store").rmdir()
    with pytest.raises(DeploymentMismatch, match=rf"{deployment}.*kefu restore BACKUP.*move the data directory aside"):
        open_store(tmp_path)
    assert not data.exists() or data.stat().st_size == 0, "no new store was started"


def test_an_empty_lmdb_store_in_its_place_is_refused(tmp_path: Path) -> None:
    deployed(tmp_path)
    for name in ("data.mdb", "lock.mdb"):
        (tmp_path / "store" / name).unlink()
    Store(tmp_path / "store").close()  # a valid, empty kefu store (schema, no id, no app)
    with pytest.raises(DeploymentMismatch, match="an empty store"):
        open_store(tmp_path)


def test_another_deployments_store_is_refused(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    deployed(ours)
    other = deployed(theirs, "mallory")
    for name in ("data.mdb", "lock.mdb"):
        (ours / "store" / name).write_bytes((theirs / "store" / name).read_bytes())
    with pytest.raises(DeploymentMismatch, match=f"belongs to deployment {other}"):
        open_store(ours)


def test_a_deployment_from_before_the_marker_gets_one_when_its_store_holds_data(tmp_path: Path) -> None:
    store = Store(tmp_path / "store")  # as an older kefu left it: apps, no id, no marker
    store.put_app("alice", b"record")
    store.close()
    store = open_store(tmp_path)
    deployment = stored_id(store)
    store.close()
    marker = read_marker(tmp_path)
    assert deployment is not None and marker is not None and marker.id == deployment


def test_before_the_marker_a_ticket_key_shows_a_server_ran_here(tmp_path: Path) -> None:
    (tmp_path / "keys").mkdir()
    (tmp_path / "keys" / "ticket.key").write_bytes(bytes(32))
    with pytest.raises(DeploymentMismatch, match="a server ran in this data directory before"):
        open_store(tmp_path)
    assert not (tmp_path / "store" / "data.mdb").exists()


def test_a_crash_between_the_store_and_the_marker_is_finished_at_the_next_open(tmp_path: Path) -> None:
    deployment = deployed(tmp_path)
    marker_path(tmp_path).unlink()
    open_store(tmp_path).close()
    marker = read_marker(tmp_path)
    assert marker is not None and marker.id == deployment


def test_an_unreadable_marker_is_refused(tmp_path: Path) -> None:
    deployed(tmp_path)
    marker_path(tmp_path).write_text("id = not hex\n")
    with pytest.raises(DeploymentMismatch, match="no valid id"):
        open_store(tmp_path)


def backup_of(data_dir: Path, dest: Path) -> Path:
    from kefu.server.storage import maintenance  # noqa: PLC0415

    store = open_store(data_dir)
    try:
        maintenance.backup(store, dest)
    finally:
        store.close()
    return dest


def test_restore_brings_the_same_deployment_back(tmp_path: Path) -> None:
    data = tmp_path / "data"
    deployment = deployed(data)
    backup = backup_of(data, tmp_path / "backup")
    (data / "store" / "data.mdb").write_bytes(b"")
    info, _ = datadir.restore(backup, data, data / "store")
    assert info.deployment == deployment
    store = open_store(data)
    assert store.list_apps() == ["alice"]
    store.close()


def test_restore_of_another_deployments_backup_adopts_it_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    ours, theirs = tmp_path / "ours", tmp_path / "theirs"
    mine = deployed(ours)
    other = deployed(theirs, "mallory")
    backup = backup_of(theirs, tmp_path / "backup")
    with caplog.at_level(logging.WARNING):
        datadir.restore(backup, ours, ours / "store")
    [warning] = [r for r in caplog.records if r.msg == "deployment.replaced"]
    assert warning.kefu_fields["was"] == mine and warning.kefu_fields["deployment"] == other
    marker = read_marker(ours)
    assert marker is not None and marker.id == other
    store = open_store(ours)
    assert store.list_apps() == ["mallory"]
    store.close()


def test_restore_of_a_backup_from_before_the_marker_keeps_the_marker(tmp_path: Path) -> None:
    data = tmp_path / "data"
    deployment = deployed(data)
    old = Store(tmp_path / "old")  # an older kefu's backup: apps, no id
    old.put_app("early", b"record")
    old.close()
    (tmp_path / "old" / "lock.mdb").unlink()
    info, _ = datadir.restore(tmp_path / "old", data, data / "store")
    assert info.deployment is None
    store = open_store(data)
    assert store.list_apps() == ["early"] and stored_id(store) == deployment, "stamped with the marker's id"
    store.close()


def test_write_marker_replaces_durably(tmp_path: Path) -> None:
    first = write_marker(tmp_path, "00" * 16)
    second = write_marker(tmp_path, "11" * 16)
    marker = read_marker(tmp_path)
    assert marker is not None and marker.id == second.id != first.id
    assert [p.name for p in (tmp_path / "keys").iterdir()] == ["deployment"], "no temporary file left"
