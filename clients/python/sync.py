"""A blocking facade over `Client` for scripts: an event loop runs in a background thread.

Every call hands a coroutine to that loop (`run_coroutine_threadsafe`) and waits for its result, so the
blocking client behaves exactly as the asyncio one (same options, same reconnects, same acknowledgement rule: the
message returned by `receive()` is acknowledged when `receive()` is called again or the client is closed; with
``explicit_ack=True``, when `BlockingClient.ack()` is called). Connection callbacks run on the loop thread.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable, Coroutine, Mapping, Sequence
from types import EllipsisType, TracebackType
from typing import Any, TypeVar

from kefu.protocol.crypto import Suite
from kefu.protocol.frames import AgentState, ContentType, DraftAction

from .client import Client
from .messages import Message, SendReceipt
from .options import ClientOptions
from .results import OpenedConversation, SearchMatch, ServiceEvent
from .service import Outcome

T = TypeVar("T")

THREAD_JOIN_TIMEOUT_S = 5.0
"""close() waits this long for the loop thread to finish after the client closed."""


class BlockingClient:
    """The kefu client with blocking calls (connect, send, receive, sync, close); a context manager."""

    def __init__(
        self,
        host: str | None = None,
        port: int | None = None,
        *,
        options: ClientOptions | None = None,
        loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None,
        **fields: Any,
    ) -> None:
        """The same options as `Client` (`ClientOptions` fields as keywords, or `options`); `loop_factory` picks the
        event loop (e.g. ``uvloop.new_event_loop``)."""
        self._client = Client(host, port, options=options, **fields)
        app_id = self._client.app_id
        self._loop = (loop_factory or asyncio.new_event_loop)()
        self._thread = threading.Thread(target=self._run, name=f"kefu-client-{app_id}", daemon=True)
        self._thread.start()
        self._closed = False

    @classmethod
    def from_url(
        cls, url: str, *, loop_factory: Callable[[], asyncio.AbstractEventLoop] | None = None, **fields: Any
    ) -> BlockingClient:
        """See `Client.from_url`."""
        return cls(options=ClientOptions.from_url(url, **fields), loop_factory=loop_factory)

    @property
    def options(self) -> ClientOptions:
        """See `Client.options`."""
        return self._client.options

    def __repr__(self) -> str:
        return repr(self._client).replace("<Client", "<BlockingClient", 1)

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
        content_type: ContentType | int = ContentType.TEXT,
        metadata: Mapping[str, bytes] | None = None,
        to: Sequence[str] = (),
        client_msg_id: bytes | None = None,
        timeout: float | EllipsisType | None = ...,
    ) -> SendReceipt:
        """See `Client.send` (the default timeout is the options' `send_timeout`)."""
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

    def ack(self, message: Message) -> None:
        """`Message.ack()` as a blocking call (with ``explicit_ack=True``, the only way messages are acknowledged)."""
        self._call(message.ack())

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
    """`ServiceApi` as blocking calls: ``client.service.open(first_message="...")``. Each method is the asyncio one of
    the same name (see there), with the same parameters and result."""

    __slots__ = ("_owner",)

    def __init__(self, owner: BlockingClient) -> None:
        self._owner = owner

    def _call(self, coro: Coroutine[Any, Any, T]) -> T:
        return self._owner._call(coro)

    def set_status(self, status: AgentState, *, timeout: float | None = 10) -> Outcome:
        """See `ServiceApi.set_status`."""
        return self._call(self._owner.client.service.set_status(status, timeout=timeout))

    def open(
        self, *, attributes: Mapping[str, str] | None = None, first_message: str = "", group: str = "",
        customer: str = "", client_ref: bytes | None = None, timeout: float | None = 10,
    ) -> OpenedConversation:  # fmt: skip
        """See `ServiceApi.open`."""
        service = self._owner.client.service
        return self._call(service.open(attributes=attributes, first_message=first_message, group=group,
                                       customer=customer, client_ref=client_ref, timeout=timeout))  # fmt: skip

    def transfer(
        self, conversation_id: int, *, to_agent: str = "", to_group: str = "", expect_owner: str = "",
        note: str = "", timeout: float | None = 10,
    ) -> Outcome:  # fmt: skip
        """See `ServiceApi.transfer`."""
        service = self._owner.client.service
        return self._call(service.transfer(conversation_id, to_agent=to_agent, to_group=to_group,
                                           expect_owner=expect_owner, note=note, timeout=timeout))  # fmt: skip

    def end(self, conversation_id: int, reason: str = "", *, timeout: float | None = 10) -> Outcome:
        """See `ServiceApi.end`."""
        return self._call(self._owner.client.service.end(conversation_id, reason, timeout=timeout))

    def watch(self, conversation_id: int, on: bool = True, *, timeout: float | None = 10) -> Outcome:
        """See `ServiceApi.watch`."""
        return self._call(self._owner.client.service.watch(conversation_id, on, timeout=timeout))

    def decide_draft(
        self, conversation_id: int, draft_seq: int, action: DraftAction, text: str = "", *,
        timeout: float | None = 10,
    ) -> Outcome:  # fmt: skip
        """See `ServiceApi.decide_draft`."""
        service = self._owner.client.service
        return self._call(service.decide_draft(conversation_id, draft_seq, action, text, timeout=timeout))

    def search(self, query: str, *, limit: int = 20, timeout: float | None = 10) -> list[SearchMatch]:
        """See `ServiceApi.search`."""
        return self._call(self._owner.client.service.search(query, limit=limit, timeout=timeout))

    def info(self, conversation_id: int, *, timeout: float | None = 10) -> dict[str, Any]:
        """See `ServiceApi.info`."""
        return self._call(self._owner.client.service.info(conversation_id, timeout=timeout))

    def next_event(self, timeout: float | None = None) -> ServiceEvent | None:
        """See `ServiceApi.next_event`."""
        return self._call(self._owner.client.service.next_event(timeout))
