"""`kefu serve`: the whole server, in one process or as a supervisor of worker processes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from ..service.setup import ServiceSetupError
from ..storage.datadir import DataDirBusy
from ..storage.preflight import OpenRefused
from . import sdnotify
from .process import worker_count

__all__ = ["serve"]


def serve(config: Any, reload: Callable[[], Any] | None = None, argv: Sequence[str] = ()) -> int:
    """Run the server until signalled; returns the exit status. `argv`: the configuration flags, which worker
    processes are started with so that they load the same configuration."""
    try:
        import uvloop  # noqa: PLC0415 - only the server needs it, and it is an optional extra
    except ImportError:
        print("kefu serve needs the server extra: pip install 'kefu[server]'", file=sys.stderr)
        return 2
    try:
        if worker_count(config) == 0:
            from .single import run  # noqa: PLC0415 - only the mode that runs is loaded

            uvloop.run(run(config, reload))
            return 0
        from .supervisor import supervise  # noqa: PLC0415

        return supervise(config, reload, argv)
    except (DataDirBusy, OpenRefused, sdnotify.ActivationError, ServiceSetupError) as exc:  # the operator's to fix
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
