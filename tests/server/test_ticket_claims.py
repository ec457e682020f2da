"""The claims of resumption tickets kept in the data directory across restarts (kefu.server.identity.tickets)."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest

from kefu.server.identity.tickets import CLAIMS_DIR, SharedTicketGuard, claims_path, open_claims

NOW = 1_800_000_000.0


def test_claims_outlive_a_restart_and_expired_ones_are_purged_at_start(tmp_path: Path) -> None:
    guard = SharedTicketGuard(open_claims(tmp_path, now=NOW))
    assert guard.claim(b"a" * 16, NOW + 600, now=NOW) and guard.claim(b"b" * 16, NOW + 10, now=NOW)
    guard.close()

    guard = SharedTicketGuard(open_claims(tmp_path, now=NOW + 60))  # the next start, a minute later
    try:
        assert len(guard) == 1, "the expired claim is purged, the other kept"
        assert not guard.claim(b"a" * 16, NOW + 600, now=NOW + 60), "still claimed after the restart"
    finally:
        guard.close()
    path = claims_path(tmp_path)
    assert stat.S_IMODE(path.stat().st_mode) == 0o700
    assert {p.name: stat.S_IMODE(p.stat().st_mode) for p in path.iterdir()} == {"data.mdb": 0o600, "lock.mdb": 0o600}


def test_a_damaged_environment_is_made_afresh_with_a_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    open_claims(tmp_path, now=NOW)
    (claims_path(tmp_path) / "data.mdb").write_bytes(b"\xff" * 16384)
    with caplog.at_level(logging.WARNING, logger="kefu"):
        guard = SharedTicketGuard(open_claims(tmp_path, now=NOW))
    try:
        assert [r.msg for r in caplog.records] == ["tickets.claims_reset"]
        assert guard.claim(b"a" * 16, NOW + 600, now=NOW)
    finally:
        guard.close()


def test_the_claims_of_the_old_run_directory_are_removed(tmp_path: Path) -> None:
    old = tmp_path / "run" / CLAIMS_DIR
    old.mkdir(parents=True)
    (old / "data.mdb").write_bytes(b"")
    open_claims(tmp_path, now=NOW)
    assert not (tmp_path / "run").exists()
