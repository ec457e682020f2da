"""Events the core returns from `events_received()` (spec/PROTOCOL.md section 7).

Application frames (Send, SendAck, Deliver, DeliverAck, Sync, SyncDone, Goaway, Pong, Error) are returned
as the frame objects themselves; the events below are the ones that are not frames.
"""

from __future__ import annotations

from dataclasses import dataclass

from .crypto import Suite
from .errors import ErrorCode
from .tickets import SessionTicket


@dataclass(frozen=True, slots=True)
class HandshakeComplete:
    """Both sides are authenticated; application frames may flow."""

    suite: Suite
    resumed: bool
    app_id: str
    keepalive_ms: int
    server_key: str
    """Fingerprint of the server key that signed (empty after resumption)."""
    client_key: str
    """Fingerprint of the client signing key, when the client proved one; on the server, "session:" and the id of the
    session credential (section 16) when the client proved one of those; "" for the app's own secret."""


@dataclass(frozen=True, slots=True)
class TicketReceived:
    """The server issued a resumption ticket (client role only)."""

    ticket: SessionTicket


@dataclass(frozen=True, slots=True)
class ConnectionClosed:
    """The peer closed cleanly with CLOSE; nothing more will arrive."""

    code: ErrorCode
    reason: str


@dataclass(frozen=True, slots=True)
class ConnectionTerminated:
    """The connection failed. `by_peer`: the peer reported the error (ERROR frame) or broke the stream;
    otherwise this side detected it and has queued an ERROR frame to send before closing."""

    code: ErrorCode
    reason: str
    by_peer: bool


Event = HandshakeComplete | TicketReceived | ConnectionClosed | ConnectionTerminated
