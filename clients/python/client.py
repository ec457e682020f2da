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
  when the app asks for the next message, or when the client is closed without an exception. The link's
  per-iteration flush writes all queued acknowledgements as one DELIVER_ACK.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from types import TracebackType

from kefu.protocol.crypto import SigningKey, Suite
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
from kefu.protocol.handshake import MAX_KEEPALIVE_MS, MIN_KEEPALIVE_MS, ClientConfig

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
from .outbox import Outbox, PendingSend, build_send
from .service import ServiceApi

CLOSE_TIMEOUT_S = 2.0
"""close() waits this long for the server's CLOSE before dropping the connection."""

MAX_FETCH_MESSAGES = 10_000
"""Largest `limit` of one history fetch (the server caps it lower by configuration)."""

MAX_CONCURRENT_FETCHES = 64
"""sync() calls in progress at once; further calls wait their turn."""


class Client:
    """An asyncio kefu client: one user (app id) on one device.

    Use it as ``async with Client(...) as client:``; `send()` returns once the message is durable, and
    ``async for message in client.deliveries():`` yields incoming messages in order, each once.
    """

    def __init__(
        self,
        host: str,
        port: int,
        *,
        app_id: str,
        server_pins: Iterable[str],
        app_secret: bytes | None = None,
        client_key: SigningKey | None = None,
        suites: Sequence[Suite] = (Suite.NATIONAL,),
        keepalive_s: float = 30,
        reconnect: bool = True,
        psk_with_ecdhe: bool = False,
        local_addr: str | None = None,
        connect_timeout: float = 10,
    ) -> None:
        """Configure a client; nothing happens until `connect()`.

        `server_pins` are fingerprints of the server keys to trust. Authenticate with `app_secret` or
        `client_key`. `suites` are offered exactly as given, in order, on every connection (never fewer or
        weaker ones). `keepalive_s` (5..300) is the idle interval after which the client sends PING; 1.5
        intervals without traffic end the connection.
        `psk_with_ecdhe` adds a fresh key exchange to resumed handshakes (forward secrecy per connection).
        `local_addr` binds the source address (e.g. 127.0.0.x for load tests).
        """
        if not suites:
            raise ValueError("offer at least one suite")
        if app_secret is None and client_key is None:
            raise ValueError("need app_secret or client_key")
        if not MIN_KEEPALIVE_MS <= keepalive_s * 1000 <= MAX_KEEPALIVE_MS:
            raise ValueError(f"keepalive_s must be within {MIN_KEEPALIVE_MS // 1000}..{MAX_KEEPALIVE_MS // 1000} s")
        self.app_id = app_id
        config = ClientConfig(
            app_id,
            frozenset(server_pins),
            tuple(Suite(s) for s in suites),
            app_secret=app_secret,
            client_key=client_key,
            keepalive_ms=round(keepalive_s * 1000),
            psk_mode=PskMode.PSK_WITH_ECDHE if psk_with_ecdhe else PskMode.PSK_ONLY,
        )
        self._dialer = Dialer(host, port, config, local_addr=local_addr, connect_timeout=connect_timeout)
        self._reconnect = reconnect
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
                await self._dialer.dial(self, self._clock)
                break
            except ServerBusy:
                delay = self._dialer.refusal_delay()
                if delay is None or loop.time() + delay >= deadline:
                    raise
                await asyncio.sleep(delay)
        self._started = True

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
        content_type: int = ContentType.TEXT,
        metadata: Mapping[str, bytes] | None = None,
        to: Sequence[str] = (),
        client_msg_id: bytes | None = None,
        timeout: float | None = None,
    ) -> SendReceipt:
        """Send a message and return once the server has made it durable.

        `to` names the other members when this SEND creates the conversation (metadata "kefu.to").
        The message is retried transparently with the same `client_msg_id` across reconnects and after
        RATE_LIMITED; the server stores it once (a repeat returns the original receipt, `duplicate=True`).
        Raises SendRefused (with the server's code) when the server refuses it, SendTimeout after
        `timeout` seconds, ClientClosed or ConnectionLost when the client ends first.
        """
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

        ``async for message in client.deliveries(): ...`` -- a message is acknowledged to the server only
        after the loop body is done with it: when the next message is requested, or when the client is
        closed without an exception (leaving ``async with Client(...)`` normally, or `close()`). A body
        that raises therefore leaves its message unacknowledged, and the server delivers it again on a
        later connection. Use one consumer at a time. The iteration ends when the client is closed and
        raises ConnectionLost when the client can no longer reconnect.
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
        self._acks.add(message.conversation_id, message.seq)
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
            assert self._clock is not None
            self._reconnect_task = self._clock.loop.create_task(self._reconnect_loop())

    def _on_ready(self, link: Link, event: HandshakeComplete) -> None:
        if self._closed:
            link.close()
            return
        self._link = link
        self._suite = event.suite
        self._resumed = event.resumed
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
            self._inbox.put(Message.from_deliver(frame))
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
        retry = error.code == ErrorCode.RATE_LIMITED and self._clock is not None
        match found:
            case PendingSend():
                self._refused(found, error.code, error.reason)
            case Fetch() if retry:
                assert self._clock is not None
                self._clock.loop.call_later(self._dialer.policy.initial, self._reissue, link, found)
            case Fetch():
                if not found.future.done():
                    found.future.set_exception(RequestRefused(error.code, error.reason))
            case Resume() if retry:
                assert self._clock is not None
                self._clock.loop.call_later(
                    self._dialer.policy.initial, self._resume_again, link, found.conversation_id
                )
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
        assert self._clock is not None
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
                link = await self._dialer.dial(self, self._clock)
            except ConnectError as exc:
                if exc.code in NOT_RETRIED:
                    self._fail(self._refusal(exc))
                    return
                if isinstance(exc, ServerBusy):
                    delays = self._dialer.schedule()  # the refusal's GOAWAY: its delay, then its backoff
                continue
            except Exception as exc:  # a bug must not end reconnecting silently
                self._fail(ConnectionLost(f"reconnecting failed: {exc!r}"))
                raise
            if link is self._link:
                self._reconnects += 1
                self._ended_by_server = None
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
