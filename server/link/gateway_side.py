"""A gateway's end of its link: the core as the gateway's `CorePort`, and the core's answers as calls on the gateway.

Theory of operation: every request that expects an answer (ADMIT, SUBMIT, SYNC, FETCH, a service request) is kept
until the answer arrives. When the link is lost (the core died), requests wait; when the supervisor hands over a link
to the restarted core (`attach`), the gateway says HELLO, RESTOREs the connections it holds (so that the core knows who
is online again), and sends every request still unanswered again. A SEND sent again keeps its client_msg_id, so the
core stores it once (it answers DUPLICATE if the message was made durable before the crash); reads are repeatable;
cursor advances made meanwhile are sent once, the latest per (user, conversation). So a core restart costs the
clients latency, not errors.

What waits for a core that is down is bounded (MAX_WAITING_SENDS): past it a SEND is refused at once with
STORAGE_UNAVAILABLE, which a client retries.

Cursor advances are merged: a run of them with no other frame between leaves as one CURSOR frame per (user,
conversation), the highest seq, when the next other frame is queued or at the link's write at the end of the loop
iteration. Every other frame thus reaches the core after exactly the advances made before it, as when each advance
went at once, and the core keeps the highest seq of a cursor anyway, so the merged run leaves the same state. A busy
gateway makes runs of them: the SEND_ACKs and DELIVERs of one conversation's commit batch each move its cursors.
"""

from __future__ import annotations

import asyncio
import os
import socket
from collections.abc import Callable
from typing import Protocol

from kefu.protocol.errors import ErrorCode
from kefu.protocol.frames import HEADER, Frame, Send, Sync

from .. import log as logmod
from ..engine.messages import Outgoing, SendResult, StoredMessage
from ..engine.ports import Endpoint
from . import frames as lf
from .channel import Channel

__all__ = ["MAX_WAITING_SENDS", "CoreLink", "GatewayState"]

MAX_WAITING_SENDS = 200_000
"""SENDs waiting for the core's answer, across every connection of the gateway: a few seconds of a busy host. Past it
(the core is down, or far behind) a SEND is refused at once with STORAGE_UNAVAILABLE."""
_REQUEST_ID = HEADER.size - 4
"""Offset of request_id in a kefu frame's header."""


class GatewayState(Protocol):
    """What the link needs of its gateway besides the Endpoint answers: the connections it holds."""

    def held(self) -> list[tuple[int, str, str]]:
        """(sid, address, user) of every admitted connection ("" user: still in its handshake)."""

    def send_encoded(self, sid: int, raw: bytes) -> None:
        """A kefu frame, already encoded, for connection `sid`."""


