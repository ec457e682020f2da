"""`kefu serve`: the whole server, in one process or as a supervisor of worker processes."""

from __future__ import annotations

import sys
from collections.abc import Callable, Sequence
from typing import Any

from .. import startcheck
from ..service.setup import ServiceSetupError
from ..storage.datadir import DataDirBusy
from ..storage.files import disk_full
from ..storage.preflight import OpenRefused
from . import sdnotify
from .process import worker_count

__all__ = ["serve"]


def serve(config: Any, reload: Callable[[], Any] | None = None, argv: Sequence[str] = ()) -> int:
    """Run the server until signalled; returns the exit status. `argv`: the configuration flags, which worker
    processes are started with so that they load the same configuration. What `kefu check-config` checks is checked
    first (`kefu.server.startcheck`), and that the ports are free: a refusal writes nothing."""
    try:
        import uvloop  # noqa: PLC0415 - only the server needs it, and it is an optional extra
    except ImportError:
        print("kefu serve needs the server extra: pip install 'kefu[server]'", file=sys.stderr)
        return 2
    problems = startcheck.refusals(config) + startcheck.listen_refusals(config)
    if problems:  # found before anything is written: no half-made data directory, no development keys
        print("kefu: cannot start:", file=sys.stderr)
        for problem in problems:
            print(f"  {problem}", file=sys.stderr)
        return 1
    try:
        if worker_count(config) == 0:
            from . import zygote  # noqa: PLC0415
            from .single import run  # noqa: PLC0415 - only the mode that runs is loaded

            with zygote.forking(zygote.import_indexer, b"kefu-fork", "kefu-indexer") as spawn:  # before the loop
                uvloop.run(run(config, reload, spawn))
            return 0
        from .supervisor import supervise  # noqa: PLC0415

        return supervise(config, reload, argv)
    except (DataDirBusy, OpenRefused, sdnotify.ActivationError, ServiceSetupError) as exc:  # the operator's to fix
        print(f"kefu: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:
        if not disk_full(exc, config.server.data_dir):
            raise
        # what a start must write and cannot (a first start's keys, an upgrade, the log's replay): one line, no trace
        print(f"kefu: cannot start: the disk is full ({exc}): free space under {config.server.data_dir}, then start"
              " again (a server already set up starts on a full disk and serves reads)", file=sys.stderr)  # fmt: skip
        return 1
