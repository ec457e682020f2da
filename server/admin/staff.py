"""Staff accounts for the operator (`kefu staff ...`; an HTTP API may call these too): add, change a password, list,
disable and enable, remove, sign out everywhere. Each is recorded in the audit trail.

A staff account signs in as the app of the same name (spec section 16): `add_staff` creates that app record, with the
role and tenant given, when it does not exist yet (its own secret is never shown: staff authenticate only with the
session credentials their sign-ins issue), and refuses an existing app of another role or tenant. Changing a password,
removing or disabling an account and `signout` revoke every session credential of the account and end its live
sessions (a session order, then a poke of the running server: `kefu.server.admin.operator`). Removing an account
leaves its app record (`kefu app revoke NAME` deletes it); without the account nobody can sign in as it.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from typing import Any

from ..engine.audit import Action
from ..engine.identity import Role
from ..identity import credentials
from ..identity import staff as staffmod
from ..identity.keys import AppError, AppRecord, create_app
from .apps import store_of
from .audit import audited
from .errors import AdminError
from .operator import Poke, orders_generation, poke

__all__ = ["STAFF_ROLES", "StaffRow", "add_staff", "list_staff", "remove", "set_enabled", "set_password", "signout"]

STAFF_ROLES = (Role.AGENT, Role.SUPERVISOR)


@dataclass(frozen=True, slots=True)
class StaffRow:
    """One account as `kefu staff list` shows it."""

    name: str
    role: str
    tenant: str
    enabled: bool
    created_ms: int
    sessions: int
    """Unexpired session credentials."""


def add_staff(config: Any, name: str, password: str, *, role: Role, tenant: str) -> bool:
    """Create the staff account `name` with `password` (and its app record, if missing); whether the app was created."""
    if role not in STAFF_ROLES:
        raise AdminError(f"a staff account's role is agent or supervisor, not {role.value}")
    with store_of(config) as store, audited(store, Action.STAFF_ADD, name, {"role": role.value, "tenant": tenant}) as d:
        raw = store.get_app(name)
        try:
            staffmod.check_password_rules(password)
            if staffmod.get_staff(store, name) is not None:
                raise staffmod.StaffError(f"staff account {name!r} already exists (kefu staff passwd changes it)")
            if raw is None:
                create_app(store, name, role=role.value, tenant=tenant)
            else:
                _check_app(AppRecord.decode(raw), role, tenant)
            staffmod.add_staff(store, name, password, now_ms=time.time_ns() // 1_000_000)
        except (AppError, staffmod.StaffError) as exc:
            raise AdminError(str(exc)) from None
        d["app_created"] = raw is None
        return raw is None


def _check_app(record: AppRecord, role: Role, tenant: str) -> None:
    if (record.role, record.tenant) != (role.value, tenant):
        raise AdminError(
            f"app {record.app_id!r} exists with role {record.role} and tenant {record.tenant!r}, not {role.value} and"
            f" {tenant!r}: use another name, or revoke that app first (kefu app revoke)"
        )


def set_password(config: Any, name: str, password: str) -> Poke:
    """Give `name` a new password; its session credentials are revoked and its live sessions ended."""
    with store_of(config) as store, audited(store, Action.STAFF_PASSWD, name) as details:
        before = orders_generation(store)
        try:
            staffmod.set_password(store, name, password)
        except staffmod.StaffError as exc:
            raise AdminError(str(exc)) from None
        details["revoked"] = credentials.revoke_all(store, name, now=time.time())
    return poke(config, after=before)


def list_staff(config: Any) -> list[StaffRow]:
    """Every staff account, by name, with its app's role and tenant and its live session credentials."""
    now = time.time()
    rows = []
    with store_of(config) as store:
        for name, record in staffmod.list_staff(store):
            raw = store.get_app(name)
            app = AppRecord.decode(raw) if raw is not None else None
            live = sum(1 for k in credentials.read_session_keys(store, name) if k.expires_at > now)
            role, tenant = (app.role, app.tenant) if app is not None else ("(no app)", "")
            rows.append(StaffRow(name, role, tenant, bool(record.enabled), record.created_ms, live))
    return rows


def remove(config: Any, name: str) -> Poke:
    """Delete the staff account `name`, revoke its session credentials and end its live sessions."""
    with store_of(config) as store, audited(store, Action.STAFF_REMOVE, name) as details:
        before = orders_generation(store)
        try:
            removed = staffmod.remove_staff(store, name)
        except staffmod.StaffError as exc:
            raise AdminError(str(exc)) from None
        if not removed:
            raise AdminError(f"no staff account {name!r}")
        details["revoked"] = credentials.revoke_all(store, name, now=time.time())
    return poke(config, after=before)


def set_enabled(config: Any, name: str, *, enabled: bool) -> Poke:
    """Enable or disable the account `name`; disabling also revokes its session credentials and ends its sessions."""
    action = Action.STAFF_ENABLE if enabled else Action.STAFF_DISABLE
    with store_of(config) as store, audited(store, action, name) as details:
        before = orders_generation(store)
        try:
            staffmod.set_enabled(store, name, enabled)
        except staffmod.StaffError as exc:
            raise AdminError(str(exc)) from None
        if not enabled:
            details["revoked"] = credentials.revoke_all(store, name, now=time.time())
    return poke(config, after=before)


def signout(config: Any, name: str) -> tuple[int, Poke]:
    """Revoke every session credential of `name` and end its live sessions; how many credentials there were."""
    with store_of(config) as store, audited(store, Action.STAFF_SIGNOUT, name) as details:
        before = orders_generation(store)
        if staffmod.get_staff(store, name) is None:
            raise AdminError(f"no staff account {name!r}")
        details["revoked"] = revoked = credentials.revoke_all(store, name, now=time.time())
    return revoked, poke(config, after=before)
