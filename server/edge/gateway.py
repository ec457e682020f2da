"""One gateway: the connections of one process, and that process's end of the engine (spec section 14).

Theory of operation: the gateway owns its `Session`s (one per TCP connection), their single timer wheel, the flush
pass that writes every connection touched in a loop iteration once, and the bounds on what waits for slow readers.
It is the core's `Endpoint` here: the core's answers (SEND_ACKs, published messages, SYNC plans, reads, admission
verdicts, frames for a connection) arrive as method calls, from the core itself in one process or from the link.
Each connection's delivery window lives here, driven by the engine's delivery side (`Outbound`).

Connections are known to the core by `sid`, a number this gateway gives each connection (never reused while it
runs). A new connection is admitted by the core first (the host's limits); until the verdict arrives it is not read.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from kefu.protocol.crypto import Suite
from kefu.protocol.delivery import DeliveryWindow
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionClosed, ConnectionTerminated, HandshakeComplete
from kefu.protocol.frames import Flag, Frame, Goaway, Send, SendAck
from kefu.protocol.handshake import HandshakeKind, ServerConfig

from .. import log as logmod
from ..engine.audit import NO_AUDIT, Action, AuditTrail
from ..engine.messages import Outgoing, SendResult
from ..engine.ports import CorePort, ResumePlan
from ..engine.presence import Presence
from ..engine.refusals import RefusalLog, ThrottledLog
from ..engine.streams import Outbound
from .admission import MAX_HELD, HandshakeAdmission, measure_costs
from .session import Session
from .timers import TimerWheel

__all__ = ["Gateway", "printable"]

AUTH_LOG_PER_S = 5.0
AUTH_LOG_BURST = 20.0
ERROR_LOG_PER_S = 5.0
ERROR_LOG_BURST = 20.0
"""conn.error lines (a connection ended for bad input or a protocol error): a peer can open connections and send
garbage as fast as it likes, so like failed logins these are bounded per gateway; every such end is still counted by
code in kefu_errors."""
CLAIMED_ID_LOGGED = 64
"""Characters of a claimed app id that a log line shows (an app id may be 255 bytes of anything printable)."""


def printable(text: str, limit: int = CLAIMED_ID_LOGGED) -> str:
    """`text` safe for one log line: non-printable characters escaped (repr-style), cut at `limit` characters."""
    shown = text if text.isprintable() else text.encode("unicode_escape").decode("ascii")
    return shown if len(shown) <= limit else shown[:limit] + "..."


class Gateway:
    """The connections of one process and the core's `Endpoint` for them."""

    def __init__(
        self,
        *,
        config: Any,
        server_config: ServerConfig,
        loop: asyncio.AbstractEventLoop,
        metrics: Any = None,
        name: str = "gateway",
        cores_per_gateway: float = 1.0,
    ) -> None:
        self.config = config
        self.cores_per_gateway = cores_per_gateway
        """The host's usable cores over its gateways: this gateway's part of the host-wide handshake budget."""
        self.server_config = server_config
        self.loop = loop
        self.metrics = metrics
        self.name = name
        self.core: CorePort = _Unattached()
        """Where requests go; attached by the wiring (`attach`)."""
        self.outbound = Outbound(
            self.core,
            defer=self.defer,
            observe=self._observe_delivery,
            count_retries=self._count_retries,
            clock=self.now,
        )
        self.wheel = TimerWheel(loop)
        self.sessions: dict[int, Session] = {}
        self._users: Presence[Session] = Presence()
        self._next_sid = 1
        self.draining = False
        self.handshaking = 0
        self.handshakes = 0
        """Handshakes completed here since start (each worker's share of the host's handshakes)."""
        self.buffered_total = 0
        self.bytes_in = self.bytes_out = 0
        self.deferred: set[Session] = set()
        self._dirty: list[Session] = []
        """Sessions with frames queued or deadlines to re-arm, flushed in one pass (`flush_soon`)."""
        self._flush_armed = False
        self._offset = time.time() - loop.time()
        self._connections: dict[str, Any] = {}
        budget = config.limits.handshake_cpu_share * cores_per_gateway
        self.admission = HandshakeAdmission(budget, measure_costs(), clock=loop.time)
        self.held_back: set[Session] = set()
        """Connections held back until their address may ask for a handshake again (`hold_back`)."""
        """The handshake budget (`admit_handshake`), in CPU seconds measured on this process at start."""
        self._auth_log = ThrottledLog("conn.auth_failed", AUTH_LOG_PER_S, AUTH_LOG_BURST, loop.time, logmod.warning)
        self._error_log = ThrottledLog("conn.error", ERROR_LOG_PER_S, ERROR_LOG_BURST, loop.time, logmod.event)
        self.refusals = RefusalLog(loop.time)
        """Requests this gateway refuses itself (its per-connection rate limit), logged at info at a bounded rate."""
        self.audit: AuditTrail = NO_AUDIT
        """Where failed logins are tallied (an entry per claimed app id a minute, with a count; set by the runtime)."""

    def attach(self, core: CorePort) -> None:
        """Send requests to `core` from now on."""
        self.core = self.outbound.core = core

    def reconfigure(self, config: Any) -> None:
        """SIGHUP: new limits for existing and future connections."""
        self.config = config
        self.admission.configure(config.limits.handshake_cpu_share * self.cores_per_gateway)

    # --- clock and timers -----------------------------------------------------------------------------------

    def now(self) -> float:
        """Wall-clock seconds, read from the loop's monotonic clock (tickets and deadlines share it)."""
        return self.loop.time() + self._offset

    def wheel_schedule(self, session: Session, when: float | None) -> None:
        """Arm `session`'s single deadline (wall-clock seconds) in the timer wheel."""
        self.wheel.schedule(session, None if when is None else when - self._offset)

    # --- connections ----------------------------------------------------------------------------------------

    def protocol_factory(self) -> Session:
        """A new connection's protocol (for create_server)."""
        return Session(self)

    def admit(self, session: Session, address: str) -> bool:
        """A new connection: refused at once if this process is draining or has too many handshakes running, else
        registered and put to the core (`admitted` answers, maybe before this returns)."""
        if self.draining or self.handshaking >= self.config.limits.max_handshakes_in_progress:
            self._count("refused_connections")
            return False
        sid = self._next_sid
        self._next_sid += 1
        session.sid = sid
        self.sessions[sid] = session
        self.handshaking += 1
        session.admission_pending = True
        self.core.admit(sid, address)
        return True

    def admitted(self, sid: int, code: ErrorCode | None) -> None:
        """The core's verdict on a new connection."""
        session = self.sessions.get(sid)
        if session is None:
            return
        if code is None:
            session.admit()
        else:
            self._count("refused_connections")
            session.refuse()

    def hold_back(self, session: Session, address: str) -> float:
        """A new connection from an address that was told to wait (section 5.9): how long to hold it, unread, before
        handling it (0: at once). -1: drop it now (this gateway holds MAX_HELD connections already)."""
        wait = self.admission.early_wait(address)
        if wait <= 0:
            return 0.0
        if self.metrics is not None:
            self.metrics.handshake("none", "refused")
        if len(self.held_back) >= MAX_HELD:
            return -1.0
        self.held_back.add(session)
        return wait

    def admit_handshake(self, address: str, suite: Suite, kind: HandshakeKind) -> Goaway | None:
        """May a handshake from `address` go on (None), or the GOAWAY refusing it (section 5.9)."""
        refusal = self.admission.check(address, suite, kind)
        if refusal is not None and self.metrics is not None:
            self.metrics.handshake(suite.name.lower(), "refused")
        return refusal

    def new_window(self) -> DeliveryWindow:
        """A delivery window with the configured bounds."""
        d = self.config.delivery
        return DeliveryWindow(d.inflight_window, d.retry_initial_ms / 1000, d.retry_max_ms / 1000)

    def on_ready(self, session: Session, event: HandshakeComplete) -> None:
        """Handshake done: the connection now belongs to its user, here and at the core."""
        self.handshaking -= 1
        self.handshakes += 1
        self._users.add(session.user, session)
        suite = event.suite.name.lower()
        session.suite_name = suite
        if self.metrics is not None:
            self.metrics.handshake(suite, "resumed" if event.resumed else "ok")
            self._gauge(suite).inc()
        logmod.event("conn.ready", peer=session.peer, app=session.user, suite=suite, resumed=event.resumed)
        self.core.opened(session.sid, session.user)

    def on_closed(self, session: Session, event: ConnectionClosed | ConnectionTerminated) -> None:
        """The protocol core closed the connection (cleanly or not); the flush writes what is left and closes."""
        if isinstance(event, ConnectionTerminated):
            if not event.by_peer:
                if event.code is ErrorCode.AUTH_FAILED:
                    self._auth_failed(session, event.reason)
                elif event.code is ErrorCode.OVERLOADED and not session.ready:
                    pass  # a refused handshake: counted (kefu_handshakes{result="refused"}), not a log line each
                else:
                    self._error_log(peer=session.peer, app=session.user, code=event.code.name, reason=event.reason)
                self.count_error(event.code)
            if not session.ready and self.metrics is not None and event.code is not ErrorCode.OVERLOADED:
                timeout = event.code is ErrorCode.HANDSHAKE_TIMEOUT
                named = session.conn.suite if session.conn is not None else None
                suite = named.name.lower() if named is not None else "none"
                self.metrics.handshake(suite, "timeout" if timeout else "failed")

    def _auth_failed(self, session: Session, why: str) -> None:
        """A failed login stands out in the log (warning): the address, the app id it claimed and why it failed, at
        most AUTH_LOG_BURST lines at once and AUTH_LOG_PER_S a second after that; the lines left out are counted in
        the next one, so that a guessing peer cannot flood the journal. A login that failed (not a session the
        operator ended, which the operator's command records) is tallied in the audit trail."""
        claimed = session.conn.claimed_app_id if session.conn is not None else ""
        if not session.ready:
            note = f"{why} from {session.address}"
            self.audit.tally(printable(claimed), Action.AUTH_FAILED, "", ErrorCode.AUTH_FAILED.name, note)
            if self.metrics is not None:
                self.metrics.auth_failed(why)
        self._auth_log(peer=session.peer, code=ErrorCode.AUTH_FAILED.name, claimed_app=printable(claimed), reason=why)

    def forget(self, session: Session) -> None:
        """The transport is gone."""
        if self.sessions.pop(session.sid, None) is not None:
            if not session.ready:
                self.handshaking -= 1
            elif self.metrics is not None:
                self._gauge(session.suite_name).dec()
            self.core.closed(session.sid)
        self.deferred.discard(session)
        self.held_back.discard(session)
        if session.ready:
            self._users.discard(session.user, session)
        self.outbound.forget(session)
        self.wheel.cancel(session)

    def internal_error(self, session: Session, exc: Exception) -> None:
        """An unexpected exception while serving one connection (a bug): log it with its traceback."""
        logmod.exception("conn.internal_error", peer=session.peer, app=session.user, error=repr(exc))
        self.count_error(ErrorCode.INTERNAL_ERROR)

    # --- the core's answers (Endpoint) ------------------------------------------------------------------------

    def submitted(self, sid: int, send: Send, result: SendResult, cursor: int) -> None:
        """A SEND's outcome: its SEND_ACK; a device's own message is never delivered back to it."""
        session = self.sessions.get(sid)
        if session is None:
            return
        message = result.message
        if result.status != ErrorCode.OK or message is None:
            session.send(refusal(send, ErrorCode(result.status)))
            return
        session.send(
            SendAck(
                send.client_msg_id,
                0,
                message.server_msg_id,
                message.conversation_id,
                message.seq,
                message.timestamp_ms,
                request_id=send.request_id,
                flags=Flag.DUPLICATE if result.duplicate else 0,
            )
        )
        if not result.duplicate:
            self.outbound.own(session, message.conversation_id, message.seq, cursor)

    def publish(self, message: Outgoing, recipients: Sequence[tuple[str, int]], origin: int, t0: float) -> None:
        """A durable message for the devices here of `recipients`, except connection `origin`."""
        self.outbound.recent.add(message)
        offer, by_user = self.outbound.offer, self._users.by_user
        for user, cursor in recipients:
            devices = by_user.get(user)
            if devices is None:
                continue
            for session in devices if isinstance(devices, set) else (devices,):
                if session.sid != origin:
                    offer(session, message, cursor, t0)

    def send(self, sid: int, frame: Frame) -> None:
        """A frame from the core for one connection."""
        session = self.sessions.get(sid)
        if session is not None:
            session.send(frame)

    def send_encoded(self, sid: int, raw: bytes) -> None:
        """A frame the core encoded (over a link) for one connection."""
        session = self.sessions.get(sid)
        if session is not None:
            session.send_encoded(raw)

    def held(self) -> list[tuple[int, str, str]]:
        """(sid, address, user) of every admitted connection ("" user: in its handshake), for a core that restarted."""
        return [
            (sid, session.address, session.user if session.ready else "")
            for sid, session in self.sessions.items()
            if not session.admission_pending
        ]

    def resume(self, sid: int, request_id: int, conversation_id: int, plans: Sequence[ResumePlan]) -> None:
        """A SYNC's plan: restart the streams, send their first window, then SYNC_DONE."""
        session = self.sessions.get(sid)
        if session is not None:
            self.outbound.resume(session, request_id, conversation_id, plans)

    def fetched(self, ticket: int, messages: Sequence[Outgoing]) -> None:
        """Messages for a catch-up or a retry."""
        self.outbound.fetched(ticket, messages)

    # --- lifecycle --------------------------------------------------------------------------------------------

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
        for session in list(self.sessions.values()):
            session.send(frame)

    def close_all(self) -> None:
        """Close every connection cleanly (CLOSE, then the transport)."""
        for session in list(self.sessions.values()):
            session.close(ErrorCode.SHUTTING_DOWN, "server stopped")

    # --- the flush pass --------------------------------------------------------------------------------------

    def flush_soon(self, session: Session) -> None:
        """Flush `session` at the end of this loop iteration, in one pass with every other session marked.

        One loop callback per iteration instead of one per session: at 10,000 connections each message touches two
        sessions (the SEND_ACK and the DELIVER) and nothing batches per connection, so each message cost two loop
        handles; now a whole commit's worth is flushed by one."""
        self._dirty.append(session)
        if not self._flush_armed:
            self._flush_armed = True
            self.loop.call_soon(self._flush_dirty)

    def _flush_dirty(self) -> None:
        self._flush_armed = False
        sessions, self._dirty = self._dirty, []
        for session in sessions:
            session.flush()  # catches its own errors: one session's bug never skips the others

    # --- buffers for slow readers ------------------------------------------------------------------------------

    def account_buffered(self, before: int, after: int) -> None:
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

    def defer(self, session: Any) -> None:
        """`session` has more to deliver than it may buffer now: pump it again when buffers drain."""
        self.deferred.add(session)

    def _resume_deferred(self) -> None:
        sessions, self.deferred = self.deferred, set()
        for session in sessions:
            if not session.write_paused:
                self.outbound.pump_all(session)

    # --- metrics ---------------------------------------------------------------------------------------------

    def health(self) -> dict[str, Any]:
        """This gateway's part of /healthz."""
        return {"connections": len(self.sessions), "handshakes": self.handshakes, "draining": self.draining}

    def _gauge(self, suite: str) -> Any:
        gauge = self._connections.get(suite)
        if gauge is None and self.metrics is not None:
            gauge = self._connections[suite] = self.metrics.connection_gauge(suite, "open")
        return gauge

    def count_in(self, nbytes: int) -> None:
        """Bytes read from clients (plain ints here; `publish_counters` hands them to Prometheus, whose counters take
        a lock per increment: 2.4 % of the server's samples when counted per read)."""
        self.bytes_in += nbytes

    def count_out(self, nbytes: int) -> None:
        """Bytes written to clients (see count_in)."""
        self.bytes_out += nbytes

    def publish_counters(self) -> None:
        """Move the byte counts and the protocol core's frame counts into the metrics (once a second)."""
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

    def _count_retries(self, n: int) -> None:
        self._count("retries", n)

    def count_error(self, code: ErrorCode) -> None:
        """Count a protocol error by its wire code."""
        if self.metrics is not None:
            self.metrics.error(code.name)

    def refused(self, user: str, request: Frame, code: ErrorCode) -> None:
        """Count a request this gateway refused by its wire code and log it (`RefusalLog`)."""
        self.count_error(code)
        self.refusals.refused(user, request, code)

    def _observe_delivery(self, seconds: float) -> None:
        if self.metrics is not None:
            self.metrics.observe("delivery", seconds)


def refusal(send: Send, code: ErrorCode) -> SendAck:
    """A SEND_ACK carrying an error instead of a sequence number."""
    return SendAck(send.client_msg_id, code, 0, send.conversation_id, 0, 0, request_id=send.request_id)


class _Unattached:
    """The core port before the wiring attaches one: every request is a bug."""

    def _fail(self, *args: object) -> None:
        raise RuntimeError("gateway used before a core was attached")

    admit = opened = closed = submit = cursor = sync = fetch = service = _fail
