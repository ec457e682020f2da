"""SIGHUP: what a running server takes again, and the log lines that say what changed and what did not.

What reloads (systemd/OPERATIONS.md, "Reloading the configuration"; the same list is `RELOADED`):

- the settings marked "reloadable" in `kefu serve --help` ([limits], [log] level, and the few others so marked):
  one `config.reloaded` line per changed setting; a changed setting that is not reloadable is one
  `config.reload_ignored ... reason="needs a restart"` line and keeps its old value;
- the service directory file and what it names: tenants, groups, agents, supervisors, routing rules (compiled
  again), AI plugins (loaded again when their part of the file changed): `service.reloaded changes="..."`; when
  anything in it is wrong, `service.reload_failed` and all of the previous directory, rules and plugins stay;
- the data keys (after `kefu data-key rotate`): `storage.data_keys_reloaded` when there is a new one;
- app credentials: the cache of app records is dropped (`kefu app` commands need no SIGHUP: they reach a running
  server by themselves).

What does not: the server's signing keys (after `kefu keygen`: `keys.reload_ignored`, restart to sign with the new
ones), the listening addresses and every other setting not marked reloadable (`config.reload_ignored`), and
[service] sentiment (a setting like the others). Each SIGHUP ends with one `server.reloaded` line summing it up
(in a server with worker processes, the supervisor's; the core logs `service.reloaded`).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Final

from .. import log as logmod
from ..identity.keys import load_keys, pins_of
from ..service.setup import ServiceSetupError, reload_desk
from ..storage import audit

__all__ = ["RELOADED", "config_details", "load_fresh", "log_reloaded", "reload_service", "server_keys"]

RELOADED: Final = (
    "the settings marked reloadable",
    "the service directory (tenants, groups, agents, supervisors, rules, plugins)",
    "the data keys",
    "app credentials",
)
"""What a SIGHUP takes again, in the words of the `server.reloaded` line."""


def config_details(current: Any, new: Any) -> dict[str, Any]:
    """The audit details of taking `new`'s reloadable settings into `current` (applied and ignored settings)."""
    return audit.changes(*current.reload_changes(new))


def reload_service(desk: Any, config: Any, details: dict[str, Any]) -> None:
    """Reload the desk's directory, rules and plugins; log what changed, or that the old ones stay. Adds
    "service" (what changed) or "service_failed" (why not) to `details`."""
    try:
        changes = reload_desk(desk, config)
    except ServiceSetupError as exc:
        logmod.error("service.reload_failed", reason=str(exc), kept="the previous directory, rules and plugins")
        details["service_failed"] = str(exc)
        return
    details["service"] = changes
    logmod.event("service.reloaded", changes="; ".join(changes) or "none")


def server_keys(data_dir: Path, in_use: Sequence[str]) -> list[str]:
    """The server key pins on disk that the running server does not use (added by `kefu keygen` since it started):
    logged as `keys.reload_ignored`, since signing keys are read at start only."""
    try:
        on_disk = pins_of(load_keys(data_dir))
    except (OSError, ValueError) as exc:
        logmod.warning("keys.reload_unreadable", reason=str(exc))
        return []
    new = [pin for pin in on_disk if pin not in in_use]
    if new:
        logmod.warning("keys.reload_ignored", pins=",".join(new), reason="server keys are read at start: restart to "
                       "sign with the newest (systemd/OPERATIONS.md, Keys)")  # fmt: skip
    return new


def log_reloaded(details: dict[str, Any]) -> None:
    """The one line that sums a SIGHUP up: what was applied, what needs a restart, how the service reload went."""
    service = "failed" if "service_failed" in details else "reloaded" if "service" in details else "in the core"
    logmod.event(
        "server.reloaded",
        applied=",".join(details.get("applied", {})) or "none",
        needs_restart=",".join([*details.get("ignored", []), *(["server keys"] if details.get("new_keys") else [])])
        or "none",
        service=service,
        reloads="; ".join(RELOADED),
    )


def load_fresh(load: Callable[[], Any]) -> Any | None:
    """A freshly loaded configuration, or None (logged as `server.reload_failed`: the running one stays)."""
    try:
        return load()
    except Exception as exc:
        logmod.error("server.reload_failed", reason=str(exc), kept="the running configuration")
        return None
