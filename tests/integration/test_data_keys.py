"""Data key rotation as the operator runs it (issue #14 point 4): messages written under key 1; `kefu data-key rotate`
beside a running server; retire refused while anything is sealed under key 1; SIGHUP: the server reseals in the
background while reads go on; `kefu data-key status` then shows nothing of the store under key 1; the log's old
records go with their segment (a restart and one write); then `kefu data-key retire 1` works and every message
still reads back."""

from __future__ import annotations

import asyncio
import re
import signal
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio

from kefu.client import Client

from .conftest import ServerProcess, kefu_command, served_pair
from .workers_harness import WORKERS

pytestmark = pytest.mark.asyncio

HOST = "127.0.0.1"
MESSAGES = 60
FAST_INDEXING = {"KEFU_STORAGE_INDEX_INTERVAL_MS": "200"}
"""The log indexed every 0.2 s rather than 2: the old segment is recycled soon after the first write on a new one."""


@pytest_asyncio.fixture(params=[0, WORKERS], ids=["single", "workers"])
async def served(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[ServerProcess]:
    server = served_pair(tmp_path / "data", {"KEFU_SERVER_WORKERS": str(request.param), **FAST_INDEXING})
    await asyncio.to_thread(server.start)
    try:
        yield server
    finally:
        server.kill()


async def kefu(server: ServerProcess, *args: str) -> tuple[int, str, str]:
    """A `kefu` command on the server's data directory: (status, stdout, stderr)."""
    code, out, err, _ = await kefu_command(server, *args)
    return code, out, err


async def status(server: ServerProcess) -> dict[int, tuple[int, int, int]]:
    """`kefu data-key status`: key id -> (store, log, archives)."""
    code, out, err = await kefu(server, "data-key", "status")
    assert code == 0, err
    rows = {}
    for line in out.splitlines()[1:]:
        key, _, _, store, log, archives = line.split()
        rows[int(key) if key != "-" else 0] = (int(store), int(log), int(archives))
    return rows


async def client(server: ServerProcess, app: str) -> Client:
    c = Client(HOST, server.port, app_id=app, server_pins=server.pins, connect_timeout=5,
               app_secret=server.secrets[app])  # fmt: skip
    await c.connect()
    return c


async def history(bob: Client, conversation: int, upto: int) -> list[bytes]:
    out: list[bytes] = []
    while len(out) < upto:
        batch = await bob.sync(conversation, after_seq=len(out), until_seq=upto, limit=100, timeout=10)
        assert batch, f"history stops at seq {len(out)}"
        out += [m.body for m in batch]
    return out


async def wait_for_line(server: ServerProcess, pattern: str, timeout: float = 30.0) -> str:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = re.search(pattern + r".*", server.log.read_text())
        if found:
            return found.group(0)
        await asyncio.sleep(0.05)
    raise AssertionError(f"no {pattern!r} in the server's log:\n{server.log_tail()}")


async def test_rotate_reseal_retire(served: ServerProcess) -> None:
    alice, bob = await client(served, "alice"), await client(served, "bob")
    sent = [f"card lost, block it please ({n})".encode() for n in range(MESSAGES)]
    for conv in (1, 2):
        for body in sent:
            await alice.send(conv, body, to=("bob",), timeout=10)
    before = await status(served)
    assert before[1][0] + before[1][1] >= 2 * MESSAGES  # under key 1: in the store, or in the log (not yet indexed)
    assert 2 not in before

    code, out, err = await kefu(served, "data-key", "rotate")
    assert code == 0, err
    assert "data-2.key" in out and "kill -HUP" in err  # says how to have the running server take it
    code, _, err = await kefu(served, "data-key", "retire", "1")
    assert code == 1 and "still sealed under data key 1" in err  # refused before the reseal

    served.send_signal(signal.SIGHUP)
    await wait_for_line(served, "storage.data_keys_reloaded")
    for conv in (1, 2):  # reads go on while the reseal runs (it waits for the gateways, then reseals)
        assert await history(bob, conv, MESSAGES) == sent
    line = await wait_for_line(served, "storage.reseal_finished")
    assert "datakey=2" in line
    after = await status(served)
    assert after[1][0] == 0, after  # nothing of the store under key 1
    assert after[2][0] >= before[1][0]
    carol = await client(served, "bob")  # a new login: its gateway reads the app record resealed under key 2
    await carol.close()
    if served.workers():
        return  # the rest (the log's old records, retire) is the same with worker processes
    await alice.send(3, b"after the rotation", to=("bob",), timeout=10)
    for conv in (1, 2):
        assert await history(bob, conv, MESSAGES) == sent

    if after[1][1]:  # the log's records under key 1 stay until their segment is recycled
        code, _, err = await kefu(served, "data-key", "retire", "1")
        assert code == 1 and "log" in err
        await alice.close()
        await bob.close()
        await asyncio.to_thread(served.stop)
        await asyncio.to_thread(served.start)  # a new segment; one write moves the indexed position into it
        alice, bob = await client(served, "alice"), await client(served, "bob")
        await alice.send(3, b"on a new segment", to=("bob",), timeout=10)
        deadline = time.monotonic() + 20
        while (await status(served))[1][1] and time.monotonic() < deadline:
            await asyncio.sleep(0.2)
    code, out, err = await kefu(served, "data-key", "retire", "1")
    assert code == 0, err
    assert not (served.data_dir / "keys" / "data-1.key").exists()
    for conv in (1, 2):
        assert await history(bob, conv, MESSAGES) == sent
    await alice.close()
    await bob.close()