class CoreLink:
    """The core, seen from one gateway over its link (`CorePort`)."""

    def __init__(
        self,
        endpoint: Endpoint,
        state: GatewayState,
        loop: asyncio.AbstractEventLoop,
        *,
        gateway: int,
        on_lost: Callable[[str], None] | None = None,
    ) -> None:
        self._endpoint = endpoint
        self._state = state
        self._loop = loop
        self.gateway = gateway
        self._on_lost = on_lost
        self.channel: Channel | None = None
        self._closing = False
        self._admits: dict[int, str] = {}
        self._sends: dict[tuple[int, bytes], tuple[Send, float]] = {}
        self._syncs: dict[tuple[int, int], tuple[Sync, int]] = {}
        self._fetches: dict[int, lf.Fetch] = {}
        self._services: dict[tuple[int, int], Frame] = {}
        self._asked: dict[int, int] = {}
        """Connections that have asked a SEND, SYNC or service request since their last answer (so that `closed` scans
        the waiting requests only for those)."""
        self._cursors: dict[tuple[str, int], int] = {}
        """Cursor advances made while the link was down, the latest per (user, conversation)."""
        self._advances: dict[tuple[str, int], int] = {}
        """Cursor advances of this loop iteration, not yet queued on the link: the highest per (user, conversation)."""

    @property
    def up(self) -> bool:
        """True while a link to a core is open."""
        return self.channel is not None

    @property
    def waiting(self) -> int:
        """Requests sent (or to send) and not answered yet."""
        return len(self._admits) + len(self._sends) + len(self._syncs) + len(self._fetches) + len(self._services)

    # --- the link's life --------------------------------------------------------------------------------------

    async def attach(self, sock: socket.socket) -> None:
        """Use a new link (to a core that just started): introduce this gateway and send everything unanswered."""
        channel = Channel(self._loop, self._on_frame, lambda reason: self._lost(channel, reason))
        channel.before_flush = self._send_advances
        await self._loop.create_unix_connection(lambda: channel, sock=sock)
        self._keep_advances()  # made for the old link: sent after this one's RESTOREs, with the others kept
        old, self.channel = self.channel, channel
        if old is not None:
            old.close("replaced by a new link")
        channel.send(lf.Hello(self.gateway, os.getpid()))
        for sid, address, user in self._state.held():
            channel.send(lf.Restore(sid, address, user))
        for (user, conversation_id), seq in self._cursors.items():
            channel.send(lf.CursorAdvance(user, conversation_id, seq))
        self._cursors.clear()
        for sid, address in self._admits.items():
            channel.send(lf.Admit(sid, address))
        for (sid, _), (send, t0) in self._sends.items():
            channel.send(lf.Submit(sid, int(t0 * 1e9), lf.carry(send)))
        for (sid, _), (sync, room) in self._syncs.items():
            channel.send(lf.SyncRequest(sid, room, lf.carry(sync)))
        for fetch in self._fetches.values():
            channel.send(fetch)
        for (sid, _), frame in self._services.items():
            channel.send(lf.Service(sid, lf.carry(frame)))
        logmod.event("link.attached", gateway=self.gateway, waiting=self.waiting)

    def _lost(self, channel: Channel, reason: str) -> None:
        if channel is not self.channel:
            return  # an older link, replaced since
        self.channel = None
        self._keep_advances()
        if self._closing:
            return
        logmod.warning("link.lost", gateway=self.gateway, reason=reason, waiting=self.waiting)
        if self._on_lost is not None:
            self._on_lost(reason)

    def close(self) -> None:
        """End the link (the gateway is stopping)."""
        self._closing = True
        if self.channel is not None:
            self.channel.flush()  # with the cursor advances waiting (before_flush)
            self.channel.close("gateway stopping")

    # --- CorePort ---------------------------------------------------------------------------------------------

    def admit(self, ticket: int, address: str) -> None:
        """See `CorePort.admit`."""
        self._admits[ticket] = address
        if self.channel is not None:
            self._send(lf.Admit(ticket, address))

    def opened(self, sid: int, user: str) -> None:
        """See `CorePort.opened` (while the link is down, RESTORE tells the next core)."""
        if self.channel is not None:
            self._send(lf.Opened(sid, user))

    def closed(self, sid: int) -> None:
        """See `CorePort.closed`: the connection's unanswered requests are dropped too."""
        self._admits.pop(sid, None)
        if self._asked.pop(sid, 0):  # most connections end with nothing unanswered: no scan then
            for key in [key for key in self._sends if key[0] == sid]:
                del self._sends[key]
            for table in (self._syncs, self._services):
                for other in [key for key in table if key[0] == sid]:
                    del table[other]
        if self.channel is not None:
            self._send(lf.Closed(sid))

    def submit(self, sid: int, send: Send, t0: float) -> None:
        """See `CorePort.submit`."""
        if len(self._sends) >= MAX_WAITING_SENDS:
            self._endpoint.submitted(sid, send, SendResult(int(ErrorCode.STORAGE_UNAVAILABLE), False, None, ()), 0)
            return
        self._sends[(sid, send.client_msg_id)] = (send, t0)
        self._asked[sid] = 1
        if self.channel is not None:
            self._send(lf.Submit(sid, int(t0 * 1e9), lf.carry(send)))

    def cursor(self, user: str, conversation_id: int, seq: int) -> None:
        """See `CorePort.cursor` (merged with the others of this loop iteration: see the module docstring)."""
        key = (user, conversation_id)
        if self.channel is not None:
            advances = self._advances
            if not advances:
                self.channel.arm()
            if seq > advances.get(key, 0):
                advances[key] = seq
        elif seq > self._cursors.get(key, 0):
            self._cursors[key] = seq

    def _send(self, frame: object) -> None:
        """Queue a frame on the link (up), after the cursor advances waiting."""
        assert self.channel is not None
        if self._advances:
            self._send_advances()
        self.channel.send(frame)

    def _send_advances(self) -> None:
        advances, channel = self._advances, self.channel
        if advances and channel is not None:
            for (user, conversation_id), seq in advances.items():
                channel.send(lf.CursorAdvance(user, conversation_id, seq))
            advances.clear()

    def _keep_advances(self) -> None:
        """The link is gone or replaced: the advances not sent yet wait with those made while it is down."""
        for key, seq in self._advances.items():
            if seq > self._cursors.get(key, 0):
                self._cursors[key] = seq
        self._advances.clear()

    def sync(self, sid: int, sync: Sync, room: int) -> None:
        """See `CorePort.sync`."""
        self._syncs[(sid, sync.request_id)] = (sync, room)
        self._asked[sid] = 1
        if self.channel is not None:
            self._send(lf.SyncRequest(sid, room, lf.carry(sync)))

    def fetch(self, ticket: int, conversation_id: int, after_seq: int, until_seq: int, limit: int) -> None:
        """See `CorePort.fetch`."""
        fetch = self._fetches[ticket] = lf.Fetch(ticket, conversation_id, after_seq, until_seq, limit)
        if self.channel is not None:
            self._send(fetch)

    def service(self, sid: int, frame: Frame) -> None:
        """See `CorePort.service`."""
        self._services[(sid, frame.request_id)] = frame
        self._asked[sid] = 1
        if self.channel is not None:
            self._send(lf.Service(sid, lf.carry(frame)))

    # --- the core's answers -----------------------------------------------------------------------------------

    def _on_frame(self, frame_type: int, payload: bytes) -> None:
        try:
            frame = lf.parse(frame_type, payload)
        except ValueError as exc:
            logmod.error("link.malformed", gateway=self.gateway, error=str(exc))
            if self.channel is not None:
                self.channel.close(f"malformed frame: {exc}")
            return
        self._dispatch(frame)

    def _dispatch(self, frame: object) -> None:
        endpoint = self._endpoint
        match frame:
            case lf.Publish(origin, t0_ns, conversation_id, seq, raw, recipients):
                message = Outgoing(conversation_id, seq, raw)
                endpoint.publish(message, [(r.user, r.cursor) for r in recipients], origin, t0_ns * 1e-9)
            case lf.Submitted() as done:
                self._submitted(done)
            case lf.FrameFor(sid, raw):
                if len(raw) >= HEADER.size:
                    request_id = int.from_bytes(raw[_REQUEST_ID : HEADER.size], "big")
                    if request_id:
                        self._services.pop((sid, request_id), None)
                        self._syncs.pop((sid, request_id), None)
                self._state.send_encoded(sid, raw)
            case lf.Fetched(ticket, conversation_id, items):
                if self._fetches.pop(ticket, None) is not None:
                    endpoint.fetched(ticket, [Outgoing(conversation_id, i.seq, i.frame) for i in items])
            case lf.Resume(sid, request_id, conversation_id, plans):
                self._syncs.pop((sid, request_id), None)
                resumed = [
                    (
                        p.conversation_id,
                        p.after_seq,
                        p.last_seq,
                        [Outgoing(p.conversation_id, i.seq, i.frame) for i in p.items],
                    )
                    for p in plans
                ]
                endpoint.resume(sid, request_id, conversation_id, resumed)
            case lf.Admitted(sid, code):
                if self._admits.pop(sid, None) is not None:
                    endpoint.admitted(sid, ErrorCode(code) if code else None)
            case _:
                logmod.error("link.unexpected", gateway=self.gateway, frame=type(frame).__name__)

    def _submitted(self, done: lf.Submitted) -> None:
        waiting = self._sends.pop((done.sid, done.client_msg_id), None)
        if waiting is None:
            return  # the connection went away meanwhile
        send = waiting[0]
        message = None
        if done.status == ErrorCode.OK:
            message = StoredMessage(
                done.conversation_id,
                done.seq,
                done.server_msg_id,
                done.timestamp_ms,
                "",
                done.client_msg_id,
                0,
                b"",
                (),
            )
        result = SendResult(done.status, bool(done.duplicate), message, ())
        self._endpoint.submitted(done.sid, send, result, done.cursor)
