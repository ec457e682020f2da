"""A blocking facade over `Client` for scripts: an event loop runs in a background thread.

Every call hands a coroutine to that loop (`run_coroutine_threadsafe`) and waits for its result, so the
blocking client behaves exactly as the asyncio one (same reconnects, same acknowledgement rule: the message
returned by `receive()` is acknowledged when `receive()` is called again or the client is closed).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Iterable, Mapping, Sequence
from types import TracebackType
from typing import Any, TypeVar

from kefu.protocol.crypto import SigningKey, Suite
from kefu.protocol.frames import ContentType

from .client import Client
from .messages import Message, SendReceipt

T = TypeVar("T")

THREAD_JOIN_TIMEOUT_S = 5.0
"""close() waits this long for the loop thread to finish after the client closed."""


class BlockingClient:
    """The kefu client with blocking calls (connect, send, receive, sync, close); a context manager."""

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
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
    ) -> None:
        """The options of `Client`; `loop_factory` picks the event loop (e.g. ``uvloop.new_event_loop``)."""
        self._client = Client(
            host,
            port,
            app_id=app_id,
            server_pins=server_pins,
            app_secret=app_secret,
            client_key=client_key,
            suites=suites,
            keepalive_s=keepalive_s,
            reconnect=reconnect,
            psk_with_ecdhe=psk_with_ecdhe,
            local_addr=local_addr,
            connect_timeout=connect_timeout,
        )
        self._loop = (loop_factory or asyncio.new_event_loop)()
        self._thread = threading.Thread(target=self._run, name=f"kefu-client-{app_id}", daemon=True)
        self._thread.start()
        self._closed = False

    def _run(self) -> None:
        asyncio.set_event_loop(self._loop)
        try:
            self._loop.run_forever()
        finally:
            self._loop.run_until_complete(self._loop.shutdown_asyncgens())
            self._loop.close()

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        if self._closed:
            coro.close()
            raise RuntimeError("the blocking client is closed")
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result()

    # --- the operations ---------------------------------------------------------------------------------

    @property
    def client(self) -> Client:
        """The asyncio client underneath (use it only from the loop thread)."""
        return self._client

    @property
    def service(self) -> BlockingService:
        """The customer-service requests of `Client.service`, as blocking calls (events() excepted)."""
        return BlockingService(self)

    @property
    def connected(self) -> bool:
        """See `Client.connected`."""
        return self._client.connected

    @property
    def suite(self) -> Suite | None:
        """See `Client.suite`."""
        return self._client.suite

    @property
    def resumed(self) -> bool:
        """See `Client.resumed`."""
        return self._client.resumed

    @property
    def reconnects(self) -> int:
        """See `Client.reconnects`."""
        return self._client.reconnects

    def connect(self) -> None:
        """See `Client.connect`."""
        self._call(self._client.connect())

    def send(
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
        """See `Client.send`."""
        return self._call(
            self._client.send(
                conversation_id,
                body,
                content_type=content_type,
                metadata=metadata,
                to=to,
                client_msg_id=client_msg_id,
                timeout=timeout,
            )
        )

    def receive(self, timeout: float | None = None) -> Message | None:
        """The next message, or None after `timeout` seconds; acknowledges the message returned before."""
        return self._call(self._client.receive(timeout))

    def sync(
        self,
        conversation_id: int,
        after_seq: int = 0,
        until_seq: int = 0,
        limit: int = 100,
        *,
        timeout: float | None = None,
    ) -> list[Message]:
        """See `Client.sync`."""
        return self._call(self._client.sync(conversation_id, after_seq, until_seq, limit, timeout=timeout))

    def close(self) -> None:
        """Close the client (acknowledging the message in hand) and stop the loop thread."""
        self._shutdown(ack_in_hand=True)

    def _shutdown(self, *, ack_in_hand: bool) -> None:
        if self._closed:
            return
        try:
            self._call(self._client._shutdown(ack_in_hand=ack_in_hand))
        finally:
            self._closed = True
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(THREAD_JOIN_TIMEOUT_S)

    def __enter__(self) -> BlockingClient:
        try:
            self.connect()
        except BaseException:
            self._shutdown(ack_in_hand=False)  # no __exit__ follows: stop the loop thread here
            raise
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._shutdown(ack_in_hand=exc_type is None)


class BlockingService:
    """`ServiceApi` with every coroutine method made blocking: ``client.service.open(first_message="...")``."""

    __slots__ = ("_owner",)

    def __init__(self, owner: BlockingClient) -> None:
        self._owner = owner

    def __getattr__(self, name: str) -> Any:
        attribute = getattr(self._owner.client.service, name)
        if name.startswith("_") or name == "events" or not asyncio.iscoroutinefunction(attribute):
            raise AttributeError(f"BlockingService has no {name!r} (use client.client.service for it)")

        def call(*args: Any, **kwargs: Any) -> Any:
            return self._owner._call(attribute(*args, **kwargs))

        return call
