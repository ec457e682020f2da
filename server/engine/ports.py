"""The delivery engine's interfaces: what it needs from the layers around it, and what it offers them.

The engine is two halves that meet at these ports (spec section 14 describes them on the wire):

- the **core** (`kefu.server.engine.core.Core`): presence, sequencing requests, fan-out, SYNC plans, cursors and
  the conversation policy. It runs once per host. It sees each gateway as an `Endpoint`;
- the **delivery side** (`kefu.server.engine.streams.Outbound`), next to the connections in every gateway: each
  connection's delivery window, retries and catch-up. It sees the core as a `CorePort`.

In one process (``[server] workers = 0``) an `Endpoint` is the gateway object itself and a `CorePort` calls the core
directly; with worker processes both are the two ends of a Unix-domain link (`kefu.server.runtime.link`).

Below the core is a `MessageLog` (implemented by `kefu.server.storage`); beside it a `ConversationPolicy` (implemented
by the customer-service desk, `kefu.server.service`), which sees the core as a `ServiceHost`. Users are known by their
`Profile` (`Profiles`, implemented by the app directory).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Sequence
from typing import Any, Protocol

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import Frame, Send, Sync

from .identity import Profile
from .messages import Outgoing, SendRequest, SendResult, StoredMessage

__all__ = [
    "ConversationPolicy",
    "CorePort",
    "Device",
    "Done",
    "Endpoint",
    "LogClosed",
    "MessageLog",
    "Profiles",
    "ResumePlan",
    "ServiceHost",
]

Done = Callable[[SendResult], None]
"""Called on the event loop with the result of a `MessageLog.submit`, once it is durable (or refused)."""

ResumePlan = tuple[int, int, int, Sequence[Outgoing]]
"""One stream a SYNC resumes: (conversation_id, after_seq, last_seq, the first messages after after_seq)."""


class LogClosed(Exception):
    """The message log takes no more work (the server is draining): the SEND is refused with SHUTTING_DOWN."""


class Unreadable(Exception):
    """The store cannot read what a request needs (a damaged page, reported where it was found): that request alone
    is answered, a SYNC with STORAGE_UNAVAILABLE, a gateway's fetch with `messages` (what could be read, and a damage
    EVENT in place of each message that could not); every other request goes on."""

    messages: Sequence[StoredMessage] = ()


class MessageLog(Protocol):
    """Sequenced, durable conversations. Reads see only durable messages (never one a crash could take back)."""

    def submit(self, request: SendRequest, done: Done) -> None:
        """Sequence and store `request`; `done(result)` runs on the loop once durable. Raises LogClosed."""

    def advance_cursor(self, user: str, conversation_id: int, seq: int) -> None:
        """`user` has every message of the conversation up to `seq` (stored soon after; reads see it at once)."""

    def cursor(self, user: str, conversation_id: int) -> int:
        """The highest seq `user` acknowledged in the conversation; 0 if none."""

    def pending(self, user: str) -> list[tuple[int, int, int]]:
        """(conversation_id, cursor, last_seq) of each of the user's conversations with unacknowledged messages."""

    def read_range(self, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> list[StoredMessage]:
        """Messages with after_seq < seq <= until_seq (0: the latest), at most `limit`, in seq order."""

    def last_seq(self, conversation_id: int) -> int:
        """The conversation's last durable seq; 0 if it has none."""

    def members(self, conversation_id: int) -> tuple[str, ...] | None:
        """The conversation's members; None if it does not exist."""

    def get_record(self, table: str, key: bytes) -> bytes | None:
        """One record of a table a layer above registered, or None."""

    def scan(self, table: str, prefix: bytes = b"", *, limit: int = 1 << 62) -> list[tuple[bytes, bytes]]:
        """The (key, value) pairs of a registered table whose key starts with `prefix`, in key order."""

    def last_key(self, table: str) -> bytes | None:
        """The greatest key of a registered table, or None if it is empty."""

    @property
    def queue_depth(self) -> int:
        """Writes submitted and not yet durable."""


class Device(Protocol):
    """One ready connection of a user, as the core and the desk see it."""

    @property
    def user(self) -> str:
        """The app id the connection authenticated as."""

    def send(self, frame: Frame) -> None:
        """Queue a frame for the connection."""


class Endpoint(Protocol):
    """A gateway, as the core sees it: the connections of some users. `sid` names a connection there."""

    def submitted(self, sid: int, send: Send, result: SendResult, cursor: int) -> None:
        """The outcome of a SEND of connection `sid` (its SEND_ACK); `cursor`: the sender's stored cursor in the
        conversation before this message."""

    def publish(self, message: Outgoing, recipients: Sequence[tuple[str, int]], origin: int, t0: float) -> None:
        """A durable message for the connections here of `recipients` ((user, stored cursor) pairs), except
        connection `origin` (0: none); `t0`: when its SEND was read (time.monotonic), for the latency metric."""

    def send(self, sid: int, frame: Frame) -> None:
        """A frame for connection `sid`."""

    def resume(self, sid: int, request_id: int, conversation_id: int, plans: Sequence[ResumePlan]) -> None:
        """Restart connection `sid`'s streams as SYNC `request_id` asked, then answer it with SYNC_DONE."""

    def admitted(self, ticket: int, code: ErrorCode | None) -> None:
        """The verdict on a new connection the gateway asked about (None: admitted)."""

    def fetched(self, ticket: int, messages: Sequence[Outgoing]) -> None:
        """Messages a `CorePort.fetch` asked for."""


class CorePort(Protocol):
    """The core, as one gateway sees it. Answers come back through the gateway's `Endpoint`."""

    def admit(self, ticket: int, address: str) -> None:
        """Ask whether a new connection from `address` may proceed (`Endpoint.admitted`)."""

    def opened(self, sid: int, user: str) -> None:
        """Connection `sid` finished its handshake as `user`."""

    def closed(self, sid: int) -> None:
        """Connection `sid` is gone (sent for ready connections only)."""

    def submit(self, sid: int, send: Send, t0: float) -> None:
        """Store a SEND of connection `sid` (`Endpoint.submitted`); `t0`: when it was read (time.monotonic)."""

    def cursor(self, user: str, conversation_id: int, seq: int) -> None:
        """`user` acknowledged everything up to `seq` of the conversation."""

    def sync(self, sid: int, sync: Sync, room: int) -> None:
        """A SYNC of connection `sid`; `room`: how many DELIVERs its window may take now."""

    def fetch(self, ticket: int, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> None:
        """Read messages for a catch-up or a retry (`Endpoint.fetched`)."""

    def service(self, sid: int, frame: Frame) -> None:
        """A customer-service request of connection `sid` (section 13)."""


class Profiles(Protocol):
    """Who users are."""

    def profile(self, user: str) -> Profile:
        """The user's role and tenant."""


class ConversationPolicy(Protocol):
    """What the layer above delivery (the customer-service desk) decides about conversations and users."""

    def check_send(self, user: str, conversation_id: int, content_type: int) -> ErrorCode | None:
        """A SEND into the service range: None if allowed, else the refusal code (the same for a conversation that
        does not exist and for one `user` may not know of)."""

    def can_read(self, user: str, conversation_id: int) -> bool:
        """Whether a non-member may fetch ranges of the conversation (SYNC with until_seq > 0)."""

    def connected(self, device: Device) -> None:
        """A device finished its handshake."""

    def disconnected(self, device: Device) -> None:
        """A ready device went away."""

    def committed(self, result: SendResult) -> None:
        """A client's message in the service range is durable and delivered."""

    def on_request(self, device: Device, frame: Frame) -> None:
        """A service request (section 13)."""


class ServiceHost(Protocol):
    """The core, as the conversation policy sees it."""

    config: Any
    loop: asyncio.AbstractEventLoop
    log: MessageLog

    def devices(self, user: str) -> Iterable[Device]:
        """The user's ready devices, on every gateway."""

    def write(self, request: SendRequest, done: Done) -> None:
        """Store a message the server writes (a system message, an approved draft) and deliver it once durable;
        `done` runs after the delivery. Raises LogClosed."""

    def event(self, name: str, /, **fields: object) -> None:
        """Log a structured event."""

    def count(self, event: str) -> None:
        """Count a service event (kefu_service_events)."""

    def refused(self, user: str, request: Frame, code: ErrorCode) -> None:
        """`user`'s `request` was refused with `code`: count it (kefu_errors) and log it at info, at a bounded rate."""

    def publish_figures(self, figures: Any) -> None:
        """The desk's latest `kefu.server.service.figures.DeskFigures`, for the metrics (kefu_service_*)."""

    def background_error(self, exc: BaseException | None) -> None:
        """A bug in background work: log it with its traceback."""
