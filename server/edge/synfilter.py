"""The SYNs of addresses told to wait, dropped by the kernel before they cost the gateway anything (spec section 5.9).

Theory of operation
-------------------
Handshake admission (`kefu.server.edge.admission`) answers a flooding address with a GOAWAY that says when to come
back, and holds the connections it opens before then, unread, until that time. Each of those connections still
costs the gateway an accept, a protocol object, a timer and a close, and the attacker's resets on top: under a flood
from 240 addresses that churn, not the handshakes, was what kept established sessions' latency up (bench/RESULTS.md,
issue #13). So the gateway also tells the kernel: a classic BPF program on its own listening socket
(SO_ATTACH_FILTER, which needs no privilege) drops every SYN from an address whose delay is not over. The peer's
kernel retransmits its SYN (after 1 s, then 2 s, ...), by which time the delay is usually over; nothing reaches the
gateway meanwhile. A client that honours the delay connects after it, and is not dropped.

The program: a packet that is not a SYN (every packet of an established connection: an accepted socket inherits
its listener's program) is accepted at the second instruction; a SYN's IPv4 source address is compared with each
blocked address in turn (two instructions each), and dropped on a match. At most `MAX_BLOCKED` addresses, those
whose delay ends last; the program is replaced (`SO_ATTACH_FILTER` again, atomically) at most every `UPDATE_S` and
when the first delay ends. IPv4 only: on an IPv6 socket nothing is attached (admission's holding still applies).
A socket the gateways share (systemd's) gets none either: each gateway would replace the others' program.
"""

from __future__ import annotations

import asyncio
import ctypes
import ipaddress
import os
import socket
import struct
from collections.abc import Callable
from typing import Final

__all__ = ["MAX_BLOCKED", "SynFilter", "program"]

MAX_BLOCKED: Final = 1024
"""Addresses a program blocks at most (two instructions each, of the 4,096 the kernel allows)."""
UPDATE_S: Final = 0.02
"""The program is replaced at most this often (a refusal storm blocks its addresses in batches)."""
SO_ATTACH_FILTER: Final = 26
SO_DETACH_FILTER: Final = 27
SKF_NET_OFF: Final = -0x100000
"""BPF_ABS offsets from here address the network header: +12 is an IPv4 header's source address."""
_INSN = struct.Struct("=HBBI")
_LD_B_ABS, _LD_W_ABS, _JSET_K, _JEQ_K, _RET_K = 0x30, 0x20, 0x45, 0x15, 0x06
_TCP_FLAGS, _SYN = 13, 0x02
_ACCEPT, _DROP = 0xFFFF_FFFF, 0


class _Prog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.c_void_p)]


def program(blocked: list[int]) -> bytes:
    """The classic BPF program (struct sock_filter[]) that drops SYNs from the IPv4 addresses `blocked` (as ints)."""
    insns = [
        (_LD_B_ABS, 0, 0, _TCP_FLAGS),  # the TCP header's flags (a TCP socket's filter sees the segment from there)
        (_JSET_K, 1, 0, _SYN),
        (_RET_K, 0, 0, _ACCEPT),  # not a SYN
        (_LD_W_ABS, 0, 0, (SKF_NET_OFF + 12) & 0xFFFF_FFFF),
    ]
    for address in blocked[:MAX_BLOCKED]:
        insns += [(_JEQ_K, 0, 1, address), (_RET_K, 0, 0, _DROP)]
    insns.append((_RET_K, 0, 0, _ACCEPT))
    return b"".join(_INSN.pack(*insn) for insn in insns)


def attach(sock: socket.socket, code: bytes) -> None:
    """Attach (or replace) the program `code` on `sock` (OSError if the kernel refuses it)."""
    buffer = ctypes.create_string_buffer(code, len(code))
    prog = _Prog(len(code) // _INSN.size, ctypes.addressof(buffer))
    sock.setsockopt(socket.SOL_SOCKET, SO_ATTACH_FILTER, bytes(prog))


class SynFilter:
    """The blocked addresses of one gateway's listening socket, and the program that drops their SYNs."""

    def __init__(self, sock: socket.socket, loop: asyncio.AbstractEventLoop, clock: Callable[[], float]) -> None:
        self._sock, self._loop, self._clock = sock, loop, clock
        self._until: dict[int, float] = {}
        """Blocked address -> when its delay ends (`clock`)."""
        self._timer: asyncio.TimerHandle | None = None
        self._next_at = float("inf")
        self.updates = 0
        """Programs attached so far."""
        self.failed = False
        """The kernel refused a program: none is attached any more, and none is tried again."""

    @classmethod
    def for_socket(cls, fd: int, loop: asyncio.AbstractEventLoop, clock: Callable[[], float]) -> SynFilter | None:
        """A filter for the listening socket `fd` (kept open here through a duplicate: a server's own socket objects
        may be its event loop's), or None where none can be attached (not IPv4 TCP, or the kernel refuses)."""
        sock = socket.socket(fileno=os.dup(fd))
        try:
            if sock.family != socket.AF_INET or sock.type != socket.SOCK_STREAM:
                raise OSError("not an IPv4 TCP socket")
            attach(sock, program([]))
        except OSError:
            sock.close()
            return None
        return cls(sock, loop, clock)

    @property
    def blocked(self) -> int:
        """Addresses blocked now (those in the program, at most MAX_BLOCKED)."""
        return min(len(self._until), MAX_BLOCKED)

    def block(self, address: str, until: float) -> None:
        """Drop the SYNs of `address` (an IPv4 address; others are ignored) until `until` (`clock`)."""
        if self.failed:
            return
        try:
            ip = int(ipaddress.IPv4Address(address))
        except ValueError:
            return
        if self._until.get(ip, 0.0) >= until:
            return
        new = ip not in self._until
        self._until[ip] = until
        if new:
            self._schedule(self._clock() + UPDATE_S)

    def close(self) -> None:
        """Stop updating (the program stays on the socket until it closes)."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._sock.close()

    def _schedule(self, at: float) -> None:
        if at >= self._next_at:
            return
        if self._timer is not None:
            self._timer.cancel()
        self._next_at = at
        self._timer = self._loop.call_at(at, self._update)

    def _update(self) -> None:
        self._timer, self._next_at = None, float("inf")
        now = self._clock()
        self._until = {ip: until for ip, until in self._until.items() if until > now}
        latest = sorted(self._until, key=self._until.__getitem__, reverse=True)[:MAX_BLOCKED]
        try:
            attach(self._sock, program(latest))
        except OSError:
            self.failed = True
            self._until.clear()
            return
        self.updates += 1
        if latest:
            self._schedule(max(min(self._until[ip] for ip in latest), now + UPDATE_S))
