"""The core of the delivery engine: who is online where, what each SEND becomes, who gets which message, and what a
SYNC resumes (spec section 4.10). One per host; the gateways reach it through their `CorePort`.

Theory of operation:

- Admission: every new connection, on any gateway, is admitted here first (per-address rate of new connections,
  the host's connection limit), so the limits hold across gateways.
- SEND: checked (size, the per-app rate, the conversation policy for the service range), handed to the
  `MessageLog`; the SEND_ACK goes out only from its `done` callback, i.e. once the message is durable. A repeated
  (sender, client_msg_id) gets the original acknowledgement with the DUPLICATE flag and is not delivered again.
- After a message is durable it is published to every gateway holding a device of one of its members, once per
  gateway, with each such member's stored cursor (a device with no stream yet starts there). The gateway offers it to
  the devices (`kefu.server.engine.streams`), except the one that sent it.
- DELIVER_ACKs are counted at the gateways; each advance of a user's position reaches `cursor`, then the log.
- SYNC: the core decides what to resume (section 4.5) and hands the gateway a plan with the first window of
  messages, so that the resumed DELIVERs precede SYNC_DONE; a fetch is answered here entirely.
- Conversations are created by the first SEND that names its other members in the metadata key "kefu.to"
  (comma-separated user ids). Only members may send to or read a conversation; anyone else is refused NOT_FOUND,
  as for a conversation that does not exist, so that refusals do not tell a peer which conversation ids exist.
"""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import (
    SERVICE_BASE,
    ContentType,
    Deliver,
    Error,
    Flag,
    Frame,
    MetaEntry,
    Send,
    SendAck,
    Sync,
    SyncDone,
    encode,
)

from .. import log as logmod
from .messages import Outgoing, SendRequest, SendResult, StoredMessage
from .ports import ConversationPolicy, Endpoint, LogClosed, MessageLog, ResumePlan, Unreadable
from .presence import Presence
from .ratelimit import BucketTable
from .refusals import RefusalLog

__all__ = ["MEMBERS_KEY", "Core", "CoreDevice", "deliver_frame", "outgoing"]

MEMBERS_KEY = "kefu.to"
"""SEND metadata key naming the other members of a conversation the SEND creates."""
ARRIVAL_GRACE_S = 2.0
"""A device whose handshake the core learns of gets, at once, the messages stored for its user since the core
admitted the connection, within this last while (whether or not the user had another device online then). A client
counts its handshake done when it sends CLIENT_FINISHED; the core hears of it a little later, from the gateway (in one
process, within the same loop iteration; with worker processes, over a link, so that a message another gateway
committed meanwhile would otherwise wait for the device's SYNC or for the conversation's next message): the spec's
"every message stored while it is connected" then holds from the client's point of view. Two seconds covers a loaded
host's link and handshake queues."""
RECENT_FOR_ARRIVALS = 8192
"""Bound on the messages kept for ARRIVAL_GRACE_S (memory: a few MiB at most; the oldest go first). Messages are kept
only while some admitted connection has not finished its handshake: no one else can arrive late."""


def deliver_frame(message: StoredMessage, *, redelivery: bool = False, request_id: int = 0) -> Deliver:
    """The DELIVER of a stored message."""
    return Deliver(
        message.conversation_id,
        message.seq,
        message.server_msg_id,
        message.timestamp_ms,
        message.client_msg_id,
        message.content_type,
        message.sender,
        message.body,
        tuple(MetaEntry(k, v) for k, v in message.metadata) if message.metadata else (),
        flags=Flag.REDELIVERY if redelivery else 0,
        request_id=request_id,
    )


def outgoing(message: StoredMessage) -> Outgoing:
    """A stored message with its DELIVER encoded, once, for every device it goes to."""
    return Outgoing(message.conversation_id, message.seq, encode(deliver_frame(message)))


