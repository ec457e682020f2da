"""The audit trail's port: who did what, as the gateways, the core, the desk and the operator's commands report it.

Every layer that sees an action worth accounting for (an operator's command, a supervisor watching or whispering, a
transfer, an agent's search, a failed login) calls an `AuditTrail` it was handed; the storage layer implements it
(`kefu.server.storage.audit`: an append-only stream in the store, each entry chained to the one before with SM3, spec
section 12). The names of the actions are declared here, once (`Action`), so that a SIEM rule matches one spelling.

Recording never blocks and never fails the caller: an implementation queues the entry and writes it from its own
thread, and a queue that is full drops entries with a count (which becomes an entry itself).
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Any, Final, Protocol

__all__ = ["NO_AUDIT", "Action", "AuditTrail", "Result"]


class Action(StrEnum):
    """What an audit entry records (its ``action`` field)."""

    APP_ADD = "app.add"
    APP_ADD_BULK = "app.add_bulk"
    APP_REVOKE = "app.revoke"
    APP_RETIRE_KEY = "app.retire_key"
    SESSION_END = "session.end"
    STAFF_ADD = "staff.add"
    STAFF_PASSWD = "staff.passwd"  # noqa: S105 - an action's name, not a password
    STAFF_REMOVE = "staff.remove"
    STAFF_DISABLE = "staff.disable"
    STAFF_ENABLE = "staff.enable"
    STAFF_SIGNOUT = "staff.signout"
    """The operator revoked every session credential of a staff account (`kefu staff signout`)."""
    SIGNIN = "auth.signin"
    """A staff member signed in on the web port and got a session credential (spec section 16)."""
    SIGNOUT = "auth.signout"
    VISITOR = "auth.visitor"
    """A visitor identity was issued on the web port (the widget)."""
    SERVER_KEY_ADD = "server_key.add"
    SERVER_KEY_RETIRE = "server_key.retire"
    DATA_KEY_ROTATE = "data_key.rotate"
    DATA_KEY_RETIRE = "data_key.retire"
    STORE_BACKUP = "store.backup"
    STORE_RESTORE = "store.restore"
    """Recorded into the restored store, after the restore (the one set aside keeps its own trail)."""
    STORE_SALVAGE = "store.salvage"
    """The check at open found damaged pages and copied the intact records to a new file (spec section 12.8)."""
    SERVER_START = "server.start"
    SERVER_STOP = "server.stop"
    CONFIG_RELOAD = "config.reload"
    WATCH = "service.watch"
    UNWATCH = "service.unwatch"
    WHISPER = "service.whisper"
    TRANSFER = "service.transfer"
    SEARCH = "service.search"
    AUTH_FAILED = "auth.failed"
    WEBHOOK_ADD = "webhook.add"
    WEBHOOK_REMOVE = "webhook.remove"
    DROPPED = "audit.dropped"
    """Entries a full queue could not keep (their count), so that a gap in what was recorded is itself recorded."""


class Result(StrEnum):
    """How an action ended (the ``result`` field), unless it names an error code (e.g. FORBIDDEN, AUTH_FAILED)."""

    OK = "ok"
    FAILED = "failed"


class AuditTrail(Protocol):
    """Where actions are recorded. Both calls return at once (the entry is written by the implementation's thread)."""

    def record(
        self, actor: str, action: str, target: str = "", result: str = Result.OK,
        details: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        """One entry: `actor` did `action` to `target` with `result`; `details` are JSON values (str, int, bool,
        None, lists and objects of them)."""

    def tally(self, actor: str, action: str, target: str = "", result: str = Result.OK, note: str = "") -> None:
        """Count an event that may come in floods (failed logins): one entry per (actor, action, target, result) per
        interval, with the count, the first and last time, and the first few distinct `note`s."""


class _Nowhere:
    """An audit trail that records nothing (tools and tests that build the layers without a store)."""

    def record(
        self, actor: str, action: str, target: str = "", result: str = Result.OK,
        details: Mapping[str, Any] | None = None,
    ) -> None:  # fmt: skip
        return None

    def tally(self, actor: str, action: str, target: str = "", result: str = Result.OK, note: str = "") -> None:
        return None


NO_AUDIT: Final[AuditTrail] = _Nowhere()
