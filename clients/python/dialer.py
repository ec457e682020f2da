"""Reaching the server: one connection attempt, the resumption ticket, and the reconnect schedule.

Theory of operation: a `Dialer` holds what every connection attempt needs and what carries over between
them. `dial()` makes one attempt: TCP connect plus handshake within `connect_timeout`, offering exactly the
configured suites (never fewer or weaker ones on its own), resuming with the latest ticket when it has one.
Tickets are single-use, so a ticket is forgotten once offered; the server sends a fresh one on every
connection. `schedule()` is the backoff to wait before each reconnect attempt: the GOAWAY's parameters once
one arrived (its reconnect delay first, once), else the defaults (spec/PROTOCOL.md section 4.8).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Iterator
from dataclasses import replace

from kefu.protocol.frames import Goaway
from kefu.protocol.handshake import ClientConfig
from kefu.protocol.tickets import SessionTicket

from .backoff import Backoff
from .connection import Clock, Link, LinkOwner
from .errors import ClientError, ConnectError, ConnectTimeout


class Dialer:
    """Address, handshake configuration, latest ticket and reconnect policy of one client."""

    def __init__(
        self, host: str, port: int, config: ClientConfig, *, local_addr: str | None, connect_timeout: float
    ) -> None:
        self.host = host
        self.port = port
        self.config = config
        self.local_addr = (local_addr, 0) if local_addr else None
        self.connect_timeout = connect_timeout
        self.ticket: SessionTicket | None = None
        self.policy = Backoff()
        self._goaway_delay: float | None = None

    def keep_ticket(self, ticket: SessionTicket) -> None:
        """Remember the latest ticket, stamped with the wall-clock time of its arrival."""
        self.ticket = replace(ticket, received_at=time.time())

    def on_goaway(self, goaway: Goaway) -> None:
        """Adopt the backoff a GOAWAY asks for; its reconnect delay applies to the next reconnect only."""
        policy = Backoff.from_goaway(goaway)
        self.policy = policy.without_first()
        self._goaway_delay = policy.first

    def refusal_delay(self) -> float | None:
        """After a handshake refused for load: the wait its GOAWAY asks for (with jitter), once; else None."""
        return next(self.schedule()) if self._goaway_delay is not None else None

    def schedule(self) -> Iterator[float]:
        """The delays before each attempt of one reconnect (endless)."""
        policy = replace(self.policy, first=self._goaway_delay)
        self._goaway_delay = None
        return policy.delays()

    def _take_ticket(self) -> SessionTicket | None:
        ticket, self.ticket = self.ticket, None
        if ticket is None or ticket.expired(time.time()):
            return None
        return ticket

    async def dial(self, owner: LinkOwner, clock: Clock) -> Link:
        """One attempt: a Link whose handshake the server accepted, or a ConnectError."""
        link = Link(owner, replace(self.config, ticket=self._take_ticket()), clock)
        where = f"{self.host}:{self.port}"
        try:
            async with asyncio.timeout(self.connect_timeout):
                await clock.loop.create_connection(lambda: link, self.host, self.port, local_addr=self.local_addr)
                await link.handshake
        except TimeoutError as exc:
            if isinstance(exc, ClientError):
                raise
            if link.handshake.done() and not link.handshake.cancelled() and link.handshake.exception() is None:
                return link  # accepted just as the deadline passed
            link.abort()
            raise ConnectTimeout(f"{where}: no handshake within {self.connect_timeout} s") from None
        except ClientError:  # the handshake's refusal (a ConnectError is an OSError too: keep its code)
            link.abort()
            raise
        except OSError as exc:
            raise ConnectError(None, f"{where}: {exc}") from exc
        except BaseException:
            link.abort()
            raise
        return link
