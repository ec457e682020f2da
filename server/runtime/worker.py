"""`python -m kefu.server.runtime.worker ROLE ...`: one worker process of `kefu serve`, started by the supervisor.

Its descriptors (the control channel, its links, a listening socket) are inherited by number; after ``--`` come the
configuration flags the server was started with, so that the worker loads the same configuration (and reloads it on
the supervisor's word). A worker obeys its control channel only: SIGINT, SIGTERM and SIGHUP are the supervisor's, which
drains the workers in order; when the supervisor is gone, the channel closes and the worker stops. The worker catches
those signals with a handler that does nothing rather than ignoring them: an ignored signal stays ignored in the
processes a worker starts (the indexer, the sentiment scorer), which could then not be terminated.
"""

from __future__ import annotations

import argparse
import dataclasses
import signal
import sys
from collections.abc import Callable, Sequence
from typing import Any

__all__ = ["main"]


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="kefu-worker", description="A worker process of kefu serve (internal).")
    p.add_argument("role", choices=("core", "gateway"))
    p.add_argument("--index", type=int, default=0, help="the gateway's index")
    p.add_argument("--control-fd", type=int, required=True)
    p.add_argument("--link-fd", type=int, default=-1, help="a gateway's link to the core")
    p.add_argument("--links", default="", help="the core's links: INDEX:FD,...")
    p.add_argument("--listen-fd", type=int, default=-1, help="a listening socket to share (socket activation)")
    p.add_argument("--port", type=int, default=0, help="the port to bind with SO_REUSEPORT")
    p.add_argument("--web-port", type=int, default=-1, help="the web port to bind with SO_REUSEPORT (-1: none)")
    p.add_argument("--api-port", type=int, default=-1, help="the HTTP API's port, held by the supervisor (-1: none)")
    p.add_argument("--keys", default="", help="a gateway's signing keys: the newest index per type at the start")
    p.add_argument("config", nargs=argparse.REMAINDER, help="-- and the configuration flags of kefu serve")
    return p


def _not_ours(signum: int, frame: object) -> None:
    """SIGINT, SIGTERM and SIGHUP belong to the supervisor (a Ctrl-C reaches the whole process group)."""


def _api_port_pinned(load: Callable[[], Any], port: int) -> Callable[[], Any]:
    """`load` with [api] port set to the port the supervisor holds (the core binds it, the web port's pages are told
    it), unless there is none (-1)."""
    if port < 0:
        return load

    def pinned() -> Any:
        config = load()
        return dataclasses.replace(config, api=dataclasses.replace(config.api, port=port))

    return pinned


def main(argv: Sequence[str] | None = None) -> int:
    """Run one worker; returns its exit status."""
    args = _parser().parse_args(argv)
    from ..storage.modes import private_umask  # noqa: PLC0415 - standard library only

    private_umask()  # as `kefu` itself did (the supervisor's umask is inherited already): a worker's files are private
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, _not_ours)
    import uvloop  # noqa: PLC0415 - the server extra

    from .. import log  # noqa: PLC0415
    from ..cli import config_loader  # noqa: PLC0415
    from . import zygote  # noqa: PLC0415

    config_args = args.config[1:] if args.config[:1] == ["--"] else args.config
    load = _api_port_pinned(config_loader(config_args), args.api_port)
    config = load()
    log.configure(config.log.level, json_lines=config.log.json)
    if args.role == "core":
        from .core_process import run_core  # noqa: PLC0415

        log.set_context(worker="core")
        links = [(int(i), int(fd)) for i, fd in (item.split(":") for item in args.links.split(",") if item)]
        with zygote.forking(zygote.import_indexer, b"kefu-core-fork", "kefu-indexer") as spawn:  # before the loop
            return uvloop.run(
                run_core(config, load, control=args.control_fd, links=links, web_port=args.web_port, spawn=spawn)
            )
    else:
        from .gateway_process import run_gateway  # noqa: PLC0415

        log.set_context(worker=f"gateway-{args.index}")
        gateway = run_gateway(
            config, load, index=args.index, control=args.control_fd, link=args.link_fd, listen=args.listen_fd,
            port=args.port, keys=args.keys, web_port=args.web_port,
        )  # fmt: skip
        uvloop.run(gateway)
    return 0


if __name__ == "__main__":
    sys.exit(main())
