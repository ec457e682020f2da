"""The asyncio client (spec/PROTOCOL.md section 4): send, receive, fetch history, reconnect.

Theory of operation:

- A `Client` owns at most one live `Link` (connection.py) at a time and survives the loss of any of them.
  Everything that must outlive a connection lives here: pending sends (outbox.py), per-conversation
  watermarks, acknowledgements not yet written and the delivery queue (inbox.py), history fetches in
  progress, and the latest resumption ticket.
- When a connection's handshake completes, the client re-sends SYNC(conversation, handled, 0, 0) for every
  conversation it knows plus SYNC(0, 0, 0, 0), re-issues fetches in progress, and puts every pending SEND
  on the wire again with its original client_msg_id (the server stores each once and answers a repeat
  with the original receipt).
- When a connection is lost (or a GOAWAY drains it) and `reconnect` is on, one task reconnects: it waits
  each delay of the backoff schedule (GOAWAY's parameters once one arrived, else the defaults), offers
  exactly the configured suites every time, resumes with the latest ticket when it has one, and stops only
  on refusals that retrying cannot cure (bad credentials, no common suite, unpinned server key). A session the
  server ends with AUTH_FAILED (an operator revoked the app, retired its client key or ended its sessions) is
  reconnected at once and without the ticket, so that the credentials are checked again: a refusal then ends the
  client with CredentialsRefused instead of retrying forever.
- The message last handed to the app is "in hand": it is marked handled, and its acknowledgement queued,
  when the app asks for the next message, or when the client is closed without an exception (implicit
  acknowledgement, the default). With `explicit_ack` a message is marked handled only when the app awaits
  `Message.ack()`, in any order (inbox.py keeps what was given out and not acked); after a reconnect the
  messages not acked are given to the app again. The link's per-iteration flush writes all queued
  acknowledgements as one DELIVER_ACK.
- Connection callbacks (`connected_cb`, `disconnected_cb`, `reconnected_cb`, `error_cb`, as in nats-py) are
  called on the loop; a coroutine function's call runs as a task, which close() waits for (briefly). An
  exception a callback raises is logged and passed to `error_cb`.
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping, Sequence
from types import EllipsisType, TracebackType
from typing import Any

from kefu.protocol.crypto import Suite
from kefu.protocol.errors import ErrorCode
from kefu.protocol.events import ConnectionTerminated, Event, HandshakeComplete, TicketReceived
from kefu.protocol.frames import (
    ContentType,
    Deliver,
    DeliverAck,
    Error,
    Flag,
    Frame,
    Goaway,
    Opened,
    PskMode,
    QueuePosition,
    Result,
    SearchResult,
    SendAck,
    Sentiment,
    Sync,
    SyncDone,
)  # fmt: skip
from kefu.protocol.handshake import ClientConfig

from .connection import Clock, Link
from .dialer import Dialer
from .errors import (
    NOT_RETRIED,
    REAUTHENTICATE,
    ClientClosed,
    ClientError,
    ConnectError,
    ConnectionLost,
    CredentialsRefused,
    RequestRefused,
    SendRefused,
    SendTimeout,
    ServerBusy,
    Timeout,
)  # fmt: skip
from .fetches import Fetch, Resume
from .inbox import AckCoalescer, Cursors, Inbox, Verdict
from .messages import Message, SendReceipt
from .options import ClientOptions, decode_secret
from .outbox import Outbox, PendingSend, build_send
from .service import ServiceApi

CLOSE_TIMEOUT_S = 2.0
"""close() waits this long for the server's CLOSE before dropping the connection."""

MAX_FETCH_MESSAGES = 10_000
"""Largest `limit` of one history fetch (the server caps it lower by configuration)."""

MAX_CONCURRENT_FETCHES = 64
"""sync() calls in progress at once; further calls wait their turn."""

CALLBACK_DRAIN_S = 2.0
"""close() waits this long for connection callbacks still running, then cancels them."""

logger = logging.getLogger("kefu.client")


