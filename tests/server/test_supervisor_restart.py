"""A restart the supervisor could not start (no room for a process or a descriptor: EAGAIN, ENOMEM, EMFILE) is
logged and tried again after RESTART_RETRY_S, instead of leaving the worker dead for good (no exit would ever be
reaped to restart it), and leaks none of the descriptors made for it."""

from __future__ import annotations

import asyncio
import errno
import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from kefu.server.config import load_config
from kefu.server.runtime import supervisor as supmod
from kefu.server.runtime import zygote


class NoRoom(zygote.Spawner):
    """Fails to start anything, as fork/exec do when the host has no room for a process."""

    def __init__(self) -> None:
        super().__init__(None)
        self.calls: list[str] = []

    def __call__(self, argv: Sequence[str], fds: Sequence[int], name: str | None = None) -> zygote.Forked:
        self.calls.append(name or "")
        raise OSError(errno.EAGAIN, os.strerror(errno.EAGAIN))


def open_fds() -> set[str]:
    return set(os.listdir("/proc/self/fd"))


@pytest.mark.asyncio
async def test_a_restart_that_cannot_start_its_process_is_tried_again(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setattr(supmod, "RESTART_RETRY_S", 0.2)
    config = load_config(overrides={"server.data_dir": str(tmp_path), "server.workers": 1})
    spawner = NoRoom()
    sup = supmod.Supervisor(config, None, [], spawner)
    sup.loop = asyncio.get_running_loop()
    before = open_fds()
    try:
        sup._restart(sup.core)
        assert spawner.calls == ["kefu-core"]
        assert not sup.core.alive and sup.core.restarts == 0, "nothing started: not counted as a restart"
        await asyncio.sleep(0.5)
        assert len(spawner.calls) >= 2, "the failed restart was never tried again: the core would stay dead"
    finally:
        sup.stopping = True
    calls = len(spawner.calls)
    await asyncio.sleep(0.5)
    assert len(spawner.calls) == calls, "no retry once the server stops"
    assert open_fds() == before, "the control channel and the links made for the failed start were closed"
    assert [r.getMessage() for r in caplog.records].count("worker.restart_failed") == calls
