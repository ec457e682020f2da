"""`kefu staff ...`, run as a real subprocess against a real data directory (spec section 16)."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

from kefu.server.identity import credentials, keys, staff
from kefu.server.identity.datakeys import sealer_of
from kefu.server.identity.orders import OrderBook, OrderKind
from kefu.server.storage.store import Store

TIMEOUT = 60.0
PASSWORD = "correct horse battery"


def kefu(data_dir: Path, *args: str, stdin: str = "") -> subprocess.CompletedProcess[str]:
    clean = {k: v for k, v in os.environ.items() if not k.startswith("KEFU_")}
    return subprocess.run(
        [sys.executable, "-m", "kefu.server.cli", *args, "--data-dir", str(data_dir)],
        env=clean, input=stdin, capture_output=True, text=True, timeout=TIMEOUT, check=False,
    )  # fmt: skip


def _store(data_dir: Path) -> Store:
    return Store(data_dir / "store", sealer=sealer_of(data_dir, "sm4-gcm"), tables=staff.TABLES)


def test_staff_add_list_passwd_signout_remove(tmp_path: Path) -> None:
    data = tmp_path / "data"
    added = kefu(data, "staff", "add", "agent-1", "--role", "agent", "--tenant", "bank", "--password-stdin",
                 stdin=PASSWORD + "\n")  # fmt: skip
    assert added.returncode == 0, added.stderr
    assert "app 'agent-1' created" in added.stderr and PASSWORD not in added.stdout + added.stderr
    store = _store(data)
    try:
        app = keys.AppRecord.decode(store.get_app("agent-1") or b"")
        assert (app.role, app.tenant) == ("agent", "bank")
        assert staff.authenticate(store, "agent-1", PASSWORD)
        issued = credentials.issue(store, "agent-1", ttl_s=600, now=time.time())
    finally:
        store.close()

    listed = kefu(data, "staff", "list")
    assert listed.returncode == 0, listed.stderr
    header, row = listed.stdout.splitlines()
    assert header.split()[:4] == ["NAME", "ROLE", "TENANT", "ENABLED"]
    assert row.split()[:4] == ["agent-1", "agent", "bank", "yes"] and row.split()[-1] == "1"

    again = kefu(data, "staff", "add", "agent-1", "--role", "agent", "--tenant", "bank", "--password-stdin",
                 stdin="another long password\n")  # fmt: skip
    assert again.returncode == 1 and "already exists" in again.stderr
    short = kefu(data, "staff", "add", "agent-2", "--role", "agent", "--tenant", "bank", "--password-stdin",
                 stdin="short\n")  # fmt: skip
    assert short.returncode == 1 and "at least" in short.stderr
    no_tty = kefu(data, "staff", "passwd", "agent-1")
    assert no_tty.returncode == 1 and "--password-stdin" in no_tty.stderr

    changed = kefu(data, "staff", "passwd", "agent-1", "--password-stdin", stdin="a brand new password\n")
    assert changed.returncode == 0, changed.stderr
    store = _store(data)
    try:
        assert not staff.authenticate(store, "agent-1", PASSWORD)
        assert staff.authenticate(store, "agent-1", "a brand new password")
        assert not credentials.check_secret(keys.AppDirectory(store), "agent-1", issued.secret, now=time.time())
        credentials.issue(store, "agent-1", ttl_s=600, now=time.time())
    finally:
        store.close()

    disabled = kefu(data, "staff", "disable", "agent-1")
    assert disabled.returncode == 0, disabled.stderr
    store = _store(data)
    try:
        assert not staff.authenticate(store, "agent-1", "a brand new password")
        assert credentials.read_session_keys(store, "agent-1") == []
    finally:
        store.close()
    assert kefu(data, "staff", "list").stdout.splitlines()[1].split()[3] == "no"
    assert kefu(data, "staff", "enable", "agent-1").returncode == 0
    store = _store(data)
    try:
        assert staff.authenticate(store, "agent-1", "a brand new password")
        credentials.issue(store, "agent-1", ttl_s=600, now=time.time())
    finally:
        store.close()

    out = kefu(data, "staff", "signout", "agent-1")
    assert out.returncode == 0 and "1 session credential(s)" in out.stderr, out.stderr
    removed = kefu(data, "staff", "remove", "agent-1")
    assert removed.returncode == 0, removed.stderr
    assert kefu(data, "staff", "list").stdout.splitlines()[1:] == []
    assert kefu(data, "staff", "remove", "agent-1").returncode == 1
    store = _store(data)
    try:
        orders = OrderBook.decode(store.app_orders()).orders
        assert [(OrderKind(o.kind), o.pin) for o in orders][-4:] == [(OrderKind.SIGNED_OUT, "")] * 4
        assert store.get_app("agent-1") is not None  # the app record stays (kefu app revoke)
    finally:
        store.close()
    trail = kefu(data, "audit", "tail", "-n", "20").stdout
    for action in ("staff.add", "staff.passwd", "staff.disable", "staff.enable", "staff.signout", "staff.remove"):
        assert action in trail
    assert PASSWORD not in trail


def test_staff_add_refuses_an_existing_app_of_another_role_or_tenant(tmp_path: Path) -> None:
    data = tmp_path / "data"
    assert kefu(data, "app", "add", "teller", "--role", "integration", "--tenant", "bank").returncode == 0
    refused = kefu(data, "staff", "add", "teller", "--role", "agent", "--tenant", "bank", "--password-stdin",
                   stdin=PASSWORD + "\n")  # fmt: skip
    assert refused.returncode == 1 and "exists with role integration" in refused.stderr
    assert kefu(data, "app", "add", "sup-1", "--role", "supervisor", "--tenant", "bank").returncode == 0
    kept = kefu(data, "staff", "add", "sup-1", "--role", "supervisor", "--tenant", "bank", "--password-stdin",
                stdin=PASSWORD + "\n")  # fmt: skip
    assert kept.returncode == 0 and "existing app 'sup-1' kept" in kept.stderr
