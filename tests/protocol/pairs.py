"""In-memory client/server pairs (h11's ConnectionPair idea): no sockets, no event loop."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import Any

from kefu.protocol.clientconn import ClientConnection
from kefu.protocol.crypto import KeyType, SigningKey, Suite
from kefu.protocol.handshake import AppCredential, ClientConfig, ServerConfig
from kefu.protocol.serverconn import ServerConnection
from kefu.protocol.tickets import TicketGuard, TicketKeys

APP_ID = "bank-crm"
APP_SECRET = b"\x11" * 32

SERVER_KEYS = {
    KeyType.SM2: SigningKey.generate(KeyType.SM2),
    KeyType.ED25519: SigningKey.generate(KeyType.ED25519),
}
PINS = frozenset(k.verify_key.fingerprint() for k in SERVER_KEYS.values())
CLIENT_KEYS = {
    KeyType.SM2: SigningKey.generate(KeyType.SM2),
    KeyType.ED25519: SigningKey.generate(KeyType.ED25519),
}
CLIENT_PINS = frozenset(k.verify_key.fingerprint() for k in CLIENT_KEYS.values())


def server_config(**changes: Any) -> ServerConfig:
    """A server that knows APP_ID (by secret and by both client keys)."""
    apps = {APP_ID: AppCredential.from_secret(APP_ID, APP_SECRET, CLIENT_PINS)}
    config = ServerConfig(
        keys=SERVER_KEYS,
        apps=apps,
        ticket_keys=TicketKeys(b"\x22" * 32),
        ticket_guard=TicketGuard(),
    )
    return dataclasses.replace(config, **changes)


def client_config(suite: Suite = Suite.NATIONAL, **changes: Any) -> ClientConfig:
    """A client of APP_ID proving its secret and pinning both server keys."""
    config = ClientConfig(APP_ID, PINS, (suite,), app_secret=APP_SECRET)
    return dataclasses.replace(config, **changes)


class Pair:
    """A client and a server connection wired back to back, with an optional tap on each direction."""

    def __init__(self, client: ClientConfig, server: ServerConfig, *, now: float = 0.0) -> None:
        self.client = ClientConnection(client, now=now)
        self.server = ServerConnection(server, now=now)
        self.client_events: list[Any] = []
        self.server_events: list[Any] = []
        self.to_server: Callable[[bytes], bytes] = lambda b: b
        self.to_client: Callable[[bytes], bytes] = lambda b: b
        self.wire_to_server: list[bytes] = []
        self.wire_to_client: list[bytes] = []

    def start(self, *, now: float = 0.0) -> None:
        """Send CLIENT_HELLO."""
        self.client.connect(now=now)

    def pump(self, rounds: int = 4) -> None:
        """Shuttle bytes both ways until quiet."""
        for _ in range(rounds):
            moved = False
            data = self.client.data_to_send()
            if data:
                moved = True
                self.wire_to_server.append(data)
                self.server.receive_data(self.to_server(data))
            self.server_events += self.server.events_received()
            data = self.server.data_to_send()
            if data:
                moved = True
                self.wire_to_client.append(data)
                self.client.receive_data(self.to_client(data))
            self.client_events += self.client.events_received()
            if not moved:
                return

    def handshake(self) -> Pair:
        """start() and pump()."""
        self.start()
        self.pump()
        return self

    def of(self, side: str, cls: type) -> list[Any]:
        """Events of `cls` seen by `side` ("client" or "server")."""
        events = self.client_events if side == "client" else self.server_events
        return [e for e in events if isinstance(e, cls)]
