"""SIGHUP against a real `kefu serve`, with worker processes and without: what reloads (the plugins too), what needs
a restart, and what the log says of each (systemd/OPERATIONS.md, "Reloading the configuration")."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from pathlib import Path

import pytest

from kefu.client import Client
from kefu.protocol.crypto import KeyType
from kefu.server.identity.keys import add_key

from .conftest import ServerProcess
from .service_harness import next_matching, service_server, users

pytestmark = pytest.mark.asyncio

FAQ = """
[[plugins]]
name = "faq"
kind = "keyword"
modes = ["auto_reply"]
timeout_s = 2.0
[[plugins.options.faq]]
keywords = ["营业时间"]
answer = "{answer}"
"""
VIP_GROUP = '\n[groups.vip]\ntenant = "bank"\n'
LOG_TIMEOUT_S = 10.0


async def logged(proc: ServerProcess, pattern: str, after: int) -> re.Match[str]:
    """The first log line past offset `after` matching `pattern` (waited for)."""
    deadline = time.monotonic() + LOG_TIMEOUT_S
    while time.monotonic() < deadline:
        if found := re.search(pattern, proc.log.read_text()[after:]):
            return found
        await asyncio.sleep(0.05)
    raise AssertionError(f"no log line matching {pattern!r}:\n{proc.log_tail()}")


async def hup(proc: ServerProcess) -> int:
    """SIGHUP the server; the log's length before it (where to look for its lines)."""
    before = len(proc.log.read_text())
    proc.send_signal(signal.SIGHUP)
    return before


async def faq_answer(visitor: Client, conversation: int) -> str:
    await visitor.send(conversation, "请问营业时间？")
    answer = await next_matching(
        visitor, lambda m: m.sender == "#kefu" and m.content_type == 1 and m.conversation_id == conversation
    )
    return answer.text


@pytest.mark.parametrize("workers", ["default", "0"])
async def test_sighup_reloads_plugins_and_logs_what_changed_and_what_needs_a_restart(
    tmp_path: Path, workers: str
) -> None:
    """With worker processes (the default) and with everything in one process (`workers = 0`)."""
    config = tmp_path / "kefu.toml"
    config.write_text("[server]\ndrain_timeout_s = 5.0\n[limits]\nconn_frames_per_s = 500\n")
    env = {"KEFU_SERVICE_SENTIMENT": "false"} | ({"KEFU_SERVER_WORKERS": workers} if workers != "default" else {})
    proc = service_server(tmp_path, plugins=FAQ.format(answer="九点开门"), args=["--config", str(config)], env=env)
    directory = proc.data_dir / "service.toml"
    try:
        if workers == "0":
            assert proc.workers() == {} and " workers=0\n" in proc.log.read_text(), "one process"
        async with users(proc) as connect:
            visitor = await connect("v1")
            conversation = (await visitor.service.open()).conversation_id  # no agent online: it waits
            assert await faq_answer(visitor, conversation) == "九点开门"

            # A new answer, a new group, one reloadable and one restart-only setting, and a new server key.
            directory.write_text(directory.read_text().replace("九点开门", "八点开门") + VIP_GROUP)
            config.write_text("[server]\ndrain_timeout_s = 7.0\n[limits]\nconn_frames_per_s = 400\n")
            add_key(proc.data_dir, KeyType.SM2)  # what `kefu keygen --type sm2` does
            at = await hup(proc)
            service = await logged(proc, r"service\.reloaded .*", at)
            assert "groups added: vip" in service[0] and "plugins changed: faq" in service[0]
            summary = (await logged(proc, r"info server\.reloaded .*", at))[0]
            assert "applied=limits.conn_frames_per_s" in summary
            assert 'needs_restart="server.drain_timeout_s,server keys"' in summary
            await logged(proc, r"keys\.reload_ignored pins=sm2:", at)
            ignored = re.findall(r"config\.reload_ignored setting=server\.drain_timeout_s", proc.log.read_text()[at:])
            assert len(ignored) == 1, "logged once for the whole server, not once per process"
            assert await faq_answer(visitor, conversation) == "八点开门", "the reloaded plugin answers"

            # A broken directory: refused, logged, and everything of the previous one stays.
            directory.write_text(directory.read_text() + "\n[agents.newcomer]\nbogus = 1\n")
            at = await hup(proc)
            failed = await logged(proc, r"service\.reload_failed .*", at)
            assert "bogus" in failed[0] and "previous directory, rules and plugins" in failed[0]
            assert await faq_answer(visitor, conversation) == "八点开门"
        assert proc.alive
    finally:
        proc.kill()
