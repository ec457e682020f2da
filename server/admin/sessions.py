"""A running server's live sessions: list them, end an app's (`kefu session list`, `kefu session end`)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from ..engine.audit import Action
from ..identity.keys import AppError, end_sessions
from ..storage.datadir import holder
from ..storage.store import Store
from .apps import store_of
from .audit import audited
from .errors import AdminError
from .operator import ASK_TIMEOUT_S, Poke, ask_all, orders_generation, poke

__all__ = ["Listing", "end", "end_in", "list_sessions"]


@dataclass(slots=True)
class Listing:
    """The live sessions of every process that answered."""

    sessions: list[dict[str, Any]] = field(default_factory=list)
    truncated: list[str] = field(default_factory=list)
    """Processes that listed only their first MAX_LISTED sessions."""
    unreachable: list[str] = field(default_factory=list)


def list_sessions(config: Any, app: str = "", timeout: float = ASK_TIMEOUT_S) -> Listing:
    """The live sessions (of `app` only, if given) of the server running on the data directory."""
    if holder(config.data_path) is None:
        raise AdminError(f"no server is running on {config.data_path}")
    answers, failed = ask_all(config.data_path, {"op": "sessions", "app": app}, timeout)
    if not answers and not failed:
        raise AdminError(f"the server on {config.data_path} has no operator socket in {config.data_path}/control")
    listing = Listing(unreachable=failed)
    for answer in answers:
        listing.sessions += answer.get("sessions", [])
        if answer.get("truncated"):
            listing.truncated.append(str(answer.get("process", "?")))
    listing.sessions.sort(key=lambda row: (row.get("app", ""), row.get("since", ""), row.get("process", "")))
    return listing


def end(config: Any, app: str) -> Poke:
    """End every live session of `app` (ERROR AUTH_FAILED, "session ended by the operator"); the app stays registered
    and may connect again. What the running server's processes said."""
    with store_of(config) as store, audited(store, Action.SESSION_END, app):
        try:
            return end_in(store, config, app)
        except (AppError, ValueError) as exc:
            raise AdminError(str(exc)) from None


def end_in(store: Store, config: Any, app: str) -> Poke:
    """`end` on a store already open (the HTTP API's process holds it), without the audit entry (the caller records
    it with its actor). AppError for an unknown app, ValueError for an id the store cannot hold."""
    before = orders_generation(store)
    end_sessions(store, app)
    return poke(config, after=before)