class Client:
    """An asyncio kefu client: one user (app id) on one device.

    Use it as ``async with Client(...) as client:``; `send()` returns once the message is durable, and
    ``async for message in client.deliveries():`` yields incoming messages in order, each once.
    """

    def __init__(
        self, host: str | None = None, port: int | None = None, *, options: ClientOptions | None = None, **fields: Any
    ) -> None:
        """Configure a client; nothing happens until `connect()`.

        ``Client(host, port, app_id=..., app_secret=..., server_pins=...)``: the keywords are the fields of
        `ClientOptions` (see there). ``Client(options=...)`` takes a prepared `ClientOptions`, to which `host`, `port`
        and keywords, when given, are applied. See also `Client.from_url`. Invalid options are a ValueError, unknown
        keywords a TypeError.
        """
        self.options = ClientOptions.build(host, port, options, fields)
        """The client's configuration (its repr never shows the secret)."""
        opts = self.options
        self.app_id = opts.app_id
        config = ClientConfig(
            opts.app_id,
            opts.server_pins,
            opts.suites,
            app_secret=decode_secret(opts.app_secret) if opts.app_secret is not None else None,
            client_key=opts.client_key,
            keepalive_ms=round(opts.keepalive_s * 1000),
            psk_mode=PskMode.PSK_WITH_ECDHE if opts.psk_with_ecdhe else PskMode.PSK_ONLY,
        )
        self._dialer = Dialer(
            opts.host, opts.port, config, local_addr=opts.local_addr, connect_timeout=opts.connect_timeout
        )
        self._reconnect = opts.reconnect
        self._explicit_ack = opts.explicit_ack
        self._callback_tasks: set[asyncio.Task[None]] = set()
        self._announced: Link | None = None
        """The connection connected_cb/reconnected_cb reported (disconnected_cb reports its loss, and no other's)."""
        self._clock: Clock | None = None
        self._link: Link | None = None
        self._started = False
        self._closed = False
        self._failure: ClientError | None = None
        self._reconnect_task: asyncio.Task[None] | None = None
        self._reconnects = 0
        self._ended_by_server: ConnectionTerminated | None = None
        """The server's AUTH_FAILED that ended the last connection, until a reconnection is accepted."""
        self._suite: Suite | None = None
        self._resumed = False
        self._outbox = Outbox()
        self._cursors = Cursors()
        self._acks = AckCoalescer()
        self._inbox = Inbox()
        self._in_hand: Message | None = None
        self._fetches: list[Fetch] = []
        self._fetch_slots = asyncio.Semaphore(MAX_CONCURRENT_FETCHES)
        self.service = ServiceApi(self)
        """Customer-service requests and events (section 13)."""

    @classmethod
    def from_url(cls, url: str, **fields: Any) -> Client:
        """A client configured by a ``kefu://app:secret@host:port?pin=...`` URL (format: `kefu.client.options`);
        keywords add `ClientOptions` fields or replace the URL's. A malformed URL is a ValueError that does not
        contain the URL."""
        return cls(options=ClientOptions.from_url(url, **fields))

    def __repr__(self) -> str:
        state = "closed" if self._closed else "connected" if self.connected else "disconnected"
        return f"<Client {self.app_id!r} at {self._dialer.host}:{self._dialer.port} {state}>"

    # --- public state -----------------------------------------------------------------------------------

    @property
    def connected(self) -> bool:
        """A connection is up and usable right now."""
        return self._link is not None and self._link.usable

    @property
    def suite(self) -> Suite | None:
        """The suite of the current connection (None while disconnected)."""
        return self._suite if self._link is not None else None

    @property
    def resumed(self) -> bool:
        """The current connection resumed a session with a ticket (no certificate signature)."""
        return self._resumed and self._link is not None

    @property
    def reconnects(self) -> int:
        """Successful reconnections since connect()."""
        return self._reconnects

    # --- lifecycle --------------------------------------------------------------------------------------

    async def connect(self) -> None:
        """Open the first connection and complete the handshake.

        Raises a ConnectError subclass (AuthFailed, ServerNotTrusted, NoCommonSuite, ServerBusy, ConnectTimeout)
        carrying the wire code when the server refuses. The first connection is not retried, except after a refusal
        for load (ServerBusy), which is retried after the delay the server gives while `connect_timeout` allows.
        """
        if self._closed:
            raise ClientClosed("the client is closed")
        if self._started:
            raise ClientError("connect() was already called")
        if self._clock is None:
            self._clock = Clock(asyncio.get_running_loop())
        loop = self._clock.loop
        deadline = loop.time() + self._dialer.connect_timeout
        while True:
            try:
                self._announced = await self._dialer.dial(self, self._clock)
                break
            except ServerBusy:
                delay = self._dialer.refusal_delay()
                if delay is None or loop.time() + delay >= deadline:
                    raise
                await asyncio.sleep(delay)
        self._started = True
        self._notify(self.options.connected_cb)

    async def close(self) -> None:
        """Acknowledge the message in hand, send CLOSE and wait (briefly) for the server's CLOSE.

        Pending sends, fetches and `deliveries()` end with ClientClosed / end of iteration.
        """
        await self._shutdown(ack_in_hand=True)

    async def __aenter__(self) -> Client:
        await self.connect()
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        # Leaving on an exception: the message in hand was not handled, so it is not acknowledged.
        await self._shutdown(ack_in_hand=exc_type is None)

    # --- sending ----------------------------------------------------------------------------------------

    async def send(
        self,
        conversation_id: int,
        body: bytes | str,
        *,
        content_type: ContentType | int = ContentType.TEXT,
        metadata: Mapping[str, bytes] | None = None,
        to: Sequence[str] = (),
        client_msg_id: bytes | None = None,
        timeout: float | EllipsisType | None = ...,
    ) -> SendReceipt:
        """Send a message and return once the server has made it durable.

        `to` names the other members when this SEND creates the conversation (metadata "kefu.to").
        The message is retried transparently with the same `client_msg_id` across reconnects, after
        RATE_LIMITED, and on the next connection after SHUTTING_DOWN (a draining server); the server stores it
        once (a repeat returns the original receipt, `duplicate=True`).
        Raises SendRefused (with the server's code) when the server refuses it, SendTimeout after
        `timeout` seconds (by default the options' `send_timeout`, 30 s; None waits for ever), ClientClosed or
        ConnectionLost when the client ends first.
        """
        if isinstance(timeout, EllipsisType):
            timeout = self.options.send_timeout
        self._check_open()
        frame = build_send(
            conversation_id, body, content_type=content_type, metadata=metadata, to=to, client_msg_id=client_msg_id
        )
        cmid = frame.client_msg_id
        entry: PendingSend | None = None
        try:
            async with asyncio.timeout(timeout):
                entry = self._outbox.get(cmid)
                if entry is None:
                    future = asyncio.get_running_loop().create_future()
                    await self._outbox.wait_room(len(frame.body) + sum(len(m.value) for m in frame.metadata))
                    self._check_open()
                    entry = PendingSend(frame, future)
                    self._outbox.add(entry)
                    self._kick()
                return await asyncio.shield(entry.future)
        except TimeoutError as exc:
            if isinstance(exc, ClientError):
                raise
            raise SendTimeout(cmid) from None
        finally:
            if entry is not None and not entry.future.done():
                self._outbox.remove(cmid)  # abandoned by the caller (timeout, cancellation): stop retrying

    # --- receiving --------------------------------------------------------------------------------------

    def deliveries(self) -> AsyncIterator[Message]:
        """Incoming messages, in order per conversation, each exactly once.

        ``async for message in client.deliveries(): ...`` -- by default (implicit acknowledgement) a message
        is acknowledged to the server only after the loop body is done with it: when the next message is
        requested, or when the client is closed without an exception (leaving ``async with Client(...)``
        normally, or `close()`). A body that raises therefore leaves its message unacknowledged, and the
        server delivers it again on a later connection. An application that hands messages to other tasks
        sets ``explicit_ack=True`` and awaits `Message.ack()` when each is done: nothing is acknowledged
        before that, and the messages not acked when a connection is lost are given to it again (with
        `redelivery` set) after the reconnect. Use one consumer at a time. The iteration ends when the
        client is closed and raises ConnectionLost when the client can no longer reconnect.
        """
        return _Deliveries(self)

    async def receive(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after `timeout` seconds (or once closed); acknowledges the previous one."""
        try:
            async with asyncio.timeout(timeout):
                return await self._next_message()
        except TimeoutError as exc:
            if isinstance(exc, ClientError):
                raise
            return None

    async def sync(
        self,
        conversation_id: int,
        after_seq: int = 0,
        until_seq: int = 0,
        limit: int = 100,
        *,
        timeout: float | None = None,
    ) -> list[Message]:
        """Fetch history, or resume a live stream.

        until_seq > 0: the messages after_seq < seq <= until_seq (at most `limit`, fewer if the server caps
        it), in order; they are not acknowledged and do not pass through `deliveries()`. To read on, call
        again with after_seq = the last seq returned. until_seq == 0: ask the server to resume the live
        stream after `after_seq` (conversation 0: every conversation behind); returns [] once the server
        confirmed, the messages arrive through `deliveries()`.
        """
        self._check_open()
        if not 0 < limit <= MAX_FETCH_MESSAGES:
            raise ValueError(f"limit must be within 1..{MAX_FETCH_MESSAGES}")
        if until_seq and until_seq <= after_seq:
            raise ValueError("until_seq must be above after_seq (or 0 to resume the live stream)")
        async with self._fetch_slots:
            fetch = Fetch(conversation_id, after_seq, until_seq, limit, asyncio.get_running_loop().create_future())
            self._fetches.append(fetch)
            try:
                if self._link is not None and self._link.usable:
                    self._issue_fetch(self._link, fetch)
                async with asyncio.timeout(timeout):
                    await asyncio.shield(fetch.future)
            except TimeoutError as exc:
                if isinstance(exc, ClientError):
                    raise
                raise Timeout(f"SYNC of conversation {conversation_id} not answered in time") from None
            finally:
                self._fetches.remove(fetch)
        return fetch.result()

    async def _next_message(self) -> Message | None:
        self._mark_handled()
        if self._closed:
            return None
        message = await self._inbox.get()
        if message is not None and self._explicit_ack:
            self._cursors.hand_out(message.conversation_id, message.seq)
        else:
            self._in_hand = message
        link = self._link
        if link is not None and link.read_paused and self._inbox.below_low:
            link.resume_reading()
        return message

    def _mark_handled(self) -> None:
        message, self._in_hand = self._in_hand, None
        if message is None:
            return
        self._cursors.mark_handled(message.conversation_id, message.seq)
        self._queue_ack(message.conversation_id, message.seq)

    def _acknowledge(self, message: Message) -> None:
        """`Message.ack()` of a live message."""
        if self._closed:
            return
        if not self._explicit_ack:
            if message is self._in_hand:
                self._mark_handled()
            return
        upto = self._cursors.acknowledge(message.conversation_id, message.seq)
        if upto:
            self._queue_ack(message.conversation_id, upto)

    def _queue_ack(self, conversation_id: int, seq: int) -> None:
        self._acks.add(conversation_id, seq)
        if self._link is not None and self._link.ready:
            self._link.schedule_flush()

    # --- link events (LinkOwner) ------------------------------------------------------------------------

    def link_event(self, link: Link, event: Event | Frame) -> None:
        """Handle one event or frame of `link` (called by the link, in order)."""
        match event:
            case Deliver():
                if link is self._link:
                    self._on_deliver(link, event)
            case SendAck():
                self._on_send_ack(link, event)
            case SyncDone():
                self._on_sync_done(link, event)
            case HandshakeComplete():
                self._on_ready(link, event)
            case TicketReceived():
                self._dialer.keep_ticket(event.ticket)
            case Goaway():
                self._on_goaway(link, event)
            case Error():
                self._on_request_error(link, event)
            case Opened() | Result() | SearchResult() | QueuePosition() | Sentiment():
                self.service.on_frame(link, event)
            case _:
                pass  # PONG; CLOSE and failures are handled when the transport goes (link_lost)

    def link_flushing(self, link: Link) -> None:
        """Queue acknowledgements and pending sends on `link` before it writes."""
        if link is not self._link:
            return
        while len(self._acks):
            link.core.send(DeliverAck(self._acks.take()))
        if link.draining or link.write_paused:
            return
        for entry in self._outbox.take_unsent():
            request_id = link.next_request_id()
            link.requests[request_id] = entry
            entry.frame.request_id = request_id
            link.core.send(entry.frame)
        if self._outbox.has_unsent:
            link.schedule_flush()

    def link_writable(self, link: Link) -> None:
        """The transport drained: put what waits on the wire."""
        link.schedule_flush()

    def link_lost(self, link: Link) -> None:
        """A connection is gone: reconnect (or fail everything when the client may not)."""
        self.service.on_link_lost(link)
        if link is not self._link:
            return
        self._link = None
        self._resumed = False
        if link is self._announced:
            self._announced = None
            self._notify(self.options.disconnected_cb)
        for fetch in self._fetches:
            fetch.link = None
        if self._closed or self._failure is not None or not self._started:
            return  # (not started: the first connect() failed after the handshake; it raises, no retry)
        end = link.end
        if isinstance(end, ConnectionTerminated) and end.by_peer and end.code in REAUTHENTICATE:
            self._ended_by_server = end
            self._dialer.ticket = None  # a ticket would resume the very credentials the server just refused
        if not self._reconnect:
            code = end.code if end is not None else None
            self._fail(ConnectionLost(f"connection lost ({code.name if code else 'transport closed'})", code=code))
        elif self._reconnect_task is None or self._reconnect_task.done():
            self._reconnect_task = self._require_clock().loop.create_task(self._reconnect_loop())

    def _on_ready(self, link: Link, event: HandshakeComplete) -> None:
        if self._closed:
            link.close()
            return
        self._link = link
        self._suite = event.suite
        self._resumed = event.resumed
        if self._explicit_ack:  # what the app was given and did not ack comes again (inbox.py)
            self._cursors.rewind()
            self._inbox.discard()
        for conversation_id, handled in self._cursors.resume_points():
            self._request_resume(link, conversation_id, handled)
        self._request_resume(link, 0, 0)
        for fetch in self._fetches:
            self._issue_fetch(link, fetch)
        self._outbox.requeue_all()
        if self._inbox.above_high:
            link.pause_reading()
        link.schedule_flush()

    def _on_deliver(self, link: Link, frame: Deliver) -> None:
        fetch = self._fetch_for(link, frame)
        if fetch is not None:
            fetch.add(frame)
            # A labelled answer is the fetch's alone; an unlabelled one goes live too only if it keeps the
            # live stream gapless (else a later live DELIVER of a skipped seq would be dropped as duplicate).
            if frame.request_id or not self._cursors.extends(frame.conversation_id, frame.seq):
                return
        verdict = self._cursors.admit(frame.conversation_id, frame.seq)
        if verdict is Verdict.NEW:
            seen = self._explicit_ack and self._cursors.was_handed(frame.conversation_id, frame.seq)
            self._inbox.put(Message.from_deliver(frame, self._acknowledge, seen=seen))
            if self._inbox.above_high:
                link.pause_reading()
        elif verdict is Verdict.HANDLED:
            self._acks.add(frame.conversation_id, self._cursors.handled(frame.conversation_id))
            link.schedule_flush()

    def _fetch_for(self, link: Link, frame: Deliver) -> Fetch | None:
        """The fetch a DELIVER answers: by request id, or (servers that do not label) by range."""
        if frame.request_id:
            found = link.requests.get(frame.request_id)
            return found if isinstance(found, Fetch) and found.history else None
        if frame.flags & Flag.REDELIVERY:
            return next((f for f in self._fetches if f.covers(link, frame)), None)
        return None

    def _on_send_ack(self, link: Link, ack: SendAck) -> None:
        link.requests.pop(ack.request_id, None)
        entry = self._outbox.get(ack.client_msg_id)
        if entry is None:
            return  # settled already (an ack of an earlier attempt) or abandoned by its caller
        if ack.status == ErrorCode.OK:
            self._outbox.remove(ack.client_msg_id)
            if not entry.future.done():
                entry.future.set_result(SendReceipt.from_ack(ack))
        else:
            self._refused(entry, ack.status, "")

    def _refused(self, entry: PendingSend, code: int, reason: str) -> None:
        if code == ErrorCode.RATE_LIMITED and self._clock is not None:
            delay = entry.next_retry_delay()
            entry.retry = self._clock.loop.call_later(delay, self._retry_send, entry.client_msg_id)
            return
        if code == ErrorCode.SHUTTING_DOWN and self._reconnect:
            return  # the server drains (spec 4.10 item 10): it stays pending and goes again on the next connection
        self._outbox.remove(entry.client_msg_id)
        if not entry.future.done():
            entry.future.set_exception(SendRefused(code, reason))

    def _retry_send(self, client_msg_id: bytes) -> None:
        self._outbox.requeue(client_msg_id)
        self._kick()

    def _on_sync_done(self, link: Link, done: SyncDone) -> None:
        found = link.requests.pop(done.request_id, None)
        if isinstance(found, Fetch) and not found.future.done():
            found.future.set_result(None)

    def _on_request_error(self, link: Link, error: Error) -> None:
        found = link.requests.pop(error.request_id, None) if error.request_id else None
        if self.service.on_error(found, error.code, error.reason):
            return
        clock = self._clock
        retry = clock if error.code == ErrorCode.RATE_LIMITED else None
        match found:
            case PendingSend():
                self._refused(found, error.code, error.reason)
            case Fetch() if retry is not None:
                retry.loop.call_later(self._dialer.policy.initial, self._reissue, link, found)
            case Fetch():
                if not found.future.done():
                    found.future.set_exception(RequestRefused(error.code, error.reason))
            case Resume() if retry is not None:
                retry.loop.call_later(self._dialer.policy.initial, self._resume_again, link, found.conversation_id)
            case Resume() if error.code in (ErrorCode.FORBIDDEN, ErrorCode.NOT_FOUND):
                self._cursors.forget(found.conversation_id)
            case _:
                pass  # a non-fatal ERROR about nothing we wait for

    def _on_goaway(self, link: Link, goaway: Goaway) -> None:
        self._dialer.on_goaway(goaway)
        link.flush()  # acknowledgements still go out on this connection
        link.draining = True
        link.close(ErrorCode.OK, "goaway")

    # --- requests ---------------------------------------------------------------------------------------

    def _request_resume(self, link: Link, conversation_id: int, after_seq: int) -> None:
        request_id = link.next_request_id()
        link.requests[request_id] = Resume(conversation_id)
        link.send(Sync(conversation_id, after_seq, 0, 0, request_id=request_id))

    def _resume_again(self, link: Link, conversation_id: int) -> None:
        if link is self._link and link.usable:
            self._request_resume(link, conversation_id, self._cursors.handled(conversation_id))

    def _issue_fetch(self, link: Link, fetch: Fetch) -> None:
        request_id = link.next_request_id()
        link.requests[request_id] = fetch
        fetch.link = link
        limit = fetch.limit if fetch.history else 0
        link.send(Sync(fetch.conversation_id, fetch.after, fetch.until, limit, request_id=request_id))

    def _reissue(self, link: Link, fetch: Fetch) -> None:
        if link is self._link and link.usable and fetch in self._fetches:
            self._issue_fetch(link, fetch)

    def _kick(self) -> None:
        if self._link is not None and self._link.usable:
            self._link.schedule_flush()

    # --- connecting -------------------------------------------------------------------------------------

    async def _reconnect_loop(self) -> None:
        clock = self._require_clock()
        at_once = self._ended_by_server is not None  # authenticate again now: back within a round trip, or refused
        delays = self._dialer.schedule()  # endless
        while True:
            delay = next(delays)
            if not at_once:
                await asyncio.sleep(delay)
            at_once = False
            if self._closed:
                return
            try:
                link = await self._dialer.dial(self, clock)
            except ConnectError as exc:
                if exc.code in NOT_RETRIED:
                    self._fail(self._refusal(exc))
                    return
                self._notify_error(exc)
                if isinstance(exc, ServerBusy):
                    delays = self._dialer.schedule()  # the refusal's GOAWAY: its delay, then its backoff
                continue
            except Exception as exc:  # a bug must not end reconnecting silently
                self._fail(ConnectionLost(f"reconnecting failed: {exc!r}"))
                raise
            if link is self._link:
                self._reconnects += 1
                self._ended_by_server = None
                self._announced = link
                self._notify(self.options.reconnected_cb)
                return

    def _refusal(self, exc: ConnectError) -> ConnectionLost:
        """The error that ends the client when reconnecting is refused for good."""
        ended = self._ended_by_server
        if ended is not None and exc.code == ended.code:
            return CredentialsRefused(
                f"the server ended the session ({ended.code.name}: {ended.reason}) and refused the app again: {exc}",
                code=exc.code,
            )
        return ConnectionLost(f"reconnecting failed for good: {exc}", code=exc.code)

    def _fail(self, error: ClientError) -> None:
        """The client cannot go on: end every waiter with `error`."""
        self._failure = error
        self._fail_pending(error)
        self.service.fail(error)
        self._inbox.fail(error)
        self._notify_error(error)

    def _require_clock(self) -> Clock:
        if self._clock is None:
            raise ClientError("call connect() first")
        return self._clock

    # --- callbacks --------------------------------------------------------------------------------------

    def _notify(self, callback: Callable[[], Awaitable[None] | None] | None) -> None:
        """Call a connected/disconnected/reconnected callback (as a task when it is a coroutine function)."""
        if callback is not None:
            self._run_callback(callback, ())

    def _notify_error(self, error: BaseException) -> None:
        callback = self.options.error_cb
        if callback is not None:
            self._run_callback(callback, (error,))

    def _run_callback(self, callback: Callable[..., Awaitable[None] | None], args: tuple[BaseException, ...]) -> None:
        try:
            result = callback(*args)
        except Exception as exc:
            self._callback_failed(callback, exc)
            return
        if inspect.isawaitable(result):
            task = self._require_clock().loop.create_task(_awaited(result))
            self._callback_tasks.add(task)
            task.add_done_callback(lambda done: self._callback_done(callback, done))

    def _callback_done(self, callback: Callable[..., object], task: asyncio.Task[None]) -> None:
        self._callback_tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            exc = task.exception()
            if isinstance(exc, Exception):
                self._callback_failed(callback, exc)

    def _callback_failed(self, callback: Callable[..., object], exc: Exception) -> None:
        logger.error("kefu client %r: callback %r raised %r", self.app_id, callback, exc)
        if callback is not self.options.error_cb:
            self._notify_error(exc)

    async def _drain_callbacks(self) -> None:
        pending = set(self._callback_tasks)
        if not pending:
            return
        _done, late = await asyncio.wait(pending, timeout=CALLBACK_DRAIN_S)
        for task in late:
            task.cancel()

    def _fail_pending(self, error: ClientError) -> None:
        for entry in self._outbox.drain():
            if not entry.future.done():
                entry.future.set_exception(error)
        for fetch in self._fetches:
            if not fetch.future.done():
                fetch.future.set_exception(error)

    def _check_open(self) -> None:
        if self._closed:
            raise ClientClosed("the client is closed")
        if isinstance(self._failure, ConnectionLost):  # its own type (CredentialsRefused stays itself), a fresh one
            raise type(self._failure)(str(self._failure), code=self._failure.code) from self._failure
        if self._failure is not None:
            raise ConnectionLost(str(self._failure)) from self._failure
        if not self._started:
            raise ClientError("call connect() first")

    async def _shutdown(self, *, ack_in_hand: bool) -> None:
        if self._closed:
            return
        self._closed = True
        if ack_in_hand:
            self._mark_handled()
        task = self._reconnect_task
        if task is not None and not task.done():
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        link = self._link
        if link is not None:
            link.close()
            await self._wait_lost(link)
        self._link = None
        self._fail_pending(ClientClosed("the client was closed"))
        self.service.fail(ClientClosed("the client was closed"))
        self._inbox.close()
        await self._drain_callbacks()

    @staticmethod
    async def _wait_lost(link: Link) -> None:
        try:
            async with asyncio.timeout(CLOSE_TIMEOUT_S):
                await asyncio.shield(link.lost)
        except TimeoutError:
            link.abort()
            with contextlib.suppress(TimeoutError):
                async with asyncio.timeout(CLOSE_TIMEOUT_S):
                    await asyncio.shield(link.lost)


async def _awaited(result: Awaitable[None]) -> None:
    await result


class _Deliveries(AsyncIterator[Message]):
    """The async iterator of `Client.deliveries()`."""

    __slots__ = ("_client",)

    def __init__(self, client: Client) -> None:
        self._client = client

    def __aiter__(self) -> _Deliveries:
        return self

    async def __anext__(self) -> Message:
        message = await self._client._next_message()
        if message is None:
            raise StopAsyncIteration
        return message
