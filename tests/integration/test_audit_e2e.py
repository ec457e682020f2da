"""The audit trail end to end (issue #14 point 5): a real `kefu serve`, the operator's
command beside it, a failed login, and the customer-service flow; then `kefu audit export` holds each with its actor,
and `kefu audit verify --anchor` accepts the head the server logged at stop."""

from __future__ import annotations

import asyncio
import json
import re
import sys
from pathlib import Path

import pytest

from kefu.client import AgentState, AuthFailed, Client, CredentialsRefused, staff_channel

from .conftest import add_app
from .service_harness import next_matching, service_server, users

pytestmark = pytest.mark.asyncio


async def kefu(data_dir: Path, *args: str) -> tuple[int, str]:
    """A `kefu` command on the data directory: (status, standard output)."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "kefu.server.cli", *args, "--data-dir", str(data_dir),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode() + err.decode()


async def test_export_holds_the_operator_a_failed_login_and_the_desk_with_their_actors(tmp_path: Path) -> None:
    server = service_server(tmp_path)  # the default: supervisor, gateway worker processes (their own writers), core
    try:
        await asyncio.to_thread(add_app, server.data_dir, "newapp")  # `kefu app add`, beside the running server
        wrong = Client("127.0.0.1", server.port, app_id="v1", app_secret=b"\0" * 32, server_pins=server.pins,
                       reconnect=False, connect_timeout=5)  # fmt: skip
        with pytest.raises((AuthFailed, CredentialsRefused)):
            await wrong.connect()
        async with users(server) as connect:
            a1 = await connect("a1", status=AgentState.ONLINE)
            await connect("s1", status=AgentState.ONLINE)
            a2 = await connect("a2", status=AgentState.ONLINE)
            v1 = await connect("v1")
            sup = await connect("sup")
            conv = (await v1.service.open(attributes={"channel": "cards"}, first_message="账单不对")).conversation_id
            await sup.service.watch(conv)
            await sup.send(staff_channel(conv), "先核实身份")
            await next_matching(a1, lambda m: m.conversation_id == staff_channel(conv) and m.sender == "sup")
            await a1.service.transfer(conv, to_group="senior", note="needs a senior")
            await a2.service.search("账单")
        assert await asyncio.to_thread(server.stop) == 0
    finally:
        server.kill()

    status, out = await kefu(server.data_dir, "audit", "export")
    assert status == 0, out
    entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
    seen = {(e["actor"], e["action"], e["target"]): e for e in entries}
    operator = next(e for e in entries if e["action"] == "app.add")
    assert operator["actor"].startswith("os:") and operator["target"] == "newapp" and operator["result"] == "ok"
    failed = seen[("v1", "auth.failed", "")]
    assert failed["result"] == "AUTH_FAILED" and failed["details"]["count"] >= 1
    assert seen[("sup", "service.watch", str(conv))]["result"] == "ok"
    assert seen[("sup", "service.whisper", str(conv))]["details"]["channel"] == staff_channel(conv)
    transfer = seen[("a1", "service.transfer", str(conv))]
    assert transfer["details"]["to_group"] == "senior" and transfer["details"]["from"] == "a1"
    assert seen[("a2", "service.search", "")]["details"]["query"] == "账单"
    assert ("kefu", "server.start", "") in seen and entries[-1]["action"] == "server.stop"

    anchors = re.findall(r"anchor=(\d+:[0-9a-f]{64})", server.log.read_text())
    assert anchors and anchors[-1] == f"{entries[-1]['seq']}:{entries[-1]['hash']}", "the head is logged at stop"
    status, out = await kefu(server.data_dir, "audit", "verify", "--anchor", anchors[-1])
    assert status == 0 and "1 anchor(s) matched" in out, out
    assert b'"query"' not in (server.data_dir / "store" / "data.mdb").read_bytes(), "entries are sealed at rest"