class CoreDevice:
    """A connection as the core knows it: on which gateway, under which id there, and (once ready) whose."""

    # One per connection of the host, so only what delivery needs: not the address (admission is decided when it
    # arrives), and `since` only until the handshake is done.
    __slots__ = ("endpoint", "sid", "since", "user")

    def __init__(self, endpoint: Endpoint, sid: int) -> None:
        self.endpoint, self.sid = endpoint, sid
        self.since = time.monotonic()
        """When the core admitted it: the earliest its client can have counted itself connected (0.0 once its
        handshake is done and the messages it arrived late for were handed over)."""
        self.user = ""
        """The app id, once the handshake is done ("" before)."""

    def send(self, frame: Frame) -> None:
        """Queue a frame for this connection (on its gateway)."""
        self.endpoint.send(self.sid, frame)


class Core:
    """The host's delivery core: admission, presence, sequencing requests, fan-out, SYNC plans, cursors.

    `policy` (the customer-service desk) is attached after construction: it is built on this core's `ServiceHost`
    side (`write`, `devices`, ...).
    """

    def __init__(
        self,
        *,
        config: Any,
        log: MessageLog,
        loop: asyncio.AbstractEventLoop,
        metrics: Any = None,
        events: Callable[..., None] | None = None,
    ) -> None:
        self.config = config
        self.log = log
        self.loop = loop
        self.metrics = metrics
        self._events = events or logmod.event
        self.refusals = RefusalLog(loop.time, self._events)
        """Refused requests, logged at info at a bounded rate."""
        self.policy: ConversationPolicy | None = None
        self._devices: dict[tuple[Endpoint, int], CoreDevice] = {}
        self._users: Presence[CoreDevice] = Presence()
        self._last_seq: dict[int, int] = {}
        self._for_arrivals: deque[tuple[float, tuple[str, ...], Outgoing]] = deque()
        """(stored at, members, message): messages of the last ARRIVAL_GRACE_S, for devices still in their handshake."""
        self._unopened = 0
        """Devices admitted whose handshake the core has not heard the end of."""
        limits = config.limits
        self._app_frames = BucketTable(limits.app_frames_per_s, limits.app_frames_burst)
        self._new_conns = BucketTable(limits.new_conns_per_ip_per_s, limits.new_conns_per_ip_burst)
        self.draining = False
        if metrics is not None:
            metrics.commit_queue.set_function(lambda: self.log.queue_depth)  # read when scraped, not per SEND

    def reconfigure(self, config: Any) -> None:
        """SIGHUP: adopt new limits."""
        self.config = config
        limits = config.limits
        self._app_frames.configure(limits.app_frames_per_s, limits.app_frames_burst)
        self._new_conns.configure(limits.new_conns_per_ip_per_s, limits.new_conns_per_ip_burst)

    @property
    def connections(self) -> int:
        """Connections admitted on every gateway and not yet gone."""
        return len(self._devices)

    # --- connections ----------------------------------------------------------------------------------------

    def admit(self, endpoint: Endpoint, sid: int, address: str) -> None:
        """A new connection from `address`: the host's limit and the address's rate of new connections."""
        code: ErrorCode | None = None
        if self.draining:
            code = ErrorCode.SHUTTING_DOWN
        elif len(self._devices) >= self.config.server.max_connections or not self._new_conns.take(
            address, 1, time.monotonic()
        ):
            code = ErrorCode.RATE_LIMITED
        else:
            self._devices[(endpoint, sid)] = CoreDevice(endpoint, sid)
            self._unopened += 1
        endpoint.admitted(sid, code)

    def restore(self, endpoint: Endpoint, sid: int, address: str, user: str) -> None:
        """A connection a gateway already held when it (re)joined this core: admitted, and ready if `user`."""
        self._devices[(endpoint, sid)] = CoreDevice(endpoint, sid)
        self._unopened += 1
        if user:
            self.opened(endpoint, sid, user)

    def opened(self, endpoint: Endpoint, sid: int, user: str) -> None:
        """The connection finished its handshake: it now belongs to its user."""
        device = self._devices.get((endpoint, sid))
        if device is None or device.user:
            return
        device.user = user
        self._unopened -= 1
        self._users.add(user, device)
        self._catch_arrival(device)
        device.since = 0.0
        if self.policy is not None:
            self.policy.connected(device)

    def _catch_arrival(self, device: CoreDevice) -> None:
        """Hand a device that just arrived what was stored for its user while the core did not know it yet."""
        kept = self._for_arrivals
        if not kept:
            return
        cutoff = max(time.monotonic() - ARRIVAL_GRACE_S, device.since)
        user = device.user
        caught = []
        for stored, members, message in reversed(kept):  # newest first: stop at the first too old
            if stored < cutoff:
                break
            if user in members:
                caught.append((stored, message))
        for stored, message in reversed(caught):
            # From just below the message at most: another device of the user may have acknowledged it (and moved
            # the stored cursor past it) while this one's arrival was on its way; this device still gets it.
            cursor = min(self.log.cursor(user, message.conversation_id), message.seq - 1)
            device.endpoint.publish(message, [(user, cursor)], 0, stored)

    def closed(self, endpoint: Endpoint, sid: int) -> None:
        """The connection is gone."""
        device = self._devices.pop((endpoint, sid), None)
        if device is None:
            return
        if device.user:
            self._forget(device)
        else:
            self._unopened -= 1

    def endpoint_lost(self, endpoint: Endpoint) -> None:
        """A gateway went away: so did all its connections."""
        for key in [key for key in self._devices if key[0] is endpoint]:
            self.closed(*key)

    def _forget(self, device: CoreDevice) -> None:
        self._users.discard(device.user, device)
        if self.policy is not None:
            self.policy.disconnected(device)

    def devices(self, user: str) -> Iterable[CoreDevice]:
        """The user's ready devices, on every gateway."""
        return self._users.devices(user)

    def _ready(self, endpoint: Endpoint, sid: int) -> CoreDevice | None:
        device = self._devices.get((endpoint, sid))
        return device if device is not None and device.user else None

    def _allow(self, device: CoreDevice) -> bool:
        """The per-app frame bucket (SEND, SYNC and service requests), shared by every gateway."""
        return self._app_frames.take(device.user, 1, time.monotonic())

    # --- SEND -----------------------------------------------------------------------------------------------

    def submit(self, endpoint: Endpoint, sid: int, send: Send, t0: float) -> None:
        """Validate and hand to the log; the SEND_ACK waits for durability. `t0`: when the SEND was read
        (time.monotonic, for the latency metrics)."""
        device = self._ready(endpoint, sid)
        if device is None:
            return  # gone meanwhile; the client sends it again after reconnecting
        self._submit(device, send, t0, attached=True)

    def _submit(self, device: CoreDevice, send: Send, t0: float, *, attached: bool) -> None:
        code = self._check(device, send)
        if code is not None:
            self._refuse_send(device, send, code)
            return
        metadata = tuple((m.key, m.value) for m in send.metadata)
        request = SendRequest(
            device.user, send.client_msg_id, send.conversation_id, send.content_type, send.body, metadata,
            _members_from(metadata),
        )  # fmt: skip
        try:
            self.log.submit(request, lambda result: self._committed(device, send, result, t0, attached))
        except LogClosed:
            self._refuse_send(device, send, ErrorCode.SHUTTING_DOWN)

    def _check(self, device: CoreDevice, send: Send) -> ErrorCode | None:
        if not self._allow(device):
            return ErrorCode.RATE_LIMITED
        if len(send.body) > self.config.server.max_message_bytes:
            return ErrorCode.MESSAGE_TOO_LARGE
        # Conversation 0 means "every conversation" in SYNC: no conversation has it. EVENT is the server's (#kefu)
        # alone, in every conversation: no client's message may pass for a system event.
        if not send.body or send.conversation_id == 0 or send.content_type == ContentType.EVENT:
            return ErrorCode.BAD_REQUEST
        if send.conversation_id >= SERVICE_BASE:
            # The service range (section 13.2): created by the server only, written under the policy's rules.
            if self.policy is None or any(m.key == MEMBERS_KEY for m in send.metadata):
                return ErrorCode.BAD_REQUEST
            return self.policy.check_send(device.user, send.conversation_id, send.content_type)
        return None

    def _refuse_send(self, device: CoreDevice, send: Send, code: ErrorCode) -> None:
        device.endpoint.submitted(device.sid, send, SendResult(int(code), False, None, ()), 0)
        self.refused(device.user, send, code)

    def _committed(self, device: CoreDevice, send: Send, result: SendResult, t0: float, attached: bool) -> None:
        message = result.message
        if result.status != ErrorCode.OK or message is None:
            self._refuse_send(device, send, _as_told_to_sender(ErrorCode(result.status)))
            return
        cursor = 0 if result.duplicate else self.log.cursor(device.user, message.conversation_id)
        if not attached or (device.endpoint, device.sid) in self._devices:
            device.endpoint.submitted(device.sid, send, result, cursor)
        if self.metrics is not None:
            self.metrics.observe("send_ack", time.monotonic() - t0)
        if result.duplicate:
            return
        self.publish(message, result.members, t0, origin=device)
        if message.conversation_id >= SERVICE_BASE and self.policy is not None:
            self.policy.committed(result)

    def publish(
        self, message: StoredMessage, members: tuple[str, ...], t0: float, origin: CoreDevice | None = None
    ) -> None:
        """A durable message (a client's, or one the server wrote): note its seq and hand it to every gateway holding
        a device of a member, with that member's stored cursor; `origin`, the sending device, does not get it."""
        conversation = message.conversation_id
        seq = message.seq
        if seq > self._last_seq.get(conversation, 0):
            self._last_seq[conversation] = seq
        ready = outgoing(message)
        targets: dict[Endpoint, list[tuple[str, int]]] = {}
        by_user = self._users.by_user
        if self._unopened:
            self._keep_for_arrivals(members, ready)
        for member in members:  # inline rather than devices(): this loop runs per message and member
            devices = by_user.get(member)
            if devices is None:
                continue
            cursor = -1
            for device in devices if isinstance(devices, set) else (devices,):
                if device is origin:
                    continue  # the gateway has the message already (SEND_ACK): never echo it to that device
                if cursor < 0:
                    cursor = self.log.cursor(member, conversation)
                recipients = targets.setdefault(device.endpoint, [])
                if not recipients or recipients[-1][0] != member:
                    recipients.append((member, cursor))
        for endpoint, recipients in targets.items():
            from_here = origin is not None and origin.endpoint is endpoint
            endpoint.publish(ready, recipients, origin.sid if from_here and origin else 0, t0)

    def _keep_for_arrivals(self, members: tuple[str, ...], message: Outgoing) -> None:
        """Remember a message for ARRIVAL_GRACE_S, for devices still in their handshake (see `_catch_arrival`)."""
        now = time.monotonic()
        kept = self._for_arrivals
        while kept and (kept[0][0] < now - ARRIVAL_GRACE_S or len(kept) >= RECENT_FOR_ARRIVALS):
            kept.popleft()
        kept.append((now, members, message))

    def write(self, request: SendRequest, done: Callable[[SendResult], None]) -> None:
        """Store a message the server writes (ServiceHost): publish it once durable, then call `done`."""
        t0 = time.monotonic()

        def committed(result: SendResult) -> None:
            if result.status == ErrorCode.OK and result.message is not None and not result.duplicate:
                self.publish(result.message, result.members, t0)
            done(result)

        self.log.submit(request, committed)

    def last_seq(self, conversation_id: int) -> int:
        """The conversation's last durable seq (cached from publishes, else from the log)."""
        seq = self._last_seq.get(conversation_id)
        if seq is None:
            seq = self._last_seq[conversation_id] = self.log.last_seq(conversation_id)
        return seq

    # --- cursors, SYNC and reads -----------------------------------------------------------------------------

    def cursor(self, user: str, conversation_id: int, seq: int) -> None:
        """`user` has every message of the conversation up to `seq` (a gateway counted the acknowledgements)."""
        self.log.advance_cursor(user, conversation_id, seq)

    def sync(self, endpoint: Endpoint, sid: int, sync: Sync, room: int) -> None:
        """Resume streams (until_seq 0) or fetch a range once (until_seq > 0); `room`: the window's free slots."""
        device = self._ready(endpoint, sid)
        if device is not None:
            self._sync(device, sync, room)

    def _sync(self, device: CoreDevice, sync: Sync, room: int) -> None:
        if not self._allow(device):
            self.refuse(device, sync, ErrorCode.RATE_LIMITED)
            return
        try:
            self._answer_sync(device, sync, room)
        except Unreadable:  # reported by the store; this SYNC alone is refused, the connection goes on
            self.refuse(device, sync, ErrorCode.STORAGE_UNAVAILABLE)

    def _answer_sync(self, device: CoreDevice, sync: Sync, room: int) -> None:
        endpoint, sid = device.endpoint, device.sid
        if sync.conversation_id == 0:
            endpoint.resume(sid, sync.request_id, 0, list(self._resume_all(device.user, room)))
            return
        conversation_id = sync.conversation_id
        code = self._check_read(device.user, conversation_id, fetch=sync.until_seq > 0)
        if code is not None:
            self.refuse(device, sync, code)
            return
        last_seq = self.last_seq(conversation_id)
        if sync.until_seq == 0:
            after = min(sync.after_seq, last_seq)
            first = self.log.read_range(conversation_id, after, last_seq, room) if room > 0 else []
            plan = (conversation_id, after, last_seq, [outgoing(m) for m in first])
            endpoint.resume(sid, sync.request_id, conversation_id, [plan])
            return
        self._fetch(device, sync, last_seq)

    def _resume_all(self, user: str, room: int) -> Iterator[ResumePlan]:
        """SYNC(0): every conversation of `user` whose stored cursor is behind, each from its cursor."""
        for conversation_id, cursor, last_seq in self.log.pending(user):
            if last_seq > self._last_seq.get(conversation_id, 0):
                self._last_seq[conversation_id] = last_seq
            try:
                first = self.log.read_range(conversation_id, cursor, last_seq, room) if room > 0 else []
            except Unreadable:  # reported; the others resume, a SYNC of this one is refused
                continue
            room -= len(first)
            yield conversation_id, cursor, last_seq, [outgoing(m) for m in first]

    def _check_read(self, user: str, conversation_id: int, *, fetch: bool) -> ErrorCode | None:
        """None if `user` may have what its SYNC asks of the conversation. One it may not read is refused exactly as
        one that does not exist, NOT_FOUND, so that SYNC cannot probe which ids exist (section 4.5); FORBIDDEN tells
        only a non-member that may read the conversation (and so knows of it) that it may fetch, not resume."""
        members = self.log.members(conversation_id)
        if members is None:
            return ErrorCode.NOT_FOUND
        if user in members:
            return None
        # A non-member may fetch ranges (not resume a stream) of a service conversation it may read.
        readable = (
            conversation_id >= SERVICE_BASE and self.policy is not None and self.policy.can_read(user, conversation_id)
        )
        if not readable:
            return ErrorCode.NOT_FOUND
        return None if fetch else ErrorCode.FORBIDDEN

    def _fetch(self, device: CoreDevice, sync: Sync, last_seq: int) -> None:
        sync_max = self.config.delivery.sync_max_limit
        limit = min(sync.limit or sync_max, sync_max)
        until = min(sync.until_seq, last_seq)
        messages = self.log.read_range(sync.conversation_id, sync.after_seq, until, limit)
        for message in messages:
            device.send(deliver_frame(message, redelivery=True, request_id=sync.request_id))
        last = messages[-1].seq if messages else sync.after_seq
        more = bool(messages) and last < until  # nothing left in the range (expired): no point asking again
        device.send(SyncDone(sync.conversation_id, last, int(more), request_id=sync.request_id))

    def fetch(
        self, endpoint: Endpoint, ticket: int, conversation_id: int, *, after: int, until: int, limit: int
    ) -> None:
        """Messages for a gateway's catch-up or retry."""
        try:
            messages = self.log.read_range(conversation_id, after, until, limit)
        except Unreadable as exc:  # reported; the stream goes on past what could not be read (damage EVENTs)
            messages = list(exc.messages)
        endpoint.fetched(ticket, [outgoing(m) for m in messages])

    # --- requests of no connection -----------------------------------------------------------------------------

    def request(self, device: CoreDevice, frame: Frame, t0: float) -> None:
        """A request made as `device.user` by no connection: the HTTP API makes a `CoreDevice` per request, never
        admitted nor present (it counts for no presence and receives no messages). A SEND, a SYNC that fetches a
        range (until_seq > 0) or a service request, under the same checks as a connection's (the per-app rate
        included); the answers go to `device.endpoint` under `device.sid` as a connection's would."""
        match frame:
            case Send():
                self._submit(device, frame, t0, attached=False)
            case Sync() if frame.until_seq > 0 and frame.conversation_id:
                self._sync(device, frame, 0)  # a fetch: the room (for resumed streams) is not used
            case Sync():
                self.refuse(device, frame, ErrorCode.BAD_REQUEST, "only a range can be fetched without a connection")
            case _:
                self._service(device, frame)

    # --- customer service -----------------------------------------------------------------------------------

    def service(self, endpoint: Endpoint, sid: int, frame: Frame) -> None:
        """A service request (section 13), for the conversation policy."""
        device = self._ready(endpoint, sid)
        if device is not None:
            self._service(device, frame)

    def _service(self, device: CoreDevice, frame: Frame) -> None:
        if self.policy is None:
            self.refuse(device, frame, ErrorCode.NOT_FOUND, "no service desk")
        elif not self._allow(device):
            self.refuse(device, frame, ErrorCode.RATE_LIMITED)
        else:
            self.policy.on_request(device, frame)

    def refuse(self, device: CoreDevice, frame: Frame, code: ErrorCode, reason: str = "") -> None:
        """A non-fatal ERROR answering `frame`."""
        device.send(Error(code, reason or code.name.lower(), request_id=frame.request_id))
        self.refused(device.user, frame, code)

    # --- ServiceHost: what the conversation policy uses ---------------------------------------------------------

    def event(self, name: str, /, **fields: object) -> None:
        """Log a structured event."""
        self._events(name, **fields)

    def count(self, event: str) -> None:
        """Count a service event."""
        if self.metrics is not None:
            self.metrics.service(event)

    def count_error(self, code: ErrorCode) -> None:
        """Count a refusal by its wire code."""
        if self.metrics is not None:
            self.metrics.error(code.name)

    def refused(self, user: str, request: Frame, code: ErrorCode) -> None:
        """Count a refused request by its wire code and log it (`RefusalLog`)."""
        self.count_error(code)
        self.refusals.refused(user, request, code)

    def publish_figures(self, figures: Any) -> None:
        """The desk's latest figures (a `DeskFigures`: queues, agents, abandonment, first answers)."""
        if self.metrics is not None:
            self.metrics.publish_desk(figures)

    def background_error(self, exc: BaseException | None) -> None:
        """An unexpected exception in background work (a bug): log it with its traceback."""
        logmod.exception("server.internal_error", error=repr(exc))
        self.count_error(ErrorCode.INTERNAL_ERROR)


def _members_from(metadata: tuple[tuple[str, bytes], ...]) -> tuple[str, ...]:
    for key, value in metadata:
        if key == MEMBERS_KEY:
            try:
                return tuple(m for m in value.decode().split(",") if m)
            except UnicodeDecodeError:
                return ()
    return ()


def _as_told_to_sender(code: ErrorCode) -> ErrorCode:
    """The status a client's SEND the log refused gets. The log refuses a non-member's write with FORBIDDEN; the
    sender is told NOT_FOUND, as for a conversation that does not exist, so that a SEND cannot probe which ids exist
    (section 4.1)."""
    return ErrorCode.NOT_FOUND if code == ErrorCode.FORBIDDEN else code


def refusal_ack(send: Send, code: ErrorCode) -> SendAck:
    """A SEND_ACK carrying an error instead of a sequence number."""
    return SendAck(send.client_msg_id, code, 0, send.conversation_id, 0, 0, request_id=send.request_id)
