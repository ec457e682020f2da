"""The core's end of one gateway's link: the gateway as the core's `Endpoint`, and its requests as calls on the core.

A malformed frame from a gateway is a bug in kefu itself (the link never leaves the host): the link is closed and
the gateway forgotten (`Core.endpoint_lost`); the supervisor restarts that gateway.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Sequence

from kefu.protocol.errors import ErrorCode, RemoteProtocolError
from kefu.protocol.frames import Frame, Send, Sync

from .. import log as logmod
from ..engine.core import Core
from ..engine.messages import Outgoing, SendResult
from ..engine.ports import ResumePlan
from . import frames as lf
from .channel import Channel

__all__ = ["GatewayLink"]

NS = 1e-9


class GatewayLink:
    """One gateway, seen from the core over its link."""

    def __init__(self, core: Core, loop: asyncio.AbstractEventLoop, on_lost: Callable[[GatewayLink], None]) -> None:
        self.core = core
        self.gateway = -1
        """The gateway's index (from its HELLO; -1 until then)."""
        self.pid = 0
        self._on_lost = on_lost
        self.channel = Channel(loop, self._on_frame, self._lost)

    def _lost(self, reason: str) -> None:
        logmod.event("link.lost", gateway=self.gateway, reason=reason)
        self.core.endpoint_lost(self)
        self._on_lost(self)

    def _on_frame(self, frame_type: int, payload: bytes) -> None:
        try:
            self._dispatch(lf.parse(frame_type, payload))
        except (ValueError, RemoteProtocolError) as exc:
            logmod.error("link.malformed", gateway=self.gateway, error=str(exc))
            self.channel.close(f"malformed frame: {exc}")
        except Exception as exc:  # a bug in the core must not take the link's other requests down with it
            self.core.background_error(exc)

    def _dispatch(self, frame: object) -> None:  # noqa: PLR0912 - one case per link frame type
        core = self.core
        match frame:
            case lf.Submit(sid, t0_ns, raw):
                send = lf.kefu_frame(raw)
                if type(send) is not Send:
                    raise ValueError("SUBMIT carries no SEND")
                core.submit(self, sid, send, t0_ns * NS)
            case lf.CursorAdvance(user, conversation_id, seq):
                core.cursor(user, conversation_id, seq)
            case lf.Fetch(ticket, conversation_id, after, until, limit):
                core.fetch(self, ticket, conversation_id, after=after, until=until, limit=limit)
            case lf.Admit(sid, address):
                core.admit(self, sid, address)
            case lf.Opened(sid, user):
                core.opened(self, sid, user)
            case lf.Closed(sid):
                core.closed(self, sid)
            case lf.SyncRequest(sid, room, raw):
                sync = lf.kefu_frame(raw)
                if type(sync) is not Sync:
                    raise ValueError("SYNC carries no SYNC")
                core.sync(self, sid, sync, room)
            case lf.Service(sid, raw):
                core.service(self, sid, lf.kefu_frame(raw))
            case lf.Restore(sid, address, user):
                core.restore(self, sid, address, user)
            case lf.Hello(gateway, pid):
                self.gateway, self.pid = gateway, pid
                logmod.event("link.hello", gateway=gateway, pid=pid)
            case _:
                raise ValueError(f"{type(frame).__name__} is not sent to the core")

    # --- Endpoint ---------------------------------------------------------------------------------------------

    def submitted(self, sid: int, send: Send, result: SendResult, cursor: int) -> None:
        """See `Endpoint.submitted`."""
        m = result.message
        seq, server_msg_id, timestamp_ms = (m.seq, m.server_msg_id, m.timestamp_ms) if m is not None else (0, 0, 0)
        done = lf.Submitted(
            sid, cursor, result.status, int(result.duplicate), send.request_id, send.client_msg_id,
            send.conversation_id, seq, server_msg_id, timestamp_ms,
        )  # fmt: skip
        self.channel.send(done)

    def publish(self, message: Outgoing, recipients: Sequence[tuple[str, int]], origin: int, t0: float) -> None:
        """See `Endpoint.publish`."""
        to = tuple(lf.Recipient(user, cursor) for user, cursor in recipients)
        self.channel.send(lf.Publish(origin, int(t0 * 1e9), message.conversation_id, message.seq, message.frame, to))

    def send(self, sid: int, frame: Frame) -> None:
        """See `Endpoint.send`."""
        self.channel.send(lf.FrameFor(sid, lf.carry(frame)))

    def resume(self, sid: int, request_id: int, conversation_id: int, plans: Sequence[ResumePlan]) -> None:
        """See `Endpoint.resume`."""
        wire = tuple(
            lf.Plan(conv, after, last, tuple(lf.Item(m.seq, m.frame) for m in first))
            for conv, after, last, first in plans
        )
        self.channel.send(lf.Resume(sid, request_id, conversation_id, wire))

    def admitted(self, ticket: int, code: ErrorCode | None) -> None:
        """See `Endpoint.admitted`."""
        self.channel.send(lf.Admitted(ticket, int(code) if code is not None else 0))

    def fetched(self, ticket: int, messages: Sequence[Outgoing]) -> None:
        """See `Endpoint.fetched`."""
        conversation_id = messages[0].conversation_id if messages else 0
        self.channel.send(lf.Fetched(ticket, conversation_id, tuple(lf.Item(m.seq, m.frame) for m in messages)))
