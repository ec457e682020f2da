"""What would stop `kefu serve`, checked before it writes anything; `kefu check-config` runs the very same checks.

Theory of operation
-------------------
A start writes as it goes: the data directory, the store, a first start's development keys and app, pins.txt, the
ticket keys. Something that stops it part-way (a directory file with an unknown key, a rule that does not compile,
a plugin that does not load) used to leave that half-initialised state behind, after `kefu check-config` had said
the configuration was fine. So `refusals` is run by both, first thing, and reads only:

- the data directory: a directory (or one that can be made) that kefu's user may read, write and enter, with the
  key and store files in it readable (and the store's writable) by that user;
- the store: the LMDB data file's frame and the tops of its trees (`kefu.server.storage.preflight`), and whether
  the data directory's deployment marker lets a missing store be a new one (`kefu.server.storage.deployment`);
- the customer-service layer, exactly as the core builds it: the directory file parsed and checked, every tenant's
  routing rule compiled, every plugin loaded (and closed again).

`kefu serve` then also checks that it can listen (`listen_refusals`): a port in use is found before the keys are
written, not as a traceback after. `kefu check-config` does not: it runs beside the server it is about to restart
(systemd/install.sh), whose ports are in use. File modes wider than kefu wants are warnings (`warnings`), not
refusals: `kefu serve` narrows them itself at start.
"""

from __future__ import annotations

import asyncio
import errno
import os
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

__all__ = ["listen_refusals", "refusals", "warnings"]


def refusals(config: Any) -> list[str]:
    """One line per reason `kefu serve` would refuse to start with `config` (empty: it would start). Reads only."""
    problems = list(_data_dir_refusals(config))
    if not problems:
        problems += _store_refusals(config)
    return problems + _service_refusals(config)


def warnings(config: Any, config_file: str | None) -> list[str]:
    """What `kefu check-config` warns about and `kefu serve` fixes or logs itself (file modes)."""
    from .admin.filemodes import mode_warnings  # noqa: PLC0415 - standard library only

    return mode_warnings(config, config_file)


def listen_refusals(config: Any) -> list[str]:
    """The ports `kefu serve` would listen on and cannot bind (in use, not an address of this host, privileged).
    The client port is not checked when systemd passes the socket (kefu.socket); port 0 is any free port."""
    ports = []
    if os.environ.get("LISTEN_PID") != str(os.getpid()):
        ports.append(("[server] port", config.server.host, config.server.port))
    if config.metrics.enabled:
        ports.append(("[metrics] port", config.metrics.host, config.metrics.port))
    web = getattr(config, "web", None)
    if web is not None and web.enabled:
        ports.append(("[web] port", web.host, web.port))
    if config.api.enabled:
        ports.append(("[api] port", config.api.host, config.api.port))
    return [problem for what, host, port in ports if port and (problem := _bind_problem(what, host, port))]


# --- the data directory ---------------------------------------------------------------------------------------


def _data_dir_refusals(config: Any) -> Iterator[str]:
    data = Path(config.data_path)
    who = f"kefu's user (uid {os.geteuid()})"
    if not data.exists():
        parent = _nearest_existing(data)
        if not parent.is_dir() or not os.access(parent, os.W_OK | os.X_OK):
            yield f"[server] data_dir {data} does not exist and {who} cannot create it in {parent}"
        return
    if not data.is_dir():
        yield f"[server] data_dir {data} is not a directory"
        return
    if not os.access(data, os.R_OK | os.W_OK | os.X_OK):
        yield f"[server] data_dir {data}: {who} cannot read, write and enter it ({_owner_and_mode(data)})"
        return
    for folder, need in ((Path(config.keys_path), os.R_OK), (Path(config.store_path), os.R_OK | os.W_OK)):
        yield from _access_refusals(folder, need, who)


def _access_refusals(folder: Path, need: int, who: str) -> Iterator[str]:
    if not folder.is_dir():
        return
    if not os.access(folder, os.R_OK | os.W_OK | os.X_OK):
        yield f"{folder}: {who} cannot read, write and enter it ({_owner_and_mode(folder)})"
        return
    for path in sorted(folder.iterdir()):
        if path.is_file() and not os.access(path, need):
            wanted = "read and write" if need & os.W_OK else "read"
            yield f"{path}: {who} cannot {wanted} it ({_owner_and_mode(path)})"


def _nearest_existing(path: Path) -> Path:
    path = path.absolute()
    while not path.exists() and path != path.parent:
        path = path.parent
    return path


def _owner_and_mode(path: Path) -> str:
    st = path.stat()
    return f"owner uid {st.st_uid}, mode {st.st_mode & 0o7777:04o}"


# --- the store ------------------------------------------------------------------------------------------------


class _NotOpened(Exception):
    """Raised instead of opening the store: the deployment check ran, nothing was mapped or written."""


def _store_refusals(config: Any) -> list[str]:
    from .storage import deployment  # noqa: PLC0415 - standard library only, like the rest of this check
    from .storage.datadir import migrate_store_dir  # noqa: PLC0415
    from .storage.preflight import DATA_FILE, OpenRefused, check_data_file, check_tree_tops  # noqa: PLC0415

    store = migrate_store_dir(Path(config.store_path), readonly=True)  # where the store is, moved or not
    try:
        if check_data_file(store / DATA_FILE) is not None:
            check_tree_tops(store / DATA_FILE)

        def not_opened() -> Any:
            raise _NotOpened

        deployment.open_checked(Path(config.data_path), store, not_opened)
    except _NotOpened:
        pass
    except OpenRefused as exc:
        return [str(exc)]
    except OSError as exc:
        return [f"{store}: {exc.strerror or exc}"]
    return []


# --- the customer-service layer -------------------------------------------------------------------------------


def _service_refusals(config: Any) -> list[str]:
    """The directory loaded, its rules compiled and its plugins loaded, by the functions the core builds them with.
    Without a directory file the embedded default is used: nothing to check (nor the server extra to need)."""
    if config.directory_path is None:
        return []
    try:
        from .service.setup import ServiceSetupError, load_service  # noqa: PLC0415 - lupa, httpx: the server extra
    except ImportError as exc:
        return [f"the customer-service layer needs the server extra (missing {exc.name}): pip install 'kefu[server]'"]
    try:
        _, engines, plugins = load_service(config)
    except ServiceSetupError as exc:
        return [f"[service] directory {config.directory_path}: {exc}"]
    for engine in engines.values():
        engine.close()
    if plugins is not None:
        asyncio.run(plugins.aclose())
    return []


# --- listening ------------------------------------------------------------------------------------------------


def _bind_problem(what: str, host: str, port: int) -> str | None:
    """Bind (host, port) as the server will, without SO_REUSEPORT: a socket of a running server (a kefu's
    gateways share theirs with that option) makes it fail. SO_REUSEADDR: a port whose old connections linger in
    TIME_WAIT is free to listen on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            why = {
                errno.EADDRINUSE: f"is in use (another kefu serve, or another program: ss -ltnp 'sport = :{port}')",
                errno.EADDRNOTAVAIL: "is not an address of this host",
                errno.EACCES: "needs privileges (a port below 1024): use kefu.socket or a higher port",
            }.get(exc.errno or 0, f"cannot be bound: {exc.strerror or exc}")
            return f"{what}: {host}:{port} {why}"
    return None
