"""The SYN filter (`kefu.server.edge.synfilter`) on a real listening socket on loopback: SYNs from a blocked address
get no answer until its time is over, other addresses and established connections are untouched, the program is
bounded, and sockets it cannot serve get none."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import Iterator

import pytest

from kefu.server.edge.synfilter import MAX_BLOCKED, SynFilter, program


@pytest.fixture
def listener() -> Iterator[socket.socket]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    yield sock
    sock.close()


async def connects(port: int, host: str, timeout: float = 0.2) -> socket.socket | None:
    """A connection from `host` established within `timeout` (the kernel's: nobody accepts), or None."""
    sock = socket.socket()
    sock.setblocking(False)
    sock.bind((host, 0))
    try:
        await asyncio.wait_for(asyncio.get_running_loop().sock_connect(sock, ("127.0.0.1", port)), timeout)
    except TimeoutError:
        sock.close()
        return None
    return sock


@pytest.mark.asyncio
async def test_a_blocked_address_gets_no_syn_ack_until_its_time_is_over(listener: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    port = listener.getsockname()[1]
    early = await connects(port, "127.0.0.5")
    assert early is not None
    syn_filter = SynFilter.for_socket(listener.fileno(), loop, loop.time)
    assert syn_filter is not None
    try:
        syn_filter.block("127.0.0.5", loop.time() + 0.6)
        syn_filter.block("::1", loop.time() + 0.6)  # not IPv4: ignored
        await asyncio.sleep(0.05)
        assert syn_filter.blocked == 1 and syn_filter.updates == 1
        assert await connects(port, "127.0.0.5") is None, "blocked"
        other = await connects(port, "127.0.0.6")
        assert other is not None, "another address connects"
        early.send(b"still")  # an established connection of the blocked address is untouched
        accepted, _ = listener.accept()
        accepted.recv(10)  # the first accepted is `early`'s or `other`'s; both are established
        await asyncio.sleep(0.7)
        assert syn_filter.blocked == 0, "its time is over: the program was replaced"
        later = await connects(port, "127.0.0.5")
        assert later is not None, "connects again"
        for sock in (other, later, accepted):
            sock.close()
    finally:
        early.close()
        syn_filter.close()


def test_the_program_drops_only_syns_of_the_listed_addresses_and_is_bounded() -> None:
    code = program(list(range(1, MAX_BLOCKED + 100)))
    assert len(code) // 8 == 4 + 2 * MAX_BLOCKED + 1 <= 4096, "the kernel's limit on a classic BPF program"
    assert program([]) == code[: 4 * 8] + code[-8:]


@pytest.mark.asyncio
async def test_no_filter_on_an_ipv6_socket() -> None:
    sock = socket.socket(socket.AF_INET6)
    try:
        loop = asyncio.get_running_loop()
        assert SynFilter.for_socket(sock.fileno(), loop, loop.time) is None
    finally:
        sock.close()
