"""The hub: who is online, what each SEND becomes, and who gets which DELIVER (spec section 4.10).

Theory of operation:

- SEND: checked (size, rate), handed to the group committer; the SEND_ACK goes out only from the commit
  callback, i.e. after the batch holding the message is fsync'd. A repeated (sender, client_msg_id) gets the
  original acknowledgement with the DUPLICATE flag and is not delivered again.
- After a commit, the message is offered to every online device of every member of its conversation
  except the device that sent it. A device's stream sends it at once if it is next in sequence and the
  window has room; otherwise the stream catches up from the store as acknowledgements free the window.
- DELIVER_ACK advances the device's stream and the user's stored cursor, which is written behind
  (`kefu.server.cursors`: about once per [delivery] cursor_save_delay_ms per user and conversation).
- SYNC with until_seq = 0 resumes a conversation's stream after `after_seq` (conversation 0: every
  conversation whose stored cursor is behind); with until_seq > 0 it fetches a range once, untracked.
- Conversations are created by the first SEND that names its other members in the metadata key
  "kefu.to" (comma-separated user ids). Only members may send to or read a conversation.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from kefu.protocol.delivery import DeliveryWindow
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionClosed, ConnectionTerminated, HandshakeComplete
from kefu.protocol.frames import SERVICE_BASE, DeliverAck, Error, Flag, Frame, Goaway, Send, SendAck, Sync, SyncDone

from . import log as logmod
from .cursors import CursorWriteBehind
from .ratelimit import BucketTable
from .store import SendRequest, SendResult, Store, StoredMessage
from .timers import TimerWheel

if TYPE_CHECKING:
    from kefu.protocol.handshake import ServerConfig

    from .gateway import Session
    from .service.desk import Desk

MEMBERS_KEY = "kefu.to"
"""SEND metadata key naming the other members of a conversation the SEND creates."""


class Hub:
    """Shared state of one server process: sessions by user, limits, the committer and the timer wheel."""

    def __init__(
        self,
        *,
        config: Any,
        server_config: ServerConfig,
        store: Store,
        committer: Any,
        loop: asyncio.AbstractEventLoop,
        metrics: Any = None,
        log: Callable[..., None] | None = None,
    ) -> None:
        self.config = config
        self.server_config = server_config
        self.store = store
        self.committer = committer
        self.loop = loop
        self.metrics = metrics
        self.log = log or (lambda *a, **k: None)
        self.wheel = TimerWheel(loop)
        self.sessions: set[Session] = set()
        self.users: dict[str, Session | set[Session]] = {}
        """Online devices by user: the session itself for a user with one device (the common case: a set
        costs 216 bytes), a set for several."""
        self.draining = False
        self.cursors = CursorWriteBehind(store, committer, config.delivery.cursor_save_delay_ms / 1000, loop.time)
        """Stored cursors not yet durable; every cursor read goes through it."""
        self._offset = time.time() - loop.time()
        self._last_seq: dict[int, int] = {}
        limits = config.limits
        self._app_frames = BucketTable(limits.app_frames_per_s, limits.app_frames_burst)
        self._new_conns = BucketTable(limits.new_conns_per_ip_per_s, limits.new_conns_per_ip_burst)
        self.handshaking = 0
        self.buffered_total = 0
        self.bytes_in = self.bytes_out = 0
        self.deferred: set[Session] = set()
        self._dirty: list[Session] = []
        """Sessions with frames queued or deadlines to re-arm, flushed in one pass (`flush_soon`)."""
        self._flush_armed = False
        self._connections: dict[tuple[str, str], Any] = {}
        self.desk: Desk | None = None
        """The customer-service layer (section 13), attached by the app."""

    def reconfigure(self, config: Any) -> None:
        """SIGHUP: adopt new limits for existing and future connections' shared buckets."""
        self.config = config
        limits = config.limits
        self._app_frames.configure(limits.app_frames_per_s, limits.app_frames_burst)
        self._new_conns.configure(limits.new_conns_per_ip_per_s, limits.new_conns_per_ip_burst)
        self.cursors.delay_s = config.delivery.cursor_save_delay_ms / 1000

    # --- clock and timers -------------------------------------------------------------------------------

    def now(self) -> float:
        """Wall-clock seconds, read from the loop's monotonic clock (tickets and deadlines share it)."""
        return self.loop.time() + self._offset

    def wheel_schedule(self, session: Session, when: float | None) -> None:
        """Arm `session`'s single deadline (wall-clock seconds) in the timer wheel."""
        self.wheel.schedule(session, None if when is None else when - self._offset)

    # --- admission --------------------------------------------------------------------------------------

    def admit(self, session: Session, address: str) -> bool:
        """Connection limit and per-address rate of new connections."""
        limits = self.config.limits
        if self.draining or len(self.sessions) >= self.config.server.max_connections:
            self._count("refused_connections")
            return False
        if not self._new_conns.take(address, 1, self.now()):
            self._count("refused_connections")
            return False
        if self.handshaking >= limits.max_handshakes_in_progress:
            self._count("refused_connections")
            return False
        self.sessions.add(session)
        self.handshaking += 1
        return True

    def allow_app_frame(self, user: str, now: float) -> bool:
        """The per-app frame bucket."""
        return self._app_frames.take(user, 1, now)

    def new_window(self) -> DeliveryWindow:
        """A delivery window with the configured bounds."""
        d = self.config.delivery
        return DeliveryWindow(d.inflight_window, d.retry_initial_ms / 1000, d.retry_max_ms / 1000)

    def on_ready(self, session: Session, event: HandshakeComplete) -> None:
        """Handshake done: the session now belongs to its user."""
        self.handshaking -= 1
        devices = self.users.get(session.user)
        if devices is None:
            self.users[session.user] = session
        elif isinstance(devices, set):
            devices.add(session)
        else:
            self.users[session.user] = {devices, session}
        suite = event.suite.name.lower()
        session.suite_name = suite
        if self.metrics is not None:
            self.metrics.handshake(suite, "resumed" if event.resumed else "ok")
            self._gauge(suite).inc()
        self.log(
            "conn.ready", peer=session.peer, app=session.user, suite=event.suite.name.lower(), resumed=event.resumed
        )
        if self.desk is not None:
            self.desk.connected(session)

    def on_closed(self, session: Session, event: ConnectionClosed | ConnectionTerminated) -> None:
        """The core closed the connection (cleanly or not); the flush writes what is left and closes."""
        if isinstance(event, ConnectionTerminated):
            if not event.by_peer:
                fields = {"peer": session.peer, "app": session.user, "code": event.code.name, "reason": event.reason}
                if event.code is ErrorCode.AUTH_FAILED:
                    logmod.warning("conn.auth_failed", **fields)  # an operator wants failed logins to stand out
                else:
                    self.log("conn.error", **fields)
                self._count_error(event.code)
            if not session.ready and self.metrics is not None:
                timeout = event.code is ErrorCode.HANDSHAKE_TIMEOUT
                self.metrics.handshake("none", "timeout" if timeout else "failed")

    def internal_error_background(self, exc: BaseException | None) -> None:
        """An unexpected exception in background work (a bug): log it with its traceback."""
        logmod.exception("server.internal_error", error=repr(exc))
        self._count_error(ErrorCode.INTERNAL_ERROR)

    def internal_error(self, session: Session, exc: Exception) -> None:
        """An unexpected exception while serving one connection (a bug): log it with its traceback."""
        logmod.exception("conn.internal_error", peer=session.peer, app=session.user, error=repr(exc))
        self._count_error(ErrorCode.INTERNAL_ERROR)

    def forget(self, session: Session) -> None:
        """The transport is gone."""
        if session in self.sessions:
            self.sessions.discard(session)
            if not session.ready:
                self.handshaking -= 1
            elif self.metrics is not None:
                self._gauge(session.suite_name).dec()
        self.deferred.discard(session)
        devices = self.users.get(session.user)
        if self.desk is not None and session.ready and devices is not None:
            self.desk.disconnected(session)
        if devices is session:
            del self.users[session.user]
        elif isinstance(devices, set):
            devices.discard(session)
            if len(devices) == 1:
                self.users[session.user] = next(iter(devices))
        self.wheel.cancel(session)

    # --- SEND -------------------------------------------------------------------------------------------

    def on_send(self, session: Session, send: Send, now: float) -> None:
        """Validate and submit for durable commit; the ack waits for the fsync."""
        if len(send.body) > self.config.server.max_message_bytes:
            self.refuse_send(session, send, ErrorCode.MESSAGE_TOO_LARGE)
            return
        if not send.body or send.conversation_id == 0:
            # Conversation 0 means "every conversation" in SYNC, so no conversation may have that id.
            self.refuse_send(session, send, ErrorCode.BAD_REQUEST)
            return
        metadata = tuple((m.key, m.value) for m in send.metadata)
        members = self._members_from(metadata)
        if send.conversation_id >= SERVICE_BASE:
            # The service range (section 13.2): created by the server only, written under the desk's rules.
            code = self.desk.check_send(session.user, send.conversation_id) if self.desk is not None else None
            if members or self.desk is None or code is not None:
                self.refuse_send(session, send, ErrorCode.BAD_REQUEST if members or code is None else code)
                return
        request = SendRequest(
            session.user, send.client_msg_id, send.conversation_id, send.content_type, send.body, metadata, members
        )
        t0 = self.loop.time()
        try:
            self.committer.submit(request, lambda result: self._committed(session, send, result, t0))
        except RuntimeError:  # the committer has stopped: the server is draining
            self.refuse_send(session, send, ErrorCode.SHUTTING_DOWN)
            return
        if self.metrics is not None:
            self.metrics.commit_queue.set(self.committer.queue_depth)

    @staticmethod
    def _members_from(metadata: tuple[tuple[str, bytes], ...]) -> tuple[str, ...]:
        for key, value in metadata:
            if key == MEMBERS_KEY:
                try:
                    return tuple(m for m in value.decode().split(",") if m)
                except UnicodeDecodeError:
                    return ()
        return ()

    def refuse_send(self, session: Session, send: Send, code: ErrorCode) -> None:
        """A SEND_ACK carrying an error instead of a sequence number."""
        session.send(SendAck(send.client_msg_id, code, 0, send.conversation_id, 0, 0, request_id=send.request_id))
        self._count_error(code)

    def refuse(self, session: Session, frame: Frame, code: ErrorCode, reason: str = "") -> None:
        """A non-fatal ERROR answering `frame`."""
        session.send(Error(code, reason or code.name.lower(), request_id=frame.request_id))
        self._count_error(code)

    def _committed(self, session: Session, send: Send, result: SendResult, t0: float) -> None:
        message = result.message
        if result.status != ErrorCode.OK or message is None:
            self.refuse_send(session, send, ErrorCode(result.status))
            return
        flags = Flag.DUPLICATE if result.duplicate else 0
        session.send(
            SendAck(
                send.client_msg_id,
                0,
                message.server_msg_id,
                message.conversation_id,
                message.seq,
                message.timestamp_ms,
                request_id=send.request_id,
                flags=flags,
            )
        )
        self._observe("send_ack", self.loop.time() - t0)
        if result.duplicate:
            return
        self._delivered_by_ack(session, message)
        self.publish(message, result.members, t0, origin=session)
        if message.conversation_id >= SERVICE_BASE and self.desk is not None:
            self.desk.committed(result)

    def publish(
        self, message: StoredMessage, members: tuple[str, ...], t0: float, origin: Session | None = None
    ) -> None:
        """A committed message (a client's, or one the server wrote: a system message, an approved draft): note
        its seq and offer it to every online device of every member except `origin`."""
        self._saw(message.conversation_id, message.seq)
        self.fanout(message, members, origin, t0)

    def _saw(self, conversation_id: int, seq: int) -> None:
        """Keep the cached last seq of the conversation up to date (it only grows)."""
        self._last_seq[conversation_id] = max(self._last_seq.get(conversation_id, 0), seq)

    def _delivered_by_ack(self, session: Session, message: StoredMessage) -> None:
        """The sending device has its own message (its SEND_ACK carries the seq): it is never delivered back to
        that device, and counts as acknowledged there once everything before it is."""
        window = session.window
        stream = window.streams.get(message.conversation_id) if window is not None else None
        if stream is None:
            cursor = self.cursors.read(session.user, message.conversation_id)
            if cursor != message.seq - 1:
                return  # the device is behind: its catch-up will carry the message like any other
            stream = session.delivery_window().stream(message.conversation_id, cursor)
        assert session.window is not None
        before = stream.acked
        session.window.mark_own(stream, message.seq)
        if stream.acked > before:
            self.cursors.advance(session.user, message.conversation_id, stream.acked)

    def fanout(self, message: StoredMessage, members: tuple[str, ...], origin: Session | None, t0: float) -> None:
        """Offer a committed message to every online device of every member except the origin device."""
        conversation = message.conversation_id
        for member in members:  # inline rather than devices(): this loop runs per message and member
            devices = self.users.get(member)
            if devices is None:
                continue
            cursor = _LazyCursor(self.cursors, member, conversation)
            for device in devices if isinstance(devices, set) else (devices,):
                if device is not origin:
                    device.offer(message, cursor, t0)

    def devices(self, user: str) -> tuple[Session, ...] | set[Session]:
        """The user's online devices (empty if none); for the service layer's pushes."""
        devices = self.users.get(user)
        if devices is None:
            return ()
        return devices if isinstance(devices, set) else (devices,)

    def observe_delivery(self, t0: float) -> None:
        """A DELIVER left for a device: the server-side delivery latency of the message."""
        self._observe("delivery", self.loop.time() - t0)

    def last_seq(self, conversation_id: int) -> int:
        """The conversation's last sequence number (cached from commits, else from the store)."""
        seq = self._last_seq.get(conversation_id)
        if seq is None:
            seq = self._last_seq[conversation_id] = self.store.last_seq(conversation_id)
        return seq

    # --- DELIVER_ACK, retries and SYNC ------------------------------------------------------------------

    def on_deliver_ack(self, session: Session, ack: DeliverAck, now: float) -> None:
        """Advance streams and stored cursors; continue any catch-up the ack made room for."""
        window = session.window
        if window is None:
            return  # nothing was delivered to this session: nothing to acknowledge
        for entry in ack.acks:
            stream = window.ack(entry.conversation_id, entry.seq, now=now)
            if stream is not None:
                self.cursors.advance(session.user, entry.conversation_id, stream.acked)
        for stream in list(window.streams.values()):
            if window.room <= 0:
                break
            session.pump(stream, self.last_seq(stream.conversation_id))

    def resend(self, session: Session, conversation_id: int, first: int, last: int) -> None:
        """Retry unacknowledged DELIVERs in order."""
        stream = session.window.streams.get(conversation_id) if session.window is not None else None
        own = stream.own if stream is not None else None
        for message in self.store.read_range(conversation_id, first - 1, last, last - first + 1):
            if own is None or message.seq not in own:
                session.deliver(message, redelivery=True)
        self._count("retries", last - first + 1)

    def on_sync(self, session: Session, sync: Sync, now: float) -> None:
        """Resume a stream (until_seq 0) or fetch a range once (until_seq > 0)."""
        window = session.delivery_window()
        if sync.conversation_id == 0:
            pending = self.cursors.pending(session.user)
            for conversation_id, cursor, last_seq in pending:
                self._saw(conversation_id, last_seq)
                stream = window.rewind(conversation_id, cursor)
                session.pump(stream, last_seq)
            session.send(SyncDone(0, len(pending), 0, request_id=sync.request_id))
            return
        members = self.store.members(sync.conversation_id)
        if members is None or session.user not in members:
            # A non-member may fetch ranges (not resume a stream) of a service conversation it may read.
            readable = (
                members is not None
                and sync.until_seq > 0
                and sync.conversation_id >= SERVICE_BASE
                and self.desk is not None
                and self.desk.can_read(session.user, sync.conversation_id)
            )
            if not readable:
                self.refuse(session, sync, ErrorCode.FORBIDDEN if members is not None else ErrorCode.NOT_FOUND)
                return
        last_seq = self.last_seq(sync.conversation_id)
        if sync.until_seq == 0:
            stream = window.rewind(sync.conversation_id, min(sync.after_seq, last_seq))
            session.pump(stream, last_seq)
            session.send(
                SyncDone(sync.conversation_id, last_seq, int(stream.next_seq <= last_seq), request_id=sync.request_id)
            )
            return
        limit = min(sync.limit or self.config.delivery.sync_max_limit, self.config.delivery.sync_max_limit)
        until = min(sync.until_seq, last_seq)
        messages = self.store.read_range(sync.conversation_id, sync.after_seq, until, limit)
        for message in messages:
            session.deliver(message, redelivery=True, request_id=sync.request_id)
        last = messages[-1].seq if messages else sync.after_seq
        more = bool(messages) and last < until  # nothing left in the range (expired): no point asking again
        session.send(SyncDone(sync.conversation_id, last, int(more), request_id=sync.request_id))

    # --- lifecycle --------------------------------------------------------------------------------------

    def goaway_all(self, reason: str = "server shutting down") -> None:
        """Tell every client to go away (with the configured reconnect advice) and stop admitting."""
        self.draining = True
        s = self.config.server
        frame = Goaway(
            ErrorCode.SHUTTING_DOWN,
            s.goaway_reconnect_delay_ms,
            s.goaway_backoff_initial_ms,
            s.goaway_backoff_max_ms,
            s.goaway_jitter_permille,
            reason,
        )
        for session in list(self.sessions):
            session.send(frame)

    def close_all(self) -> None:
        """Close every connection cleanly (CLOSE, then the transport)."""
        for session in list(self.sessions):
            if session.conn is not None:
                session.conn.close(ErrorCode.SHUTTING_DOWN, "server stopped")
                session._schedule_flush()

    # --- the flush pass --------------------------------------------------------------------------------------

    def flush_soon(self, session: Session) -> None:
        """Flush `session` at the end of this loop iteration, in one pass with every other session marked.

        One loop callback per iteration instead of one per session: at 10,000 connections each message
        touches two sessions (the SEND_ACK and the DELIVER) and nothing batches per connection, so each
        message cost two loop handles; now a commit's whole batch is flushed by one."""
        self._dirty.append(session)
        if not self._flush_armed:
            self._flush_armed = True
            self.loop.call_soon(self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush_armed = False
        sessions, self._dirty = self._dirty, []
        for session in sessions:
            session.flush()  # catches its own errors: one session's bug never skips the others
        self.save_cursors()

    def save_cursors(self, *, final: bool = False) -> None:
        """Hand the committer the cursors due to be saved (each flush pass, and once a second from the app);
        `final`: all of them, once, as the drain does before it stops the committer (nothing is saved after)."""
        if final:
            self.cursors.save_due(everything=True)
        elif not self.draining:
            self.cursors.save_due()

    # --- buffers for slow readers ------------------------------------------------------------------------

    def account_buffered(self, session: Session, before: int, after: int) -> None:
        """A session's transport buffer changed size; resume deferred catch-ups once the total has room."""
        self.buffered_total += after - before
        if self.metrics is not None:
            self.metrics.outbound_buffered_bytes.set(self.buffered_total)
        if after < before and self.deferred and not self.over_total_buffer():
            self.loop.call_soon(self._resume_deferred)

    def over_total_buffer(self) -> bool:
        """True while clients' unread bytes exceed [limits] total_write_buffer_bytes."""
        limit: int = self.config.limits.total_write_buffer_bytes
        return self.buffered_total >= limit

    def defer(self, session: Session) -> None:
        """`session` has more to deliver than it may buffer now: pump it again when buffers drain."""
        self.deferred.add(session)

    def _resume_deferred(self) -> None:
        sessions, self.deferred = self.deferred, set()
        for session in sessions:
            if not session.write_paused:
                session.pump_all()

    # --- metrics ----------------------------------------------------------------------------------------

    def _gauge(self, suite: str) -> Any:
        gauge = self._connections.get((suite, "open"))
        if gauge is None and self.metrics is not None:
            gauge = self._connections[(suite, "open")] = self.metrics.connection_gauge(suite, "open")
        return gauge

    def count_in(self, nbytes: int) -> None:
        """Bytes read from clients (plain ints here; publish_counters hands them to Prometheus, whose
        counters take a lock per increment: 2.4 % of the server's samples when counted per read)."""
        self.bytes_in += nbytes

    def count_out(self, nbytes: int) -> None:
        """Bytes written to clients (see count_in)."""
        self.bytes_out += nbytes

    def publish_counters(self) -> None:
        """Move the byte counts and the core's frame counts into the metrics (the app calls this periodically)."""
        if self.metrics is not None:
            if self.bytes_in:
                self.metrics.bytes_in(self.bytes_in)
            if self.bytes_out:
                self.metrics.bytes_out(self.bytes_out)
            if (tally := self.server_config.frame_tally) is not None:
                self.metrics.frames(*tally.take())
        self.bytes_in = self.bytes_out = 0

    def _count(self, what: str, n: int = 1) -> None:
        if self.metrics is not None:
            self.metrics.count(what, n)

    def _count_error(self, code: ErrorCode) -> None:
        if self.metrics is not None:
            self.metrics.error(code.name)

    def _observe(self, what: str, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe(what, seconds)


class _LazyCursor:
    """A member's cursor, read only if a device has no stream yet (once per fan-out)."""

    __slots__ = ("_conversation", "_cursors", "_user", "_value")

    def __init__(self, cursors: CursorWriteBehind, user: str, conversation: int) -> None:
        self._cursors, self._user, self._conversation = cursors, user, conversation
        self._value: int | None = None

    def __call__(self) -> int:
        if self._value is None:
            self._value = self._cursors.read(self._user, self._conversation)
        return self._value
