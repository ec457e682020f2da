"""A kefu server with a service directory, its apps (by role and tenant), and real clients, for the service tests."""

from __future__ import annotations

import asyncio
import json
import textwrap
from collections.abc import AsyncIterator, Callable, Sequence
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

from kefu.client import AgentState, Client, Message
from kefu.server.identity.datakeys import sealer_of
from kefu.server.identity.keys import create_app
from kefu.server.storage.store import Store

from .conftest import ServerProcess

ROUTE_LUA = """
function route(v)
  if v.channel == "hostile-loop" then while true do end end
  if v.channel == "hostile-pcall" then pcall(function() while true do end end) return {group = "cards"} end
  if v.channel == "hostile-os" then os.execute("touch " .. v.marker) return {group = "cards"} end
  if v.channel == "hostile-io" then local f = io.open(v.marker, "w") f:write("x") f:close() end
  if v.channel == "hostile-mem" then local s = "x" while true do s = s .. s end end
  if v.channel == "hostile-rep" then local t = {} while true do t[#t + 1] = string.rep("x", 1000000) end end
  if v.channel == "hostile-load" then return load("return {group='cards'}")() end
  if v.sentiment ~= nil and v.sentiment < 0.05 then return {group = "senior", note = "unhappy customer"} end
  if v.channel == "cards" then return {group = "cards"} end
  if v.vip >= 3 then return {priority = 10, note = "vip"} end
  return nil
end
"""

DIRECTORY = """
[tenants.bank]
default_group = "general"
rules = "route.lua"

[tenants.other]
default_group = "other-general"

[groups.general]
tenant = "bank"
overflow_to = "backup"
overflow_after_s = {overflow_after_s}

[groups.cards]
tenant = "bank"
skills = ["cards"]

[groups.senior]
tenant = "bank"

[groups.backup]
tenant = "bank"

[groups.other-general]
tenant = "other"

[agents.a1]
groups = ["general", "cards"]
skills = ["cards"]
max_concurrent = 1

[agents.a2]
groups = ["general"]
max_concurrent = 1

[agents.s1]
groups = ["senior"]
max_concurrent = 2

[agents.b1]
groups = ["backup"]

[agents.o1]
groups = ["other-general"]

[supervisors.sup]
groups = ["general", "cards", "senior", "backup"]

[supervisors.osup]
groups = ["other-general"]
"""

APPS: dict[str, tuple[str, str]] = {
    "v1": ("visitor", "bank"), "v2": ("visitor", "bank"), "v3": ("visitor", "bank"), "v4": ("visitor", "bank"),
    "v5": ("visitor", "bank"), "ov": ("visitor", "other"),
    "a1": ("agent", "bank"), "a2": ("agent", "bank"), "s1": ("agent", "bank"), "b1": ("agent", "bank"),
    "o1": ("agent", "other"), "sup": ("supervisor", "bank"), "osup": ("supervisor", "other"),
    "bankapp": ("integration", "bank"), "otherapp": ("integration", "other"),
}  # fmt: skip

TIMEOUT = 10.0


def write_directory(data_dir: Path, *, overflow_after_s: float = 3600, plugins: str = "") -> None:
    """service.toml and route.lua in the data directory."""
    data_dir.mkdir(parents=True, exist_ok=True)
    (data_dir / "route.lua").write_text(ROUTE_LUA)
    text = DIRECTORY.replace("{overflow_after_s}", str(overflow_after_s)) + textwrap.dedent(plugins)
    (data_dir / "service.toml").write_text(text)


def add_apps(data_dir: Path) -> dict[str, bytes]:
    """Every app of APPS, created in the real store before the server starts (sealed under the data key the server
    will find in data_dir/keys)."""
    store = Store(data_dir / "wal", sealer=sealer_of(data_dir, "sm4-gcm"))
    try:
        return {name: create_app(store, name, role=role, tenant=tenant)[1] for name, (role, tenant) in APPS.items()}
    finally:
        store.close()


def service_server(
    tmp_path: Path, *, env: dict[str, str] | None = None, args: Sequence[str] = (), **directory: Any
) -> ServerProcess:
    """A started server with the directory and apps above; `args`: more `kefu serve` flags."""
    data_dir = tmp_path / "data"
    write_directory(data_dir, **directory)
    secrets = add_apps(data_dir)
    # Routing waits for a first message's score at most sentiment_wait_ms, and the first score of a server waits for
    # its scorer process to load SnowNLP's model: 1-2 s alone, and past 5 s on a loaded CI host, where a test
    # expecting the angry first message in the senior group then saw it routed without its score.
    environment = {"KEFU_SERVICE_DIRECTORY": "service.toml", "KEFU_SERVICE_SENTIMENT_WAIT_MS": "20000",
                   "KEFU_SERVICE_QUEUE_TICK_MS": "100", **(env or {})}  # fmt: skip
    proc = ServerProcess(data_dir, extra=list(args), env=environment)
    proc.secrets.update(secrets)
    return proc.start()


class Users:
    """Connected clients by name; closed together."""

    def __init__(self, server: ServerProcess) -> None:
        self.server = server
        self.clients: dict[str, Client] = {}

    async def __call__(self, name: str, *, status: AgentState | None = None) -> Client:
        client = Client(
            "127.0.0.1", self.server.port, app_id=name, app_secret=self.server.secrets[name],
            server_pins=self.server.pins, reconnect=False,
        )  # fmt: skip
        await client.connect()
        self.clients[f"{name}#{len(self.clients)}"] = client
        if status is not None:
            await client.service.set_status(status)
        return client

    async def close(self) -> None:
        await asyncio.gather(*(c.close() for c in self.clients.values()), return_exceptions=True)


@asynccontextmanager
async def users(server: ServerProcess) -> AsyncIterator[Users]:
    """Clients for the test, closed at the end."""
    pool = Users(server)
    try:
        yield pool
    finally:
        await pool.close()


def event_of(message: Message) -> dict[str, Any] | None:
    """The JSON of a system EVENT message, or None for any other message."""
    if not message.is_system_event:
        return None
    data: dict[str, Any] = json.loads(message.body)
    return data


async def next_matching(client: Client, predicate: Callable[[Message], bool], timeout: float = TIMEOUT) -> Message:
    """The next delivered message that matches (others are consumed and skipped)."""
    async with asyncio.timeout(timeout):
        while True:
            message = await client.receive()
            assert message is not None, "the client closed"
            if predicate(message):
                return message


async def next_event(client: Client, kind: str, conversation_id: int | None = None) -> dict[str, Any]:
    """The next system event of `kind` (in `conversation_id` if given)."""
    message = await next_matching(
        client,
        lambda m: (e := event_of(m)) is not None and e["event"] == kind
        and (conversation_id is None or m.conversation_id == conversation_id),
    )  # fmt: skip
    event = event_of(message)
    assert event is not None
    return event


async def drain(client: Client, seconds: float = 0.3) -> list[Message]:
    """Every message delivered within `seconds`."""
    out = []
    while (message := await client.receive(timeout=seconds)) is not None:
        out.append(message)
    return out
